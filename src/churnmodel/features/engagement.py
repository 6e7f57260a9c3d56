"""Engagement: how often the customer shows up, per event type, and whether it is fading.

Real product logs have their own event types, so every type the config
names (by default: every frequent type in the data, `churnmodel.discovery`)
gets the same set of features, and events of any other type are counted
together as ``other``. Beyond counts per window, what carried signal in real
logs is relative: rates per active day and per month, each type's share of
all events, ratios between types (errors per report viewed, replies per
message), the share of active weeks, and the last 30 days against the
customer's own earlier level.

Windows longer than the data before a cutoff are still computed; their
rates (per 30 days) divide by the days the data covers, so an early cutoff
with four months of data is comparable with a late one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import ibis
import ibis.expr.types as ir

from churnmodel.config import FeatureConfig
from churnmodel.errors import ConfigError
from churnmodel.features._math import (
    MONTH,
    at_least,
    observed_span,
    ratio,
    trend,
    windowed_sums,
    zero_if_null,
)
from churnmodel.features.catalog import FeatureFamily, Features, described, slug
from churnmodel.pointintime import (
    Agg,
    Lookup,
    Window,
    banded_rows,
    cutoff_day,
    daily_rows,
    day_number,
    window_edges,
)

FAMILY = "engagement"
P = "ev__"
RATIO_TYPES = 6
"""Ratios between types are built for the most frequent this many types (15 pairs)."""


@dataclass(frozen=True)
class EventTypes:
    """Event types with features of their own: column slug -> the type(s) it counts."""

    named: dict[str, str]
    other: str | None  # slug of the bucket for every remaining type, if any
    reserved: tuple[str, ...]  # survey and ticket types, read by the feedback family

    @property
    def slugs(self) -> list[str]:
        """Every counted bucket, the named types first."""
        return [*self.named, *([self.other] if self.other else [])]


def event_types(config: FeatureConfig) -> EventTypes:
    """The buckets of a resolved config; ``other`` is renamed if a real type slugs to it."""
    slugs = Counter(slug(t) for t in config.engagement.types)
    clashes = sorted(t for t in config.engagement.types if slugs[slug(t)] > 1)
    if clashes:
        raise ConfigError(
            f"features.engagement.event_types: {clashes} would share one column name; "
            "keep one of them, or rename the event types in the data"
        )
    named = {slug(t): t for t in config.engagement.types}
    reserved = tuple(config.feedback.event_types)
    other = None
    if config.engagement.group_other:
        other = "other" if "other" not in named else "other_types"
    return EventTypes(named, other, reserved)


def engagement_family(
    events: ibis.Table,
    config: FeatureConfig,
    data_start: int,
    cutoffs: Sequence[dt.date] | None = None,
) -> FeatureFamily:
    """Per-type counts, rates, shares, ratios and trends, active days and weeks, a score.

    Active days, active weeks and days since the last event count every
    event type (a support ticket is a sign of life too). `data_start` is the
    day number of the first day of data, for rates over long windows.

    Given the `cutoffs` of the spine rows, the events are reduced by bands
    of days between the probe days (`banded_rows`) rather than by day:
    fewer rows per customer. At 1M customers that took scoring's pass (one
    cutoff) from 15-17 s to 10.5-12.2 s.
    """
    buckets = event_types(config)
    known = [*buckets.named.values(), *buckets.reserved]
    counts: dict[str, ir.Value] = {"n_all": ibis._.count()}
    for s, t in buckets.named.items():
        counts[f"n_{s}"] = (events.event_type == t).cast("int64").sum()
    if buckets.other:
        counts[f"n_{buckets.other}"] = (~events.event_type.isin(known)).cast("int64").sum()
    # A week counts in a window when its first active day lies in the window (events at or
    # after a cutoff cannot move that day before it). Weeks start on Monday: day 0,
    # 1970-01-01, was a Thursday. Grouping the events by week and joining on the day costs
    # less than a window over the daily rows, which DuckDB runs as a second daily pass.
    day = day_number(events.timestamp)
    firsts = events.group_by(customer_id=events.customer_id, week=(day + 3) // 7).aggregate(
        first_day=day.min()
    )
    if cutoffs is None:
        aggs = _aggregates(config, buckets, first_day_column="event_day")
        rows = _daily(events, counts, firsts)
    else:
        aggs = _aggregates(config, buckets, first_day_column="first_event_day")
        rows = _banded(events, day, counts, firsts, cutoffs, window_edges(aggs))
    finish = partial(_features, buckets=buckets, config=config, data_start=data_start)
    return FeatureFamily(FAMILY, Lookup(P, rows, aggs), finish)


def _daily(events: ibis.Table, counts: dict[str, ir.Value], firsts: ibis.Table) -> ibis.Table:
    """One row per customer and active day; ``new_week`` marks the first active day of a week."""
    daily = daily_rows(events, **counts)
    joined = daily.left_join(
        firsts, [daily.customer_id == firsts.customer_id, daily.day == firsts.first_day]
    )
    return joined.select(
        *daily.columns,
        active=ibis.literal(1, "int64"),
        event_day=joined.day,
        new_week=joined.first_day.notnull().cast("int64"),
    )


def _banded(
    events: ibis.Table,
    day: ir.IntegerValue,
    counts: dict[str, ir.Value],
    firsts: ibis.Table,
    cutoffs: Sequence[dt.date],
    edges: tuple[int, ...],
) -> ibis.Table:
    """The same measures per band of days (`banded_rows`), for spine rows at `cutoffs`.

    Per band: its active days (distinct days), its latest and earliest
    event day, and the weeks whose first active day lies in it. Every such
    day is an active day, so each week lands in a band that has a row.
    """
    active = banded_rows(
        events, day, cutoffs, edges, **counts, active=day.nunique(), first_event_day=day.min()
    )
    weeks = banded_rows(firsts, firsts.first_day, cutoffs, edges, new_week=ibis._.count())
    joined = active.left_join(weeks, ["customer_id", "band"])
    return joined.select(
        "customer_id",
        "day",
        *counts,
        "active",
        "first_event_day",
        event_day=joined.day,
        new_week=joined.new_week.fill_null(0),
    )


def _aggregates(
    config: FeatureConfig, buckets: EventTypes, first_day_column: str
) -> dict[str, Agg]:
    """What `history` reads for the family; the first event day comes from `first_day_column`."""
    windows, trends = config.windows_days, config.trend_windows_days
    aggs: dict[str, Agg] = {
        "last_day": Agg("event_day", "max"),
        "first_day": Agg(first_day_column, "min"),
    }
    for w in {*windows, max(trends)}:  # active days per window, and per the longest trend
        aggs[f"active_{w}"] = Agg("active", "sum", Window(w))
    for w in windows:
        aggs[f"weeks_{w}"] = Agg("new_week", "sum", Window(w))
    for t in trends:
        aggs[f"all_{t}"] = Agg("n_all", "sum", Window(t))
    for s in buckets.slugs:
        aggs[f"{s}_total"] = Agg(f"n_{s}", "sum")
        aggs.update(windowed_sums(f"n_{s}", s, windows, trends))
    return aggs


def _features(
    t: ibis.Table, buckets: EventTypes, config: FeatureConfig, data_start: int
) -> tuple[ibis.Table, Features]:
    def h(name: str) -> ir.Value:
        return t[P + name]

    today = cutoff_day(t)
    windows, trends = config.windows_days, config.trend_windows_days
    features: dict[str, tuple[ir.Value, str]] = {
        "days_since_last_event": (
            today - h("last_day"),
            "Days since the customer last did anything we record",
        )
    }
    for w in windows:
        features[f"ev_active_days_{w}d"] = (
            zero_if_null(h(f"active_{w}")),
            f"Days with any activity in the last {w} days",
        )
    for w in windows:
        features[f"ev_active_week_share_{w}d"] = (
            ibis.least(
                ratio(zero_if_null(h(f"weeks_{w}")) * 7, observed_span(today, data_start, w)), 1
            ),
            f"Share of the weeks in the last {w} days with any activity",
        )
    names = {**buckets.named, **({buckets.other: "other"} if buckets.other else {})}
    for s, name in names.items():
        features.update(_per_type(t, s, name, config, today, data_start))
    features.update(_type_ratios(t, list(buckets.named.items())[:RATIO_TYPES], min(trends)))
    for w in trends:
        now = _score(t, buckets, config, suffix=f"{w}")
        before = _score(t, buckets, config, suffix=f"prev_{w}")
        features[f"ev_engagement_score_{w}d"] = (
            now,
            f"Weighted engagement score over the last {w} days",
        )
        features[f"ev_engagement_trend_{w}d"] = (
            ratio(now, before),
            f"Engagement score in the last {w} days relative to the {w} days before",
        )
    return t, described(FAMILY, features)


def _per_type(
    t: ibis.Table, s: str, name: str, config: FeatureConfig, today: ir.IntegerValue, data_start: int
) -> dict[str, tuple[ir.Value, str]]:
    """Counts, rates, trends, share and own-level change of one event type."""

    def h(column: str) -> ir.Value:
        return t[P + column]

    windows, trends = config.windows_days, config.trend_windows_days
    out: dict[str, tuple[ir.Value, str]] = {}
    for w in windows:
        out[f"ev_{s}_count_{w}d"] = (
            zero_if_null(h(f"{s}_{w}")),
            f"Number of {name} events in the last {w} days",
        )
    for w in windows[1:]:
        out[f"ev_{s}_rate_{w}d"] = (
            ratio(zero_if_null(h(f"{s}_{w}")) * MONTH, observed_span(today, data_start, w)),
            f"{name} events per 30 days over the last {w} days (or since the data begins)",
        )
    for w in trends:
        out[f"ev_{s}_trend_{w}d"] = (
            trend(h(f"{s}_{w}"), h(f"{s}_prev_{w}")),
            f"{name} events in the last {w} days relative to the {w} days before",
        )
        out[f"ev_{s}_share_{w}d"] = (
            ratio(zero_if_null(h(f"{s}_{w}")), h(f"all_{w}")),
            f"Share of {name} among all events in the last {w} days",
        )
    longest_trend = max(trends)
    out[f"ev_{s}_per_active_day_{longest_trend}d"] = (
        ratio(zero_if_null(h(f"{s}_{longest_trend}")), h(f"active_{longest_trend}")),
        f"{name} events per active day in the last {longest_trend} days",
    )
    since_first = today - h("first_day")
    total = zero_if_null(h(f"{s}_total"))
    out[f"ev_{s}_per_month"] = (
        ratio(total * MONTH, at_least(since_first, MONTH)),
        f"{name} events per 30 days since the customer's first event",
    )
    recent_days = min(trends)
    recent = zero_if_null(h(f"{s}_{recent_days}"))
    earlier_days = since_first - recent_days
    earlier_rate = ratio(total - recent, earlier_days)
    out[f"ev_{s}_vs_usual_{recent_days}d"] = (
        ibis.ifelse(
            earlier_days >= recent_days,
            ratio(recent / recent_days, earlier_rate),
            ibis.null("float64"),
        ),
        f"{name} events in the last {recent_days} days relative to the customer's usual rate",
    )
    return out


def _type_ratios(
    t: ibis.Table, types: list[tuple[str, str]], days: int
) -> dict[str, tuple[ir.Value, str]]:
    """For each pair of types, the rarer per event of the more frequent one."""
    out: dict[str, tuple[ir.Value, str]] = {}
    for i, (common, common_name) in enumerate(types):
        for rare, rare_name in types[i + 1 :]:
            out[f"ev_{rare}_per_{common}_{days}d"] = (
                ratio(zero_if_null(t[f"{P}{rare}_{days}"]), t[f"{P}{common}_{days}"]),
                f"{rare_name} events per {common_name} event in the last {days} days",
            )
    return out


def _score(
    t: ibis.Table, buckets: EventTypes, config: FeatureConfig, suffix: str
) -> ir.NumericValue:
    """Weighted sum of the event counts in columns ``{type}_{suffix}`` (weights default to 1)."""
    total: ir.NumericValue = ibis.literal(0.0)
    for s, name in buckets.named.items():
        total = total + zero_if_null(t[f"{P}{s}_{suffix}"]) * config.engagement.weight(name)
    return total
