"""The (customer_id, cutoff[, label]) table every feature family joins onto."""

from __future__ import annotations

import datetime as dt

import ibis

from churnmodel.config import LabelConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.timeline.eligibility import eligible
from churnmodel.timeline.labels import AHEAD, activity_ahead, add_labels, labelled_by_activity


def build_spine(
    tables: ValidatedTables,
    cutoffs: list[dt.date],
    label: LabelConfig,
    with_labels: bool = True,
) -> ibis.Table:
    """Eligible customers at each cutoff, with labels when asked for."""
    if with_labels and not label.contractual:
        # the activity pass that finds who is eligible reads who stays active after, too
        return labelled_by_activity(
            eligible(tables, cutoffs, label, also={AHEAD: activity_ahead(label)})
        )
    spine = eligible(tables, cutoffs, label)
    return add_labels(tables, spine, label) if with_labels else spine
