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
        columns: list[Array] = []
        for name in numeric:
            raw = _transformed(features[name].to_numpy(np.float64), log)
            missing = np.isnan(raw)
            median = float(np.median(raw[~missing])) if (~missing).any() else 0.0
            filled = np.where(missing, median, raw)
            mean, scale = float(filled.mean()), float(filled.std())
            scale = scale if scale > 1e-9 else 1.0
            parts[name] = (median, mean, scale, float(missing.mean()))
            columns += [_standard(filled, mean, scale), missing.astype(np.float64)]
        levels = {n: sorted(str(v) for v in features[n].dropna().unique()) for n in categorical}
        for name in categorical:
            values = features[name].astype("object")
            columns += [np.asarray(values == level, dtype=np.float64) for level in levels[name]]
        coefficients, intercept = _fit_logistic(columns, np.asarray(labels), c, len(features))
        weights = iter(coefficients.tolist())
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
            intercept,
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


NEWTON_MAX_COLUMNS = 512
"""Up to this many design columns, Newton steps on the exact Hessian; beyond, L-BFGS.

A Newton step costs rows x columns^2 (one matrix product, fast in BLAS) and
converges in about five steps; L-BFGS takes about 160 cheaper steps bound by
memory speed. On 127,000 rows x 185 columns the Newton fit took 0.7 s against
7 s (docs/performance.md); at thousands of one-hot columns the squared width
makes L-BFGS the faster one.
"""

TOLERANCE = {"newton-cholesky": 1e-8, "lbfgs": 1e-4}
"""Newton converges quadratically, so a tight tolerance costs about one step."""


def _fit_logistic(
    columns: list[Array], labels: npt.NDArray[Any], c: float, rows: int
) -> tuple[Array, float]:
    """The weight of every column and the intercept of an L2 logistic regression.

    All-zero columns (the missing indicator of a column without gaps, a value
    without spread) are left out of the fit: under an L2 penalty their weight
    is exactly 0, and they would only cost time and memory (one stays when all
    are zero, so the intercept is still fitted). `columns` is
    emptied as the design is filled, so the values are not held twice.
    """
    used = [i for i, column in enumerate(columns) if column.any()] or [0][: len(columns)]
    design = np.empty((rows, len(used)), dtype=np.float64)
    for j, i in enumerate(used):
        design[:, j] = columns[i]
    coefficients = np.zeros(len(columns))
    columns.clear()
    solver = "newton-cholesky" if len(used) <= NEWTON_MAX_COLUMNS else "lbfgs"
    model = LogisticRegression(C=c, solver=solver, tol=TOLERANCE[solver], max_iter=2000)
    model.fit(design, labels)
    coefficients[used] = model.coef_[0]
    return coefficients, float(model.intercept_[0])


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
