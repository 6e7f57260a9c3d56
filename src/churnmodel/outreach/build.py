"""The outreach list: one row per scored customer, ranked by the money at stake.

Column meanings follow the architecture doc. The two derived figures are
kept deliberately simple, so a retention team can check them by hand:

* ``value_12m`` (a CLV proxy): what the customer would spend in the next
  year if they stay. With the BG/NBD view (non-contractual purchases): the
  purchase days BG/NBD expects in a year for a customer still alive,
  ``tx_expected_purchases_365d / tx_p_alive``, times the customer's spend
  per purchase day. Otherwise, and where BG/NBD has no answer: the net spend
  over the longest feature window W (365 days by default), scaled to a
  year, counting at least 30 days of history, so a one-week-old customer is
  not extrapolated wildly:
  ``max(0, spend_W) * 365 / clip(days since first purchase, 30, W)``.
* ``health_score`` (0-100, higher is healthier), independent of the model:
  the mean of the behaviour scores the features allow, each 0-100.
  Recency: 100 while the last purchase is within the usual gap, falling to
  0 at four times the gap. Engagement: the latest 90-day product use as a
  share of the 90 days before, capped at 100. Satisfaction: the last NPS
  (0-10) and CSAT (1-5) answers on a 0-100 scale. Support: 100 with no
  tickets in 90 days, 0 with three or more (windows other than 90 days:
  the configured one nearest to 90, the bound scaled). Without any it is
  ``100 * (1 - churn_probability)``.

Segments: "new" below `new_customer_days` of tenure; else "high-value" when
``value_12m > 0`` and at least the value of the customer ranked
``ceil(high_value_share * customers)`` by value (ties included); else
"at-risk" in the high tier; else "regular".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.config import OutreachConfig
from churnmodel.outreach.people import header_words
from churnmodel.outreach.reasons import explain, typical_values
from churnmodel.registry.bundle import ModelBundle
from churnmodel.scoring import Scores

log = logging.getLogger(__name__)

TIERS = ("high", "medium", "low")
SEGMENTS = ("new", "high-value", "at-risk", "regular")
REASONS = 3
REASON_COLUMNS = (*(f"reason_{i}" for i in range(1, REASONS + 1)), "action")
"""What `explain_rows` gives each explained row."""
COLUMNS = [
    "customer_id",
    "as_of",
    "churn_probability",
    "risk_tier",
    "health_score",
    "value_12m",
    "value_at_risk",
    *(f"reason_{i}" for i in range(1, REASONS + 1)),
    "action",
    "segment",
    "model_version",
    "has_reasons",
]
LIST_ORDER = ["value_at_risk", "churn_probability", "customer_id"]
INTERNAL_COLUMNS = ("probability", "new")
"""Columns `row_figures` adds on the way (Spark matches names without case)."""
BGNBD_VALUE = (
    "tx_expected_purchases_365d",
    "tx_p_alive",
    "tx_amount_sum_total",
    "tx_purchase_days_total",
)
"""The BG/NBD columns `value_12m` reads when the model has them."""
LIST_ASCENDING = [False, False, True]


def build_outreach(
    scores: Scores, bundle: ModelBundle, config: OutreachConfig, model_version: str
) -> pd.DataFrame:
    """The full list, sorted by value at risk (then probability, then customer id)."""
    frame = scores.frame
    out = row_figures(frame, frame["churn_probability"].to_numpy(), bundle, config)
    out.insert(1, "as_of", pd.Timestamp(scores.as_of))
    cuts = ListCuts.find(partial(_kth_of, out), len(out), config)
    labelled = ranked_labels(out, cuts)
    tiers = pd.Categorical(labelled["risk_tier"], categories=TIERS, ordered=True)
    out.insert(3, "risk_tier", pd.Series(tiers, index=out.index))
    out["segment"] = labelled["segment"].to_numpy()
    out["model_version"] = model_version
    out = out.sort_values(LIST_ORDER, ascending=LIST_ASCENDING, kind="stable")
    chosen = reason_rows(out, config)
    for i in range(REASONS):
        out[f"reason_{i + 1}"] = ""
    out["action"] = ""
    if len(chosen):
        explained = explain_rows(frame.loc[chosen], bundle, config)
        out.loc[chosen, explained.columns] = explained.to_numpy()
    out["has_reasons"] = out.index.isin(chosen)
    attributes = attribute_columns(bundle)
    for name, column in attributes.items():
        values = frame.loc[out.index, name]
        out[column] = (
            values.astype("object").where(values.notna(), None)
            if isinstance(values.dtype, pd.CategoricalDtype)
            else values
        )
    return out[list_columns(attributes)].reset_index(drop=True)


def attribute_columns(bundle: ModelBundle) -> dict[str, str]:
    """The attributes the list carries (feature -> column), so a team filters without a join.

    The model's text and numeric attributes, under their own names, or
    ``customer_<name>`` when that name, in any case, is already a list
    column or a header word (a CRM column `Segment`, say).
    """
    profile = bundle.config.features.profile
    names = [*(profile.attributes or []), *(profile.numeric or [])]
    taken = {c.casefold() for c in (*COLUMNS, *INTERNAL_COLUMNS, *header_words())}
    return {
        n: f"customer_{n}" if n.casefold() in taken else n
        for n in names
        if n in bundle.feature_names
    }


def list_columns(attributes: Mapping[str, str]) -> list[str]:
    """The list's columns: `COLUMNS`, with the attributes after `segment`."""
    cut = COLUMNS.index("segment") + 1
    return [*COLUMNS[:cut], *attributes.values(), *COLUMNS[cut:]]


