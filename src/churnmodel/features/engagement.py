"""Engagement: how often the customer shows up, per event type, and whether it is fading."""

from __future__ import annotations

from functools import partial

import ibis
import ibis.expr.types as ir

from churnmodel.config import FeatureConfig
from churnmodel.features._math import ratio, trend, windowed_sums, zero_if_null
from churnmodel.features.catalog import FeatureFamily, Features, described, slug
from churnmodel.pointintime import Agg, Lookup, Window, cutoff_day, daily_rows

FAMILY = "engagement"
P = "ev__"


def engagement_family(events: ibis.Table, config: FeatureConfig) -> FeatureFamily:
    """Per-type counts and trends, active days, recency and a weighted engagement score.

    Active days and days since the last event count every event type (a
    support ticket is a sign of life too); the per-type columns and the
    score use only the configured engagement types.
    """
    types = {slug(t): t for t in config.engagement.event_types}
    daily = daily_rows(
        events,
        **{f"n_{s}": (events.event_type == t).cast("int64").sum() for s, t in types.items()},
    ).mutate(active=ibis.literal(1, "int64"), event_day=ibis._.day)
    aggs: dict[str, Agg] = {"last_day": Agg("event_day", "max")}
    for w in config.windows_days:
        aggs[f"active_{w}"] = Agg("active", "sum", Window(w))
    for s in types:
        aggs.update(windowed_sums(f"n_{s}", s, config.windows_days, config.trend_windows_days))
    return FeatureFamily(
        FAMILY, Lookup(P, daily, aggs), partial(_features, types=types, config=config)
    )


def _features(
    t: ibis.Table, types: dict[str, str], config: FeatureConfig
) -> tuple[ibis.Table, Features]:
    def h(name: str) -> ir.Value:
        return t[P + name]

    features: dict[str, tuple[ir.Value, str]] = {
        "days_since_last_event": (
            cutoff_day(t) - h("last_day"),
            "Days since the customer last did anything we record",
        )
    }
    for w in config.windows_days:
        features[f"ev_active_days_{w}d"] = (
            zero_if_null(h(f"active_{w}")),
            f"Days with any activity in the last {w} days",
        )
    for s, name in types.items():
        for w in config.windows_days:
            features[f"ev_{s}_count_{w}d"] = (
                zero_if_null(h(f"{s}_{w}")),
                f"Number of {name} events in the last {w} days",
            )
        for w in config.trend_windows_days:
            features[f"ev_{s}_trend_{w}d"] = (
                trend(h(f"{s}_{w}"), h(f"{s}_prev_{w}")),
                f"{name} events in the last {w} days relative to the {w} days before",
            )
    for w in config.trend_windows_days:
        now = _score(t, types, config, suffix=f"{w}")
        before = _score(t, types, config, suffix=f"prev_{w}")
        features[f"ev_engagement_score_{w}d"] = (
            now,
            f"Weighted engagement score over the last {w} days",
        )
        features[f"ev_engagement_trend_{w}d"] = (
            ratio(now, before),
            f"Engagement score in the last {w} days relative to the {w} days before",
        )
    return t, described(FAMILY, features)


def _score(
    t: ibis.Table, types: dict[str, str], config: FeatureConfig, suffix: str
) -> ir.NumericValue:
    """Weighted sum of the event counts in columns ``{type}_{suffix}``."""
    total: ir.NumericValue = ibis.literal(0.0)
    for s, name in types.items():
        total = total + zero_if_null(t[f"{P}{s}_{suffix}"]) * config.engagement.weight(name)
    return total
