"""Engagement: how often the customer shows up, per event type, and whether it is fading."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnmodel.config import FeatureConfig
from churnmodel.features._math import ratio, zero_if_null
from churnmodel.features.catalog import FeatureFamily, FeatureSpec, slug
from churnmodel.pointintime import Agg, Window, cutoff_day, daily_rows, history

FAMILY = "engagement"


def engagement_features(
    events: ibis.Table, spine: ibis.Table, config: FeatureConfig
) -> FeatureFamily:
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
        for w in {*config.windows_days, *config.trend_windows_days}:
            aggs[f"{s}_{w}"] = Agg(f"n_{s}", "sum", Window(w))
        for t in config.trend_windows_days:
            aggs[f"{s}_prev_{t}"] = Agg(f"n_{s}", "sum", Window(t, skip=t))
    h = history(daily, spine, **aggs)

    features: dict[str, tuple[ir.Value, str]] = {
        "days_since_last_event": (
            (cutoff_day(h) - h.last_day).cast("float64"),
            "Days since the customer last did anything we record",
        )
    }
    for w in config.windows_days:
        features[f"ev_active_days_{w}d"] = (
            zero_if_null(h[f"active_{w}"]),
            f"Days with any activity in the last {w} days",
        )
    for s, t_name in types.items():
        for w in config.windows_days:
            features[f"ev_{s}_count_{w}d"] = (
                zero_if_null(h[f"{s}_{w}"]),
                f"Number of {t_name} events in the last {w} days",
            )
        for t in config.trend_windows_days:
            features[f"ev_{s}_trend_{t}d"] = (
                ratio(zero_if_null(h[f"{s}_{t}"]), h[f"{s}_prev_{t}"]),
                f"{t_name} events in the last {t} days relative to the {t} days before",
            )
    for t in config.trend_windows_days:
        now = _score(h, types, config, suffix=f"{t}")
        before = _score(h, types, config, suffix=f"prev_{t}")
        features[f"ev_engagement_score_{t}d"] = (
            now,
            f"Weighted engagement score over the last {t} days",
        )
        features[f"ev_engagement_trend_{t}d"] = (
            ratio(now, before),
            f"Engagement score in the last {t} days relative to the {t} days before",
        )
    table = h.select(
        "customer_id", "cutoff", **{n: e.cast("float64") for n, (e, _) in features.items()}
    )
    return FeatureFamily(
        FAMILY, table, tuple(FeatureSpec(n, FAMILY, d) for n, (_, d) in features.items())
    )


def _score(
    h: ibis.Table, types: dict[str, str], config: FeatureConfig, suffix: str
) -> ir.NumericValue:
    """Weighted sum of the event counts in columns ``{type}_{suffix}``."""
    total: ir.NumericValue = ibis.literal(0.0)
    for s, t in types.items():
        total = total + zero_if_null(h[f"{s}_{suffix}"]) * config.engagement.weight(t)
    return total
