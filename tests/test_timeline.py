"""Cutoff schedules, eligibility and labels for both kinds of business."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from ibis.backends.sql import SQLBackend

from churnmodel.config import CutoffConfig, LabelConfig
from churnmodel.engine import collect
from churnmodel.errors import CutoffError
from churnmodel.timeline import build_spine, schedule, training_cutoffs
from churnmodel.timeline.cutoffs import default_horizon, default_schedule
from tests.conftest import frame, validated

D = dt.date


def test_monthly_schedule_keeps_the_day_and_clamps_short_months() -> None:
    assert schedule(D(2025, 1, 31), D(2025, 4, 30), "1mo") == [
        D(2025, 1, 31),
        D(2025, 2, 28),
        D(2025, 3, 31),
        D(2025, 4, 30),
    ]


def test_weekly_and_daily_schedules() -> None:
    assert schedule(D(2025, 1, 1), D(2025, 1, 15), "1w") == [
        D(2025, 1, 1),
        D(2025, 1, 8),
        D(2025, 1, 15),
    ]
    assert schedule(D(2025, 1, 1), D(2025, 1, 3), "2d") == [D(2025, 1, 1), D(2025, 1, 3)]


def test_bad_step_is_an_error() -> None:
    with pytest.raises(CutoffError, match="'1y'"):
        schedule(D(2025, 1, 1), D(2025, 2, 1), "1y")


def _default(observed_from: dt.datetime, observed_until: dt.datetime) -> tuple[int, list[D]]:
    """The default horizon and training cutoffs for data covering this period."""
    horizon = default_horizon(observed_from, observed_until)
    config = default_schedule(CutoffConfig(), observed_from, observed_until, horizon)
    return horizon, training_cutoffs(config, observed_until, horizon)


def test_default_schedule_for_seven_months_of_history() -> None:
    # 214 days: min history 214 // 4 = 53 days; 90 and 60-day horizons leave no room for a
    # backtest (214 - 53 - h >= h + 84 fails), 30 does (131 >= 114).
    horizon, cutoffs = _default(dt.datetime(2025, 3, 17), dt.datetime(2025, 10, 17))
    assert horizon == 30
    # newest: 2025-10-17 - 30 days = 2025-09-17; earliest allowed 2025-03-17 + 53 = 2025-05-09;
    # 131 days span < 154, so weekly, counted back from the newest: 18 weeks -> 2025-05-14
    assert cutoffs[0] == D(2025, 5, 14) and cutoffs[-1] == D(2025, 9, 17)
    assert len(cutoffs) == 19
    assert {(b - a).days for a, b in itertools.pairwise(cutoffs)} == {7}


def test_default_schedule_for_a_year_of_history() -> None:
    # 366 days: min history 90; 90-day horizon fits (366 - 90 - 90 = 186 >= 174)
    horizon, cutoffs = _default(dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1))
    assert horizon == 90
    # newest 2024-10-03; earliest 2024-03-31; span 186 days: under 11 months, at least
    # 11 fortnights -> every two weeks, 13 steps back from the newest: 2024-04-04
    assert cutoffs[0] == D(2024, 4, 4) and cutoffs[-1] == D(2024, 10, 3)
    assert len(cutoffs) == 14
    assert {(b - a).days for a, b in itertools.pairwise(cutoffs)} == {14}


def test_default_schedule_for_three_years_of_history() -> None:
    horizon, cutoffs = _default(dt.datetime(2022, 1, 1), dt.datetime(2025, 1, 1))
    assert horizon == 90
    # monthly from the first of the month after 2022-04-01 (90 days of history) to
    # 2024-10-01 (the newest first of a month with its label window in the data):
    # 31 cutoffs, of which the newest 24 are kept
    assert cutoffs[0] == D(2022, 11, 1) and cutoffs[-1] == D(2024, 10, 1)
    assert len(cutoffs) == 24


def test_set_values_win_over_the_rule() -> None:
    config = default_schedule(
        CutoffConfig(every="1mo"), dt.datetime(2025, 3, 17), dt.datetime(2025, 10, 17), 30
    )
    assert config.every == "1mo" and config.first == D(2025, 6, 1)
    fixed = CutoffConfig(every="1w", first=D(2025, 8, 1))
    assert default_schedule(fixed, dt.datetime(2025, 1, 1), dt.datetime(2025, 10, 1), 30) == fixed


def test_configured_cutoffs_past_the_data_are_dropped() -> None:
    config = CutoffConfig(every="1mo", first=D(2024, 9, 1), last=D(2024, 12, 1))
    cutoffs = training_cutoffs(config, dt.datetime(2025, 1, 1), 31)
    assert cutoffs == [D(2024, 9, 1), D(2024, 10, 1), D(2024, 11, 1), D(2024, 12, 1)]
    cutoffs = training_cutoffs(config, dt.datetime(2025, 1, 1), 32)
    assert cutoffs[-1] == D(2024, 11, 1)


def test_explicit_cutoff_with_unobserved_label_window_is_an_error() -> None:
    with pytest.raises(CutoffError, match="2024-12-15"):
        training_cutoffs(CutoffConfig(), dt.datetime(2025, 1, 1), 30, explicit=[D(2024, 12, 15)])


def test_too_short_a_history_is_an_error() -> None:
    config = default_schedule(CutoffConfig(), dt.datetime(2024, 12, 1), dt.datetime(2025, 1, 1), 90)
    with pytest.raises(CutoffError, match="label window"):
        training_cutoffs(config, dt.datetime(2025, 1, 1), 90)


def spine_rows(con: SQLBackend, tables, cutoffs, label) -> set[tuple[str, dt.date, int]]:
    spine = collect(build_spine(validated(con, tables), cutoffs, label))
    return {(r.customer_id, r.cutoff, int(r.label)) for r in spine.itertuples()}


def test_contractual_eligibility_and_labels(con: SQLBackend) -> None:
    customers = frame(
        [
            ("stays", "2024-01-01"),
            ("leaves_in_window", "2024-01-01"),
            ("left_before", "2024-01-01"),
            ("signs_up_at_cutoff", "2025-03-01"),
            ("leaves_at_horizon", "2024-06-01"),
            ("unknown_signup", None),
        ],
        ["customer_id", "signup_date"],
    )
    churn = frame(
        [
            ("leaves_in_window", "2025-03-01 00:00"),  # first instant of the window
            ("left_before", "2025-02-28 23:59:59"),
            ("leaves_at_horizon", "2025-03-31 00:00"),  # c + 30 days: outside [c, c + 30)
        ],
        ["customer_id", "churn_date"],
    )
    tx = frame([("stays", "2024-05-01", 10.0)], ["customer_id", "timestamp", "amount"])
    label = LabelConfig(business="contractual", horizon_days=30)
    rows = spine_rows(
        con, {"customers": customers, "churn": churn, "transactions": tx}, [D(2025, 3, 1)], label
    )
    c = D(2025, 3, 1)
    assert rows == {
        ("stays", c, 0),
        ("leaves_in_window", c, 1),
        ("leaves_at_horizon", c, 0),
        ("unknown_signup", c, 0),
    }


def test_non_contractual_eligibility_and_labels(con: SQLBackend) -> None:
    tx = frame(
        [
            ("returns", "2025-02-01", 10.0),
            ("returns", "2025-03-10", 10.0),
            ("lapses", "2025-02-01", 10.0),
            ("too_old", "2024-11-30 23:59:59", 10.0),  # just outside [c - 90, c)
            ("edge", "2024-12-01 00:00", 10.0),  # first instant of [c - 90, c)
            ("edge", "2025-03-30 23:59:59", 10.0),  # last instant of [c, c + 30)
            ("new", "2025-03-01 00:00", 10.0),  # at the cutoff: not yet a customer
        ],
        ["customer_id", "timestamp", "amount"],
    )
    events = frame(
        [("lapses", "2025-03-05", "login", None)],
        ["customer_id", "timestamp", "event_type", "value"],
    )
    c = D(2025, 3, 1)
    by_purchase = LabelConfig(
        business="non_contractual", horizon_days=30, active_window_days=90, activity="transactions"
    )
    tables = {"transactions": tx, "events": events}
    assert spine_rows(con, tables, [c], by_purchase) == {
        ("returns", c, 0),
        ("lapses", c, 1),
        ("edge", c, 0),
    }
    by_any = LabelConfig(
        business="non_contractual", horizon_days=30, active_window_days=90, activity="any"
    )
    assert ("lapses", c, 0) in spine_rows(con, tables, [c], by_any)  # a login counts as activity
