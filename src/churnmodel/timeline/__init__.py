"""Cutoffs, eligibility and labels: the point-in-time spine of every data set."""

from churnmodel.timeline.cutoffs import label_observed, schedule, training_cutoffs
from churnmodel.timeline.spine import build_spine

__all__ = ["build_spine", "label_observed", "schedule", "training_cutoffs"]
