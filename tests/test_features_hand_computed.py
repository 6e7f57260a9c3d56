"""Every feature family against values worked out by hand on a tiny data set.

Cutoff 2025-03-01. Windows of 30 days ([2025-01-30, 2025-03-01)) and 90 days
([2024-12-01, 2025-03-01)), trend window 30 days (previous: [2024-12-31,
2025-01-30)). Customer 00042 buys regularly and has a refund, B made a
single purchase, C only has events, D has no rows at all and signed up after
the cutoff.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from ibis.backends.sql import SQLBackend

from churnmodel.config import EngagementConfig, FeatureConfig, FeedbackConfig
from tests.conftest import features_at, frame

CUTOFF = dt.date(2025, 3, 1)
NAN = math.nan

TRANSACTIONS = frame(
    [
        ("00042", "2024-12-01 10:00", 100.0),  # exactly c - 90 days: inside the 90-day window
        ("00042", "2025-01-15 09:00", 50.0),
        ("00042", "2025-01-15 18:00", 30.0),  # same day: one purchase day, two purchases
        ("00042", "2025-02-10 12:00", -50.0),  # refund
        ("00042", "2025-02-20 08:00", 20.0),
        ("00042", "2025-03-01 00:00", 999.0),  # at the cutoff instant: not history
        ("00042", "2025-03-05 00:00", 10.0),
        ("B", "2025-02-27 23:59:59", 40.0),
    ],
    ["customer_id", "timestamp", "amount"],
)
EVENTS = frame(
    [
        ("00042", "2025-01-10 08:00", "nps", 9.0),
        ("00042", "2025-01-20 08:00", "login", None),
        ("00042", "2025-02-15 09:00", "nps", 3.0),
        ("00042", "2025-02-15 09:00", "nps", 5.0),  # same timestamp: the day's mean is the latest
        ("00042", "2025-02-16 10:00", "support_ticket", None),
        ("00042", "2025-02-28 10:00", "login", None),
        ("00042", "2025-02-28 10:00", "feature_use", None),
        ("00042", "2025-03-01 00:00", "login", None),  # at the cutoff instant: not history
        ("C", "2024-11-01 12:00", "support_ticket", None),
        ("C", "2024-12-15 12:00", "login", None),
        ("C", "2025-02-01 12:00", "csat", 4.0),
    ],
    ["customer_id", "timestamp", "event_type", "value"],
)
CUSTOMERS = frame(
    [
        ("00042", "2024-06-01", "pro", "DE"),
        ("B", "2025-02-27", "basic", "US"),
        ("C", None, None, "US"),
        ("D", "2025-06-01", "pro", "FR"),  # signs up after the cutoff: nothing about D is known yet
    ],
    ["customer_id", "signup_date", "plan", "country"],
)
CONFIG = FeatureConfig(
    windows_days=[30, 90],
    trend_windows_days=[30],
    engagement=EngagementConfig(event_types=["login", "feature_use"], weights={"feature_use": 3.0}),
    feedback=FeedbackConfig(surveys=["nps", "csat"]),
)


@pytest.fixture(scope="module")
def features(con: SQLBackend) -> pd.DataFrame:
    tables = {"transactions": TRANSACTIONS, "events": EVENTS, "customers": CUSTOMERS}
    return features_at(con, tables, [(c, CUTOFF) for c in ("00042", "B", "C", "D")], CONFIG)


def expect(features: pd.DataFrame, customer: str, **expected: float) -> None:
    row = features.loc[customer]
    for name, value in expected.items():
        got = row[name]
        if isinstance(value, float) and math.isnan(value):
            assert pd.isna(got), f"{customer}.{name}: expected missing, got {got}"
        else:
            assert got == pytest.approx(value), f"{customer}.{name}: expected {value}, got {got}"


def test_regular_buyer_with_a_refund(features: pd.DataFrame) -> None:
    expect(
        features,
        "00042",
        days_since_last_tx=9,  # 2025-02-20 -> 2025-03-01
        tx_tenure_days=90,
        tx_count_total=4,
        tx_amount_sum_total=200,
        tx_avg_order_value=50,
        tx_gap_mean_days=40.5,  # gaps of 45 and 36 days between purchase days
        tx_gap_std_days=4.5,
        tx_recency_gap_ratio=9 / 40.5,
        tx_count_30d=1,
        tx_amount_sum_30d=20,
        tx_count_90d=4,
        tx_amount_sum_90d=200,
        tx_count_trend_30d=0.5,  # 1 purchase now vs 2 in the 30 days before
        tx_amount_trend_30d=0.25,  # 20 vs 80
        tx_refund_count_90d=1,
        tx_refund_amount_90d=50,
    )


def test_single_purchase_has_no_gap(features: pd.DataFrame) -> None:
    expect(
        features,
        "B",
        days_since_last_tx=2,
        tx_tenure_days=2,
        tx_count_total=1,
        tx_avg_order_value=40,
        tx_gap_mean_days=NAN,
        tx_gap_std_days=NAN,
        tx_recency_gap_ratio=NAN,
        tx_count_30d=1,
        tx_amount_sum_30d=40,
        tx_count_trend_30d=NAN,  # nothing in the previous window: no ratio
        tx_refund_count_90d=0,
    )


def test_customer_without_transactions(features: pd.DataFrame) -> None:
    for customer in ("C", "D"):
        expect(
            features,
            customer,
            days_since_last_tx=NAN,
            tx_tenure_days=NAN,
            tx_count_total=0,
            tx_amount_sum_total=0,
            tx_avg_order_value=NAN,
            tx_count_90d=0,
            tx_amount_sum_90d=0,
            tx_count_trend_30d=NAN,
            tx_refund_amount_90d=0,
        )


def test_engagement_counts_trends_and_score(features: pd.DataFrame) -> None:
    expect(
        features,
        "00042",
        days_since_last_event=1,
        ev_active_days_30d=3,  # 02-15, 02-16, 02-28
        ev_active_days_90d=5,
        ev_login_count_30d=1,
        ev_login_count_90d=2,
        ev_feature_use_count_30d=1,  # same instant as a login: both count
        ev_login_trend_30d=1.0,
        ev_feature_use_trend_30d=NAN,
        ev_engagement_score_30d=4.0,  # 1 login x 1 + 1 feature use x 3
        ev_engagement_trend_30d=4.0,
    )
    expect(
        features,
        "C",
        days_since_last_event=28,
        ev_active_days_30d=1,
        ev_active_days_90d=2,
        ev_login_count_90d=1,
        ev_login_trend_30d=NAN,
        ev_engagement_score_30d=0,
        ev_engagement_trend_30d=NAN,
    )
    expect(features, "B", days_since_last_event=NAN, ev_active_days_90d=0, ev_login_count_90d=0)


def test_feedback_surveys_and_tickets(features: pd.DataFrame) -> None:
    expect(
        features,
        "00042",
        nps_last=4.0,
        nps_mean=17 / 3,
        nps_count=3,
        days_since_last_nps=14,
        csat_last=NAN,
        csat_count=0,
        ticket_count_30d=1,
        ticket_count_90d=1,
        days_since_last_ticket=13,
    )
    expect(
        features,
        "C",
        nps_last=NAN,
        nps_count=0,
        csat_last=4.0,
        csat_mean=4.0,
        days_since_last_csat=28,
        ticket_count_90d=0,  # 2024-11-01 is before the window
        days_since_last_ticket=120,
    )


def test_profile_attributes_and_tenure(features: pd.DataFrame) -> None:
    assert features.loc["00042", "plan"] == "pro"
    assert features.loc["B", "country"] == "US"
    assert pd.isna(features.loc["C", "plan"])
    assert pd.isna(features.loc["D", "plan"]) and pd.isna(features.loc["D", "country"])
    expect(features, "00042", tenure_days=273)
    expect(features, "B", tenure_days=2)
    expect(features, "C", tenure_days=NAN)
    expect(features, "D", tenure_days=NAN)


def test_matrix_has_stable_keys_and_dtypes(features: pd.DataFrame) -> None:
    assert list(features.index) == ["00042", "B", "C", "D"]  # ids kept exactly, sorted
    assert (features["cutoff"] == pd.Timestamp(CUTOFF)).all()
    assert features["plan"].dtype == "category"
    assert list(features["plan"].cat.categories) == ["basic", "pro"]
    numeric = features.drop(columns=["cutoff", "plan", "country"])
    assert (numeric.dtypes == "float64").all()


def test_latest_answers_at_many_cutoffs_when_every_customer_has_answered(con: SQLBackend) -> None:
    """The binned plan stores the answer days narrow when none is missing: still a join key.

    Every spine row has an answer before its cutoff, so no total is NULL
    and the plan keeps them in the narrowest integer type; the latest
    answer is then found by joining on the last answer day.
    """
    events = frame(
        [
            ("a", "2024-01-10 08:00", "nps", 9.0),
            ("a", "2024-02-10 08:00", "nps", 3.0),
            ("b", "2024-01-10 09:00", "nps", 7.0),
        ],
        ["customer_id", "timestamp", "event_type", "value"],
    )
    transactions = frame(
        [("a", "2024-01-05 10:00", 10.0), ("b", "2024-01-05 10:00", 5.0)],
        ["customer_id", "timestamp", "amount"],
    )
    cutoffs = [dt.date(2024, 2, 1), dt.date(2024, 3, 1)]
    got = features_at(
        con,
        {"transactions": transactions, "events": events},
        [(c, d) for c in ("a", "b") for d in cutoffs],
        FeatureConfig(feedback=FeedbackConfig(surveys=["nps"])),
    )
    assert got["nps_last"].tolist() == [9.0, 3.0, 7.0, 7.0]  # a, a, b, b by cutoff
    assert got["days_since_last_nps"].tolist() == [22.0, 20.0, 22.0, 51.0]
