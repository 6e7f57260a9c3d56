"""The single home of the point-in-time rule.

A cutoff ``c`` is a calendar day (00:00 UTC). History at ``c`` is every row
with ``timestamp < c``; a window of ``w`` days is ``[c - w, c)``. Because
cutoffs fall on midnight, ``timestamp < c`` holds exactly when the row's UTC
day number is at most ``day(c) - 1``, so rows can be reduced to one row per
customer and day before any cutoff is looked at.

`history` then answers every windowed question for many cutoffs at once,
at a cost that grows with (customer-days + spine rows x window edges), not
with rows x cutoffs: it stacks probe rows at each window edge under the
daily rows, sorted before the rows of their own day, and reads running
totals at the probes. Plain SQL window functions run on DuckDB, Spark and
warehouses alike, and a probe at the cutoff only ever sees days before it,
so rows at or after the cutoff cannot leak into a feature.

Nothing else in the package compares a timestamp with a cutoff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir
import pyarrow as pa

EPOCH = ibis.date(1970, 1, 1)

Reduction = Literal["sum", "max", "min"]
Method = Literal["running", "direct"]


def day_number(value: ir.Value) -> ir.IntegerValue:
    """Whole UTC days since 1970-01-01 of a (naive UTC) timestamp or a date."""
    date = value if value.type().is_date() else value.date()
    return date.delta(EPOCH, unit="day")


def day_number_of(day: dt.date) -> int:
    """The day number of a calendar day, as `day_number` computes it in the engine.

    >>> day_number_of(dt.date(1970, 1, 2))
    1
    """
    return (day - dt.date(1970, 1, 1)).days


@dataclass(frozen=True)
class Window:
    """A span of days relative to the cutoff.

    ``Window(days=90)`` is ``[c - 90, c)``; ``Window(days=90, skip=90)`` is the
    90 days before that, ``[c - 180, c - 90)``; ``Window()`` is all history
    ``(-inf, c)``. Only `label_window` may look past the cutoff.
    """

    days: int | None = None
    skip: int = 0

    def __post_init__(self) -> None:
        if self.days is not None and self.days <= 0:
            raise ValueError(f"Window.days must be positive, got {self.days}")

    def edges(self) -> tuple[int, ...]:
        """Days before the cutoff at which running totals are read: end, then start.

        A total "at edge e" covers every day before ``c - e``.

        >>> Window(days=30).edges()
        (0, 30)
        >>> Window().edges()
        (0,)
        """
        end = self.skip
        return (end,) if self.days is None else (end, end + self.days)


def label_window(horizon_days: int) -> Window:
    """``[c, c + horizon)``: the future the label is about, never read by features.

    >>> label_window(90).edges()  # totals before c + 90 minus totals before c
    (-90, 0)
    """
    return Window(days=horizon_days, skip=-horizon_days)


@dataclass(frozen=True)
class Agg:
    """Reduce a daily column over a window: ``Agg("purchases", "sum", Window(90))``."""

    column: str
    how: Reduction
    window: Window = Window()


@dataclass(frozen=True)
class Lookup:
    """Aggregates over one daily table; output columns are ``prefix + name``."""

    prefix: str
    daily: ibis.Table
    aggregates: Mapping[str, Agg]


def daily_rows(table: ibis.Table, **measures: ir.Value) -> ibis.Table:
    """Reduce rows to one per (customer_id, day) with the given aggregates."""
    return table.group_by(customer_id=table.customer_id, day=day_number(table.timestamp)).aggregate(
        **measures
    )


def history(spine: ibis.Table, *lookups: Lookup, method: Method = "running") -> ibis.Table:
    """Every spine row (all its columns) with each lookup's aggregates over their windows.

    Each daily table has columns customer_id, day (day number) and the
    measured columns. A spine row whose customer has no daily rows before a
    window's end gets NULL there, so a builder can tell "no history" from 0.

    How: a windowed sum is the difference of two running totals, taken at
    the window's two edges. Probe rows at each edge are stacked under the
    daily rows of every lookup and sorted before the rows of their own day,
    so a running aggregate over ``ROWS UNBOUNDED PRECEDING`` at a probe
    covers exactly the days before that edge. The lookups of one call share
    one sort and one set of probes, with one running aggregate per measured
    column, where a RANGE frame per window would need one aggregate per
    window. Sums run in DECIMAL so that an empty window is exactly 0, not a
    rounding residue.

    ``method="direct"`` gives the same result by joining the daily rows to
    each spine row, reducing them per band of days between two edges, and
    reading each edge as the reduction over the bands before it: no sort,
    but every daily row is repeated once per cutoff of its customer. It is
    the cheaper plan for one cutoff (batch scoring); the running totals win
    as soon as there are several.
    """
    for lookup in lookups:
        _check(lookup)
    looked_up = sorted(
        {
            (lookup.prefix + agg.column, agg.how, edge)
            for lookup in lookups
            for agg in lookup.aggregates.values()
            for edge in agg.window.edges()
        }
    )
    edges = sorted({edge for _, _, edge in looked_up})
    types = {c: v.type() for lookup in lookups for c, v in _measures(lookup).items()}
    nothing = {c: ibis.null(t) for c, t in types.items()}

    # Probe rows carry only (customer, day, edge): narrow rows sort faster and
    # take less memory; the spine's other columns are joined back at the end.
    keyed = spine.select("customer_id", cutoff_day=day_number(spine.cutoff)).distinct()
    rows = [
        lookup.daily.select(
            "customer_id", "day", edge=ibis.null("int32"), **{**nothing, **_measures(lookup)}
        )
        for lookup in lookups
    ]
    if method == "direct":
        at_edges = _direct(keyed, ibis.union(*rows), looked_up)
    else:
        at_edges = _running_at_edges(keyed, rows, looked_up, edges, nothing)
    joined = spine.mutate(cutoff_day=day_number(spine.cutoff)).left_join(
        at_edges, ["customer_id", "cutoff_day"]
    )
    return joined.select(
        *spine.columns,
        **{
            lookup.prefix + name: _combine(
                joined, lookup.prefix, agg, lookup.daily[agg.column].type()
            )
            for lookup in lookups
            for name, agg in lookup.aggregates.items()
        },
    )


def _running_at_edges(
    keyed: ibis.Table,
    rows: list[ibis.Table],
    looked_up: list[tuple[str, Reduction, int]],
    edges: list[int],
    nothing: Mapping[str, ir.Value],
) -> ibis.Table:
    """Running totals read at probe rows stacked under the daily rows (see `history`)."""
    probes = [
        keyed.select(
            "customer_id",
            day=keyed.cutoff_day - edge,
            edge=ibis.literal(edge, "int32"),
            **nothing,
        )
        for edge in edges
    ]
    stacked = ibis.union(*probes, *rows)
    # Probes (edge not null) sort before the daily rows of their own day.
    probes_first = ibis.window(
        group_by="customer_id", order_by=["day", stacked.edge.isnull()], rows=(None, 0)
    )
    totals = sorted({(c, how) for c, how, _ in looked_up})
    running = stacked.mutate(
        **{_key(c, how): _running(stacked[c], how).over(probes_first) for c, how in totals}
    ).filter(lambda t: t.edge.notnull())
    return running.group_by("customer_id", cutoff_day=running.day + running.edge).aggregate(
        **{
            _key(c, how, e): running[_key(c, how)].max(where=running.edge == e)
            for c, how, e in looked_up
        }
    )


def _direct(
    keyed: ibis.Table, rows: ibis.Table, looked_up: list[tuple[str, Reduction, int]]
) -> ibis.Table:
    """The same values as `_running_at_edges`, by aggregates over joined rows.

    Each joined row is first given its *band*: how many edges lie before
    it, i.e. at how many edges it counts (``day < cutoff - e``). One plain
    aggregate per measure and band then reduces the rows, and the value at
    an edge is the same reduction over the few bands beyond it, instead of
    one filtered aggregate per measure and edge over every joined row.
    """
    edges = sorted({e for _, _, e in looked_up})
    totals = sorted({(c, how) for c, how, _ in looked_up})
    pairs = keyed.inner_join(rows, "customer_id")
    days_before = pairs.cutoff_day - pairs.day
    band = sum(((days_before > e).cast("int8") for e in edges), ibis.literal(0, "int8"))
    counted = pairs.filter(days_before > edges[0])  # rows no edge reads are left out
    per_band = counted.group_by("customer_id", "cutoff_day", band=band).aggregate(
        **{_key(c, how): _running(counted[c], how) for c, how in totals}
    )
    return per_band.group_by("customer_id", "cutoff_day").aggregate(
        **{
            _key(c, how, e): _running(
                per_band[_key(c, how)], how, where=per_band.band > edges.index(e)
            )
            for c, how, e in looked_up
        }
    )


def _check(lookup: Lookup) -> None:
    for name, agg in lookup.aggregates.items():
        if agg.how != "sum" and agg.window.days is not None:
            raise ValueError(
                f"{lookup.prefix}{name}: '{agg.how}' is only supported over all history"
            )


def _measures(lookup: Lookup) -> dict[str, ir.Value]:
    """The lookup's measured daily columns, prefixed, sums made exact."""
    return {
        lookup.prefix + agg.column: _summable(lookup.daily[agg.column])
        for agg in lookup.aggregates.values()
    }


