"""`churnmodel init`: find the tables in a folder, show what the data holds, write a starter config.

A new user has files, not a config. This module finds the canonical tables
among them by name (``orders.parquet`` is the transactions table), guesses
which of their columns are the customer id, the timestamp, the amount and
the event type, and then runs the same discovery a config naming only the
tables would (`churnmodel.discovery`). The result is printed and written as
a `churn.toml` in which every decision is spelled out, so the user reads
and edits choices instead of discovering defaults by surprise.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churnmodel.config import RunConfig, parse_config
from churnmodel.data.contract import CONTRACT
from churnmodel.data.load import load_tables
from churnmodel.data.validate import validate_tables
from churnmodel.discovery import DataFacts, attribute_kind, gather_facts, resolve
from churnmodel.engine import collect, connect
from churnmodel.errors import ConfigError, DataContractError
from churnmodel.timeline import build_spine, training_cutoffs

TABLE_NAMES = {
    "customers": ("customers", "customer", "accounts", "account", "users", "clients", "members"),
    "transactions": (
        "transactions", "transaction", "orders", "order", "purchases", "sales", "invoices",
        "payments",
    ),
    "events": ("events", "event", "activity", "activities", "usage", "interactions", "logs"),
    "churn": ("churn", "churns", "cancellations", "cancellation", "cancelled", "churned"),
}  # fmt: skip
COLUMN_NAMES = {
    "customer_id": (
        "customer_id", "customer", "customerid", "cust_id", "user_id", "userid", "account_id",
        "accountid", "client_id", "member_id", "id",
    ),
    "timestamp": (
        "timestamp", "ts", "time", "datetime", "date", "event_time", "event_ts", "created_at",
        "occurred_at", "order_date", "order_ts", "order_time", "purchase_date", "invoice_date",
    ),
    "amount": (
        "amount", "total", "revenue", "price", "value", "sales", "order_total", "net_amount",
        "gross_amount", "amount_paid",
    ),
    "event_type": ("event_type", "event", "type", "action", "event_name", "name", "activity"),
    "value": ("value", "score", "rating", "answer"),
    "churn_date": (
        "churn_date", "churned_at", "cancel_date", "cancelled_at", "canceled_at", "end_date",
        "ended_at", "date",
    ),
    "signup_date": (
        "signup_date", "signup", "signed_up_at", "created_at", "start_date", "joined",
        "joined_at", "registration_date", "first_seen",
    ),
}  # fmt: skip
SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
EXAMPLE_CUTOFFS = 4


@dataclass(frozen=True)
class Starter:
    """What `init` found: the tables, the resolved config and the facts behind it."""

    sources: dict[str, Path]
    columns: dict[str, dict[str, str]]  # table -> canonical column -> the file's column
    config: RunConfig  # resolved
    facts: DataFacts
    cutoffs: list[dt.date]
    churn_rates: pd.DataFrame  # cutoff, customers, churn_rate at a few cutoffs


def find_tables(folder: Path, explicit: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """The canonical tables among the files and folders in `folder`, by name.

    `explicit` paths (``--transactions orders.csv``) win over what the folder holds.
    """
    found: dict[str, Path] = {}
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    for name, synonyms in TABLE_NAMES.items():
        for entry in entries:
            stem = entry.name.lower()
            for suffix in SUFFIXES:
                stem = stem.removesuffix(suffix)
            if _normal(stem) in synonyms and (
                entry.is_dir() or entry.name.lower().endswith(SUFFIXES)
            ):
                found.setdefault(name, entry)
    found.update({name: Path(path) for name, path in (explicit or {}).items()})
    if "transactions" not in found and "events" not in found:
        listed = ", ".join(e.name for e in entries) or "nothing"
        raise ConfigError(
            f"{folder}: found no transactions or events table (files named like "
            f"{', '.join(TABLE_NAMES['transactions'][:3])} or "
            f"{', '.join(TABLE_NAMES['events'][:3])}, .parquet or .csv); the folder holds {listed}"
        )
    return found


def guess_columns(table: str, columns: list[str]) -> dict[str, str]:
    """Canonical column -> the table's column, for every contract column found by name."""
    normal = {_normal(c): c for c in columns}
    spec = CONTRACT[table]
    mapping: dict[str, str] = {}
    for canonical in spec.columns:
        match = next((normal[n] for n in COLUMN_NAMES.get(canonical, ()) if n in normal), None)
        if match is not None and match not in mapping.values():
            mapping[canonical] = match
    missing = [c for c in spec.required if c not in mapping]
    if missing:
        raise DataContractError(
            table,
            missing[0],
            f"a column for {', '.join(missing)} (tried {', '.join(COLUMN_NAMES[missing[0]][:6])}, "
            f"...); the table has {', '.join(columns)}. Name it in [data.columns.{table}]",
        )
    return {canonical: column for canonical, column in mapping.items() if canonical != column}


