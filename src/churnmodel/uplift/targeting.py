"""Whom to contact within a budget, with which offer: the budgeted contact list.

The ranking is the one the uplift study found best on its held-out
campaign (`UpliftBundle.winner`):

* ``uplift``: each customer's best offer by expected saved value, ``uplift x
  value_12m - cost``, highest first;
* ``risk`` or ``risk x value``, when uplift did not beat them there: the
  churn model's probability (times ``value_12m``), everyone offered the
  offer that did best on average;
* without an uplift model (no campaign data): ``risk x value``, no offer and
  no saved value, and the report says so.

The list is the top of the ranking, as long as the budget allows: a number
of contacts, and money when offers have costs. When uplift won, it also
ends where the expected profit (the running sum of expected saved values)
is highest, so a budget larger than what pays is not spent: the profit
curve is the ranking's running sum, and the list size its best point
within the budget. When a risk ranking won, the budget alone sets the
length (the uplift model lost; its curve decides only without a budget).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.errors import ConfigError, ModelError
from churnmodel.uplift import evaluate as ev
from churnmodel.uplift.bundle import UpliftBundle

Array = npt.NDArray[np.float64]
NO_MODEL = "risk x value"
CONTACT_COLUMNS = [
    "contact_rank",
    "customer_id",
    "best_offer",
    "expected_saved_value",
    "uplift",
    "offer_cost",
    "churn_probability",
    "value_12m",
]


@dataclass(frozen=True)
class Budget:
    """At most this many contacts, and at most this much spent on offers (None: no limit)."""

    contacts: int | None = None
    money: float | None = None

    def __post_init__(self) -> None:
        if self.contacts is not None and self.contacts < 0:
            raise ConfigError(f"budget: contacts must be 0 or more, got {self.contacts}")
        if self.money is not None and not (0 <= self.money < float("inf")):
            raise ConfigError(
                f"budget: money must be a finite amount of 0 or more, got {self.money}"
            )

    @property
    def limited(self) -> bool:
        """Whether the budget caps the list at all."""
        return self.contacts is not None or self.money is not None

    def describe(self, currency: str = "") -> str:
        """The budget in words, e.g. "500 contacts, 10,000.00 EUR"."""
        parts = [f"{self.contacts:,} contacts"] if self.contacts is not None else []
        parts += [f"{self.money:,.2f} {currency}".strip()] if self.money is not None else []
        return ", ".join(parts) or "no limit"


@dataclass(frozen=True)
class Targeting:
    """The budgeted list and how it was chosen."""

    contacts: pd.DataFrame  # CONTACT_COLUMNS, in contact order
    ranking: str  # "uplift", "risk" or "risk x value"
    why: str  # one sentence for the report
    budget: Budget
    profit: Array | None  # expected profit of the top n, n = 0..rows (None without a model)
    in_vain: float | None  # share of a risk ranking's list of this size not expected to pay
    check: str = ""  # what the ranking's promise came to on the held-out campaign

    @property
    def size(self) -> int:
        """Customers on the list."""
        return len(self.contacts)


def plan_contacts(
    scored: pd.DataFrame,
    budget: Budget,
    bundle: UpliftBundle | None = None,
    uplift: pd.DataFrame | None = None,
) -> Targeting:
    """The budgeted list of `scored` (customer_id, churn_probability, value_12m).

    `uplift` holds the bundle's predicted uplift per offer for the same rows
    (matched by index); both or neither are given.
    """
    _require_numbers(scored, ["churn_probability", "value_12m"])
    risk = scored["churn_probability"].to_numpy(np.float64)
    value = scored["value_12m"].to_numpy(np.float64)
    if bundle is None or uplift is None:
        return _without_model(scored, budget, risk * value)
    uplift = uplift.reindex(index=scored.index, columns=list(bundle.model.offers))
    _require_numbers(uplift, list(uplift.columns), "predicted uplift")
    costs, held_out = bundle.costs, bundle.study.get("held_out", "")
    best_offer, best_saved = ev.best_offers(uplift, value, costs)
    if bundle.winner == "uplift":
        offer, saved = best_offer, best_saved
        score = saved
        why = (
            "ranked by expected saved value (uplift x value - the best offer's cost): uplift "
            f"beat both risk rankings on the held-out campaign {held_out}"
        )
    else:
        average = bundle.best_on_average
        offer = np.full(len(scored), average, dtype=object)
        saved = uplift[average].to_numpy(np.float64) * value - costs.get(average, 0.0)
        score = risk if bundle.winner == "risk" else risk * value
        why = (
            f"ranked by {bundle.winner}, every customer offered {average!r} (the offer best on "
            "average): uplift targeting did not beat this ranking on the held-out campaign "
            f"{held_out}; "
            + (
                "the budget sets the length (the losing uplift model's profit curve does not)"
                if budget.limited
                else "without a budget, the uplift model's profit curve sets the length"
            )
        )
    order = np.argsort(-score, kind="stable")
    cost = np.array([costs[str(k)] for k in offer])
    profit = np.concatenate([[0.0], np.cumsum(saved[order])])
    cap = _affordable(cost[order], budget)
    trust_curve = bundle.winner == "uplift" or not budget.limited
    size = best_size(profit, cap) if trust_curve else cap
    if size == cap < len(order) and cap < _affordable(cost[order], Budget(budget.contacts)):
        why += (
            f"; the money budget ends the list at the first contact it cannot pay for "
            f"(number {cap + 1}, offer {offer[order[cap]]!r} at {cost[order[cap]]:,.2f})"
        )
    chosen = order[:size]
    contacts = _contact_frame(scored.iloc[chosen], offer[chosen], saved[chosen], cost[chosen])
    contacts["uplift"] = ev.arm_values(uplift.iloc[chosen], offer[chosen])
    in_vain = _in_vain(risk, best_saved, size)
    return Targeting(contacts, bundle.winner, why, budget, profit, in_vain, held_out_check(bundle))


def held_out_check(bundle: UpliftBundle) -> str:
    """The winning ranking's expected gain against the measured one, on the held-out campaign.

    The expected saved value of a list is the model's own promise; the
    randomised held-out sends say how much of such a promise came true.
    """
    rows = {r.get("policy"): r for r in bundle.study.get("policies", [])}
    row = rows.get(bundle.winner, {})
    if "expected_gain_per_send" not in row:
        return ""
    gain, margin = row["gain_per_send"], 1.96 * row["gain_se"]
    low, high = gain - margin, gain + margin
    return (
        f"On the held-out campaign {bundle.study.get('held_out', '')} "
        f"({bundle.study.get('sends_judged', 0):,} sends), the model expected "
        f"{row['expected_gain_per_send']:+,.2f} per send from this ranking; the randomised "
        f"sends showed {gain:+,.2f} (95 % interval {low:+,.2f} to {high:+,.2f}). "
        "Expected saved values are the model's promise, not a measurement"
    )


def _in_vain(risk: Array, best_saved: Array, size: int) -> float | None:
    """Of the `size` riskiest customers, the share no offer is expected to pay for.

    What a list by risk alone would have spent in vain: customers who leave
    whatever is offered, who stay anyway, or whom contact drives away.
    """
    if size == 0:
        return None
    riskiest = np.argsort(-risk, kind="stable")[:size]
    return float((best_saved[riskiest] <= 0).mean())


def best_size(profit: Array, cap: int) -> int:
    """The list size n <= `cap` with the highest expected profit (the smallest on a tie).

    `profit[n]` is the expected profit of contacting the top n rows.
    """
    return int(np.argmax(profit[: cap + 1]))


def _affordable(cost_in_order: Array, budget: Budget) -> int:
    """How many rows from the top the budget allows (contacts, and money)."""
    cap = (
        len(cost_in_order) if budget.contacts is None else min(budget.contacts, len(cost_in_order))
    )
    if budget.money is not None:  # to the cent, so 3 x 0.10 fits in 0.30
        spent = np.round(np.cumsum(cost_in_order[:cap]), 2)
        over = np.flatnonzero(spent > round(budget.money, 2))
        cap = int(over[0]) if len(over) else cap
    return cap


def _require_numbers(frame: pd.DataFrame, columns: list[str], what: str = "scored list") -> None:
    """A NaN would pick the list's length (it is the largest value to argmax): refused."""
    for column in columns:
        bad = int(frame[column].isna().sum())
        if bad:
            raise ModelError(
                f"{what}: {column} expected a number in every row; {bad:,} row(s) have none, "
                "so the contact list cannot be ranked"
            )


