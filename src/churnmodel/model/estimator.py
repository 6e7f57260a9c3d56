"""`ChurnClassifier`: the churn model's LightGBM part as a scikit-learn estimator.

`churnmodel train` does more than fit one model: it backtests LightGBM, a
logistic regression, their blend and the baselines over rolling cutoffs,
and ships the winner as a pickle-free bundle. This class is the piece a
data scientist puts inside their own scikit-learn code (`Pipeline`,
`cross_val_score`, `clone`, `GridSearchCV`): the same LightGBM settings,
with the same defaults (read from `ModelConfig`, never written twice) and
the same calibration, behind `fit(X, y)` and `predict_proba(X)`.

It pickles with joblib (`joblib.dump(model, "churn.joblib")`), as every
scikit-learn estimator does. A pickle runs code when it is loaded, so load
only files you wrote; `score` and the registry keep loading the plain bundle.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, Literal

import annotated_types
import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from churnmodel.config import ModelConfig
from churnmodel.model.calibration import Calibration, Calibrator, sigmoid
from churnmodel.model.candidates import fit_trees, lightgbm_params, tree_log_odds
from churnmodel.model.churn_model import ChurnModel

PARAMETERS = (
    "learning_rate",
    "num_leaves",
    "min_child_samples",
    "feature_fraction",
    "bagging_fraction",
    "lambda_l2",
    "balance_classes",
    "n_estimators",
    "early_stopping_rounds",
    "calibration",
)
"""The `[model]` settings the estimator takes, under the same names."""
DEFAULTS = {name: ModelConfig.model_fields[name].default for name in (*PARAMETERS, "seed")}


def _constraint(name: str) -> list[Any]:
    """The scikit-learn constraint of a `ModelConfig` field, from its own bounds."""
    field = ModelConfig.model_fields[name]
    kind = field.annotation
    if typing.get_origin(kind) is Literal:
        return [StrOptions(set(typing.get_args(kind)))]
    if kind is bool:
        return ["boolean"]
    low: Any = None
    high: Any = None
    closed_low = closed_high = True
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Gt):
            low, closed_low = bound.gt, False
        elif isinstance(bound, annotated_types.Ge):
            low = bound.ge
        elif isinstance(bound, annotated_types.Lt):
            high, closed_high = bound.lt, False
        elif isinstance(bound, annotated_types.Le):
            high = bound.le
    closed = {
        (True, True): "both",
        (True, False): "left",
        (False, True): "right",
        (False, False): "neither",
    }[(closed_low and low is not None, closed_high and high is not None)]
    return [Interval(Integral if kind is int else Real, low, high, closed=closed)]


class ChurnClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # no sklearn stubs
    """Calibrated LightGBM churn probabilities, as a scikit-learn classifier.

    Parameters are the `[model]` settings of the same names (see
    docs/configuration.md); `random_state` is `model.seed` (an int, as
    LightGBM needs), `calibration_folds` the folds of the cross-fitted
    calibration used when `fit` gets no `eval_set`, and `n_jobs` LightGBM's
    threads (None: all cores).

    The positive class is `classes_[1]`, the second in sorted order, as in
    scikit-learn: with 0/1 or False/True labels that is "churned", so
    `predict_proba(X)[:, 1]` is the churn probability.

    Fitted attributes: `classes_`, `n_features_in_`, `feature_names_in_`
    (for a DataFrame), `categorical_`, `booster_`, `calibrator_`, `n_trees_`
    and `model_` (the `ChurnModel` a bundle would hold).
    """

    _parameter_constraints: typing.ClassVar[dict[str, list[Any]]] = {
        **{name: _constraint(name) for name in PARAMETERS},
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "calibration_folds": [Interval(Integral, 2, None, closed="left")],
        "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        learning_rate: float = DEFAULTS["learning_rate"],
        num_leaves: int = DEFAULTS["num_leaves"],
        min_child_samples: int = DEFAULTS["min_child_samples"],
        feature_fraction: float = DEFAULTS["feature_fraction"],
        bagging_fraction: float = DEFAULTS["bagging_fraction"],
        lambda_l2: float = DEFAULTS["lambda_l2"],
        balance_classes: bool = DEFAULTS["balance_classes"],
        n_estimators: int = DEFAULTS["n_estimators"],
        early_stopping_rounds: int = DEFAULTS["early_stopping_rounds"],
        calibration: str = DEFAULTS["calibration"],
        random_state: int = DEFAULTS["seed"],
        calibration_folds: int = 3,
        n_jobs: int | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.balance_classes = balance_classes
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.random_state = random_state
        self.calibration_folds = calibration_folds
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        """Missing values are fine (LightGBM routes them); labels must be binary."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    def model_config(self) -> ModelConfig:
        """These parameters as the `[model]` section `churnmodel train` reads."""
        values = {name: getattr(self, name) for name in PARAMETERS}
        return ModelConfig(**values, seed=self.random_state)

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        eval_set: tuple[Any, Any] | None = None,
        categorical_features: str | Sequence[str] = "auto",
    ) -> ChurnClassifier:
        """Grow the trees on `X`, `y` and calibrate them.

        `eval_set` = (X_valid, y_valid): trees stop growing when the
        validation ROC AUC has not improved for `early_stopping_rounds`,
        the best count is kept, and the calibration is fitted on those rows.
        Without it, `n_estimators` trees are grown and the calibration is
        cross-fitted over `calibration_folds` folds of `X`.

        `categorical_features`: "auto" takes a DataFrame's category columns;
        a column name or a list of them are treated as categories (numpy
        input names its columns x0, x1, ...).
        """
        self._validate_params()  # "The 'learning_rate' parameter ... must be ... Got ... instead."
        frame = self._frame(X, reset=True, categorical=categorical_features)
        labels = self._labels(y, frame)
        params = lightgbm_params(self.model_config()) | {"num_threads": self.n_jobs or 0}
        if eval_set is not None:
            valid, valid_labels = self._eval_rows(eval_set)
            booster, curve = fit_trees(
                frame,
                labels,
                params,
                self.n_estimators,
                (valid, valid_labels),
                self.early_stopping_rounds,
            )
            best = int(np.argmax(curve)) + 1 if curve else self.n_estimators
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
            raw, raw_labels = tree_log_odds(booster, valid), valid_labels
        else:
            booster, _ = fit_trees(frame, labels, params, self.n_estimators)
            raw, raw_labels = self._out_of_fold(frame, labels, params), labels
        self.booster_ = booster
        self.n_trees_ = booster.num_trees()
        kind = typing.cast(Calibration, self.calibration)  # checked by _validate_params
        self.calibrator_ = Calibrator.fit(kind, sigmoid(raw), raw_labels)
        self.model_ = ChurnModel("lightgbm", booster, None, 1.0, self.calibrator_)
        return self

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        """Calibrated probabilities, one row per customer: [stays, churns]."""
        check_is_fitted(self)
        return self.model_.predict_proba(self._frame(X, reset=False))

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """The more likely class per row: `classes_[1]` when its probability is above 0.5."""
        check_is_fitted(self)
        return np.asarray(self.classes_[(self.decision_function(X) > 0).astype(int)])

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """The log-odds of the calibrated probability of `classes_[1]`, per row.

        Positive exactly where `predict` says `classes_[1]`, and ranks rows as
        `predict_proba` does (calibration is monotone).
        """
        check_is_fitted(self)
        churn = np.clip(self.predict_proba(X)[:, 1], 1e-15, 1 - 1e-15)
        return np.asarray(np.log(churn) - np.log1p(-churn))

    def _eval_rows(self, eval_set: Any) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
        """(X_valid, y_valid) from `eval_set`, also given LightGBM's way as [(X_valid, y_valid)]."""
        if isinstance(eval_set, list) and len(eval_set) == 1:
            eval_set = eval_set[0]
        if not isinstance(eval_set, tuple | list) or len(eval_set) != 2:
            raise ValueError("eval_set must be (X_valid, y_valid)")
        valid = self._frame(eval_set[0], reset=False)
        labels = self._encode(column_or_1d(eval_set[1]))
        if len(labels) != len(valid):
            raise ValueError(
                f"eval_set: y_valid must hold one label per row of X_valid ({len(valid)}), "
                f"got {len(labels)}"
            )
        if len(np.unique(labels)) != 2:
            raise ValueError("eval_set: y_valid must hold both classes to stop early and calibrate")
        return valid, labels

    def _out_of_fold(
        self, frame: pd.DataFrame, labels: npt.NDArray[np.int64], params: dict[str, Any]
    ) -> npt.NDArray[np.float64]:
        """Log-odds of every row from trees that did not see it (for an honest calibration)."""
        raw = np.zeros(len(frame))
        folds = min(self.calibration_folds, int(np.bincount(labels).min()))
        if folds < 2:  # too few of one class to hold any out: calibrate on the fit itself
            booster, _ = fit_trees(frame, labels, params, self.n_estimators)
            return tree_log_odds(booster, frame)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for fit_rows, held_rows in splitter.split(frame, labels):
            booster, _ = fit_trees(
                frame.iloc[fit_rows], labels[fit_rows], params, self.n_estimators
            )
            raw[held_rows] = tree_log_odds(booster, frame.iloc[held_rows])
        return raw

    def _frame(
        self,
        X: Any,
        reset: bool,
        categorical: str | Sequence[str] = "auto",
    ) -> pd.DataFrame:
        """`X` as a DataFrame with the training columns; checks count and names like sklearn."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            frame = X.copy()
            frame.columns = frame.columns.map(str)  # LightGBM names features by text
        else:
            array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan")
            names = [f"x{i}" for i in range(array.shape[1])]
            if not reset and hasattr(self, "feature_names_in_"):  # fitted on a frame: by position
                names = [str(n) for n in self.feature_names_in_]
            frame = pd.DataFrame(array, columns=names)
        if reset:
            if isinstance(categorical, str) and categorical != "auto":
                categorical = [categorical]  # one column's name, not its letters
            named = [] if categorical == "auto" else [str(c) for c in categorical]
            unknown = sorted(set(named) - set(frame.columns))
            if unknown:
                raise ValueError(
                    f"categorical_features must name columns of X; got unknown {unknown}"
                )
            self.categorical_ = named
        for column in self.categorical_:
            frame[column] = frame[column].astype("category")
        return frame

    def _labels(self, y: Any, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        if y is None:
            raise ValueError("ChurnClassifier requires y to be passed, but the target y is None")
        labels = column_or_1d(y, warn=True)
        if len(labels) != len(frame):
            raise ValueError(
                f"y must hold one label per row of X ({len(frame)}), got {len(labels)}"
            )
        check_classification_targets(labels)
        classes = np.unique(labels)
        if len(classes) != 2:
            raise ValueError(
                "Only binary classification is supported: ChurnClassifier needs y to hold two "
                f"classes (churned or not), got {len(classes)} class"
                f"{'es' if len(classes) != 1 else ''}: {classes.tolist()[:5]}"
            )
        self.classes_ = classes
        return self._encode(labels)

    def _encode(self, y: Any) -> npt.NDArray[np.int64]:
        """0 for the first class, 1 for the second (the churners when y is 0/1 or False/True)."""
        labels = np.asarray(y)
        unknown = set(np.unique(labels).tolist()) - set(self.classes_.tolist())
        if unknown:
            raise ValueError(f"y holds labels not seen in fit: {sorted(unknown)[:5]}")
        return np.asarray(labels == self.classes_[1], dtype=np.int64)
