"""The data contract: loading, mapping, typing and every validation error."""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibis.backends.sql import SQLBackend

from churnmodel.config import FeatureConfig
from churnmodel.data.load import load_tables
from churnmodel.data.quality import QualityRules, regular_range
from churnmodel.data.validate import count_duplicates, validate_tables
from churnmodel.engine import collect, scalar
from churnmodel.errors import DataContractError
from tests.conftest import features_at, frame


def write_csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_text(text)
    return path


def check(con: SQLBackend, sources: dict[str, object], columns: dict | None = None, **kw):
    return validate_tables(load_tables(con, sources, columns), **kw)


def error_of(
    con: SQLBackend, sources: dict[str, object], columns: dict | None = None, **kw
) -> DataContractError:
    with pytest.raises(DataContractError) as info:
        check(con, sources, columns, **kw)
    return info.value


def test_csv_with_column_mapping_keeps_ids_and_converts_time_zones(con, tmp_path) -> None:
    path = write_csv(
        tmp_path,
        "orders",
        "cust,order_ts,total\n"
        "00042,2024-01-01 10:00:00+02:00,12.50\n"
        "007,2024-01-01T08:00:00Z,3\n"
        "42,2024-01-01 08:00:00,1e2\n",  # naive: taken as UTC
    )
    mapping = {"transactions": {"customer_id": "cust", "timestamp": "order_ts", "amount": "total"}}
    tables = check(con, {"transactions": path}, mapping)
    rows = collect(tables.tables["transactions"])
    assert rows["customer_id"].tolist() == ["00042", "007", "42"]
    assert rows["timestamp"].nunique() == 1  # the same instant written three ways
    assert rows["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 08:00:00")
    assert rows["amount"].tolist() == [12.5, 3.0, 100.0]
    assert tables.observed_until == pd.Timestamp("2024-01-02")


def test_zoned_timestamps_become_the_same_naive_utc_instants(con, tmp_path) -> None:
    """Microseconds and a daylight-saving change survive; an infinite time is refused."""
    local = pd.to_datetime(
        ["2024-03-31 01:59:59.999999+01:00", "2024-03-31 03:00:00.000001+02:00"], utc=True
    ).tz_convert("Europe/Berlin")
    tx = pd.DataFrame({"customer_id": ["a", "b"], "timestamp": local, "amount": [1.0, 2.0]})
    rows = collect(check(con, {"transactions": tx}).tables["transactions"])
    assert rows["timestamp"].tolist() == [
        pd.Timestamp("2024-03-31 00:59:59.999999"),
        pd.Timestamp("2024-03-31 01:00:00.000001"),
    ]
    path = write_csv(tmp_path, "tx", "customer_id,timestamp,amount\na,2024-01-01,1\nb,infinity,1\n")
    err = error_of(con, {"transactions": path})
    assert (err.table, err.column, err.rows) == ("transactions", "timestamp", 1)
    assert "'infinity'" in str(err)


def test_numeric_ids_from_pandas_become_text(con) -> None:
    tx = pd.DataFrame(
        {
            "customer_id": [42, 7],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
            "amount": [1, 2],
        }
    )
    rows = collect(check(con, {"transactions": tx}).tables["transactions"])
    assert sorted(rows["customer_id"]) == ["42", "7"]


def test_missing_required_column_names_table_and_column(con) -> None:
    tx = frame([("a", "2024-01-01", 1.0)], ["customer_id", "timestamp", "total"])
    err = error_of(con, {"transactions": tx})
    assert (err.table, err.column) == ("transactions", "amount")
    assert "table 'transactions', column 'amount'" in str(err)
    assert "customer_id, timestamp, total" in str(err)  # what the table does have


def test_unparseable_timestamps_are_counted_with_examples(con, tmp_path) -> None:
    path = write_csv(
        tmp_path,
        "tx",
        "customer_id,timestamp,amount\na,2024-01-01,1\nb,yesterday,1\nc,31/12/2024,2\n",
    )
    err = error_of(con, {"transactions": path})
    assert (err.table, err.column, err.rows) == ("transactions", "timestamp", 2)
    assert "'yesterday'" in str(err) and "2 rows affected" in str(err)


def test_null_customer_ids_are_an_error(con) -> None:
    tx = frame(
        [("a", "2024-01-01", 1.0), (None, "2024-01-02", 2.0), ("", "2024-01-02", 2.0)],
        ["customer_id", "timestamp", "amount"],
    )
    tx.loc[1, "customer_id"] = None
    err = error_of(con, {"transactions": tx})
    assert (err.table, err.column, err.rows) == ("transactions", "customer_id", 2)


