"""Uplift per offer: how much a contact lowers each customer's chance of churning.

A cross-fitted DR-learner (Kennedy 2023, "Towards optimal doubly robust
estimation of heterogeneous causal effects") on LightGBM:

1. outcome models: per arm `a` (the control group and each offer), a
   classifier of churn on the rows sent `a`; in `FOLDS` folds, each row is
   predicted by the models fitted without it;
2. a pseudo-outcome per row and offer `k`, whose mean given the features is
   the effect ``P(churn | control) - P(churn | k)`` as long as either the
   outcome models or the assignment shares are right (they are known here:
   campaigns assign at random, so the shares per campaign are exact):
   ``mu_0 - mu_k + [A=0] (Y - mu_0) / e_0 - [A=k] (Y - mu_k) / e_k``;
3. an effect model per offer: a regression of the pseudo-outcome on the
   features.

Positive uplift means the offer keeps customers; negative means contact
drives them away (the "sleeping dogs"). The T-learner's difference of the
outcome models, ``mu_0 - mu_k``, comes for free and is kept for comparison.

Why not causalml: its meta-learners would fit, but version 0.18 makes
xgboost, shap, statsmodels, pathos, forestci and black hard requirements;
the three steps above are a few dozen lines on LightGBM and scikit-learn's
fold splitter, with every choice visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from churnmodel.data.contract import CONTROL
from churnmodel.errors import DataContractError

Array = npt.NDArray[np.float64]

FOLDS = 5
MIN_ROWS_PER_ARM = 50
"""Fewer sends than this in an arm (or its churners and stayers) cannot train a model of it."""
PROPENSITY_FLOOR = 0.02
"""Assignment shares below this would blow up the pseudo-outcomes: refused instead."""

OUTCOME_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
}
EFFECT_PARAMS: dict[str, Any] = {
    **OUTCOME_PARAMS,
    "objective": "regression",
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_child_samples": 100,  # pseudo-outcomes are noisy: only broad groups are learned
}
OUTCOME_ROUNDS = 200
EFFECT_ROUNDS = 150


@dataclass(frozen=True)
class UpliftModel:
    """Fitted effect models per offer, and outcome models per arm (control first)."""

    offers: tuple[str, ...]
    feature_names: tuple[str, ...]
    effects: dict[str, lgb.Booster]
    outcomes: dict[str, lgb.Booster]

    def uplift(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per row and offer: the predicted drop in churn probability if contacted with it.

        Kept possible: an offer cannot lower churn by more than the chance of
        churning without contact, nor raise it above 1, so each effect is
        clipped to ``[p0 - 1, p0]`` with ``p0`` the control group's outcome
        model. The effect regressions learn from noisy pseudo-outcomes and,
        unclipped, promised 28 % of the held-out sends (seed 3) a larger drop
        than their whole churn risk; ranked by value, those rows took the top
        of the list.
        """
        x = features[list(self.feature_names)]
        without = self.churn_without_contact(features)
        return pd.DataFrame(
            {
                k: np.clip(np.asarray(self.effects[k].predict(x), np.float64), without - 1, without)
                for k in self.offers
            },
            index=features.index,
        )

    def churn_by_arm(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per row and arm (the control group first): the outcome model's churn probability."""
        x = features[list(self.feature_names)]
        return pd.DataFrame(
            {
                a: np.asarray(model.predict(x), dtype=np.float64)
                for a, model in self.outcomes.items()
            },
            index=features.index,
        )

    def churn_without_contact(self, features: pd.DataFrame) -> Array:
        """The control group's outcome model: churn probability if nobody calls."""
        x = features[list(self.feature_names)]
        return np.asarray(self.outcomes[CONTROL].predict(x), dtype=np.float64)


@dataclass(frozen=True)
class CrossFitted:
    """Out-of-fold predictions on the training rows (for checks and the T-learner)."""

    outcome: pd.DataFrame  # per arm: P(churn | arm), each row predicted without itself
    pseudo: pd.DataFrame  # per offer: the DR pseudo-outcome
    t_learner: pd.DataFrame  # per offer: mu_control - mu_offer


def fit_uplift(
    frame: pd.DataFrame, feature_names: Sequence[str], seed: int = 0
) -> tuple[UpliftModel, CrossFitted]:
    """Fit on campaign rows (`treatment`, `label`, `campaign_id` and the features)."""
    arms = _arms(frame)
    offers = tuple(a for a in arms if a != CONTROL)
    x = frame[list(feature_names)]
    y = frame["label"].to_numpy(np.float64)
    treatment = frame["treatment"].to_numpy()
    shares = assignment_shares(frame)
    predicted = np.zeros((len(frame), len(arms)))
    strata = pd.Series(treatment).astype(str) + ":" + frame["label"].astype(str).to_numpy()
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, strata)
    for train, held in folds:
        for j, arm in enumerate(arms):
            rows = train[treatment[train] == arm]
            booster = _fit(x.iloc[rows], y[rows], OUTCOME_PARAMS, OUTCOME_ROUNDS, seed)
            predicted[held, j] = booster.predict(x.iloc[held])
    outcome = pd.DataFrame(predicted, index=frame.index, columns=arms)
    mu = {a: predicted[:, j] for j, a in enumerate(arms)}
    pseudo = pd.DataFrame(index=frame.index, dtype=np.float64)
    t_learner = pd.DataFrame(index=frame.index, dtype=np.float64)
    given_control = (treatment == CONTROL).astype(np.float64)
    for offer in offers:
        given = (treatment == offer).astype(np.float64)
        e0, ek = shares[CONTROL].to_numpy(), shares[offer].to_numpy()
        pseudo[offer] = (
            mu[CONTROL]
            - mu[offer]
            + given_control * (y - mu[CONTROL]) / e0
            - given * (y - mu[offer]) / ek
        )
        t_learner[offer] = mu[CONTROL] - mu[offer]
    effects = {k: _fit(x, pseudo[k].to_numpy(), EFFECT_PARAMS, EFFECT_ROUNDS, seed) for k in offers}
    outcomes = {
        a: _fit(x[treatment == a], y[treatment == a], OUTCOME_PARAMS, OUTCOME_ROUNDS, seed)
        for a in arms
    }
    model = UpliftModel(offers, tuple(feature_names), effects, outcomes)
    return model, CrossFitted(outcome, pseudo, t_learner)


