"""The Spark engine on a local[2] session: same features, labels, scores and list as DuckDB."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnmodel.cli import app
from churnmodel.config import RunConfig, load_config
from churnmodel.data.simulate import SimulationParams, write_simulation
from churnmodel.discovery import gather_facts, resolve
from churnmodel.engine import collect, connect
from churnmodel.errors import CutoffError
from churnmodel.features.matrix import build_feature_matrix
from churnmodel.features.transactions import transaction_family
from churnmodel.outreach.export import read_outreach
from churnmodel.outreach.report import render_report, report_data
from churnmodel.pointintime import history
from churnmodel.timeline import build_spine
from churnmodel.workflows import build_features, compute_kpis, load_data, score, score_on_spark

pyspark = pytest.importorskip("pyspark")

pytestmark = [pytest.mark.spark, pytest.mark.slow]
runner = CliRunner()
TABLES = ("customers", "transactions", "events")
CUTOFFS = [dt.date(2025, 8, 1), dt.date(2025, 9, 1), dt.date(2025, 10, 1)]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    con = connect("spark", spark_master="local[2]")
    yield con
    con.disconnect()


def simulated(root: Path, business: str, seed: int) -> dict[str, str]:
    params = SimulationParams(n_customers=1_200, seed=seed, business=business)  # type: ignore[arg-type]
    return {name: str(path) for name, path in write_simulation(root, params).items()}


def matrix_on(con: Any, sources: dict[str, str], config: RunConfig) -> pd.DataFrame:
    return build_features(config, CUTOFFS, sources, con).matrix.frame


@pytest.mark.parametrize("business", ["non_contractual", "contractual"])
def test_feature_matrix_and_labels_are_the_same_on_spark(spark, tmp_path, business) -> None:
    sources = simulated(tmp_path, business, seed=3)
    config = RunConfig.model_validate({"label": {"business": business}})
    on_duckdb = matrix_on(connect(), sources, config)
    on_spark = matrix_on(spark, sources, config)
    assert len(on_duckdb) > 1_000 and on_duckdb["label"].nunique() == 2
    assert list(on_spark.columns) == list(on_duckdb.columns)
    assert on_spark.dtypes.to_dict() == on_duckdb.dtypes.to_dict()
    pd.testing.assert_series_equal(on_spark["label"], on_duckdb["label"])
    pd.testing.assert_frame_equal(on_spark, on_duckdb, check_exact=False, rtol=1e-9, atol=1e-9)


def test_a_spark_catalog_table_is_a_source(spark, tmp_path) -> None:
    sources = simulated(tmp_path, "non_contractual", seed=4)
    session = spark._session
    session.read.parquet(sources["transactions"]).createOrReplaceTempView("shop_orders")
    config = RunConfig()
    from_view = load_data(config, {**sources, "transactions": "table:shop_orders"}, spark)
    from_file = load_data(config, sources, connect())
    assert from_view.reports["transactions"] == from_file.reports["transactions"]
    assert from_view.observed_until == from_file.observed_until


def test_a_large_training_matrix_is_sampled_by_stratum_on_spark(spark, tmp_path) -> None:
    sources = simulated(tmp_path, "non_contractual", seed=5)
    tables = load_data(RunConfig(), sources, spark)
    # the sample is what is tested here, not the features: a small feature set plans faster
    small = {"windows_days": [30], "trend_windows_days": [30], "bgnbd": False}
    config = resolve(RunConfig.model_validate({"features": small}), gather_facts(tables))
    cutoffs = [dt.date(2025, 9, 1), dt.date(2025, 10, 1)]
    spine = build_spine(tables, cutoffs, config.label)
    full = collect(spine)  # the (customer, cutoff, label) rows the sample is drawn from
    full["cutoff"] = pd.to_datetime(full["cutoff"]).astype("datetime64[ns]")
    limit = len(full) // 3

    def sampled() -> pd.DataFrame:
        return build_feature_matrix(tables, spine, config.features, max_rows=limit, seed=1).frame

    first, second = sampled(), sampled()
    strata = full.groupby(["cutoff", "label"]).size()
    expected = {key: math.ceil(n * limit / len(full)) for key, n in strata.items()}
    assert first.groupby(["cutoff", "label"]).size().to_dict() == expected
    pd.testing.assert_frame_equal(first, second)


def test_the_binned_plan_is_refused_on_spark_with_the_plans_that_run_there(spark, tmp_path) -> None:
    """Spark never picks it (`pointintime.plan`); a caller who asks is told what to use."""
    sources = simulated(tmp_path, "non_contractual", seed=6)
    tables = load_data(RunConfig(), sources, spark)
    config = resolve(RunConfig(), gather_facts(tables))
    spine = build_spine(tables, CUTOFFS, config.label)
    family = transaction_family(tables.tables["transactions"], config.features, 0)
    assert family.lookup is not None
    with pytest.raises(ValueError, match="binned plan runs on DuckDB; on Spark use 'running'"):
        history(spine, family.lookup, method="binned")


# -- scoring ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Simulated data, a config and a model trained on Spark features and exported."""
    root = tmp_path_factory.mktemp("spark-scoring")
    write_simulation(root / "data", SimulationParams(n_customers=2_000, seed=7))
    tables = "\n".join(f'{t} = "{root}/data/{t}.parquet"' for t in TABLES)
    (root / "churn.toml").write_text(
        f"""
[data]
{tables}

[model]
n_estimators = 80

[cutoffs]
holdout = 2

[features]  # parity of the list is tested here; the features' parity has its own tests
windows_days = [30, 90]
trend_windows_days = [30]

[outreach]
max_reason_rows = 40

[mlflow]
tracking_uri = "sqlite:///{root}/mlflow.db"
export_dir = "{root}/models"
"""
    )
    # trained on features computed by Spark (the matrix is collected for LightGBM)
    train = ["train", "--config", str(root / "churn.toml"), "--engine", "spark"]
    result = runner.invoke(app, [*train, "--spark-master", "local[2]"])
    assert result.exit_code == 0, result.output
    assert "promoted" in result.output
    return root


