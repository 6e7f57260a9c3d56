"""The library face: light imports, the verbs at the top, a side-effect-free `fit`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import churnmodel as cm
from churnmodel import workflows
from churnmodel.config import parse_config
from churnmodel.errors import ConfigError
from churnmodel.outreach.export import filter_outreach
from churnmodel.registry.bundle import load_bundle, save_bundle

HEAVY = ("mlflow", "optuna", "matplotlib", "pyspark")


def _loaded_after(code: str) -> list[str]:
    """Which heavy packages a fresh interpreter holds after running `code`."""
    loaded = f"sorted(m for m in {HEAVY!r} if m in sys.modules)"
    probe = f"{code}\nimport sys, json\nprint(json.dumps({loaded}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_package_or_a_bundle_loads_nothing_heavy() -> None:
    assert _loaded_after("import churnmodel") == []
    # what a Spark worker imports to unpickle the broadcast model
    assert _loaded_after("import churnmodel.registry.bundle") == []
    assert _loaded_after("import churnmodel.cli") == []


def test_the_command_line_imports_only_typer_rich_and_the_config() -> None:
    probe = (
        "import churnmodel.cli, sys\n"
        "print(sorted(m for m in ('pandas', 'ibis', 'lightgbm', 'duckdb', 'sklearn') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_verb_is_reachable_from_the_top() -> None:
    verbs = {
        "check": workflows.check_data,
        "build_features": workflows.build_features,
        "fit": workflows.fit,
        "train": workflows.train,
        "evaluate": workflows.evaluate,
        "score": workflows.score,
        "monitor": workflows.monitor,
        "kpis": workflows.compute_kpis,
    }
    for name, function in verbs.items():
        assert getattr(cm, name) is function, name
        assert name in cm.__all__ and name in dir(cm)
    with pytest.raises(AttributeError, match="has no attribute 'trian'"):
        cm.trian  # noqa: B018


@pytest.fixture(scope="module")
def features():
    tables = cm.simulate(700, seed=8).as_tables()
    sources = {name: frame for name, frame in tables.items() if frame is not None}
    config = parse_config({"cutoffs": {"holdout": 2}, "model": {"n_estimators": 80}}, "test")
    return cm.build_features(config, sources=sources)


def test_fit_backtests_and_refits_without_writing_anything(
    features, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fitted = cm.fit(features)
    assert list(tmp_path.iterdir()) == []  # no MLflow store, no export, no scratch files
    metrics = fitted.metrics
    assert {"model", "recency", "tenure", "rfm"} <= set(metrics)
    held = fitted.held
    assert len(held) == len(fitted.result.backtest.rows)
    baselines = [c.name for c in fitted.result.backtest.candidates if c.baseline]
    assert all(metrics["model"].roc_auc >= metrics[b].roc_auc for b in baselines)
    probabilities = fitted.bundle.predict(held)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    saved = load_bundle(save_bundle(fitted.bundle, tmp_path / "bundle"))
    assert np.array_equal(saved.predict(held), probabilities)


def test_library_errors_name_parameters_not_command_line_options(features) -> None:
    frame = features.matrix.frame.head(0).assign(risk_tier=[], segment=[])
    with pytest.raises(ConfigError) as info:
        filter_outreach(frame, tiers=["hihg"])
    assert str(info.value).startswith("tiers: unknown ['hihg']")
    assert "--" not in str(info.value)


def test_fit_refuses_what_the_features_were_built_without(features) -> None:
    with pytest.raises(ConfigError, match="expected the features of `build_features"):
        cm.fit(cm.RunConfig())
    other = parse_config({"label": {"horizon_days": 30}}, "test")
    with pytest.raises(ConfigError, match=r"label.horizon_days: features \d+, config 30"):
        cm.fit(features, other)


def test_fit_takes_the_backtest_folds_from_the_config_it_is_given(features) -> None:
    three = parse_config({"cutoffs": {"holdout": 3}, "model": {"n_estimators": 40}}, "test")
    fitted = cm.fit(features, three)
    assert len(fitted.result.backtest.folds) == 3
    assert fitted.bundle.config.cutoffs.holdout == 3
    assert repr(fitted).startswith("FittedModel(winner=") and len(repr(fitted)) < 200
