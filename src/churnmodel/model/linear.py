"""A regularised logistic regression kept as plain numbers, with exact per-feature reasons.

On small, noisy data a linear model on good features is hard to beat, so it
is a candidate next to LightGBM, not only a baseline. It is fitted with
scikit-learn on a design matrix built here, and then stored as the numbers
that define it: per numeric column the median used for missing values, the
mean and scale of the (optionally log-transformed) value and two weights
(value and missing indicator); per categorical column a weight per category
seen in training (unseen or missing: none). Scoring is numpy arithmetic on
those numbers, so a saved model is JSON and never needs unpickling.

Contributions are exact for a linear model: each column's share of the
log-odds relative to the average training row, so they sum (with the
average) to the model's score, like TreeSHAP's do for the trees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression

Array = npt.NDArray[np.float64]
CLIP = 8.0


@dataclass(frozen=True)
class NumericPart:
    """How one numeric column enters the score."""

    median: float
    mean: float
    scale: float
    weight: float
    missing_weight: float
    missing_share: float  # in training, for contributions relative to the average row


@dataclass(frozen=True)
class LinearScorer:
    """Log-odds = intercept + numeric parts + categorical parts (see the module docstring)."""

    numeric: dict[str, NumericPart]
    categorical: dict[str, dict[str, float]]
    categorical_mean: dict[str, float]  # average training weight per categorical column
    intercept: float
    log: bool  # values enter as sign(x) * log(1 + |x|)

    @property
    def feature_names(self) -> list[str]:
        """The columns the score reads."""
        return [*self.numeric, *self.categorical]

    @classmethod
    def fit(
        cls,
        features: pd.DataFrame,
        labels: npt.ArrayLike,
        c: float = 1.0,
        log: bool = True,
    ) -> LinearScorer:
        """Fit an L2-regularised logistic regression (strength 1/`c`) on every column."""
        numeric = [n for n in features.columns if not _is_categorical(features[n])]
        categorical = [n for n in features.columns if _is_categorical(features[n])]
        parts: dict[str, tuple[float, float, float, float]] = {}
        blocks: list[Array] = []
        for name in numeric:
            raw = _transformed(features[name].to_numpy(np.float64), log)
            missing = np.isnan(raw)
            median = float(np.median(raw[~missing])) if (~missing).any() else 0.0
            filled = np.where(missing, median, raw)
            mean, scale = float(filled.mean()), float(filled.std())
            scale = scale if scale > 1e-9 else 1.0
            parts[name] = (median, mean, scale, float(missing.mean()))
            blocks += [_standard(filled, mean, scale), missing.astype(np.float64)]
        levels = {n: sorted(str(v) for v in features[n].dropna().unique()) for n in categorical}
        for name in categorical:
            values = features[name].astype("object")
            blocks += [np.asarray(values == level, dtype=np.float64) for level in levels[name]]
        design = np.column_stack(blocks) if blocks else np.zeros((len(features), 0))
        model = LogisticRegression(C=c, max_iter=2000).fit(design, np.asarray(labels))
        weights = iter(model.coef_[0].tolist())
        numeric_parts = {
            name: NumericPart(median, mean, scale, next(weights), next(weights), share)
            for name, (median, mean, scale, share) in parts.items()
        }
        categorical_parts = {
            name: {lv: next(weights) for lv in levels[name]} for name in categorical
        }
        categorical_mean = {
            name: float(
                features[name].astype("object").map(categorical_parts[name]).fillna(0.0).mean()
            )
            for name in categorical
        }
        return cls(
            numeric_parts,
            categorical_parts,
            categorical_mean,
            float(model.intercept_[0]),
            log,
        )

    def raw_score(self, features: pd.DataFrame) -> Array:
        """Log-odds of churn per row (summed in column-name order, so a saved copy agrees)."""
        parts = self.contributions(features)
        total = parts[sorted(parts.columns)].sum(axis=1).to_numpy()
        return np.asarray(total + self.expected())

    def expected(self) -> float:
        """The log-odds of the average training row, from which contributions are measured."""
        numeric = sum(
            self.numeric[n].missing_weight * self.numeric[n].missing_share
            for n in sorted(self.numeric)
        )
        categorical = sum(self.categorical_mean[n] for n in sorted(self.categorical_mean))
        return self.intercept + numeric + categorical

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Each column's log-odds relative to the average training row."""
        out: dict[str, Array] = {}
        for name, part in self.numeric.items():
            raw = _transformed(features[name].to_numpy(np.float64), self.log)
            missing = np.isnan(raw)
            scaled = _standard(np.where(missing, part.median, raw), part.mean, part.scale)
            indicator = missing.astype(np.float64) - part.missing_share
            out[name] = np.asarray(part.weight * scaled + part.missing_weight * indicator)
        for name, weights in self.categorical.items():
            values = features[name].astype("object").map(weights).fillna(0.0)
            out[name] = np.asarray(values.to_numpy(np.float64) - self.categorical_mean[name])
        return pd.DataFrame(out, index=features.index, columns=self.feature_names)

    def importance(self) -> pd.Series:
        """|weight| per column (numbers are standardised, so weights compare)."""
        values = {n: abs(p.weight) for n, p in self.numeric.items()}
        values |= {
            n: float(np.ptp(list(w.values()))) if w else 0.0 for n, w in self.categorical.items()
        }
        return pd.Series(values, name="weight", dtype="float64")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearScorer:
        """Inverse of `to_dict`."""
        return cls(
            {n: NumericPart(**p) for n, p in data["numeric"].items()},
            {n: dict(w) for n, w in data["categorical"].items()},
            dict(data["categorical_mean"]),
            float(data["intercept"]),
            bool(data["log"]),
        )


def _is_categorical(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object


def _standard(values: Array, mean: float, scale: float) -> Array:
    """Standardised and clipped at 8 standard deviations.

    One far-out value in new data (a ratio over a tiny denominator) must not
    swing the score by thousands of log-odds.
    """
    return np.clip((values - mean) / scale, -CLIP, CLIP)


def _transformed(values: Array, log: bool) -> Array:
    """sign(x) * log(1 + |x|): counts and amounts lose their long tails, order is kept."""
    return np.sign(values) * np.log1p(np.abs(values)) if log else values
