"""Monitoring: PSI by hand, a shifted feature is flagged and a steady one is not, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnmodel.cli import ALERT_EXIT_CODE, app
from churnmodel.config import MonitorConfig
from churnmodel.features.catalog import FeatureSpec
from churnmodel.monitoring import drift_alerts, feature_drift, feature_profile, ignored, psi
from tests.conftest import assert_modes_follow_the_umask

runner = CliRunner()
SPECS = (
    FeatureSpec("steady", "test", "a feature that does not move"),
    FeatureSpec("shifted", "test", "a feature whose values move up"),
    FeatureSpec("plan", "test", "a category that gains a new value", "category"),
)


def features(n: int, seed: int, shift: float = 0.0, new_plan_share: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plans = rng.choice(["basic", "pro"], size=n, p=[0.7, 0.3]).astype(object)
    plans[: int(new_plan_share * n)] = "enterprise"
    steady = rng.normal(size=n)
    steady[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "steady": steady,
            "shifted": rng.normal(loc=shift, size=n),
            "plan": pd.Categorical(plans),
        }
    )


def test_psi_by_hand() -> None:
    """Training deciles of 0..99 are 9.9, 19.8, ...; scoring rows all above 89.1 land in bin 10.

    Training shares: 0.1 in each of the ten bins, nothing missing. Scoring:
    everything in the last bin. PSI = 9 x (0.0001 - 0.1) ln(0.0001 / 0.1)
    + (1 - 0.1) ln(1 / 0.1).
    """
    train = pd.DataFrame({"x": np.arange(100, dtype=float)})
    spec = (FeatureSpec("x", "test", "x"),)
    profile = feature_profile(train, spec)
    assert profile["x"]["shares"] == pytest.approx([0.1] * 10 + [0.0])
    now = pd.DataFrame({"x": np.full(50, 95.0)})
    expected = 9 * (0.0001 - 0.1) * np.log(0.0001 / 0.1) + 0.9 * np.log(10)
    assert feature_drift(profile, now)["psi"].iloc[0] == pytest.approx(expected)
    assert psi(np.array([0.25, 0.75]), np.array([0.25, 0.75])) == 0.0


def test_a_shifted_feature_is_flagged_and_a_steady_one_is_not() -> None:
    profile = feature_profile(features(20_000, seed=1), SPECS)
    now = features(5_000, seed=2, shift=1.0, new_plan_share=0.1)
    drift = feature_drift(profile, now).set_index("feature")
    assert drift.loc["steady", "psi"] < 0.01
    assert drift.loc["shifted", "psi"] > 0.25
    assert drift.loc["steady", "missing_train"] == pytest.approx(0.1, abs=0.01)
    assert drift.loc["plan", "unseen_category_share"] == pytest.approx(0.1)
    alerts = drift_alerts(drift.reset_index(), MonitorConfig())
    assert [a.split(":")[0] for a in alerts] == ["shifted", "plan", "plan"]  # PSI, then unseen
    by_design = drift_alerts(drift.reset_index(), MonitorConfig(ignore=["shift*", "pla?"]))
    assert by_design == []


def test_features_that_drift_by_design_are_ignored_by_default() -> None:
    names = pd.Series(
        ["tenure_days", "tx_tenure_days", "contract_start_age_days", "tx_count_total",
         "nps_count", "tx_p_alive", "tx_expected_purchases_90d",
         "tx_count_90d", "ev_login_count_30d", "nps_last", "days_since_last_tx"]
    )  # fmt: skip
    assert ignored(names, MonitorConfig().ignore).tolist() == [True] * 7 + [False] * 4


def test_more_missing_values_are_flagged() -> None:
    profile = feature_profile(features(10_000, seed=1), SPECS)
    now = features(5_000, seed=3)
    now.loc[: len(now) // 3, "steady"] = np.nan  # 10 % missing in training, ~40 % now
    alerts = drift_alerts(feature_drift(profile, now), MonitorConfig(psi=10))
    assert len(alerts) == 1 and alerts[0].startswith("steady: missing 4")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("monitor")
    result = runner.invoke(
        app, ["simulate", "--customers", "1500", "--seed", "8", "--out", str(root / "data")]
    )
    assert result.exit_code == 0, result.output
    (root / "churn.toml").write_text(
        f"""
[data]
customers = "data/customers.parquet"
transactions = "data/transactions.parquet"
events = "data/events.parquet"

[label]
horizon_days = 60

