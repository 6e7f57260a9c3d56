"""Purchase behaviour: recency, frequency, monetary value, gaps, trends, refunds.

A row with a negative amount is a refund; everything else is a purchase.
Gaps are measured between distinct purchase *days*, so two orders on the
same day do not count as a zero-day gap. Rates over windows longer than the
data before a cutoff divide by the days the data covers (see `engagement`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial

import ibis
import ibis.expr.types as ir

from churnmodel.config import FeatureConfig
from churnmodel.features._math import (
    MONTH,
    at_least,
    observed_span,
    ratio,
    trend,
    windowed_sums,
    zero_if_null,
)
from churnmodel.features.catalog import FeatureFamily, Features, described
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

FAMILY = "transactions"
P = "tx__"  # prefix of this family's looked-up columns


def transaction_family(
    transactions: ibis.Table,
    config: FeatureConfig,
    data_start: int,
    cutoffs: Sequence[dt.date] | None = None,
) -> FeatureFamily:
    """RFM and purchase-rhythm features at every spine cutoff.

    `data_start` is the day number of the first day of data. Given the
    spine's `cutoffs`, the purchase days are reduced by bands between probe
    days (`banded_rows`) once their gaps are known, as engagement does.
    """
    days = _purchase_days(transactions)
    if cutoffs is None:
        aggs = _aggregates(config, first_day_column="purchase_day")
        rows = days
    else:
        aggs = _aggregates(config, first_day_column="first_purchase_day")
        rows = _banded(days, cutoffs, window_edges(aggs))
    lookup = Lookup(P, rows, aggs)
    return FeatureFamily(FAMILY, lookup, partial(_features, config=config, data_start=data_start))


def _aggregates(config: FeatureConfig, first_day_column: str) -> dict[str, Agg]:
    """What `history` reads for the family; the first purchase day comes from `first_day_column`."""
    longest = max(config.windows_days)
    aggs: dict[str, Agg] = {
        "n_all": Agg("purchases", "sum"),
        "spend_all": Agg("spend", "sum"),
        "first_day": Agg(first_day_column, "min"),
        "last_day": Agg("purchase_day", "max"),
        "gap_n": Agg("gap_n", "sum"),
        "gap_sum": Agg("gap", "sum"),
        "gap_sq_sum": Agg("gap_sq", "sum"),
        "refunds": Agg("refunds", "sum", Window(longest)),
        "refund_amount": Agg("refund_amount", "sum", Window(longest)),
    }
    aggs.update(windowed_sums("purchases", "n", config.windows_days, config.trend_windows_days))
    aggs.update(windowed_sums("spend", "spend", config.windows_days, config.trend_windows_days))
    return aggs


def _banded(days: ibis.Table, cutoffs: Sequence[dt.date], edges: tuple[int, ...]) -> ibis.Table:
    """The purchase days' measures per band of days (`banded_rows`)."""
    return banded_rows(
        days,
        days.day,
        cutoffs,
        edges,
        purchases=days.purchases.sum(),
        spend=exact_sum(days.spend),
        refunds=days.refunds.sum(),
        refund_amount=exact_sum(days.refund_amount),
        purchase_day=days.purchase_day.max(),
        first_purchase_day=days.purchase_day.min(),
        gap=days.gap.sum(),
        gap_sq=days.gap_sq.sum(),
        gap_n=days.gap_n.sum(),
    ).drop("band")


