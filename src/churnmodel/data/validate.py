"""Check raw tables against the data contract and give them canonical types.

Every problem becomes a `DataContractError` naming the table, the column,
what was expected, how many rows are affected and a few examples. Nothing is
dropped silently: exact duplicate rows are counted in the report and kept,
unless the config says `duplicates = "drop"`.

After validation every timestamp is a naive UTC timestamp (mixed time zones
are converted; naive input is taken to be UTC) and every customer id is text.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from churnmodel.config import NumberStyle
from churnmodel.data.contract import CONTRACT, Kind, TableSpec
from churnmodel.data.quality import (
    EARLIEST_PLAUSIBLE,
    QualityRules,
    RegularRange,
    active_days,
    id_findings,
    regular_range,
    suspicious_id_conditions,
)
from churnmodel.engine import batches, collect, default_collation, is_spark, naive_utc, scalar
from churnmodel.errors import DataContractError

log = logging.getLogger(__name__)

EXAMPLES = 3
_TYPED = "__typed__"
_NULL_AS = {
    Kind.ID: "string",
    Kind.TEXT: "string",
    Kind.NUMBER: "float64",
    Kind.TIMESTAMP: "timestamp",
}


@dataclass(frozen=True)
class TableReport:
    """What validation saw in one table."""

    rows: int
    duplicate_rows: int
    duplicates_dropped: bool
    suspicious_ids: dict[str, int] = field(default_factory=dict)  # quality.SUSPICIONS -> rows


@dataclass(frozen=True)
class ValidatedTables:
    """The canonical tables, typed and checked, plus the observed time range."""

    tables: dict[str, ibis.Table]
    reports: dict[str, TableReport]
    observed_from: dt.datetime
    observed_until: dt.datetime  # exclusive: the day after the last regular activity
    findings: tuple[str, ...] = ()  # the warnings of validation, for the run's record
    first_seen: dt.datetime | None = None  # the earliest activity from 1970 on, stray or not

    @property
    def data_start(self) -> dt.datetime:
        """Where the history of features begins: the earliest row from 1970 on, however stray.

        Unlike `observed_from` (which plans cutoffs and KPI periods), it can
        depend on no row later than itself, so no feature at a cutoff
        depends on rows after the cutoff through it.
        """
        return self.first_seen or self.observed_from

    @property
    def contractual(self) -> bool:
        """A churn table means cancellations are observed (a contractual business)."""
        return "churn" in self.tables

    def get(self, name: str) -> ibis.Table | None:
        """The named table, or None when the data has no such table."""
        return self.tables.get(name)

    def of_customers(self, customers: ibis.Table) -> ValidatedTables:
        """The same tables, keeping only the rows of `customers` (a customer_id column).

        Features of a customer read only that customer's rows, so the rest
        can go before any grouping: a scoring run reads only the customers
        who are eligible. Reports, findings and the time range stay those of
        the whole data.
        """
        keep = customers.select("customer_id")
        return replace(
            self, tables={n: t.semi_join(keep, "customer_id") for n, t in self.tables.items()}
        )


LARGEST_NUMBER = 1e15
"""Amounts and answers beyond this are data errors (and overflow the exact sums)."""


def validate_tables(
    raw: Mapping[str, ibis.Table],
    duplicates: Literal["keep", "drop"] = "keep",
    rules: QualityRules | None = None,
) -> ValidatedTables:
    """Validate every table and work out the period of regular activity the data covers.

    The period leaves out a few stray timestamps (`quality.regular_range`),
    so one row dated 2062 or 1900 moves neither the default scoring date nor
    the cutoff schedule; ids are checked across tables (`quality.id_findings`).
    """
    rules = rules or QualityRules()
    if "transactions" not in raw and "events" not in raw:
        raise DataContractError(
            "transactions", None, "at least one of the tables 'transactions' or 'events'"
        )
    tables: dict[str, ibis.Table] = {}
    reports: dict[str, TableReport] = {}
    findings: list[str] = []
    for name, table in raw.items():
        typed, report, warning = _validate_table(CONTRACT[name], table, duplicates, rules)
        tables[name], reports[name] = typed, report
        findings.extend([warning] if warning else [])
    days = active_days(tables)
    if days.empty:
        raise DataContractError(
            "transactions" if "transactions" in tables else "events",
            "timestamp",
            "at least one row of activity, but the activity tables are empty",
            0,
        )
    span = regular_range(days, rules)
    findings.extend(span.findings)
    findings.extend(id_findings(tables, reports, rules))
    return ValidatedTables(
        tables,
        reports,
        dt.datetime.combine(span.first, dt.time()),
        dt.datetime.combine(span.last + dt.timedelta(days=1), dt.time()),
        tuple(findings),
        dt.datetime.combine(first_plausible(days, span), dt.time()),
    )


def first_plausible(days: pd.DataFrame, span: RegularRange) -> dt.date:
    """The earliest activity day from 1970 on: where the history of features begins.

    A placeholder date (1900-01-01) would stretch every customer's observed
    span; a row dated 1970 or later is history, however stray, and only
    rows are looked at one by one, so no later row can move it.
    """
    plausible = [d for d in days["day"] if d >= EARLIEST_PLAUSIBLE]
    return min(plausible) if plausible else span.first


def _validate_table(
    spec: TableSpec, table: ibis.Table, duplicates: Literal["keep", "drop"], rules: QualityRules
) -> tuple[ibis.Table, TableReport, str | None]:
    missing = [c for c in spec.required if c not in table.columns]
    if missing:
        raise DataContractError(
            spec.name,
            missing[0],
            f"required column(s) {', '.join(missing)}; the table has {', '.join(table.columns)}",
        )
    present = {c: k for c, k in spec.columns.items() if c in table.columns}
    # Raw and typed values side by side, so a check can compare the two.
    wide = table.mutate(
        **{
            _TYPED + c: _typed(spec.name, c, table[c], k, rules.number_style)
            for c, k in present.items()
        }
    )
    checks = _problem_checks(spec, wide, present, rules.number_style)
    row = collect(
        wide.aggregate(
            rows=ibis._.count(),
            **{f"bad_{i}": ibis.coalesce(cond.sum(), 0) for i, (_, _, cond) in enumerate(checks)},
        )
    ).iloc[0]
    if int(row["rows"]) == 0 and not spec.may_be_empty:
        raise DataContractError(spec.name, None, "at least one row, but the table is empty", 0)
    for i, (column, expected, cond) in enumerate(checks):
        bad = int(row[f"bad_{i}"])
        if bad:
            examples = collect(wide.filter(cond).select(column).limit(EXAMPLES))[column]
            raise DataContractError(spec.name, column, expected, bad, examples.tolist())

    extra = [c for c in table.columns if c not in present] if spec.open_columns else []
    typed = wide.select(**{c: wide[_TYPED + c] for c in present}, **{c: wide[c] for c in extra})
    # reported by quality.id_findings
    suspicious = {k: n for k, n in suspicious_id_rows(typed.customer_id).items() if n}
    rows = int(row["rows"])
    duplicate_rows = count_duplicates(typed, rows, by_hash=not extra)
    warning = None
    if duplicate_rows:
        warning = f"table '{spec.name}': {duplicate_rows:,} exact duplicate row(s) " + (
            "dropped" if duplicates == "drop" else "kept (set data.duplicates = 'drop' to drop)"
        )
        log.warning(warning)
    if duplicates == "drop" or spec.name in ("customers", "churn"):
        typed = typed.distinct() if duplicate_rows else typed
    if spec.name in ("customers", "churn"):
        _require_unique_ids(spec.name, typed)
    report = TableReport(
        rows, duplicate_rows, duplicate_rows > 0 and duplicates == "drop", suspicious
    )
    return typed, report, warning


def _typed(
    table: str, column: str, value: ir.Column, kind: Kind, number_style: NumberStyle = "check"
) -> ir.Value:
    """Cast a source column to its canonical type; unparseable values become NULL.

    Numbers in text follow `number_style`: "comma" reads ``1.234,56`` (a
    point between thousands, a comma before the decimals).
    """
    dtype = value.type()
    if dtype.is_null():  # an all-empty column (e.g. pandas None) has no type of its own
        return value.cast(_NULL_AS[kind])
    if kind is Kind.ID or kind is Kind.TEXT:
        return value if dtype.is_string() else value.cast("string")
    if kind is Kind.NUMBER:
        if dtype.is_numeric():
            return value.cast("float64")
        if dtype.is_string() and number_style == "comma":
            return value.replace(".", "").replace(",", ".").try_cast("float64")
        if dtype.is_string():
            return value.try_cast("float64")
    if kind is Kind.TIMESTAMP:
        if dtype.is_string():
            return naive_utc(value.try_cast("timestamp('UTC')"))
        if dtype.is_timestamp():
            return naive_utc(value)
        if dtype.is_date():
            return value.cast("timestamp")
    raise DataContractError(table, column, f"{kind.value}, got column type {dtype}")


THOUSANDS = r"^\s*[+-]?[1-9][0-9]{0,2}(\.[0-9]{3})+\s*$"
"""Text like 3.260 or 1.234.567: a point between thousands, as German and Dutch files write."""
COMMA_NUMBER = r"^\s*[+-]?([1-9][0-9]{0,2}(\.[0-9]{3})+|[0-9]+)(,[0-9]+)?\s*$"
"""What number_style = "comma" reads: 1.234,56 or 12,5 or 1234; a point only between thousands."""


def _problem_checks(
    spec: TableSpec, wide: ibis.Table, present: Mapping[str, Kind], number_style: NumberStyle
) -> list[tuple[str, str, ir.BooleanValue]]:
    """(column, expectation, condition over raw rows that breaks it)."""
    checks: list[tuple[str, str, ir.BooleanValue]] = []
    for column, kind in present.items():
        source, value = wide[column], wide[_TYPED + column]
        if kind is Kind.ID:
            blank = source.isnull() | (value.strip() == "")
            checks.append((column, "a customer id in every row, not empty or blank", blank))
            continue
        if column not in spec.nullable:
            checks.append(
                (column, f"{kind.value} in every row, not an empty value", source.isnull())
            )
        if kind in (Kind.NUMBER, Kind.TIMESTAMP):
            checks.append((column, kind.value, source.notnull() & value.isnull()))
        if kind is Kind.NUMBER and number_style == "check" and source.type().is_string():
            thousands = source.re_search(THOUSANDS)
            checks.append((column, _THOUSANDS_EXPECTED, thousands))
        if kind is Kind.NUMBER and number_style == "comma" and source.type().is_string():
            german = source.notnull() & ~source.re_search(COMMA_NUMBER)
            checks.append((column, _COMMA_EXPECTED, german))
        if kind is Kind.NUMBER:  # NaN, infinities and absurd sizes would break the sums later
            absurd = value.isnan() | value.isinf() | (value.abs() > LARGEST_NUMBER)
            checks.append(
                (column, f"a finite number of at most {LARGEST_NUMBER:.0e} in size", absurd)
            )
    return checks


_THOUSANDS_EXPECTED = (
    "numbers with a decimal point, but some look like thousands with a point between them "
    "(3.260 for 3,260), which would be read as 3.26. Set data.number_style = 'comma' when the "
    "file writes 1.234,56, or 'point' when 3.260 really is 3.26"
)


_COMMA_EXPECTED = (
    "numbers written 1.234,56 (data.number_style = 'comma': a comma before the decimals, a "
    "point only between thousands); '12.50' or '1,234.56' would be misread"
)


def suspicious_id_rows(ids: ir.StringColumn) -> dict[str, int]:
    """Rows per kind of suspicious id (`quality.suspicious_id_conditions`), for the report.

    The patterns run once per distinct id, each weighted by its rows: a
    table has far fewer ids than rows, and two regular expressions on each
    of 47.6M events took 2.4 s where this takes 0.3 s.
    """
    distinct = ids.name("id").as_table().group_by("id").aggregate(rows=ibis._.count())
    conditions = suspicious_id_conditions(distinct.id)
    counts = distinct.aggregate(
        **{
            k: ibis.coalesce((c.cast("int64") * distinct.rows).sum(), 0)
            for k, c in conditions.items()
        }
    )
    return {str(k): int(n) for k, n in collect(counts).iloc[0].items()}


HASHED_DUPLICATES_MAX_ROWS = 200_000_000
"""Up to this many rows (1.6 GB of hashes) duplicates are found by sorting row hashes."""


def count_duplicates(table: ibis.Table, rows: int, by_hash: bool = True) -> int:
    """Rows that repeat another row exactly: rows minus distinct rows.

    DuckDB's DISTINCT builds a hash table of every row (8.4-8.9 s for 47.6M
    events). The rows' 64-bit hashes, fetched sorted, find the same in
    about 3 s: a row whose hash no other row has is unique, and
    only rows whose hash repeats are compared in full, so a collision is
    never counted. DuckDB hashes -0.0 and 0.0, NaNs and NULLs alike, as
    DISTINCT counts them alike; it hashes the bytes, though, where a
    collation (NOCASE) or a VARIANT value makes DISTINCT call different
    bytes equal. So DISTINCT counts when the caller cannot vouch for the
    columns' types (`by_hash` False: a table with the user's own columns),
    under a default collation, on Spark (the hashes would leave the
    cluster) and beyond `HASHED_DUPLICATES_MAX_ROWS`.
    """
    if (
        not by_hash
        or is_spark(table)
        or rows > HASHED_DUPLICATES_MAX_ROWS
        or default_collation(table)
    ):
        return rows - int(scalar(table.distinct().count()))
    hashed = table.mutate(**{_ROW_HASH: ibis.struct({c: table[c] for c in table.columns}).hash()})
    # sorted by DuckDB on both cores (2.7 s for 47.6M events; numpy's sort of the same
    # took 3.6 s after a 0.7 s fetch) into one array: equal hashes arrive side by side
    hashes = np.empty(rows, dtype=np.int64)
    filled = 0
    for batch in batches(hashed.select(_ROW_HASH).order_by(_ROW_HASH)):
        hashes[filled : filled + len(batch)] = batch.column(0).to_numpy()
        filled += len(batch)
    hashes = hashes[:filled]
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    if not len(repeated):
        return 0
    suspects = hashed.semi_join(
        ibis.memtable(pa.table({_ROW_HASH: pa.array(repeated)})), _ROW_HASH
    ).drop(_ROW_HASH)
    copies = suspects.group_by(suspects.columns).aggregate(n=ibis._.count())
    return int(scalar(copies.n.sum().fill_null(0) - copies.count()))  # 0 if no suspect is left


_ROW_HASH = "__row_hash__"


@dataclass(frozen=True)
class Repeats:
    """Key values that occur in more than one row: how many, the rows, example first keys."""

    keys: int
    rows: int
    examples: list[object]


def repeated_keys(table: ibis.Table, keys: Sequence[str]) -> Repeats:
    """The key values of `table` that several rows share (examples only when there are any)."""
    counts = table.group_by(*keys).aggregate(n=ibis._.count()).filter(ibis._.n > 1)
    found = collect(counts.aggregate(keys=counts.count(), rows=counts.n.sum())).iloc[0]
    if not int(found["keys"]):
        return Repeats(0, 0, [])
    first = counts.select(keys[0]).distinct().order_by(keys[0]).limit(EXAMPLES)
    return Repeats(int(found["keys"]), int(found["rows"]), collect(first)[keys[0]].tolist())


def _require_unique_ids(name: str, table: ibis.Table) -> None:
    repeats = repeated_keys(table, ["customer_id"])
    if repeats.keys:
        raise DataContractError(
            name,
            "customer_id",
            "one row per customer, but some ids have several different rows",
            repeats.keys,
            repeats.examples,
        )


SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
"""The scale of each known survey; answers outside it are refused, never counted wrongly."""


def check_survey_scales(events: ibis.Table, names: Mapping[str, str]) -> None:
    """Refuse survey answers outside their scale (e.g. NPS on 0-100), naming count and examples.

    `names` maps a known survey (nps, csat, ces) to its event type. One pass
    counts the bad answers of every survey; examples are fetched only on
    failure. Features, scoring and the KPIs all check, so no command
    accepts what another refuses.
    """
    known = {s: t for s, t in names.items() if s in SURVEY_RANGES}
    if not known or "value" not in events.columns:
        return
    off_scale = {
        survey: (events.event_type == kind)
        & events.value.notnull()
        & ((events.value < SURVEY_RANGES[survey][0]) | (events.value > SURVEY_RANGES[survey][1]))
        for survey, kind in known.items()
    }
    counts = collect(
        events.aggregate(**{s: bad.cast("int64").sum() for s, bad in off_scale.items()})
    )
    for survey, kind in known.items():
        count = int(counts[survey].fillna(0).iloc[0])
        if count:
            low, high = SURVEY_RANGES[survey]
            examples = collect(events.filter(off_scale[survey]).select("value").limit(EXAMPLES))
            raise DataContractError(
                "events",
                "value",
                f"{survey.upper()} answers ({kind!r} events) between {low} and {high}",
                count,
                examples["value"].tolist(),
            )