class CollectedRows:
    """Records how many rows each Spark result brought to the driver."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, session: Any) -> None:
        self.sizes: list[int] = []
        data_frame = type(session.range(1))  # the concrete class (classic or Connect)
        for method in ("toPandas", "toArrow", "collect"):
            original = getattr(data_frame, method)
            monkeypatch.setattr(data_frame, method, self._counting(original))

    def _counting(self, original: Any) -> Any:
        def wrapper(frame: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(frame, *args, **kwargs)
            self.sizes.append(len(result) if not hasattr(result, "num_rows") else result.num_rows)
            return result

        return wrapper


def _history_days(root: Path) -> int:
    stamps = pd.concat(
        pd.read_parquet(root / "data" / f"{t}.parquet", columns=["timestamp"])
        for t in ("transactions", "events")
    )["timestamp"]
    return int((stamps.max().normalize() - stamps.min().normalize()).days) + 1


def test_scoring_on_spark_gives_the_duckdb_list_without_collecting_it(
    spark, trained, tmp_path, monkeypatch
) -> None:
    config = load_config(trained / "churn.toml")
    model = str(trained / "models")
    on_duckdb = score(config, model)
    collected = CollectedRows(monkeypatch, spark._session)
    run = score_on_spark(config, tmp_path / "out", model, top=25, con=spark)
    monkeypatch.undo()

    scored = len(on_duckdb.outreach)
    assert scored > 500
    # only counts, aggregates (at most 20 probability bins x 3 tiers), the reason
    # rows (40), the top rows (25) and the rows per day of history (the data-quality
    # pass, one per table and day) reached the driver: nothing that grows with customers
    larger = [n for n in collected.sizes if n > 60]
    assert collected.sizes and len(larger) <= 2  # transactions and events per day
    assert all(n <= _history_days(trained) for n in larger)

    listed = read_outreach(tmp_path / "out" / "outreach")
    expected = on_duckdb.outreach
    assert list(listed.columns) == list(expected.columns)  # attributes included
    merged = expected.merge(listed, on="customer_id", suffixes=("", "_spark"), validate="1:1")
    assert len(merged) == scored == run.counts["scored"]
    # the same probability for every customer
    assert (merged["churn_probability"] == merged["churn_probability_spark"]).all()
    # features agree to 1e-9, not to the last bit (sums run in another order), so a
    # figure rounded at exactly .5 may land one unit apart; everything else is equal
    close = {"health_score": 1, "value_12m": 0.01, "value_at_risk": 0.01}
    for column, tolerance in close.items():
        differ = (merged[column] - merged[f"{column}_spark"]).abs()
        assert differ.max() <= tolerance and (differ > 0).mean() < 0.01, column
    exact = [c for c in expected.columns if c not in close]
    pd.testing.assert_frame_equal(
        listed[exact], expected[exact], check_dtype=False, check_categorical=False
    )
    assert int(listed["has_reasons"].sum()) == 40

    winback = pd.read_parquet(tmp_path / "out" / "winback")
    lapsed = on_duckdb.scores.winback
    assert len(winback) > 0
    pd.testing.assert_frame_equal(winback.astype(str), lapsed.astype(str), check_dtype=False)
    not_scored = pd.read_parquet(tmp_path / "out" / "not_scored")
    rest = on_duckdb.scores.not_scored
    rest = rest[~rest["customer_id"].isin(lapsed["customer_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(not_scored.astype(str), rest.astype(str), check_dtype=False)
    assert run.counts == on_duckdb.counts()
    top = pd.read_csv(tmp_path / "out" / "outreach_top.csv", encoding="utf-8-sig", dtype=str)
    assert top["customer_id"].tolist() == expected["customer_id"].head(25).tolist()
    # the report, drawn from Spark aggregates, is the DuckDB report
    unseen = on_duckdb.scores.unseen_categories
    report = render_report(report_data(expected), on_duckdb.counts(), on_duckdb.model, unseen)
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8") == report


def test_score_and_export_through_the_cli_on_spark(spark, trained, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["--config", str(trained / "churn.toml"), "--model", str(trained / "models")]
    result = runner.invoke(
        app,
        ["score", *args, "--out", str(out), "--engine", "spark", "--spark-master", "local[2]"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "every input customer accounted for" in result.output
    assert "data:image/png;base64," in (out / "report.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in (out / "outreach").glob("risk_tier=*")) == [
        "risk_tier=high",
        "risk_tier=low",
        "risk_tier=medium",
    ]
    top = pd.read_csv(out / "outreach_top.csv", encoding="utf-8-sig", dtype=str)
    assert len(top) == 1_000 or len(top) == len(read_outreach(out / "outreach"))
    assert top["as_of"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()

    cut = tmp_path / "high.csv"
    exported = runner.invoke(
        app, ["export", "--from", str(out / "outreach"), "--tier", "high", "--out", str(cut)]
    )
    assert exported.exit_code == 0, exported.output
    high = pd.read_csv(cut, encoding="utf-8-sig", dtype={"customer_id": str})
    assert set(high["risk_tier"]) == {"high"}
    assert high["value_at_risk"].is_monotonic_decreasing


def test_a_date_before_anyone_is_eligible_writes_nothing(spark, trained, tmp_path) -> None:
    config = load_config(trained / "churn.toml")
    with pytest.raises(CutoffError, match="no customer is eligible at 2020-01-01"):
        score_on_spark(
            config, tmp_path / "out", str(trained / "models"), dt.date(2020, 1, 1), con=spark
        )
    assert not (tmp_path / "out").exists()


def test_features_command_writes_the_same_matrix_on_spark(spark, trained, tmp_path) -> None:
    written = {}
    for engine in ("duckdb", "spark"):
        path = tmp_path / f"{engine}.parquet"
        result = runner.invoke(
            app,
            [
                "features",
                "--config",
                str(trained / "churn.toml"),
                "--cutoff",
                "2025-10-01",
                "--engine",
                engine,
                "--out",
                str(path),
            ],
        )
        assert result.exit_code == 0, result.output
        written[engine] = pd.read_parquet(path)
    assert written["spark"]["cutoff"].unique().tolist() == [pd.Timestamp(dt.date(2025, 10, 1))]
    pd.testing.assert_frame_equal(
        written["spark"], written["duckdb"], check_exact=False, rtol=1e-9, atol=1e-9
    )


def test_monitor_finds_the_same_drift_on_spark(spark, trained, tmp_path) -> None:
    drift = {}
    for engine in ("duckdb", "spark"):
        result = runner.invoke(
            app,
            [
                "monitor",
                *("--config", str(trained / "churn.toml"), "--model", str(trained / "models")),
                *("--as-of", "2025-12-01", "--engine", engine, "--out", str(tmp_path / engine)),
            ],
        )
        assert result.exit_code in (0, 3), result.output
        drift[engine] = pd.read_csv(tmp_path / engine / "drift.csv").set_index("feature")
    assert len(drift["spark"]) > 10
    pd.testing.assert_frame_equal(drift["spark"], drift["duckdb"].loc[drift["spark"].index])


@pytest.mark.parametrize("business", ["non_contractual", "contractual"])
def test_kpis_and_cohorts_are_the_same_on_spark(spark, tmp_path, business) -> None:
    sources = simulated(tmp_path, business, seed=6)
    config = RunConfig.model_validate(
        {"label": {"business": business}, "kpi": {"period": "quarter", "segments": ["plan"]}}
    )
    on_duckdb = compute_kpis(config, sources, connect())
    on_spark = compute_kpis(config, sources, spark)
    assert on_duckdb.kpis["customers_start"].sum() > 1_000
    pd.testing.assert_frame_equal(
        on_spark.kpis, on_duckdb.kpis, check_dtype=False, check_exact=False, rtol=1e-9
    )
    pd.testing.assert_frame_equal(
        on_spark.cohorts.table, on_duckdb.cohorts.table, check_dtype=False
    )
