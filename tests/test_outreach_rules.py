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
from churnmodel.outreach.reasons import Typical, explain, risk_reference, typical_values

NAN = math.nan


def test_top_share_tiers_take_everyone_tied_with_their_last_customer() -> None:
    probability = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.5, 0.05, 0.15, 0.25])
    tiers = risk_tiers(probability, OutreachConfig(high=0.1, medium=0.3))
    # top 1 of 10 is high; the next 2 are 0.7 and a 0.5, and the other 0.5 comes along
    assert list(tiers) == [
        "high",
        "low",
        "medium",
        "medium",
        "low",
        "low",
        "medium",
        "low",
        "low",
        "low",
    ]


def test_no_probability_is_split_between_two_tiers() -> None:
    rng = np.random.default_rng(0)
    probability = rng.choice([0.964789, 0.5, 0.2, 0.01], size=1_000, p=[0.15, 0.2, 0.3, 0.35])
    tiers = pd.Series(risk_tiers(probability, OutreachConfig(high=0.05, medium=0.2)))
    assert tiers.groupby(probability, observed=True).nunique().max() == 1
    assert (tiers == "high").sum() >= 50  # the share is a floor, ties are added


def test_top_share_tiers_are_exact_without_ties() -> None:
    probability = np.linspace(0.01, 0.99, 100)
    tiers = pd.Series(risk_tiers(probability, OutreachConfig(high=0.05, medium=0.2)))
    assert tiers.value_counts().to_dict() == {"low": 80, "medium": 15, "high": 5}
    assert risk_tiers(np.array([]), OutreachConfig()).size == 0


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
    assert result.actions[0] == "re-engagement campaign"
    # no usual gap known: the plainer rule; the plan pushed risk up but is who they are
    assert result.reasons[1] == [
        "New customer: joined 35 days ago",
        "No purchase for 94 days",
        "",
    ]
    assert result.actions[1] == "onboarding help"


def test_configured_rules_come_first_and_only_positive_pushes_count() -> None:
    features = frame([{"days_since_last_tx": 10.0, "tenure_days": 500.0, "plan": "basic"}])
    contributions = pd.DataFrame([[0.3, 0, 0, 0, 0, -0.1, -0.5]], columns=features.columns)
    mine = ReasonRule(feature="days_since_last_tx", text="Quiet for {value:.0f}d", action="call")
    result = explain(contributions, features, SPECS, [mine])
    assert result.reasons[0] == ["Quiet for 10d", "", ""]
    assert result.actions[0] == "call"


def test_missing_values_are_reasons_only_through_a_rule_that_says_what_they_mean() -> None:
    features = frame([{"days_since_last_tx": NAN, "tx_gap_mean_days": NAN, "plan": None}])
    contributions = pd.DataFrame([[0.3, 0.2, 0, 0, 0, 0, 0.1]], columns=features.columns)
    result = explain(contributions, features, SPECS)
    assert result.reasons[0] == ["No purchase on record", "", ""]


BEHAVIOUR = [
    FeatureSpec("ev_login_count_365d", "engagement", "Login events in the last 365 days"),
    FeatureSpec("ev_error_count_30d", "engagement", "Error events in the last 30 days"),
    FeatureSpec("days_since_last_event", "engagement", "Days since the last event"),
    FeatureSpec("ev_error_per_login_30d", "engagement", "Errors per login, last 30 days"),
    FeatureSpec("tenure_days", "profile", "Days since signup"),
    FeatureSpec("billing", "profile", "Customer billing", "category"),
]
TYPICAL = {
    "ev_login_count_365d": Typical(60.0, "low"),  # fewer logins: more churn
    "ev_error_count_30d": Typical(2.0, "high"),  # more errors: more churn
    "days_since_last_event": Typical(5.0, "high"),
    "ev_error_per_login_30d": Typical(0.05, "high"),
    "tenure_days": Typical(400.0, "low"),
}


