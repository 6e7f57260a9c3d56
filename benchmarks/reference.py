"""A straightforward pandas implementation of every feature: one groupby loop per cutoff.

It exists for two reasons: the benchmark measures the Ibis pipeline against
it, and the tests check that both give the same numbers on simulated data,
so it is written to be obviously right rather than fast. Same definitions as
`churnmodel.features` (day-level windows ``[c - w, c)``, gaps between
distinct purchase days, latest answer = mean of the latest answer day).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnmodel.config import FeatureConfig
from churnmodel.features.catalog import slug


def reference_features(
    tables: dict[str, pd.DataFrame], spine: pd.DataFrame, config: FeatureConfig
) -> pd.DataFrame:
    """Features for every (customer_id, cutoff) of `spine`; timestamps are naive UTC."""
    parts = []
    for cutoff, rows in spine.groupby("cutoff", sort=True):
        ids = pd.Index(rows["customer_id"].unique(), name="customer_id")
        c = pd.Timestamp(cutoff)
        blocks = [pd.DataFrame(index=ids)]
        if "transactions" in tables:
            blocks.append(_transactions(_history(tables["transactions"], c), ids, config))
        if "events" in tables:
            history = _history(tables["events"], c)
            blocks.append(_engagement(history, ids, config))
            blocks.append(_feedback(history, ids, config))
        if "customers" in tables:
            blocks.append(_profile(tables["customers"], c, ids))
        block = pd.concat(blocks, axis=1).reset_index()
        block.insert(1, "cutoff", c)
        parts.append(block)
    return pd.concat(parts, ignore_index=True)


def _history(table: pd.DataFrame, c: pd.Timestamp) -> pd.DataFrame:
    """Rows strictly before the cutoff, with `ago` = whole days before the cutoff day."""
    past = table[table["timestamp"] < c].copy()
    past["day"] = past["timestamp"].dt.floor("D")
    past["ago"] = (c - past["day"]).dt.days
    return past


def _in(ago: pd.Series, days: int, skip: int = 0) -> pd.Series:
    return (ago > skip) & (ago <= skip + days)


def _count(frame: pd.DataFrame, mask: pd.Series, ids: pd.Index) -> pd.Series:
    return frame[mask].groupby("customer_id").size().reindex(ids, fill_value=0).astype(float)


def _sum(frame: pd.DataFrame, mask: pd.Series, column: str, ids: pd.Index) -> pd.Series:
    return frame[mask].groupby("customer_id")[column].sum().reindex(ids, fill_value=0.0)


def _ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a / b).where(b > 0)


def _transactions(tx: pd.DataFrame, ids: pd.Index, config: FeatureConfig) -> pd.DataFrame:
    buys = tx[tx["amount"] >= 0]
    refunds = tx[tx["amount"] < 0]
    everything = pd.Series(True, index=buys.index)
    out = pd.DataFrame(index=ids)
    by = buys.groupby("customer_id")
    out["days_since_last_tx"] = by["ago"].min().reindex(ids)
    out["tx_tenure_days"] = by["ago"].max().reindex(ids)
    out["tx_count_total"] = _count(buys, everything, ids)
    out["tx_amount_sum_total"] = _sum(buys, everything, "amount", ids)
    out["tx_avg_order_value"] = _ratio(out["tx_amount_sum_total"], out["tx_count_total"])
    days = buys[["customer_id", "ago"]].drop_duplicates().sort_values(["customer_id", "ago"])
    days["gap"] = days.groupby("customer_id")["ago"].diff()
    gaps = days.dropna(subset=["gap"]).groupby("customer_id")["gap"]
    out["tx_gap_mean_days"] = gaps.mean().reindex(ids)
    out["tx_gap_std_days"] = gaps.std(ddof=0).reindex(ids)
    out["tx_recency_gap_ratio"] = _ratio(out["days_since_last_tx"], out["tx_gap_mean_days"])
    for w in config.windows_days:
        out[f"tx_count_{w}d"] = _count(buys, _in(buys["ago"], w), ids)
        out[f"tx_amount_sum_{w}d"] = _sum(buys, _in(buys["ago"], w), "amount", ids)
    for t in config.trend_windows_days:
        for name, agg in (("count", _count), ("amount", _sum)):
            extra = ("amount",) if name == "amount" else ()
            now = agg(buys, _in(buys["ago"], t), *extra, ids)  # type: ignore[operator]
            before = agg(buys, _in(buys["ago"], t, skip=t), *extra, ids)  # type: ignore[operator]
            out[f"tx_{name}_trend_{t}d"] = _ratio(now, before)
    longest = max(config.windows_days)
    out[f"tx_refund_count_{longest}d"] = _count(refunds, _in(refunds["ago"], longest), ids)
    refunds = refunds.assign(refunded=-refunds["amount"])
    out[f"tx_refund_amount_{longest}d"] = _sum(
        refunds, _in(refunds["ago"], longest), "refunded", ids
    )
    return out


def _engagement(ev: pd.DataFrame, ids: pd.Index, config: FeatureConfig) -> pd.DataFrame:
    out = pd.DataFrame(index=ids)
    out["days_since_last_event"] = ev.groupby("customer_id")["ago"].min().reindex(ids)
    active = ev[["customer_id", "ago"]].drop_duplicates()
    for w in config.windows_days:
        out[f"ev_active_days_{w}d"] = _count(active, _in(active["ago"], w), ids)
    types = config.engagement.event_types
    counts: dict[tuple[str, int, int], pd.Series] = {}
    for t in types:
        rows = ev[ev["event_type"] == t]
        spans = {(w, 0) for w in config.windows_days} | {(w, 0) for w in config.trend_windows_days}
        spans |= {(w, w) for w in config.trend_windows_days}
        for w, skip in spans:
            counts[(t, w, skip)] = _count(rows, _in(rows["ago"], w, skip), ids)
        for w in config.windows_days:
            out[f"ev_{slug(t)}_count_{w}d"] = counts[(t, w, 0)]
        for w in config.trend_windows_days:
            out[f"ev_{slug(t)}_trend_{w}d"] = _ratio(counts[(t, w, 0)], counts[(t, w, w)])
    for w in config.trend_windows_days:
        now = sum(counts[(t, w, 0)] * config.engagement.weight(t) for t in types)
        before = sum(counts[(t, w, w)] * config.engagement.weight(t) for t in types)
        out[f"ev_engagement_score_{w}d"] = now
        out[f"ev_engagement_trend_{w}d"] = _ratio(now, before)
    return out


def _feedback(ev: pd.DataFrame, ids: pd.Index, config: FeatureConfig) -> pd.DataFrame:
    out = pd.DataFrame(index=ids)
    for survey in config.feedback.surveys:
        s = slug(survey)
        answers = ev[(ev["event_type"] == survey) & ev["value"].notna()]
        by = answers.groupby("customer_id")
        latest_ago = by["ago"].transform("min")
        latest = answers[answers["ago"] == latest_ago].groupby("customer_id")["value"].mean()
        out[f"{s}_last"] = latest.reindex(ids)
        out[f"{s}_mean"] = by["value"].mean().reindex(ids)
        out[f"{s}_count"] = by.size().reindex(ids, fill_value=0).astype(float)
        out[f"days_since_last_{s}"] = by["ago"].min().reindex(ids)
    tickets = ev[ev["event_type"] == config.feedback.ticket_event]
    for w in config.windows_days:
        out[f"ticket_count_{w}d"] = _count(tickets, _in(tickets["ago"], w), ids)
    out["days_since_last_ticket"] = tickets.groupby("customer_id")["ago"].min().reindex(ids)
    return out


def _profile(customers: pd.DataFrame, c: pd.Timestamp, ids: pd.Index) -> pd.DataFrame:
    known = customers.set_index("customer_id").reindex(ids)
    signup = known["signup_date"] if "signup_date" in known else pd.Series(pd.NaT, index=ids)
    visible = signup.isna() | (signup < c)
    out = pd.DataFrame(index=ids)
    for column in known.columns:
        if column != "signup_date" and known[column].dtype != np.dtype("datetime64[ns]"):
            out[column] = known[column].where(visible)
    out["tenure_days"] = ((c - signup.dt.floor("D")).dt.days.astype(float)).where(
        visible & signup.notna()
    )
    return out
