"""A self-contained HTML report of one scoring run, for people who would rather look.

One file with inline CSS and inline PNG charts (no scripts, no links), so it
can be mailed or dropped on a share. It holds no timestamp of its own, so
scoring the same data twice gives the same bytes.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from churnmodel._html import compact_axis, decimals, image, money, page, table
from churnmodel.outreach.build import SEGMENTS, TIERS, tier_summary

if TYPE_CHECKING:
    from churnmodel.uplift.targeting import Targeting

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


TIER_WORDS = {
    "risk_tier": "Risk tier",
    "customers": "Customers",
    "mean_probability": "Mean churn probability",
    "value_12m": "Value next 12 months",
    "value_at_risk": "Value at risk",
    "with_reasons": "With reasons",
}
TOP_WORDS = {
    "customer_id": "Customer",
    "churn_probability": "Churn probability",
    "risk_tier": "Risk tier",
    "value_at_risk": "Value at risk",
    "segment": "Segment",
    "reason_1": "Leading reason",
    "action": "Action",
}
LEGEND = """<div class="legend"><p><b>How to read this list.</b>
Every scored customer has a <b>churn probability</b>: the calibrated chance of leaving within
the model's horizon. <b>Risk tiers</b>: <i>high</i> is the top share of customers by probability,
<i>medium</i> the next share, <i>low</i> the rest; customers with the same probability share a
tier. <b>Value at risk</b> is the probability times the value the customer would bring in the
next 12 months if they stay, so the list is ranked by the money at stake, not by risk alone.
<b>Health</b> (0-100) reads behaviour only (recency, product use, surveys, tickets).
<b>Segments</b>: <i>new</i> customers, <i>high-value</i> ones (top share by value),
<i>at-risk</i> (high tier), <i>regular</i>.</p>
<p><b>What to do.</b> Work down the list from the top: each contacted row (high and medium tier)
carries up to three reasons in the customer's own numbers and an action that fits the leading
reason (re-engagement, support follow-up, retention offer, onboarding, personal call). Lapsed
customers are not here: they are on the win-back list (winback.csv).</p></div>"""


def render_report(
    data: ReportData,
    counts: Mapping[str, int],
    model: str,
    unseen: Mapping[str, int],
    currency: str = "",
    findings: Sequence[str] = (),
    targeting: Targeting | None = None,
) -> str:
    """The report as one HTML string; `counts` is what happened to every input customer.

    `findings` are the data-quality warnings of the run, listed at the end
    so that whoever acts on the list can see what the data looked like.
    `targeting`, the budgeted contact list, comes first when there is one:
    it is what the team works through.
    """
    cash = money(currency)
    parts = [
        f"<h1>Churn outreach list, {html.escape(data.as_of)}</h1>",
        f'<p class="sub">model {html.escape(model)}; {data.scored:,} customers scored; '
        f"reasons and an action for the {data.with_reasons:,} rows of the contacted tiers "
        "(column has_reasons)</p>",
        *(_contacts_section(targeting, currency) if targeting is not None else []),
        LEGEND,
        "<h2>Customers</h2>",
        table(
            pd.DataFrame(list(counts.items()), columns=["customers", "count"]),
            {"customers": "Customers", "count": "Count"},
        ),
        "<h2>Risk tiers</h2>",
        table(
            data.tiers,
            TIER_WORDS,
            {"mean_probability": decimals(3), "value_12m": cash, "value_at_risk": cash},
        ),
        '<div class="charts">',
        image(_risk_distribution(data.histogram), "risk distribution"),
        image(_value_by_segment(data.value_by_segment), "value at risk by segment"),
        image(_top_reasons(data.leading_reasons), "leading reasons"),
        "</div>",
        f"<h2>Top {TOP_ROWS} by value at risk</h2>",
        table(
            _top(data.top),
            TOP_WORDS,
            {"churn_probability": decimals(3), "value_at_risk": cash},
        ),
    ]
    if unseen:
        listed = ", ".join(f"{k} ({v:,} rows)" for k, v in sorted(unseen.items()))
        parts.append(f"<p>Values unseen in training, scored as missing: {html.escape(listed)}</p>")
    if findings:
        notes = "".join(f"<li>{html.escape(f)}</li>" for f in findings)
        parts.append(f"<h2>Data notes</h2><ul>{notes}</ul>")
    return page(f"Churn outreach {data.as_of}", parts)


CONTACT_WORDS = {
    "contact_rank": "#",
    "customer_id": "Customer",
    "best_offer": "Offer",
    "expected_saved_value": "Expected saved value",
    "uplift": "Churn probability lowered",
    "churn_probability": "Churn probability",
    "value_12m": "Value next 12 months",
    "risk_tier": "Risk tier",
    "reason_1": "Leading reason",
}
UPLIFT_ONLY = ("best_offer", "expected_saved_value", "uplift")
"""Contact columns that only an uplift model fills; the value takes their place without one."""


def _contacts_section(targeting: Targeting, currency: str) -> list[str]:
    """The budgeted list: how it was ranked and cut, what it is expected to keep, its top rows."""
    cash = money(currency)
    contacts = targeting.contacts
    figures = {
        "budget": targeting.budget.describe(currency),
        "customers to contact": f"{len(contacts):,}",
    }
    if targeting.profit is not None:
        offers = contacts["best_offer"].value_counts().sort_index()
        figures |= {
            "expected saved value, after offer costs": cash(contacts["expected_saved_value"].sum()),
            "offer costs": cash(contacts["offer_cost"].sum()),
            "offers": ", ".join(f"{k} {n:,}" for k, n in offers.items()) or "-",
        }
    if targeting.in_vain is not None:
        figures["of as many customers ranked by risk alone: not expected to pay"] = (
            f"{targeting.in_vain:.0%}"
        )
    parts = [
        "<h2>Budgeted contacts (contacts.csv)</h2>",
        f"<p>{html.escape(targeting.why[:1].upper() + targeting.why[1:])}.</p>",
        *([f"<p>{html.escape(targeting.check)}.</p>"] if targeting.check else []),
        table(
            pd.DataFrame(list(figures.items()), columns=["what", "value"]),
            {"what": "", "value": ""},
        ),
    ]
    if targeting.profit is not None:
        parts.append(image(_profit_curve(targeting), "expected profit by list size"))
    left_out = ("value_12m",) if targeting.profit is not None else UPLIFT_ONLY
    shown = [c for c in CONTACT_WORDS if c in contacts.columns and c not in left_out]
    parts.append(
        table(
            contacts[shown].head(TOP_ROWS),
            CONTACT_WORDS,
            {
                "expected_saved_value": cash,
                "uplift": decimals(3),
                "churn_probability": decimals(3),
                "value_12m": cash,
            },
        )
    )
    return parts


def _profit_curve(targeting: Targeting) -> Figure:
    """Expected profit of the top n by the ranking, with the chosen cut and the budget."""
    profit = targeting.profit if targeting.profit is not None else np.zeros(1)
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    points = np.unique(np.linspace(0, len(profit) - 1, min(len(profit), 2_000)).astype(int))
    axes.plot(points, profit[points], color="#1f77b4", label=f"ranked by {targeting.ranking}")
    axes.axvline(targeting.size, color="#d62728", label=f"the list: {targeting.size:,}")
    if targeting.budget.contacts is not None and targeting.budget.contacts < len(profit) - 1:
        axes.axvline(
            targeting.budget.contacts, color="#7f7f7f", linestyle="--", label="contact budget"
        )
    axes.axhline(0, color="black", linewidth=0.5)
    axes.set(
        title="Expected profit by list size",
        xlabel="customers contacted, best first",
        ylabel="value kept minus offer costs",
    )
    compact_axis(axes.xaxis)
    compact_axis(axes.yaxis)
    axes.legend()
    return figure


def _top(outreach: pd.DataFrame) -> pd.DataFrame:
    return outreach[list(TOP_WORDS)].head(TOP_ROWS)


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
    axes.set(title="Risk distribution", xlabel="churn probability", ylabel="customers")
    compact_axis(axes.yaxis)
    axes.legend(title="tier")
    return figure


def _value_by_segment(by_segment: pd.Series) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    by_segment = by_segment.reindex(list(SEGMENTS), fill_value=0)
    axes.barh(list(SEGMENTS), by_segment.to_numpy(), color="#1f77b4")
    axes.set(title="Value at risk by segment", xlabel="sum of value at risk")
    compact_axis(axes.xaxis)
    return figure


def reason_kind(text: str) -> str:
    """A reason's wording without the customer's numbers, to count reasons by kind.

    >>> reason_kind("No purchase for 94 days; usually buys every 21 days")
    'No purchase for … days; usually buys every … days'
    """
    return re.sub(r"\d[\d,.]*", "…", text)


def _top_reasons(leading: pd.Series) -> Figure:
    """The ten most common leading reasons, by their wording with the numbers left out."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    kinds = leading[leading != ""].map(reason_kind)
    # most frequent first, ties by wording, so the order of the rows does not matter
    counts = [(str(kind), int(n)) for kind, n in kinds.value_counts().items()]
    ranked = sorted(counts, key=lambda item: (-item[1], item[0]))[:10]
    top = ranked[::-1]  # barh draws bottom-up
    axes.barh(
        [textwrap.shorten(kind, 50, placeholder=" …") for kind, _ in top],
        [n for _, n in top],
        color="#9467bd",
    )
    axes.set(title="Leading reasons of the contacted rows", xlabel="customers")
    compact_axis(axes.xaxis)
    return figure