def row_figures(
    frame: pd.DataFrame,
    probability: npt.NDArray[np.float64],
    bundle: ModelBundle,
    config: OutreachConfig,
) -> pd.DataFrame:
    """Everything in the list that one customer's row decides on its own.

    Kept apart from the ranks (tiers, the high-value cut), which need every
    row, so Spark can compute these on its executors with the same code.
    `probability` is kept unrounded for ranking; `new` feeds the segment.
    """
    rounded = probability.round(6)
    value = value_12m(frame, max(bundle.config.features.windows_days))
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "churn_probability": rounded,
            "health_score": health_scores(frame, probability),
            "value_12m": value,
            "value_at_risk": (rounded * value).round(2),
            "probability": probability,
            "new": new_customers(frame, config.new_customer_days),
        },
        index=frame.index,
    )


def explain_rows(
    features: pd.DataFrame, bundle: ModelBundle, config: OutreachConfig
) -> pd.DataFrame:
    """reason_1..3 and action for the given rows, from their TreeSHAP contributions."""
    features = features[bundle.feature_names]
    explanations = explain(
        bundle.model.contributions(bundle.prepare(features)),
        features,
        bundle.specs,
        config.reasons,
        REASONS,
        typical_values(bundle.training["reason_reference"])
        if "reason_reference" in bundle.training
        else None,
    )
    out = pd.DataFrame(
        {f"reason_{i + 1}": [r[i] for r in explanations.reasons] for i in range(REASONS)},
        index=features.index,
    )
    out["action"] = explanations.actions
    return out


def tier_sizes(rows: int, config: OutreachConfig) -> tuple[int, int]:
    """How many rows are high, and high or medium, when tiers are shares (before ties)."""
    return round(config.high * rows), round(config.medium * rows)


@dataclass(frozen=True)
class ListCuts:
    """The order statistics that rank the list: the two tier cuts and the high-value cut.

    The one part of the tier and segment rules that needs every row; each
    engine finds the k-th largest values its own way (`kth`), and
    `ranked_labels` then labels rows one by one, in pandas on either engine.
    """

    high: float
    medium: float
    high_value: float

    @classmethod
    def find(
        cls,
        kth: Callable[[str, tuple[int, ...]], tuple[float, ...]],
        rows: int,
        config: OutreachConfig,
    ) -> ListCuts:
        """The cuts for `rows` customers; `kth(column, ks)` gives the ks-th largest values."""
        if config.tiers == "probability":
            high, medium = config.high, config.medium
        else:
            high, medium = kth("churn_probability", tier_sizes(rows, config))
        (value,) = kth("value_12m", (high_value_rank(rows, config.high_value_share),))
        return cls(high, medium, value)