def require_costs(budget: Budget, bundle: UpliftBundle | None) -> None:
    """A money budget needs offer costs: only an uplift model knows them, if its sends had any."""
    if budget.money is not None and bundle is None:
        raise ConfigError(
            "--budget-money: a money budget needs the offers' costs, which come from an uplift "
            "model; give --uplift (from `churnmodel train-uplift`) or a budget in contacts"
        )
    unpriced = bundle.study.get("unpriced", []) if bundle is not None else []
    if budget.money is not None and unpriced:
        raise ConfigError(
            f"--budget-money: the uplift model knows no cost for {', '.join(map(repr, unpriced))} "
            "(no send in the campaigns table had one); give the campaigns a cost column and "
            "rerun `churnmodel train-uplift`, or plan with a budget in contacts"
        )


def _without_model(scored: pd.DataFrame, budget: Budget, risk_value: Array) -> Targeting:
    require_costs(budget, None)
    size = len(scored) if budget.contacts is None else min(budget.contacts, len(scored))
    chosen = np.argsort(-risk_value, kind="stable")[:size]
    none = np.full(size, np.nan)
    contacts = _contact_frame(scored.iloc[chosen], np.full(size, "", dtype=object), none, none)
    why = (
        "ranked by risk x value (churn probability x value_12m): there is no uplift model, so "
        "nothing says whom a contact would keep; learn one from past campaigns with a control "
        "group (`churnmodel train-uplift`)"
    )
    return Targeting(contacts, NO_MODEL, why, budget, None, None)


def _contact_frame(
    rows: pd.DataFrame, offer: np.ndarray, saved: Array, cost: Array
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "contact_rank": np.arange(1, len(rows) + 1),
            "customer_id": rows["customer_id"].to_numpy(),
            "best_offer": offer,
            "expected_saved_value": saved,
            "uplift": np.full(len(rows), np.nan),
            "offer_cost": cost,
            "churn_probability": rows["churn_probability"].to_numpy(),
            "value_12m": rows["value_12m"].to_numpy(),
        },
        columns=CONTACT_COLUMNS,
    )
