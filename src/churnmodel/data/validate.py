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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir

from churnmodel.data.contract import CONTRACT, Kind, TableSpec
from churnmodel.engine import collect, scalar
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


@dataclass(frozen=True)
class ValidatedTables:
    """The canonical tables, typed and checked, plus the observed time range."""

    tables: dict[str, ibis.Table]
    reports: dict[str, TableReport]
    observed_from: dt.datetime
    observed_until: dt.datetime  # exclusive: the day after the last observed timestamp

    @property
    def contractual(self) -> bool:
        """A churn table means cancellations are observed (a contractual business)."""
        return "churn" in self.tables

    def get(self, name: str) -> ibis.Table | None:
        """The named table, or None when the data has no such table."""
        return self.tables.get(name)


LARGEST_NUMBER = 1e15
"""Amounts and answers beyond this are data errors (and overflow the exact sums)."""


def validate_tables(
    raw: Mapping[str, ibis.Table], duplicates: Literal["keep", "drop"] = "keep"
) -> ValidatedTables:
    """Validate every table and work out the period the data covers."""
    if "transactions" not in raw and "events" not in raw:
        raise DataContractError(
            "transactions", None, "at least one of the tables 'transactions' or 'events'"
        )
    tables: dict[str, ibis.Table] = {}
    reports: dict[str, TableReport] = {}
    bounds: list[tuple[dt.datetime, dt.datetime]] = []
    for name, table in raw.items():
        spec = CONTRACT[name]
        typed, report, first, last = _validate_table(spec, table, duplicates)
        tables[name], reports[name] = typed, report
        if first is not None and last is not None and name in ("transactions", "events"):
            bounds.append((first, last))
    observed_from = min(first for first, _ in bounds)
    last_seen = max(last for _, last in bounds)
    observed_until = dt.datetime.combine(last_seen.date() + dt.timedelta(days=1), dt.time())
    return ValidatedTables(tables, reports, observed_from, observed_until)


def _validate_table(
    spec: TableSpec, table: ibis.Table, duplicates: Literal["keep", "drop"]
) -> tuple[ibis.Table, TableReport, dt.datetime | None, dt.datetime | None]:
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
        **{_TYPED + c: _typed(spec.name, c, table[c], k) for c, k in present.items()}
    )
    checks = _problem_checks(spec, wide, present)
    stamp = next((c for c, k in present.items() if k is Kind.TIMESTAMP), None)
    bounds = (
        {"first": wide[_TYPED + stamp].min(), "last": wide[_TYPED + stamp].max()} if stamp else {}
    )
    row = collect(
        wide.aggregate(
            rows=ibis._.count(),
            **{f"bad_{i}": ibis.coalesce(cond.sum(), 0) for i, (_, _, cond) in enumerate(checks)},
            **bounds,
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
    rows = int(row["rows"])
    duplicate_rows = rows - int(scalar(typed.distinct().count()))
    if duplicate_rows:
        log.warning(
            "table '%s': %d exact duplicate row(s) %s",
            spec.name,
            duplicate_rows,
            "dropped" if duplicates == "drop" else "kept (set data.duplicates = 'drop' to drop)",
        )
    if duplicates == "drop" or spec.name in ("customers", "churn"):
        typed = typed.distinct() if duplicate_rows else typed
    if spec.name in ("customers", "churn"):
        _require_unique_ids(spec.name, typed)
    first, last = row.get("first"), row.get("last")
    report = TableReport(rows, duplicate_rows, duplicate_rows > 0 and duplicates == "drop")
    return typed, report, _as_datetime(first), _as_datetime(last)


def _typed(table: str, column: str, value: ir.Column, kind: Kind) -> ir.Value:
    """Cast a source column to its canonical type; unparseable values become NULL."""
    dtype = value.type()
    if dtype.is_null():  # an all-empty column (e.g. pandas None) has no type of its own
        return value.cast(_NULL_AS[kind])
    if kind is Kind.ID or kind is Kind.TEXT:
        return value if dtype.is_string() else value.cast("string")
    if kind is Kind.NUMBER:
        if dtype.is_numeric():
            return value.cast("float64")
        if dtype.is_string():
            return value.try_cast("float64")
    if kind is Kind.TIMESTAMP:
        if dtype.is_string():
            return value.try_cast("timestamp('UTC')").cast("timestamp")
        if dtype.is_timestamp() or dtype.is_date():
            return value.cast("timestamp")
    raise DataContractError(table, column, f"{kind.value}, got column type {dtype}")


def _problem_checks(
    spec: TableSpec, wide: ibis.Table, present: Mapping[str, Kind]
) -> list[tuple[str, str, ir.BooleanValue]]:
    """(column, expectation, condition over raw rows that breaks it)."""
    checks: list[tuple[str, str, ir.BooleanValue]] = []
    for column, kind in present.items():
        source, value = wide[column], wide[_TYPED + column]
        if kind is Kind.ID:
            checks.append((column, "a customer id in every row", source.isnull() | (value == "")))
            continue
        if column not in spec.nullable:
            checks.append(
                (column, f"{kind.value} in every row, not an empty value", source.isnull())
            )
        if kind in (Kind.NUMBER, Kind.TIMESTAMP):
            checks.append((column, kind.value, source.notnull() & value.isnull()))
        if kind is Kind.NUMBER:  # NaN, infinities and absurd sizes would break the sums later
            absurd = value.isnan() | value.isinf() | (value.abs() > LARGEST_NUMBER)
            checks.append(
                (column, f"a finite number of at most {LARGEST_NUMBER:.0e} in size", absurd)
            )
    return checks


def _require_unique_ids(name: str, table: ibis.Table) -> None:
    counts = table.group_by("customer_id").aggregate(n=ibis._.count()).filter(ibis._.n > 1)
    conflicting = int(scalar(counts.count()))
    if conflicting:
        examples = collect(counts.order_by("customer_id").limit(EXAMPLES))["customer_id"]
        raise DataContractError(
            name,
            "customer_id",
            "one row per customer, but some ids have several different rows",
            conflicting,
            examples.tolist(),
        )


def _as_datetime(value: object) -> dt.datetime | None:
    if value is None or value != value:  # None or NaT
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value  # type: ignore[return-value]


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
