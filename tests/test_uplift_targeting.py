"""The budgeted contact list: its ranking, its size against a brute-force scan, its fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnmodel.config import RunConfig
from churnmodel.errors import ConfigError, ModelError
from churnmodel.uplift.bundle import UpliftBundle
from churnmodel.uplift.learners import UpliftModel
from churnmodel.uplift.targeting import (
    Budget,
    best_size,
    held_out_check,
    plan_contacts,
    require_costs,
)
from tests import test_uplift

COSTS = {"call": 40.0, "discount": 15.0}


def _bundle(
    winner: str = "uplift", best_on_average: str = "discount", study: dict | None = None
) -> UpliftBundle:
    """Only what planning reads: the costs and the study's verdict (no fitted models)."""
    model = UpliftModel(tuple(COSTS), (), {}, {})
    study = study or {"held_out": "spring"}
    return UpliftBundle(model, (), RunConfig(), COSTS, winner, best_on_average, study)


def _customers(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    scored = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "churn_probability": rng.random(rows),
            "value_12m": rng.gamma(2.0, 200.0, rows),
        }
    )
    uplift = pd.DataFrame({k: rng.normal(0.02, 0.08, rows) for k in COSTS}, index=scored.index)
    return scored, uplift


def _brute_force(profits: list[float], cap: int) -> int:
    """The prefix length (at most `cap`) with the largest sum; the shortest on a tie."""
    best, best_sum = 0, 0.0
    for n in range(1, cap + 1):
        total = sum(profits[:n])
        if total > best_sum + 1e-9:
            best, best_sum = n, total
    return best


@settings(max_examples=60, deadline=None)
@given(
    profits=st.lists(st.floats(-100, 100, allow_nan=False), max_size=30),
    cap=st.integers(0, 40),
)
def test_the_list_size_is_the_best_prefix_within_the_cap(profits: list[float], cap: int) -> None:
    curve = np.concatenate([[0.0], np.cumsum(profits)])
    cap = min(cap, len(profits))
    chosen = best_size(curve, cap)
    assert curve[chosen] == pytest.approx(curve[_brute_force(profits, cap)], abs=1e-6)
    assert chosen <= cap


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), contacts=st.integers(0, 400))
def test_the_uplift_list_maximises_expected_profit_within_the_budget(
    seed: int, contacts: int
) -> None:
    """Against a scan of every list size: profit of the top n by expected saved value."""
    scored, uplift = _customers(300, seed)
    plan = plan_contacts(scored, Budget(contacts=contacts), _bundle(), uplift)
    value = scored["value_12m"].to_numpy()
    saved = np.column_stack([uplift[k] * value - cost for k, cost in COSTS.items()])
    best = saved.max(axis=1)
    ranked = sorted(best, reverse=True)
    assert plan.size == _brute_force(ranked, min(contacts, len(ranked)))
    assert plan.contacts["expected_saved_value"].to_numpy() == pytest.approx(ranked[: plan.size])
    assert (plan.contacts["expected_saved_value"] > 0).all()  # only those expected to pay
    offers = np.array(list(COSTS))[saved.argmax(axis=1)]
    by_id = dict(zip(scored["customer_id"], offers, strict=True))
    assert [by_id[c] for c in plan.contacts["customer_id"]] == plan.contacts["best_offer"].tolist()
    assert plan.contacts["contact_rank"].tolist() == list(range(1, plan.size + 1))


def test_a_money_budget_buys_the_top_of_the_list_until_the_next_offer_would_not_fit() -> None:
    scored, uplift = _customers(500, seed=1)
    free = plan_contacts(scored, Budget(), _bundle(), uplift)
    plan = plan_contacts(scored, Budget(money=1_000.0), _bundle(), uplift)
    spent = plan.contacts["offer_cost"].sum()
    assert spent <= 1_000.0 < spent + free.contacts["offer_cost"].iloc[plan.size]
    assert (
        plan.contacts["customer_id"].tolist() == free.contacts["customer_id"][: plan.size].tolist()
    )


def test_a_budget_larger_than_what_pays_is_not_spent() -> None:
    scored, uplift = _customers(500, seed=2)
    plan = plan_contacts(scored, Budget(contacts=500), _bundle(), uplift)
    value = scored["value_12m"].to_numpy()
    paying = (np.column_stack([uplift[k] * value - c for k, c in COSTS.items()]).max(1) > 0).sum()
    assert plan.size == paying < 500
    assert plan.profit is not None and plan.profit[plan.size] == plan.profit.max()


def test_when_a_risk_ranking_won_the_list_follows_it_with_the_offer_best_on_average() -> None:
    scored, uplift = _customers(200, seed=3)
    uplift["discount"] = -0.5  # the losing model says nothing pays: the budget decides anyway
    plan = plan_contacts(scored, Budget(contacts=20), _bundle("risk", "discount"), uplift)
    riskiest = scored.sort_values("churn_probability", ascending=False)["customer_id"][:20]
    assert plan.contacts["customer_id"].tolist() == riskiest.tolist()
    assert set(plan.contacts["best_offer"]) == {"discount"}
    assert plan.ranking == "risk" and "did not beat" in plan.why and "budget sets" in plan.why
    unlimited = plan_contacts(scored, Budget(), _bundle("risk", "discount"), uplift)
    assert unlimited.size == 0 and "profit curve sets" in unlimited.why  # no budget: the curve