def _summable(column: ir.Value) -> ir.Value:
    return column.cast("decimal(38, 9)") if column.type().is_floating() else column


def _running(column: ir.Value, how: Reduction, where: ir.BooleanValue | None = None) -> ir.Value:
    return {"sum": column.sum, "max": column.max, "min": column.min}[how](where=where)


def _key(column: str, how: str, edge: int | None = None) -> str:
    """Name of a running total, or of its value at an edge."""
    return f"{column}__{how}" + ("" if edge is None else f"__{edge}".replace("-", "m"))


def _combine(at_edges: ibis.Table, prefix: str, agg: Agg, dtype: object) -> ir.Value:
    upper_edge, *lower = agg.window.edges()
    column = prefix + agg.column
    total = at_edges[_key(column, agg.how, upper_edge)]
    if lower:
        total = total - ibis.coalesce(at_edges[_key(column, agg.how, lower[0])], 0)
    return total.cast(dtype)


def may_overlap(
    first_day: ir.IntegerValue, last_day: ir.IntegerValue, cutoff: ir.Value, days: int
) -> ir.BooleanValue:
    """Whether activity between two day numbers can fall in ``[c - days, c)``.

    A necessary condition only, for pruning candidates before `history`.
    """
    today = day_number(cutoff)
    return (first_day < today) & (last_day >= today - days)


