"""Plain-language reasons from per-row feature contributions, with the customer's own numbers.

LightGBM's `pred_contrib` (TreeSHAP) says how much each feature pushed one
customer's churn log-odds up. The features that pushed hardest become
sentences through rules (feature pattern -> text, action), e.g.
``days_since_last_tx`` -> "No purchase for 94 days; usually buys every 21
days". A rule is skipped when a number it needs is missing for the customer,
so a precise rule can come first and a plainer one after it; every feature
ends with a generic fallback built from its catalogue description.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnmodel.config import ReasonRule
from churnmodel.features.catalog import FeatureSpec

WIN_BACK = "loyalty or win-back offer"
PERSONAL_CALL = "personal call from success manager"
SUPPORT = "support follow-up"
ONBOARDING = "onboarding help"
FEEDBACK = "feedback request"


def _rule(feature: str, text: str, action: str, below: float | None = None) -> ReasonRule:
    return ReasonRule(feature=feature, text=text, action=action, below=below)


DEFAULT_RULES: tuple[ReasonRule, ...] = (
    _rule(
        "days_since_last_tx",
        "No purchase for {value:.0f} days; usually buys every {tx_gap_mean_days:.0f} days",
        WIN_BACK,
    ),
    _rule("days_since_last_tx", "No purchase for {value:.0f} days", WIN_BACK),
    _rule("days_since_last_tx", "No purchase on record", WIN_BACK),
    _rule(
        "tx_recency_gap_ratio",
        "Last purchase {days_since_last_tx:.0f} days ago, {value:.1f}x the usual gap of "
        "{tx_gap_mean_days:.0f} days",
        WIN_BACK,
    ),
    _rule(
        r"tx_count_trend_(?P<w>\d+)d",
        "Purchases down {pct_down:.0f} % vs the previous {w} days",
        WIN_BACK,
        below=1,
    ),
    _rule(
        r"tx_amount_trend_(?P<w>\d+)d",
        "Spending down {pct_down:.0f} % vs the previous {w} days",
        WIN_BACK,
        below=1,
    ),
    _rule(r"tx_count_(?P<w>\d+)d", "{value:.0f} purchases in the last {w} days", WIN_BACK),
    _rule(r"tx_amount_sum_(?P<w>\d+)d", "Spent {value:,.2f} in the last {w} days", WIN_BACK),
    _rule("tx_count_total", "{value:.0f} purchases in all", WIN_BACK),
    _rule("tx_avg_order_value", "Average order of {value:,.2f}", WIN_BACK),
    _rule("tx_gap_mean_days", "Buys every {value:.0f} days on average", WIN_BACK),
    _rule("tx_gap_std_days", "Irregular buying: gaps vary by {value:.0f} days", WIN_BACK),
    _rule(r"tx_refund_count_(?P<w>\d+)d", "{value:.0f} refunds in the last {w} days", SUPPORT),
    _rule(r"tx_refund_amount_(?P<w>\d+)d", "Refunds of {value:,.2f} in the last {w} days", SUPPORT),
    _rule("tx_tenure_days", "First purchase {value:.0f} days ago", WIN_BACK),
    _rule("days_since_last_event", "Not seen in the product for {value:.0f} days", PERSONAL_CALL),
    _rule("days_since_last_event", "No product use on record", ONBOARDING),
    _rule(
        r"ev_engagement_trend_(?P<w>\d+)d",
        "Product use down {pct_down:.0f} % vs the previous {w} days",
        PERSONAL_CALL,
        below=1,
    ),
    _rule(
        r"ev_engagement_score_(?P<w>\d+)d",
        "Engagement score of {value:.0f} over the last {w} days",
        PERSONAL_CALL,
    ),
    _rule(
        r"ev_(?P<kind>\w+?)_trend_(?P<w>\d+)d",
        "{kind_text} down {pct_down:.0f} % vs the previous {w} days",
        PERSONAL_CALL,
        below=1,
    ),
    _rule(
        r"ev_active_days_(?P<w>\d+)d", "Active on {value:.0f} of the last {w} days", PERSONAL_CALL
    ),
    _rule(
        r"ev_(?P<kind>\w+?)_count_(?P<w>\d+)d",
        "{value:.0f} {kind_text} events in the last {w} days",
        PERSONAL_CALL,
    ),
    _rule("nps_last", "Gave NPS {value:.0f} {days_since_last_nps:.0f} days ago", PERSONAL_CALL),
    _rule("csat_last", "Rated support {value:.0f}/5 {days_since_last_csat:.0f} days ago", SUPPORT),
    _rule("ces_last", "Effort score {value:.0f}/7 {days_since_last_ces:.0f} days ago", SUPPORT),
    _rule(r"(?P<kind>nps|csat|ces)_mean", "Average {kind_upper} answer of {value:.1f}", SUPPORT),
    _rule(r"(?P<kind>nps|csat|ces)_count", "{value:.0f} {kind_upper} answers so far", FEEDBACK),
    _rule(
        r"days_since_last_(?P<kind>nps|csat|ces)",
        "Last {kind_upper} answer {value:.0f} days ago",
        FEEDBACK,
    ),
    _rule(r"ticket_count_(?P<w>\d+)d", "{value:.0f} support tickets in the last {w} days", SUPPORT),
    _rule("days_since_last_ticket", "Last support ticket {value:.0f} days ago", SUPPORT),
    _rule("tenure_days", "New customer: joined {value:.0f} days ago", ONBOARDING, below=90),
    _rule("tenure_days", "Customer for {value:.0f} days", PERSONAL_CALL),
)
"""Built-in rules, after any configured in `outreach.reasons`; first applicable wins."""


@dataclass(frozen=True)
class Explanations:
    """Up to `n` reasons per row (empty text when fewer features pushed risk up)."""

    reasons: list[list[str]]
    actions: list[str]


def explain(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    specs: Sequence[FeatureSpec],
    rules: Sequence[ReasonRule] = (),
    n: int = 3,
) -> Explanations:
    """The `n` features that raised each row's churn risk most, as sentences and an action."""
    compiled = [(re.compile(r.feature), r) for r in (*rules, *DEFAULT_RULES)]
    descriptions = {s.name: s.description for s in specs}
    values = contributions.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :n]
    names = list(contributions.columns)
    rows: list[dict[str, object]] = features.to_dict(orient="records")  # type: ignore[assignment]
    reasons, actions = [], []
    for i, row in enumerate(rows):
        texts, first_action = [], ""
        for j in order[i]:
            if values[i, j] <= 0:
                break
            name = names[j]
            text, action = _render(name, row, compiled, descriptions.get(name, name))
            texts.append(text)
            first_action = first_action or action
        reasons.append(texts + [""] * (n - len(texts)))
        actions.append(first_action)
    return Explanations(reasons, actions)


