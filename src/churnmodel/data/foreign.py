"""A second, independently written generator whose data looks nothing like the demo's.

`churnmodel.data.simulate` was written together with the feature code, so a
default that works on it may only work because both share one author's idea of
what churn data looks like. This module was written without looking at the
feature, timeline or model code, to be deliberately *foreign*:

* `simulate_subscription` is a contractual B2B SaaS product observed for only
  6-8 months from a mid-month date (no full year, no calendar alignment), with
  eight product-specific event types whose *names are drawn from the seed*,
  no survey or ticket events and no ``value`` column. Churn is driven by
  **ratios** of usage (share of failures among all events, replies per message
  sent), not by volume.
* `simulate_retail` is a non-contractual shop with transactions only (multi-line
  orders, categories, order ids, refunds), a December peak, one-off gift buyers
  and basket sizes that drift, whose customers silently stop buying.

Both are vectorised over (customer x day) for one chunk of customers at a time;
every chunk has its own random stream spawned from the seed, and everything
shared by all customers (event-type names, product incidents) comes from one
more stream, so the output depends only on the seed and the parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from churnmodel.data.simulate import SimulatedData

SUBSCRIPTION_START = dt.date(2025, 3, 17)
"""First day of the subscription data: a Monday in mid-March, on purpose not a month start."""
RETAIL_START = dt.date(2024, 8, 19)
"""First day of the retail data: late August, so the December peak sits mid-history."""

CHUNK_CUSTOMERS = 20_000
"""Customers per generated chunk; fixed so that output never depends on memory."""

ROLES: tuple[str, ...] = (
    "core",
    "api",
    "message_sent",
    "message_reply",
    "report",
    "invite",
    "error",
    "sync_failure",
)
"""What each subscription event type *means*; the names shown in the data come from the seed."""
NEGATIVE_ROLES: tuple[str, ...] = ("error", "sync_failure")
"""The roles whose share among all events is the main planted churn signal."""

# One pool per role; the seed picks one name from each. Message pairs share an
# index so that a "sent" type always goes with its matching "reply" type.
_NAME_POOLS: dict[str, tuple[str, ...]] = {
    "core": (
        "doc_edit",
        "page_save",
        "canvas_draw",
        "board_update",
        "sheet_edit",
        "note_write",
        "task_move",
        "card_drag",
    ),
    "api": (
        "api_call_v2",
        "webhook_fire",
        "rest_request",
        "graphql_query",
        "sdk_call",
        "api_hit_v3",
    ),
    "message_sent": (
        "msg_sent",
        "comment_post",
        "thread_open",
        "chat_send",
        "mention_out",
        "ping_send",
    ),
    "message_reply": (
        "msg_reply",
        "comment_answer",
        "thread_reply",
        "chat_respond",
        "mention_back",
        "ping_ack",
    ),
    "report": (
        "report_view",
        "dashboard_open",
        "chart_render",
        "insight_read",
        "digest_open",
        "metric_peek",
    ),
    "invite": (
        "seat_invite",
        "member_add",
        "guest_share",
        "team_join",
        "user_provision",
        "seat_grant",
    ),
    "error": (
        "error_dialog",
        "crash_modal",
        "render_error",
        "save_conflict",
        "upload_reject",
        "quota_block",
    ),
    "sync_failure": (
        "sync_fail",
        "import_abort",
        "webhook_timeout",
        "token_expire",
        "backup_miss",
        "export_broken",
    ),
}

REGIONS = np.array(["AMER-E", "AMER-W", "EMEA", "APJ", "LATAM"])
REGION_SHARES = np.array([0.3, 0.15, 0.3, 0.15, 0.1])
REGION_PEAK_HOUR = np.array([15.0, 18.0, 10.0, 3.0, 14.0])  # busiest working hour, in UTC
TIERS = np.array(["starter", "growth", "scale"])
TIER_SHARES = np.array([0.5, 0.35, 0.15])
TIER_SEAT_PRICE = np.array([12.0, 29.0, 54.0])
TIER_HAZARD = np.array([1.15, 1.0, 0.8])
WEEKDAY_USE = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.25, 0.15])  # Monday first

CATEGORIES = np.array(
    ["apparel", "home", "beauty", "toys", "books", "electronics", "garden", "grocery"]
)
CATEGORY_SHARES = np.array([0.2, 0.15, 0.14, 0.09, 0.12, 0.07, 0.08, 0.15])
CATEGORY_PRICE = np.array([32.0, 45.0, 18.0, 22.0, 14.0, 85.0, 38.0, 6.5])
CATEGORY_REFUND = np.array([3.0, 1.0, 0.6, 0.8, 0.4, 1.5, 0.8, 0.2])  # x refund_share
GIFT_CATEGORIES = np.array([3, 5])  # toys, electronics
WEEKDAY_SHOP = np.array([0.92, 0.95, 0.95, 0.98, 1.02, 1.1, 1.15])  # Monday first

_HEX_MULTIPLIER = 0x9E3779  # odd, so i -> i * m mod 2**24 is a bijection
_RETAIL_ID_MULTIPLIER = 7_777_777  # coprime with 9,000,000
_ORDER_MULTIPLIER = 1_594_323  # 3**13, coprime with 10**10


@dataclass(frozen=True)
class SubscriptionParams:
    """Knobs of `simulate_subscription`; the defaults give ~2 % monthly churn.

    Parameters
    ----------
    monthly_churn
        Baseline monthly hazard of a mature customer with average traits; the
        observed rate is a little higher because new customers leave more.
    presignup_share
        Share of customers who signed up before the data starts (their first
        event is not their signup).
    pre_tenure_days
        Mean tenure, at the data start, of those early customers (exponential).
    friction_effect
        Log-hazard per standard deviation of the latent *friction* that also
        sets a customer's baseline share of failure events: the level signal.
    friction_rise
        How much the failure share grows (x ``1 + friction_rise``) as health
        falls to zero before churn: the trend signal.
    reply_drop
        Fraction of the reply-per-message ratio lost at zero health.
    volume_drop
        Fraction of event volume lost at zero health; kept small so that raw
        volume is only a weak signal.
    abrupt_share
        Share of churners who leave with no warning at all.
    decay_days
        Range of the length of the decline before churn.
    new_customer_boost
        Extra hazard right after signup (x ``1 + boost``), fading over ~75 days.
    seats_effect
        Elasticity of the hazard in seats (small: bigger accounts stay a bit longer).
    activity_shape
        Gamma shape of per-customer activity; heavy and light users churn alike.
    api_share
        Share of customers who use the API at all (heavy, bursty volume).
    billed_share
        Share of customers whose invoices are in this system (others go via resellers).
    refund_share
        Share of invoices refunded (in full or half).
    incidents
        Product-wide outage days on which one region sees many sync failures.
    """

    n_customers: int = 3_000
    seed: int = 0
    months: int = 7
    start: dt.date = SUBSCRIPTION_START
    monthly_churn: float = 0.0155
    presignup_share: float = 0.7
    pre_tenure_days: float = 420.0
    friction_effect: float = 0.7
    friction_rise: float = 2.5
    reply_drop: float = 0.7
    volume_drop: float = 0.15
    abrupt_share: float = 0.22
    decay_days: tuple[int, int] = (20, 75)
    new_customer_boost: float = 1.8
    seats_effect: float = -0.12
    activity_shape: float = 0.9
    api_share: float = 0.35
    billed_share: float = 0.85
    refund_share: float = 0.025
    incidents: int = 4

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_customers > 2**24:
            raise ValueError(f"n_customers must be in 1..{2**24}, got {self.n_customers}")
        if not 1 <= self.months <= 11:
            raise ValueError(
                f"months must be in 1..11 (the data must not cover a year), got {self.months}"
            )

    @property
    def end(self) -> dt.date:
        """First day after the data: `months` calendar months after `start`."""
        return _add_months(self.start, self.months)

    @property
    def n_days(self) -> int:
        """Length of the observed period in days."""
        return (self.end - self.start).days


@dataclass(frozen=True)
class RetailParams:
    """Knobs of `simulate_retail`.

    Parameters
    ----------
    existing_share
        Share of customers who were already buying before the data starts.
    one_off_share
        Share of new customers who buy once and never again (x1.6 for those
        acquired in the gift season).
    mean_gap_days
        Mean days between orders of an active repeat customer (before seasonality).
    rate_shape
        Gamma shape of the per-customer order rate (small = very heterogeneous).
    lifetime_days, lifetime_shape
        Weibull scale and shape of how long a repeat customer keeps buying.
    fade_share
        Share of repeat customers whose order rate fades out over 30-120 days
        before they stop; the others stop abruptly.
    refund_share
        Base share of order lines refunded (scaled per category).
    extra_lines
        Mean number of extra lines per order (Poisson).
    basket_drift_sd
        Standard deviation of each customer's yearly log drift in basket value.
    """

    n_customers: int = 5_000
    seed: int = 0
    months: int = 12
    start: dt.date = RETAIL_START
    existing_share: float = 0.45
    one_off_share: float = 0.3
    mean_gap_days: float = 40.0
    rate_shape: float = 0.7
    lifetime_days: float = 420.0
    lifetime_shape: float = 0.75
    fade_share: float = 0.6
    refund_share: float = 0.05
    extra_lines: float = 0.45
    basket_drift_sd: float = 0.3

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_customers > 9_000_000:
            raise ValueError(f"n_customers must be in 1..9000000, got {self.n_customers}")
        if self.months < 1:
            raise ValueError(f"months must be at least 1, got {self.months}")

    @property
    def end(self) -> dt.date:
        """First day after the data: `months` calendar months after `start`."""
        return _add_months(self.start, self.months)

    @property
    def n_days(self) -> int:
        """Length of the observed period in days."""
        return (self.end - self.start).days


# --------------------------------------------------------------------------- public API


def simulate_subscription(
    n_customers: int = 3_000, seed: int = 0, months: int = 7, **knobs: object
) -> SimulatedData:
    """Simulate a contractual SaaS product whose churn is driven by usage ratios.

    Ground truth
    ------------
    Each customer has a daily churn hazard = ``monthly_churn / 30.44`` x

    * ``exp(friction_effect * z)`` (normalised to mean 1), where ``z`` is a
      latent *friction* (a flaky integration, a bad fit) that also sets the
      customer's baseline share of failure events (`NEGATIVE_ROLES`) and, more
      weakly, lowers their replies per message: the **level** of the ratios
      tells who is at risk;
    * ``1 + new_customer_boost * exp(-tenure / 75)``: new accounts leave more
      (none in their first week); tenure is a real but secondary signal;
    * ``(seats / 4) ** seats_effect`` and a small tier effect (scale < growth
      < starter).

    Heavy and light users (gamma activity, API use) churn alike. For 78 % of
    churners a *health* falls from 1 to a floor over 20-75 days before they
    leave: the share of failure events rises (x up to ``1 + friction_rise``)
    and replies per message sent fall (by up to ``reply_drop``), while volume
    drops only ``volume_drop`` (15 %): the **trend** of the ratios tells when.
    The other 22 % leave with no warning. Weekly noise on both ratios,
    monthly noise on volume, weekends and a few product-wide incidents (one
    region flooded with sync failures for a day) keep the signal imperfect.
    Customers who will churn shortly after the data ends already decline in
    its last weeks (honest right-censoring).

    Parameters
    ----------
    n_customers
        Accounts active at some point in the data (signed up before its end
        and not churned before its start).
    seed
        Seeds everything, including the event-type names (`event_type_names`).
    months
        Calendar months of history from `SUBSCRIPTION_START` (1-11; default 7).
    **knobs
        Any other field of `SubscriptionParams`.

    Returns
    -------
    SimulatedData
        ``customers``: customer_id ("acct-" + 6 hex digits), signup_date (UTC;
        70 % before the data start), region (5 values), tier (3 values), seats
        (int64), account_uuid (unique, no signal). ``transactions``: monthly
        invoices on each account's billing day (seats x tier price, sometimes
        an add-on), for 85 % of accounts, refunds as negative amounts and a
        prorated refund on the churn day for some churners. ``events``:
        customer_id, timestamp, event_type only. ``churn``: customer_id,
        churn_date (midnight UTC; no event on or after it).
    """
    params = SubscriptionParams(
        n_customers=n_customers,
        seed=seed,
        months=months,
        **knobs,  # type: ignore[arg-type]
    )
    world = _world_rng(params.seed)
    names = _draw_names(world)
    incidents = _draw_incidents(world, params)
    frames = _collect(
        _subscription_chunk(rng, first, size, params, names, incidents)
        for rng, first, size, _ in _chunk_streams(params.seed, params.n_customers)
    )
    return SimulatedData(
        customers=frames["customers"],
        transactions=frames["transactions"],
        events=frames["events"],
        churn=frames["churn"],
    )


def simulate_retail(
    n_customers: int = 5_000, seed: int = 0, months: int = 12, **knobs: object
) -> SimulatedData:
    """Simulate a non-contractual shop: transactions only, customers silently stop.

    Ground truth
    ------------
    A buy-till-you-die process that is deliberately *not* a textbook BG/NBD:

    * existing customers (45 %) are already buying when the data starts; new
      ones arrive on days weighted by the shop's seasonality and place their
      first order that day; 30 % of new customers (48 % in the gift season,
      15 Nov - 24 Dec) are one-off buyers who never come back;
    * repeat customers order at a gamma-distributed daily rate (mean gap
      ``mean_gap_days``) times the seasonality (December 1-20 x2, Black Friday
      to Cyber Monday x2.5, a summer and January dip, weekends up) times a
      lognormal monthly noise, until a Weibull-distributed dropout time (not
      memoryless, unlike the geometric dropout after each purchase of BG/NBD);
    * 60 % of them fade out (rate falls to 15 %) over 30-120 days before
      they stop; the rest stop abruptly;
    * basket value drifts per customer (lognormal, yearly slope ~ N(0, 0.3))
      plus 4 %/year inflation; gift-season orders lean to toys/electronics.

    The dropout dates are not in the returned data (use
    `retail_ground_truth`): like a real shop, nobody says goodbye.

    Parameters
    ----------
    n_customers
        Customers simulated; only those with at least one order in the data
        appear in it.
    seed
        Seeds everything.
    months
        Calendar months of history from `RETAIL_START` (default 12).
    **knobs
        Any other field of `RetailParams`.

    Returns
    -------
    SimulatedData
        ``customers``: customer_id only (7-digit integers as text, those who
        ordered in the data). ``transactions``: customer_id, timestamp, amount
        (float, cents; negative = refund), order_id ("SO" + 10 digits, shared
        by the lines of one order and their refunds), category (8 values),
        quantity (int64; negative for a returned line, 0 for a partial
        credit). ``events``: empty, with the canonical columns. ``churn``:
        None. `tables` drops the empty events table.
    """
    data, _ = _retail(RetailParams(n_customers=n_customers, seed=seed, months=months, **knobs))  # type: ignore[arg-type]
    return data


def retail_ground_truth(
    n_customers: int = 5_000, seed: int = 0, months: int = 12, **knobs: object
) -> pd.DataFrame:
    """The hidden dropout of `simulate_retail` with the same arguments.

    Returns
    -------
    pandas.DataFrame
        customer_id, dropout_date (UTC midnight of the first day without the
        customer; NaT if they are still buying at the end of the data) and
        one_off (bool), one row per customer in the retail ``customers`` table.
    """
    _, truth = _retail(RetailParams(n_customers=n_customers, seed=seed, months=months, **knobs))  # type: ignore[arg-type]
    return truth


def event_type_names(seed: int = 0) -> dict[str, str]:
    """The event-type name that `simulate_subscription` uses for each role in `ROLES`.

    The names are drawn from word lists with the seed, so code that relies on
    a fixed vocabulary (or on the demo's names) fails on a second seed; tests
    use this mapping to find the planted signal without hard-coding names.
    """
    return _draw_names(_world_rng(seed))


def tables(data: SimulatedData) -> dict[str, pd.DataFrame]:
    """The canonical tables that hold data, keyed by name.

    Like `SimulatedData.as_tables`, but an empty events table (retail) is
    left out, so ``tables(simulate_retail())`` is ``customers`` (ids only)
    and ``transactions``; a churn table is kept even when empty.
    """
    return {
        name: frame
        for name, frame in data.as_tables().items()
        if name != "events" or len(frame) > 0
    }


# --------------------------------------------------------------------------- shared helpers


def _add_months(start: dt.date, months: int) -> dt.date:
    month = np.datetime64(start, "M") + np.timedelta64(months, "M")
    day = month.astype("datetime64[D]") + np.timedelta64(start.day - 1, "D")
    if day.astype("datetime64[M]") != month:  # e.g. 31 Jan + 1 month: clip to month end
        day = (month + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
    result: dt.date = day.astype(dt.date)
    return result


def _world_rng(seed: int) -> np.random.Generator:
    """The stream for everything shared by all customers (child 0 of the seed)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def _chunk_streams(
    seed: int, n_customers: int
) -> Iterator[tuple[np.random.Generator, int, int, int]]:
    """(rng, first customer, size, chunk index); chunk i always uses child i + 1 of the seed."""
    starts = range(0, n_customers, CHUNK_CUSTOMERS)
    streams = np.random.SeedSequence(seed).spawn(1 + len(starts))[1:]
    for index, (first, stream) in enumerate(zip(starts, streams, strict=True)):
        yield (
            np.random.default_rng(stream),
            first,
            min(CHUNK_CUSTOMERS, n_customers - first),
            index,
        )


def _collect(chunks: Iterator[dict[str, pa.Table]]) -> dict[str, pd.DataFrame]:
    parts: dict[str, list[pa.Table]] = {}
    for chunk in chunks:
        for name, table in chunk.items():
            parts.setdefault(name, []).append(table)
    return {name: pa.concat_tables(tables).to_pandas() for name, tables in parts.items()}


def _weekday(dates: np.ndarray) -> np.ndarray:
    """Monday = 0 for an array of datetime64[D] (1970-01-01 was a Thursday)."""
    return (dates.astype(np.int64) + 3) % 7


def _timestamps(days: np.ndarray, seconds: np.ndarray, start: dt.date) -> pa.Array:
    stamps = (
        np.datetime64(start, "us")
        + days.astype("timedelta64[D]")
        + (seconds * 1_000_000).astype(np.int64).astype("timedelta64[us]")
    )
    return pa.array(stamps, pa.timestamp("us", tz="UTC"))


def _block_noise(
    rng: np.random.Generator, size: int, n_days: int, block: int, sigma: float
) -> np.ndarray:
    """A lognormal factor per customer and `block`-day period, spread over its days."""
    blocks = rng.lognormal(0.0, sigma, size=(size, n_days // block + 1)).astype(np.float32)
    return np.repeat(blocks, block, axis=1)[:, :n_days]


def _poisson_rows(rng: np.random.Generator, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts per (customer, day) -> one (customer index, day index) per event."""
    counts = rng.poisson(rates)
    rows, days = np.nonzero(counts)
    repeats = counts[rows, days]
    return np.repeat(rows, repeats), np.repeat(days, repeats)


# --------------------------------------------------------------------------- subscription


def _draw_names(world: np.random.Generator) -> dict[str, str]:
    names = {role: pool[world.integers(len(pool))] for role, pool in _NAME_POOLS.items()}
    pair = _NAME_POOLS["message_sent"].index(names["message_sent"])
    names["message_reply"] = _NAME_POOLS["message_reply"][pair]
    return {role: names[role] for role in ROLES}


def _draw_incidents(world: np.random.Generator, params: SubscriptionParams) -> np.ndarray:
    """(day, region) pairs of product-wide outages, shared by every chunk."""
    days = world.integers(0, params.n_days, size=params.incidents)
    regions = world.integers(0, len(REGIONS), size=params.incidents)
    return np.stack([days, regions], axis=1)


def _hex_ids(first: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Account ids "acct-xxxxxx": a bijection of the customer index, so unique and unordered."""
    codes = ((np.arange(first, first + size, dtype=np.int64) * _HEX_MULTIPLIER) + 0x3A5C1) % 2**24
    return np.array([f"acct-{code:06x}" for code in codes.tolist()]), codes


def _uuids(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random version-4 UUIDs: an id-like column with one value per customer and no signal."""
    words = rng.integers(0, 2**32, size=(size, 4), dtype=np.uint64).tolist()
    return np.array(
        [
            f"{a:08x}-{b >> 16:04x}-4{b & 0xFFF:03x}-"
            f"{0x8000 | (c >> 18):04x}-{c & 0xFFFF:04x}{d:08x}"
            for a, b, c, d in words
        ]
    )


def _subscription_chunk(
    rng: np.random.Generator,
    first: int,
    size: int,
    params: SubscriptionParams,
    names: dict[str, str],
    incidents: np.ndarray,
) -> dict[str, pa.Table]:
    n_days = params.n_days
    ids, codes = _hex_ids(first, size)
    tier = rng.choice(len(TIERS), size=size, p=TIER_SHARES)
    region = rng.choice(len(REGIONS), size=size, p=REGION_SHARES)
    seats = np.clip(np.ceil(rng.lognormal(np.log(2.5) + 0.9 * tier, 0.7)), 1, 500).astype(np.int64)
    early = rng.random(size) < params.presignup_share
    tenure_at_start = np.minimum(rng.exponential(params.pre_tenure_days, size=size), 2_000)
    signup = np.where(
        early, -1 - tenure_at_start.astype(np.int64), rng.integers(0, n_days - 7, size=size)
    )
    friction = rng.normal(size=size)
    churn_day = _subscription_churn_day(rng, signup, friction, seats, tier, params)

    health, active = _subscription_health(rng, signup, churn_day, params)
    events = _subscription_events(
        rng, ids, codes, tier, region, seats, friction, health, active, params, names, incidents
    )

    signup_seconds = rng.integers(8 * 3600, 20 * 3600, size=size)
    tables = {
        "customers": pa.table(
            {
                "customer_id": pa.array(ids, pa.string()),
                "signup_date": _timestamps(signup, signup_seconds, params.start),
                "region": pa.array(REGIONS[region], pa.string()),
                "tier": pa.array(TIERS[tier], pa.string()),
                "seats": pa.array(seats, pa.int64()),
                "account_uuid": pa.array(_uuids(rng, size), pa.string()),
            }
        ).take(np.argsort(codes)),
        "transactions": _subscription_invoices(
            rng, ids, codes, signup, churn_day, seats, tier, params
        ),
        "events": events,
    }
    churned = np.flatnonzero(churn_day < n_days)
    churned = churned[np.argsort(codes[churned])]
    tables["churn"] = pa.table(
        {
            "customer_id": pa.array(ids[churned], pa.string()),
            "churn_date": _timestamps(churn_day[churned], np.zeros(churned.size), params.start),
        }
    )
    return tables


def _subscription_churn_day(
    rng: np.random.Generator,
    signup: np.ndarray,
    friction: np.ndarray,
    seats: np.ndarray,
    tier: np.ndarray,
    params: SubscriptionParams,
) -> np.ndarray:
    """Churn day by inverting the cumulative hazard; runs 120 days past the data end.

    Going past the end lets customers who leave soon after it already decline
    inside the data, as real not-yet-churned customers do.
    """
    horizon = params.n_days + 120
    effect = params.friction_effect
    customer = (
        np.exp(effect * friction - effect**2 / 2)
        * (seats / 4.0) ** params.seats_effect
        * TIER_HAZARD[tier]
    )
    tenure = np.arange(horizon)[None, :] - signup[:, None]
    boost = 1 + params.new_customer_boost * np.exp(-np.maximum(tenure, 0) / 75.0)
    daily = np.where(tenure < 7, 0.0, boost) * (params.monthly_churn / 30.44 * customer[:, None])
    hit = np.cumsum(daily, axis=1) >= rng.exponential(size=signup.size)[:, None]
    never = horizon + 10_000
    return np.where(hit.any(axis=1), hit.argmax(axis=1), never).astype(np.int64)


def _subscription_health(
    rng: np.random.Generator, signup: np.ndarray, churn_day: np.ndarray, params: SubscriptionParams
) -> tuple[np.ndarray, np.ndarray]:
    """(health, active) over (customer x day): health falls to a floor before churn."""
    size, n_days = signup.size, params.n_days
    decay = rng.uniform(*params.decay_days, size=size)
    decay[rng.random(size) < params.abrupt_share] = 1.0  # full health until the last day
    floor = rng.uniform(0.0, 0.3, size=size)
    days = np.arange(n_days)[None, :]
    declining = np.clip((churn_day[:, None] - days) / decay[:, None], 0.0, 1.0)
    health = (floor[:, None] + (1 - floor[:, None]) * declining).astype(np.float32)
    active = (days >= signup[:, None]) & (days < churn_day[:, None])
    return health, active


def _subscription_events(
    rng: np.random.Generator,
    ids: np.ndarray,
    codes: np.ndarray,
    tier: np.ndarray,
    region: np.ndarray,
    seats: np.ndarray,
    friction: np.ndarray,
    health: np.ndarray,
    active: np.ndarray,
    params: SubscriptionParams,
    names: dict[str, str],
    incidents: np.ndarray,
) -> pa.Table:
    size, n_days = health.shape
    dates = np.datetime64(params.start, "D") + np.arange(n_days)
    weekday = WEEKDAY_USE[_weekday(dates)].astype(np.float32)

    # Volume: heterogeneous, noisy, and barely related to churn.
    activity = np.asarray(rng.gamma(params.activity_shape, 1 / params.activity_shape, size=size))
    api_level = np.where(rng.random(size) < params.api_share, rng.gamma(0.6, 1 / 0.6, size), 0.0)
    volume = (
        activity[:, None].astype(np.float32)
        * _block_noise(rng, size, n_days, 30, 0.3)
        * (1 - params.volume_drop * (1 - health))
        * weekday[None, :]
        * active
    )
    # Ratios: the level follows the latent friction, the trend follows health.
    fail_base = 1 / (1 + np.exp(3.4 - 0.55 * friction - rng.normal(0, 0.25, size)))
    reply_base = 0.75 / (1 + np.exp(-0.4 + 0.3 * friction - rng.normal(0, 0.4, size)))
    fail_share = np.clip(
        fail_base[:, None].astype(np.float32)
        * _block_noise(rng, size, n_days, 7, 0.35)
        * (1 + params.friction_rise * (1 - health)),
        0.0,
        0.5,
    )
    reply_ratio = np.clip(
        reply_base[:, None].astype(np.float32)
        * _block_noise(rng, size, n_days, 7, 0.2)
        * (1 - params.reply_drop * (1 - health)),
        0.0,
        1.5,
    )
    sent = 0.55 * volume
    rates: dict[str, np.ndarray] = {
        "core": 2.0 * volume,
        "api": 1.6 * api_level[:, None].astype(np.float32) * volume,
        "message_sent": sent,
        "message_reply": sent * reply_ratio,
        "report": 0.22 * (1 + 0.25 * tier[:, None]).astype(np.float32) * volume,
        "invite": 0.0015 * np.sqrt(seats[:, None]).astype(np.float32) * volume,
    }
    positive = sum(rates.values(), np.zeros((size, n_days), np.float32))
    failures = positive * fail_share / (1 - fail_share)
    outage = np.ones((size, n_days), np.float32)
    for day, hit_region in incidents.tolist():
        outage[region == hit_region, day] += 12.0
    rates["error"] = 0.85 * failures
    rates["sync_failure"] = 0.15 * failures * outage

    parts = []
    for kind, role in enumerate(ROLES):
        rows, days = _poisson_rows(rng, rates[role])
        parts.append((rows, days, np.full(rows.size, kind, np.int8)))
    rows, days, kinds = (np.concatenate(p) for p in zip(*parts, strict=True))
    hour = REGION_PEAK_HOUR[region[rows]] + rng.normal(0.0, 2.5, size=rows.size)
    seconds = np.floor(np.mod(hour * 3600, 86_400))
    micros = days.astype(np.int64) * 86_400_000_000 + (seconds * 1_000_000).astype(np.int64)
    order = np.lexsort((micros, codes[rows]))
    rows, days, kinds, seconds = rows[order], days[order], kinds[order], seconds[order]
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.string()).take(pa.array(rows)),
            "timestamp": _timestamps(days, seconds, params.start),
            "event_type": pa.array([names[r] for r in ROLES], pa.string()).take(pa.array(kinds)),
        }
    )


def _subscription_invoices(
    rng: np.random.Generator,
    ids: np.ndarray,
    codes: np.ndarray,
    signup: np.ndarray,
    churn_day: np.ndarray,
    seats: np.ndarray,
    tier: np.ndarray,
    params: SubscriptionParams,
) -> pa.Table:
    """Monthly invoices on the signup day-of-month, refunds and prorated refunds at churn."""
    size, n_days = signup.size, params.n_days
    start = np.datetime64(params.start, "D")
    billed = rng.random(size) < params.billed_share
    dom = np.minimum(
        (
            (start + signup) - (start + signup).astype("datetime64[M]").astype("datetime64[D]")
        ).astype(np.int64),
        27,
    )
    months = np.datetime64(params.start, "M") + np.arange(-1, params.months + 2)
    due = (months.astype("datetime64[D]")[None, :] + dom[:, None]) - start  # timedelta64[D]
    due = due.astype(np.int64)
    valid = (
        billed[:, None]
        & (due >= np.maximum(signup, 0)[:, None])
        & (due < np.minimum(churn_day, n_days)[:, None])
    )
    rows, col = np.nonzero(valid)
    days = due[rows, col]
    discount = np.where(seats >= 20, 0.85, np.where(seats >= 8, 0.93, 1.0))
    fee = np.round(seats * TIER_SEAT_PRICE[tier] * discount, 2)
    addon = np.where(rng.random(rows.size) < 0.08, rng.choice([9.0, 19.0, 49.0], rows.size), 0.0)
    amounts = np.round(fee[rows] + addon, 2)
    seconds = 2 * 3600 + rng.integers(0, 1800, size=rows.size)

    refunded = np.flatnonzero(rng.random(rows.size) < params.refund_share)
    refund_days = days[refunded] + rng.integers(2, 15, size=refunded.size)
    keep = refund_days < n_days
    refunded, refund_days = refunded[keep], refund_days[keep]
    refund_share = np.where(rng.random(refunded.size) < 0.6, 1.0, 0.5)

    # Some churners get the unused part of their last invoice back on the churn day.
    last_due = np.where(valid, due, -1).max(axis=1)
    prorated = np.flatnonzero(
        billed & (churn_day < n_days) & (last_due >= 0) & (rng.random(size) < 0.35)
    )
    unused = np.clip(1 - (churn_day[prorated] - last_due[prorated]) / 30.0, 0.0, 1.0)
    prorated, unused = prorated[unused > 0], unused[unused > 0]

    all_rows = np.concatenate([rows, rows[refunded], prorated])
    all_days = np.concatenate([days, refund_days, churn_day[prorated]])
    all_seconds = np.concatenate(
        [
            seconds,
            rng.integers(9 * 3600, 18 * 3600, size=refunded.size),
            np.full(prorated.size, 600),
        ]
    )
    all_amounts = np.concatenate(
        [
            amounts,
            -np.round(amounts[refunded] * refund_share, 2),
            -np.round(fee[prorated] * unused, 2),
        ]
    )
    order = np.lexsort((all_days * 86_400 + all_seconds, codes[all_rows]))
    return pa.table(
        {
            "customer_id": pa.array(ids[all_rows[order]], pa.string()),
            "timestamp": _timestamps(all_days[order], all_seconds[order], params.start),
            "amount": pa.array(all_amounts[order], pa.float64()),
        }
    )


# --------------------------------------------------------------------------- retail


def _retail(params: RetailParams) -> tuple[SimulatedData, pd.DataFrame]:
    frames = _collect(
        _retail_chunk(rng, first, size, index, params)
        for rng, first, size, index in _chunk_streams(params.seed, params.n_customers)
    )
    empty_events = pa.table(
        {
            "customer_id": pa.array([], pa.string()),
            "timestamp": pa.array([], pa.timestamp("us", tz="UTC")),
            "event_type": pa.array([], pa.string()),
        }
    ).to_pandas()
    data = SimulatedData(
        customers=frames["customers"],
        transactions=frames["transactions"],
        events=empty_events,
        churn=None,
    )
    return data, frames["truth"]


def _retail_season(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order-rate multiplier, gift-season flag) per day, from the calendar."""
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    weekday = _weekday(dates)
    by_month = np.array([0.75, 0.8, 0.95, 1.0, 1.0, 0.92, 0.82, 0.85, 0.95, 1.0, 1.2, 1.0])
    season = by_month[month - 1] * WEEKDAY_SHOP[weekday]
    season = np.where((month == 12) & (day <= 20), season * 2.0, season)
    season = np.where((month == 12) & (day >= 24) & (day <= 26), season * 0.5, season)
    # Black Friday (the Friday after the fourth Thursday of November) to Cyber Monday.
    black_friday = (month == 11) & (day >= 23) & (day <= 29) & (weekday == 4)
    for index in np.flatnonzero(black_friday):
        season[index : index + 4] *= 2.5
    gift = ((month == 11) & (day >= 15)) | ((month == 12) & (day <= 24))
    return season, gift


def _retail_chunk(
    rng: np.random.Generator, first: int, size: int, chunk: int, params: RetailParams
) -> dict[str, pa.Table]:
    n_days = params.n_days
    dates = np.datetime64(params.start, "D") + np.arange(n_days)
    season, gift = _retail_season(dates)
    codes = 1_000_000 + (
        (np.arange(first, first + size, dtype=np.int64) * _RETAIL_ID_MULTIPLIER + 4_242_424)
        % 9_000_000
    )
    ids = codes.astype(str)

    existing = rng.random(size) < params.existing_share
    birth = np.where(
        existing,
        -1 - rng.exponential(300.0, size=size).astype(np.int64),
        rng.choice(n_days, size=size, p=season / season.sum()),
    )
    born_in_gift = ~existing & gift[np.clip(birth, 0, n_days - 1)]
    one_off = ~existing & (
        rng.random(size) < params.one_off_share * np.where(born_in_gift, 1.6, 1.0)
    )
    rate = rng.gamma(params.rate_shape, 1 / (params.rate_shape * params.mean_gap_days), size=size)
    lifetime = np.ceil(params.lifetime_days * rng.weibull(params.lifetime_shape, size=size))
    dropout = np.where(one_off, birth + 1, np.maximum(birth, 0) + 1 + lifetime.astype(np.int64))
    fade_days = np.where(rng.random(size) < params.fade_share, rng.uniform(30, 120, size=size), 1.0)

    days = np.arange(n_days)[None, :]
    fade = np.clip((dropout[:, None] - days) / fade_days[:, None], 0.15, 1.0)
    active = (days > birth[:, None]) & (days < dropout[:, None])
    rates = (
        (rate[:, None] * season[None, :] * fade).astype(np.float32)
        * _block_noise(rng, size, n_days, 30, 0.35)
        * active
    )
    rows, order_days = _poisson_rows(rng, rates)
    first_orders = np.flatnonzero(~existing)  # every new customer orders on the day they arrive
    rows = np.concatenate([rows, first_orders])
    order_days = np.concatenate([order_days, birth[first_orders]])
    hour = np.where(
        rng.random(rows.size) < 0.45,
        rng.normal(12.5, 1.5, rows.size),
        rng.normal(20.5, 1.8, rows.size),
    )
    order_seconds = np.floor(np.mod(hour * 3600, 86_400))
    order_numbers = (
        (chunk * 10_000_000 + np.arange(rows.size, dtype=np.int64)) * _ORDER_MULTIPLIER + 31_337
    ) % 10**10

    # Lines: one or more per order, mostly from the customer's favourite category.
    n_lines = 1 + rng.poisson(params.extra_lines, size=rows.size)
    line_order = np.repeat(np.arange(rows.size), n_lines)
    cust, line_days = rows[line_order], order_days[line_order]
    favourite = rng.choice(len(CATEGORIES), size=size, p=CATEGORY_SHARES)
    category = np.where(
        rng.random(line_order.size) < 0.55,
        favourite[cust],
        rng.choice(len(CATEGORIES), size=line_order.size, p=CATEGORY_SHARES),
    )
    gifting = gift[line_days] & (rng.random(line_order.size) < 0.3)
    category = np.where(gifting, rng.choice(GIFT_CATEGORIES, size=line_order.size), category)
    quantity = 1 + rng.poisson(np.where(CATEGORIES[category] == "grocery", 1.5, 0.25))
    level = rng.normal(0.0, 0.35, size=size)
    drift = rng.normal(0.0, params.basket_drift_sd, size=size)
    years = line_days / 365.25
    price = CATEGORY_PRICE[category] * np.exp(
        level[cust] + (drift[cust] + 0.04) * years + rng.normal(0.0, 0.3, line_order.size)
    )
    price = np.where(
        rng.random(line_order.size) < 0.7,
        np.maximum(np.round(price) - 0.01, 0.99),
        np.round(price, 2),
    )
    amount = np.round(price * quantity, 2)

    refund_p = params.refund_share * CATEGORY_REFUND[category]
    refunded = np.flatnonzero(rng.random(line_order.size) < refund_p)
    refund_days = line_days[refunded] + 3 + rng.exponential(10.0, refunded.size).astype(np.int64)
    keep = refund_days < n_days
    refunded, refund_days = refunded[keep], refund_days[keep]
    full = rng.random(refunded.size) < 0.8
    refund_amount = np.where(
        full, amount[refunded], np.round(amount[refunded] * rng.uniform(0.1, 0.5, refunded.size), 2)
    )
    refund_quantity = np.where(full, -quantity[refunded], 0)

    all_lines = np.concatenate([np.arange(line_order.size), refunded])
    all_days = np.concatenate([line_days, refund_days])
    all_seconds = np.concatenate(
        [order_seconds[line_order], rng.integers(7 * 3600, 17 * 3600, size=refunded.size)]
    )
    sort = np.lexsort((all_days * 86_400 + all_seconds, codes[cust[all_lines]]))
    all_lines, all_days, all_seconds = all_lines[sort], all_days[sort], all_seconds[sort]
    all_amounts = np.concatenate([amount, -refund_amount])[sort]
    all_quantity = np.concatenate([quantity, refund_quantity])[sort]
    order_ids = np.char.add("SO", np.char.zfill(order_numbers.astype(str), 10))

    buyers = np.unique(rows)
    buyers = buyers[np.argsort(codes[buyers])]
    dropped = buyers[dropout[buyers] < n_days]
    dropout_stamp = np.full(buyers.size, np.datetime64("NaT"), "datetime64[us]")
    dropout_stamp[dropout[buyers] < n_days] = np.datetime64(params.start, "us") + dropout[
        dropped
    ].astype("timedelta64[D]")
    return {
        "customers": pa.table({"customer_id": pa.array(ids[buyers], pa.string())}),
        "transactions": pa.table(
            {
                "customer_id": pa.array(ids[cust[all_lines]], pa.string()),
                "timestamp": _timestamps(all_days, all_seconds, params.start),
                "amount": pa.array(all_amounts, pa.float64()),
                "order_id": pa.array(order_ids[line_order[all_lines]], pa.string()),
                "category": pa.array(CATEGORIES[category[all_lines]], pa.string()),
                "quantity": pa.array(all_quantity, pa.int64()),
            }
        ),
        "truth": pa.table(
            {
                "customer_id": pa.array(ids[buyers], pa.string()),
                "dropout_date": pa.array(dropout_stamp, pa.timestamp("us", tz="UTC")),
                "one_off": pa.array(one_off[buyers], pa.bool_()),
            }
        ),
    }
