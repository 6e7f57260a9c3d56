"""Labels: whether the customer churned in ``[c, c + horizon)``.

* contractual: the churn date falls in the label window;
* non-contractual: no qualifying activity in the label window.

Labels are the only place that reads past the cutoff, and they read only
the label window.
"""

from __future__ import annotations

import ibis

from churnmodel.config import LabelConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.pointintime import (
    Agg,
    Lookup,
    history,
    label_window,
    within_label_window,
)
from churnmodel.timeline.eligibility import activity_days


def add_labels(tables: ValidatedTables, spine: ibis.Table, label: LabelConfig) -> ibis.Table:
    """The spine with an int8 `label` column (1 = churned in the label window)."""
    if label.contractual:
        churn = tables.tables["churn"].select("customer_id", "churn_date")
        joined = spine.left_join(churn, "customer_id")
        churned = joined.churn_date.notnull() & within_label_window(
            joined.churn_date, joined.cutoff, label.horizon
        )
        return joined.select("customer_id", "cutoff", label=churned.cast("int8"))
    daily = activity_days(tables, label)
    future = history(spine, Lookup("", daily, {AHEAD: activity_ahead(label)}))
    return labelled_by_activity(future)


AHEAD = "active_ahead"
"""The column of qualifying activity in the label window, before it becomes a label."""


def activity_ahead(label: LabelConfig) -> Agg:
    """Rows of qualifying activity in the label window ``[c, c + horizon)``."""
    return Agg("active", "sum", label_window(label.horizon))


def labelled_by_activity(spine: ibis.Table) -> ibis.Table:
    """(customer_id, cutoff, label) from the spine's `AHEAD` column: none ahead is churn."""
    return spine.select(
        "customer_id", "cutoff", label=(ibis.coalesce(spine[AHEAD], 0) == 0).cast("int8")
    )
