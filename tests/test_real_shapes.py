"""Data shaped nothing like the demo's, with a config that only names the tables.

The foreign-shape generator (`churnmodel.data.foreign`) was written apart
from the defaults: its own event types, no `value`, no surveys or tickets,
seven months of history, numeric attributes, 2 % monthly churn driven by
ratios of usage. The defaults must train and score on it without any other
setting, and the shipped model must not lose to a baseline on the backtest.
The minimal tables each train and score too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import churnmodel as cm
from churnmodel.cli import app
from churnmodel.config import MlflowConfig, RunConfig
from churnmodel.data.foreign import simulate_retail, simulate_subscription, tables
from churnmodel.workflows import score, train

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
BASELINES = ("recency", "tenure", "logistic", "counts", "rfm")
TOLERANCE = 0.005


def _write(folder: Path, data: dict[str, pd.DataFrame]) -> str:
    """Parquet files plus a config that names the tables and nothing else."""
    folder.mkdir(parents=True)
    for name, table in data.items():
        table.to_parquet(folder / f"{name}.parquet")
    lines = ["[data]", *(f'{name} = "{name}.parquet"' for name in data)]
    lines += [
        "[mlflow]",
        f'tracking_uri = "sqlite:///{folder}/mlflow.db"',
        f'export_dir = "{folder}/models"',
    ]
    (folder / "churn.toml").write_text("\n".join(lines) + "\n")
    return str(folder / "churn.toml")


def _candidates(folder: Path) -> pd.DataFrame:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db")
    run = client.search_runs(client.get_experiment_by_name("churnmodel").experiment_id)[0]
    path = client.download_artifacts(run.info.run_id, "evaluation/candidates.csv")
    return pd.read_csv(path).set_index("candidate")


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("subscription", id="subscription: 7 months, own event types, 2 % churn"),
        pytest.param("retail", id="retail: transactions only, 12 months"),
    ],
)
def test_names_only_config_trains_scores_and_never_loses_to_a_baseline(tmp_path, kind) -> None:
    data = (
        simulate_subscription(2_000, seed=7)
        if kind == "subscription"
        else simulate_retail(6_000, seed=7)
    )
    folder = tmp_path / kind
    config = _write(folder, tables(data))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--config", config], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    candidates = _candidates(folder)
    shipped = candidates[candidates["shipped"]]
    assert len(shipped) == 1
    best_baseline = candidates.loc[[b for b in BASELINES if b in candidates.index], "roc_auc"].max()
    assert shipped["roc_auc"].iloc[0] >= best_baseline - TOLERANCE
    assert shipped["roc_auc"].iloc[0] > 0.6  # the planted signal is found
    out = folder / "out"
    scored = runner.invoke(
        app, ["score", "--config", config, "--out", str(out)], catch_exceptions=False
    )
    assert scored.exit_code == 0, scored.output
    listed = pd.read_parquet(out / "outreach.parquet")
    left_out = [
        pd.read_csv(out / name, dtype={"customer_id": str})["customer_id"]
        for name in ("not_scored.csv", "winback.csv")
    ]
    everyone = set().union(*(set(t["customer_id"].astype(str)) for t in tables(data).values()))
    assert set(listed["customer_id"]).union(*left_out) == everyone
    assert len(listed) + sum(len(ids) for ids in left_out) == len(everyone)
    assert listed["churn_probability"].between(0, 1).all()


def _minimal(case: str) -> tuple[dict[str, pd.DataFrame], RunConfig]:
    data = cm.simulate(800, seed=13).as_tables()
    events = data["events"]
    if case == "events without value":
        return {**data, "events": events.drop(columns="value")}, RunConfig()
    if case == "events without surveys or tickets":
        kept = events[events["event_type"].isin(["login", "feature_use"])]
        return {**data, "events": kept.drop(columns="value")}, RunConfig()
    if case == "customers with only an id":
        return {**data, "customers": data["customers"][["customer_id"]]}, RunConfig()
    if case == "transactions only":
        return {"transactions": data["transactions"]}, RunConfig()
    contract = cm.simulate(800, seed=13, business="contractual").as_tables()
    return {
        "customers": contract["customers"][["customer_id"]],
        "churn": contract["churn"],
        "events": contract["events"],
    }, RunConfig()


@pytest.mark.parametrize(
    "case",
    [
        "events without value",
        "events without surveys or tickets",
        "customers with only an id",
        "transactions only",
        "contract without signup dates",
    ],
)
def test_minimal_tables_train_and_score(tmp_path, case) -> None:
    sources, config = _minimal(case)
    store = MlflowConfig(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", export_dir=tmp_path / "models"
    )
    config = config.model_copy(update={"mlflow": store})
    outcome = train(config, sources=sources)
    assert outcome.decision.promote
    metrics = outcome.result.backtest.metrics
    assert metrics["model"].roc_auc > 0.6
    # the refit uses every labelled cutoff, and no label window that ends after the data
    last = max(t["timestamp"].max() for n, t in sources.items() if n in ("transactions", "events"))
    until = pd.Timestamp(last.date()) + pd.Timedelta(days=1)
    horizon = pd.Timedelta(days=outcome.config.label.horizon)
    refit = outcome.result.cutoffs["cutoff"]
    assert (refit + horizon <= until).all()
    assert refit.max() + pd.Timedelta(days=31) + horizon > until  # the newest labelled month
    run = score(config, sources=sources)
    assert len(run.outreach) > 0
    assert run.counts()["input customers"] == run.counts()["scored"] + sum(
        n for k, n in run.counts().items() if k.startswith("not scored")
    )
