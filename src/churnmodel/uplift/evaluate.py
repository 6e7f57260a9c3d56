"""Is targeting by uplift worth it? Measured on randomised hold-out sends.

Random assignment is what makes these numbers honest: within any group of
customers picked by a score, the control rows show what would have happened
without contact, so the difference is the effect of contacting that group.

* The **Qini curve** of an offer (Radcliffe 2007): contact the top ``n``
  rows by predicted uplift; churners saved among them is
  ``churned_control(n) * treated(n) / control(n) - churned_treated(n)``.
  The **Qini coefficient** is the mean gap between that curve and the
  straight line of random targeting, per treated row: above 0, the ranking
  finds the customers an offer keeps better than chance.
* The **uplift curve** is the same difference of churn rates times ``n``;
  its mean, per row, is the **AUUC** reported here.
* **Policy value**: contact a set of customers with an offer each, leave the
  rest alone; its value is the customers' value kept minus the offers'
  cost, estimated by inverse propensity weighting (a row counts when the
  campaign happened to give it what the policy would; `policy_value`) or,
  with far less spread, doubly robust (`policy_terms`), and compared with
  contacting nobody on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.data.contract import CONTROL

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    """A Qini or uplift curve: x = rows contacted (0..n), y = its value."""

    contacted: npt.NDArray[np.int64]
    value: Array

    def mean_gap_to_random(self) -> float:
        """Mean distance above the straight line from (0, 0) to the curve's end."""
        if len(self.contacted) < 2:
            return 0.0
        line = self.value[-1] * self.contacted / self.contacted[-1]
        return float(np.mean(self.value - line))


def qini_curve(score: Array, treated: npt.NDArray[np.bool_], churned: Array) -> Curve:
    """Churners saved among the top ``n`` rows by `score`, for every ``n``.

    Rows are one offer's and the control group's sends; ties in the score
    keep their order, so the curve is reproducible.
    """
    n_t, n_c, y_t, y_c = _top_counts(score, treated, churned)
    with np.errstate(divide="ignore", invalid="ignore"):
        saved = np.where(n_c > 0, y_c * n_t / n_c, 0.0) - y_t
    return Curve(np.arange(len(score) + 1), np.concatenate([[0.0], saved]))


def uplift_curve(score: Array, treated: npt.NDArray[np.bool_], churned: Array) -> Curve:
    """(churn rate of the control rows - of the treated rows) in the top ``n``, times ``n``."""
    n_t, n_c, y_t, y_c = _top_counts(score, treated, churned)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_t = np.where(n_t > 0, y_t / n_t, 0.0)
        rate_c = np.where(n_c > 0, y_c / n_c, 0.0)
    n = np.arange(1, len(score) + 1)
    return Curve(np.arange(len(score) + 1), np.concatenate([[0.0], (rate_c - rate_t) * n]))


def _top_counts(
    score: Array, treated: npt.NDArray[np.bool_], churned: Array
) -> tuple[Array, Array, Array, Array]:
    """For the top n rows by `score`, every n: treated, control, treated and control churners."""
    order = np.argsort(-score, kind="stable")
    t, y = treated[order], churned[order].astype(np.float64)
    return (
        np.cumsum(t).astype(np.float64),
        np.cumsum(~t).astype(np.float64),
        np.cumsum(y * t),
        np.cumsum(y * ~t),
    )


def qini_coefficient(score: Array, treated: npt.NDArray[np.bool_], churned: Array) -> float:
    """Mean gap of the Qini curve above random targeting, per treated row (> 0: better)."""
    treated_rows = int(treated.sum())
    if treated_rows == 0 or treated_rows == len(treated):
        return 0.0
    return qini_curve(score, treated, churned).mean_gap_to_random() / treated_rows


def auuc(score: Array, treated: npt.NDArray[np.bool_], churned: Array) -> float:
    """Mean of the uplift curve, per row."""
    curve = uplift_curve(score, treated, churned)
    return float(np.mean(curve.value[1:]) / len(score)) if len(score) else 0.0


@dataclass(frozen=True)
class Policy:
    """Which offer each row gets (`CONTROL`: no contact)."""

    name: str
    offer: npt.NDArray[np.object_]

    @property
    def contacts(self) -> int:
        """Rows the policy contacts."""
        return int((self.offer != CONTROL).sum())


