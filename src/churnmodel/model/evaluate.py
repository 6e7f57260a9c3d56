"""Metrics for churn scores on one set of rows: ranking, top-k lift/capture and calibration.

The retention team calls the top of the list, so lift and capture at the
top 10 % and 20 % matter as much as ROC AUC; the outreach list multiplies
probabilities by money, so calibration (Brier score, expected calibration
error) matters too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

TOP_SHARES = (0.1, 0.2)


@dataclass(frozen=True)
class Metrics:
    """Metrics of one set of scores on one set of rows."""

    rows: int
    churn_rate: float
    roc_auc: float
    pr_auc: float
    lift_at_10: float
    capture_at_10: float
    lift_at_20: float
    capture_at_20: float
    brier: float
    ece: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats, e.g. for logging."""
        return {k: float(v) for k, v in asdict(self).items()}


def top_share(labels: npt.ArrayLike, scores: npt.ArrayLike, share: float) -> tuple[float, float]:
    """(lift, capture) of the top `share` of rows by score.

    The top is ``ceil(share * n)`` rows; ties are broken by row order, so
    the result is deterministic. Lift is the churn rate in the top over the
    overall rate; capture is the share of all churners found in the top.

    >>> top_share([1, 0, 0, 1, 0, 0, 0, 0, 0, 0], [0.9, 0.8, 0.1, 0.2, 0, 0, 0, 0, 0, 0], 0.2)
    (2.5, 0.5)
    """
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    top = np.argsort(-s, kind="stable")[: math.ceil(share * len(y))]
    found, total = y[top].sum(), y.sum()
    if total == 0:
        return math.nan, math.nan
    return float(found / len(top) / (total / len(y))), float(found / total)


def calibration_table(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = 10
) -> pd.DataFrame:
    """Rows, mean predicted probability and observed churn rate per non-empty equal-width bin.

    >>> calibration_table([0, 1, 1], [0.05, 0.95, 0.55], bins=2)
      probability  rows  predicted  observed
    0     0.0-0.5     1       0.05       0.0
    1     0.5-1.0     2       0.75       1.0
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    used = np.unique(which)
    return pd.DataFrame(
        {
            "probability": [f"{b / bins:.1f}-{(b + 1) / bins:.1f}" for b in used],
            "rows": [int((which == b).sum()) for b in used],
            "predicted": [float(p[which == b].mean()) for b in used],
            "observed": [float(y[which == b].mean()) for b in used],
        }
    )


def expected_calibration_error(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = 10
) -> float:
    """Row-weighted mean |predicted - observed| over equal-width probability bins.

    >>> expected_calibration_error([0, 1, 1, 1], [0.05, 0.95, 0.95, 0.55])  # .0125+.025+.1125
    0.15
    """
    table = calibration_table(labels, probabilities, bins)
    gaps = (table["predicted"] - table["observed"]).abs()
    return round(float((table["rows"] / table["rows"].sum() * gaps).sum()), 12)


def evaluate_scores(labels: npt.ArrayLike, scores: npt.ArrayLike) -> Metrics:
    """All evaluation metrics; Brier and ECE only when the scores are probabilities."""
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    both = len(np.unique(y)) == 2
    probabilities = bool(np.all((s >= 0) & (s <= 1)))
    lift_10, capture_10 = top_share(y, s, 0.1)
    lift_20, capture_20 = top_share(y, s, 0.2)
    return Metrics(
        rows=len(y),
        churn_rate=float(y.mean()) if len(y) else math.nan,
        roc_auc=float(roc_auc_score(y, s)) if both else math.nan,
        pr_auc=float(average_precision_score(y, s)) if both else math.nan,
        lift_at_10=lift_10,
        capture_at_10=capture_10,
        lift_at_20=lift_20,
        capture_at_20=capture_20,
        brier=float(brier_score_loss(y, s)) if probabilities else math.nan,
        ece=expected_calibration_error(y, s) if probabilities else math.nan,
    )
