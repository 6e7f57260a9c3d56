"""Seeded synthetic customers, transactions, events and churn.

The generator is the embedded default for demos, tests and benchmarks, so it
has to behave like real churn data rather than like a textbook example:

* customers differ a lot in how often they buy, how much they spend and how
  engaged they are (gamma / lognormal heterogeneity);
* each customer has a latent *health* that stays at 1 and, for most churners,
  decays over a few weeks to months before they leave; some churners leave
  abruptly with no warning, and healthy customers have noisy months too;
* low health shows up everywhere at once, but noisily: fewer purchases and
  logins, more support tickets, worse NPS and CSAT answers;
* two drivers are deliberately non-linear: customers on annual billing can
  only leave at a renewal date (risk peaks as tenure nears a whole number of
  years), and some customers never get going and leave within 20-90 days.

That makes churn predictable (a good model reaches roughly ROC AUC 0.86-0.90)
but not trivially so: a recency-only rule does clearly worse, and a logistic
regression on the same features misses the non-linear drivers.

Everything is vectorised over (customer x day) for one chunk of customers at
a time, so memory stays flat from a thousand to a few million customers; each
chunk has its own random stream spawned from the seed, so the output depends
only on the seed and the parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnmodel._io import atomic_directory
from churnmodel.data.simulated_campaigns import CampaignTables, Change, Traits, run_campaigns

Business = Literal["contractual", "non_contractual"]

PLANS = np.array(["basic", "standard", "premium"])
PLAN_SHARES = np.array([0.5, 0.35, 0.15])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "NL", "ES"])
COUNTRY_SHARES = np.array([0.4, 0.2, 0.15, 0.1, 0.08, 0.07])
CHANNELS = np.array(["organic", "paid", "referral"])
CHANNEL_SHARES = np.array([0.5, 0.35, 0.15])
BILLING = np.array(["monthly", "annual"])

CHUNK_CUSTOMERS = 20_000
"""Customers per generated chunk; fixed so that output never depends on memory."""


@dataclass(frozen=True)
class SimulationParams:
    """Knobs of the generator; the defaults give ~10 purchases and ~50 events per customer."""

    n_customers: int = 5_000
    seed: int = 0
    business: Business = "non_contractual"
    start: dt.date = dt.date(2024, 1, 1)
    end: dt.date = dt.date(2026, 1, 1)
    purchase_rate: float = 0.05
    login_rate: float = 0.12
    feature_use_rate: float = 0.06
    monthly_churn_hazard: float = 0.035
    refund_share: float = 0.04
    abrupt_churn_share: float = 0.15
    monthly_noise: float = 0.15
    purchase_burstiness: float = 0.7
    decay_days: tuple[int, int] = (60, 180)
    purchase_rate_shape: float = 3.0
    annual_share: float = 0.35
    unboarded_share: float = 0.12
    # past retention campaigns (send dates), each to `campaign_reach` of the customers active
    # that day, assigned at random to a control group and each offer (`simulated_campaigns`)
    campaign_dates: tuple[dt.date, ...] = ()
    campaign_reach: float = 0.5

    @property
    def n_days(self) -> int:
        """Length of the simulated period in days."""
        return (self.end - self.start).days


@dataclass
class SimulatedData:
    """The canonical tables of one simulation, as pandas frames."""

    customers: pd.DataFrame
    transactions: pd.DataFrame
    events: pd.DataFrame
    churn: pd.DataFrame | None = field(default=None)
    campaigns: pd.DataFrame | None = field(default=None)
    # the true effect of every offer on every campaign row: for tests, never for a model
    campaign_truth: pd.DataFrame | None = field(default=None)

    def as_tables(self) -> dict[str, pd.DataFrame]:
        """The canonical tables by name: `churn` only when contractual, `campaigns` when run."""
        tables = {
            "customers": self.customers,
            "transactions": self.transactions,
            "events": self.events,
        }
        if self.churn is not None:
            tables["churn"] = self.churn
        if self.campaigns is not None:
            tables["campaigns"] = self.campaigns
        return tables


def simulate(
    n_customers: int = 5_000,
    seed: int = 0,
    business: Business = "non_contractual",
    **overrides: object,
) -> SimulatedData:
    """Simulate a small data set in memory (use `write_simulation` for large ones)."""
    params = SimulationParams(n_customers=n_customers, seed=seed, business=business, **overrides)  # type: ignore[arg-type]
    parts: dict[str, list[pa.Table]] = {}
    for chunk in _chunks(params):
        for name, table in chunk.items():
            parts.setdefault(name, []).append(table)
    frames = {name: pa.concat_tables(tables).to_pandas() for name, tables in parts.items()}
    return SimulatedData(
        customers=frames["customers"],
        transactions=frames["transactions"],
        events=frames["events"],
        churn=frames.get("churn"),
        campaigns=frames.get("campaigns"),
        campaign_truth=frames.get("campaign_truth"),
    )


def write_simulation(out_dir: Path, params: SimulationParams) -> dict[str, Path]:
    """Stream the simulation chunk by chunk into one parquet file per table.

    The directory is written atomically: the files appear under `out_dir`
    only once every table is complete.
    """
    paths: dict[str, Path] = {}
    with atomic_directory(out_dir) as tmp:
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            for chunk in _chunks(params):
                for name, table in chunk.items():
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(tmp / f"{name}.parquet", table.schema)
                    writers[name].write_table(table)
        finally:
            for writer in writers.values():
                writer.close()
        paths = {name: out_dir / f"{name}.parquet" for name in writers}
    return paths


def _chunks(params: SimulationParams) -> Iterator[dict[str, pa.Table]]:
    if params.n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {params.n_customers}")
    starts = range(0, params.n_customers, CHUNK_CUSTOMERS)
    streams = np.random.SeedSequence(params.seed).spawn(len(starts))
    for first, stream in zip(starts, streams, strict=True):
        size = min(CHUNK_CUSTOMERS, params.n_customers - first)
        # campaigns draw from a stream of their own: without them, the data is unchanged
        campaign_rng = np.random.default_rng(stream.spawn(1)[0])
        yield _simulate_chunk(np.random.default_rng(stream), first, size, params, campaign_rng)


@dataclass
class _Latent:
    """Per-customer hidden traits and the (customer x day) health matrix."""

    signup: np.ndarray  # day index relative to params.start (may be negative)
    churn_day: np.ndarray  # day index of churn; >= n_days means not churned in the data
    purchase_rate: np.ndarray
    spend_log_mean: np.ndarray
    engagement: np.ndarray
    health: np.ndarray  # (customers x days), 0 outside the active period


def _simulate_chunk(
    rng: np.random.Generator,
    first: int,
    size: int,
    params: SimulationParams,
    campaign_rng: np.random.Generator,
) -> dict[str, pa.Table]:
    ids = np.array([f"C{i:07d}" for i in range(first + 1, first + size + 1)])
    plan = rng.choice(len(PLANS), size=size, p=PLAN_SHARES)
    country = rng.choice(COUNTRIES, size=size, p=COUNTRY_SHARES)
    channel = rng.choice(len(CHANNELS), size=size, p=CHANNEL_SHARES)
    annual = rng.random(size) < params.annual_share
    campaigns = partial(run_campaigns, campaign_rng, ids, params) if params.campaign_dates else None
    latent, sent = _latent_traits(rng, size, plan, channel, annual, params, campaigns)

    tables = {
        "customers": _customers_table(ids, latent, plan, country, channel, annual, params),
        "transactions": _transactions_table(rng, ids, latent, params),
        "events": _events_table(rng, ids, latent, params),
    }
    if params.business == "contractual":
        tables["churn"] = _churn_table(ids, latent, params)
    if sent is not None:
        tables["campaigns"], tables["campaign_truth"] = sent
    return tables


def _latent_traits(
    rng: np.random.Generator,
    size: int,
    plan: np.ndarray,
    channel: np.ndarray,
    annual: np.ndarray,
    params: SimulationParams,
    campaigns: Callable[[Traits], tuple[list[Change], CampaignTables]] | None = None,
) -> tuple[_Latent, CampaignTables | None]:
    n_days = params.n_days
    signup = rng.integers(-365, n_days - 30, size=size)
    engagement = rng.gamma(2.0, 0.5, size=size)
    shape = params.purchase_rate_shape
    purchase_rate = rng.gamma(shape, params.purchase_rate / shape, size=size) * (1 + 0.3 * plan)
    spend_log_mean = rng.normal(np.log(35.0) + 0.35 * plan, 0.5, size=size)

    # Less engaged, cheaper-plan and paid-channel customers leave sooner.
    hazard = params.monthly_churn_hazard * (1.3 - 0.25 * plan) * (1 + 0.4 * (channel == 1))
    hazard = hazard * np.exp(-0.6 * np.log(engagement))
    lifetime = rng.exponential(30.0 / np.clip(hazard, 1e-4, 0.9))
    # Customers who never get going leave in their first quarter.
    unboarded = rng.random(size) < params.unboarded_share
    lifetime = np.where(unboarded, rng.uniform(20, 90, size=size), lifetime)
    # Annual plans end only at a renewal date (even for the unboarded, who
    # paid for the year): risk depends on tenure modulo a year, a driver no
    # linear model of tenure can see.
    lifetime = np.where(annual, np.ceil(lifetime / 365) * 365, lifetime)
    churn_day = signup + np.ceil(lifetime).astype(np.int64)

    # Health declines linearly over `decay` days before churn down to `floor`;
    # abrupt churners keep full health until the day they leave.
    decay = rng.uniform(*params.decay_days, size=size)
    decay[rng.random(size) < params.abrupt_churn_share] = 1.0
    floor = rng.uniform(0.05, 0.4, size=size)
    changes: list[Change] = []
    sent = None
    if campaigns is not None:  # offers change who leaves when, before behaviour is drawn
        changes, sent = campaigns(Traits(signup, churn_day, decay, engagement, spend_log_mean))
    days = np.arange(n_days)[None, :]
    to_churn = churn_day[:, None] - days
    for change in changes:  # from its send day on; the history before it stays as it was
        to_churn = np.where(days >= change.day[:, None], change.churn_day[:, None] - days, to_churn)
        churn_day = change.churn_day
    declining = np.clip(to_churn / decay[:, None], 0.0, 1.0)
    health = floor[:, None] + (1 - floor[:, None]) * declining
    # Month-to-month noise that has nothing to do with churn.
    health = health * _monthly_factor(rng, size, n_days, params.monthly_noise)
    active = (days >= signup[:, None]) & (days < churn_day[:, None])
    health = np.where(active, health, 0.0).astype(np.float32)
    return _Latent(signup, churn_day, purchase_rate, spend_log_mean, engagement, health), sent


def _monthly_factor(rng: np.random.Generator, size: int, n_days: int, sigma: float) -> np.ndarray:
    """A lognormal factor per customer and 30-day block, spread over its days."""
    months = rng.lognormal(0.0, sigma, size=(size, n_days // 30 + 1)).astype(np.float32)
    return np.repeat(months, 30, axis=1)[:, :n_days]


def _customers_table(
    ids: np.ndarray,
    latent: _Latent,
    plan: np.ndarray,
    country: np.ndarray,
    channel: np.ndarray,
    annual: np.ndarray,
    params: SimulationParams,
) -> pa.Table:
    signup = np.datetime64(params.start, "D") + latent.signup
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "signup_date": pa.array(signup.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "plan": pa.array(PLANS[plan], pa.string()),
            "country": pa.array(country, pa.string()),
            "channel": pa.array(CHANNELS[channel], pa.string()),
            "billing": pa.array(BILLING[annual.astype(int)], pa.string()),
        }
    )


def _draw_times(
    rng: np.random.Generator, rates: np.ndarray, start: dt.date
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson counts per (customer, day) -> (customer index, day index, timestamp)."""
    counts = rng.poisson(rates)
    rows, days = np.nonzero(counts)
    repeats = counts[rows, days]
    rows, days = np.repeat(rows, repeats), np.repeat(days, repeats)
    seconds = rng.integers(0, 86_400, size=rows.size)
    stamps = (
        np.datetime64(start, "s") + days.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    )
    return rows, days, stamps


