"""What customers tell us: survey answers (NPS, CSAT, CES) and support tickets.

The latest answer is the mean of the answers given on the customer's latest
answer day before the cutoff, so two answers with the same timestamp give a
deterministic value instead of an arbitrary pick.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnmodel.config import FeatureConfig
from churnmodel.features._math import ratio, zero_if_null
from churnmodel.features.catalog import FeatureFamily, FeatureSpec, slug
from churnmodel.pointintime import Agg, Window, cutoff_day, daily_rows, history

FAMILY = "feedback"


def feedback_features(
    events: ibis.Table, spine: ibis.Table, config: FeatureConfig
) -> FeatureFamily:
    """Latest and mean survey answers, answer counts, ticket counts and recency."""
    surveys = {slug(s): s for s in config.feedback.surveys}
    ticket = config.feedback.ticket_event
    relevant = events.filter(events.event_type.isin([*surveys.values(), ticket]))
    measures: dict[str, ir.Value] = {"tickets": (relevant.event_type == ticket).cast("int64").sum()}
    for s, name in surveys.items():
        answered = (relevant.event_type == name) & relevant.value.notnull()
        measures[f"{s}_n"] = answered.cast("int64").sum()
        measures[f"{s}_sum"] = relevant.value.sum(where=answered)
    daily = daily_rows(relevant, **measures)
    for s in surveys:
        daily = daily.mutate(
            **{f"{s}_day": ibis.ifelse(daily[f"{s}_n"] > 0, daily.day, ibis.null("int64"))}
        )
    daily = daily.mutate(ticket_day=ibis.ifelse(daily.tickets > 0, daily.day, ibis.null("int64")))

    aggs: dict[str, Agg] = {"last_ticket_day": Agg("ticket_day", "max")}
    for w in config.windows_days:
        aggs[f"tickets_{w}"] = Agg("tickets", "sum", Window(w))
    for s in surveys:
        aggs[f"{s}_n"] = Agg(f"{s}_n", "sum")
        aggs[f"{s}_sum"] = Agg(f"{s}_sum", "sum")
        aggs[f"{s}_last_day"] = Agg(f"{s}_day", "max")
    h = history(daily, spine, **aggs)
    for s in surveys:
        h = _with_latest_answer(h, daily, s)

    today = cutoff_day(h)
    features: dict[str, tuple[ir.Value, str]] = {}
    for s, name in surveys.items():
        features[f"{s}_last"] = (
            ratio(h[f"{s}_last_sum"], h[f"{s}_last_n"]),
            f"Latest {name.upper()} answer",
        )
        features[f"{s}_mean"] = (
            ratio(h[f"{s}_sum"], h[f"{s}_n"]),
            f"Average {name.upper()} answer",
        )
        features[f"{s}_count"] = (zero_if_null(h[f"{s}_n"]), f"Number of {name.upper()} answers")
        features[f"days_since_last_{s}"] = (
            (today - h[f"{s}_last_day"]).cast("float64"),
            f"Days since the latest {name.upper()} answer",
        )
    for w in config.windows_days:
        features[f"ticket_count_{w}d"] = (
            zero_if_null(h[f"tickets_{w}"]),
            f"Support tickets opened in the last {w} days",
        )
    features["days_since_last_ticket"] = (
        (today - h.last_ticket_day).cast("float64"),
        "Days since the latest support ticket",
    )
    table = h.select(
        "customer_id", "cutoff", **{n: e.cast("float64") for n, (e, _) in features.items()}
    )
    return FeatureFamily(
        FAMILY, table, tuple(FeatureSpec(n, FAMILY, d) for n, (_, d) in features.items())
    )


def _with_latest_answer(h: ibis.Table, daily: ibis.Table, survey: str) -> ibis.Table:
    """Attach the answers given on the latest answer day (found by `history`)."""
    answers = daily.filter(daily[f"{survey}_n"] > 0).select(
        customer_id=daily.customer_id,
        **{
            f"{survey}_last_day": daily.day,
            f"{survey}_last_sum": daily[f"{survey}_sum"],
            f"{survey}_last_n": daily[f"{survey}_n"],
        },
    )
    return h.left_join(answers, ["customer_id", f"{survey}_last_day"]).select(
        *h.columns, f"{survey}_last_sum", f"{survey}_last_n"
    )