def test_non_numeric_amounts_are_an_error(con, tmp_path) -> None:
    path = write_csv(
        tmp_path, "tx", "customer_id,timestamp,amount\na,2024-01-01,1.5\nb,2024-01-01,12 EUR\n"
    )
    err = error_of(con, {"transactions": path})
    assert (err.table, err.column, err.rows) == ("transactions", "amount", 1)
    assert "'12 EUR'" in str(err) and "a number" in str(err)


def test_empty_amounts_are_an_error(con, tmp_path) -> None:
    path = write_csv(tmp_path, "tx", "customer_id,timestamp,amount\na,2024-01-01,\n")
    err = error_of(con, {"transactions": path})
    assert (err.table, err.column, err.rows) == ("transactions", "amount", 1)


@pytest.mark.parametrize(
    ("table", "column", "bad"),
    [
        ("transactions", "amount", [float("nan"), float("inf")]),
        ("transactions", "amount", [1e300, -float("inf")]),
        ("events", "value", [float("nan"), float("inf")]),
    ],
    ids=["amount-nan-inf", "amount-absurd", "survey-nan-inf"],
)
def test_non_finite_or_absurd_numbers_are_an_error(con, tmp_path, table, column, bad) -> None:
    """Written by Arrow, NaN and infinities stay what they are; they must not reach the sums."""
    rows = len(bad) + 1
    data = {
        "customer_id": pa.array([f"c{i}" for i in range(rows)]),
        "timestamp": pa.array([pd.Timestamp("2024-01-01", tz="UTC")] * rows),
    }
    numbers = pa.array([1.0, *bad], pa.float64(), from_pandas=False)  # NaN kept, not null
    if table == "transactions":
        data["amount"] = numbers
    else:
        data |= {"event_type": pa.array(["nps"] * rows), "value": numbers}
    pq.write_table(pa.table(data), tmp_path / f"{table}.parquet")
    err = error_of(con, {table: tmp_path / f"{table}.parquet"})
    assert (err.table, err.column, err.rows) == (table, column, 2)
    assert "a finite number of at most 1e+15 in size" in str(err)


def test_unknown_table_is_an_error(con) -> None:
    err = error_of(con, {"orders": frame([], ["customer_id"])})
    assert err.table == "orders" and "canonical tables" in str(err)


def test_unknown_mapping_table_is_an_error(con) -> None:
    tx = frame([("a", "2024-01-01", 1.0)], ["customer_id", "timestamp", "amount"])
    err = error_of(con, {"transactions": tx}, {"purchases": {"customer_id": "cust"}})
    assert err.table == "purchases"


def test_unknown_mapping_key_is_an_error(con) -> None:
    tx = frame([("a", "2024-01-01", 1.0)], ["customer_id", "timestamp", "amount"])
    err = error_of(con, {"transactions": tx}, {"transactions": {"price": "amount"}})
    assert (err.table, err.column) == ("transactions", "price")
    assert "known column" in str(err)


def test_mapping_to_an_absent_column_is_an_error(con) -> None:
    tx = frame([("a", "2024-01-01", 1.0)], ["customer_id", "timestamp", "amount"])
    err = error_of(con, {"transactions": tx}, {"transactions": {"customer_id": "cust"}})
    assert (err.table, err.column) == ("transactions", "cust")
    assert "mapped to 'customer_id'" in str(err)


def test_empty_table_is_an_error(con, tmp_path) -> None:
    path = write_csv(tmp_path, "ev", "customer_id,timestamp,event_type\n")
    err = error_of(con, {"events": path})
    assert err.table == "events" and err.rows == 0 and "empty" in str(err)


def test_empty_churn_table_means_nobody_churned(con) -> None:
    tx = frame([("a", "2024-01-01", 1.0)], ["customer_id", "timestamp", "amount"])
    tables = check(con, {"transactions": tx, "churn": frame([], ["customer_id", "churn_date"])})
    assert tables.contractual and tables.reports["churn"].rows == 0


def test_no_activity_table_is_an_error(con) -> None:
    err = error_of(con, {"customers": frame([("a",)], ["customer_id"])})
    assert "transactions" in str(err) and "events" in str(err)


def test_missing_file_is_an_error(con, tmp_path) -> None:
    err = error_of(con, {"transactions": tmp_path / "nope.parquet"})
    assert err.table == "transactions" and "does not exist" in str(err)


