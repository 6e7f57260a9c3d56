"""ChurnClassifier: LightGBM with out-of-time early stopping and probability calibration.

It keeps scikit-learn's contract (``__init__`` stores its arguments, ``fit``
returns self, learned state ends in ``_``), but ``fit`` also takes the
validation rows: early stopping and calibration must use a later cutoff than
training, never a random slice of the same cutoffs. Calibration is fitted on
the validation rows' raw scores (isotonic, or Platt's logistic), because the
outreach list multiplies the probabilities by money.
"""

from __future__ import annotations

from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

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
        train = lgb.Dataset(features, label=np.asarray(labels), free_raw_data=False)
        valid = lgb.Dataset(valid_features, label=np.asarray(valid_labels), reference=train)
        self.booster_ = lgb.train(
            self.lightgbm_params(),
            train,
            num_boost_round=self.n_estimators,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        self.feature_names_ = list(features.columns)
        self.calibrator_ = self._fit_calibrator(self.raw_score(valid_features), valid_labels)
        return self

    def raw_score(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Uncalibrated probability from the booster (best iteration)."""
        scores = self.booster_.predict(
            features[self.feature_names_], num_iteration=self.booster_.best_iteration
        )
        return np.asarray(scores, dtype=np.float64)

    def predict_proba(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Calibrated probabilities, as an (n, 2) array like scikit-learn's."""
        churn = self._calibrated(self.raw_score(features))
        return np.column_stack([1 - churn, churn])

    def _fit_calibrator(
        self, raw: npt.NDArray[np.float64], labels: npt.ArrayLike
    ) -> IsotonicRegression | LogisticRegression | None:
        y = np.asarray(labels)
        if self.calibration == "isotonic":
            return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        if self.calibration == "platt":
            return LogisticRegression().fit(_logit(raw)[:, None], y)
        return None

    def _calibrated(self, raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if isinstance(self.calibrator_, IsotonicRegression):
            return np.asarray(self.calibrator_.predict(raw), dtype=np.float64)
        if isinstance(self.calibrator_, LogisticRegression):
            return np.asarray(self.calibrator_.predict_proba(_logit(raw)[:, None])[:, 1])
        return raw


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))
