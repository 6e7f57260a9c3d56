"""Learn whom to contact from past campaigns, judged on a campaign the learner did not see.

The newest campaign is held out (with a single campaign: a random half of
its sends). The learner is fitted on the rest, and on the held-out sends,
which were assigned at random, targeting by predicted uplift is compared
with what a team would do without it, all at the same number of contacts:

* ``uplift``: each row's best offer by expected saved value (uplift x value
  minus the offer's cost), best rows first, only rows expected to pay;
* ``risk``: the riskiest rows (churn probability without contact), all
  given the offer that did best on average in the learning campaigns;
* ``risk x value``: the same, ranked by risk times value;
* ``random``: random rows, the same offer;
* ``nobody``: no contact, the level every other policy is measured from.

Policy values are doubly robust estimates on the held-out sends, per send
(`evaluate.policy_terms`), each with its gain over no contact and that
gain's standard error. Uplift targeting is used for scoring only
when it beats both risk rankings there; otherwise the study says which of
them won, and the list falls back to it (random targeting is a reference,
never a fallback). Finally the learner is
refitted on every campaign, for scoring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency

from churnmodel.data.contract import CONTROL
from churnmodel.uplift import evaluate as ev
from churnmodel.uplift.learners import UpliftModel, assignment_shares, fit_uplift
from churnmodel.uplift.matrix import CampaignMatrix

log = logging.getLogger(__name__)

BUDGET_SHARE = 0.2
"""Contacts allowed on the held-out sends, as a share of them, unless given."""
NOT_RANDOM_P = 0.001
NOT_RANDOM_SPREAD = 0.10
"""A campaign whose arm shares differ this much between risk deciles, this surely, is flagged."""
BASELINES = ("risk", "risk x value")
"""What a list falls back to when uplift does not beat them (random is only a reference)."""


@dataclass(frozen=True)
class UpliftStudy:
    """What the held-out campaign says of uplift targeting, and the learner refitted on all."""

    model: UpliftModel
    held_out: str  # the campaign judged (or "a random half of <campaign>")
    sends_learned: int
    sends_judged: int
    budget: int  # contacts allowed on the judged sends
    costs: dict[str, float]  # per offer, per contact
    best_on_average: str  # the offer the baselines send
    # per policy: contacts, value and gain (over nobody) per send, gain_se, and the gain the
    # learner expected (expected_gain_per_send)
    policies: pd.DataFrame
    qini: dict[
        str, float
    ]  # per offer the judged campaign made: Qini on its and the control's sends
    curves: dict[str, ev.Curve]  # per offer: the Qini curve behind it
    assignments: pd.DataFrame  # per judged send: keys, value_12m and each policy's offer
    findings: tuple[str, ...] = ()  # campaigns whose assignment does not look random

    @property
    def winner(self) -> str:
        """Uplift if it beats both baselines, else the better baseline (a tie: the baseline)."""
        return (
            "uplift"
            if self.uplift_wins
            else str(self.policies.loc[list(BASELINES)].idxmax()["value_per_send"])
        )

    @property
    def uplift_wins(self) -> bool:
        """Whether uplift targeting beat both risk rankings on the held-out sends."""
        values = self.policies["value_per_send"]
        return bool(values["uplift"] > max(values[b] for b in BASELINES))


def offer_costs(frame: pd.DataFrame) -> dict[str, float]:
    """Each offer's cost per contact: the median `cost` of its sends (0 when none is given)."""
    offers = frame.loc[frame["treatment"] != CONTROL]
    medians = offers.groupby("treatment", observed=True)["cost"].median()
    return {str(k): float(v) if pd.notna(v) else 0.0 for k, v in medians.items()}


def run_study(
    matrix: CampaignMatrix, budget_share: float = BUDGET_SHARE, seed: int = 0
) -> UpliftStudy:
    """Hold out the newest campaign, fit, compare the policies, then refit on every send."""
    frame = matrix.frame.reset_index(drop=True)
    held, name = _held_out(frame, seed)
    learn, judged = frame[~held], frame[held].reset_index(drop=True)
    log.info("uplift: learning from %d sends, judging on %d (%s)", len(learn), len(judged), name)
    model, fitted = fit_uplift(learn, matrix.feature_names, seed=seed)
    churn_by_arm, uplift = model.churn_by_arm(judged), model.uplift(judged)
    risk = np.empty(len(frame))  # churn without contact, each row by a model that did not see it
    risk[~held] = fitted.outcome[CONTROL].to_numpy()
    risk[held] = churn_by_arm[CONTROL].to_numpy()
    findings = [*assignment_findings(frame, risk), *_unlearned_offers(learn, judged, name)]
    for finding in findings:
        log.warning(finding)
    costs = offer_costs(frame)
    value = learn["value_12m"].mean()
    average = max(model.offers, key=lambda k: fitted.pseudo[k].mean() * value - costs.get(k, 0.0))
    budget = max(1, round(budget_share * len(judged)))
    offers = _policies(judged, uplift, risk[held], costs, average, budget, seed)
    shares = assignment_shares(judged)
    chosen = [ev.Policy(policy, offer) for policy, offer in offers.items()]
    terms = {p.name: ev.policy_terms(p, judged, shares, costs, churn_by_arm) for p in chosen}
    gains = {policy: values - terms["nobody"] for policy, values in terms.items()}
    policies = pd.DataFrame(
        {
            "contacts": [p.contacts for p in chosen],
            "value_per_send": [float(values.mean()) for values in terms.values()],
            "gain_per_send": [float(gain.mean()) for gain in gains.values()],
            "gain_se": [_standard_error(gain) for gain in gains.values()],
            "expected_gain_per_send": [
                _expected_gain(offer, uplift, judged, costs) for offer in offers.values()
            ],
        },
        index=list(offers),
    )
    qini, curves = {}, {}
    for offer in model.offers:
        rows_of = judged["treatment"].isin([CONTROL, offer]).to_numpy()
        score = uplift[offer].to_numpy()[rows_of]
        treated = (judged["treatment"] == offer).to_numpy()[rows_of]
        if not treated.any():  # the held-out campaign did not make this offer
            continue
        churned = judged["label"].to_numpy(np.float64)[rows_of]
        qini[offer] = ev.qini_coefficient(score, treated, churned)
        curves[offer] = ev.qini_curve(score, treated, churned)
    final, _ = fit_uplift(frame, matrix.feature_names, seed=seed)
    assignments = judged[["customer_id", "campaign_id", "value_12m"]].assign(**offers)
    return UpliftStudy(
        final,
        name,
        len(learn),
        len(judged),
        budget,
        costs,
        average,
        policies,
        qini,
        curves,
        assignments,
        tuple(findings),
    )


