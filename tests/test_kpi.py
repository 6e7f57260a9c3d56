"""Retention KPIs and cohorts against values worked out by hand.

The contractual data set (three whole months, January to March 2024):

    customer  plan   signup       churn        transactions (amount, order)
    A         basic  2024-01-01   -            Jan 1 100 o1; Feb 5 50 o3; Feb 6 -10 o3; Mar 10 30 o6
    B         pro    2024-01-20   2024-02-20   Jan 25 40 o2
    C         basic  2024-02-10   2024-03-15   Feb 12 60 o4; Mar 3 20 o5
    D         pro    2024-02-15   2024-02-28   -
    E         basic  2024-03-01   -            Mar 20 80 o7

Surveys: Jan: A NPS 9, B NPS 3; Feb: A CSAT 5, C CSAT 3, C NPS 7, D NPS 10;
none in March. A signed up at 00:00 on Jan 1 and E on Mar 1, so neither is a
customer at the start of that month (signed up *before* the instant counts).
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from churnmodel.config import KpiConfig, LabelConfig, RunConfig
from churnmodel.data.simulate import simulate
from churnmodel.errors import CutoffError, DataContractError
from churnmodel.kpi import cohort_retention, complete_periods, retention_kpis
from churnmodel.workflows import build_features
from tests.conftest import frame, validated

CONTRACTUAL = LabelConfig(business="contractual", horizon_days=30)
NAN = float("nan")


@pytest.fixture(scope="module")
def shop(con):
    customers = frame(
        [
            ("A", "2024-01-01", "basic"),
            ("B", "2024-01-20", "pro"),
            ("C", "2024-02-10", "basic"),
            ("D", "2024-02-15", "pro"),
            ("E", "2024-03-01", "basic"),
        ],
        ["customer_id", "signup_date", "plan"],
    )
    churn = frame(
        [("B", "2024-02-20"), ("D", "2024-02-28"), ("C", "2024-03-15")],
        ["customer_id", "churn_date"],
    )
    transactions = frame(
        [
            ("A", "2024-01-01T10:00", 100.0, "o1"),
            ("B", "2024-01-25", 40.0, "o2"),
            ("A", "2024-02-05", 50.0, "o3"),
            ("A", "2024-02-06", -10.0, "o3"),
            ("C", "2024-02-12", 60.0, "o4"),
            ("C", "2024-03-03", 20.0, "o5"),
            ("A", "2024-03-10", 30.0, "o6"),
            ("E", "2024-03-20", 80.0, "o7"),
        ],
        ["customer_id", "timestamp", "amount", "order_id"],
    )
    events = frame(
        [
            ("A", "2024-01-15", "nps", 9.0),
            ("B", "2024-01-28", "nps", 3.0),
            ("A", "2024-02-10", "csat", 5.0),
            ("C", "2024-02-11", "csat", 3.0),
            ("C", "2024-02-12", "nps", 7.0),
            ("D", "2024-02-16", "nps", 10.0),
            ("A", "2024-03-31T12:00", "login", None),
        ],
        ["customer_id", "timestamp", "event_type", "value"],
    )
    return validated(
        con,
        {"customers": customers, "churn": churn, "transactions": transactions, "events": events},
    )


def kpis_of(tables, label=CONTRACTUAL, **settings) -> pd.DataFrame:
    config = KpiConfig(**settings)
    periods = complete_periods(tables.observed_from, tables.observed_until, config.period, label)
    return retention_kpis(tables, periods, label, config)


def row(kpis: pd.DataFrame, period: str, segment_by: str = "all", segment: str = "all"):
    found = kpis[
        (kpis.period == dt.date.fromisoformat(period))
        & (kpis.segment_by == segment_by)
        & (kpis.segment == segment)
    ]
    assert len(found) == 1
    return found.iloc[0]


def assert_values(actual, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[name]), name
        else:
            assert actual[name] == pytest.approx(value), name


def test_contractual_kpis_match_hand_computed_values(shop) -> None:
    kpis = kpis_of(shop)
    assert list(kpis[kpis.segment_by == "all"].period.astype(str)) == [
        "2024-01-01",
        "2024-02-01",
        "2024-03-01",
    ]
    # January: nobody is a customer at the start, A and B are new: every rate over CS is NaN
    assert_values(
        row(kpis, "2024-01-01"),
        {
            "customers_start": 0,
            "customers_end": 2,
            "new_customers": 2,
            "lost_customers": 0,
            "retention_rate": NAN,
            "churn_rate": NAN,
            "revenue": 140,
            "revenue_new": 140,
            "revenue_existing": 0,
            "orders": 2,
            "aov": 70,
            "purchase_frequency": 1,
            "clv": NAN,  # no churn rate, no expected lifespan
            "nps_answers": 2,
            "nps": 0,  # one promoter, one detractor
            "csat_answers": 0,
            "csat": NAN,
            "ces": NAN,
            "survey_response_rate": 100,
        },
    )
    # February: B is lost; D is new and gone by the end, so (CE - CN) / CS = (2 - 2) / 2
    assert_values(
        row(kpis, "2024-02-01"),
        {
            "customers_start": 2,
            "customers_end": 2,
            "new_customers": 2,
            "lost_customers": 1,
            "retained_customers": 1,
            "retention_rate": 0,
            "churn_rate": 50,
            "revenue": 100,  # A 50 - 10 refund, C 60
            "revenue_new": 60,
            "revenue_existing": 40,
            "orders": 2,  # o3 counts once, its refund is not an order
            "buyers": 2,
            "aov": 50,
            "purchase_frequency": 1,
            "expected_lifespan_periods": 2,
            "clv": 100,
            "nps": 50,  # C passive, D promoter
            "csat": 50,  # A 5, C 3
            "survey_response_rate": 75,  # A, C, D of A, B, C, D
        },
    )
    # March: no surveys at all
    assert_values(
        row(kpis, "2024-03-01"),
        {
            "customers_start": 2,
            "customers_end": 2,
            "new_customers": 1,
            "lost_customers": 1,
            "retention_rate": 50,
            "churn_rate": 50,
            "revenue": 130,
            "revenue_new": 80,
            "aov": 130 / 3,
            "clv": 130 / 3 * 2,
            "nps_answers": 0,
            "nps": NAN,
            "csat": NAN,
            "survey_response_rate": 0,
        },
    )


def test_segments_margin_and_fixed_lifespan(shop) -> None:
    kpis = kpis_of(shop, segments=["plan"], margin=0.5, lifespan_periods=10)
    # February, pro: B lost and D both new and lost: (0 - 1) / 1, the formula can go negative
    assert_values(
        row(kpis, "2024-02-01", "plan", "pro"),
        {"customers_start": 1, "new_customers": 1, "retention_rate": -100, "churn_rate": 100},
    )
    assert_values(
        row(kpis, "2024-02-01", "plan", "basic"),
        {"customers_start": 1, "customers_end": 2, "retention_rate": 100, "churn_rate": 0},
    )
    # the January pro row exists with B's numbers; CLV = 70 x 1 x 10 x 0.5 overall
    assert row(kpis, "2024-01-01", "plan", "pro")["revenue"] == 40
    assert row(kpis, "2024-01-01")["clv"] == pytest.approx(350)
    # segment counts add up to the overall row
    by_plan = kpis[kpis.segment_by == "plan"].groupby("period")["customers_end"].sum()
    overall = kpis[kpis.segment_by == "all"].set_index("period")["customers_end"]
    pd.testing.assert_series_equal(by_plan, overall, check_names=False)


def test_quarter_periods_need_whole_quarters(shop) -> None:
    kpis = kpis_of(shop, period="quarter")
    assert_values(
        row(kpis, "2024-01-01"),
        {"customers_start": 0, "customers_end": 2, "new_customers": 5, "revenue": 370},
    )
    with pytest.raises(CutoffError, match="no whole quarter"):
        complete_periods(dt.datetime(2024, 1, 5), dt.datetime(2024, 4, 1), "quarter", CONTRACTUAL)


def test_non_contractual_customers_are_the_recently_active(con) -> None:
    """30-day activity window; data from Jan 5, so the first whole month after it is March.

    Mar: CS = X, Z (active Jan 31 - Feb 29); CE = X, Z, W; W is new -> (3 - 1) / 2.
    Apr: CS = X, Z, W; only X buys in April -> CE = 1, lost Z and W.
    """
    transactions = frame(
        [
            ("X", "2024-01-05", 10.0),
            ("Y", "2024-01-20", 10.0),
            ("X", "2024-02-10", 10.0),
            ("Z", "2024-02-20", 10.0),
            ("X", "2024-03-05", 10.0),
            ("W", "2024-03-10", 10.0),
            ("Z", "2024-03-25", 10.0),
            ("X", "2024-04-15", 10.0),
        ],
        ["customer_id", "timestamp", "amount"],
    )
    events = frame(
        [("X", "2024-04-30T12:00", "login", None)],
        ["customer_id", "timestamp", "event_type", "value"],
    )
    tables = validated(con, {"transactions": transactions, "events": events})
    label = LabelConfig(business="non_contractual", activity="transactions", active_window_days=30)
    kpis = kpis_of(tables, label)
    assert list(kpis.period.astype(str)) == ["2024-03-01", "2024-04-01"]
    assert_values(
        row(kpis, "2024-03-01"),
        {"customers_start": 2, "customers_end": 3, "new_customers": 1, "lost_customers": 0},
    )
    assert row(kpis, "2024-03-01")["retention_rate"] == pytest.approx(100)
    assert_values(
        row(kpis, "2024-04-01"),
        {
            "customers_start": 3,
            "customers_end": 1,
            "new_customers": 0,
            "lost_customers": 2,
            "retention_rate": 100 / 3,
            "churn_rate": 200 / 3,
            "survey_response_rate": 0,
        },
    )


def test_survey_answers_off_the_scale_are_a_contract_error(con) -> None:
    events = frame(
        [("A", "2024-01-15", "nps", 11.0), ("B", "2024-01-16", "nps", 12.0)],
        ["customer_id", "timestamp", "event_type", "value"],
    )
    transactions = frame([("A", "2024-01-15", 1.0)], ["customer_id", "timestamp", "amount"])
    tables = validated(con, {"transactions": transactions, "events": events})
    with pytest.raises(DataContractError, match=r"'events', column 'value'.*0 and 10; 2 rows"):
        retention_kpis(
            tables,
            [(dt.date(2024, 1, 1), dt.date(2024, 2, 1))],
            LabelConfig(business="non_contractual", activity="transactions"),
            KpiConfig(),
        )
    # the features (train, score) refuse what the KPIs refuse
    with pytest.raises(DataContractError, match=r"'events', column 'value'.*0 and 10; 2 rows"):
        build_features(RunConfig(), sources={"transactions": transactions, "events": events})


def test_unknown_segment_attribute_is_named(shop) -> None:
    with pytest.raises(DataContractError, match="'customers', column 'region'"):
        kpis_of(shop, segments=["region"])


def test_cohorts_contractual_by_hand(shop) -> None:
    cohorts = cohort_retention(shop, CONTRACTUAL)
    cells = {
        (f"{c:%Y-%m}", k): (size, active)
        for c, k, size, active in cohorts.table[
            ["cohort", "months_since", "cohort_size", "active"]
        ].itertuples(index=False)
    }
    # Jan: A, B (B churns in Feb); Feb: C, D (D churns in Feb, C in Mar); Mar: E
    assert cells == {
        ("2024-01", 0): (2, 2),
        ("2024-01", 1): (2, 1),
        ("2024-01", 2): (2, 1),
        ("2024-02", 0): (2, 1),
        ("2024-02", 1): (2, 0),
        ("2024-03", 0): (1, 1),
    }
    assert cohorts.matrix().loc[dt.date(2024, 1, 1), 1] == 50
    assert (cohorts.without_signup, cohorts.signed_up_earlier) == (0, 0)


def test_cohort_first_column_and_diagonal_match_direct_counts(con) -> None:
    """On simulated data: k = 0 and the last whole month, counted directly with pandas."""
    data = simulate(n_customers=400, seed=5).as_tables()
    tables = validated(con, data)
    label = LabelConfig(business="non_contractual", activity="transactions")
    cohorts = cohort_retention(tables, label)

    customers, tx = data["customers"], data["transactions"]
    cohort = (
        customers.set_index("customer_id")["signup_date"].dt.tz_localize(None).dt.to_period("M")
    )
    month = tx["timestamp"].dt.tz_localize(None).dt.to_period("M")
    active = set(zip(tx["customer_id"], month, strict=True))
    table = cohorts.table.assign(cohort=lambda t: pd.PeriodIndex(t.cohort, freq="M"))
    last = table["cohort"].max()
    first_column = table[table.months_since == 0]
    diagonal = table[table.cohort + table.months_since == last]
    assert len(first_column) == len(diagonal) == table["cohort"].nunique() > 12
    for cells, when in ((first_column, lambda c, k: c), (diagonal, lambda c, k: last)):
        for c, k, size, n in cells[["cohort", "months_since", "cohort_size", "active"]].itertuples(
            index=False
        ):
            members = cohort.index[cohort == c]
            assert size == len(members)
            assert n == sum((m, when(c, k)) in active for m in members)
    assert cohorts.signed_up_earlier == int((cohort < table["cohort"].min()).sum())