def ranked_labels(figures: pd.DataFrame, cuts: ListCuts) -> pd.DataFrame:
    """`risk_tier` and `segment` of each row of `row_figures`, given the cuts.

    A shown probability at or above a cut is in its tier, so ties share
    one; high-value needs a positive value at or above its cut.
    """
    probability = figures["churn_probability"].to_numpy()
    tier = np.where(
        probability >= cuts.high, "high", np.where(probability >= cuts.medium, "medium", "low")
    )
    values = figures["value_12m"].to_numpy()
    high_value = (values >= cuts.high_value) & (values > 0)
    segment = segment_labels(figures["new"].to_numpy(dtype=bool), high_value, tier == "high")
    return pd.DataFrame({"risk_tier": tier, "segment": segment}, index=figures.index)


def _kth_of(frame: pd.DataFrame, column: str, ks: tuple[int, ...]) -> tuple[float, ...]:
    """`kth_largest` of a column for each k: the pandas side of `ListCuts.find`."""
    values = frame[column].to_numpy(dtype=np.float64)
    return tuple(kth_largest(values, k) for k in ks)


def risk_tiers(probability: npt.NDArray[np.float64], config: OutreachConfig) -> pd.Categorical[str]:
    """High / medium / low by probability threshold, or by share of customers (top first).

    `probability` is the one the list shows (rounded to 6 decimals), so two
    customers with the same number always share a tier: with shares, the
    tier takes everyone tied with its last customer, and may come out a
    little larger than the share.
    """
    figures = pd.DataFrame({"churn_probability": probability, "value_12m": 0.0, "new": False})
    cuts = ListCuts.find(partial(_kth_of, figures), len(figures), config)
    tiers = ranked_labels(figures, cuts)["risk_tier"]
    return pd.Categorical(tiers, categories=TIERS, ordered=True)


def kth_largest(values: npt.NDArray[np.float64], k: int) -> float:
    """The k-th largest value (1-based), inf when k is 0 or there are fewer values.

    An order statistic rather than an interpolated quantile, so every engine
    finds the very same number; everything tied with it is at or above it.
    """
    if k < 1 or k > len(values):
        return math.inf
    return float(-np.partition(-values, k - 1)[k - 1])


def high_value_rank(rows: int, share: float) -> int:
    """The 1-based rank (by value, highest first) that sets the high-value cut."""
    return max(1, math.ceil(share * rows))


def high_value_cut(values: npt.NDArray[np.float64], share: float) -> float:
    """The value at `high_value_rank`; at or above it (and > 0) is high-value (ties included)."""
    return kth_largest(values, high_value_rank(len(values), share))


def value_12m(frame: pd.DataFrame, window: int) -> npt.NDArray[np.float64]:
    """A year's spend if the customer stays (see the module docstring)."""
    spend_column, tenure_column = f"tx_amount_sum_{window}d", "tx_tenure_days"
    if spend_column not in frame or tenure_column not in frame:
        return np.zeros(len(frame))
    spend = frame[spend_column].fillna(0).clip(lower=0).to_numpy()
    covered = frame[tenure_column].fillna(window).clip(30, window).to_numpy()
    annualised = spend * 365 / covered
    if all(c in frame for c in BGNBD_VALUE):
        expected, alive, total, days = (frame[c].to_numpy(np.float64) for c in BGNBD_VALUE)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_day = np.where(days > 0, np.maximum(total, 0) / days, np.nan)
            stays = np.where(alive > 0, expected / alive * per_day, np.nan)
        annualised = np.where(np.isfinite(stays), stays, annualised)
    return np.asarray(np.round(annualised, 2))


