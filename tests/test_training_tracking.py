"""Training runs end to end on real MLflow (sqlite tracking and registry) and real LightGBM."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

import churnmodel as cm
from churnmodel.config import MlflowConfig, RunConfig
from churnmodel.features.catalog import FeatureSpec
from churnmodel.features.matrix import FeatureMatrix
from churnmodel.model.evaluate import Metrics
from churnmodel.registry.bundle import load_bundle, locate_bundle
from churnmodel.workflows import FeatureRun, train

pytestmark = pytest.mark.slow

SCORERS = ("model", "lightgbm", "logistic", "blend", "recency", "tenure", "counts")
PLOTS = (
    "roc.png",
    "precision_recall.png",
    "gains_lift.png",
    "calibration.png",
    "importance_gain.png",
    "contributions.png",
)
ECE_BOUND = 0.05  # documented in the README


def tracked(config: RunConfig, root: Path, fast: bool = False) -> RunConfig:
    """The config with its own sqlite store and export folder under `root`.

    `fast`: fewer, faster trees, for tests of the procedure rather than of quality.
    """
    store = MlflowConfig(tracking_uri=f"sqlite:///{root}/mlflow.db", export_dir=root / "models")
    model = config.model.model_copy(update={"learning_rate": 0.15, "n_estimators": 300})
    return config.model_copy(update={"mlflow": store, **({"model": model} if fast else {})})


@pytest.fixture(scope="module")
def contractual() -> tuple[RunConfig, FeatureRun]:
    data = cm.simulate(4_000, seed=11, business="contractual")
    config = RunConfig()  # a churn table: contractual, found in the data
    return config, cm.build_features(config, sources=data.as_tables())


@pytest.fixture(scope="module")
def small_contractual() -> tuple[RunConfig, FeatureRun]:
    """Enough data to tell a real model from noise, quickly: for the promotion rules."""
    data = cm.simulate(1_500, seed=11, business="contractual")
    return RunConfig(), cm.build_features(RunConfig(), sources=data.as_tables())


@pytest.fixture(scope="module")
def first_training(contractual, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    config, features = contractual
    config = tracked(config, root)
    said = ("table 'events': 3 exact duplicate row(s) kept (set data.duplicates = 'drop' to drop)",)
    features = dataclasses.replace(features, findings=said)  # as the data-quality pass reports
    return config, features, train(config, features)


def test_model_beats_every_baseline_on_the_backtest_and_is_calibrated(first_training) -> None:
    _, _, outcome = first_training
    backtest = outcome.result.backtest
    metrics = backtest.metrics
    # annual renewals make churn risk non-linear in tenure: a linear model cannot follow it
    assert metrics["model"].roc_auc > metrics["logistic"].roc_auc + 0.05
    assert metrics["model"].roc_auc > metrics["recency"].roc_auc + 0.15
    for baseline in (c.name for c in backtest.candidates if c.baseline):
        assert metrics["model"].roc_auc >= metrics[baseline].roc_auc
    assert metrics["model"].ece < ECE_BOUND
    assert outcome.result.winner in {"lightgbm", "blend"}
    assert len(backtest.folds) == 4


def test_the_run_records_params_metrics_plots_candidates_and_model(first_training) -> None:
    config, features, outcome = first_training
    client = MlflowClient(config.mlflow.tracking_uri)
    run = client.get_run(outcome.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    result = outcome.result

    assert params["label.business"] == "contractual"  # decided from the data, logged as such
    assert params["label.horizon_days"] == "90"
    assert params["model.calibration"] == "platt"
    assert params["cutoffs.every"] == "1mo"
    assert params["data.observed_until"] == str(features.tables.observed_until)
    assert params["trained.winner"] == result.winner == tags["churnmodel.winner"]
    assert int(params["trained.trees_trees"]) == result.backtest.rounds["trees"]
    assert params["feature_count"] == str(len(features.matrix.specs))
    for scorer in SCORERS:
        for name in (f.name for f in dataclasses.fields(Metrics)):
            assert f"{scorer}_{name}" in metrics, f"{scorer}_{name}"
    assert metrics["model_roc_auc"] == pytest.approx(result.backtest.metrics["model"].roc_auc)
    frame = features.matrix.frame
    scored = [f.scored for f in result.backtest.folds]
    assert metrics["rows_backtest"] == frame["cutoff"].isin(scored).sum()
    assert metrics["churn_rate_train"] == pytest.approx(
        frame.loc[~frame["cutoff"].isin(scored), "label"].mean()
    )
    assert tags["churnmodel.leakage_suspected"] == "false"
    assert metrics["data_quality_warnings"] == 1
    quality = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/data/quality.txt")
    assert quality == features.findings[0] + "\n"

    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    assert artifacts == {f"plots/{p}" for p in PLOTS}
    logged_features = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/features.json")
    assert [f["name"] for f in logged_features["features"]] == features.matrix.feature_names
    assert {f["dtype"] for f in logged_features["features"]} == {"float64", "category"}
    cutoffs = _artifact_csv(run, "data/cutoffs.csv")
    assert cutoffs["rows"].sum() == len(frame)
    assert set(cutoffs["part"]) == {"train", "backtest"}
    candidates = _artifact_csv(run, "evaluation/candidates.csv")
    assert set(candidates["candidate"]) == {c.name for c in result.backtest.candidates}
    assert candidates.loc[candidates["shipped"], "candidate"].tolist() == [result.winner]
    per_cutoff = _artifact_csv(run, "evaluation/backtest.csv")
    assert len(per_cutoff) == len(scored) * len(result.backtest.scorers)

    info = mlflow.models.get_model_info(f"models:/churnmodel/{outcome.version}")
    assert info.signature.inputs.input_names() == features.matrix.feature_names
    assert info.saved_input_example_info is not None


def _artifact_csv(run, path: str) -> pd.DataFrame:
    return pd.read_csv(mlflow.artifacts.download_artifacts(f"{run.info.artifact_uri}/{path}"))


def test_the_registered_pyfunc_returns_the_calibrated_probabilities(first_training) -> None:
    config, features, outcome = first_training
    frame = features.matrix.frame
    held = frame[frame["cutoff"] == frame["cutoff"].max()]
    names = features.matrix.feature_names
    expected = outcome.result.model.predict_proba(held[names])[:, 1]
    pyfunc = mlflow.pyfunc.load_model(f"models:/churnmodel/{outcome.version}")
    as_text = held[names].astype(
        {s.name: "object" for s in features.matrix.specs if s.dtype == "category"}
    )
    assert np.allclose(np.asarray(pyfunc.predict(as_text)), expected, rtol=0, atol=1e-12)
    exported = load_bundle(locate_bundle(config.mlflow.export_dir))  # via the champion pointer
    assert np.array_equal(exported.predict(held), expected)


def test_promotion_gate_keeps_a_worse_challenger_and_promotes_a_better_one(
    small_contractual, tmp_path
) -> None:
    config, features = small_contractual
    config = tracked(config, tmp_path, fast=True)
    shuffled = _with_shuffled_labels(features)

    first = train(config, shuffled)  # no champion yet: becomes champion whatever it is
    assert first.decision.promote and first.champion.version is None
    # same data: the champion was trained on every backtest row, so backtests are compared
    better = train(config, features)
    assert better.decision.promote, better.decision.reason
    assert better.champion.version == first.version
    assert better.champion.roc_auc == pytest.approx(first.result.backtest.metrics["model"].roc_auc)
    worse = train(config, shuffled)
    assert not worse.decision.promote
    assert worse.champion.roc_auc == pytest.approx(better.result.backtest.metrics["model"].roc_auc)
    assert "own backtest" in worse.decision.reason

    client = MlflowClient(config.mlflow.tracking_uri)
    assert (
        str(client.get_model_version_by_alias("churnmodel", "champion").version) == better.version
    )
    assert (
        str(client.get_model_version_by_alias("churnmodel", "challenger").version) == worse.version
    )
    reason = client.get_run(worse.run_id).data.tags["churnmodel.promotion"]
    assert reason.startswith(f"kept champion v{better.version}")
    pointer = (config.mlflow.export_dir / "champion").read_text().strip()
    assert pointer == f"churnmodel-v{better.version}"

    forced = train(config, shuffled, force_promote=True)
    assert forced.decision.promote
    assert (
        str(client.get_model_version_by_alias("churnmodel", "champion").version) == forced.version
    )


def test_the_gate_compares_on_cutoffs_the_champion_never_saw(small_contractual, tmp_path) -> None:
    config, features = small_contractual
    config = tracked(config, tmp_path, fast=True)
    older = _until(features, sorted(set(features.matrix.frame["cutoff"]))[-3])
    champion = train(config, older)
    challenger = train(config, features)
    # the two newest cutoffs came after everything the champion was trained on
    assert "on 2 backtest cutoff(s) it was not trained on" in challenger.decision.reason
    rows = challenger.result.backtest.rows
    fresh = rows[rows["cutoff"] > older.matrix.frame["cutoff"].max()]
    by_hand = fresh.groupby("cutoff").apply(
        lambda part: roc_auc_score(part["label"], part["champion"]), include_groups=False
    )
    assert challenger.champion.roc_auc == pytest.approx(by_hand.mean())
    assert challenger.champion.version == champion.version


def test_same_data_config_and_seed_give_identical_predictions(first_training, tmp_path) -> None:
    config, features, outcome = first_training
    again = train(tracked(config, tmp_path), features)
    first, second = outcome.result.backtest.rows, again.result.backtest.rows
    assert np.array_equal(first["model"].to_numpy(), second["model"].to_numpy())
    frame = features.matrix.frame[features.matrix.feature_names]
    assert np.array_equal(
        outcome.result.model.predict_proba(frame), again.result.model.predict_proba(frame)
    )


def test_a_feature_read_from_the_label_window_raises_the_leakage_alarm(tmp_path, caplog) -> None:
    data = cm.simulate(1_500, seed=4)
    config = tracked(RunConfig(), tmp_path, fast=True)
    features = cm.build_features(config, sources=data.as_tables())
    leaky = _add_purchases_in_label_window(features, data.transactions, horizon_days=90)

    with caplog.at_level(logging.WARNING):
        outcome = train(config, leaky)

    assert outcome.result.leakage.suspected
    assert "purchases_next_90d" in outcome.result.leakage.suspects
    assert "possible label leakage" in caplog.text
    tags = MlflowClient(config.mlflow.tracking_uri).get_run(outcome.run_id).data.tags
    assert tags["churnmodel.leakage_suspected"] == "true"
    assert "purchases_next_90d" in tags["churnmodel.leakage"]


def _with_shuffled_labels(features: FeatureRun) -> FeatureRun:
    """Labels permuted within every cutoff: a model of noise."""
    frame = features.matrix.frame.copy()
    rng = np.random.default_rng(0)
    frame["label"] = frame.groupby("cutoff")["label"].transform(
        lambda s: rng.permutation(s.to_numpy())
    )
    return dataclasses.replace(features, matrix=FeatureMatrix(frame, features.matrix.specs))


def _until(features: FeatureRun, last: pd.Timestamp) -> FeatureRun:
    """The same run as if the data had ended earlier: cutoffs up to `last` only."""
    frame = features.matrix.frame
    kept = frame[frame["cutoff"] <= last].reset_index(drop=True)
    cutoffs = [c for c in features.cutoffs if pd.Timestamp(c) <= last]
    return dataclasses.replace(
        features, matrix=FeatureMatrix(kept, features.matrix.specs), cutoffs=cutoffs
    )


def _add_purchases_in_label_window(
    features: FeatureRun, transactions: pd.DataFrame, horizon_days: int
) -> FeatureRun:
    """The forbidden feature: purchases in [cutoff, cutoff + horizon), i.e. the label itself."""
    frame = features.matrix.frame
    tx = transactions.assign(day=transactions["timestamp"].dt.tz_convert(None))
    pairs = frame[["customer_id", "cutoff"]].merge(tx[["customer_id", "day"]], on="customer_id")
    inside = (pairs["day"] >= pairs["cutoff"]) & (
        pairs["day"] < pairs["cutoff"] + pd.Timedelta(days=horizon_days)
    )
    counts = pairs[inside].groupby(["customer_id", "cutoff"]).size().rename("purchases_next_90d")
    frame = frame.join(counts, on=["customer_id", "cutoff"])
    frame["purchases_next_90d"] = frame["purchases_next_90d"].fillna(0.0).astype("float64")
    spec = FeatureSpec("purchases_next_90d", "leak", "Purchases in the next 90 days")
    return dataclasses.replace(
        features, matrix=FeatureMatrix(frame, (*features.matrix.specs, spec))
    )
