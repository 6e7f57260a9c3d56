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

On a single machine the same running totals are cheaper in numpy: the few
distinct probe days cut time into bins, the engine hands over the daily
rows, and numpy runs through them once in (customer, bin) order
(``method="binned"``, see `_binned_at_edges`). Since only the
probe days matter, a family that knows the cutoffs can reduce its rows per
band of days between two probe days rather than per day (`banded_rows`).

Nothing else in the package compares a timestamp with a cutoff.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ibis.expr.datatypes import DataType

from churnmodel.engine import batches, is_spark

EPOCH = ibis.date(1970, 1, 1)

Reduction = Literal["sum", "max", "min"]
Method = Literal["running", "direct", "binned"]

NUMBER = "_churnmodel_customer_number"
"""The binned plan's integer customer key, named so no measure can clash with it."""
DECIMALS = 9
"""Fractional digits kept of float measures, as the SQL plans' DECIMAL(38, 9) sums keep."""


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


def window_edges(aggregates: Mapping[str, Agg]) -> tuple[int, ...]:
    """Every edge (days before the cutoff) at which `history` reads these aggregates.

    >>> window_edges({"n": Agg("n", "sum", Window(30)), "last": Agg("day", "max")})
    (0, 30)
    """
    return tuple(sorted({edge for agg in aggregates.values() for edge in agg.window.edges()}))


def banded_rows(
    table: ibis.Table,
    day: ir.IntegerValue,
    cutoffs: Sequence[dt.date],
    edges: Sequence[int],
    **measures: ir.Value,
) -> ibis.Table:
    """Rows reduced to one per customer and band of days between two probe days.

    `history` reads a window only at its edges, so of each day it needs to
    know just on which side of every probe day (each cutoff minus each of
    `edges`) it lies: the rows between two neighbouring probe days can be
    reduced together, a few rows per customer instead of one per active
    day. Each row's ``day`` is its band's last day (`day` is the rows' day
    number), so `history` places it in the same band; ``band`` is kept for
    joining other banded rows. Rows on or after the last probe day are left
    out: no edge reads them. The result stands for daily rows only in a
    `history` call whose spine's cutoffs are among `cutoffs` and that reads
    no edge but these: measures must mean per band what they would mean
    summed over its days (counts, sums, distinct days), or be a minimum or
    maximum.
    """
    probe_days = sorted({day_number_of(c) - e for c in cutoffs for e in edges})
    if not probe_days:  # no cutoff (no spine row): no edge reads any row, typed as ever
        read, band = table.filter(ibis.literal(False)), ibis.literal(0, "int32")
    else:
        read, band = table.filter(day < probe_days[-1]), _bin(day, probe_days)
    return read.group_by(customer_id=read.customer_id, band=band).aggregate(
        day=day.max(), **measures
    )


def exact_sum(column: ir.NumericValue) -> ir.Value:
    """A measure's sum for `banded_rows`, in the column's type; floats via their DECIMAL total.

    Integers sum exactly as they are. Floats are summed as the
    DECIMAL(38, 9) `history` sums in, so a band's total does not depend on
    the order in which the engine adds its days, and come back as float64
    (rounded once): beyond about 8.4M (2**23) a float64 no longer holds
    every billionth, so such a band total can differ from the exact sum of
    its days by a unit in its last place.
    """
    if not column.type().is_floating():
        return column.sum()
    return column.cast("decimal(38, 9)").sum().cast("float64")


def _bin(day: ir.IntegerValue, probe_days: Sequence[int]) -> ir.IntegerValue:
    """How many of the sorted `probe_days` lie on or before `day`, for days before the last.

    A binary search written as nested CASE: a few comparisons per row where
    a sum of one comparison per probe day (a hundred for a year of monthly
    cutoffs) would cost a hundred, and plain SQL on every engine.
    """

    def search(low: int, high: int) -> ir.IntegerValue:  # the count lies in [low, high]
        if low == high:
            return ibis.literal(low, "int32")
        middle = (low + high + 1) // 2
        return ibis.ifelse(
            day >= probe_days[middle - 1], search(middle, high), search(low, middle - 1)
        )

    return search(0, len(probe_days) - 1)


