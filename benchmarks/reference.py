"""A straightforward pandas implementation of every feature: one groupby loop per cutoff.

It exists for two reasons: the benchmark measures the Ibis pipeline against
it, and the tests check that both give the same numbers on simulated data,
so it is written to be obviously right rather than fast. Same definitions as
`churnmodel.features` (day-level windows ``[c - w, c)``, gaps between
distinct purchase days, latest answer = mean of the latest answer day, rates
per 30 observed days).

`config` must be resolved (`churnmodel.discovery`): the event types, surveys
and customer attributes are read from it, never guessed here. The BG/NBD
features (a fitted model, `churnmodel.features.bgnbd`) are not computed.
"""

from __future__ import annotations

import itertools

import pandas as pd

from churnmodel.config import FeatureConfig
from churnmodel.features.catalog import slug

MAX_RATIO_TYPES = 6
"""Ratios between event types are built for the first this many named types."""


def reference_features(
    tables: dict[str, pd.DataFrame],
    spine: pd.DataFrame,
    config: FeatureConfig,
    data_start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Features for every (customer_id, cutoff) of `spine`; timestamps are naive UTC.

    `data_start` is the first calendar day of the data (by default the day of
    the earliest transaction or event): windows reaching further back are
    only observed from there, which the per-30-day rates divide by.
    """
    start = data_start if data_start is not None else first_day(tables)
    start = pd.Timestamp(start).floor("D")
    parts = []
    for cutoff, rows in spine.groupby("cutoff", sort=True):
        ids = pd.Index(rows["customer_id"].unique(), name="customer_id")
        c = pd.Timestamp(cutoff)
        seen = (c - start).days

        def observed(w: int, seen: int = seen) -> float:
            return float(min(w, seen))

        blocks = [pd.DataFrame(index=ids)]
        if "transactions" in tables:
            tx = _history(tables["transactions"], c)
            blocks.append(_transactions(tx, ids, config, observed))
        if "events" in tables:
            events = tables["events"]
            history = _history(events, c)
            blocks.append(_engagement(history, ids, config, observed))
            blocks.append(_feedback(history, ids, config, has_value="value" in events))
        if "customers" in tables:
            blocks.append(_profile(tables["customers"], c, ids, config))
        block = pd.concat(blocks, axis=1).reset_index()
        block.insert(1, "cutoff", c)
        parts.append(block)
    return pd.concat(parts, ignore_index=True)


def first_day(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The calendar day of the earliest timestamp over transactions and events."""
    firsts = [tables[n]["timestamp"].min() for n in ("transactions", "events") if n in tables]
    return pd.Timestamp(min(f for f in firsts if pd.notna(f))).floor("D")


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
    """a / b, NaN where b is 0, negative or NaN."""
    return (a / b).where(b > 0)


def _rate(count: pd.Series, observed_days: float) -> pd.Series:
    """Per 30 days over the observed days."""
    return _ratio(count * 30, pd.Series(observed_days, index=count.index))


def _per_month(total: pd.Series, since: pd.Series) -> pd.Series:
    """Per 30 days since the first day (at least 30 days); NaN without a first day."""
    return _ratio(total * 30, since.clip(lower=30)).where(since.notna())


def _vs_usual(recent: pd.Series, total: pd.Series, since: pd.Series, t: int) -> pd.Series:
    """Recent daily rate over the daily rate before the last t days (needs 2t days of history)."""
    earlier = _ratio(total - recent, since - t)
    return _ratio(recent / t, earlier).where(since - t >= t)


def _transactions(tx: pd.DataFrame, ids: pd.Index, config: FeatureConfig, observed) -> pd.DataFrame:
    buys = tx[tx["amount"] >= 0]
    refunds = tx[tx["amount"] < 0]
    everything = pd.Series(True, index=buys.index)
    windows, trends = sorted(config.windows_days), sorted(config.trend_windows_days)
    out: dict[str, pd.Series] = {}
    by = buys.groupby("customer_id")
    out["days_since_last_tx"] = by["ago"].min().reindex(ids)
    tenure = by["ago"].max().reindex(ids).astype(float)
    out["tx_tenure_days"] = tenure
    out["tx_count_total"] = _count(buys, everything, ids)
    days = buys[["customer_id", "ago"]].drop_duplicates().sort_values(["customer_id", "ago"])
    out["tx_purchase_days_total"] = days.groupby("customer_id").size().reindex(ids, fill_value=0)
    out["tx_amount_sum_total"] = _sum(buys, everything, "amount", ids)
    out["tx_avg_order_value"] = _ratio(out["tx_amount_sum_total"], out["tx_count_total"])
    days["gap"] = days.groupby("customer_id")["ago"].diff()
    gaps = days.dropna(subset=["gap"]).groupby("customer_id")["gap"]
    out["tx_gap_mean_days"] = gaps.mean().reindex(ids)
    out["tx_gap_std_days"] = gaps.std(ddof=0).reindex(ids)
    out["tx_recency_gap_ratio"] = _ratio(out["days_since_last_tx"], out["tx_gap_mean_days"])
    for w in windows:
        out[f"tx_count_{w}d"] = _count(buys, _in(buys["ago"], w), ids)
        out[f"tx_amount_sum_{w}d"] = _sum(buys, _in(buys["ago"], w), "amount", ids)
    for w in windows[1:]:
        out[f"tx_rate_{w}d"] = _rate(out[f"tx_count_{w}d"], observed(w))
        out[f"tx_amount_rate_{w}d"] = _rate(out[f"tx_amount_sum_{w}d"], observed(w))
    out["tx_per_month"] = _per_month(out["tx_count_total"], tenure)
    longest_trend = trends[-1]
    recent = _count(buys, _in(buys["ago"], longest_trend), ids)
    out[f"tx_count_vs_usual_{longest_trend}d"] = _vs_usual(
        recent, out["tx_count_total"], tenure, longest_trend
    )
    for t in trends:
        for name, agg in (("count", _count), ("amount", _sum)):
            extra = ("amount",) if name == "amount" else ()
            now = agg(buys, _in(buys["ago"], t), *extra, ids)  # type: ignore[operator]
            before = agg(buys, _in(buys["ago"], t, skip=t), *extra, ids)  # type: ignore[operator]
            out[f"tx_{name}_trend_{t}d"] = _ratio(now, before)
    longest = windows[-1]
    out[f"tx_refund_count_{longest}d"] = _count(refunds, _in(refunds["ago"], longest), ids)
    refunds = refunds.assign(refunded=-refunds["amount"])
    out[f"tx_refund_amount_{longest}d"] = _sum(
        refunds, _in(refunds["ago"], longest), "refunded", ids
    )
    return pd.DataFrame(out, index=ids)


def event_buckets(config: FeatureConfig) -> list[tuple[str, list[str] | None]]:
    """(column name, event types) per bucket; None stands for every other type.

    The named types in config order, then `other` (`other_types` when a named
    type is itself called "other") for events that are neither a named type
    nor a survey or ticket type, when `group_other` is on.
    """
    named = list(config.engagement.types)
    buckets: list[tuple[str, list[str] | None]] = [(slug(t), [t]) for t in named]
    if config.engagement.group_other:
        name = "other_types" if "other" in {slug(t) for t in named} else "other"
        buckets.append((name, None))
    return buckets


def _engagement(ev: pd.DataFrame, ids: pd.Index, config: FeatureConfig, observed) -> pd.DataFrame:
    windows, trends = sorted(config.windows_days), sorted(config.trend_windows_days)
    longest_trend, shortest_trend = trends[-1], trends[0]
    out: dict[str, pd.Series] = {}
    out["days_since_last_event"] = ev.groupby("customer_id")["ago"].min().reindex(ids)
    since = ev.groupby("customer_id")["ago"].max().reindex(ids).astype(float)
    active = ev[["customer_id", "ago", "day"]].drop_duplicates()
    for w in windows:
        out[f"ev_active_days_{w}d"] = _count(active, _in(active["ago"], w), ids)
    # A Monday-starting week counts in a window when its first active day lies in the window.
    # Events on or after the cutoff cannot move a week's first day before it, so the
    # history suffices.
    weeks = active.assign(week=active["day"] - pd.to_timedelta(active["day"].dt.day_of_week, "D"))
    firsts = weeks.groupby(["customer_id", "week"], as_index=False)["ago"].max()
    for w in windows:
        weeks_in = _count(firsts, _in(firsts["ago"], w), ids)
        share = _ratio(weeks_in * 7, pd.Series(observed(w), index=ids))
        out[f"ev_active_week_share_{w}d"] = share.clip(upper=1)
    everything = {t: _count(ev, _in(ev["ago"], t), ids) for t in trends}  # events of any type
    active_days = _count(active, _in(active["ago"], longest_trend), ids)

    named = list(config.engagement.types)
    reserved = {*named, *config.feedback.event_types}
    counts: dict[tuple[str, int, int], pd.Series] = {}
    for s, types in event_buckets(config):
        if types is None:
            rows = ev[~ev["event_type"].isin(list(reserved))]
        else:
            rows = ev[ev["event_type"].isin(types)]
        spans = {(w, 0) for w in windows} | {(w, 0) for w in trends}
        spans |= {(w, w) for w in trends}
        for w, skip in spans:
            counts[(s, w, skip)] = _count(rows, _in(rows["ago"], w, skip), ids)
        for w in windows:
            out[f"ev_{s}_count_{w}d"] = counts[(s, w, 0)]
        for w in windows[1:]:
            out[f"ev_{s}_rate_{w}d"] = _rate(counts[(s, w, 0)], observed(w))
        for w in trends:
            out[f"ev_{s}_trend_{w}d"] = _ratio(counts[(s, w, 0)], counts[(s, w, w)])
            out[f"ev_{s}_share_{w}d"] = _ratio(counts[(s, w, 0)], everything[w])
        out[f"ev_{s}_per_active_day_{longest_trend}d"] = _ratio(
            counts[(s, longest_trend, 0)], active_days
        )
        total = rows.groupby("customer_id").size().reindex(ids, fill_value=0).astype(float)
        out[f"ev_{s}_per_month"] = _per_month(total, since)
        out[f"ev_{s}_vs_usual_{shortest_trend}d"] = _vs_usual(
            counts[(s, shortest_trend, 0)], total, since, shortest_trend
        )
    for a, b in itertools.combinations(named[:MAX_RATIO_TYPES], 2):
        out[f"ev_{slug(b)}_per_{slug(a)}_{shortest_trend}d"] = _ratio(
            counts[(slug(b), shortest_trend, 0)], counts[(slug(a), shortest_trend, 0)]
        )
    for w in trends:
        now = before = pd.Series(0.0, index=ids)
        for t in named:
            now = now + counts[(slug(t), w, 0)] * config.engagement.weight(t)
            before = before + counts[(slug(t), w, w)] * config.engagement.weight(t)
        out[f"ev_engagement_score_{w}d"] = now
        out[f"ev_engagement_trend_{w}d"] = _ratio(now, before)
    return pd.DataFrame(out, index=ids)


def _feedback(
    ev: pd.DataFrame, ids: pd.Index, config: FeatureConfig, has_value: bool
) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for survey in config.feedback.surveys if has_value else []:
        s = slug(survey)
        answers = ev[(ev["event_type"] == survey) & ev["value"].notna()]
        by = answers.groupby("customer_id")
        latest_ago = by["ago"].transform("min")
        latest = answers[answers["ago"] == latest_ago].groupby("customer_id")["value"].mean()
        out[f"{s}_last"] = latest.reindex(ids)
        out[f"{s}_mean"] = by["value"].mean().reindex(ids)
        out[f"{s}_count"] = by.size().reindex(ids, fill_value=0).astype(float)
        out[f"days_since_last_{s}"] = by["ago"].min().reindex(ids)
    if config.feedback.ticket_event is not None:
        tickets = ev[ev["event_type"] == config.feedback.ticket_event]
        for w in sorted(config.windows_days):
            out[f"ticket_count_{w}d"] = _count(tickets, _in(tickets["ago"], w), ids)
        out["days_since_last_ticket"] = tickets.groupby("customer_id")["ago"].min().reindex(ids)
    return pd.DataFrame(out, index=ids)


def _profile(
    customers: pd.DataFrame, c: pd.Timestamp, ids: pd.Index, config: FeatureConfig
) -> pd.DataFrame:
    profile = config.profile
    known = customers.set_index("customer_id").reindex(ids)
    signup = known["signup_date"] if "signup_date" in known else pd.Series(pd.NaT, index=ids)
    visible = signup.isna() | (signup < c)
    out: dict[str, pd.Series] = {}
    for column in profile.attributes or []:
        out[column] = known[column].where(visible)
    for column in profile.numeric or []:
        out[column] = _numbers(known[column]).where(visible)
    for column in profile.dates or []:
        when = _dates(known[column])
        age = (c - when.dt.floor("D")).dt.days.astype(float)
        out[f"{column}_age_days"] = age.where(visible & (when < c))
    if "signup_date" in known:
        out["tenure_days"] = ((c - signup.dt.floor("D")).dt.days.astype(float)).where(
            visible & signup.notna()
        )
    return pd.DataFrame(out, index=ids)


def _numbers(values: pd.Series) -> pd.Series:
    """Floats; text is read as a number, and text that is not one is NaN."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    text = values.astype("object").where(values.notna())
    return pd.to_numeric(
        text.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce"
    )


def _dates(values: pd.Series) -> pd.Series:
    """Naive UTC timestamps; text is parsed, text that is not a date is NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    parsed = pd.to_datetime(values.astype("object"), errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None)
