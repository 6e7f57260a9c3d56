"""The monitor's HTML page: alerts first, then drift and live results, for people who look.

Same style as the outreach and KPI reports (one self-contained file). It
shows what `monitor.json` and `drift.csv` hold, with the features that drift
by design (`[monitor] ignore`) marked instead of hidden.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from churnmodel._html import image, page, table

DRIFT_ROWS = 20


def render_monitor(
    title: str,
    drift: pd.DataFrame,
    live: pd.DataFrame,
    alerts: Sequence[str],
    waiting: Sequence[str],
    chart: Figure,
) -> str:
    """One HTML page: alerts, the features with the highest PSI, the PSI chart, live lists."""
    if alerts:
        verdict = f'<p class="alert">{len(alerts)} alert(s): a limit in [monitor] is broken</p>'
        verdict += "<ul>" + "".join(f"<li>{html.escape(a)}</li>" for a in alerts) + "</ul>"
    else:
        verdict = '<p class="ok">No alerts: every watched limit holds.</p>'
    shown = drift.head(DRIFT_ROWS).assign(
        watched=lambda d: d["ignored"].map({True: "no (drifts by design)", False: "yes"})
    )[["feature", "psi", "missing_train", "missing_now", "unseen_category_share", "watched"]]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        verdict,
        f"<h2>Feature drift: the {len(shown)} highest PSI of {len(drift)} features</h2>",
        "<p>Population stability index against the training rows: below 0.1 stable, "
        "0.1-0.25 a moderate shift, above 0.25 a large one. Features that drift as the "
        "customer base ages ([monitor] ignore) are shown but never alarm.</p>",
        table(shown.round(3)),
        image(chart),
        "<h2>Earlier lists, measured</h2>",
        table(live.round(3)) if len(live) else "<p>No earlier list was given (--scored).</p>",
    ]
    if waiting:
        parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in waiting) + "</ul>")
    return page(title, parts)
