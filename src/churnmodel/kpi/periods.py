"""Calendar periods (months or quarters) that the data fully covers.

A KPI of a half-observed period would be wrong without saying so (a month
with ten days of data "loses" most of its customers), so only whole
periods inside the observed range are reported. A non-contractual business
also needs `active_window_days` of history before the first period starts:
until then, who counts as a customer at the period start is unknown.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import ibis.expr.types as ir

from churnmodel.config import LabelConfig
from churnmodel.errors import CutoffError

Period = Literal["month", "quarter"]
MONTHS = {"month": 1, "quarter": 3}


def period_start(day: dt.date, period: Period) -> dt.date:
    """The first day of the month or quarter that contains `day`."""
    month = day.month - (day.month - 1) % MONTHS[period]
    return dt.date(day.year, month, 1)


def first_whole_period(day: dt.date, period: Period) -> dt.date:
    """The start of the first period that begins on or after `day`."""
    start = period_start(day, period)
    return start if start == day else add_months(start, MONTHS[period])


def period_of(when: ir.TimestampValue, period: Period) -> ir.DateValue:
    """The first day of the period a timestamp falls in, as an engine expression."""
    return when.truncate("Q" if period == "quarter" else "M").date()


def add_months(day: dt.date, months: int) -> dt.date:
    """The first of the month `months` after the month of `day`."""
    year, month = divmod(day.month - 1 + months, 12)
    return dt.date(day.year + year, month + 1, 1)


def months_between(first: dt.date, later: dt.date) -> int:
    """Whole calendar months from the month of `first` to the month of `later`."""
    return (later.year - first.year) * 12 + later.month - first.month


def complete_periods(
    observed_from: dt.datetime,
    observed_until: dt.datetime,
    period: Period,
    label: LabelConfig,
) -> list[tuple[dt.date, dt.date]]:
    """(start, end) of every whole period in the data, end exclusive."""
    earliest = observed_from.date()
    if not label.contractual:
        earliest += dt.timedelta(days=label.active_window_days)
    start = first_whole_period(earliest, period)
    periods = []
    while (end := add_months(start, MONTHS[period])) <= observed_until.date():
        periods.append((start, end))
        start = end
    if not periods:
        need = (
            f" after the first {label.active_window_days} days (label.active_window_days)"
            if not label.contractual
            else ""
        )
        raise CutoffError(
            f"the data covers {observed_from.date()} to {observed_until.date()}, which holds no "
            f"whole {period}{need}; KPIs need at least one"
        )
    return periods
