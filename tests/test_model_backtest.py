"""The rolling-origin backtest, the candidates and the shipped model."""

from __future__ import annotations

import itertools
import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from churnmodel.config import ModelConfig
from churnmodel.errors import CutoffError
from churnmodel.model import linear
from churnmodel.model.backtest import (
    KEYS,
    _mean_curve,
    backtest_rows,
    cross_fitted,
    mean_over_cutoffs,
    measure_per_cutoff,
    plan_folds,
    run_backtest,
    training_rows,
)
from churnmodel.model.calibration import Calibrator, sigmoid
from churnmodel.model.candidates import Candidate, Part, candidate_set
from churnmodel.model.churn_model import ChurnModel
from churnmodel.model.linear import LinearScorer
from churnmodel.model.training import refit, train_and_evaluate

MONTHS = list(pd.date_range("2025-01-01", "2025-12-01", freq="MS"))
WEEKS = list(pd.date_range("2025-01-06", "2025-06-30", freq="7D"))


def test_folds_score_the_newest_cutoffs_with_models_trained_before_them() -> None:
    folds = plan_folds(MONTHS, horizon_days=90, folds=4)
    assert [f.scored for f in folds] == MONTHS[-4:]
    # scoring 2025-12-01: 2025-09-01 + 90 days = 2025-11-30 is in; 2025-10-01 + 90 is not
    assert folds[-1].train == tuple(MONTHS[:9])
    assert folds[0].train == tuple(MONTHS[:6])  # scoring 2025-09-01
    for fold in folds:
        assert all(c + pd.Timedelta(days=90) <= fold.scored for c in fold.train)


def test_weekly_folds_are_four_weeks_apart() -> None:
    folds = plan_folds(WEEKS, horizon_days=30, folds=4)
    scored = [f.scored for f in folds]
    assert scored[-1] == WEEKS[-1]
    assert [(b - a).days for a, b in itertools.pairwise(scored)] == [28, 28, 28]


def test_fewer_folds_when_the_history_is_short_and_an_error_when_none_fit() -> None:
    folds = plan_folds(MONTHS[:5], horizon_days=90, folds=4)
    # Jan 1 + 90 days = Apr 1 and Feb 1 + 90 days = May 2: April and May train on January
    assert [(f.scored, f.train) for f in folds] == [
        (MONTHS[3], (MONTHS[0],)),
        (MONTHS[4], (MONTHS[0],)),
    ]
    with pytest.raises(CutoffError, match="at least 90 days"):
        plan_folds(MONTHS[:3], horizon_days=90, folds=4)


def test_trees_are_chosen_at_the_peak_of_the_fold_average_curve() -> None:
    # a fold that stopped early counts as flat after its last value
    curve = _mean_curve([[0.6, 0.7, 0.8, 0.79], [0.5, 0.6]])
    assert curve == pytest.approx([0.55, 0.65, 0.7, 0.695])
    assert int(np.argmax(curve)) + 1 == 3


def test_metrics_are_means_over_cutoffs() -> None:
    rows = pd.DataFrame(
        {
            "customer_id": list("abcdabcd"),
            "cutoff": [MONTHS[0]] * 4 + [MONTHS[1]] * 4,
            "label": [1, 0, 0, 0, 1, 1, 0, 0],
            "good": [0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.1, 0.2],  # perfect at both cutoffs
            "half": [0.9, 0.1, 0.2, 0.3, 0.1, 0.2, 0.8, 0.7],  # perfect, then reversed
        }
    )
    table = measure_per_cutoff(rows, ["good", "half"])
    metrics = mean_over_cutoffs(table, rows)
    assert metrics["good"].roc_auc == 1.0
    assert metrics["half"].roc_auc == pytest.approx(0.5)  # (1 + 0) / 2
    assert metrics["half"].rows == 8 and metrics["half"].churn_rate == pytest.approx(3 / 8)


def test_cross_fitted_calibration_never_uses_a_folds_own_rows() -> None:
    log_odds = np.array([-2.0, -1.0, 1.0, 2.0, -2.0, -1.0, 1.0, 2.0])
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    fold_of = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    out = cross_fitted(log_odds, labels, fold_of, "platt")
    other = Calibrator.fit("platt", sigmoid(log_odds[4:]), labels[4:])
    assert out[:4] == pytest.approx(other.apply(sigmoid(log_odds[:4])))
    # a single fold has nothing else to learn from: raw probabilities
    assert cross_fitted(log_odds, labels, np.zeros(8, dtype=int), "platt") == pytest.approx(
        sigmoid(log_odds)
    )


