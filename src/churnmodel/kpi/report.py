"""KPI charts (PNG), the one-page KPI report (HTML) and the tidy tables on disk."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from churnmodel._html import compact_axis, decimals, image, page, table, write_png
from churnmodel._io import file_set, write_csv, write_parquet, write_text
from churnmodel.kpi.cohorts import Cohorts
from churnmodel.kpi.retention import ALL

HEADLINE = [
    "period",
    "customers_start",
    "new_customers",
    "lost_customers",
    "customers_end",
    "retention_rate",
    "churn_rate",
    "aov",
    "purchase_frequency",
    "clv",
    "revenue_new",
    "revenue_existing",
    "nps",
    "csat",
    "ces",
    "survey_response_rate",
]


HEADLINE_WORDS = {
    "period": "Period",
    "customers_start": "Customers at start",
    "new_customers": "New",
    "lost_customers": "Lost",
    "customers_end": "Customers at end",
    "retention_rate": "Retention %",
    "churn_rate": "Churn %",
    "aov": "Average order",
    "purchase_frequency": "Orders per customer",
    "clv": "CLV",
    "revenue_new": "Revenue, new",
    "revenue_existing": "Revenue, existing",
    "nps": "NPS",
    "csat": "CSAT %",
    "ces": "CES",
    "survey_response_rate": "Survey response %",
}
PERCENT_COLUMNS = ("retention_rate", "churn_rate", "nps", "csat", "ces", "survey_response_rate")
MONEY_COLUMNS = ("aov", "clv", "revenue_new", "revenue_existing")


def overall(kpis: pd.DataFrame) -> pd.DataFrame:
    """The rows over all customers, one per period."""
    return kpis[kpis["segment_by"] == ALL].reset_index(drop=True)


def charts(kpis: pd.DataFrame, cohorts: Cohorts) -> dict[str, Figure]:
    """Every chart of the KPI report by file stem; one churn chart per segment attribute."""
    rows = overall(kpis)
    figures = {
        "retention": _rates(rows),
        "revenue": _revenue(rows),
        "surveys": _surveys(rows),
        "cohorts": cohort_heatmap(cohorts),
    }
    for attribute in kpis.loc[kpis["segment_by"] != ALL, "segment_by"].unique():
        figures[f"churn_by_{attribute}"] = churn_by_segment(kpis, str(attribute))
    return figures


def write_kpis(kpis: pd.DataFrame, cohorts: Cohorts, title: str, out_dir: Path) -> dict[str, Path]:
    """kpis.csv/.parquet, cohorts.csv/.parquet, one PNG per chart and kpis.html, as one set.

    The files are written as one set (`file_set`): they replace the old
    ones together, and other files in `out_dir` are kept.
    """
    figures = charts(kpis, cohorts)
    with file_set(out_dir) as tmp:
        write_csv(kpis, tmp / "kpis.csv")
        write_csv(cohorts.table, tmp / "cohorts.csv")
        write_parquet(kpis, tmp / "kpis.parquet")
        write_parquet(cohorts.table, tmp / "cohorts.parquet")
        for stem, figure in figures.items():
            write_png(figure, tmp / f"{stem}.png")
        write_text(render_kpis(kpis, cohorts, title, figures), tmp / "kpis.html")
    names = ["kpis.csv", "cohorts.csv", "kpis.parquet", "cohorts.parquet"]
    names += [f"{stem}.png" for stem in figures] + ["kpis.html"]
    return {name: Path(out_dir) / name for name in names}


def render_kpis(
    kpis: pd.DataFrame, cohorts: Cohorts, title: str, figures: dict[str, Figure]
) -> str:
    """The KPI report as one self-contained HTML page."""
    headline = overall(kpis)[HEADLINE]
    headline = headline.loc[:, headline.notna().any()]  # e.g. no CES answers: no CES column
    headline = headline.assign(period=headline["period"].map(lambda p: f"{p:%Y-%m}"))
    percent, two = decimals(1), decimals(2)
    formats = {c: percent for c in PERCENT_COLUMNS} | {c: two for c in MONEY_COLUMNS}
    formats |= {"purchase_frequency": two}
    body = [
        f"<h1>{html.escape(title)}</h1>",
        '<p class="sub">rates in %; AOV, CLV and revenue in the currency of the amounts; '
        "definitions in churnmodel's docs/kpis.md</p>",
        '<div class="charts">',
        *(image(figure, stem) for stem, figure in figures.items() if stem != "cohorts"),
        "</div>",
        "<h2>All customers</h2>",
        table(headline, HEADLINE_WORDS, formats),
        f"<h2>Cohort retention (%) by {html.escape(cohorts.signup_from)} month</h2>",
    ]
    if "cohorts" in figures:
        body.append(image(figures["cohorts"], "cohort retention", full=True))
    retention = _cohort_table(cohorts)
    by_month = {c: percent for c in retention.columns[2:]}
    body.append(table(retention, {"cohort": "Cohort", "customers": "Customers"}, by_month))
    body.append(
        f"<p>Not in a cohort: {cohorts.without_signup:,} customers without a signup date, "
        f"{cohorts.signed_up_earlier:,} who signed up before the first whole month of data.</p>"
    )
    return page(title, body)


def _cohort_table(cohorts: Cohorts) -> pd.DataFrame:
    matrix = cohorts.matrix().round(1)
    matrix.columns = [f"+{k}" for k in matrix.columns]
    sizes = cohorts.table.groupby("cohort")["cohort_size"].first()
    out = matrix.reset_index()
    out.insert(1, "customers", out["cohort"].map(sizes))
    out["cohort"] = out["cohort"].map(lambda d: f"{d:%Y-%m}")
    return out


def _legend_outside(axes: Axes, title: str | None = None) -> None:
    """The legend right of the plot, so it never covers a line."""
    axes.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))


def _axes(title: str, ylabel: str, size: tuple[float, float] = (6, 4)) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size)
    axes = figure.add_subplot()
    axes.set(title=title, ylabel=ylabel)
    return figure, axes


def _rates(rows: pd.DataFrame) -> Figure:
    figure, axes = _axes("Retention and churn rate", "% of customers at period start")
    axes.plot(rows["period"], rows["retention_rate"], marker="o", label="retention rate")
    axes.plot(rows["period"], rows["churn_rate"], marker="o", label="churn rate")
    _legend_outside(axes)
    figure.autofmt_xdate()
    return figure


def _revenue(rows: pd.DataFrame) -> Figure:
    figure, axes = _axes("Revenue from new and existing customers", "net revenue")
    x = np.arange(len(rows))
    axes.bar(x, rows["revenue_existing"], label="existing", color="#1f77b4")
    axes.bar(x, rows["revenue_new"], bottom=rows["revenue_existing"], label="new", color="#ff7f0e")
    axes.set_xticks(x, [f"{p:%Y-%m}" for p in rows["period"]], rotation=60, ha="right")
    compact_axis(axes.yaxis)
    _legend_outside(axes)
    return figure


def _surveys(rows: pd.DataFrame) -> Figure:
    figure, axes = _axes("Survey scores", "NPS / CSAT (%)")
    axes.plot(rows["period"], rows["nps"], marker="o", label="NPS")
    axes.plot(rows["period"], rows["csat"], marker="o", label="CSAT (% 4-5)")
    axes.axhline(0, color="#999", linewidth=0.8)
    _legend_outside(axes)
    figure.autofmt_xdate()
    return figure


def churn_by_segment(kpis: pd.DataFrame, attribute: str) -> Figure:
    """Churn rate per period, one line per value of a segment attribute."""
    figure, axes = _axes(f"Churn rate by {attribute}", "% of customers at period start")
    rows = kpis[kpis["segment_by"] == attribute]
    for segment, part in rows.groupby("segment", sort=True):
        axes.plot(part["period"], part["churn_rate"], marker=".", label=str(segment))
    _legend_outside(axes, title=attribute)
    figure.autofmt_xdate()
    return figure


def cohort_heatmap(cohorts: Cohorts) -> Figure:
    """Retention (%) by cohort (rows) and months since signup (columns), annotated."""
    matrix = cohorts.matrix()
    height = max(3.0, 0.32 * len(matrix) + 1.5)
    figure, axes = _axes(
        "Cohort retention (%)", "cohort", (max(6.0, 0.45 * matrix.shape[1] + 2.5), height)
    )
    shown = axes.imshow(
        matrix.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto"
    )
    axes.set_xticks(range(matrix.shape[1]), [str(k) for k in matrix.columns], fontsize="small")
    axes.set_yticks(range(len(matrix)), [f"{c:%Y-%m}" for c in matrix.index], fontsize="small")
    axes.set_xlabel("months since signup")
    if matrix.size <= 2_500:  # beyond that the cells are too small to read
        for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
            if not np.isnan(value):
                color = "white" if value < 60 else "black"
                axes.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, color=color)
    figure.colorbar(shown, ax=axes, label="% of cohort active")
    return figure