def _sorted_table(columns: dict[str, pa.Array], ids: pa.Array, stamps: pa.Array) -> pa.Table:
    table = pa.table({"customer_id": ids, "timestamp": stamps, **columns})
    return table.sort_by([("customer_id", "ascending"), ("timestamp", "ascending")])


def _transactions_table(
    rng: np.random.Generator, ids: np.ndarray, latent: _Latent, params: SimulationParams
) -> pa.Table:
    # Buying is burstier than using the product: a healthy customer may skip a
    # month or two, which a recency rule mistakes for churn.
    bursts = _monthly_factor(rng, len(ids), params.n_days, params.purchase_burstiness)
    rates = latent.purchase_rate[:, None] * latent.health * bursts
    rows, days, stamps = _draw_times(rng, rates, params.start)
    amounts = np.round(rng.lognormal(latent.spend_log_mean[rows], 0.4), 2)

    refunded = np.flatnonzero(rng.random(rows.size) < params.refund_share)
    delay = rng.integers(1, 21, size=refunded.size).astype("timedelta64[D]")
    refund_stamps = stamps[refunded] + delay
    inside = refund_stamps < np.datetime64(params.end, "s")
    refunded, refund_stamps = refunded[inside], refund_stamps[inside]

    all_rows = np.concatenate([rows, rows[refunded]])
    all_stamps = np.concatenate([stamps, refund_stamps]).astype("datetime64[us]")
    all_amounts = np.concatenate([amounts, -amounts[refunded]])
    del days
    return _sorted_table(
        {"amount": pa.array(all_amounts, pa.float64())},
        pa.array(ids[all_rows], pa.string()),
        pa.array(all_stamps, pa.timestamp("us", tz="UTC")),
    )