def assignment_findings(frame: pd.DataFrame, risk: np.ndarray) -> list[str]:
    """Campaigns whose arms differ by decile of churn risk: their assignment looks not random.

    The learner and the policy values take each campaign's arm shares as the
    chance every send had of each arm; a campaign that sent the offer mostly
    to risky customers breaks that, and its estimates may be biased.
    """
    found = []
    for campaign, rows in frame.groupby("campaign_id", observed=True, sort=True):
        decile = pd.qcut(risk[rows.index.to_numpy()], 10, labels=False, duplicates="drop")
        counts = pd.crosstab(decile, rows["treatment"].to_numpy())
        if min(counts.shape) < 2 or len(rows) < 200:
            continue
        p_value = float(chi2_contingency(counts.to_numpy())[1])
        shares = counts.div(counts.sum(axis=1), axis=0)
        spread = float((shares.max() - shares.min()).max())
        if p_value < NOT_RANDOM_P and spread > NOT_RANDOM_SPREAD:
            found.append(
                f"table 'campaigns': campaign {campaign!r} ({len(rows):,} sends): the share of "
                f"a treatment differs by up to {spread:.0%} between deciles of churn risk "
                f"(chi-square p = {p_value:.1g}); expected random assignment, so its uplift "
                "estimates may be biased"
            )
    return found


def _expected_gain(
    offer: np.ndarray, uplift: pd.DataFrame, judged: pd.DataFrame, costs: dict[str, float]
) -> float:
    """What the learner itself expected a policy to gain per send: uplift x value - cost.

    Set beside the measured gain, it shows how far the model's own promise
    (which a scored list's expected saved value repeats) can be trusted.
    """
    value = judged["value_12m"].to_numpy(np.float64)
    total = sum(
        float(
            (uplift[k].to_numpy()[offer == k] * value[offer == k]).sum() - cost * (offer == k).sum()
        )
        for k, cost in ((k, costs.get(k, 0.0)) for k in uplift.columns)
    )
    return total / len(judged) if len(judged) else 0.0


def _unlearned_offers(learn: pd.DataFrame, judged: pd.DataFrame, held_out: str) -> list[str]:
    """Offers only the held-out campaign made: the study cannot judge them."""
    new = sorted(set(judged["treatment"]) - set(learn["treatment"]))
    return [
        f"table 'campaigns': offer {offer!r} appears only in the held-out campaign {held_out}: "
        "the learner never saw it there, so the study does not judge it (the refitted model "
        "learns it from those sends alone)"
        for offer in new
    ]


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _held_out(frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, str]:
    """The sends of the newest campaign (by first send day); of one campaign, a random half."""
    first_day = frame.groupby("campaign_id", observed=True)["cutoff"].min().sort_values()
    if len(first_day) >= 2:
        newest = str(first_day.index[-1])
        return (frame["campaign_id"] == newest).to_numpy(), newest
    half = np.random.default_rng(seed).random(len(frame)) < 0.5
    return half, f"a random half of {first_day.index[0]}"


def _policies(
    judged: pd.DataFrame,
    uplift: pd.DataFrame,
    risk: np.ndarray,
    costs: dict[str, float],
    average: str,
    budget: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """The offer each policy gives each judged send (`CONTROL`: no contact).

    `uplift` per offer and `risk` (churn without contact) are the learner's,
    for these sends.
    """
    value = judged["value_12m"].to_numpy(np.float64)
    offer, saved = ev.best_offers(uplift, value, costs)
    none = np.full(len(judged), CONTROL, dtype=object)

    def top(score: np.ndarray, give: np.ndarray | str, size: int = budget) -> np.ndarray:
        return np.where(ev.top_rows(score, size), give, none)

    return {
        "uplift": top(saved, offer, ev.profitable_size(saved, budget)),
        "risk": top(risk, average),
        "risk x value": top(risk * value, average),
        "random": top(np.random.default_rng(seed).random(len(judged)), average),
        "nobody": none,
    }