def cutoff_day(spine: ibis.Table) -> ir.IntegerValue:
    """The day number of each spine row's cutoff, for days-since features."""
    return day_number(spine.cutoff)


def cutoffs_table(cutoffs: list[dt.date]) -> ibis.Table:
    """The cutoffs as a one-column table of dates, for cross joins."""
    return ibis.memtable(pa.table({"cutoff": pa.array(sorted(set(cutoffs)), pa.date32())}))


def before(timestamp: ir.TimestampValue, cutoff: ir.Value) -> ir.BooleanValue:
    """``timestamp < cutoff``: the row belongs to the history at the cutoff."""
    return timestamp < cutoff.cast("timestamp")


def within_history_window(
    timestamp: ir.TimestampValue, cutoff: ir.Value, days: int
) -> ir.BooleanValue:
    """``cutoff - days <= timestamp < cutoff``: in the `days`-day window of history."""
    start = cutoff.cast("timestamp")
    return (timestamp >= start - ibis.interval(days=days)) & (timestamp < start)


def within_label_window(
    timestamp: ir.TimestampValue, cutoff: ir.Value, horizon_days: int
) -> ir.BooleanValue:
    """``cutoff <= timestamp < cutoff + horizon``."""
    start = cutoff.cast("timestamp")
    return (timestamp >= start) & (timestamp < start + ibis.interval(days=horizon_days))