def assignment_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row, the share of its campaign's sends that went to each arm (the propensity).

    Random assignment makes these the true chances of each arm. A control
    group under `PROPENSITY_FLOOR` is refused; an offer a campaign did not
    make has share 0 there, raised to the floor only to keep the division
    finite (no row of that campaign had it, so its term is 0).
    """
    arms = _arms(frame)
    counts = pd.crosstab(frame["campaign_id"], frame["treatment"]).reindex(
        columns=arms, fill_value=0
    )
    shares = counts.div(counts.sum(axis=1), axis=0)
    per_row = shares.loc[frame["campaign_id"]].set_axis(frame.index)
    low = per_row[CONTROL] < PROPENSITY_FLOOR
    if low.any():
        campaigns = sorted(frame.loc[low, "campaign_id"].unique())
        raise DataContractError(
            "campaigns",
            "treatment",
            f"at least {PROPENSITY_FLOOR:.0%} of each campaign's sends in the control group "
            f"to learn uplift from it; campaign(s) {campaigns} have less",
            int(low.sum()),
            campaigns[:3],
        )
    return per_row.clip(lower=PROPENSITY_FLOOR)


def _arms(frame: pd.DataFrame) -> list[str]:
    """The control group first, then the offers; each with enough sends to learn from."""
    labels = frame["label"].to_numpy(np.int64)
    treatment = frame["treatment"].astype(str).to_numpy()
    sizes = {str(a): int((treatment == a).sum()) for a in np.unique(treatment)}
    churners = {a: int(labels[treatment == a].sum()) for a in sizes}
    if CONTROL not in sizes:
        raise DataContractError(
            "campaigns", "treatment", f"usable sends in the control group ('{CONTROL}')", 0
        )
    least = MIN_ROWS_PER_ARM // 5
    small = sorted(
        a
        for a, n in sizes.items()
        if n < MIN_ROWS_PER_ARM or min(churners[a], n - churners[a]) < least
    )
    if small:
        raise DataContractError(
            "campaigns",
            "treatment",
            f"at least {MIN_ROWS_PER_ARM} usable sends per treatment, {least} of them "
            f"churners and as many stayers; too few for {', '.join(map(repr, small))}",
            sum(sizes[a] for a in small),
        )
    return [CONTROL, *sorted(a for a in sizes if a != CONTROL)]


def _fit(
    x: pd.DataFrame, y: npt.ArrayLike, params: dict[str, Any], rounds: int, seed: int
) -> lgb.Booster:
    data = lgb.Dataset(x, label=np.asarray(y, dtype=np.float64))
    return lgb.train({**params, "seed": seed}, data, num_boost_round=rounds)
