"""The outreach list: one row per scored customer, ranked by the money at stake.

Column meanings follow the architecture doc. The two derived figures are
kept deliberately simple, so a retention team can check them by hand:

* ``value_12m`` (a CLV proxy): the customer's net spend over the longest
  feature window W (365 days by default), scaled to a year. Customers with
  less history than W are scaled by what they have, counting at least 30
  days, so a one-week-old customer is not extrapolated wildly:
  ``max(0, spend_W) * 365 / clip(days since first purchase, 30, W)``.
* ``health_score`` (0-100, higher is healthier), independent of the model:
  the mean of the behaviour scores the features allow, each 0-100.
  Recency: 100 while the last purchase is within the usual gap, falling to
  0 at four times the gap. Engagement: the latest 90-day product use as a
  share of the 90 days before, capped at 100. Satisfaction: the last NPS
  (0-10) and CSAT (1-5) answers on a 0-100 scale. Support: 100 with no
  tickets in 90 days, 0 with three or more. Without any of these it is
  ``100 * (1 - churn_probability)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.config import OutreachConfig
from churnmodel.outreach.reasons import explain
from churnmodel.registry.bundle import ModelBundle
from churnmodel.scoring import Scores

TIERS = ("high", "medium", "low")
SEGMENTS = ("new", "high-value", "at-risk", "regular")
REASONS = 3
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


def build_outreach(
    scores: Scores, bundle: ModelBundle, config: OutreachConfig, model_version: str
) -> pd.DataFrame:
    """The full list, sorted by value at risk (then probability, then customer id)."""
    frame = scores.frame
    probability = frame["churn_probability"].to_numpy()
    windows = bundle.config.features.windows_days
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "as_of": pd.Timestamp(scores.as_of),
            "churn_probability": probability.round(6),
            "health_score": health_scores(frame, probability),
            "value_12m": value_12m(frame, max(windows)),
        }
    )
    tiers = risk_tiers(probability, config, out["value_12m"].to_numpy())
    out.insert(3, "risk_tier", pd.Series(tiers, index=out.index))
    out["value_at_risk"] = (out["churn_probability"] * out["value_12m"]).round(2)
    out["segment"] = segments(frame, out, config)
    out["model_version"] = model_version
    out = out.sort_values(
        ["value_at_risk", "churn_probability", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    )
    chosen = reason_rows(out, config)
    for i in range(REASONS):
        out[f"reason_{i + 1}"] = ""
    out["action"] = ""
    if len(chosen):
        features = frame.loc[chosen, bundle.feature_names]
        explanations = explain(
            bundle.classifier.contributions(bundle.prepare(features)),
            features,
            bundle.specs,
            config.reasons,
            REASONS,
        )
        for i in range(REASONS):
            out.loc[chosen, f"reason_{i + 1}"] = [r[i] for r in explanations.reasons]
        out.loc[chosen, "action"] = explanations.actions
    out["has_reasons"] = out.index.isin(chosen)
    return out[COLUMNS].reset_index(drop=True)


def risk_tiers(
    probability: npt.NDArray[np.float64],
    config: OutreachConfig,
    value: npt.NDArray[np.float64] | None = None,
) -> pd.Categorical[str]:
    """High / medium / low by probability threshold, or by share of customers (top first).

    Shares are exact: calibrated probabilities tie often, so ties go to the
    higher `value` first, then to the earlier row (the list is in customer
    order), which keeps the tiers repeatable.
    """
    if config.tiers == "probability":
        high, medium = probability >= config.high, probability >= config.medium
    else:
        tiebreak = np.zeros(len(probability)) if value is None else value
        rank = np.empty(len(probability), dtype=np.int64)
        rank[np.lexsort((-tiebreak, -probability))] = np.arange(len(probability))
        high = rank < round(config.high * len(probability))
        medium = rank < round(config.medium * len(probability))
    tier = np.where(high, "high", np.where(medium, "medium", "low"))
    return pd.Categorical(tier, categories=TIERS, ordered=True)


def value_12m(frame: pd.DataFrame, window: int) -> npt.NDArray[np.float64]:
    """Net spend over the longest window, annualised (see the module docstring)."""
    spend_column, tenure_column = f"tx_amount_sum_{window}d", "tx_tenure_days"
    if spend_column not in frame or tenure_column not in frame:
        return np.zeros(len(frame))
    spend = frame[spend_column].fillna(0).clip(lower=0).to_numpy()
    covered = frame[tenure_column].fillna(window).clip(30, window).to_numpy()
    return np.asarray(np.round(spend * 365 / covered, 2))


def health_scores(
    frame: pd.DataFrame, probability: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """0-100 from behaviour (see the module docstring), never from the model."""
    parts: list[pd.Series] = []
    if "tx_recency_gap_ratio" in frame:
        parts.append(100 * (1 - (frame["tx_recency_gap_ratio"] - 1) / 3).clip(0, 1))
    if "ev_engagement_trend_90d" in frame:
        parts.append(100 * frame["ev_engagement_trend_90d"].clip(0, 1))
    if "nps_last" in frame:
        parts.append(10 * frame["nps_last"].clip(0, 10))
    if "csat_last" in frame:
        parts.append(25 * (frame["csat_last"].clip(1, 5) - 1))
    if "ticket_count_90d" in frame:
        parts.append(100 * (1 - frame["ticket_count_90d"] / 3).clip(0, 1))
    fallback = pd.Series(100 * (1 - probability), index=frame.index)
    health = pd.concat(parts, axis=1).mean(axis=1) if parts else fallback
    return np.asarray(health.fillna(fallback).round().astype("int64"))


def segments(frame: pd.DataFrame, out: pd.DataFrame, config: OutreachConfig) -> pd.Categorical[str]:
    """New (short tenure), high-value (top value share), at-risk (high tier), else regular."""
    tenure = frame.get("tenure_days", frame.get("tx_tenure_days"))
    new = (
        tenure.lt(config.new_customer_days).to_numpy()
        if tenure is not None
        else np.zeros(len(frame), dtype=bool)
    )
    values = out["value_12m"].to_numpy()
    top = values >= np.quantile(values, 1 - config.high_value_share) if len(values) else values
    high_value = top & (values > 0)
    at_risk = (out["risk_tier"] == "high").to_numpy()
    labels = np.select([new, high_value, at_risk], list(SEGMENTS[:3]), SEGMENTS[3])
    return pd.Categorical(labels, categories=list(SEGMENTS))


def reason_rows(ranked: pd.DataFrame, config: OutreachConfig) -> pd.Index:
    """Rows (in list order) in the reason tiers, at most `max_reason_rows`."""
    wanted = ranked["risk_tier"].isin(config.reason_tiers)
    return ranked.index[wanted.to_numpy()][: config.max_reason_rows]
