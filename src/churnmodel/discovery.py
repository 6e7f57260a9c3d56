"""Defaults found in the data: what a config that only names the tables means.

Real data does not look like the demo's: other event types, no survey
answers, a few months of history, numeric attributes. Every setting a
config leaves out (None) is decided here, in two steps:

* `gather_facts` asks the validated tables a few cheap questions (rows per
  table, the period covered, rows per event type, what each customers
  column holds) and returns them as plain data, `DataFacts`;
* `resolve` is a pure function of the config and the facts. It keeps every
  value the user set and fills in the rest.

The facts are saved with the model, so scoring resolves the user's config
against the training facts and compares like with like; a new event type
in next month's data never changes what the model is fed.

The rules, in order of the config sections:

* business: contractual when there is a churn table; activity: purchases
  when there are transactions, else any row; horizon: 90 days, or 60 or 30
  when the history cannot backtest a longer one (`timeline.cutoffs`);
* cutoffs: `timeline.cutoffs.default_schedule`;
* event types: every type with at least `min_share` of all events, the
  `max_types` most frequent, survey and ticket types aside; the rest are
  counted together as ``other``;
* surveys and tickets: only types that occur, surveys only with answers in
  `value`;
* customer attributes: numbers (also numbers written as text) are numeric
  features, unless every value is a distinct whole number (an id); dates
  become an age in days; text with at most `max_categories` distinct
  values is a category, unless every customer has a different one; other
  text (ids, e-mails, free text) is left out with a logged note.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir

from churnmodel._text import slug
from churnmodel.config import (
    EngagementConfig,
    FeatureConfig,
    FeedbackConfig,
    LabelConfig,
    ProfileConfig,
    RunConfig,
)
from churnmodel.data.validate import ValidatedTables
from churnmodel.engine import collect
from churnmodel.errors import ConfigError, DataContractError
from churnmodel.timeline.cutoffs import default_horizon, default_schedule

log = logging.getLogger(__name__)

Kind = Literal["text", "number", "date", "bool"]
KNOWN_CUSTOMER_COLUMNS = ("customer_id", "signup_date")
UNIQUE_IS_ID = 20
"""A column with a different value for each of more customers than this is an id."""


@dataclass(frozen=True)
class ColumnFacts:
    """What one customers column holds, enough to decide what feature it becomes."""

    kind: Kind
    values: int  # non-empty values
    distinct: int
    numbers: bool = False  # text whose every value reads as a number
    dates: bool = False  # text whose every value reads as a timestamp
    whole: bool = False  # numbers that are all whole


@dataclass(frozen=True)
class DataFacts:
    """The few facts about the data that the defaults depend on (JSON-ready)."""

    rows: dict[str, int]
    observed_from: dt.datetime
    observed_until: dt.datetime
    event_types: dict[str, int] = field(default_factory=dict)  # most frequent first
    answered_event_types: tuple[str, ...] = ()  # types with a numeric value in some row
    customer_columns: dict[str, ColumnFacts] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; ordered mappings as lists of pairs, which survive sorted keys."""
        return {
            "rows": self.rows,
            "observed_from": self.observed_from.isoformat(),
            "observed_until": self.observed_until.isoformat(),
            "event_types": [[t, n] for t, n in self.event_types.items()],
            "answered_event_types": list(self.answered_event_types),
            "customer_columns": [[c, asdict(f)] for c, f in self.customer_columns.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataFacts:
        """Inverse of `to_dict`."""
        return cls(
            rows=dict(data["rows"]),
            observed_from=dt.datetime.fromisoformat(data["observed_from"]),
            observed_until=dt.datetime.fromisoformat(data["observed_until"]),
            event_types={str(t): int(n) for t, n in data["event_types"]},
            answered_event_types=tuple(data["answered_event_types"]),
            customer_columns={str(c): ColumnFacts(**f) for c, f in data["customer_columns"]},
        )


def table_facts(tables: ValidatedTables) -> DataFacts:
    """What validation already knows (tables, rows, period), enough for the label settings."""
    return DataFacts(
        rows={name: report.rows for name, report in tables.reports.items()},
        observed_from=tables.observed_from,
        observed_until=tables.observed_until,
    )


def gather_facts(tables: ValidatedTables) -> DataFacts:
    """Rows per table, event types with their counts, and what each customers column holds."""
    events, customers = tables.get("events"), tables.get("customers")
    return dataclasses.replace(
        table_facts(tables),
        event_types=_event_type_counts(events) if events is not None else {},
        answered_event_types=_answered_types(events) if events is not None else (),
        customer_columns=_customer_columns(customers) if customers is not None else {},
    )


UNUSED_EVENT_SHARE = 0.5
"""Warn when more than this share of the events has a type the settings do not use."""


def event_type_findings(config: RunConfig, counts: Mapping[str, int]) -> list[str]:
    """Warnings: event types the settings name but the data lacks; mostly unused types.

    Matching is exact, as it must be; a near miss (case, spaces) is named as
    a "did you mean", so `Login` against `login` is said instead of silently
    changing the features.
    """
    if not counts:
        return []
    engagement, feedback = config.features.engagement, config.features.feedback
    named = {t: "features.engagement.event_types" for t in engagement.event_types or []}
    if feedback.ticket_event:
        named[feedback.ticket_event] = "features.feedback.ticket_event"
    findings = []
    for kind, setting in named.items():
        if kind in counts:
            continue
        near = [t for t in counts if t.strip().casefold() == kind.strip().casefold()]
        near = near or difflib.get_close_matches(kind, list(counts), n=1, cutoff=0.8)
        hint = f"; did you mean {near[0]!r} ({counts[near[0]]:,} rows)?" if near else ""
        findings.append(
            f"table 'events', column 'event_type': {kind!r} ({setting}) never occurs{hint}"
        )
    if engagement.event_types is not None and not engagement.group_other:
        used = {*named, *feedback.surveys}
        unused = {t: n for t, n in counts.items() if t not in used}
        share = sum(unused.values()) / sum(counts.values())
        if share > UNUSED_EVENT_SHARE:
            top = ", ".join(f"{t!r} ({n:,})" for t, n in list(unused.items())[:5])
            findings.append(
                f"table 'events', column 'event_type': {share:.0%} of the events have a type "
                f"no setting uses, e.g. {top}"
            )
    return findings


def event_type_counts(tables: ValidatedTables) -> dict[str, int]:
    """Rows per event type, most frequent first (empty without an events table)."""
    events = tables.get("events")
    return _event_type_counts(events) if events is not None else {}


def _event_type_counts(events: ibis.Table) -> dict[str, int]:
    counts = collect(events.group_by("event_type").aggregate(rows=ibis._.count()))
    ordered = counts.sort_values(["rows", "event_type"], ascending=[False, True])
    return {str(t): int(n) for t, n in zip(ordered["event_type"], ordered["rows"], strict=True)}


def _answered_types(events: ibis.Table) -> tuple[str, ...]:
    if "value" not in events.columns:
        return ()
    answered = events.filter(events.value.notnull()).select("event_type").distinct()
    return tuple(sorted(str(t) for t in collect(answered)["event_type"]))


def _customer_columns(customers: ibis.Table) -> dict[str, ColumnFacts]:
    """One aggregate query over the customers table: counts, distinct values, parse checks."""
    schema = customers.schema()
    columns = [c for c in customers.columns if c not in KNOWN_CUSTOMER_COLUMNS]
    if not columns:
        return {}
    measures: dict[str, ir.Value] = {}
    for c in columns:
        value = customers[c]
        measures[f"{c}__values"] = value.count()
        measures[f"{c}__distinct"] = value.nunique()
        if schema[c].is_numeric() and not schema[c].is_boolean():
            number = value.cast("float64")
            measures[f"{c}__fraction"] = (number.notnull() & (number != number.floor())).sum()
        elif schema[c].is_string():
            text = value.strip()
            number = text.try_cast("float64")
            measures[f"{c}__not_number"] = (value.notnull() & number.isnull()).sum()
            measures[f"{c}__fraction"] = (number.notnull() & (number != number.floor())).sum()
            stamp = text.try_cast("timestamp('UTC')")
            measures[f"{c}__not_date"] = (value.notnull() & stamp.isnull()).sum()
    row = collect(customers.aggregate(**measures)).iloc[0]
    return {c: _column_facts(schema[c], c, row) for c in columns}


def _column_facts(dtype: Any, column: str, row: Any) -> ColumnFacts:
    values, distinct = int(row[f"{column}__values"]), int(row[f"{column}__distinct"])
    whole = int(row.get(f"{column}__fraction", 0) or 0) == 0
    if dtype.is_boolean():
        return ColumnFacts("bool", values, distinct)
    if dtype.is_numeric():
        return ColumnFacts("number", values, distinct, whole=whole)
    if dtype.is_timestamp() or dtype.is_date():
        return ColumnFacts("date", values, distinct)
    if dtype.is_string():
        numbers = values > 0 and int(row[f"{column}__not_number"]) == 0
        dates = values > 0 and not numbers and int(row[f"{column}__not_date"]) == 0
        return ColumnFacts("text", values, distinct, numbers, dates, whole=numbers and whole)
    return ColumnFacts("text", 0, 0)  # a type with no meaning here (struct, binary): left out


def resolve(config: RunConfig, facts: DataFacts) -> RunConfig:
    """`config` with every setting it leaves open decided from `facts`.

    Pure and idempotent: the same config and facts give the same result,
    and a resolved config comes back unchanged.
    """
    label = resolve_label(config.label, facts)
    cutoffs = default_schedule(
        config.cutoffs, facts.observed_from, facts.observed_until, label.horizon
    )
    features = resolve_features(config.features, facts, label)
    return config.model_copy(update={"label": label, "cutoffs": cutoffs, "features": features})


def resolve_label(label: LabelConfig, facts: DataFacts) -> LabelConfig:
    """Business from the churn table, activity from the tables, horizon from the history."""
    business = label.business or ("contractual" if "churn" in facts.rows else "non_contractual")
    activity = label.activity or ("transactions" if "transactions" in facts.rows else "any")
    if activity == "transactions" and "transactions" not in facts.rows:
        raise ConfigError(
            "label.activity = 'transactions', but there is no transactions table; "
            "set label.activity = 'any' to count events as activity"
        )
    horizon = label.horizon_days or default_horizon(facts.observed_from, facts.observed_until)
    return label.model_copy(
        update={"business": business, "activity": activity, "horizon_days": horizon}
    )


def is_resolved(features: FeatureConfig) -> bool:
    """Whether nothing in `features` is left to decide from the data."""
    profile = features.profile
    return (
        features.engagement.event_types is not None
        and features.engagement.group_other is not None
        and None not in (profile.attributes, profile.numeric, profile.dates)
        and features.bgnbd is not None
        and (not features.bgnbd or features.bgnbd_horizon_days is not None)
    )


def resolve_features(
    features: FeatureConfig, facts: DataFacts, label: LabelConfig | None = None
) -> FeatureConfig:
    """Event types, surveys, tickets, attributes and the BG/NBD view the data supports.

    `label` (resolved) says whether the business is non-contractual, where
    BG/NBD applies; without it the label settings are decided from `facts`.
    """
    label = label or resolve_label(LabelConfig(), facts)
    feedback = _resolve_feedback(features.feedback, facts)
    engagement = _resolve_engagement(features.engagement, feedback, facts)
    profile = _resolve_profile(features.profile, facts)
    bgnbd = features.bgnbd
    if bgnbd is None:
        bgnbd = not label.contractual and "transactions" in facts.rows
    if bgnbd and "transactions" not in facts.rows:
        raise ConfigError("features.bgnbd = true needs a transactions table")
    return features.model_copy(
        update={
            "engagement": engagement,
            "feedback": feedback,
            "profile": profile,
            "bgnbd": bgnbd,
            "bgnbd_horizon_days": (features.bgnbd_horizon_days or label.horizon) if bgnbd else None,
        }
    )


def _resolve_feedback(feedback: FeedbackConfig, facts: DataFacts) -> FeedbackConfig:
    ticket = feedback.ticket_event
    if ticket is not None and ticket not in facts.event_types:
        log.info("no '%s' events: no support-ticket features", ticket)
        ticket = None
    surveys = [s for s in feedback.surveys if s in facts.answered_event_types]
    dropped = [s for s in feedback.surveys if s not in surveys]
    if dropped:
        log.info("no answers (event value) for survey type(s) %s: no survey features", dropped)
    return feedback.model_copy(update={"ticket_event": ticket, "surveys": surveys})


def _resolve_engagement(
    engagement: EngagementConfig, feedback: FeedbackConfig, facts: DataFacts
) -> EngagementConfig:
    reserved = set(feedback.event_types)
    total = sum(facts.event_types.values())
    types = engagement.event_types
    if types is None:
        frequent = [
            t
            for t, n in facts.event_types.items()
            if t not in reserved and n >= engagement.min_share * total
        ]
        # "Page View" and "page_view" would share a column: the rarer one counts as other
        named: dict[str, str] = {}
        for kind in frequent:
            named.setdefault(slug(kind), kind)
        types = list(named.values())[: engagement.max_types]
    # configured types that never occur are said by event_type_findings, with a did-you-mean
    rest = [t for t in facts.event_types if t not in reserved and t not in types]
    group_other = engagement.group_other if engagement.group_other is not None else bool(rest)
    unknown = sorted(set(engagement.weights) - set(types))
    if unknown:
        raise ConfigError(
            f"features.engagement.weights: event type(s) {unknown} are not among the event "
            f"types used ({', '.join(types) or 'none'})"
        )
    return engagement.model_copy(update={"event_types": types, "group_other": group_other})


def _resolve_profile(profile: ProfileConfig, facts: DataFacts) -> ProfileConfig:
    chosen = (profile.attributes, profile.numeric, profile.dates)
    if any(c is not None for c in chosen):  # the user picked: what they left out is not used
        for names in chosen:
            missing = [n for n in names or [] if n not in facts.customer_columns]
            if missing:
                raise DataContractError(
                    "customers",
                    missing[0],
                    f"the configured profile columns {missing} to exist; the table has "
                    f"{', '.join(facts.customer_columns) or 'only customer_id/signup_date'}",
                )
        return profile.model_copy(
            update={
                "attributes": profile.attributes or [],
                "numeric": profile.numeric or [],
                "dates": profile.dates or [],
            }
        )
    kinds: dict[str, list[str]] = {"attributes": [], "numeric": [], "dates": []}
    for name, column in facts.customer_columns.items():
        kind, note = attribute_kind(column, profile.max_categories)
        if kind is None:
            log.info("table 'customers', column '%s': not used as a feature (%s)", name, note)
        else:
            kinds[kind].append(name)
    return profile.model_copy(update=kinds)


def attribute_kind(
    column: ColumnFacts, max_categories: int
) -> tuple[Literal["attributes", "numeric", "dates"] | None, str]:
    """Which profile list a customers column joins, and a note saying why.

    >>> attribute_kind(ColumnFacts("text", 1000, 4), 50)
    ('attributes', 'text with 4 distinct values')
    >>> attribute_kind(ColumnFacts("number", 1000, 1000, whole=True), 50)[0] is None
    True
    """
    if column.values == 0:
        return None, "no values"
    if column.kind == "date" or column.dates:
        return "dates", "dates: age in days at the cutoff"
    if column.kind == "number" or column.numbers:
        if column.whole and column.distinct == column.values and column.values > UNIQUE_IS_ID:
            return None, "a distinct whole number per customer: an id"
        return "numeric", "numbers"
    if column.kind == "bool" or column.distinct <= 2:
        return "attributes", f"{column.distinct} distinct values"
    if column.distinct > max_categories:
        return None, f"text with {column.distinct:,} distinct values (an id or free text)"
    if column.distinct == column.values and column.values > UNIQUE_IS_ID:
        return None, "a different text for every customer: an id"
    return "attributes", f"text with {column.distinct} distinct values"