def plan(table: ibis.Table, cutoffs: int) -> Method:
    """The cheapest `history` plan for the engine that runs `table`.

    A join for one cutoff (batch scoring; at 1M customers its engagement
    pass took 16 s against the binned plan's 19 s). For several, running
    totals: on Spark in SQL, since the work must stay in the cluster, and
    anywhere else binned in numpy.
    """
    if cutoffs <= 1:
        return "direct"
    return "running" if is_spark(table) else "binned"


def plan_for(method: Method, *lookups: Lookup) -> Method:
    """The plan `totals_at_edges` runs when asked for `method`.

    The binned plan reads minimums and maximums of integers (days) only;
    lookups with another one run as running totals in SQL.
    """
    if method == "binned" and not all(_binnable(lookup) for lookup in lookups):
        return "running"
    return method


def history(spine: ibis.Table, *lookups: Lookup, method: Method | None = None) -> ibis.Table:
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

    ``method="binned"`` (the default off Spark) reads the same running
    totals from numpy, without the engine's window sort: see
    `_binned_at_edges`. It runs the
    engine at once rather than when the result is.

    `history` is `with_history` of `totals_at_edges`: a caller that adds
    several passes to one table joins each pass's totals to it once.
    """
    return with_history(spine, totals_at_edges(spine, *lookups, method=method), *lookups)


def totals_at_edges(
    spine: ibis.Table,
    *lookups: Lookup,
    method: Method | None = None,
    probes: Probes | None = None,
) -> ibis.Table:
    """The running totals `history` reads, one row per customer_id and cutoff_day of the spine.

    Spine rows without any daily row before an edge may have no row here.
    Passes over one spine may share `probes`, which the binned plan then
    prepares once.
    """
    for lookup in lookups:
        _check(lookup)
    method = plan_for(method or plan(lookups[0].daily, cutoffs=2), *lookups)
    if method == "binned" and is_spark(spine):
        raise ValueError("the binned plan runs on DuckDB; on Spark use 'running' or 'direct'")
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
    binned = None
    if method == "binned":
        binned = _binned_at_edges((probes or Probes()).of(keyed), lookups, looked_up, edges)
    if binned is not None:
        at_edges = binned
    elif method in ("direct", "binned"):  # binned without probes: the typed empty table
        at_edges = _direct(keyed, ibis.union(*rows), looked_up)
    else:
        at_edges = _running_at_edges(keyed, rows, looked_up, edges, nothing)
    return at_edges


def with_history(table: ibis.Table, at_edges: ibis.Table, *lookups: Lookup) -> ibis.Table:
    """Every row of `table` (customer_id, cutoff, any others) with the lookups' aggregates.

    `at_edges` is `totals_at_edges` of a spine holding `table`'s customers
    and cutoffs; a row it has no totals for gets NULL aggregates. The
    aggregates are computed on `at_edges` before the join, so that they
    are plain columns of the result, which later joins may use as keys.
    """
    aggregates = aggregates_at(at_edges, *lookups)
    joined = table.mutate(cutoff_day=day_number(table.cutoff)).left_join(
        aggregates, ["customer_id", "cutoff_day"]
    )
    return joined.select(*table.columns, *aggregates.columns[2:])


def aggregates_at(at_edges: ibis.Table, *lookups: Lookup) -> ibis.Table:
    """customer_id, cutoff_day and the lookups' aggregates, from `totals_at_edges`' rows.

    A spine row without a row here has no daily row before any edge: a
    caller that keeps only rows with some history can start from these
    rows instead of joining them to its spine.
    """
    return at_edges.select(
        "customer_id",
        "cutoff_day",
        **{
            lookup.prefix + name: _combine(
                at_edges, lookup.prefix, agg, lookup.daily[agg.column].type()
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
    band = _band(days_before, edges)
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


def _band(days_before: ir.IntegerValue, edges: Sequence[int]) -> ir.IntegerValue:
    """How many edges lie before a day (`days_before` the cutoff): at how many it counts."""
    return sum(((days_before > e).cast("int8") for e in edges), ibis.literal(0, "int8"))


def _binned_at_edges(
    prepared: _Prepared | None,
    lookups: Sequence[Lookup],
    looked_up: list[tuple[str, Reduction, int]],
    edges: list[int],
) -> ibis.Table | None:
    """The values `_running_at_edges` reads at its probes, summed in numpy by bins of days.

    The distinct probe days (each cutoff minus each edge: a few dozen for
    monthly cutoffs) cut time into bins; a daily row's bin is the number of
    probe days on or before its day, so the total before probe day ``p_j``
    is the total of the customer's rows in bins ``0..j``. The rows are put
    in (customer, bin) order once, and each measure is one running sum (or
    maximum) over them, read where each probe's rows end (`_Runs`): the
    engine only groups and joins. Integer sums are exact; float measures
    are summed as the billionths DuckDB's cast to DECIMAL(38, 9) gives, in
    two int64 limbs, and handed back as that DECIMAL: the result does not
    depend on the order in which the engine returns rows, and equals the
    SQL plans' to the last digit. Minimums and maximums must be of integers
    (days); `plan_for` runs other ones in SQL. None when there is no
    probe to read.
    """
    if prepared is None:
        return None
    customer, cutoff = prepared.customer, prepared.cutoff
    # from the distinct cutoffs: every probe's days would be a table of probes x edges
    probe_days = np.unique(np.unique(cutoff)[:, None] - np.asarray(edges, dtype=np.int64))
    measures = {
        lookup.prefix + agg.column: _numeric(lookup.daily[agg.column])
        for lookup in lookups
        for agg in lookup.aggregates.values()
    }
    numbers = prepared.numbers(like=lookups[0].daily)
    rows = _numbered_rows(lookups, measures, numbers, before=int(probe_days[-1]))
    runs = _Runs.of(
        row_customer=rows.pop(NUMBER)[0],
        row_bin=np.searchsorted(probe_days, rows.pop("day")[0], side="right"),
        probe_customer=customer,
        probe_bin={e: np.searchsorted(probe_days, cutoff - e) for e in edges},
        bins=len(probe_days),
    )
    out: dict[str, pa.Array | pa.ChunkedArray] = {
        "customer_id": prepared.table["customer_id"],
        "cutoff_day": prepared.table["cutoff_day"],
    }
    for column, how in sorted({(c, how) for c, how, _ in looked_up}):
        wanted = [e for c, h, e in looked_up if (c, h) == (column, how)]
        read = runs.read(*rows[column], how, wanted)
        out.update({_key(column, how, e): read[e] for e in wanted})
    # stored where the daily rows are: the spine may be an in-memory table of no engine
    return _stored(pa.table(out), like=lookups[0].daily)


class Probes:
    """The spine's probes as the binned plan reads them, prepared once for the passes over it.

    Fetching a spine's distinct (customer, cutoff) rows, numbering the
    customers and putting the probes in order took about 2 s a pass at 1M
    customers, and the passes of one matrix read the same spine. A holder
    is meant for one matrix: it prepares again for a spine that is not
    the one it holds.
    """

    def __init__(self) -> None:
        self._keyed: ibis.Table | None = None
        self._prepared: _Prepared | None = None

    def of(self, keyed: ibis.Table) -> _Prepared | None:
        """The prepared probes of `keyed` (customer_id, cutoff_day); None when it has no rows."""
        if self._keyed is None or not self._keyed.equals(keyed):
            self._keyed, self._prepared = keyed, _Prepared.of(keyed)
        return self._prepared


@dataclass
class _Prepared:
    """Probes in (customer, cutoff) order, and their customers numbered.

    In this order each edge's reads run forward through the sorted rows:
    numpy's search for sorted needles took 0.17 s where random ones took 5.3.
    """

    table: pa.Table
    """customer_id and cutoff_day, in that order."""
    customers: pa.Array
    """The distinct customer ids: a customer's number is its place here."""
    customer: np.ndarray
    """Each probe's customer number."""
    cutoff: np.ndarray
    """Each probe's cutoff day."""
    stored: dict[int, ibis.Table] = field(default_factory=dict)

    @classmethod
    def of(cls, keyed: ibis.Table) -> _Prepared | None:
        probes = keyed.to_pyarrow()
        if probes.num_rows == 0:
            return None
        encoded = probes["customer_id"].combine_chunks().dictionary_encode()
        customer = encoded.indices.to_numpy().astype(np.int64)
        cutoff = probes["cutoff_day"].to_numpy().astype(np.int64)
        since = cutoff - cutoff.min()
        order = np.argsort(customer * (int(since.max()) + 1) + since)
        return cls(probes.take(order), encoded.dictionary, customer[order], cutoff[order])

    def numbers(self, like: ibis.Table) -> ibis.Table:
        """The customers and their numbers, stored in `like`'s engine (once per engine)."""
        backend = like._find_backend(use_default=True)
        if id(backend) not in self.stored:
            numbered = {"customer_id": self.customers, NUMBER: np.arange(len(self.customers))}
            self.stored[id(backend)] = _stored(pa.table(numbered), like)
        return self.stored[id(backend)]