def _frame(seed: int = 0, customers: int = 600) -> pd.DataFrame:
    """Monthly cutoffs; churn follows `signal` (and a bit of `noise`), `recency` alone is weak."""
    rng = np.random.default_rng(seed)
    rows = []
    for cutoff in MONTHS:
        signal = rng.normal(size=customers)
        churn = rng.random(customers) < sigmoid(2.5 * signal - 2.0)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": [f"c{i}" for i in range(customers)],
                    "cutoff": cutoff,
                    "label": churn.astype("int8"),
                    "signal": signal,
                    "noise": rng.normal(size=customers),
                    "days_since_last_tx": rng.exponential(30, customers) + 10 * churn,
                    "plan": pd.Categorical(rng.choice(["a", "b"], customers)),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


NAMES = ["signal", "noise", "days_since_last_tx", "plan"]


@pytest.fixture(scope="module")
def trained():
    frame = _frame()
    folds = plan_folds(MONTHS, 90, 4)
    config = ModelConfig(n_estimators=200, early_stopping_rounds=20)
    return frame, train_and_evaluate(frame, NAMES, folds, config, windows=[30])


def test_every_candidate_is_measured_on_the_same_backtest_rows(trained) -> None:
    frame, result = trained
    backtest = result.backtest
    assert {c.name for c in backtest.candidates} == {"lightgbm", "logistic", "blend", "recency"}
    scored = frame[frame["cutoff"].isin(MONTHS[-4:])]
    assert len(backtest.rows) == len(scored)
    assert set(backtest.per_cutoff["cutoff"]) == set(MONTHS[-4:])
    assert backtest.metrics["logistic"].roc_auc > 0.8  # the truth is linear in `signal`
    assert backtest.metrics["recency"].roc_auc < backtest.metrics["logistic"].roc_auc - 0.1


def test_another_scorer_is_measured_on_the_backtests_own_rows_in_any_frame_order(trained) -> None:
    """The champion and an evaluated model score `backtest_rows`; a shuffled frame changes nothing.

    The backtest stacks its rows fold by fold. Scoring the frame's rows in
    the frame's own order and putting them beside the backtest's columns
    paired each score with another customer's label (ROC AUC ~0.5).
    """
    frame, result = trained
    shuffled = frame.sample(frac=1.0, random_state=1)
    held = backtest_rows(shuffled, result.backtest)
    rows = result.backtest.rows
    assert held["customer_id"].tolist() == rows["customer_id"].tolist()
    assert held["cutoff"].tolist() == rows["cutoff"].tolist()
    assert held["label"].tolist() == rows["label"].tolist()
    scored = result.backtest.with_scores({"again": result.model.predict_proba(held[NAMES])[:, 1]})
    assert scored.metrics["again"].roc_auc > 0.8  # the refit model on rows it was fitted on
    assert held["plan"].dtype == frame["plan"].dtype


def test_the_best_candidate_ships_refit_on_every_cutoff(trained) -> None:
    frame, result = trained
    metrics = result.backtest.metrics
    best = max(result.backtest.candidates, key=lambda c: metrics[c.name].roc_auc)
    assert result.winner == best.name
    for candidate in result.backtest.candidates:
        assert metrics[result.winner].roc_auc >= metrics[candidate.name].roc_auc
    assert set(result.cutoffs["cutoff"]) == set(MONTHS)  # all labelled cutoffs, up to the newest
    model = result.model
    if model.booster is not None:
        assert model.trees == result.backtest.rounds["trees"]
    probabilities = model.predict_proba(frame[NAMES])[:, 1]
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_a_baseline_that_wins_the_backtest_is_what_ships() -> None:
    frame = _frame(seed=3)
    # only recency carries signal now; the other columns are noise
    frame["signal"] = np.random.default_rng(9).normal(size=len(frame))
    frame["days_since_last_tx"] = np.where(frame["label"] == 1, 60.0, 5.0) + np.random.default_rng(
        4
    ).exponential(20, len(frame))
    folds = plan_folds(MONTHS, 90, 2)
    config = ModelConfig(n_estimators=50, early_stopping_rounds=10)
    recency = next(c for c in candidate_set(frame, NAMES, [30]) if c.name == "recency")
    noise = Candidate("lightgbm", ((Part("trees", "trees", ("signal", "noise")), 1.0),))
    backtest = run_backtest(frame, [noise, recency], folds, config)
    assert backtest.metrics["recency"].roc_auc > backtest.metrics["lightgbm"].roc_auc + 0.2
    assert backtest.winner().name == "recency"


