"""Scoring and the outreach list, end to end: train -> register -> score -> export."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import churnmodel as cm
import churnmodel.config
from churnmodel import _io
from churnmodel.cli import app
from churnmodel.data.simulate import SimulationParams, write_simulation
from churnmodel.outreach.build import list_columns
from churnmodel.outreach.export import OUTPUTS
from churnmodel.registry.bundle import load_bundle, locate_bundle
from churnmodel.workflows import score, write_score_outputs
from tests.conftest import assert_modes_follow_the_umask, assert_page_looks_right

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
    # who the customer is comes along, so the team can filter without a join
    attributes = ["plan", "country", "channel", "billing"]
    assert list(outreach.columns) == list_columns({a: a for a in attributes})
    customers = pd.read_parquet(trained / "data" / "customers.parquet").set_index("customer_id")
    shown = outreach.set_index("customer_id")[attributes]
    pd.testing.assert_frame_equal(
        shown, customers.loc[shown.index, attributes].astype(object), check_dtype=False
    )
    assert outreach["value_at_risk"].is_monotonic_decreasing
    assert outreach["churn_probability"].between(0, 1).all()
    assert outreach["customer_id"].is_unique
    # every input customer is scored, on the win-back list, or not scored with a reason: once
    winback = pd.read_csv(scored / "winback.csv", encoding="utf-8-sig", dtype={"customer_id": str})
    scored_ids, left_out = set(outreach["customer_id"]), set(not_scored["customer_id"])
    lapsed = set(winback["customer_id"])
    assert len(scored_ids) + len(left_out) + len(lapsed) == len(input_customers(trained / "data"))
    assert scored_ids | left_out | lapsed == input_customers(trained / "data")
    assert not_scored["reason"].str.len().gt(0).all()
    assert not not_scored["reason"].str.startswith("inactive").any()
    # the win-back list: lapsed customers by past value, each with the day they were last seen
    assert len(winback) > 0 and (winback["action"] == "win-back offer").all()
    assert winback["value_last_12m"].is_monotonic_decreasing
    as_of = pd.Timestamp(outreach["as_of"].iloc[0]).tz_localize(None)
    days = (as_of - pd.to_datetime(winback["last_activity"])).dt.days
    since = winback["days_since_last_activity"]
    pd.testing.assert_series_equal(days, since, check_names=False, check_dtype=False)
    window = load_bundle(locate_bundle(trained / "models")).config.label.active_window_days
    assert (since.dropna() > window).all()  # inactive for the whole window
    assert since.notna().mean() > 0.5  # (no purchase ever: no last activity to show)
    tx = pd.read_parquet(trained / "data" / "transactions.parquet")
    first = winback.iloc[0]
    theirs = tx[
        (tx["customer_id"] == first["customer_id"]) & (tx["timestamp"] < as_of.tz_localize("UTC"))
    ]
    assert first["value_lifetime"] == pytest.approx(theirs["amount"].sum(), abs=0.01)
    assert first["purchases"] == len(theirs)
    # every row of the contacted tiers (high and medium) has a reason and an action
    explained = outreach[outreach["has_reasons"]]
    assert set(explained["risk_tier"]) == {"high", "medium"}
    assert len(explained) == outreach["risk_tier"].isin(["high", "medium"]).sum()
    assert explained["reason_1"].str.len().gt(0).all()
    assert explained["reason_1"].str.contains(r"\d").mean() > 0.9  # mostly the customer's numbers
    assert explained["action"].str.len().gt(0).all()
    assert (outreach.loc[~outreach["has_reasons"], "reason_1"] == "").all()
    # no probability is split between two tiers
    assert outreach.groupby("churn_probability")["risk_tier"].nunique().max() == 1
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
    bundle = load_bundle(locate_bundle(trained / "models"))
    explained = run.outreach[run.outreach["has_reasons"]]
    rows = features.loc[explained["customer_id"], bundle.feature_names]
    pushes = bundle.model.contributions(bundle.prepare(rows)).set_axis(rows.index)
    checked = 0
    patterns = {
        r"No purchase for (\d+) days": "days_since_last_tx",
        r"Not seen in the product for (\d+) days": "days_since_last_event",
        r"(\d+) purchases in the last 90 days": "tx_count_90d",
    }
    for row in explained.itertuples():
        for text in (row.reason_1, row.reason_2, row.reason_3):
            for pattern, feature in patterns.items():
                if match := re.match(pattern, text):
                    assert int(match.group(1)) == round(features.loc[row.customer_id, feature])
                    # a reason always raised this customer's risk
                    assert pushes.loc[row.customer_id, feature] > 0
                    checked += 1
    assert checked >= 10
    # the ages and counts that describe who a customer is never explain why they leave
    texts = explained[["reason_1", "reason_2", "reason_3"]].stack()
    assert not texts.str.contains("Customer for|answers so far|Last NPS answer").any()


def test_scoring_twice_gives_byte_identical_files(trained, scored) -> None:
    again = trained / "again"
    result = invoke("score", "--config", str(trained / "churn.toml"), "--out", str(again))
    assert result.exit_code == 0, result.output
    for name in OUTPUTS:
        assert (scored / name).read_bytes() == (again / name).read_bytes(), name


def test_the_report_reads_well_in_a_real_browser(scored, tmp_path) -> None:
    page = (scored / "report.html").read_text()
    assert "How to read this list" in page and "Leading reason" in page
    assert_page_looks_right(scored / "report.html", tmp_path)


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


def test_export_for_excel_in_germany(scored) -> None:
    source = ["--from", str(scored / "outreach.parquet"), "--tier", "high"]
    german = scored / "hoch.csv"
    style = ["--csv-style", "german", "--headers", "de"]
    result = invoke("export", *source, *style, "--out", str(german))
    assert result.exit_code == 0, result.output
    full = pd.read_parquet(scored / "outreach.parquet")
    high = full[full["risk_tier"] == "high"].reset_index(drop=True)
    back = pd.read_csv(german, sep=";", decimal=",", encoding="utf-8-sig", dtype={"Kunden-ID": str})
    assert back["Kunden-ID"].tolist() == high["customer_id"].tolist()
    assert back["Gefährdeter Wert"].tolist() == high["value_at_risk"].tolist()
    workbook = scored / "hoch.xlsx"
    result = invoke("export", *source, "--headers", "de", "--out", str(workbook))
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(workbook).active
    assert sheet["A1"].value == "Kunden-ID" and sheet.max_row == len(high) + 1
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref is not None
    wrong = invoke("export", *source, "--csv-style", "swiss", "--out", str(german))
    assert wrong.exit_code == 2 and "expected one of international, german" in wrong.output


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


def test_nobody_eligible_is_one_line_for_score_and_monitor(trained, tmp_path) -> None:
    """A scoring date after all activity leaves nobody eligible: exit 2, no traceback."""
    config = str(trained / "churn.toml")
    for command in ("score", "monitor"):
        result = invoke(
            command, "--config", config, "--as-of", "2030-01-02", "--out", str(tmp_path / command)
        )
        assert result.exit_code == 2, result.output
        assert "no customer is eligible at 2030-01-02" in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / command).exists()


def test_a_stray_future_event_does_not_move_the_scoring_date(trained, tmp_path) -> None:
    """One event dated 2030 is said and left out: the default date stays after the real data."""
    events = pd.read_parquet(trained / "data" / "events.parquet")
    future = events.iloc[[0]].assign(timestamp=pd.Timestamp("2030-01-01", tz="UTC"))
    pd.concat([events, future]).to_parquet(tmp_path / "events.parquet")
    text = (trained / "churn.toml").read_text()
    config = tmp_path / "churn.toml"
    config.write_text(
        text.replace(str(trained / "data" / "events.parquet"), str(tmp_path / "events.parquet"))
    )
    result = invoke("score", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    flat = re.sub(r"\s+", " ", result.output)
    assert "1 row(s) outside the regular activity" in flat and "e.g. 2030-01-01" in flat
    listed = pd.read_parquet(tmp_path / "out" / "outreach.parquet")
    assert set(listed["as_of"].astype(str)) == {"2026-01-01"}
    assert len(listed) > 500
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Data notes" in report and "2030-01-01" in report


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


@pytest.fixture(scope="module")
def run(trained):
    return score(cm.load_config(trained / "churn.toml"), model=str(trained / "models"))


def _fault_at(monkeypatch, where: str, call: int) -> None:
    """Make the `call`-th call of one step of the write phase raise, as a full disk would."""
    targets = {
        "parquet": (pq, "write_table"),
        "csv": (pd.DataFrame, "to_csv"),
        "text": (Path, "write_text"),
        "rename": (_io.os, "replace"),
    }
    owner, name = targets[where]
    real = getattr(owner, name)
    calls = iter(range(1, 1_000))

    def faulty(*args, **kwargs):
        if next(calls) == call:
            if where == "csv":  # half a file first: the worst moment to die
                real(args[0].head(len(args[0]) // 2), *args[1:], **kwargs)
            raise OSError(f"disk full (injected at {where} #{call})")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, faulty)


FAULTS = [
    ("parquet", 1),
    ("csv", 1),
    ("csv", 2),
    ("csv", 3),
    ("text", 1),  # the report
    *[("rename", k) for k in range(1, 12)],  # 5 files, the journal, then 5 into place
]


@pytest.mark.parametrize(("where", "call"), FAULTS, ids=[f"{w}-{c}" for w, c in FAULTS])
def test_a_fault_while_writing_leaves_the_old_set_or_a_committed_new_one(
    run, tmp_path, monkeypatch, where: str, call: int
) -> None:
    out = tmp_path / "out"
    write_score_outputs(run, out)
    (out / "features.parquet").write_bytes(b"not ours")  # another command's file stays
    before = _visible(out)
    german = cm.config.OutreachConfig(csv_style="german", headers="de")
    with monkeypatch.context() as patched:
        _fault_at(patched, where, call)
        with pytest.raises(OSError, match="injected"):
            write_score_outputs(run, out, german)
    committed = (out / _io.SET_JOURNAL).exists()
    if not committed:
        assert _visible(out) == before  # the fault came before the commit: the old set, whole
    _io.finish_set(out)  # what the next run or reader does first
    after = _visible(out)
    if committed:  # the new set, whole: the German csv and the same parquet
        assert b";" in after["not_scored.csv"].splitlines()[0]
        assert after["outreach.csv"] != before["outreach.csv"]
    else:
        assert after == before
    assert after["features.parquet"] == b"not ours"
    assert sorted(after) == sorted([*OUTPUTS, "features.parquet"])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [_io.SET_LOCK]


def _visible(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


def test_a_fault_in_a_fresh_folder_leaves_no_list(run, tmp_path, monkeypatch) -> None:
    _fault_at(monkeypatch, "csv", 2)
    with pytest.raises(OSError, match="injected"):
        write_score_outputs(run, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def _exported_copy(trained: Path, tmp_path: Path) -> Path:
    source = locate_bundle(trained / "models").parent.parent  # the MLflow model folder
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    return copy


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: (m / "pyfunc_model.py").write_text(
            (m / "pyfunc_model.py").read_text() + "\nopen('/tmp/owned', 'w')\n"
        ),
        lambda m: (m / "MLmodel").write_text(
            (m / "MLmodel").read_text().replace("pyfunc_model.py", "other.py")
        ),
        lambda m: (m / "MLmodel").write_text(
            (m / "MLmodel").read_text().replace("code: null", "code: evil")
        ),
        lambda m: (m / "pyfunc_model.py").unlink(),
    ],
    ids=["code appended", "MLmodel points elsewhere", "code paths added", "code removed"],
)
def test_edited_loading_code_is_refused_before_it_runs(trained, tmp_path, edit) -> None:
    model = _exported_copy(trained, tmp_path)
    edit(model)
    result = invoke(
        "score",
        "--config",
        str(trained / "churn.toml"),
        "--model",
        str(model),
        "--out",
        str(tmp_path / "out"),
    )
    assert result.exit_code == 2, result.output
    assert "changed after training" in result.output
    assert not (tmp_path / "out").exists()


def test_the_manifest_covers_the_loading_code(trained) -> None:
    model = locate_bundle(trained / "models").parent.parent
    manifest = json.loads((model / "artifacts" / "bundle" / "MANIFEST.json").read_text())
    expected = hashlib.sha256((model / "pyfunc_model.py").read_bytes()).hexdigest()
    assert manifest["code"] == {"pyfunc_model.py": expected}
