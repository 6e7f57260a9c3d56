"""The model a training run ships: the winning candidate, refit, with its calibration.

At most one LightGBM booster and one linear scorer, whose log-odds are
added with fixed weights, then turned into a calibrated probability. The
same object serves the bundle, MLflow's pyfunc, scoring and the reasons, so
whether the backtest picked LightGBM, the logistic regression, a blend or a
baseline, nothing downstream needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.errors import ModelError
from churnmodel.model.calibration import Calibrator, sigmoid
from churnmodel.model.candidates import tree_log_odds
from churnmodel.model.linear import LinearScorer
from churnmodel.model.treeshap import tree_contributions

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ChurnModel:
    """A fitted candidate: ``tree_weight x trees + (1 - tree_weight) x linear``, calibrated."""

    name: str
    booster: lgb.Booster | None
    linear: LinearScorer | None
    tree_weight: float
    calibrator: Calibrator

    def __post_init__(self) -> None:
        if self.booster is None and self.linear is None:
            raise ValueError("a ChurnModel needs a booster, a linear scorer or both")

    @property
    def feature_names(self) -> list[str]:
        """Every column the model reads, trees' first."""
        names = list(self.booster.feature_name()) if self.booster is not None else []
        extra = self.linear.feature_names if self.linear is not None else []
        return names + [n for n in extra if n not in names]

    @property
    def trees(self) -> int:
        """Number of trees (0 for a linear model)."""
        return self.booster.num_trees() if self.booster is not None else 0

    def log_odds(self, features: pd.DataFrame) -> Array:
        """Uncalibrated log-odds of churn per row."""
        total = np.zeros(len(features))
        if self.booster is not None:
            total += self._weight("trees") * tree_log_odds(self.booster, features)
        if self.linear is not None:
            total += self._weight("linear") * self.linear.raw_score(features)
        return total

    def predict_proba(self, features: pd.DataFrame) -> Array:
        """Calibrated probabilities as an (n, 2) array, like scikit-learn's."""
        churn = self.calibrator.apply(sigmoid(self.log_odds(features)))
        if len(churn) and not ((churn >= 0) & (churn <= 1)).all():  # NaN fails too
            raise ModelError(
                f"model {self.name}: {int((~((churn >= 0) & (churn <= 1))).sum()):,} predicted "
                "probabilities are outside [0, 1]; the model files are damaged"
            )
        return np.column_stack([1 - churn, churn])

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-row, per-column share of the log-odds (TreeSHAP for trees, exact for linear).

        Costly for trees, even by patterns (`treeshap`): use on the rows that need reasons.
        """
        out = pd.DataFrame(0.0, index=features.index, columns=self.feature_names)
        if self.booster is not None:
            names = self.booster.feature_name()
            values = tree_contributions(self.booster, features[names])
            out[names] += self._weight("trees") * values[:, :-1]
        if self.linear is not None:
            part = self.linear.contributions(features)
            out[part.columns] += self._weight("linear") * part.to_numpy()
        return out

    def importance(self) -> pd.Series:
        """Each column's share of the model's importance, largest first (sums to 1).

        Trees count total gain, the linear part |weight| of standardised
        values; a blend weighs the two shares like its log-odds.
        """
        total = pd.Series(0.0, index=self.feature_names, name="importance")
        if self.booster is not None:
            gain = pd.Series(
                self.booster.feature_importance(importance_type="gain"),
                index=self.booster.feature_name(),
            )
            total = total.add(self._weight("trees") * _shares(gain), fill_value=0.0)
        if self.linear is not None:
            total = total.add(
                self._weight("linear") * _shares(self.linear.importance()), fill_value=0.0
            )
        return total.sort_values(ascending=False, kind="stable").rename("importance")

    def categories(self) -> dict[str, list[object]]:
        """The values each categorical column had in training (scored as missing otherwise)."""
        found: dict[str, list[object]] = {}
        if self.booster is not None and self.booster.pandas_categorical:
            names = [
                n
                for n, kind in zip(
                    self.booster.feature_name(), _categorical_flags(self.booster), strict=True
                )
                if kind
            ]
            found |= dict(zip(names, self.booster.pandas_categorical, strict=True))
        if self.linear is not None:
            for name, weights in self.linear.categorical.items():
                found.setdefault(name, list(weights))
        return found

    def _weight(self, kind: str) -> float:
        if self.booster is None or self.linear is None:
            return 1.0
        return self.tree_weight if kind == "trees" else 1 - self.tree_weight


def _shares(values: pd.Series) -> pd.Series:
    total = float(values.sum())
    return values / total if total > 0 else values * 0.0


def _categorical_flags(booster: lgb.Booster) -> list[bool]:
    """Which of the booster's features were pandas categories (from its own model dump).

    A categorical feature lists its category codes under `values`; a numeric one has none.
    """
    dump = booster.dump_model(num_iteration=0)
    kinds = dump.get("feature_infos", {})
    names = booster.feature_name()
    return [bool(kinds.get(n, {}).get("values")) for n in names]