def _stored(values: pa.Table, like: ibis.Table) -> ibis.Table:
    """`values` copied into a temporary table of `like`'s engine, dropped with its expression.

    Not a memtable: DuckDB keeps a memtable's Arrow data registered, outside
    its memory limit, until the connection closes. A table is the engine's
    to compress and spill, and goes once nothing refers to it.
    """
    backend = like._find_backend(use_default=True)
    name = f"churnmodel_binned_{uuid.uuid4().hex}"
    table = backend.create_table(name, values, temp=True)
    weakref.finalize(table.op(), _drop_quietly, backend, name).atexit = False
    return table


def _drop_quietly(backend: Any, name: str) -> None:
    """Drop a temporary table; the connection may be closed already (it is gone then too)."""
    with contextlib.suppress(Exception):
        backend.drop_table(name, force=True)


def _numeric(column: ir.Value) -> ir.Value:
    """A measure as int64 (integers, flags) or float64 (any other number)."""
    dtype = column.type()
    return column.cast("int64" if dtype.is_integer() or dtype.is_boolean() else "float64")


def _numbered_rows(
    lookups: Sequence[Lookup], measures: Mapping[str, ir.Value], numbers: ibis.Table, before: int
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The lookups' daily rows before day `before`, each customer as its number in `numbers`.

    Per column: its values as numpy, and which rows hold one (None: all).
    The join drops the rows of customers without probes: nothing reads them.
    `measures` are expressions over the lookups' own daily tables.
    """
    nothing = {c: ibis.null(v.type()) for c, v in measures.items()}
    daily = ibis.union(
        *(
            lookup.daily.select(
                "customer_id",
                day=lookup.daily.day.cast("int64"),
                **{
                    **nothing,
                    **{
                        c: measures[c]
                        for c in (lookup.prefix + a.column for a in lookup.aggregates.values())
                    },
                },
            )
            for lookup in lookups
        )
    )
    needed = daily.filter(daily.day < before).inner_join(numbers, "customer_id")
    return _fetched_narrow(needed.select(NUMBER, "day", *measures))


def _fetched_narrow(
    table: ibis.Table, batch_rows: int = 1 << 20
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """`table`'s columns as numpy, each batch of integers in the narrowest type that holds it.

    Daily counts, flags, days and customer numbers fit one to four bytes:
    at 1M customers the engagement pass fetched 33.5M rows as 2.0 GiB of
    int64, held beside the engine's own memory at the pass's peak. Batches
    are narrowed as they arrive, and a column whose values need more keeps
    them (`np.concatenate` widens to the widest batch), so no value changes.
    """
    parts: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {c: [] for c in table.columns}
    for batch in batches(table, batch_rows):
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            values, present = _as_numbers(column)
            parts[name].append((_narrowest(values), present))
    out = {}
    for name in table.columns:
        columns = parts.pop(name)
        values = _joined([v for v, _ in columns], table[name].type().to_numpy())
        present = None
        if any(p is not None for _, p in columns):
            present = np.concatenate(
                [np.ones(len(v), dtype=bool) if p is None else p for v, p in columns]
            )
        out[name] = (values, present)
    return out


def _narrowest(values: np.ndarray) -> np.ndarray:
    """Integers in the smallest signed type that holds them all; other values as they are."""
    if values.dtype.kind != "i" or len(values) == 0:
        return values
    low, high = int(values.min()), int(values.max())
    for dtype in (np.int8, np.int16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values


def _joined(parts: list[np.ndarray], empty: np.dtype) -> np.ndarray:
    """The batches one after another (an empty array of the column's type when there are none)."""
    return np.concatenate(parts) if parts else np.empty(0, dtype=empty)


def _as_numbers(column: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """A fetched measure as numpy, and which rows hold a value (None: every row does)."""
    missing = column.is_null(nan_is_null=True)  # NaN counts as missing, as SQL skips NULL
    if not pc.any(missing).as_py():
        return column.to_numpy(zero_copy_only=False), None
    present = ~missing.to_numpy(zero_copy_only=False)
    return np.where(present, column.fill_null(0).to_numpy(zero_copy_only=False), 0), present


@dataclass(frozen=True)
class _Runs:
    """Daily rows in (customer, bin) order, and the row at which each probe reads its totals.

    A probe at bin j of its customer reads the customer's rows in bins
    0..j: in this order, the rows from the customer's first up to the last
    one with a bin of at most j. A running sum over all rows, less its value
    before the customer's first row, is their total; in int64 even when the
    running sum wraps, since only the difference is read (exact while each
    customer's own total fits in int64, as it did in the dense grid; SQL
    sums integers in HUGEINT). The work grows
    with rows and probes, not with customers x bins (a dense grid of
    60M cells per measure at 1M customers and 60 probe days).
    """

    order: np.ndarray
    """The fetched row at each sorted place."""
    start: np.ndarray
    """Per sorted row, the place of its customer's first row."""
    segment: np.ndarray
    """Per sorted row, its customer's rank among the customers with rows."""
    reads: Mapping[int, np.ndarray]
    """Per edge and probe, the sorted place it reads; -1 where its customer has no row before."""

    @classmethod
    def of(
        cls,
        row_customer: np.ndarray,
        row_bin: np.ndarray,
        probe_customer: np.ndarray,
        probe_bin: Mapping[int, np.ndarray],
        bins: int,
    ) -> _Runs:
        key = row_customer.astype(np.int64) * bins + row_bin
        order = np.argsort(key)
        key = key[order]
        customer = row_customer[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = customer[1:] != customer[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))
        segment = np.cumsum(first) - 1
        probe_key = probe_customer.astype(np.int64) * bins
        reads = {}
        for edge, probe in probe_bin.items():
            place = np.searchsorted(key, probe_key + probe, side="right") - 1
            own = place >= 0
            own[own] = customer[place[own]] == probe_customer[own]
            reads[edge] = np.where(own, place, -1)
        return cls(order, start, segment, reads)

    def read(
        self, values: np.ndarray, present: np.ndarray | None, how: Reduction, edges: list[int]
    ) -> dict[int, pa.Array]:
        """The `how` of `values` before each edge at every probe; null where none came before."""
        values = values[self.order]
        seen = {e: self.reads[e] >= 0 for e in edges}
        if present is not None:
            present = present[self.order]
            held = self._running_sum(present.astype(np.int64))
            seen = {e: seen[e] & (self._at(held, e) > 0) for e in edges}
        if how == "sum" and values.dtype.kind == "f":
            high, low = (self._running_sum(limb) for limb in _billionth_limbs(values))
            return {e: _decimal(self._at(high, e), self._at(low, e), ~seen[e]) for e in edges}
        if how == "sum":
            running = self._running_sum(values.astype(np.int64))
        else:
            running = self._running_extreme(values, how, present)
        # stored narrow: DuckDB keeps temporary tables uncompressed, 8 bytes per int64
        return {e: pa.array(_narrowest(self._at(running, e)), mask=~seen[e]) for e in edges}

    def _running_sum(self, values: np.ndarray) -> np.ndarray:
        """Per sorted row, the sum of its customer's values up to it."""
        total = np.cumsum(values)
        return np.asarray(total - (total - values)[self.start])

    def _running_extreme(
        self, values: np.ndarray, how: Reduction, present: np.ndarray | None
    ) -> np.ndarray:
        """Per sorted row, the maximum (minimum) of its customer's integers up to it.

        Each customer's values are lifted above every earlier customer's
        (by their rank times the span of all values), so one running
        maximum over all rows restarts at each customer. Values whose span
        would overflow that are replaced by their ranks first. A minimum is
        the maximum of the values inverted bit by bit (``-x - 1``, which
        reverses their order and, unlike ``-x``, cannot overflow).
        """
        flip = how == "min"
        lifted = values.astype(np.int64)
        lifted = np.invert(lifted) if flip else lifted
        if len(lifted) == 0:
            return lifted
        low = int(lifted.min())
        if present is not None:  # missing values count as the lowest: never a maximum
            lifted = np.where(present, lifted, low)
        distinct = None
        span = int(lifted.max()) - low + 1
        if span * (int(self.segment[-1]) + 1) >= 2**62:
            distinct, lifted = np.unique(lifted, return_inverse=True)
            low, span = 0, len(distinct)
        offset = self.segment * span
        running = np.maximum.accumulate(lifted - low + offset) - offset
        extreme = running + low if distinct is None else distinct[running]
        return np.asarray(np.invert(extreme) if flip else extreme)

    def _at(self, running: np.ndarray, edge: int) -> np.ndarray:
        """`running` read at each probe's place for `edge` (0 where it has none)."""
        place = self.reads[edge]
        if len(running) == 0:
            return np.zeros(len(place), dtype=running.dtype)
        return np.where(place >= 0, running[np.maximum(place, 0)], 0)


def _billionth_limbs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floats as DuckDB's DECIMAL(38, 9) holds them, in two int64 limbs that sum exactly.

    DuckDB multiplies by 1e9 in double precision and rounds half away from
    zero; the integer (up to 1e24 for the largest valid amount, 1e15) is
    split as ``high * 2**32 + low`` with ``0 <= low < 2**32``.
    """
    scaled = values * 10.0**DECIMALS
    whole = np.trunc(scaled)
    scaled = whole + np.where(np.abs(scaled - whole) >= 0.5, np.sign(scaled), 0.0)
    high = np.floor(scaled / 2.0**32)
    return high.astype(np.int64), (scaled - high * 2.0**32).astype(np.int64)


def _decimal(high: np.ndarray, low: np.ndarray, missing: np.ndarray) -> pa.Array:
    """Summed limbs as DECIMAL(38, 9): the 128-bit ``high * 2**32 + low``, two's complement."""
    high = high + (low >> 32)  # the carry, so that low fits 32 bits
    words = np.empty((len(high), 2), dtype=np.uint64)
    words[:, 0] = ((high & 0xFFFFFFFF).astype(np.uint64) << np.uint64(32)) | (
        low & 0xFFFFFFFF
    ).astype(np.uint64)
    words[:, 1] = (high >> 32).view(np.uint64)
    valid = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(
        pa.decimal128(38, DECIMALS), len(high), [valid, pa.py_buffer(words)]
    )


def _binnable(lookup: Lookup) -> bool:
    """Whether the binned plan reads every aggregate: its minimums and maximums are of integers."""
    return all(
        agg.how == "sum" or _numeric(lookup.daily[agg.column]).type().is_integer()
        for agg in lookup.aggregates.values()
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


def _combine(at_edges: ibis.Table, prefix: str, agg: Agg, dtype: DataType) -> ir.Value:
    """A window's value from the totals at its edges, in the daily column's type.

    Integer totals take that type before they are subtracted: the binned
    plan stores each in the narrowest type that holds it, too narrow for a
    difference. (Float totals stay DECIMAL, so an empty window is exactly 0.)
    """
    column = prefix + agg.column

    def at(edge: int) -> ir.Value:
        total = at_edges[_key(column, agg.how, edge)]
        return total.cast(dtype) if dtype.is_integer() else total

    upper_edge, *lower = agg.window.edges()
    total = at(upper_edge)
    if lower:
        total = total - ibis.coalesce(at(lower[0]), 0)
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