def test_rows_are_matched_by_index_and_gaps_are_refused() -> None:
    scored, uplift = _customers(100, seed=4)
    plan = plan_contacts(scored, Budget(contacts=30), _bundle(), uplift)
    shuffled = uplift.sample(frac=1.0, random_state=0)[["discount", "call"]]
    again = plan_contacts(scored, Budget(contacts=30), _bundle(), shuffled)
    pd.testing.assert_frame_equal(again.contacts, plan.contacts)
    with pytest.raises(ModelError, match=r"predicted uplift: call .* 1 row"):
        plan_contacts(scored, Budget(), _bundle(), uplift.drop(index=7))
    scored.loc[3, "value_12m"] = np.nan
    with pytest.raises(ModelError, match=r"value_12m expected a number in every row; 1 row"):
        plan_contacts(scored, Budget(), _bundle(), uplift)


def test_a_money_budget_counts_to_the_cent() -> None:
    scored, uplift = _customers(10, seed=5)
    cheap = {"call": 0.1, "discount": 0.1}
    bundle = UpliftBundle(
        UpliftModel(tuple(cheap), (), {}, {}), (), RunConfig(), cheap, "uplift", "call", {}
    )
    plan = plan_contacts(scored, Budget(money=0.3), bundle, uplift.assign(call=0.5, discount=0.5))
    assert plan.size == 3  # 0.1 + 0.1 + 0.1 is 0.30000000000000004 in floats
    assert "the money budget ends the list at the first contact it cannot pay for" in plan.why
    assert "(number 4, offer " in plan.why


def test_a_negative_budget_is_refused_in_words() -> None:
    with pytest.raises(ConfigError, match="contacts must be 0 or more"):
        Budget(contacts=-1)
    with pytest.raises(ConfigError, match="money must be a finite amount"):
        Budget(money=float("nan"))
    scored, uplift = _customers(50, seed=6)
    assert plan_contacts(scored, Budget(contacts=0), _bundle(), uplift).size == 0


def test_without_an_uplift_model_the_list_is_risk_times_value_and_says_so() -> None:
    scored = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "churn_probability": [0.9, 0.5, 0.2, 0.6],
            "value_12m": [10.0, 100.0, 1_000.0, 0.0],
        }
    )  # risk x value: a 9, b 50, c 200, d 0
    plan = plan_contacts(scored, Budget(contacts=2))
    assert plan.contacts["customer_id"].tolist() == ["c", "b"]
    assert plan.ranking == "risk x value" and "no uplift model" in plan.why
    assert plan.profit is None and plan.in_vain is None
    with pytest.raises(ConfigError, match="--budget-money"):
        plan_contacts(scored, Budget(money=100.0))


def test_the_share_a_risk_ranking_would_contact_in_vain() -> None:
    scored = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "churn_probability": [0.9, 0.8, 0.7, 0.1],
            "value_12m": [100.0, 100.0, 100.0, 100.0],
        }
    )
    # best offer's expected saved value (uplift x 100 - cost): a -15 (discount: leaves
    # anyway), b +25 (discount), c -15, d +20 (call: 60 - 40 beats 20 - 15)
    uplift = pd.DataFrame({"call": [0.0, 0.1, 0.0, 0.6], "discount": [0.0, 0.4, 0.0, 0.2]})
    plan = plan_contacts(scored, Budget(contacts=2), _bundle(), uplift)
    assert plan.contacts["customer_id"].tolist() == ["b", "d"]
    assert plan.contacts["best_offer"].tolist() == ["discount", "call"]
    assert plan.contacts["uplift"].tolist() == [0.4, 0.6]
    assert plan.contacts["expected_saved_value"].tolist() == pytest.approx([25.0, 20.0])
    assert plan.in_vain == 0.5  # the two riskiest, a and b: a would not pay


def test_the_models_promise_is_set_beside_what_the_held_out_campaign_measured() -> None:
    measured = {"policy": "risk", "gain_per_send": 10.0, "gain_se": 5.0}
    study = {
        "held_out": "spring",
        "sends_judged": 4_000,
        "policies": [{**measured, "expected_gain_per_send": 30.0}],
    }
    text = held_out_check(_bundle("risk", study=study))
    assert "spring (4,000 sends)" in text and "expected +30.00 per send" in text
    assert "showed +10.00 (95 % interval +0.20 to +19.80)" in text
    assert held_out_check(_bundle("uplift", study=study)) == ""  # not the winner's row
    assert held_out_check(_bundle("risk", study={"policies": [measured]})) == ""  # older bundle


def test_on_the_held_out_sends_the_list_size_is_the_most_profitable_one() -> None:
    """The issue's check: the model's held-out predictions, scanned at every list size."""
    learned = test_uplift.learned()  # the first two simulated campaigns learn, the third is judged
    judged = learned.judged.assign(churn_probability=learned.risk)
    for contacts in (50, 400, len(judged)):
        plan = plan_contacts(judged, Budget(contacts=contacts), _bundle(), learned.uplift)
        value = judged["value_12m"].to_numpy()
        saved = np.column_stack([learned.uplift[k] * value - c for k, c in COSTS.items()])
        ranked = sorted(saved.max(axis=1), reverse=True)
        assert plan.size == _brute_force(ranked, min(contacts, len(ranked))), contacts
    assert 0 < plan.size < len(judged)  # without a cap, the curve ends the list on its own


def test_a_money_budget_needs_every_offer_priced() -> None:
    require_costs(Budget(contacts=10), None)  # contacts need no prices
    require_costs(Budget(money=100.0), _bundle(study={"unpriced": []}))
    with pytest.raises(ConfigError, match=r"no cost for 'discount'.*cost column"):
        require_costs(Budget(money=100.0), _bundle(study={"unpriced": ["discount"]}))
    with pytest.raises(ConfigError, match="needs the offers' costs"):
        require_costs(Budget(money=100.0), None)