def _render(
    name: str,
    row: Mapping[str, object],
    rules: Sequence[tuple[re.Pattern[str], ReasonRule]],
    description: str,
) -> tuple[str, str]:
    value = row.get(name)
    for pattern, rule in rules:
        match = pattern.fullmatch(name)
        if match is None or not _below(value, rule.below):
            continue
        text = _format(rule.text, _context(row, value, match.groupdict()))
        if text is not None:
            return text, rule.action
    return _fallback(description, value), PERSONAL_CALL


def _context(
    row: Mapping[str, object], value: object, groups: Mapping[str, str]
) -> dict[str, object]:
    context: dict[str, object] = {**row, **groups, "value": value}
    if _number(value) is not None:
        context["pct_down"] = max(0.0, (1 - float(value)) * 100)  # type: ignore[arg-type]
    if "kind" in groups:
        context["kind_text"] = groups["kind"].replace("_", " ").capitalize()
        context["kind_upper"] = groups["kind"].upper()
    return context


def _format(template: str, context: Mapping[str, object]) -> str | None:
    """The filled template, or None when a field it uses is missing or not a number."""
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        item = context.get(field)
        if item is None or (isinstance(item, float) and math.isnan(item)):
            return None
    try:
        return template.format(**context)
    except (ValueError, TypeError, KeyError):
        return None


def _fallback(description: str, value: object) -> str:
    number = _number(value)
    if number is not None:
        return f"{description}: {number:,.4g}"
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return f"{description}: none on record" if missing else f"{description}: {value}"


def _below(value: object, bound: float | None) -> bool:
    number = _number(value)
    return bound is None or (number is not None and number < bound)


def _number(value: object) -> float | None:
    if isinstance(value, int | float | np.floating) and not math.isnan(float(value)):
        return float(value)
    return None