def test_exact_duplicates_are_reported_and_kept_by_default(con, caplog) -> None:
    rows = [("a", "2024-01-01", 1.0), ("a", "2024-01-01", 1.0), ("a", "2024-01-02", 1.0)]
    tx = frame(rows, ["customer_id", "timestamp", "amount"])
    with caplog.at_level(logging.WARNING):
        kept = check(con, {"transactions": tx})
    assert kept.reports["transactions"].duplicate_rows == 1
    assert "1 exact duplicate row(s) kept" in caplog.text
    assert len(collect(kept.tables["transactions"])) == 3
    dropped = check(con, {"transactions": tx}, duplicates="drop")
    assert dropped.reports["transactions"].duplicates_dropped
    assert len(collect(dropped.tables["transactions"])) == 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.sampled_from([0.0, -0.0, 2.5, math.nan, None]),  # DISTINCT: -0.0 is 0.0
            st.sampled_from([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 1), None]),
        ),
        max_size=25,
    )
)
def test_duplicates_found_by_hashes_are_the_rows_distinct_drops(rows: list[tuple]) -> None:
    ids, amounts, times = zip(*rows, strict=True) if rows else ((), (), ())
    table = ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array(ids, pa.string()),
                "amount": pa.array(amounts, pa.float64()),
                "timestamp": pa.array(times, pa.timestamp("us")),
            }
        )
    )
    expected = len(rows) - scalar(table.distinct().count())
    assert count_duplicates(table, len(rows)) == expected


def test_duplicates_under_a_default_collation_are_the_ones_distinct_finds() -> None:
    nocase = ibis.duckdb.connect()
    nocase.raw_sql("SET default_collation = 'nocase'")  # 'a' and 'A' are one value
    nocase.raw_sql(
        "CREATE TABLE t AS SELECT * FROM (VALUES ('a', 1.0), ('A', 1.0), ('b', 2.0)) v(id, x)"
    )
    table = nocase.table("t")
    assert count_duplicates(table, 3) == 3 - scalar(table.distinct().count()) == 1


def test_customers_with_conflicting_rows_are_an_error(con) -> None:
    tx = frame([("a", "2024-01-01", 1.0)], ["customer_id", "timestamp", "amount"])
    people = frame(
        [("a", "basic"), ("a", "pro"), ("b", "pro"), ("b", "pro")], ["customer_id", "plan"]
    )
    err = error_of(con, {"transactions": tx, "customers": people})
    assert (err.table, err.column, err.rows) == ("customers", "customer_id", 1)
    assert "'a'" in str(err)  # b's rows are exact duplicates: dropped, not an error


def _days(counts: dict[str, int], table: str = "events") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": table,
            "day": [pd.Timestamp(d).date() for d in counts],
            "rows": list(counts.values()),
        }
    )


DAILY = {str(d.date()): 100 for d in pd.date_range("2025-01-01", "2025-03-31")}  # 9,000 rows


def test_regular_range_leaves_out_stray_days_at_both_ends_and_says_so(caplog) -> None:
    rules = QualityRules(max_outlier_share=0.001, today=dt.date(2026, 12, 5))
    strays = {"1900-01-01": 1, "2025-04-20": 1, "2062-03-01": 1}  # 3 of 9,003 rows (budget 9)
    with caplog.at_level(logging.WARNING):
        span = regular_range(_days(DAILY | strays), rules)
    assert (span.first, span.last) == (dt.date(2025, 1, 1), dt.date(2025, 3, 31))
    assert len(span.findings) == 1
    assert "3 row(s) outside" in span.findings[0]
    assert "e.g. 1900-01-01, 2025-04-20, 2062-03-01" in span.findings[0]
    assert "(2025-04-01)" in span.findings[0]  # the default scoring date it keeps
    assert span.findings[0] in caplog.text


def test_regular_range_keeps_a_short_pause_and_a_long_one_with_many_rows() -> None:
    rules = QualityRules(max_outlier_share=0.001, today=dt.date(2026, 12, 5))
    pause = {"2025-04-10": 5}  # 10 days after the end: shorter than MIN_GAP_DAYS
    assert regular_range(_days(DAILY | pause), rules).last == dt.date(2025, 4, 10)
    reopened = {str(d.date()): 100 for d in pd.date_range("2025-06-01", "2025-06-30")}
    span = regular_range(_days(DAILY | reopened), rules)  # 3,000 rows past a 2-month gap
    assert (span.last, span.findings) == (dt.date(2025, 6, 30), ())


