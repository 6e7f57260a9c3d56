"""The single home of the point-in-time rule.

A cutoff ``c`` is a calendar day (00:00 UTC). History at ``c`` is every row
with ``timestamp < c``; a window of ``w`` days is ``[c - w, c)``. Because
cutoffs fall on midnight, ``timestamp < c`` holds exactly when the row's UTC
day number is at most ``day(c) - 1``, so rows can be reduced to one row per
customer and day before any cutoff is looked at.

`history` then answers every windowed question for many cutoffs at once,
at a cost that grows with (customer-days + spine rows), not with rows x
cutoffs: it stacks one *probe* row per (customer, cutoff) under the daily
rows and evaluates window aggregates whose RANGE frame ends one day before
the probe. Plain SQL windows run on DuckDB, Spark and warehouses alike, and
no frame ever reaches the probe's own day, so rows at or after the cutoff
cannot leak into a feature.

Nothing else in the package compares a timestamp with a cutoff.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir

EPOCH = ibis.date(1970, 1, 1)

Reduction = Literal["sum", "max", "min"]


def day_number(value: ir.Value) -> ir.IntegerValue:
    """Whole UTC days since 1970-01-01 of a (naive UTC) timestamp or a date."""
    date = value if value.type().is_date() else value.date()
    return date.delta(EPOCH, unit="day")


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

    def frame(self) -> tuple[int | None, int]:
        """(start, end) offsets in days relative to the cutoff day, both inclusive.

        >>> Window(days=30).frame()  # the 30 days before the cutoff day
        (-30, -1)
        >>> Window(days=30, skip=30).frame()
        (-60, -31)
        >>> label_window(90).frame()  # the cutoff day and the 89 after it
        (0, 89)
        """
        end = -1 - self.skip
        return (None if self.days is None else end - self.days + 1), end


def label_window(horizon_days: int) -> Window:
    """``[c, c + horizon)``: the future the label is about, never read by features."""
    return Window(days=horizon_days, skip=-horizon_days)


@dataclass(frozen=True)
class Agg:
    """Reduce a daily column over a window: ``Agg("purchases", "sum", Window(90))``."""

    column: str
    how: Reduction
    window: Window = Window()


def daily_rows(table: ibis.Table, **measures: ir.Value) -> ibis.Table:
    """Reduce rows to one per (customer_id, day) with the given aggregates."""
    return table.group_by(customer_id=table.customer_id, day=day_number(table.timestamp)).aggregate(
        **measures
    )


def history(daily: ibis.Table, spine: ibis.Table, **aggregates: Agg) -> ibis.Table:
    """One row per spine row (customer_id, cutoff) with each aggregate over its window.

    `daily` has columns customer_id, day (day number) and the measured columns.
    A spine row whose customer has no daily rows gets NULL, so a builder can
    tell "no history" from zero.
    """
    measured = sorted({agg.column for agg in aggregates.values()})
    types = daily.schema()
    probes = spine.select(
        customer_id=spine.customer_id,
        cutoff=spine.cutoff,
        day=day_number(spine.cutoff),
        **{c: ibis.null(types[c]) for c in measured},
    )
    rows = daily.select(
        customer_id=daily.customer_id,
        cutoff=ibis.null("date"),
        day=daily.day,
        **{c: daily[c] for c in measured},
    )
    stacked = probes.union(rows)
    reduced = stacked.mutate(**{name: _reduce(stacked, agg) for name, agg in aggregates.items()})
    return reduced.filter(reduced.cutoff.notnull()).select("customer_id", "cutoff", *aggregates)


def _reduce(table: ibis.Table, agg: Agg) -> ir.Value:
    frame = ibis.window(group_by="customer_id", order_by="day", range=agg.window.frame())
    column = table[agg.column]
    reduced = {"sum": column.sum, "max": column.max, "min": column.min}[agg.how]()
    return reduced.over(frame)


def cutoff_day(spine: ibis.Table) -> ir.IntegerValue:
    """The day number of each spine row's cutoff, for days-since features."""
    return day_number(spine.cutoff)


def cutoffs_table(cutoffs: list[dt.date]) -> ibis.Table:
    """The cutoffs as a one-column table of dates, for cross joins."""
    import pyarrow as pa

    return ibis.memtable(pa.table({"cutoff": pa.array(sorted(set(cutoffs)), pa.date32())}))


def before(timestamp: ir.TimestampValue, cutoff: ir.Value) -> ir.BooleanValue:
    """``timestamp < cutoff``: the row belongs to the history at the cutoff."""
    return timestamp < cutoff.cast("timestamp")


def within_label_window(
    timestamp: ir.TimestampValue, cutoff: ir.Value, horizon_days: int
) -> ir.BooleanValue:
    """``cutoff <= timestamp < cutoff + horizon``."""
    start = cutoff.cast("timestamp")
    return (timestamp >= start) & (timestamp < start + ibis.interval(days=horizon_days))