def test_same_data_and_seed_give_the_same_model() -> None:
    frame, folds = _frame(seed=5, customers=300), plan_folds(MONTHS, 90, 2)
    config = ModelConfig(n_estimators=60, early_stopping_rounds=10)
    first = train_and_evaluate(frame, NAMES, folds, config, windows=[30])
    second = train_and_evaluate(frame, NAMES, folds, config, windows=[30])
    assert first.winner == second.winner
    assert np.array_equal(
        first.model.predict_proba(frame[NAMES]), second.model.predict_proba(frame[NAMES])
    )


def test_a_large_fold_trains_on_the_same_share_of_every_cutoff_and_label() -> None:
    frame = _frame(seed=8, customers=300)
    fold = plan_folds(MONTHS, 90, 4)[-1]  # trains on 9 cutoffs: 2,700 rows
    every = training_rows(frame, fold, None, seed=0)
    assert np.array_equal(every, np.flatnonzero(frame["cutoff"].isin(fold.train)))
    assert np.array_equal(training_rows(frame, fold, len(every), seed=0), every)
    sample = training_rows(frame, fold, 700, seed=0)
    assert set(sample) < set(every) and np.array_equal(sample, np.unique(sample))
    share = 700 / len(every)
    wanted = frame.iloc[every].groupby(["cutoff", "label"]).size()
    kept = frame.iloc[sample].groupby(["cutoff", "label"]).size()
    assert kept.to_dict() == {k: math.ceil(share * n) for k, n in wanted.items()}
    assert 700 <= len(sample) <= 700 + len(wanted)  # rounded up once per stratum at most
    assert np.array_equal(training_rows(frame, fold, 700, seed=0), sample)
    assert not np.array_equal(training_rows(frame, fold, 700, seed=1), sample)


