"""End to end through the command line, as a user or a scheduler runs it."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from churnmodel.cli import app
from tests.conftest import assert_modes_follow_the_umask, assert_page_looks_right

pytestmark = pytest.mark.e2e
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    result = invoke("simulate", "--customers", "1500", "--seed", "3", "--out", str(root / "data"))
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output
    (root / "churn.toml").write_text(
        """
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
"""
    )
    return root


def test_features_writes_matrix_with_catalog_and_prints_summary(demo: Path) -> None:
    out = demo / "out" / "features.parquet"
    result = invoke("features", "--config", str(demo / "churn.toml"), "--out", str(out))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    catalog = json.loads(pq.read_schema(out).metadata[b"churnmodel.features"])
    assert [c["name"] for c in catalog] == list(frame.columns[3:])
    assert all(c["description"] for c in catalog)
    per_cutoff = frame.groupby("cutoff")["label"].mean()
    for cutoff, rate in per_cutoff.items():
        assert f"{cutoff:%Y-%m-%d}" in result.output
        assert f"{rate:.1%}" in result.output
    assert f"{len(frame):,} rows x {len(catalog)} features" in result.output
    assert not list(out.parent.glob(".*tmp"))  # no temporary file left behind


def test_cutoff_flags_override_the_schedule(demo: Path) -> None:
    out = demo / "two.parquet"
    args = ["--config", str(demo / "churn.toml"), "--out", str(out)]
    result = invoke("features", *args, "--cutoff", "2025-06-01", "--cutoff", "2025-03-15")
    assert result.exit_code == 0, result.output
    cutoffs = sorted(pd.read_parquet(out)["cutoff"].unique())
    assert cutoffs == [pd.Timestamp("2025-03-15"), pd.Timestamp("2025-06-01")]


def test_unobserved_cutoff_fails_with_one_line(demo: Path) -> None:
    result = runner.invoke(
        app, ["features", "--config", str(demo / "churn.toml"), "--cutoff", "2025-12-01"]
    )
    assert result.exit_code == 2
    assert "2025-12-01" in result.output and "label window" in result.output
    assert "Traceback" not in result.output


def test_config_typo_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[label]\nhorizon = 90\n")
    result = runner.invoke(app, ["features", "--config", str(config)])
    assert result.exit_code == 2
    assert "label.horizon" in result.output


def test_json_log_lines_for_a_scheduler(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[data]\ntransactions = "nowhere/tx.parquet"\n')
    result = runner.invoke(app, ["--log-json", "features", "--config", str(config)])
    assert result.exit_code == 2
    (line,) = [json.loads(text) for text in result.output.splitlines()]
    assert line["level"] == "error" and "table 'transactions'" in line["message"]
    assert dt.datetime.fromisoformat(line["time"]).tzinfo is not None


def test_a_config_folder_is_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", "--config", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder" in result.output


@pytest.mark.parametrize("command", ["score", "monitor", "kpis"])
def test_an_out_that_is_a_file_is_refused_before_any_work(demo: Path, command: str) -> None:
    taken = demo / "taken.txt"
    taken.write_text("not a folder")
    result = invoke(command, "--config", str(demo / "churn.toml"), "--out", str(taken))
    assert result.exit_code == 2, result.output
    assert f"--out {taken}: an existing file; expected a folder" in result.output
    assert taken.read_text() == "not a folder"


def test_export_from_a_file_that_is_not_a_list_is_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "outreach.parquet"
    garbage.write_text("this is not parquet")
    result = invoke("export", "--from", str(garbage), "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 2, result.output
    assert f"outreach list {garbage}: not a parquet file" in result.output


def test_missing_data_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[data]\ntransactions = "nowhere/tx.parquet"\n')
    result = runner.invoke(app, ["features", "--config", str(config)])
    assert result.exit_code == 2
    assert "table 'transactions'" in result.output and "does not exist" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("churnmodel ")


def test_memory_limit_must_look_like_a_size(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('[data]\nmemory_limit = "4GB\'; DROP TABLE x; --"\n')
    result = runner.invoke(app, ["features", "--config", str(config)])
    assert result.exit_code == 2
    assert "data.memory_limit" in result.output


@pytest.mark.slow
def test_train_then_evaluate_from_the_exported_folder(demo: Path, monkeypatch) -> None:
    monkeypatch.chdir(demo)  # the default sqlite store and models/ live beside churn.toml
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri sets it
    result = invoke("train", "--config", "churn.toml", "--tune", "2")
    assert result.exit_code == 0, result.output
    for scorer in ("model", "recency", "logistic"):
        assert scorer in result.output
    assert "promoted: there was no champion yet" in result.output
    assert (demo / "mlflow.db").is_file()
    assert (demo / "models" / "champion").read_text().strip() == "churnmodel-v1"
    assert not (demo / "mlruns").exists()  # never MLflow's file-store fallback

    again = invoke("train", "--config", "churn.toml")
    assert again.exit_code == 0, again.output
    assert "champion v1" in again.output  # re-scored on the same rows, shown in the table
    assert "churnmodel v2" in again.output

    evaluated = invoke("evaluate", "--config", "churn.toml", "--model", "models")
    assert evaluated.exit_code == 0, evaluated.output
    assert "evaluation run" in evaluated.output and "models" in evaluated.output
    assert_modes_follow_the_umask(demo / "models")

    # a scheduler in another folder finds the same store and models through the config's path
    elsewhere = demo / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scored = invoke("--quiet", "score", "--config", str(demo / "churn.toml"), "--out", "list")
    assert scored.exit_code == 0, scored.output
    assert scored.output == ""  # --quiet: no summary, no info lines
    assert (elsewhere / "list" / "outreach.parquet").is_file()
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / "models").exists()
    assert_modes_follow_the_umask(elsewhere / "list")


def test_evaluate_names_a_model_that_does_not_exist(
    demo: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = str(demo / "churn.toml")
    missing = runner.invoke(
        app, ["evaluate", "--config", config, "--model", "models:/nope@champion"]
    )
    assert missing.exit_code == 2
    assert "models:/nope@champion" in missing.output and "not found" in missing.output
    folder = runner.invoke(app, ["evaluate", "--config", config, "--model", str(tmp_path / "x")])
    assert folder.exit_code == 2
    assert "expected a model bundle" in folder.output


def test_kpis_writes_tables_charts_and_report(demo: Path) -> None:
    out = demo / "kpis"
    result = invoke(
        "kpis",
        "--config",
        str(demo / "churn.toml"),
        "--by",
        "plan",
        "--margin",
        "0.4",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    kpis = pd.read_parquet(out / "kpis.parquet")
    from_csv = pd.read_csv(out / "kpis.csv", encoding="utf-8-sig")
    assert len(from_csv) == len(kpis) and set(kpis["segment_by"]) == {"all", "plan"}
    overall = kpis[kpis["segment_by"] == "all"]
    # the printed table shows the same churn rate as the file, per month
    for period, churn in zip(overall["period"], overall["churn_rate"], strict=True):
        assert f"{period:%Y-%m}" in result.output
        assert f"{churn:,.1f}" in result.output
    clv = overall["aov"] * overall["purchase_frequency"] * overall["expected_lifespan_periods"]
    assert (overall["clv"] - 0.4 * clv).abs().max() < 1e-9
    cohorts = pd.read_parquet(out / "cohorts.parquet")
    assert (cohorts["active"] <= cohorts["cohort_size"]).all()
    assert {p.name for p in out.glob("*.png")} == {
        "retention.png",
        "revenue.png",
        "surveys.png",
        "cohorts.png",
        "churn_by_plan.png",
    }
    page = (out / "kpis.html").read_text()
    assert page.count("<img") == 5 and "Cohort retention" in page
    text = re.sub(r'src="data:[^"]+"', "", page)
    assert "e+0" not in text and "Customers at start" in text  # numbers and headers for people
    assert_modes_follow_the_umask(out)
    assert_page_looks_right(out / "kpis.html", demo)


def test_kpis_name_an_unknown_segment_attribute(demo: Path) -> None:
    result = invoke(
        "kpis",
        "--config",
        str(demo / "churn.toml"),
        "--by",
        "region",
        "--out",
        str(demo / "kpis-bad"),
    )
    assert result.exit_code == 2
    assert "table 'customers', column 'region'" in result.output
    assert not (demo / "kpis-bad").exists()
