"""Cutoff schedules: when snapshots are taken.

Training only uses cutoffs whose label window ``[c, c + horizon)`` lies
inside the observed data; a cutoff whose window runs past the end of the
data would call every recent customer a churner.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from churnmodel.config import CutoffConfig, resolved
from churnmodel.errors import CutoffError

log = logging.getLogger(__name__)


def _parse_step(every: str) -> tuple[int, str]:
    match = re.fullmatch(r"([1-9]\d*)(d|w|mo)", every)
    if match is None:
        raise CutoffError(f"cutoffs.every: expected a step like '7d', '2w' or '1mo', got {every!r}")
    return int(match[1]), match[2]


def _step_days(every: str) -> int:
    """The length of a day or week step in days."""
    step, unit = _parse_step(every)
    return step * (7 if unit == "w" else 1)


def schedule(first: dt.date, last: dt.date, every: str) -> list[dt.date]:
    """Every `every` ("7d", "2w", "1mo") from `first` up to and including `last`."""
    step, unit = _parse_step(every)
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


HORIZONS = (90, 60, 30)
"""Default label horizons in days, longest first: the longest the history can backtest wins."""
BACKTEST_ROOM_DAYS = 84
"""Beyond one horizon, the span of cutoffs a backtest needs: four folds four weeks apart."""
ENOUGH_CUTOFFS = 12
"""The default step is the longest (month, fortnight, week) that gives this many cutoffs."""


def min_history_days(observed_from: dt.datetime, observed_until: dt.datetime) -> int:
    """History before the first default cutoff: a quarter of the data, from 28 to 90 days.

    Not the longest feature window: with a year of data that would leave
    no cutoff at all. Windows longer than the history a cutoff has are
    still computed; their rates are normalised by the days observed.

    >>> min_history_days(dt.datetime(2025, 1, 1), dt.datetime(2025, 8, 1))  # 212 days
    53
    """
    days = (observed_until - observed_from).days
    return min(90, max(28, days // 4))


def default_horizon(observed_from: dt.datetime, observed_until: dt.datetime) -> int:
    """90 days, or 60 or 30 when the history is too short to backtest a longer label window.

    A backtest needs training cutoffs, a full label window after them, and
    a few scored cutoffs: ``history >= min_history + 2 x horizon + 84``.

    >>> default_horizon(dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1))
    90
    >>> default_horizon(dt.datetime(2025, 3, 17), dt.datetime(2025, 10, 17))
    30
    """
    days = (observed_until - observed_from).days
    room = days - min_history_days(observed_from, observed_until)
    return next((h for h in HORIZONS if room - h >= h + BACKTEST_ROOM_DAYS), HORIZONS[-1])


def default_schedule(
    config: CutoffConfig,
    observed_from: dt.datetime,
    observed_until: dt.datetime,
    horizon_days: int,
) -> CutoffConfig:
    """`config` with `every` and `first` filled in from the data (set values are kept).

    The rule: the newest cutoff is the latest whose label window ends in the
    data; the earliest leaves `min_history_days`; the step is a month when
    that span holds 12 monthly cutoffs, else a fortnight, else a week; day
    steps count back from the newest cutoff so it is always used; at most
    `max_cutoffs` (the newest) are kept.
    """
    earliest = observed_from.date() + dt.timedelta(
        days=min_history_days(observed_from, observed_until)
    )
    last = config.last or (observed_until.date() - dt.timedelta(days=horizon_days))
    span = max(0, (last - earliest).days)
    every = config.every or _default_step(span)
    if config.first is not None:
        return config.model_copy(update={"every": every})
    if last < earliest:  # no room for a cutoff: `training_cutoffs` says why
        return config.model_copy(update={"every": every, "first": earliest})
    if every.endswith("mo"):
        first = _align(earliest, every)
    else:
        step = _step_days(every)
        first = last - dt.timedelta(days=step * (span // step))
    cutoffs = schedule(first, last, every)
    if len(cutoffs) > config.max_cutoffs:
        first = cutoffs[-config.max_cutoffs]
    return config.model_copy(update={"every": every, "first": first})


def _default_step(span_days: int) -> str:
    """The longest of a month, a fortnight and a week that gives `ENOUGH_CUTOFFS` cutoffs.

    >>> _default_step(400), _default_step(200), _default_step(100)
    ('1mo', '2w', '1w')
    """
    for every, days in (("1mo", 30.44), ("2w", 14.0)):
        if span_days >= (ENOUGH_CUTOFFS - 1) * days:
            return every
    return "1w"


def training_cutoffs(
    config: CutoffConfig,
    observed_until: dt.datetime,
    horizon_days: int,
    explicit: list[dt.date] | None = None,
) -> list[dt.date]:
    """The cutoffs to build a training set on (`config` resolved by `default_schedule`).

    `explicit` cutoffs (e.g. from ``--cutoff`` flags) are used as given, but
    each must have its label window inside the data. Otherwise the schedule
    runs from `first` to the latest cutoff whose label window ends by
    `observed_until`; cutoffs whose label window is not fully observed are
    dropped, and the drop is logged.
    """
    if explicit:
        unobserved = [c for c in explicit if not label_observed(c, horizon_days, observed_until)]
        if unobserved:
            raise CutoffError(
                f"cutoff(s) {', '.join(map(str, unobserved))}: the {horizon_days}-day label window "
                f"ends after the data ({observed_until.date()}); labels there would be wrong"
            )
        return sorted(set(explicit))
    first = resolved(config.first, "cutoffs.first")
    every = resolved(config.every, "cutoffs.every")
    last = config.last or (observed_until.date() - dt.timedelta(days=horizon_days))
    cutoffs = schedule(first, last, every)
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