def test_sampled_folds_score_every_row_and_the_refit_uses_every_row(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame, folds = _frame(seed=9, customers=300), plan_folds(MONTHS, 90, 2)
    whole = ModelConfig(n_estimators=60, early_stopping_rounds=10, backtest_max_rows=None)
    sampled = whole.model_copy(update={"backtest_max_rows": 1_000})
    with caplog.at_level("INFO", logger="churnmodel.model.backtest"):
        result = train_and_evaluate(frame, NAMES, folds, sampled, windows=[30])
    full = run_backtest(frame, result.backtest.candidates, folds, whole)
    assert result.backtest.rows[KEYS].equals(full.rows[KEYS])  # the same scored rows
    assert not np.allclose(result.backtest.log_odds, full.log_odds)  # fitted on fewer rows
    kept = len(training_rows(frame, folds[0], 1_000, seed=0))
    assert f"scoring 2025-11-01: trained on {kept} of its 2400 rows" in caplog.text
    assert result.params["backtest_max_rows"] == 1_000
    winner = next(c for c in result.backtest.candidates if c.name == result.winner)
    again = refit(frame, winner, result.backtest.rounds, whole, result.model.calibrator)
    assert np.array_equal(
        again.predict_proba(frame[NAMES]), result.model.predict_proba(frame[NAMES])
    )


def test_linear_scorer_is_scikit_learns_logistic_regression_as_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = _frame(seed=1, customers=200)
    features = frame[NAMES]
    scorer = LinearScorer.fit(features, frame["label"], c=0.5, log=False)
    # the same design matrix by hand: standardised numbers, missing flags, one-hot plan
    numeric = features[["signal", "noise", "days_since_last_tx"]].to_numpy()
    design = np.column_stack(
        [
            block
            for column in numeric.T
            for block in ((column - column.mean()) / column.std(), np.zeros(len(column)))
        ]
        + [(features["plan"] == level).to_numpy(float) for level in ("a", "b")]
    )
    # the optimum itself (L-BFGS run to a tight tolerance), whichever solver the scorer uses
    reference = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(design, frame["label"])
    assert scorer.raw_score(features) == pytest.approx(
        reference.decision_function(design), abs=1e-6
    )
    # a column without gaps has no missing flag to learn: left out of the fit, weight 0
    assert {p.missing_weight for p in scorer.numeric.values()} == {0.0}
    # a design too wide for Newton steps goes to L-BFGS, which stops at a looser tolerance
    monkeypatch.setattr(linear, "NEWTON_MAX_COLUMNS", 0)
    wide = LinearScorer.fit(features, frame["label"], c=0.5, log=False)
    assert wide.raw_score(features) == pytest.approx(scorer.raw_score(features), abs=1e-2)
    # contributions add up to the score, measured from the average training row
    total = scorer.contributions(features).sum(axis=1) + scorer.expected()
    assert total.to_numpy() == pytest.approx(scorer.raw_score(features))
    assert LinearScorer.from_dict(scorer.to_dict()) == scorer


def test_unseen_and_missing_values_in_the_linear_scorer() -> None:
    frame = _frame(seed=2, customers=200)
    scorer = LinearScorer.fit(frame[NAMES], frame["label"], c=1.0)
    rows = frame[NAMES].head(5).copy()
    unseen = rows.assign(plan=pd.Categorical(["zzz"] * 5))
    missing = rows.assign(plan=pd.Categorical([None] * 5, categories=["a"]))
    assert scorer.raw_score(unseen) == pytest.approx(scorer.raw_score(missing))
    far = rows.assign(noise=1e12)  # one absurd value moves the score by at most 8 sd
    weight = abs(scorer.numeric["noise"].weight)
    assert np.abs(scorer.raw_score(far) - scorer.raw_score(rows)).max() <= 16 * weight + 1e-9


def test_a_blend_adds_the_parts_log_odds_and_their_contributions() -> None:
    frame = _frame(seed=6, customers=200)
    features, labels = frame[NAMES], frame["label"]
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "seed": 0, "min_child_samples": 20},
        lgb.Dataset(features, label=labels),
        num_boost_round=20,
    )
    linear = LinearScorer.fit(features, labels, c=1.0)
    model = ChurnModel("blend", booster, linear, 0.25, Calibrator("none"))
    trees = booster.predict(features, raw_score=True)
    expected = 0.25 * trees + 0.75 * linear.raw_score(features)
    assert model.log_odds(features) == pytest.approx(expected)
    contributions = model.contributions(features)
    tree_base = booster.predict(features, pred_contrib=True)[:, -1]
    base = 0.25 * tree_base + 0.75 * linear.expected()
    assert (contributions.sum(axis=1) + base).to_numpy() == pytest.approx(expected)
    assert model.importance().sum() == pytest.approx(1.0)
    assert model.categories()["plan"] == ["a", "b"]


def test_candidate_set_follows_the_columns() -> None:
    names = [
        "days_since_last_tx",
        "tx_count_365d",
        "tx_amount_sum_365d",
        "tenure_days",
        "ev_login_count_30d",
        "ev_error_count_30d",
        "ev_login_count_90d",
    ]
    frame = pd.DataFrame({n: [0.0] for n in names})
    found = {c.name: c for c in candidate_set(frame, names, [30, 90, 365])}
    assert set(found) == {"lightgbm", "logistic", "blend", "recency", "tenure", "rfm", "counts"}
    counts = found["counts"].parts[0][0]
    assert counts == Part(
        "counts", "trees", ("ev_login_count_30d", "ev_error_count_30d", "tenure_days")
    )
    assert found["rfm"].baseline and not found["lightgbm"].baseline
    only_events = candidate_set(pd.DataFrame({"x": [0.0]}), ["x"], [30])
    assert {c.name for c in only_events} == {"lightgbm", "logistic", "blend"}
    assert all(isinstance(c, Candidate) for c in only_events)


def test_no_fold_with_both_classes_is_a_clear_error() -> None:
    frame = _frame(seed=7, customers=50)
    frame["label"] = 0
    folds = plan_folds(MONTHS, 90, 2)
    with pytest.raises(CutoffError, match="churners and stayers"):
        run_backtest(frame, candidate_set(frame, NAMES, [30]), folds, ModelConfig())
    assert math.isfinite(0.0)
