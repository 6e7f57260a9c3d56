"""Probability calibration as plain numbers: the outreach list multiplies probabilities by money.

A calibrator is fitted on out-of-fold backtest scores (never on the rows a
model was fitted on), and kept as plain data, so a saved model never needs
unpickling: isotonic is a piecewise-linear curve through `x`, `y` (what
``IsotonicRegression(out_of_bounds="clip")`` predicts); Platt is
``sigmoid(a * logit(raw) + b)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Calibration = Literal["isotonic", "platt", "none"]


def sigmoid(log_odds: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probability from log-odds (no overflow at extreme values)."""
    return np.asarray(expit(log_odds), dtype=np.float64)


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from raw booster scores to probabilities, kept as plain numbers.

    Plain data (not a pickled scikit-learn object) so a saved model can be read
    back safely anywhere: isotonic is a piecewise-linear curve through `x`,
    `y` (what `IsotonicRegression(out_of_bounds="clip")` predicts); Platt is
    ``sigmoid(a * logit(raw) + b)``.
    """

    kind: Calibration
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, kind: Calibration, raw: npt.ArrayLike, labels: npt.ArrayLike) -> Calibrator:
        """Fit the calibration `kind` on validation scores and labels."""
        scores, y = np.asarray(raw, dtype=np.float64), np.asarray(labels)
        if kind == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
            return cls(kind, tuple(iso.X_thresholds_.tolist()), tuple(iso.y_thresholds_.tolist()))
        if kind == "platt":
            platt = LogisticRegression().fit(_logit(scores)[:, None], y)
            return cls(kind, a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))
        return cls(kind)

    def apply(self, raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Calibrated probabilities for raw scores."""
        if self.kind == "isotonic":
            return np.interp(raw, self.x, self.y)
        if self.kind == "platt":
            return np.asarray(1 / (1 + np.exp(-(self.a * _logit(raw) + self.b))))
        return raw

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Inverse of `to_dict`."""
        return cls(data["kind"], tuple(data["x"]), tuple(data["y"]), data["a"], data["b"])


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))