def test_regular_range_stops_when_outliers_exceed_the_share() -> None:
    rules = QualityRules(max_outlier_share=0.001, today=dt.date(2026, 12, 5))
    future = _days({"2030-01-01": 10}, table="transactions")  # 10 > 0.001 x 9,010
    with pytest.raises(DataContractError) as info:
        regular_range(pd.concat([_days(DAILY), future]), rules)
    error = info.value
    assert (error.table, error.column, error.rows) == ("transactions", "timestamp", 10)
    assert error.examples == ["2030-01-01"]
    assert "max_outlier_share = 0.001" in str(error)
    with pytest.raises(DataContractError):  # every row in the future: nothing regular is left
        regular_range(future, rules)


def test_comma_style_reads_german_numbers(con, tmp_path) -> None:
    path = write_csv(
        tmp_path,
        "tx",
        'customer_id,timestamp,amount\na,2025-01-01,"1.234,56"\nb,2025-01-02,"12,5"\n'
        "c,2025-01-03,3.260\n",
    )
    tables = check(con, {"transactions": path}, rules=QualityRules(number_style="comma"))
    amounts = collect(tables.tables["transactions"])["amount"].tolist()
    assert amounts == [1234.56, 12.5, 3260.0]
    misread = write_csv(
        tmp_path, "misread", "customer_id,timestamp,amount\na,2025-01-01,12.50\nb,2025-01-01,1.5\n"
    )
    error = error_of(con, {"transactions": misread}, rules=QualityRules(number_style="comma"))
    assert (error.column, error.rows, error.examples) == ("amount", 2, ["12.50", "1.5"])
    plain = write_csv(
        tmp_path, "plain", "customer_id,timestamp,amount\na,2025-01-01,3.260\nb,2025-01-01,0.125\n"
    )
    error = error_of(con, {"transactions": plain})  # the default style refuses 3.260
    assert (error.table, error.column, error.rows, error.examples) == (
        "transactions",
        "amount",
        1,
        ["3.260"],
    )


def test_unmatched_ids_are_counted_per_table(con) -> None:
    customers = frame([("0001677",), ("0001678",)], ["customer_id"])
    tx = frame(
        [("0001677", "2025-01-01", float(i)) for i in range(200)] + [("1677", "2025-01-02", 2.0)],
        ["customer_id", "timestamp", "amount"],
    )
    tables = check(con, {"customers": customers, "transactions": tx})  # 1 of 201 rows: a warning
    assert tables.findings == (
        "table 'transactions', column 'customer_id': 1 of 201 rows (1 ids) have a customer_id "
        "that is not in 'customers' (e.g. '1677'); ids are compared exactly as text, so '0042' "
        "is not '42'; they are scored as customers without a profile "
        "(data.max_unmatched_share = 0.01)",
    )
    with pytest.raises(DataContractError) as info:
        check(
            con,
            {"customers": customers, "transactions": tx},
            rules=QualityRules(max_unmatched_share=0.001),
        )
    assert "1 of 201 rows" in str(info.value) and "at least 0.00498" in str(info.value)


def test_one_stray_row_in_a_small_history_is_an_outlier_not_an_error() -> None:
    small = {str(d.date()): 5 for d in pd.date_range("2025-01-01", "2025-03-31")}  # 450 rows
    rules = QualityRules(max_outlier_share=0.001, today=dt.date(2026, 12, 5))
    span = regular_range(_days(small | {"2062-01-01": 1}), rules)
    assert span.last == dt.date(2025, 3, 31) and len(span.findings) == 1
    with pytest.raises(DataContractError):  # two are more than 0.1 % of 452 allows
        regular_range(_days(small | {"2062-01-01": 1, "2063-01-01": 1}), rules)


def test_a_placeholder_date_does_not_stretch_everyones_history(con) -> None:
    """One row dated 1900 for customer z leaves customer a's rates as they were."""
    config = FeatureConfig(bgnbd=False)
    rows = [("a", f"2025-0{m}-01", 10.0) for m in range(1, 7)]
    plain = {"transactions": frame(rows, ["customer_id", "timestamp", "amount"])}
    stray = {
        "transactions": frame(
            [*rows, ("z", "1900-01-01", 5.0)], ["customer_id", "timestamp", "amount"]
        )
    }
    at = [("a", dt.date(2025, 7, 1))]
    before, after = features_at(con, plain, at, config), features_at(con, stray, at, config)
    assert before.loc["a", "tx_rate_365d"] == pytest.approx(6 / 181 * 30)  # over 181 days seen
    pd.testing.assert_series_equal(after.loc["a"], before.loc["a"])
