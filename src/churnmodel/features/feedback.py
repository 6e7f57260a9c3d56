"""What customers tell us: survey answers (NPS, CSAT, CES) and support tickets.

The latest answer is the mean of the answers given on the customer's latest
answer day before the cutoff, so two answers with the same timestamp give a
deterministic value instead of an arbitrary pick.

Only what the data has is built: no ticket features without a ticket event
type, no survey features without a `value` column (it is optional).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial

import ibis
import ibis.expr.types as ir

from churnmodel.config import FeatureConfig
from churnmodel.features._math import ratio, zero_if_null
from churnmodel.features.catalog import FeatureFamily, Features, described, slug
from churnmodel.pointintime import (
    Agg,
    Lookup,
    Window,
    banded_rows,
    cutoff_day,
    daily_rows,
    exact_sum,
    window_edges,
)

FAMILY = "feedback"
P = "fb__"


def feedback_family(
    events: ibis.Table,
    config: FeatureConfig,
    store: Callable[[ibis.Table], ibis.Table] = lambda table: table,
    cutoffs: Sequence[dt.date] | None = None,
) -> FeatureFamily | None:
    """Latest and mean survey answers, answer counts, ticket counts and recency.

    None when the config and the data leave nothing to build. The daily
    rows are read twice, by the history pass and for the latest answers;
    `store` may materialise them so the events are grouped once (at 1M
    customers, scoring's fetch of the matrix took 3.8 s with them grouped
    again there, 2.0 s with them stored). Given the spine's `cutoffs`,
    the history pass reads them reduced by bands of days (`banded_rows`).
    """
    valued = "value" in events.columns
    surveys = {slug(s): s for s in config.feedback.surveys} if valued else {}
    ticket = config.feedback.ticket_event
    if not surveys and ticket is None:
        return None
    relevant = events.filter(
        events.event_type.isin([*surveys.values(), *([ticket] if ticket else [])])
    )
    measures: dict[str, ir.Value] = {}
    if ticket is not None:
        measures["tickets"] = (relevant.event_type == ticket).cast("int64").sum()
    for s, name in surveys.items():
        answered = (relevant.event_type == name) & relevant.value.notnull()
        measures[f"{s}_n"] = answered.cast("int64").sum()
        measures[f"{s}_sum"] = relevant.value.sum(where=answered)
    daily = daily_rows(relevant, **measures)
    if surveys:
        daily = store(daily)  # the latest answers read the daily rows again
    last_days = {  # the day, on days with an answer or a ticket
        f"{s}_day": ibis.ifelse(daily[f"{s}_n"] > 0, daily.day, ibis.null("int64")) for s in surveys
    }
    if ticket is not None:
        last_days["ticket_day"] = ibis.ifelse(daily.tickets > 0, daily.day, ibis.null("int64"))
    rows = daily.mutate(**last_days)
    aggs: dict[str, Agg] = {}
    if ticket is not None:
        aggs["last_ticket_day"] = Agg("ticket_day", "max")
        for w in config.windows_days:
            aggs[f"tickets_{w}"] = Agg("tickets", "sum", Window(w))
    for s in surveys:
        aggs[f"{s}_n"] = Agg(f"{s}_n", "sum")
        aggs[f"{s}_sum"] = Agg(f"{s}_sum", "sum")
        aggs[f"{s}_last_day"] = Agg(f"{s}_day", "max")
    if cutoffs is not None:  # by bands of days, as engagement does (`banded_rows`)
        rows = banded_rows(
            rows,
            rows.day,
            cutoffs,
            window_edges(aggs),
            **{m: exact_sum(rows[m]) for m in measures},
            **{d: rows[d].max() for d in last_days},
        ).drop("band")
    finish = partial(
        _features, daily=daily, surveys=surveys, tickets=ticket is not None, config=config
    )
    return FeatureFamily(FAMILY, Lookup(P, rows, aggs), finish)


def _features(
    t: ibis.Table,
    daily: ibis.Table,
    surveys: dict[str, str],
    tickets: bool,
    config: FeatureConfig,
) -> tuple[ibis.Table, Features]:
    for s in surveys:
        t = _with_latest_answer(t, daily, s)

    def h(name: str) -> ir.Value:
        return t[P + name]

    today = cutoff_day(t)
    features: dict[str, tuple[ir.Value, str]] = {}
    for s, name in surveys.items():
        label = name.upper()
        features[f"{s}_last"] = (
            ratio(h(f"{s}_latest_sum"), h(f"{s}_latest_n")),
            f"Latest {label} answer",
        )
        features[f"{s}_mean"] = (ratio(h(f"{s}_sum"), h(f"{s}_n")), f"Average {label} answer")
        features[f"{s}_count"] = (zero_if_null(h(f"{s}_n")), f"Number of {label} answers")
        features[f"days_since_last_{s}"] = (
            today - h(f"{s}_last_day"),
            f"Days since the latest {label} answer",
        )
    if tickets:
        for w in config.windows_days:
            features[f"ticket_count_{w}d"] = (
                zero_if_null(h(f"tickets_{w}")),
                f"Support tickets opened in the last {w} days",
            )
        features["days_since_last_ticket"] = (
            today - h("last_ticket_day"),
            "Days since the latest support ticket",
        )
    return t, described(FAMILY, features)


def _with_latest_answer(t: ibis.Table, daily: ibis.Table, survey: str) -> ibis.Table:
    """Attach the answers given on the latest answer day (found by the history pass)."""
    day, total, count = (
        f"{P}{survey}_last_day",
        f"{P}{survey}_latest_sum",
        f"{P}{survey}_latest_n",
    )
    answers = daily.filter(daily[f"{survey}_n"] > 0).select(
        customer_id=daily.customer_id,
        **{day: daily.day, total: daily[f"{survey}_sum"], count: daily[f"{survey}_n"]},
    )
    return t.left_join(answers, ["customer_id", day]).select(*t.columns, total, count)
