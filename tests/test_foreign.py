"""The foreign generators: deterministic, unlike the demo, and carrying the planted signal."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from churnmodel.data.foreign import (
    NEGATIVE_ROLES,
    RETAIL_START,
    ROLES,
    SUBSCRIPTION_START,
    event_type_names,
    retail_ground_truth,
    simulate_retail,
    simulate_subscription,
    tables,
)
from churnmodel.data.simulate import SimulatedData
from tests.conftest import validated

DEMO_AND_SURVEY_WORDS = ("login", "feature_use", "support_ticket", "ticket", "nps", "csat", "ces")


@pytest.fixture(scope="module")
def sub() -> SimulatedData:
    return simulate_subscription(3_000, seed=0)


@pytest.fixture(scope="module")
def shop() -> SimulatedData:
    return simulate_retail(5_000, seed=0)


def _assert_same(first: SimulatedData, second: SimulatedData) -> None:
    assert first.as_tables().keys() == second.as_tables().keys()
    for name, frame in first.as_tables().items():
        pd.testing.assert_frame_equal(frame, second.as_tables()[name], obj=name)


def _window_share(
    events: pd.DataFrame, ends: pd.Series, negative: set[str], days: int = 30
) -> pd.Series:
    """Per customer: share of negative events among all events in the `days` before `ends`."""
    window = events.join(ends.rename("end"), on="customer_id", how="inner")
    window = window[
        (window["timestamp"] < window["end"])
        & (window["timestamp"] >= window["end"] - pd.Timedelta(days=days))
    ]
    is_negative = window["event_type"].isin(negative)
    counts = window.assign(negative=is_negative).groupby("customer_id")["negative"]
    return counts.mean()[counts.size() >= 20]


def _monthly_churn_rate(data: SimulatedData, months: int) -> float:
    assert data.churn is not None
    start = pd.Timestamp(SUBSCRIPTION_START, tz="UTC")
    customers = data.customers.merge(data.churn, on="customer_id", how="left")
    churned = active = 0
    for month in range(months):
        lo = start + pd.DateOffset(months=month)
        hi = start + pd.DateOffset(months=month + 1)
        alive = (customers["signup_date"] < lo) & (
            customers["churn_date"].isna() | (customers["churn_date"] >= lo)
        )
        active += int(alive.sum())
        churned += int(((customers["churn_date"] >= lo) & (customers["churn_date"] < hi)).sum())
    return churned / active


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames() -> None:
    _assert_same(simulate_subscription(600, seed=7), simulate_subscription(600, seed=7))
    _assert_same(simulate_retail(800, seed=7), simulate_retail(800, seed=7))
    other = simulate_subscription(600, seed=8)
    assert not other.events.equals(simulate_subscription(600, seed=7).events)


def test_different_seeds_give_different_event_type_names() -> None:
    vocabularies = {frozenset(event_type_names(seed).values()) for seed in range(6)}
    assert len(vocabularies) == 6
    for seed in (0, 1):
        names = event_type_names(seed)
        assert sorted(names) == sorted(ROLES)
        assert len(set(names.values())) == len(ROLES)
        data = simulate_subscription(300, seed=seed)
        assert set(data.events["event_type"]) == set(names.values())


def test_names_do_not_depend_on_size_or_length() -> None:
    small = simulate_subscription(200, seed=4, months=6)
    assert set(small.events["event_type"]) == set(event_type_names(4).values())


# --------------------------------------------------------------------------- subscription shape


def test_subscription_covers_six_to_eight_months_from_a_mid_month_date(sub) -> None:
    first, last = sub.events["timestamp"].min(), sub.events["timestamp"].max()
    assert first.day != 1 and first.normalize() == pd.Timestamp(SUBSCRIPTION_START, tz="UTC")
    assert 6 * 30 <= (last - first).days <= 8 * 31
    assert (last - first).days < 300  # never a full year
    for months in (6, 8):
        data = simulate_subscription(200, seed=1, months=months)
        span = (data.events["timestamp"].max() - data.events["timestamp"].min()).days
        assert months * 30 - 5 <= span <= months * 31
    with pytest.raises(ValueError, match="year"):
        simulate_subscription(100, months=12)
    with pytest.raises(TypeError):
        simulate_subscription(100, no_such_knob=1)


def test_events_have_no_value_column_and_no_survey_or_ticket_types() -> None:
    for seed in range(20):
        for name in event_type_names(seed).values():
            assert not any(word in name for word in DEMO_AND_SURVEY_WORDS), name
    data = simulate_subscription(300, seed=2)
    assert list(data.events.columns) == ["customer_id", "timestamp", "event_type"]


def test_event_rates_differ_a_lot_by_type(sub) -> None:
    shares = sub.events["event_type"].value_counts(normalize=True)
    assert len(shares) == 8
    assert shares.min() < 0.003  # at least one very rare type
    assert shares.max() > 0.3
    assert shares.max() / shares.min() > 100


def test_customers_table_looks_unlike_the_demo(sub) -> None:
    customers = sub.customers
    assert customers["customer_id"].is_unique
    assert (
        customers["customer_id"]
        .map(lambda c: re.fullmatch(r"acct-[0-9a-f]{6}", c) is not None)
        .all()
    )
    assert str(customers["signup_date"].dtype) == "datetime64[us, UTC]"
    start = pd.Timestamp(SUBSCRIPTION_START, tz="UTC")
    assert 0.5 < (customers["signup_date"] < start).mean() < 0.9  # many signed up before the data
    assert customers["region"].nunique() == 5
    assert customers["tier"].nunique() == 3
    assert pd.api.types.is_numeric_dtype(customers["seats"])
    assert customers["seats"].min() >= 1 and customers["seats"].nunique() > 10
    assert customers["account_uuid"].nunique() >= 0.99 * len(customers)
    assert set(sub.events["customer_id"]) <= set(customers["customer_id"])


def test_invoices_cover_part_of_the_customers_with_some_refunds(sub) -> None:
    tx = sub.transactions
    assert list(tx.columns) == ["customer_id", "timestamp", "amount"]
    billed = tx["customer_id"].nunique() / len(sub.customers)
    assert 0.7 < billed < 0.95
    assert 0.01 < (tx["amount"] < 0).mean() < 0.08
    assert (tx["amount"] == tx["amount"].round(2)).all()
    invoices = tx[tx["amount"] > 0]
    per_customer = invoices.groupby("customer_id").size()
    assert per_customer.max() <= 9  # monthly, not per use


def test_tables_follow_the_contract(con, sub, shop) -> None:
    validated(con, tables(sub))
    validated(con, tables(shop))


# --------------------------------------------------------------------------- churn


def test_monthly_churn_rate_is_about_two_percent(sub) -> None:
    assert 0.015 <= _monthly_churn_rate(sub, months=7) <= 0.025


def test_churn_table_is_consistent(sub) -> None:
    churn = sub.churn
    assert churn is not None and churn["customer_id"].is_unique
    assert list(churn.columns) == ["customer_id", "churn_date"]
    start = pd.Timestamp(SUBSCRIPTION_START, tz="UTC")
    assert churn["churn_date"].between(start, sub.events["timestamp"].max()).all()
    joined = churn.merge(sub.customers, on="customer_id", validate="one_to_one")
    assert (joined["churn_date"] > joined["signup_date"]).all()


def test_no_events_or_invoices_after_churn(sub) -> None:
    assert sub.churn is not None
    dates = sub.churn.set_index("customer_id")["churn_date"]
    events = sub.events.join(dates, on="customer_id", how="inner")
    assert len(events) > 0
    assert (events["timestamp"] < events["churn_date"]).all()
    invoices = sub.transactions[sub.transactions["amount"] > 0].join(
        dates, on="customer_id", how="inner"
    )
    assert (invoices["timestamp"] < invoices["churn_date"]).all()


def test_churners_show_a_rising_share_of_negative_events(sub) -> None:
    assert sub.churn is not None
    names = event_type_names(0)
    negative = {names[role] for role in NEGATIVE_ROLES}
    churn_dates = sub.churn.set_index("customer_id")["churn_date"]
    stayers = sub.customers.loc[
        ~sub.customers["customer_id"].isin(churn_dates.index), "customer_id"
    ]
    end = sub.events["timestamp"].max().ceil("D")
    stayer_ends = pd.Series(end, index=stayers.to_numpy())

    churner_share = _window_share(sub.events, churn_dates, negative)
    stayer_share = _window_share(sub.events, stayer_ends, negative)
    assert len(churner_share) > 100
    assert churner_share.median() > 1.5 * stayer_share.median()
    # The same churners a few months earlier were much closer to the stayers: a trend.
    earlier = _window_share(sub.events, churn_dates - pd.Timedelta(days=90), negative)
    assert churner_share.median() > 1.2 * earlier.median()


def test_volume_alone_carries_little_signal(sub) -> None:
    assert sub.churn is not None
    churn_dates = sub.churn.set_index("customer_id")["churn_date"]
    window = sub.events.join(churn_dates.rename("end"), on="customer_id", how="left")
    end = sub.events["timestamp"].max().ceil("D")
    window["end"] = window["end"].fillna(end)
    window = window[
        (window["timestamp"] < window["end"])
        & (window["timestamp"] >= window["end"] - pd.Timedelta(days=30))
    ]
    volume = window.groupby("customer_id").size()
    churner = volume.index.isin(churn_dates.index)
    ratio = np.median(volume[churner]) / np.median(volume[~churner])
    assert 0.6 < ratio < 1.4  # heavy and light users churn alike


# --------------------------------------------------------------------------- retail


def test_retail_is_transactions_only(shop) -> None:
    assert shop.churn is None
    assert shop.events.empty
    assert list(shop.events.columns) == ["customer_id", "timestamp", "event_type"]
    assert list(shop.customers.columns) == ["customer_id"]
    assert sorted(tables(shop)) == ["customers", "transactions"]
    tx = shop.transactions
    assert list(tx.columns) == [
        "customer_id",
        "timestamp",
        "amount",
        "order_id",
        "category",
        "quantity",
    ]
    assert set(tx["customer_id"]) == set(shop.customers["customer_id"])
    assert shop.customers["customer_id"].str.fullmatch(r"\d{7}").all()


def test_retail_covers_about_a_year(shop) -> None:
    first, last = shop.transactions["timestamp"].min(), shop.transactions["timestamp"].max()
    assert first.normalize() == pd.Timestamp(RETAIL_START, tz="UTC")
    assert 355 <= (last - first).days <= 366


def test_retail_has_a_december_peak_orders_and_refunds(shop) -> None:
    tx = shop.transactions
    assert tx["amount"].dtype == np.float64
    assert (tx["amount"] == tx["amount"].round(2)).all()
    assert 0.02 < (tx["amount"] < 0).mean() < 0.1
    refunds = tx[tx["amount"] < 0]
    assert refunds["order_id"].isin(tx.loc[tx["amount"] > 0, "order_id"]).all()
    assert tx.groupby("order_id")["customer_id"].nunique().max() == 1
    assert tx.groupby("order_id").size().max() > 1  # multi-line orders
    assert tx["category"].nunique() == 8

    orders = tx[tx["amount"] > 0].drop_duplicates("order_id")
    per_day = orders.groupby(orders["timestamp"].dt.tz_localize(None).dt.to_period("M")).size()
    per_day = per_day / per_day.index.days_in_month
    december = per_day[per_day.index.month == 12].iloc[0]
    others = per_day[(per_day.index.month != 12) & (per_day.index.month != 8)]
    assert december > 1.4 * others.median()


def test_retail_has_one_off_buyers_and_silent_dropout(shop) -> None:
    orders = shop.transactions[shop.transactions["amount"] > 0].drop_duplicates("order_id")
    per_customer = orders.groupby("customer_id").size()
    assert 0.25 < (per_customer == 1).mean() < 0.7
    assert per_customer.max() > 15  # heterogeneous rates

    truth = retail_ground_truth(5_000, seed=0)
    assert list(truth["customer_id"]) == list(shop.customers["customer_id"])
    gone = truth.dropna(subset=["dropout_date"]).set_index("customer_id")["dropout_date"]
    last = orders.groupby("customer_id")["timestamp"].max()
    assert (last[gone.index] < gone).all()  # nobody orders after dropping out
    assert 0.2 < truth["dropout_date"].notna().mean() < 0.8
