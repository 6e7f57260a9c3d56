"""NULL-aware arithmetic and window declarations shared by the feature families."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnmodel.pointintime import Agg, Window

MONTH = 30
"""Rates are given per 30 days."""


def zero_if_null(value: ir.NumericValue) -> ir.NumericValue:
    """A SQL sum over no rows is NULL; a count or an amount over no rows is 0."""
    return ibis.coalesce(value, 0)


def ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """Numerator / denominator; NULL (not infinity) when the denominator is 0 or NULL."""
    quotient = numerator.cast("float64") / denominator
    return ibis.ifelse(denominator > 0, quotient, ibis.null("float64"))


def trend(recent: ir.NumericValue, previous: ir.NumericValue) -> ir.FloatingValue:
    """Recent window over the window before it; NULL when the earlier one was empty."""
    return ratio(zero_if_null(recent), previous)


def at_least(value: ir.NumericValue, floor: int) -> ir.NumericValue:
    """`value`, but no less than `floor`; NULL stays NULL (SQL's GREATEST would skip it)."""
    return ibis.ifelse(value.isnull(), ibis.null(value.type()), ibis.greatest(value, floor))


def observed_span(today: ir.IntegerValue, data_start: int, days: int) -> ir.IntegerValue:
    """Days of a `days`-long window before the cutoff that lie inside the data.

    The denominator of a rate over a window that reaches back past the first
    day of data; 0 or less (no data before the cutoff) makes `ratio` NULL.
    """
    return ibis.least(days, today - data_start)


def windowed_sums(
    column: str, name: str, windows: list[int], trend_windows: list[int]
) -> dict[str, Agg]:
    """Sums of `column` per window (``{name}_{w}``) and the window before (``{name}_prev_{t}``)."""
    sums = {f"{name}_{w}": Agg(column, "sum", Window(w)) for w in {*windows, *trend_windows}}
    sums.update({f"{name}_prev_{t}": Agg(column, "sum", Window(t, skip=t)) for t in trend_windows})
    return sums
