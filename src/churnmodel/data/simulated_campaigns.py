"""Past retention campaigns for the simulator, with effects known exactly.

Each campaign reaches a random share of the customers active on its send
day; every customer reached is assigned at random, in equal shares, to the
control group or to one offer. What an offer does depends on the customer,
as the field experiments on retention found (Ascarza 2018):

* ``discount`` keeps price-sensitive customers (small baskets) who would
  otherwise leave within the horizon;
* ``call`` keeps customers in trouble: already declining, which shows as
  more support tickets and less use;
* nothing helps customers who are already gone (leaving within
  `TOO_LATE_DAYS`), however high their risk;
* *sleeping dogs*, long-standing customers who barely use the product, are
  pushed to leave by any contact: it reminds them what they pay for.

Effects change a customer's churn day from the send day on; the behaviour
before the send follows the old path, so a campaign never leaks into the
history its features are computed from. The true effect of every offer on
every row (the drop in the chance of churning within `HORIZON_DAYS`) is
returned as a separate table for tests. It is exact for the contractual
business, whose label is the churn date; a non-contractual label (no
activity in the window) sees a leaver's last weeks of activity, so there the
truth is the effect on the churn day, not on the label.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from churnmodel.data.contract import CONTROL

if TYPE_CHECKING:
    from churnmodel.data.simulate import SimulationParams

OFFERS = {"discount": 15.0, "call": 40.0}
"""The offers every simulated campaign makes, with the cost of one contact."""
HORIZON_DAYS = 90
"""The window after a send in which the effects are defined (the default label horizon)."""
TOO_LATE_DAYS = 45
"""A customer leaving within this many days of the send is beyond any offer."""
KEEP_CHANCE = {"target": 0.7, "other": 0.1}
"""Chance that an offer keeps a customer who would leave: in its target group, and elsewhere."""
SLEEPING_DOG_CHANCE = 0.5
"""Chance that contact makes a sleeping dog leave within the horizon."""
KEPT_DAYS = (180, 540)
"""How much longer a kept customer stays."""


@dataclass(frozen=True)
class Traits:
    """The latent traits campaign effects depend on (day numbers relative to the start)."""

    signup: np.ndarray
    churn_day: np.ndarray
    decay: np.ndarray  # days of decline before churn (1 for abrupt churners)
    engagement: np.ndarray
    spend_log_mean: np.ndarray


@dataclass(frozen=True)
class Change:
    """From `day` on (per customer), the customer leaves on `churn_day`."""

    day: np.ndarray
    churn_day: np.ndarray


CampaignTables = tuple[pa.Table, pa.Table]
"""(campaigns, campaign_truth) of one chunk of customers."""


def run_campaigns(
    rng: np.random.Generator, ids: np.ndarray, params: SimulationParams, traits: Traits
) -> tuple[list[Change], CampaignTables]:
    """Send every campaign in date order; each sees the churn days earlier ones left."""
    churn_day = traits.churn_day.copy()
    changes, sends, truths = [], [], []
    for date in sorted(params.campaign_dates):
        day = (date - params.start).days
        if not 0 <= day < params.n_days:
            raise ValueError(f"campaign date {date} is outside the simulated period")
        reached = np.flatnonzero(
            (traits.signup <= day)
            & (day < churn_day)
            & (rng.random(len(ids)) < params.campaign_reach)
        )
        arms = np.array([CONTROL, *OFFERS])
        treatment = arms[rng.integers(0, len(arms), size=reached.size)]
        segment, effects = _true_effects(traits, churn_day[reached], reached, day)
        new_day = _outcomes(rng, churn_day[reached], day, treatment, segment, effects)
        changed = new_day != churn_day[reached]
        if changed.any():
            start = np.full(len(ids), params.n_days + 1)
            start[reached[changed]] = day
            later = churn_day.copy()
            later[reached[changed]] = new_day[changed]
            changes.append(Change(start, later))
            churn_day = later
        campaign = f"retention-{date:%Y-%m-%d}"
        sends.append(_sends(rng, ids[reached], campaign, date, treatment))
        truths.append(
            pa.table(
                {
                    "customer_id": pa.array(ids[reached], pa.string()),
                    "campaign_id": pa.array(np.full(reached.size, campaign), pa.string()),
                    "treatment": pa.array(treatment, pa.string()),
                    "segment": pa.array(segment, pa.string()),
                    **{
                        f"effect_{offer}": pa.array(effects[offer], pa.float64())
                        for offer in OFFERS
                    },
                }
            )
        )
    return changes, (pa.concat_tables(sends), pa.concat_tables(truths))


def _true_effects(
    traits: Traits, churn_day: np.ndarray, reached: np.ndarray, day: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each reached customer's segment and the true effect of each offer on churning."""
    left = churn_day - day
    leaving = left < HORIZON_DAYS
    too_late = left < TOO_LATE_DAYS
    keepable = leaving & ~too_late
    price_sensitive = traits.spend_log_mean[reached] < np.log(35.0)
    in_trouble = (left < traits.decay[reached]) & (traits.decay[reached] > 1)
    tenure = day - traits.signup[reached]
    sleeping_dog = ~leaving & (traits.engagement[reached] < 0.5) & (tenure > 365)
    segment = np.select(
        [too_late, keepable & in_trouble, keepable & price_sensitive, keepable, sleeping_dog],
        ["already gone", "in trouble", "price sensitive", "leaving", "sleeping dog"],
        "staying",
    )
    effects = {}
    for offer, target in (("discount", price_sensitive), ("call", in_trouble)):
        keep = np.where(target, KEEP_CHANCE["target"], KEEP_CHANCE["other"])
        effects[offer] = np.where(keepable, keep, 0.0) - np.where(
            sleeping_dog, SLEEPING_DOG_CHANCE, 0.0
        )
    return segment, effects


def _outcomes(
    rng: np.random.Generator,
    churn_day: np.ndarray,
    day: int,
    treatment: np.ndarray,
    segment: np.ndarray,
    effects: dict[str, np.ndarray],
) -> np.ndarray:
    """The churn day after the send, drawn from each treated row's effect."""
    out = churn_day.copy()
    draw = rng.random(churn_day.size)
    for offer in OFFERS:
        given = treatment == offer
        kept = given & (effects[offer] > 0) & (draw < effects[offer])
        out[kept] = churn_day[kept] + rng.integers(*KEPT_DAYS, size=int(kept.sum()))
        pushed = given & (segment == "sleeping dog") & (draw < -effects[offer])
        out[pushed] = day + rng.integers(14, HORIZON_DAYS - 14, size=int(pushed.sum()))
    return out


def _sends(
    rng: np.random.Generator, ids: np.ndarray, campaign: str, date: dt.date, treatment: np.ndarray
) -> pa.Table:
    """The campaign rows: sent during the working day, the offer's cost (control: none)."""
    minutes = rng.integers(8 * 60, 18 * 60, size=ids.size).astype("timedelta64[m]")
    sent = np.datetime64(date, "m") + minutes
    cost = np.array([OFFERS.get(t, 0.0) for t in treatment], dtype=np.float64)
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "campaign_id": pa.array(np.full(ids.size, campaign), pa.string()),
            "sent_at": pa.array(sent.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "treatment": pa.array(treatment, pa.string()),
            "cost": pa.array(cost, pa.float64()),
        }
    )
