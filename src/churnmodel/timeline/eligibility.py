"""Who is a customer at a cutoff, for both kinds of business.

* contractual: signed up before the cutoff (or signup date unknown) and not
  churned before it;
* non-contractual: had qualifying activity in ``[c - active_window, c)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import ibis

from churnmodel.config import LabelConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.engine import cache
from churnmodel.errors import DataContractError
from churnmodel.pointintime import (
    Agg,
    Lookup,
    Window,
    aggregates_at,
    banded_rows,
    before,
    cutoffs_table,
    daily_rows,
    day_number,
    may_overlap,
    plan,
    totals_at_edges,
    window_edges,
)


def activity_rows(tables: ValidatedTables, label: LabelConfig) -> ibis.Table:
    """(customer_id, timestamp) of qualifying activity: transactions, or any row."""
    parts = [
        tables.tables[name].select("customer_id", "timestamp")
        for name in label.counts_as_activity
        if name in tables.tables
    ]
    if not parts:
        raise DataContractError(
            "transactions", None, "a transactions table when label.activity = 'transactions'"
        )
    return parts[0] if len(parts) == 1 else parts[0].union(parts[1])


def activity_days(tables: ValidatedTables, label: LabelConfig) -> ibis.Table:
    """One row per (customer_id, day) with qualifying activity, `active` = rows that day."""
    return daily_rows(activity_rows(tables, label), active=ibis._.count())


def activity_bands(
    tables: ValidatedTables, label: LabelConfig, cutoffs: Sequence[dt.date], edges: Sequence[int]
) -> ibis.Table:
    """`activity_days` reduced per band of days between probe days (`banded_rows`).

    Also `first`, the band's first active day, so that a customer's span of
    activity can be read from the bands.
    """
    rows = activity_rows(tables, label)
    day = day_number(rows.timestamp)
    return banded_rows(rows, day, cutoffs, edges, first=day.min(), active=ibis._.count())


def eligible(
    tables: ValidatedTables,
    cutoffs: list[dt.date],
    label: LabelConfig,
    also: Mapping[str, Agg] | None = None,
) -> ibis.Table:
    """(customer_id, cutoff) for every customer eligible at each cutoff.

    `also` (non-contractual only) adds aggregates of the same qualifying
    activity as columns, read in the same history pass: labels need the
    activity after the cutoff of exactly the eligible rows.
    """
    grid = cutoffs_table(cutoffs)
    if label.contractual:
        if also:
            raise ValueError("a contractual business has no activity pass to add aggregates to")
        return _contractual(tables, grid)
    return _non_contractual(tables, grid, label, sorted(set(cutoffs)), also or {})


def signup_dates(tables: ValidatedTables) -> ibis.Table:
    """(customer_id, signup_date): the customers table's, else the first row of each customer.

    Without a signup_date column a contract is taken to start with the
    customer's first transaction or event; only rows before a cutoff can
    make that date fall before it, so the rule reads no future.
    """
    customers = tables.get("customers")
    if customers is not None and "signup_date" in customers.columns:
        return customers.select("customer_id", "signup_date")
    seen = [
        tables.tables[n].select("customer_id", "timestamp")
        for n in ("transactions", "events")
        if n in tables.tables
    ]
    rows = ibis.union(*seen) if len(seen) > 1 else seen[0]
    first = rows.group_by("customer_id").aggregate(signup_date=rows.timestamp.min())
    if customers is None:
        return first
    # a customers row without any activity: signed up before the data began
    return (
        customers.select("customer_id")
        .left_join(first, "customer_id")
        .select("customer_id", "signup_date")
    )


def _contractual(tables: ValidatedTables, grid: ibis.Table) -> ibis.Table:
    churn = tables.get("churn")
    if churn is None:
        raise DataContractError(
            "churn", None, "a churn table for a contractual business (label.business)"
        )
    pairs = signup_dates(tables).cross_join(grid)
    pairs = pairs.left_join(churn.select("customer_id", "churn_date"), "customer_id")
    # An unknown signup date is a customer from before the data began.
    signed_up = pairs.signup_date.isnull() | before(pairs.signup_date, pairs.cutoff)
    churned = pairs.churn_date.notnull() & before(pairs.churn_date, pairs.cutoff)
    return pairs.filter(signed_up & ~churned).select("customer_id", "cutoff")


def _non_contractual(
    tables: ValidatedTables,
    grid: ibis.Table,
    label: LabelConfig,
    cutoffs: list[dt.date],
    also: Mapping[str, Agg],
) -> ibis.Table:
    aggregates = {"active": Agg("active", "sum", Window(days=label.active_window_days)), **also}
    bands = activity_bands(tables, label, cutoffs, window_edges(aggregates))
    method = plan(bands, len(cutoffs))
    if method == "binned":
        # which runs now, reading the bands twice (for the spans, then as rows): stored
        # once, and dropped with the last expression that reads them
        bands = cache(bands)
    # Only customers whose activity span reaches into the window can qualify;
    # pruning the rest keeps the history pass small. The pass decides.
    spans = bands.group_by("customer_id").aggregate(
        first=bands["first"].min(), last=bands.day.max()
    )
    pairs = spans.cross_join(grid)
    reaches = may_overlap(pairs["first"], pairs["last"], pairs.cutoff, label.active_window_days)
    candidates = pairs.filter(reaches).select("customer_id", "cutoff")
    lookup = Lookup("", bands, aggregates)
    totals = totals_at_edges(candidates, lookup, method=method)
    # Eligible rows have activity before the cutoff, so each has a row of totals: they are
    # read from those rows, not joined back to the candidates, whose query would run again.
    found = aggregates_at(totals, lookup)
    found = found.filter(found.active > 0)
    days = grid.select("cutoff", cutoff_day=day_number(grid.cutoff))
    return found.inner_join(days, "cutoff_day").select("customer_id", "cutoff", *also)
