"""`ChurnClassifier` behaves as scikit-learn users expect, with the package's own defaults."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import check_estimator

from churnmodel import ChurnClassifier
from churnmodel.config import ModelConfig

SMALL = {"n_estimators": 20, "min_child_samples": 2, "num_leaves": 4, "learning_rate": 0.3}
"""Settings that let trees split on the few dozen rows scikit-learn's checks use."""


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, np.ndarray]:
    """2,000 customers whose churn follows recency and plan, with missing values."""
    rng = np.random.default_rng(4)
    n = 2_000
    frame = pd.DataFrame(
        {
            "days_since_last_tx": rng.exponential(40, n),
            "logins_30d": rng.poisson(6, n).astype(float),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "team"], n)),
        }
    )
    frame.loc[rng.random(n) < 0.1, "logins_30d"] = np.nan
    logit = 0.04 * frame["days_since_last_tx"] - 2.5 + (frame["plan"] == "basic") * 1.0
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, labels.to_numpy()


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_passes_scikit_learns_estimator_checks() -> None:
    results = check_estimator(ChurnClassifier(**SMALL), on_fail=None, on_skip=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert failed == []
    assert len([r for r in results if r["status"] == "passed"]) >= 50


def test_defaults_are_the_model_sections() -> None:
    params = ChurnClassifier().get_params()
    config = ModelConfig()
    for name, value in params.items():
        expected = config.seed if name == "random_state" else getattr(config, name, None)
        if name != "calibration_folds":
            assert value == expected, name
    assert ChurnClassifier(learning_rate=0.1).model_config().learning_rate == 0.1


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"learning_rate": 2.0},
            r"'learning_rate' parameter .* must be a float in the range \(0.0, 1.0\]",
        ),
        ({"num_leaves": 1}, r"'num_leaves' parameter .* must be an int in the range \[2, inf\)"),
        ({"calibration": "sigmoid"}, r"'calibration' parameter .* must be a str among"),
        (
            {"balance_classes": "yes"},
            r"'balance_classes' parameter .* must be an instance of 'bool'",
        ),
    ],
)
def test_bad_parameters_say_what_was_expected(customers, setting, message) -> None:
    frame, labels = customers
    with pytest.raises(InvalidParameterError, match=message):
        ChurnClassifier(**setting).fit(frame, labels)


def test_fits_inside_pipelines_cross_validation_and_grid_search(customers) -> None:
    frame, labels = customers
    model = ChurnClassifier(n_estimators=60, min_child_samples=20)
    scores = cross_val_score(model, frame, labels, cv=3, scoring="roc_auc")
    assert scores.mean() > 0.75  # the simulated effect is strong: a random ranking gives 0.5
    pipeline = make_pipeline(FunctionTransformer(lambda x: x), clone(model))
    pipeline.fit(frame, labels)
    assert pipeline.predict_proba(frame).shape == (len(frame), 2)
    search = GridSearchCV(model, {"num_leaves": [3, 7]}, cv=2, scoring="roc_auc").fit(frame, labels)
    assert search.best_params_["num_leaves"] in (3, 7)


def test_round_trips_through_joblib(customers, tmp_path) -> None:
    frame, labels = customers
    model = ChurnClassifier(n_estimators=40).fit(frame, labels)
    joblib.dump(model, tmp_path / "churn.joblib")
    loaded = joblib.load(tmp_path / "churn.joblib")
    assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert loaded.get_params() == model.get_params()
    assert list(loaded.feature_names_in_) == ["days_since_last_tx", "logins_30d", "plan"]


def test_early_stopping_on_an_eval_set_keeps_the_best_trees(customers) -> None:
    frame, labels = customers
    train, valid = slice(0, 1_500), slice(1_500, None)
    model = ChurnClassifier(n_estimators=2_000, early_stopping_rounds=20, learning_rate=0.2)
    model.fit(frame[train], labels[train], eval_set=(frame[valid], labels[valid]))
    assert 1 <= model.n_trees_ < 2_000
    probabilities = model.predict_proba(frame[valid])[:, 1]
    assert roc_auc_score(labels[valid], probabilities) > 0.75
    assert ((probabilities > 0) & (probabilities < 1)).all()  # Platt never says certain
    # calibrated on the held rows: the mean predicted rate is close to the observed one
    assert abs(probabilities.mean() - labels[valid].mean()) < 0.05


def test_named_categorical_features_and_labels_other_than_0_1(customers) -> None:
    frame, labels = customers
    as_text = frame.assign(plan=frame["plan"].astype(str))
    words = np.where(labels == 1, "churned", "stayed")
    model = ChurnClassifier(n_estimators=40).fit(as_text, words, categorical_features=["plan"])
    assert list(model.classes_) == ["churned", "stayed"]
    assert set(model.predict(as_text)) <= {"churned", "stayed"}
    # the positive class is the second in sorted order, as in scikit-learn: here "stayed"
    stays = model.predict_proba(as_text)[:, 1]
    assert roc_auc_score(words == "stayed", stays) > 0.75
    with pytest.raises(ValueError, match="categorical_features must name columns of X"):
        ChurnClassifier().fit(as_text, words, categorical_features=["region"])


def test_predict_agrees_with_decision_function_and_probabilities(customers) -> None:
    frame, labels = customers
    model = ChurnClassifier(n_estimators=30, min_child_samples=20).fit(frame, labels)
    decision = model.decision_function(frame)
    churn = model.predict_proba(frame)[:, 1]
    assert np.array_equal(model.predict(frame), model.classes_[(decision > 0).astype(int)])
    assert np.array_equal(np.argsort(decision, kind="stable"), np.argsort(churn, kind="stable"))


def test_a_model_fitted_on_a_frame_scores_an_array_by_position(customers) -> None:
    frame, labels = customers
    numbers = frame[["days_since_last_tx", "logins_30d"]]
    model = ChurnClassifier(n_estimators=20).fit(numbers, labels)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = model.predict_proba(numbers.to_numpy())
    assert np.array_equal(from_array, model.predict_proba(numbers))


def test_one_categorical_name_and_eval_set_mistakes_are_clear(customers) -> None:
    frame, labels = customers
    as_text = frame.assign(plan=frame["plan"].astype(str))
    model = ChurnClassifier(n_estimators=20).fit(as_text, labels, categorical_features="plan")
    assert model.categorical_ == ["plan"]
    with pytest.raises(ValueError, match="one label per row of X_valid"):
        ChurnClassifier(n_estimators=20).fit(frame, labels, eval_set=(frame[:50], labels[:40]))
    with pytest.raises(ValueError, match="both classes"):
        ChurnClassifier(n_estimators=20).fit(frame, labels, eval_set=(frame[:5], np.zeros(5)))
    with pytest.raises(ValueError, match=r"eval_set must be \(X_valid, y_valid\)"):
        ChurnClassifier(n_estimators=20).fit(frame, labels, eval_set=(frame,))
    lightgbm_style = [(frame[1_500:], labels[1_500:])]
    fitted = ChurnClassifier(n_estimators=50).fit(
        frame[:1_500], labels[:1_500], eval_set=lightgbm_style
    )
    assert fitted.n_trees_ <= 50