[model]  # quality is not what these tests measure: fewer, faster trees, two backtest folds
learning_rate = 0.15
n_estimators = 300

[cutoffs]
holdout = 2

[mlflow]
tracking_uri = "sqlite:///{root / "mlflow.db"}"
export_dir = "{root / "models"}"
"""
    )
    result = runner.invoke(app, ["train", "--config", str(root / "churn.toml")])
    assert result.exit_code == 0, result.output
    return root


def monitor(root: Path, *args: str):
    return runner.invoke(
        app, ["monitor", "--config", str(root / "churn.toml"), "--out", str(root / "mon"), *args]
    )


@pytest.mark.slow
def test_monitor_end_to_end_with_live_results_and_threshold_exit_codes(trained: Path) -> None:
    as_of = "2025-10-01"
    listed = runner.invoke(
        app,
        [
            "score",
            "--config",
            str(trained / "churn.toml"),
            "--as-of",
            as_of,
            "--out",
            str(trained / "past"),
        ],
    )
    assert listed.exit_code == 0, listed.output
    # day one, right after training: tenure, lifetime totals and ages drift by design, no alarm
    day_one = monitor(trained)
    assert day_one.exit_code == 0, day_one.output
    page = (trained / "mon" / "monitor.html").read_text()
    assert "No alerts" in page and "no (drifts by design)" in page
    drift = pd.read_csv(trained / "mon" / "drift.csv").set_index("feature")
    assert drift.loc["tx_tenure_days", "ignored"] and not drift.loc["tx_count_90d", "ignored"]
    assert_modes_follow_the_umask(trained / "mon")
    first = monitor(
        trained, "--as-of", "2025-12-01", "--scored", str(trained / "past" / "outreach.parquet")
    )
    summary = json.loads((trained / "mon" / "monitor.json").read_text())
    assert first.exit_code == (ALERT_EXIT_CODE if summary["alerts"] else 0), first.output

    # the live churn rate is the listed customers' realised churn, counted directly
    outreach = pd.read_parquet(trained / "past" / "outreach.parquet")
    tx = pd.read_parquet(trained / "data" / "transactions.parquet")
    start = pd.Timestamp(as_of, tz="UTC")
    window = tx[(tx.timestamp >= start) & (tx.timestamp < start + pd.Timedelta(days=60))]
    churned = ~outreach["customer_id"].isin(window["customer_id"])
    (live,) = summary["live"]
    assert live["rows"] == len(outreach) and live["unlabelled"] == 0
    assert live["churn_rate"] == pytest.approx(churned.mean())
    assert 0.6 < live["roc_auc"] <= 1

    # the exit code follows the configured PSI limit on either side of the largest PSI
    max_psi = summary["max_psi"]
    config = (trained / "churn.toml").read_text()
    for limit, code in ((max_psi * 1.01, 0), (max_psi * 0.99, ALERT_EXIT_CODE)):
        (trained / "churn.toml").write_text(
            config + f"\n[monitor]\npsi = {limit}\nmissing_increase = 1\nnew_categories = 1\n"
            "auc_drop = 1\nmax_ece = 1\n"
        )
        result = monitor(trained, "--as-of", "2025-12-01")
        assert result.exit_code == code, result.output
    (trained / "churn.toml").write_text(config)


@pytest.mark.slow
def test_monitor_flags_a_deliberately_shifted_feature(trained: Path) -> None:
    """Triple every amount: spend features move far, visit counts stay where they were."""
    data = trained / "data"
    tx = pd.read_parquet(data / "transactions.parquet")
    tx.assign(amount=tx.amount * 3).to_parquet(data / "tripled.parquet")
    config = (trained / "churn.toml").read_text()
    (trained / "shifted.toml").write_text(config.replace("transactions.parquet", "tripled.parquet"))
    result = runner.invoke(
        app,
        [
            "monitor",
            "--config",
            str(trained / "shifted.toml"),
            "--as-of",
            "2025-12-01",
            "--out",
            str(trained / "mon-shifted"),
        ],
    )
    assert result.exit_code == ALERT_EXIT_CODE, result.output
    shifted = pd.read_csv(trained / "mon-shifted" / "drift.csv").set_index("feature")
    assert shifted.filter(like="amount", axis=0)["psi"].max() > 1
    assert shifted.loc["tx_count_90d", "psi"] < 0.25
    assert "tx_amount" in result.output and "ALERT" in result.output