def _events_table(
    rng: np.random.Generator, ids: np.ndarray, latent: _Latent, params: SimulationParams
) -> pa.Table:
    health = latent.health
    active = health > 0
    engaged = latent.engagement[:, None] * health
    kinds: list[tuple[str, np.ndarray]] = [
        ("login", params.login_rate * engaged),
        ("feature_use", params.feature_use_rate * engaged),
        # Unhappy customers open more tickets and answer surveys worse.
        ("support_ticket", np.where(active, 0.003 + 0.02 * np.clip(1 - health, 0, 1), 0.0)),
        ("nps", np.where(active, 1 / 120, 0.0)),
        ("csat", np.where(active, 1 / 90, 0.0)),
    ]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for event_type, rates in kinds:
        rows, days, stamps = _draw_times(rng, rates, params.start)
        mood = np.clip(health[rows, days], 0, 1.2)
        if event_type == "nps":
            values = np.clip(np.round(rng.normal(1.5 + 7.5 * mood, 1.8)), 0, 10)
        elif event_type == "csat":
            values = np.clip(np.round(rng.normal(1.2 + 3.5 * mood, 0.8)), 1, 5)
        else:
            values = np.full(rows.size, np.nan)
        parts.append((rows, stamps, np.full(rows.size, event_type, dtype=object), values))
    rows, stamps, types, values = (np.concatenate(p) for p in zip(*parts, strict=True))
    return _sorted_table(
        {
            "event_type": pa.array(types, pa.string()),
            "value": pa.array(values, pa.float64(), from_pandas=True),
        },
        pa.array(ids[rows], pa.string()),
        pa.array(stamps.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
    )


def _churn_table(ids: np.ndarray, latent: _Latent, params: SimulationParams) -> pa.Table:
    churned = np.flatnonzero(latent.churn_day < params.n_days)
    dates = np.datetime64(params.start, "D") + latent.churn_day[churned]
    return pa.table(
        {
            "customer_id": pa.array(ids[churned], pa.string()),
            "churn_date": pa.array(dates.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        }
    )