def test_only_values_on_the_risky_side_of_typical_are_reasons() -> None:
    """The issue's examples: 88 logins, 761 days a customer and monthly billing explain nothing."""
    features = pd.DataFrame(
        {
            "ev_login_count_365d": [88.0, 20.0, 88.0, 88.0],
            "ev_error_count_30d": [12.0, 0.0, 0.0, 0.0],
            "days_since_last_event": [40.0, 1.0, 1.0, 1.0],
            "ev_error_per_login_30d": [0.5, 0.0, 0.0, 0.0],
            "tenure_days": [761.0, 761.0, 761.0, 761.0],
            "billing": ["monthly", "annual", "monthly", "annual"],
        }
    )
    contributions = pd.DataFrame(
        [
            [0.9, 0.3, 0.5, 0.2, 0.8, 0.7],  # every push up, only three on the risky side
            [-0.1, 0.0, 0.0, 0.0, 0.0, 0.0],  # 20 logins pushed risk down: no reason from it
            [0.4, 0.0, 0.0, 0.0, 0.3, 0.2],  # nothing on the risky side but the billing push
            [-0.2, -0.1, -0.1, 0.0, -0.3, -0.1],  # nothing raised the risk
        ],
        columns=features.columns,
    )
    result = explain(contributions, features, BEHAVIOUR, typical=TYPICAL)
    assert result.reasons[0] == [
        "Not seen in the product for 40 days (typical 5)",
        "12 Error events in the last 30 days (typical 2)",
        "Errors per login, last 30 days: 0.5 (typical 0.05)",
    ]
    assert result.actions[0] == "re-engagement campaign"
    assert result.reasons[2][0] == "Customer billing: monthly, where churn runs higher than usual"
    assert result.actions[2] == "retention offer"
    fallback = "Higher risk from the overall pattern; no single behaviour stands out"
    assert result.reasons[1][0] == result.reasons[3][0] == fallback
    assert all(r[1:] == ["", ""] for r in result.reasons[1:])


def test_actions_follow_the_kind_of_the_strongest_reason() -> None:
    features = pd.DataFrame(
        {
            "ev_login_count_365d": [10.0, 10.0],
            "ev_error_count_30d": [9.0, 9.0],
            "days_since_last_event": [1.0, 1.0],
            "ev_error_per_login_30d": [0.0, 0.0],
            "tenure_days": [30.0, 500.0],
            "billing": ["monthly", "monthly"],
        }
    )
    contributions = pd.DataFrame(
        [[0.1, 0.2, 0, 0, 0.9, 0], [0.1, 0.2, 0, 0, 0.9, 0]], columns=features.columns
    )
    result = explain(contributions, features, BEHAVIOUR, typical=TYPICAL)
    assert result.reasons[0][0] == "New customer: joined 30 days ago"
    assert result.actions == ["onboarding help", "support follow-up"]  # errors, then logins
    assert result.reasons[1][:2] == [
        "9 Error events in the last 30 days (typical 2)",
        "10 Login events in the last 365 days (typical 60)",
    ]


def test_risk_reference_holds_the_median_and_the_side_churn_is_on() -> None:
    frame = pd.DataFrame(
        {
            "rises_with_churn": [1.0, 2.0, 3.0, 4.0, 10.0, 11.0],
            "falls_with_churn": [9.0, 8.0, 7.0, 6.0, 1.0, 0.0],
            "unrelated": [1.0, 2.0, 1.0, 1.0, 2.0, 1.0],
            "plan": pd.Categorical(list("abcabc")),
            "label": [0, 0, 0, 1, 1, 1],
        }
    )
    specs = [
        FeatureSpec("rises_with_churn", "t", "x"),
        FeatureSpec("falls_with_churn", "t", "x"),
        FeatureSpec("unrelated", "t", "x"),
        FeatureSpec("plan", "t", "x", "category"),
    ]
    reference = risk_reference(frame, specs)
    assert reference == {
        "rises_with_churn": {"median": 3.5, "risky": "high"},
        "falls_with_churn": {"median": 6.5, "risky": "low"},
    }  # "unrelated": rank correlation 0; categories have no side
    assert typical_values(reference)["falls_with_churn"] == Typical(6.5, "low")


def test_health_reads_the_configured_window_nearest_to_90_days() -> None:
    """With windows of 30 and 60 days, engagement and tickets come from the 60-day ones."""
    frame = pd.DataFrame(
        {
            "ev_engagement_trend_30d": [1.0, 1.0],
            "ev_engagement_trend_60d": [0.5, 1.0],
            "ticket_count_30d": [0.0, 0.0],
            "ticket_count_60d": [2.0, 1.0],  # the bound: 3 tickets in 90 days = 2 in 60
        }
    )
    health = health_scores(frame, np.array([0.9, 0.1]))
    # row 1: engagement 50, support 100 * (1 - 2/2) = 0 -> 25; row 2: 100 and 50 -> 75
    assert health.tolist() == [25, 75]
