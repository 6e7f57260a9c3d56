"""ChurnClassifier: LightGBM with out-of-time early stopping and probability calibration.

It keeps scikit-learn's contract (``__init__`` stores its arguments, ``fit``
returns self, learned state ends in ``_``), but ``fit`` also takes the
validation rows: early stopping and calibration must use a later cutoff than
training, never a random slice of the same cutoffs. Calibration is fitted on
the validation rows' raw scores (isotonic, or Platt's logistic), because the
outreach list multiplies the probabilities by money. The calibrator is
plain data (`Calibrator`), so a saved model never needs unpickling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

Calibration = Literal["isotonic", "platt", "none"]


class ChurnClassifier:
    """Gradient-boosted churn model; categorical (pandas category) columns stay native."""

    def __init__(
        self,
        *,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        feature_fraction: float = 0.9,
        bagging_fraction: float = 0.8,
        lambda_l2: float = 0.0,
        n_estimators: int = 1000,
        early_stopping_rounds: int = 50,
        calibration: Calibration = "isotonic",
        random_state: int = 0,
    ) -> None:
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.random_state = random_state

    def lightgbm_params(self) -> dict[str, Any]:
        """The booster parameters; fixed seeds and deterministic histograms."""
        return {
            "objective": "binary",
            "metric": "auc",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(
        self,
        features: pd.DataFrame,
        labels: npt.ArrayLike,
        valid_features: pd.DataFrame,
        valid_labels: npt.ArrayLike,
    ) -> ChurnClassifier:
        """Train on earlier cutoffs, stop early and calibrate on the validation cutoff."""
        train = lgb.Dataset(features, label=np.asarray(labels))
        valid = lgb.Dataset(valid_features, label=np.asarray(valid_labels), reference=train)
        booster = lgb.train(
            self.lightgbm_params(),
            train,
            num_boost_round=self.n_estimators,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        # Keep only the trees up to the best iteration: what is saved is what is scored.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(booster.best_iteration))
        self.feature_names_ = list(features.columns)
        raw = self.raw_score(valid_features)
        self.validation_auc_ = float(roc_auc_score(np.asarray(valid_labels), raw))
        self.calibrator_ = Calibrator.fit(self.calibration, raw, valid_labels)
        return self

    @classmethod
    def from_parts(cls, booster: lgb.Booster, calibrator: Calibrator) -> ChurnClassifier:
        """A fitted classifier from a saved booster and calibrator (see `registry.bundle`)."""
        model = cls(calibration=calibrator.kind)
        model.booster_, model.calibrator_ = booster, calibrator
        model.feature_names_ = list(booster.feature_name())
        return model

    def raw_score(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Uncalibrated probability from the booster."""
        return np.asarray(self.booster_.predict(features[self.feature_names_]), dtype=np.float64)

    def predict_proba(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Calibrated probabilities, as an (n, 2) array like scikit-learn's."""
        churn = self.calibrator_.apply(self.raw_score(features))
        return np.column_stack([1 - churn, churn])

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per-row feature contributions in log-odds (TreeSHAP); costly, use on few rows."""
        values = self.booster_.predict(features[self.feature_names_], pred_contrib=True)
        return pd.DataFrame(
            np.asarray(values)[:, :-1], columns=self.feature_names_, index=features.index
        )

    def importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        gain = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.feature_names_, name="gain").sort_values(
            ascending=False, kind="stable"
        )


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
