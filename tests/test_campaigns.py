"""Past campaigns: the simulator's known effects, and campaign data uplift cannot learn from.

The simulated effects are checked on realised churn within the horizon,
arm against control, per true segment; bad campaign tables must stop with
one clear error naming the table, the column and the rows.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
import pandas as pd
import pytest

import churnmodel as cm
from churnmodel.data.simulate import SimulatedData
from churnmodel.data.simulated_campaigns import HORIZON_DAYS, OFFERS
from churnmodel.errors import ConfigError, DataContractError
from churnmodel.uplift.campaigns import check_campaigns
from tests.conftest import validated

SENDS = (dt.date(2025, 3, 3), dt.date(2025, 7, 1))


@cache
def simulated() -> SimulatedData:
    return cm.simulate(8_000, seed=3, business="contractual", campaign_dates=SENDS)


def realised(data: SimulatedData) -> pd.DataFrame:
    """Campaign rows with their true segment and whether they churned within the horizon."""
    assert data.campaigns is not None and data.campaign_truth is not None and data.churn is not None
    rows = data.campaigns.merge(data.churn, on="customer_id", how="left").merge(
        data.campaign_truth[["customer_id", "campaign_id", "segment"]],
        on=["customer_id", "campaign_id"],
    )
    sent = rows["sent_at"].dt.normalize()
    ahead = rows["churn_date"] - sent
    rows["churned"] = (ahead >= pd.Timedelta(0)) & (ahead < pd.Timedelta(days=HORIZON_DAYS))
    return rows


def test_assignment_is_random_and_even() -> None:
    data = simulated()
    assert data.campaigns is not None
    shares = data.campaigns["treatment"].value_counts(normalize=True)
    assert set(shares.index) == {"control", *OFFERS}
    assert (shares - 1 / 3).abs().max() < 0.03
    # each send day: the share reached of the customers active then, no one twice
    assert not data.campaigns.duplicated(["customer_id", "campaign_id"]).any()
    assert sorted(data.campaigns["sent_at"].dt.date.unique().tolist()) == list(SENDS)
    costs = data.campaigns.groupby("treatment")["cost"].unique()
    assert costs["control"].tolist() == [0.0] and costs["call"].tolist() == [OFFERS["call"]]


def test_offers_act_on_their_segments_and_contact_wakes_sleeping_dogs() -> None:
    rows = realised(simulated())
    rate = rows.pivot_table(index="segment", columns="treatment", values="churned", aggfunc="mean")
    # without contact, everyone leaving within the horizon leaves; no one staying does
    assert rate.loc[["in trouble", "already gone"], "control"].eq(1.0).all()
    assert rate.loc[["staying", "sleeping dog"], "control"].eq(0.0).all()
    # a call keeps most customers in trouble; nothing keeps those already gone
    assert rate.loc["in trouble", "call"] < 0.45
    assert rate.loc["already gone"].eq(1.0).all()
    # contact makes about half of the sleeping dogs leave, whatever the offer
    assert rate.loc["sleeping dog", list(OFFERS)].between(0.35, 0.65).all()


def test_true_effects_match_the_realised_differences() -> None:
    data = simulated()
    rows = realised(data).merge(
        data.campaign_truth, on=["customer_id", "campaign_id", "treatment", "segment"]
    )
    for offer in OFFERS:
        control = rows[rows["treatment"] == "control"]
        given = rows[rows["treatment"] == offer]
        p_c, p_k = control["churned"].mean(), given["churned"].mean()
        promised = rows[f"effect_{offer}"].mean()  # every row's effect, so both arms' average
        error = np.sqrt(p_c * (1 - p_c) / len(control) + p_k * (1 - p_k) / len(given))
        assert abs((p_c - p_k) - promised) < 4 * error  # sampling error of two proportions


def test_history_before_a_send_does_not_depend_on_the_arm() -> None:
    """Randomised, and effects start on the send day: the arms look alike beforehand."""
    data = simulated()
    assert data.campaigns is not None
    first = data.campaigns[data.campaigns["sent_at"].dt.date == SENDS[0]]
    before = data.events[data.events["timestamp"] < pd.Timestamp(SENDS[0], tz="UTC")]
    logins = before[before["event_type"] == "login"].groupby("customer_id").size()
    per_arm = first.assign(logins=first["customer_id"].map(logins).fillna(0)).groupby("treatment")
    means = per_arm["logins"].mean()
    assert means.max() / means.min() < 1.1


def test_without_campaign_dates_nothing_changes() -> None:
    plain = cm.simulate(500, seed=9, business="contractual")
    assert plain.campaigns is None and "campaigns" not in plain.as_tables()


# --- campaign data uplift cannot use --------------------------------------------------------


def _tables() -> dict[str, pd.DataFrame]:
    data = cm.simulate(600, seed=5, business="contractual", campaign_dates=(dt.date(2025, 6, 2),))
    return data.as_tables()


def test_good_campaign_data_passes_and_is_summarised(con) -> None:
    tables = _tables()
    summary = check_campaigns(validated(con, tables))
    assert summary.offers == sorted(OFFERS)
    assert summary.findings == ()
    assert summary.sends["customers"].sum() == len(tables["campaigns"])


def test_no_campaigns_table_says_how_to_configure_it(con) -> None:
    tables = _tables()
    del tables["campaigns"]
    with pytest.raises(ConfigError, match=r"data\.campaigns"):
        check_campaigns(validated(con, tables))


def _refused(con, tables: dict[str, pd.DataFrame], column: str, rows: int, words: str) -> None:
    with pytest.raises(DataContractError) as caught:
        check_campaigns(validated(con, tables))
    error = caught.value
    assert (error.table, error.column, error.rows) == ("campaigns", column, rows)
    assert words in str(error)


def test_no_control_group_is_refused(con) -> None:
    tables = _tables()
    tables["campaigns"] = tables["campaigns"][tables["campaigns"]["treatment"] != "control"]
    _refused(con, tables, "treatment", 0, "a control group")


def test_duplicate_sends_are_refused(con) -> None:
    tables = _tables()
    campaigns = tables["campaigns"]
    again = campaigns.iloc[:4].assign(treatment="discount")
    tables["campaigns"] = pd.concat([campaigns, again], ignore_index=True)
    _refused(con, tables, "customer_id", 8, "at most once per campaign_id")


def test_unknown_customers_are_refused(con) -> None:
    """Even one: a general table may hold a few strays (max_unmatched_share), a campaign not."""
    tables = _tables()
    stray = tables["campaigns"].iloc[:1].assign(customer_id="X1")
    tables["campaigns"] = pd.concat([tables["campaigns"], stray], ignore_index=True)
    assert len(tables["campaigns"]) > 100  # one row is under the 1 % general tolerance
    _refused(con, tables, "customer_id", 1, "not in 'customers'")


def test_sends_after_the_data_are_refused(con) -> None:
    tables = _tables()
    late = (
        tables["campaigns"]
        .iloc[:3]
        .assign(sent_at=pd.Timestamp("2031-01-01 09:00", tz="UTC"), campaign_id="future")
    )
    tables["campaigns"] = pd.concat([tables["campaigns"], late], ignore_index=True)
    _refused(con, tables, "sent_at", 3, "before the data ends")


def test_a_campaign_without_its_own_control_is_refused(con) -> None:
    tables = _tables()
    extra = tables["campaigns"].iloc[:30].assign(campaign_id="winback", treatment="discount")
    tables["campaigns"] = pd.concat([tables["campaigns"], extra], ignore_index=True)
    _refused(con, tables, "treatment", 30, "campaign(s) ['winback'] have none")


def test_negative_costs_are_refused(con) -> None:
    tables = _tables()
    tables["campaigns"].loc[tables["campaigns"].index[:2], "cost"] = -15.0
    _refused(con, tables, "cost", 2, "a cost of 0 or more")


def test_missing_varying_and_lookalike_offers_are_said(con) -> None:
    tables = _tables()
    campaigns = tables["campaigns"]
    calls = campaigns.index[campaigns["treatment"] == "call"]
    campaigns.loc[calls[:5], "cost"] = None  # some calls without a cost
    campaigns.loc[calls[5:8], "cost"] = 100.0  # and some dearer
    campaigns.loc[campaigns["treatment"] == "discount", "cost"] = None  # no discount has one
    campaigns.loc[calls[-3:], "treatment"] = "Call "  # written differently
    findings = check_campaigns(validated(con, tables)).findings
    assert len(findings) == 3, findings
    said = " ".join(findings)
    assert "offer 'call' costs 40.00 to 100.00 per send (5 of" in said
    assert "offer 'discount' has no cost in any" in said and "--budget-money" in said
    assert "'Call ', 'call' differ only in case or spaces" in said