def _normal(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def inspect_data(folder: Path, explicit: Mapping[str, Path] | None = None) -> Starter:
    """Find the tables, map their columns, validate them and decide every default."""
    sources = find_tables(folder, explicit)
    con = connect()
    raw = load_tables(con, sources)
    columns = {name: guess_columns(name, list(table.columns)) for name, table in raw.items()}
    config = parse_config(
        {"data": {**{n: str(p) for n, p in sources.items()}, "columns": columns}}, str(folder)
    )
    tables = validate_tables(load_tables(con, sources, columns))
    facts = gather_facts(tables)
    config = resolve(config, facts)
    cutoffs = training_cutoffs(config.cutoffs, tables.observed_until, config.label.horizon)
    shown = cutoffs[:: max(1, len(cutoffs) // EXAMPLE_CUTOFFS)][-EXAMPLE_CUTOFFS:]
    spine = build_spine(tables, shown, config.label)
    rates = collect(
        spine.group_by("cutoff").aggregate(customers=spine.count(), churn_rate=spine.label.mean())
    ).sort_values("cutoff", ignore_index=True)
    return Starter(sources, columns, config, facts, cutoffs, rates)


def attribute_notes(starter: Starter) -> dict[str, str]:
    """Each customers column and what it becomes (or why it is left out)."""
    limit = starter.config.features.profile.max_categories
    notes = {}
    for name, column in starter.facts.customer_columns.items():
        kind, note = attribute_kind(column, limit)
        notes[name] = f"{kind or 'left out'}: {note}"
    return notes


def render_toml(starter: Starter, where: Path) -> str:
    """The starter churn.toml: every decision written out, with a comment on why."""
    config, facts = starter.config, starter.facts
    label, cutoffs, features = config.label, config.cutoffs, config.features
    engagement, profile = features.engagement, features.profile
    total_events = sum(facts.event_types.values()) or 1
    lines = [
        "# Written by `churnmodel init`: every setting below was decided from the data.",
        "# Edit what you disagree with; delete a line to let churnmodel decide it again.",
        "",
        "[data]",
        *(f"{name} = {_value(_relative(path, where))}" for name, path in starter.sources.items()),
    ]
    for table, mapping in starter.columns.items():
        if mapping:
            lines += ["", f"[data.columns.{table}]  # canonical column = your column"]
            lines += [f"{canonical} = {_value(column)}" for canonical, column in mapping.items()]
    lines += [
        "",
        "[label]",
        f"business = {_value(label.business)}"
        + ("  # there is a churn table" if label.contractual else "  # no churn table"),
        f"horizon_days = {label.horizon_days}  # churn = leaving within this many days of a cutoff",
        f"activity = {_value(label.activity)}",
        f"active_window_days = {label.active_window_days}",
        "",
        "[cutoffs]",
        f"every = {_value(cutoffs.every)}  # {len(starter.cutoffs)} cutoffs, "
        f"{starter.cutoffs[0]} to {starter.cutoffs[-1]}",
        f"first = {cutoffs.first}",
        "",
        "[features]",
        f"windows_days = {features.windows_days}",
        f"trend_windows_days = {features.trend_windows_days}",
        f"bgnbd = {_value(features.bgnbd)}  # BG/NBD P(alive): for non-contractual purchases",
        "",
        "[features.engagement]",
        "# event types with features of their own (share of all events):",
        *(f"#   {t}: {facts.event_types.get(t, 0) / total_events:.1%}" for t in engagement.types),
        f"event_types = {_value(engagement.types)}",
        f"group_other = {_value(engagement.group_other)}  # count every other type as 'other'",
        "",
        "[features.feedback]",
        f"ticket_event = {_value(features.feedback.ticket_event)}"
        if features.feedback.ticket_event
        else '# ticket_event = "support_ticket"  # no such events in the data: no ticket features',
        f"surveys = {_value(features.feedback.surveys)}  # survey types with answers in `value`",
        "",
        "[features.profile]",
        *(f"# {name}: {note}" for name, note in attribute_notes(starter).items()),
        f"attributes = {_value(profile.attributes or [])}",
        f"numeric = {_value(profile.numeric or [])}",
        f"dates = {_value(profile.dates or [])}",
        "",
    ]
    text = "\n".join(lines)
    parse_config(tomllib.loads(text), "the starter config")  # what we write must load
    return text


def _relative(path: Path, where: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(where.resolve().parent))
    except ValueError:
        return str(Path(path).resolve())


def _value(value: object) -> str:
    """A TOML literal for the few kinds of value a config holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)