def policy_value(
    policy: Policy,
    sends: pd.DataFrame,
    shares: pd.DataFrame,
    costs: Mapping[str, float],
) -> float:
    """Value kept minus offer costs per row, estimated by inverse propensity weighting.

    `sends` has the arm each row was given (`treatment`), whether it
    churned (`label`) and what it is worth (`value_12m`); `shares` the
    chance of each arm per row. Only rows that got what the policy would
    give count, weighted by one over that chance, so the estimate is
    unbiased when assignment was random.
    """
    given, chance, cost = _as_given(policy, sends, shares, costs)
    kept = sends["value_12m"].to_numpy(np.float64) * (1 - sends["label"].to_numpy(np.float64))
    return float(np.sum(np.where(given, (kept - cost) / chance, 0.0)) / len(policy.offer))


def policy_terms(
    policy: Policy,
    sends: pd.DataFrame,
    shares: pd.DataFrame,
    costs: Mapping[str, float],
    churn_by_arm: pd.DataFrame,
) -> Array:
    """Per row, a doubly robust estimate of what the policy keeps there, minus its cost.

    The model's part, ``value x (1 - P(churn | the policy's arm)) - cost``,
    is corrected where the campaign happened to give the policy's arm, by
    the surprise over the model weighted by one over that arm's chance. The
    mean is the policy value: unbiased with known assignment shares, like
    `policy_value`, but the model absorbs most of the spread of customer
    values, so its standard error (the terms' spread over the square root of
    their number) is far smaller. `churn_by_arm` must come from models that
    did not learn from these rows.
    """
    given, chance, cost = _as_given(policy, sends, shares, costs)
    value = sends["value_12m"].to_numpy(np.float64)
    expected = value * (1 - arm_values(churn_by_arm, policy.offer)) - cost
    kept = value * (1 - sends["label"].to_numpy(np.float64)) - cost
    return np.asarray(expected + np.where(given, (kept - expected) / chance, 0.0), np.float64)


def _as_given(
    policy: Policy, sends: pd.DataFrame, shares: pd.DataFrame, costs: Mapping[str, float]
) -> tuple[npt.NDArray[np.bool_], Array, Array]:
    """Per row: whether the campaign gave what the policy gives, that arm's chance, its cost."""
    offer = policy.offer
    given = sends["treatment"].to_numpy().astype(str) == offer
    cost = np.array([costs.get(o, 0.0) for o in offer], dtype=np.float64)
    return given, arm_values(shares, offer), cost


def arm_values(by_arm: pd.DataFrame, offer: npt.NDArray[np.object_]) -> Array:
    """Each row's value in the column of the arm `offer` names for it."""
    columns = by_arm.columns.get_indexer(pd.Index(offer))
    return np.asarray(by_arm.to_numpy(np.float64)[np.arange(len(offer)), columns], np.float64)


def top_rows(score: Array, budget: int) -> npt.NDArray[np.bool_]:
    """The `budget` rows with the highest score (ties keep their order)."""
    chosen = np.zeros(len(score), dtype=bool)
    chosen[np.argsort(-score, kind="stable")[: max(0, budget)]] = True
    return chosen


def best_offers(
    uplift: pd.DataFrame, value: Array, costs: Mapping[str, float]
) -> tuple[npt.NDArray[np.object_], Array]:
    """Per row, the offer with the highest expected saved value, and that value.

    Expected saved value of offer ``k``: ``uplift_k x value - cost_k``.
    """
    offers = list(uplift.columns)
    saved = uplift.to_numpy(np.float64) * value[:, None] - np.array(
        [costs.get(k, 0.0) for k in offers]
    )
    best = np.argmax(saved, axis=1)
    # object, not fixed-width text: offer names are the data's, kept exactly
    return np.array(offers, dtype=object)[best], saved[np.arange(len(saved)), best]


def profitable_size(expected_saved: Array, budget: int | None = None) -> int:
    """How many rows to contact, best first: every one that is expected to pay, within budget.

    Sorted from the highest expected saved value down, cumulative profit
    rises while the values are positive: the list ends at the last
    positive one, or at the budget when that comes first.
    """
    paying = int((expected_saved > 0).sum())
    return paying if budget is None else min(paying, budget)
