"""Tiers, value, health and reason texts against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from churnmodel.config import OutreachConfig, ReasonRule
from churnmodel.features.catalog import FeatureSpec
from churnmodel.outreach.build import (
    health_scores,
    high_value_cut,
    risk_tiers,
    segment_labels,
    value_12m,
)
from churnmodel.outreach.reasons import explain

NAN = math.nan


def test_top_share_tiers_are_exact_counts_with_ties_broken_by_position() -> None:
    probability = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.5, 0.05, 0.15, 0.25])
    tiers = risk_tiers(probability, OutreachConfig(high=0.1, medium=0.3))
    # top 1 of 10 is high; the next 2 (0.7 and the first 0.5) are medium
    assert list(tiers) == ["high", "low", "medium", "medium", *["low"] * 6]


def test_top_share_ties_go_to_the_higher_value() -> None:
    probability = np.array([1.0, 1.0, 1.0, 0.2])
    tiers = risk_tiers(probability, OutreachConfig(high=0.25, medium=0.5), np.array([5, 50, 9, 0]))
    assert list(tiers) == ["low", "high", "medium", "low"]  # 50 first, then 9, then 5


def test_probability_tiers_use_thresholds() -> None:
    config = OutreachConfig(tiers="probability", high=0.6, medium=0.3)
    tiers = risk_tiers(np.array([0.6, 0.59, 0.3, 0.29]), config)
    assert list(tiers) == ["high", "medium", "medium", "low"]


def test_value_12m_annualises_spend_over_the_customers_own_history() -> None:
    frame = pd.DataFrame(
        {
            "tx_amount_sum_365d": [1200.0, 1200.0, 1200.0, -50.0, 600.0],
            "tx_tenure_days": [730.0, 100.0, 10.0, 400.0, NAN],
        }
    )
    # 1200 over a full year; 1200 * 365/100; at least 30 days counted; refunds floor at 0;
    # unknown tenure counts as the whole window
    assert value_12m(frame, 365).tolist() == [1200.0, 4380.0, 14600.0, 0.0, 600.0]


def test_value_12m_uses_bgnbd_expected_purchases_of_a_customer_who_stays() -> None:
    frame = pd.DataFrame(
        {
            "tx_amount_sum_365d": [1200.0, 1200.0, 1200.0],
            "tx_tenure_days": [730.0, 730.0, 730.0],
            "tx_expected_purchases_365d": [6.0, 2.0, NAN],
            "tx_p_alive": [1.0, 0.25, NAN],
            "tx_amount_sum_total": [500.0, 300.0, 100.0],
            "tx_purchase_days_total": [10.0, 3.0, 1.0],
        }
    )
    # 6 purchase days a year x 50 per day; 2 / 0.25 = 8 days if alive x 100 per day;
    # no BG/NBD answer: the annualised spend
    assert value_12m(frame, 365).tolist() == [300.0, 800.0, 1200.0]


def test_health_is_the_mean_of_the_behaviour_parts_it_can_see() -> None:
    frame = pd.DataFrame(
        {
            "tx_recency_gap_ratio": [1.0, 2.5, NAN],
            "ev_engagement_trend_90d": [0.5, 2.0, NAN],
            "nps_last": [8.0, NAN, NAN],
            "csat_last": [4.0, 1.0, NAN],
            "ticket_count_90d": [0.0, 3.0, NAN],
        }
    )
    scores = health_scores(frame, np.array([0.1, 0.5, 0.25]))
    # (100 + 50 + 80 + 75 + 100) / 5 = 81; (50 + 100 + 0 + 0) / 4 = 37.5 -> 38; no parts: 100 * 0.75
    assert scores.tolist() == [81, 38, 75]


def test_high_value_cut_is_the_value_at_the_share_rank_ties_included() -> None:
    values = np.array([10.0, 500.0, 80.0, 80.0, 0.0, 80.0, 7.0, 300.0, 1.0, 2.0])
    # 30 % of 10 customers -> rank 3 by value: 500, 300, 80 -> the cut is 80, and all
    # three customers at 80 are at or above it
    cut = high_value_cut(values, 0.3)
    assert cut == 80.0
    assert int((values >= cut).sum()) == 5
    # 25 % of 10 -> rank ceil(2.5) = 3 as well; 1 % of 10 -> at least rank 1
    assert high_value_cut(values, 0.25) == 80.0
    assert high_value_cut(values, 0.01) == 500.0
    assert high_value_cut(np.array([]), 0.2) == math.inf


def test_segments_take_new_then_high_value_then_at_risk() -> None:
    new = np.array([True, True, False, False, False])
    high_value = np.array([True, False, True, False, False])
    at_risk = np.array([True, False, True, True, False])
    labels = segment_labels(new, high_value, at_risk)
    assert list(labels) == ["new", "new", "high-value", "at-risk", "regular"]


SPECS = [
    FeatureSpec("days_since_last_tx", "transactions", "Days since the last purchase"),
    FeatureSpec("tx_gap_mean_days", "transactions", "Mean days between purchases"),
    FeatureSpec("ev_login_trend_90d", "engagement", "Logins trend"),
    FeatureSpec("nps_last", "feedback", "Latest NPS answer"),
    FeatureSpec("days_since_last_nps", "feedback", "Days since the latest NPS answer"),
    FeatureSpec("tenure_days", "profile", "Days since signup"),
    FeatureSpec("plan", "profile", "Customer plan", "category"),
]


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[s.name for s in SPECS])


def test_reasons_quote_the_customers_numbers_in_order_of_contribution() -> None:
    features = frame(
        [
            {
                "days_since_last_tx": 94.0,
                "tx_gap_mean_days": 21.0,
                "ev_login_trend_90d": 0.3,
                "nps_last": 3.0,
                "days_since_last_nps": 20.0,
                "tenure_days": 400.0,
                "plan": "basic",
            },
            {
                "days_since_last_tx": 94.0,
                "tx_gap_mean_days": NAN,
                "ev_login_trend_90d": 1.5,
                "nps_last": NAN,
                "days_since_last_nps": NAN,
                "tenure_days": 35.0,
                "plan": "premium",
            },
        ]
    )
    contributions = pd.DataFrame(
        [[0.9, 0.0, 0.5, 0.7, 0.0, -0.2, 0.1], [0.4, 0.0, -0.3, 0.0, 0.0, 0.8, 0.2]],
        columns=features.columns,
    )
    result = explain(contributions, features, SPECS)
    assert result.reasons[0] == [
        "No purchase for 94 days; usually buys every 21 days",
        "Gave NPS 3 20 days ago",
        "Login down 70 % vs the previous 90 days",
    ]
    assert result.actions[0] == "loyalty or win-back offer"
    # no usual gap known: the plainer rule; only three features pushed risk up
    assert result.reasons[1] == [
        "New customer: joined 35 days ago",
        "No purchase for 94 days",
        "Customer plan: premium",
    ]
    assert result.actions[1] == "onboarding help"


def test_configured_rules_come_first_and_only_positive_pushes_count() -> None:
    features = frame([{"days_since_last_tx": 10.0, "tenure_days": 500.0, "plan": "basic"}])
    contributions = pd.DataFrame([[0.3, 0, 0, 0, 0, -0.1, -0.5]], columns=features.columns)
    mine = ReasonRule(feature="days_since_last_tx", text="Quiet for {value:.0f}d", action="call")
    result = explain(contributions, features, SPECS, [mine])
    assert result.reasons[0] == ["Quiet for 10d", "", ""]
    assert result.actions[0] == "call"


def test_missing_values_read_as_none_on_record() -> None:
    features = frame([{"days_since_last_tx": NAN, "plan": None}])
    contributions = pd.DataFrame([[0.3, 0, 0, 0, 0, 0, 0.1]], columns=features.columns)
    result = explain(contributions, features, SPECS)
    assert result.reasons[0][:2] == ["No purchase on record", "Customer plan: none on record"]
