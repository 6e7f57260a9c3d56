"""Two trainings at once, interrupted promotions, dead runs: the registry ends in a clean state.

Real processes on one sqlite store, as two scheduler jobs started together
would run: the store is created once, promotions take turns under a lock
and compare again when the champion moved, and the champion afterwards is
the better model whichever finished first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import churnmodel as cm
from churnmodel import _io, cli, tracking
from churnmodel.data.simulate import SimulationParams, write_simulation

pytestmark = pytest.mark.slow

CONFIG = """
[data]
customers = "data/customers.parquet"
transactions = "data/transactions.parquet"
events = "data/events.parquet"

[model]
learning_rate = 0.15
n_estimators = 60
seed = {seed}

[cutoffs]
holdout = 2
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("concurrent")
    write_simulation(root / "data", SimulationParams(n_customers=600, seed=2))
    for seed in (1, 2):
        (root / f"churn{seed}.toml").write_text(CONFIG.format(seed=seed))
    return root


def _train_together(root: Path) -> None:
    """Start two `churnmodel train` processes at the same moment and wait for both."""
    command = [sys.executable, "-m", "churnmodel", "-q", "train", "--config"]
    processes = [
        subprocess.Popen(
            [*command, str(root / f"churn{seed}.toml")],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert "Traceback" not in output


def _registry(root: Path) -> tuple[dict[str, float], dict[str, str], str]:
    """Backtest ROC AUC and status per version, and the champion."""
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    auc = {r.data.tags["churnmodel.version"]: r.data.metrics["backtest_roc_auc"] for r in runs}
    status = {r.data.tags["churnmodel.version"]: r.info.status for r in runs}
    champion = MlflowClient().get_model_version_by_alias("churnmodel", "champion").version
    return auc, status, str(champion)


@pytest.fixture(scope="module")
def raced(shop: Path) -> list[tuple[dict[str, float], dict[str, str], str]]:
    """Two rounds of two trainings at once: round 1 creates the store, round 2 finds a champion."""
    rounds = []
    for _ in (1, 2):
        _train_together(shop)
        rounds.append(_registry(shop))
    return rounds


def test_two_trainings_at_once_on_a_new_then_an_existing_store(shop: Path, raced) -> None:
    for round_, (auc, status, champion) in enumerate(raced, start=1):
        assert len(auc) == 2 * round_
        assert set(status.values()) == {"FINISHED"}
        assert auc[champion] == max(auc.values()), (auc, champion)  # never worse over better
    assert (shop / "models" / "champion").read_text().strip() == f"churnmodel-v{champion}"
    debris = [p for p in (shop / "models").iterdir() if p.name.startswith(".churnmodel")]
    assert debris == []


def test_an_interrupted_promotion_is_repaired_by_the_next_run(
    shop: Path, raced, monkeypatch
) -> None:
    elsewhere = shop / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a scheduler's working folder, with no store of its own
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow exports the last one used
    config = cm.load_config(shop / "churn1.toml")  # its store: mlflow.db beside the file
    auc, _, champion = _registry(shop)
    older = next(v for v in auc if v != champion)
    pointer = shop / "models" / "champion"
    pointer.write_text(f"churnmodel-v{older}\n")  # killed between the alias and the export
    mlflow.set_tracking_uri(f"sqlite:///{elsewhere / 'other.db'}")  # some other global store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = cm.score(config)
    assert list(elsewhere.iterdir()) == []  # the repair asked the config's store, not this one
    assert run.model == f"churnmodel v{champion} (champion)"
    assert pointer.read_text().strip() == f"churnmodel-v{champion}"
    with tracking.promotion_lock(config.mlflow):
        assert tracking.reconcile_export("churnmodel", config.mlflow.export_dir) is None


def test_a_run_left_running_by_a_dead_process_is_marked_failed(shop: Path) -> None:
    config = cm.load_config(shop / "churn1.toml")
    experiment = tracking.use_tracking(config.mlflow)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = MlflowClient()
    orphan = client.create_run(
        experiment, tags={"churnmodel.host": _io.HOST, "churnmodel.pid": str(dead.pid)}
    )
    alive = client.create_run(
        experiment, tags={"churnmodel.host": _io.HOST, "churnmodel.pid": str(os.getpid())}
    )
    tracking.use_tracking(config.mlflow)  # what every later run does first
    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    client.set_terminated(alive.info.run_id)


def test_sigterm_ends_the_run_failed_and_exits_143(shop: Path) -> None:
    config = cm.load_config(shop / "churn1.toml")
    previous = signal.signal(signal.SIGTERM, cli._stop_on_sigterm)  # as `churnmodel` installs it
    try:
        with pytest.raises(SystemExit) as stopped, tracking.start_training_run(config) as run:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the signal interrupts this
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == cli.TERMINATED_EXIT_CODE == 143
    assert MlflowClient().get_run(run.run_id).info.status == "FAILED"