def _features(t: ibis.Table, config: FeatureConfig, data_start: int) -> tuple[ibis.Table, Features]:
    def h(name: str) -> ir.Value:
        return t[P + name]

    today = cutoff_day(t)
    days_since = (today - h("last_day")).cast("float64")
    gap_mean = ratio(h("gap_sum"), h("gap_n"))
    gap_var = ratio(h("gap_sq_sum"), h("gap_n")) - gap_mean * gap_mean
    longest = max(config.windows_days)
    features: dict[str, tuple[ir.Value, str]] = {
        "days_since_last_tx": (days_since, "Days since the last purchase"),
        "tx_tenure_days": (today - h("first_day"), "Days since the first purchase"),
        "tx_count_total": (zero_if_null(h("n_all")), "Number of purchases in all recorded history"),
        "tx_purchase_days_total": (
            ibis.ifelse(h("first_day").notnull(), zero_if_null(h("gap_n")) + 1, 0),
            "Number of days with a purchase in all recorded history",
        ),
        "tx_amount_sum_total": (
            zero_if_null(h("spend_all")),
            "Total spent in all recorded history",
        ),
        "tx_avg_order_value": (ratio(h("spend_all"), h("n_all")), "Average order value"),
        "tx_gap_mean_days": (gap_mean, "Usual number of days between purchases"),
        "tx_gap_std_days": (
            ibis.ifelse(h("gap_n") > 0, ibis.greatest(gap_var, 0).sqrt(), ibis.null("float64")),
            "Spread (standard deviation) of the days between purchases",
        ),
        "tx_recency_gap_ratio": (
            ratio(days_since, gap_mean),
            "Days since the last purchase divided by the usual gap between purchases",
        ),
    }
    for w in config.windows_days:
        features[f"tx_count_{w}d"] = (
            zero_if_null(h(f"n_{w}")),
            f"Number of purchases in the last {w} days",
        )
        features[f"tx_amount_sum_{w}d"] = (
            zero_if_null(h(f"spend_{w}")),
            f"Amount spent in the last {w} days",
        )
    for w in config.windows_days[1:]:
        span = observed_span(today, data_start, w)
        features[f"tx_rate_{w}d"] = (
            ratio(zero_if_null(h(f"n_{w}")) * MONTH, span),
            f"Purchases per 30 days over the last {w} days (or since the data begins)",
        )
        features[f"tx_amount_rate_{w}d"] = (
            ratio(zero_if_null(h(f"spend_{w}")) * MONTH, span),
            f"Spend per 30 days over the last {w} days (or since the data begins)",
        )
    tenure = today - h("first_day")
    features["tx_per_month"] = (
        ratio(zero_if_null(h("n_all")) * MONTH, at_least(tenure, MONTH)),
        "Purchases per 30 days since the first purchase",
    )
    recent_days = max(config.trend_windows_days)
    earlier_days = tenure - recent_days
    recent = zero_if_null(h(f"n_{recent_days}"))
    features[f"tx_count_vs_usual_{recent_days}d"] = (
        ibis.ifelse(
            earlier_days >= recent_days,
            ratio(recent / recent_days, ratio(zero_if_null(h("n_all")) - recent, earlier_days)),
            ibis.null("float64"),
        ),
        f"Purchases in the last {recent_days} days relative to the customer's usual rate",
    )
    for w in config.trend_windows_days:
        features[f"tx_count_trend_{w}d"] = (
            trend(h(f"n_{w}"), h(f"n_prev_{w}")),
            f"Purchases in the last {w} days relative to the {w} days before",
        )
        features[f"tx_amount_trend_{w}d"] = (
            trend(h(f"spend_{w}"), h(f"spend_prev_{w}")),
            f"Spend in the last {w} days relative to the {w} days before",
        )
    features[f"tx_refund_count_{longest}d"] = (
        zero_if_null(h("refunds")),
        f"Number of refunds in the last {longest} days",
    )
    features[f"tx_refund_amount_{longest}d"] = (
        zero_if_null(h("refund_amount")),
        f"Amount refunded in the last {longest} days",
    )
    return t, described(FAMILY, features)


def _purchase_days(transactions: ibis.Table) -> ibis.Table:
    """One row per customer and day, with the gap since the previous purchase day."""
    is_purchase = transactions.amount >= 0
    daily = daily_rows(
        transactions,
        purchases=is_purchase.cast("int64").sum(),
        spend=transactions.amount.sum(where=is_purchase),
        refunds=(~is_purchase).cast("int64").sum(),
        refund_amount=(-transactions.amount).sum(where=~is_purchase),
    )
    daily = daily.mutate(
        purchase_day=ibis.ifelse(daily.purchases > 0, daily.day, ibis.null("int64"))
    )
    earlier = ibis.window(group_by="customer_id", order_by="day", rows=(None, -1))
    previous = daily.purchase_day.max().over(earlier)
    gap = daily.purchase_day - previous
    return daily.mutate(gap=gap, gap_sq=gap * gap, gap_n=gap.notnull().cast("int64"))