def health_scores(
    frame: pd.DataFrame, probability: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """0-100 from behaviour (see the module docstring), never from the model."""
    parts: list[pd.Series] = []
    if "tx_recency_gap_ratio" in frame:
        parts.append(100 * (1 - (frame["tx_recency_gap_ratio"] - 1) / 3).clip(0, 1))
    if (trend := _nearest_window(frame, r"ev_engagement_trend_(\d+)d")) is not None:
        parts.append(100 * frame[trend[0]].clip(0, 1))
    if "nps_last" in frame:
        parts.append(10 * frame["nps_last"].clip(0, 10))
    if "csat_last" in frame:
        parts.append(25 * (frame["csat_last"].clip(1, 5) - 1))
    if (tickets := _nearest_window(frame, r"ticket_count_(\d+)d")) is not None:
        column, days = tickets  # three tickets in 90 days, scaled to the window
        parts.append(100 * (1 - frame[column] / (3 * days / HEALTH_DAYS)).clip(0, 1))
    fallback = pd.Series(100 * (1 - probability), index=frame.index)
    health = pd.concat(parts, axis=1).mean(axis=1) if parts else fallback
    return np.asarray(health.fillna(fallback).round().astype("int64"))


HEALTH_DAYS = 90
"""The window the health score reads, or the configured one nearest to it."""


def _nearest_window(frame: pd.DataFrame, pattern: str) -> tuple[str, int] | None:
    """The column matching `pattern` whose window (days) is nearest `HEALTH_DAYS`, and its days.

    Derived from the columns present, so a config without a 90-day window
    still gets engagement and support in the score, from its nearest one.
    """
    found = {
        int(match[1]): column
        for column in frame.columns
        if (match := re.fullmatch(pattern, str(column)))
    }
    if not found:
        return None
    days = min(found, key=lambda d: (abs(d - HEALTH_DAYS), d))
    return found[days], days


def new_customers(frame: pd.DataFrame, days: int) -> npt.NDArray[np.bool_]:
    """Tenure (since signup, else since the first purchase) shorter than `days`."""
    tenure = frame.get("tenure_days", frame.get("tx_tenure_days"))
    if tenure is None:
        return np.zeros(len(frame), dtype=bool)
    return np.asarray(tenure.lt(days).to_numpy(), dtype=bool)


def segment_labels(
    new: npt.NDArray[np.bool_], high_value: npt.NDArray[np.bool_], at_risk: npt.NDArray[np.bool_]
) -> pd.Categorical[str]:
    """New (short tenure), else high-value, else at-risk (high tier), else regular."""
    labels = np.select([new, high_value, at_risk], list(SEGMENTS[:3]), SEGMENTS[3])
    return pd.Categorical(labels, categories=list(SEGMENTS))


def tier_summary(outreach: pd.DataFrame) -> pd.DataFrame:
    """Per risk tier: customers, mean probability, value, value at risk, rows with reasons."""
    grouped = outreach.groupby("risk_tier", observed=False).agg(
        customers=("customer_id", "size"),
        mean_probability=("churn_probability", "mean"),
        value_12m=("value_12m", "sum"),
        value_at_risk=("value_at_risk", "sum"),
        with_reasons=("has_reasons", "sum"),
    )
    return grouped.reset_index()


def reason_rows(ranked: pd.DataFrame, config: OutreachConfig) -> pd.Index:
    """Rows (in list order) in the reason tiers, at most `max_reason_rows` (with a warning)."""
    wanted = ranked.index[ranked["risk_tier"].isin(config.reason_tiers).to_numpy()]
    warn_if_capped(len(wanted), config)
    return wanted[: config.max_reason_rows]


def warn_if_capped(rows: int, config: OutreachConfig) -> None:
    """Say so when rows of the contacted tiers are left without reasons by the cap."""
    if rows > config.max_reason_rows:
        log.warning(
            "%s of %s rows in the tiers %s have no reasons: outreach.max_reason_rows is %s",
            f"{rows - config.max_reason_rows:,}",
            f"{rows:,}",
            "/".join(config.reason_tiers),
            f"{config.max_reason_rows:,}",
        )
