"""Cutoff schedules: when snapshots are taken.

Training only uses cutoffs whose label window ``[c, c + horizon)`` lies
inside the observed data; a cutoff whose window runs past the end of the
data would call every recent customer a churner.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from churnmodel.config import CutoffConfig
from churnmodel.errors import CutoffError

log = logging.getLogger(__name__)


def schedule(first: dt.date, last: dt.date, every: str) -> list[dt.date]:
    """Every `every` ("7d", "2w", "1mo") from `first` up to and including `last`."""
    match = re.fullmatch(r"([1-9]\d*)(d|w|mo)", every)
    if match is None:
        raise CutoffError(f"cutoffs.every: expected a step like '7d', '2w' or '1mo', got {every!r}")
    step, unit = int(match[1]), match[2]
    dates: list[dt.date] = []
    current, i = first, 0
    while current <= last:
        dates.append(current)
        i += 1
        current = (
            _months_after(first, step * i)
            if unit == "mo"
            else first + dt.timedelta(days=step * i * (7 if unit == "w" else 1))
        )
    return dates


def _months_after(start: dt.date, months: int) -> dt.date:
    year, month = divmod(start.month - 1 + months, 12)
    target = dt.date(start.year + year, month + 1, 1)
    next_month = dt.date(target.year + target.month // 12, target.month % 12 + 1, 1)
    return target.replace(day=min(start.day, (next_month - target).days))


def training_cutoffs(
    config: CutoffConfig,
    observed_from: dt.datetime,
    observed_until: dt.datetime,
    horizon_days: int,
    history_days: int,
    explicit: list[dt.date] | None = None,
) -> list[dt.date]:
    """The cutoffs to build a training set on.

    `explicit` cutoffs (e.g. from ``--cutoff`` flags) are used as given, but
    each must have its label window inside the data. By default the first
    cutoff leaves `history_days` of data before it (so the longest feature
    window is fully observed), aligned to the first of a month for monthly
    steps; the last is the latest whose label window ends by `observed_until`.
    Cutoffs whose label window is not fully observed are dropped, and the
    drop is logged.
    """
    if explicit:
        unobserved = [c for c in explicit if not label_observed(c, horizon_days, observed_until)]
        if unobserved:
            raise CutoffError(
                f"cutoff(s) {', '.join(map(str, unobserved))}: the {horizon_days}-day label window "
                f"ends after the data ({observed_until.date()}); labels there would be wrong"
            )
        return sorted(set(explicit))
    first = config.first or _align(
        observed_from.date() + dt.timedelta(days=history_days), config.every
    )
    last = config.last or (observed_until.date() - dt.timedelta(days=horizon_days))
    cutoffs = schedule(first, last, config.every)
    observed = [c for c in cutoffs if label_observed(c, horizon_days, observed_until)]
    if len(observed) < len(cutoffs):
        log.info(
            "dropped %d cutoff(s) whose %d-day label window ends after the data (%s): %s",
            len(cutoffs) - len(observed),
            horizon_days,
            observed_until.date(),
            ", ".join(str(c) for c in cutoffs[len(observed) :]),
        )
    if not observed:
        raise CutoffError(
            f"no cutoff between {first} and {last} has its {horizon_days}-day label window "
            f"inside the data, which ends {observed_until.date()}; "
            "set cutoffs.first/last or a shorter label.horizon_days"
        )
    return observed


def label_observed(cutoff: dt.date, horizon_days: int, observed_until: dt.datetime) -> bool:
    """Whether the label window ``[cutoff, cutoff + horizon)`` lies inside the data."""
    return cutoff + dt.timedelta(days=horizon_days) <= observed_until.date()


def _align(day: dt.date, every: str) -> dt.date:
    """Monthly schedules start on the first of the month after `day`."""
    if every.endswith("mo") and day.day != 1:
        return _months_after(day.replace(day=1), 1)
    return day
