"""Checks across rows and tables that the per-column contract cannot make.

A handful of bad rows must never move every customer's result in silence:
one transaction dated 2062 once moved the default scoring date forty years,
and ids typed differently in two tables once doubled the customer count.
Each finding here is either an error (the run stops, exit 2, naming table,
column, count and examples) or a warning that the run logs and records,
with the `[data]` setting that changes it.

- **Timestamps outside the regular range** (`regular_range`): rows after
  today, before 1970, or cut off from the rest by a long empty gap are left
  out of the observed range, so they move neither the default scoring date
  nor the cutoff schedule. When they are more than `max_outlier_share` of
  the rows, the run stops: that many are not outliers but a data problem.
- **Ids that match no customer** (`id_findings`), per table, and ids that
  look damaged: spaces at either end, float-like (`1677.0`), or written in
  a Unicode form other than NFC. Above `max_unmatched_share` of a table's
  rows the run stops.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnmodel.config import NumberStyle
from churnmodel.engine import collect

if TYPE_CHECKING:
    from churnmodel.data.validate import TableReport
from churnmodel.errors import DataContractError

log = logging.getLogger(__name__)

EXAMPLES = 3
EARLIEST_PLAUSIBLE = dt.date(1970, 1, 1)
"""Activity before this is taken for a placeholder date (1900-01-01, 0001-01-01), not history."""
MIN_GAP_DAYS = 14
"""An empty stretch this long (and 10x the usual gap) cuts stray rows off the regular range."""
GAP_FACTOR = 10


@dataclass(frozen=True)
class QualityRules:
    """The `[data]` settings of the quality checks (see `DataConfig`)."""

    number_style: NumberStyle = "check"
    max_outlier_share: float = 0.001
    max_unmatched_share: float = 0.01
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())


@dataclass(frozen=True)
class RegularRange:
    """The first and last day of regular activity, and the warnings about rows outside it."""

    first: dt.date
    last: dt.date
    findings: tuple[str, ...]


def regular_range(days: pd.DataFrame, rules: QualityRules) -> RegularRange:
    """The span of days that holds the regular activity, and what lies outside it.

    `days` has one row per table and active day: `table`, `day` (a date),
    `rows`. Days after `rules.today`, before 1970, or beyond an empty gap of
    at least `MIN_GAP_DAYS` and `GAP_FACTOR` times the median gap at either
    end are outliers when their rows are at most `max_outlier_share` of all
    rows (or a single row); more than that stops the run, as any does at 0.
    A gap with more rows than that on its far side is regular data: a
    business that paused.
    """
    total = int(days["rows"].sum())
    # at least one stray row is always an outlier, not a reason to stop (unless the share is 0)
    budget = max(1, int(rules.max_outlier_share * total)) if rules.max_outlier_share else 0
    by_day = days.groupby("day")["rows"].sum().sort_index()
    # a day of slack: local timestamps east of UTC may already be "tomorrow"
    hard = (by_day.index > rules.today + dt.timedelta(days=1)) | (by_day.index < EARLIEST_PLAUSIBLE)
    spare = max(budget, 1) - int(by_day[hard].sum())  # at share 0, found to be refused below
    regular = _trim_gap(by_day[~hard], spare, from_end=True)
    spare -= int(by_day[~hard].sum() - regular.sum())
    regular = _trim_gap(regular, spare, from_end=False)
    if regular.empty:
        _refuse_outliers(days, total, rules)
    first, last = regular.index[0], regular.index[-1]
    outside = days[(days["day"] < first) | (days["day"] > last)]
    if outside["rows"].sum() > budget:
        _refuse_outliers(outside, total, rules)
    findings = tuple(
        _outlier_warning(table, rows, first, last, rules)
        for table, rows in outside.groupby("table", sort=True)
    )
    for finding in findings:
        log.warning(finding)
    return RegularRange(first, last, findings)


def _trim_gap(by_day: pd.Series, allowed: int, from_end: bool) -> pd.Series:
    """`by_day` without at most `allowed` rows cut off by a long empty gap at one end."""
    if len(by_day) < 3 or allowed < 1:
        return by_day
    gaps = pd.Series([(b - a).days for a, b in itertools.pairwise(by_day.index)])
    long_gap = max(MIN_GAP_DAYS, GAP_FACTOR * float(gaps.median()))
    order = range(len(gaps) - 1, -1, -1) if from_end else range(len(gaps))
    beyond = 0
    cut: int | None = None
    for i in order:  # walk inward while the rows beyond stay few; the innermost long gap wins
        beyond += int(by_day.iloc[i + 1] if from_end else by_day.iloc[i])
        if beyond > allowed:
            break
        if gaps[i] >= long_gap:
            cut = i
    if cut is None:
        return by_day
    return by_day.iloc[: cut + 1] if from_end else by_day.iloc[cut + 1 :]


def _outlier_warning(
    table: str, rows: pd.DataFrame, first: dt.date, last: dt.date, rules: QualityRules
) -> str:
    count = int(rows["rows"].sum())
    examples = ", ".join(str(d) for d in sorted(rows["day"])[:EXAMPLES])
    return (
        f"table '{table}', column 'timestamp': {count:,} row(s) outside the regular activity "
        f"from {first} to {last} (e.g. {examples}); they do not move the default scoring date "
        f"({last + dt.timedelta(days=1)}) or the cutoff schedule. Set data.max_outlier_share "
        f"= 0 to stop on them instead (now {rules.max_outlier_share:g})"
    )


def _refuse_outliers(outside: pd.DataFrame, total: int, rules: QualityRules) -> NoReturn:
    table, rows = max(outside.groupby("table"), key=lambda item: int(item[1]["rows"].sum()))
    raise DataContractError(
        str(table),
        "timestamp",
        f"activity between {EARLIEST_PLAUSIBLE} and today ({rules.today}) without stray "
        f"rows beyond long gaps; {int(outside['rows'].sum()):,} of {total:,} activity rows lie "
        f"outside, more than data.max_outlier_share = {rules.max_outlier_share:g} allows",
        int(rows["rows"].sum()),
        [str(d) for d in sorted(rows["day"])[:EXAMPLES]],
    )


def active_days(tables: Mapping[str, ibis.Table]) -> pd.DataFrame:
    """Rows per table and day of the activity tables (`table`, `day`, `rows`)."""
    parts = [
        collect(table.group_by(day=table.timestamp.date()).aggregate(rows=ibis._.count())).assign(
            table=name
        )
        for name, table in tables.items()
        if name in ("transactions", "events")
    ]
    days = pd.concat(parts, ignore_index=True)
    days["day"] = pd.to_datetime(days["day"]).dt.date
    return days


def id_findings(
    tables: Mapping[str, ibis.Table], reports: Mapping[str, TableReport], rules: QualityRules
) -> tuple[str, ...]:
    """Warnings about suspicious ids; errors when too many rows match no customer.

    Ids are kept exactly as given (``0042`` is not ``42``), so a table that
    writes them differently from `customers` silently joins nothing; this
    is where it is said. Row counts and suspicious-id counts come from
    validation's own pass (`reports`); only examples are fetched here.
    """
    findings = [
        f
        for name, table in tables.items()
        for f in _suspicious_ids(name, table, reports[name].suspicious_ids)
    ]
    customers = tables.get("customers")
    if customers is not None:
        known = customers.select("customer_id").distinct()
        for name, table in tables.items():
            if name != "customers":
                findings.extend(_unmatched(name, table, reports[name].rows, known, rules))
    for finding in findings:
        log.warning(finding)
    return tuple(findings)


def _unmatched(
    name: str, table: ibis.Table, total: int, known: ibis.Table, rules: QualityRules
) -> list[str]:
    stray = table.anti_join(known, "customer_id")
    counts = collect(stray.aggregate(rows=ibis._.count(), ids=stray.customer_id.nunique())).iloc[0]
    rows, ids = int(counts["rows"]), int(counts["ids"])
    if not rows:
        return []
    examples = collect(
        stray.select("customer_id").distinct().order_by("customer_id").limit(EXAMPLES)
    )["customer_id"].tolist()
    what = (
        f"{rows:,} of {total:,} rows ({ids:,} ids) have a customer_id that is not in "
        f"'customers' (e.g. {', '.join(map(repr, examples))}); ids are compared exactly as "
        "text, so '0042' is not '42'"
    )
    if rows > rules.max_unmatched_share * total:
        raise DataContractError(
            name,
            "customer_id",
            f"ids that appear in table 'customers'; {what}. Fix the ids, or set "
            f"data.max_unmatched_share (now {rules.max_unmatched_share:g}) to at least "
            f"{rows / total:.3g} to take them as customers with no profile",
        )
    return [
        f"table '{name}', column 'customer_id': {what}; they are scored as customers "
        f"without a profile (data.max_unmatched_share = {rules.max_unmatched_share:g})"
    ]


SUSPICIONS: dict[str, str] = {
    "spaces": "spaces at the start or end",
    "float": "the look of a float ('1677.0'), as a number column saved as text gives",
    "unicode": "characters outside ASCII, in a Unicode form other than NFC",
}


def suspicious_id_conditions(ids: ir.StringValue) -> dict[str, ir.BooleanValue]:
    """For each of `SUSPICIONS`, whether an id looks that way (non-ASCII: NFC is checked later)."""
    return {
        "spaces": ids != ids.strip(),
        "float": ids.re_search(r"^-?[0-9]+\.0+$"),
        "unicode": ids.re_search(r"[^\x00-\x7F]"),
    }


def _suspicious_ids(name: str, table: ibis.Table, counts: Mapping[str, int]) -> list[str]:
    conditions = suspicious_id_conditions(table.customer_id)
    findings = []
    for kind, count in counts.items():
        values = collect(
            table.filter(conditions[kind]).select("customer_id").distinct().limit(10_000)
        )
        examples = values["customer_id"].tolist()
        if kind == "unicode":
            examples = [v for v in examples if not unicodedata.is_normalized("NFC", v)]
            if not examples:
                continue
            count = len(examples)
        shown = ", ".join(repr(v) for v in examples[:EXAMPLES])
        findings.append(
            f"table '{name}', column 'customer_id': {count:,} "
            f"{'ids' if kind == 'unicode' else 'rows'} with {SUSPICIONS[kind]} "
            f"(e.g. {shown}); ids are kept exactly as given, so these match only ids "
            "written the same way"
        )
    return findings
