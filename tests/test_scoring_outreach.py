"""Scoring and the outreach list, end to end: train -> register -> score -> export."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import churnmodel as cm
from churnmodel.cli import app
from churnmodel.data.simulate import SimulationParams, write_simulation
from churnmodel.outreach.build import COLUMNS
from churnmodel.outreach.export import OUTPUTS
from churnmodel.workflows import score, write_score_outputs
from tests.conftest import assert_modes_follow_the_umask

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
runner = CliRunner()
TABLES = ("customers", "transactions", "events")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def config_text(root: Path, data: Path, extra: str = "") -> str:
    tables = "\n".join(f'{t} = "{data}/{t}.parquet"' for t in TABLES)
    return f"""
[data]
{tables}

[mlflow]
tracking_uri = "sqlite:///{root}/mlflow.db"
export_dir = "{root}/models"
{extra}
"""


FAST = """
[model]  # quality is not what these tests measure: fewer, faster trees, two backtest folds
learning_rate = 0.15
n_estimators = 300

[cutoffs]
holdout = 2
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with simulated data, churn.toml, and a trained, registered, exported model."""
    root = tmp_path_factory.mktemp("scoring")
    write_simulation(root / "data", SimulationParams(n_customers=2_500, seed=5))
    (root / "churn.toml").write_text(config_text(root, root / "data", FAST))
    result = invoke("train", "--config", str(root / "churn.toml"))
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def scored(trained) -> Path:
    out = trained / "out"
    result = invoke("score", "--config", str(trained / "churn.toml"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "every input customer accounted for" in result.output
    return out


def input_customers(data: Path) -> set[str]:
    ids: set[str] = set()
    for table in TABLES:
        ids |= set(pd.read_parquet(data / f"{table}.parquet", columns=["customer_id"]).customer_id)
    return ids


def test_the_list_is_complete_ranked_and_explained(trained, scored) -> None:
    outreach = pd.read_parquet(scored / "outreach.parquet")
    not_scored = pd.read_csv(scored / "not_scored.csv", encoding="utf-8-sig", dtype=str)
    assert list(outreach.columns) == COLUMNS
    assert outreach["value_at_risk"].is_monotonic_decreasing
    assert outreach["churn_probability"].between(0, 1).all()
    assert outreach["customer_id"].is_unique
    # every input customer is either scored or listed with a reason, never both
    scored_ids, left_out = set(outreach["customer_id"]), set(not_scored["customer_id"])
    assert scored_ids.isdisjoint(left_out)
    assert scored_ids | left_out == input_customers(trained / "data")
    assert not_scored["reason"].str.len().gt(0).all()
    # reasons where promised (the high tier), each with the customer's own numbers
    explained = outreach[outreach["has_reasons"]]
    assert set(explained["risk_tier"]) == {"high"}
    assert len(explained) == (outreach["risk_tier"] == "high").sum()
    assert explained["reason_1"].str.contains(r"\d").all()
    assert explained["action"].str.len().gt(0).all()
    assert (outreach.loc[~outreach["has_reasons"], "reason_1"] == "").all()
    assert (
        outreach["value_at_risk"] - outreach["churn_probability"] * outreach["value_12m"]
    ).abs().max() < 0.01
    assert outreach["health_score"].between(0, 100).all()
    csv = pd.read_csv(scored / "outreach.csv", encoding="utf-8-sig", dtype={"customer_id": str})
    assert csv["customer_id"].tolist() == outreach["customer_id"].tolist()
    report = (scored / "report.html").read_text()
    assert "<img" in report and "data:image/png;base64," in report and "http" not in report


def test_reasons_quote_the_customers_own_numbers(trained) -> None:
    config = cm.load_config(trained / "churn.toml")
    run = score(config, model=str(trained / "models"))
    features = run.scores.frame.set_index("customer_id")
    checked = 0
    patterns = {
        r"No purchase for (\d+) days": "days_since_last_tx",
        r"Not seen in the product for (\d+) days": "days_since_last_event",
    }
    for row in run.outreach[run.outreach["has_reasons"]].itertuples():
        for text in (row.reason_1, row.reason_2, row.reason_3):
            for pattern, feature in patterns.items():
                if match := re.match(pattern, text):
                    assert int(match.group(1)) == round(features.loc[row.customer_id, feature])
                    checked += 1
    assert checked >= 10


def test_scoring_twice_gives_byte_identical_files(trained, scored) -> None:
    again = trained / "again"
    result = invoke("score", "--config", str(trained / "churn.toml"), "--out", str(again))
    assert result.exit_code == 0, result.output
    for name in OUTPUTS:
        assert (scored / name).read_bytes() == (again / name).read_bytes(), name


def test_the_list_and_the_exported_model_are_readable_as_the_umask_allows(trained, scored):
    assert_modes_follow_the_umask(scored)
    assert_modes_follow_the_umask(trained / "models")


def test_export_cuts_a_shorter_list_in_the_same_order(scored) -> None:
    short = scored / "top.csv"
    args = ["--from", str(scored / "outreach.parquet"), "--out", str(short)]
    result = invoke("export", *args, "--top", "20", "--tier", "high", "--min-probability", "0.5")
    assert result.exit_code == 0, result.output
    full = pd.read_parquet(scored / "outreach.parquet")
    expected = full[(full["risk_tier"] == "high") & (full["churn_probability"] >= 0.5)].head(20)
    got = pd.read_csv(short, encoding="utf-8-sig", dtype={"customer_id": str})
    assert got["customer_id"].tolist() == expected["customer_id"].tolist()
    assert f"{len(expected):,} of {len(full):,} customers" in result.output
    typo = invoke("export", *args, "--tier", "hihg")
    assert typo.exit_code == 2
    assert "--tier: unknown ['hihg']; expected some of high, medium, low" in typo.output


@pytest.mark.parametrize(
    ("extra", "args", "message"),
    [
        ("", ["--model", "models:/churnmodel@nope"], "not found"),
        ("", ["--model", "/nowhere/model"], "expected a model bundle"),
        ("[features]\nwindows_days = [30, 90]\n", [], "features.windows_days"),
        ('[data.columns.transactions]\namount = "total"\n', [], "column 'total'"),
    ],
    ids=["unknown-alias", "missing-folder", "feature-mismatch", "wrong-mapping"],
)
def test_bad_model_or_config_exits_2_with_a_reason(trained, tmp_path, extra, args, message):
    config = tmp_path / "churn.toml"
    config.write_text(config_text(trained, trained / "data", extra))
    result = invoke("score", "--config", str(config), "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_missing_feature_columns_are_named(trained, tmp_path) -> None:
    config = tmp_path / "churn.toml"
    text = config_text(trained, trained / "data").replace(
        f'events = "{trained}/data/events.parquet"\n', ""
    )
    config.write_text(text)
    result = invoke("score", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "cannot be built from this data" in result.output


@pytest.mark.parametrize("problem", ["empty", "unreadable"])
def test_bad_input_files_exit_2_naming_the_table(trained, tmp_path, problem) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for table in TABLES:
        (data / f"{table}.parquet").write_bytes(
            (trained / "data" / f"{table}.parquet").read_bytes()
        )
    broken = data / "transactions.parquet"
    if problem == "empty":
        schema = pq.read_schema(broken)
        pq.write_table(schema.empty_table(), broken)
    else:
        broken.write_bytes(b"this is not parquet")
    config = tmp_path / "churn.toml"
    config.write_text(config_text(trained, data))
    result = invoke("score", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "table 'transactions'" in result.output


def test_unseen_category_is_scored_as_missing_and_counted(trained) -> None:
    config = cm.load_config(trained / "churn.toml")
    sources = {t: pd.read_parquet(trained / "data" / f"{t}.parquet") for t in TABLES}
    customers = sources["customers"]
    customers.loc[customers.index[:300], "plan"] = "platinum"
    run = score(config, model=str(trained / "models"), sources=sources)
    renamed = set(customers.loc[customers.index[:300], "customer_id"])
    expected = len(renamed & set(run.outreach["customer_id"]))
    assert expected > 0
    assert run.scores.unseen_categories == {"plan": expected}


def test_a_crash_while_writing_leaves_no_partial_file(trained, tmp_path, monkeypatch) -> None:
    config = cm.load_config(trained / "churn.toml")
    run = score(config, model=str(trained / "models"))
    out = tmp_path / "out"
    write_score_outputs(run, out)
    before = {name: (out / name).read_bytes() for name in OUTPUTS}

    real_to_csv = pd.DataFrame.to_csv

    def half_then_crash(self, path, *args, **kwargs):
        real_to_csv(self.head(len(self) // 2), path, *args, **kwargs)
        raise OSError("disk full (injected)")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_crash)
    with pytest.raises(OSError, match="injected"):
        write_score_outputs(run, out)
    assert (out / "outreach.csv").read_bytes() == before["outreach.csv"]
    with pytest.raises(OSError, match="injected"):
        write_score_outputs(run, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "outreach.csv").exists()
    assert not list(out.glob(".*")) and not list((tmp_path / "fresh").glob(".*"))
