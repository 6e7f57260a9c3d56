"""Train / validation / holdout by cutoff, never by row.

At a cutoff ``T`` a data scientist only knows the labels of cutoffs whose
label window has ended, ``c + horizon <= T``. The split reproduces that: the
latest cutoffs are held out, the validation cutoffs end their label window
by the first holdout cutoff, and the training cutoffs end theirs by the
first validation cutoff. Rows in between are dropped from fitting (and
reported), because their labels would come from the evaluation period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from churnmodel.errors import CutoffError


@dataclass(frozen=True)
class CutoffSplit:
    """Which cutoffs train, validate (early stopping, calibration) and evaluate."""

    train: list[pd.Timestamp]
    validation: list[pd.Timestamp]
    holdout: list[pd.Timestamp]
    unused: list[pd.Timestamp]

    def rows(self, frame: pd.DataFrame, part: str) -> pd.DataFrame:
        """The rows of `frame` whose cutoff belongs to `part` ("train", ...)."""
        return frame[frame["cutoff"].isin(getattr(self, part))]


def split_cutoffs(
    cutoffs: Iterable[dt.date], horizon_days: int, holdout: int = 1, validation: int = 1
) -> CutoffSplit:
    """Split cutoffs so that no fitted label overlaps a later evaluation period."""
    ordered = sorted({pd.Timestamp(c) for c in cutoffs})
    if holdout < 1 or validation < 1:
        raise CutoffError(
            f"holdout and validation need at least 1 cutoff, got {holdout}, {validation}"
        )
    horizon = dt.timedelta(days=horizon_days)
    held = ordered[-holdout:] if len(ordered) >= holdout else []
    before_holdout = [c for c in ordered if held and c + horizon <= held[0]]
    valid = before_holdout[-validation:]
    train = [c for c in ordered if valid and c + horizon <= valid[0]]
    if not (held and valid and train):
        raise CutoffError(
            f"{len(ordered)} cutoff(s) with a {horizon_days}-day horizon cannot give "
            f"{holdout} holdout, {validation} validation and at least one training cutoff "
            "whose label windows end before the next part starts; add earlier cutoffs"
        )
    used = {*train, *valid, *held}
    return CutoffSplit(train, valid, held, [c for c in ordered if c not in used])
