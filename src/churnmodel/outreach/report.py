"""A self-contained HTML report of one scoring run, for people who would rather look.

One file with inline CSS and inline PNG charts (no scripts, no links), so it
can be mailed or dropped on a share. It holds no timestamp of its own, so
scoring the same data twice gives the same bytes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from churnmodel._html import image, page, table
from churnmodel.outreach.build import SEGMENTS, TIERS, tier_summary

TIER_COLORS = {"high": "#d62728", "medium": "#ff7f0e", "low": "#2ca02c"}
TOP_ROWS = 25


BINS = 20
"""Probability bins of the risk distribution chart (0-0.05, ..., 0.95-1)."""


@dataclass(frozen=True)
class ReportData:
    """What the report shows, small enough for any engine to hand over."""

    as_of: str
    scored: int
    with_reasons: int
    tiers: pd.DataFrame  # as `tier_summary`
    histogram: pd.DataFrame  # customers per probability bin (rows) and tier (columns)
    value_by_segment: pd.Series  # value at risk per segment
    leading_reasons: pd.Series  # reason_1 of the rows with reasons
    top: pd.DataFrame  # the first rows of the list


def probability_bin(probability: pd.Series) -> pd.Series:
    """Bin index 0..BINS-1 of each probability (1.0 falls in the last bin)."""
    return (probability * BINS).astype("int64").clip(0, BINS - 1)


def report_data(outreach: pd.DataFrame) -> ReportData:
    """The report's figures from the full list (the DuckDB path has it in memory)."""
    histogram = pd.crosstab(
        probability_bin(outreach["churn_probability"]),
        outreach["risk_tier"].astype(str),
    )
    segments = outreach.groupby("segment", observed=False)["value_at_risk"].sum()
    return ReportData(
        as_of=f"{outreach['as_of'].iloc[0]:%Y-%m-%d}" if len(outreach) else "-",
        scored=len(outreach),
        with_reasons=int(outreach["has_reasons"].sum()),
        tiers=tier_summary(outreach),
        histogram=histogram,
        value_by_segment=segments,
        leading_reasons=outreach.loc[outreach["has_reasons"], "reason_1"],
        top=outreach.head(TOP_ROWS),
    )


def render_report(
    data: ReportData, counts: Mapping[str, int], model: str, unseen: Mapping[str, int]
) -> str:
    """The report as one HTML string; `counts` is what happened to every input customer."""
    parts = [
        f"<h1>Churn outreach list, {html.escape(data.as_of)}</h1>",
        f'<p class="sub">model {html.escape(model)}; {data.scored:,} customers scored; '
        f"reasons for the {data.with_reasons:,} highest-value rows of the reason tiers "
        "(column has_reasons)</p>",
        "<h2>Customers</h2>",
        table(pd.DataFrame(list(counts.items()), columns=["customers", "count"])),
        "<h2>Risk tiers</h2>",
        table(data.tiers.round(3)),
        '<div class="charts">',
        image(_risk_distribution(data.histogram)),
        image(_value_by_segment(data.value_by_segment)),
        image(_top_reasons(data.leading_reasons)),
        "</div>",
        f"<h2>Top {TOP_ROWS} by value at risk</h2>",
        table(_top(data.top)),
    ]
    if unseen:
        listed = ", ".join(f"{k} ({v:,} rows)" for k, v in sorted(unseen.items()))
        parts.append(f"<p>Values unseen in training, scored as missing: {html.escape(listed)}</p>")
    return page(f"Churn outreach {data.as_of}", parts)


def _top(outreach: pd.DataFrame) -> pd.DataFrame:
    columns = [
        "customer_id",
        "churn_probability",
        "risk_tier",
        "value_at_risk",
        "segment",
        "reason_1",
        "action",
    ]
    return outreach[columns].head(TOP_ROWS).round({"churn_probability": 3})


def _risk_distribution(histogram: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    counts = histogram.reindex(index=range(BINS), columns=list(TIERS), fill_value=0)
    left = [i / BINS for i in range(BINS)]
    bottom = [0] * BINS
    for tier in TIERS:
        heights = counts[tier].tolist()
        axes.bar(
            left,
            heights,
            width=1 / BINS,
            bottom=bottom,
            align="edge",
            label=tier,
            color=TIER_COLORS[tier],
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set(
        title="Risk distribution", xlabel="churn probability", ylabel="customers", yscale="log"
    )
    axes.legend(title="tier")
    return figure


def _value_by_segment(by_segment: pd.Series) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    by_segment = by_segment.reindex(list(SEGMENTS), fill_value=0)
    axes.barh(list(SEGMENTS), by_segment.to_numpy(), color="#1f77b4")
    axes.set(title="Value at risk by segment", xlabel="sum of value at risk")
    return figure


def _top_reasons(leading: pd.Series) -> Figure:
    """Leading reasons, grouped by their wording with the customer's numbers blanked out."""
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    kinds = leading[leading != ""].map(lambda text: re.sub(r"\d[\d,.]*", "#", text))
    # most frequent first, ties by wording, so the order of the rows does not matter
    counts = [(str(kind), int(n)) for kind, n in kinds.value_counts().items()]
    ranked = sorted(counts, key=lambda item: (-item[1], item[0]))[:10]
    top = ranked[::-1]  # barh draws bottom-up
    axes.barh([kind[:60] for kind, _ in top], [n for _, n in top], color="#9467bd")
    axes.set(title="Top leading reasons", xlabel="customers")
    return figure
