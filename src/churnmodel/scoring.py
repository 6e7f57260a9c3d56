"""Batch scoring as of a date, with every input customer accounted for.

Features are built by the very builders used in training, with the feature
and label settings saved in the model, so scoring can never drift from
training by re-implementation. Before anything is scored, the model's
expectations are checked against this run: the same feature and label
settings, every feature column present, the same dtypes. A category value
the model never saw is not an error; it is scored as missing and counted.

Customers that are not scored are listed with the reason, so that scored +
not scored always adds up to the customers found in the input tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from churnmodel.config import RunConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.discovery import DataFacts, resolve
from churnmodel.engine import collect
from churnmodel.errors import CutoffError, ModelError
from churnmodel.features.catalog import FeatureSpec
from churnmodel.features.matrix import build_feature_matrix
from churnmodel.pointintime import before, day_number, day_number_of, within_history_window
from churnmodel.registry.bundle import ModelBundle
from churnmodel.timeline import build_spine
from churnmodel.timeline.not_scored import (
    customer_facts,
    inactive_reason,
    not_scored_customers,
)


@dataclass(frozen=True)
class Scores:
    """Eligible customers with their features and churn probability, and who was left out."""

    as_of: dt.date
    frame: pd.DataFrame  # customer_id, cutoff, features..., churn_probability
    specs: tuple[FeatureSpec, ...]
    not_scored: pd.DataFrame  # customer_id, reason (the lapsed ones too)
    unseen_categories: dict[str, int]  # feature -> rows scored as missing
    winback: pd.DataFrame | None = None  # the lapsed ones, as `winback_customers`

    @property
    def input_customers(self) -> int:
        """Every distinct customer id in the input tables."""
        return len(self.frame) + len(self.not_scored)

    def not_scored_counts(self) -> dict[str, int]:
        """Customers not scored, per reason (alphabetical)."""
        counts = self.not_scored["reason"].value_counts().sort_index()
        return {str(reason): int(n) for reason, n in counts.items()}


def default_as_of(tables: ValidatedTables) -> dt.date:
    """The day after the last timestamp in the data."""
    return tables.observed_until.date()


def check_compatible(bundle: ModelBundle, config: RunConfig) -> None:
    """Refuse a run whose feature or label settings differ from the model's.

    Settings the config leaves open are decided as they were in training
    (from the data facts the model carries), so only what the user set
    differently counts; a model from before the facts were saved compares
    the settings the config names.
    """
    facts = bundle.training.get("data_facts")
    if facts is not None:
        config = resolve(config, DataFacts.from_dict(facts))
    differences = [
        f"{section}.{key}: model {trained!r}, config {current!r}"
        for section in ("features", "label")
        for key, trained, current in setting_differences(
            getattr(bundle.config, section).model_dump(mode="json"),
            getattr(config, section).model_dump(mode="json"),
        )
    ]
    if differences:
        raise ModelError(
            "the config does not match the model's training config ("
            + "; ".join(differences)
            + "); score with the settings the model was trained with, or retrain"
        )


def setting_differences(
    trained: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """(key, trained, current) for every setting set in `current` that differs.

    Settings left open (None) in `current` never differ: they were decided
    from the data the same way.
    """
    found = []
    for key, value in current.items():
        old = trained.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            found += setting_differences(old, value, f"{prefix}{key}.")
        elif value is not None and value != old:
            found.append((f"{prefix}{key}", old, value))
    return found


def score_customers(
    tables: ValidatedTables,
    bundle: ModelBundle,
    as_of: dt.date,
    progress: Callable[[str], None] = lambda _: None,
) -> Scores:
    """Features and calibrated churn probability for every customer eligible at `as_of`."""
    config = bundle.config
    spine = build_spine(tables, [as_of], config.label, with_labels=False)
    matrix = build_feature_matrix(
        tables, spine, config.features, bgnbd=bundle.bgnbd(), fit_bgnbd=False, progress=progress
    )
    progress("predicting")
    check_columns(bundle, matrix.specs)
    frame = matrix.frame
    unseen = _unseen_categories(bundle, frame)
    # concat, not a column insert: the matrix has one block per column (pandas would warn);
    # nobody eligible is no error here: the caller says so with the not-scored reasons
    predicted = bundle.predict(frame) if len(frame) else np.empty(0)
    probability = pd.Series(predicted, index=frame.index, name="churn_probability")
    frame = pd.concat([frame, probability], axis=1)
    scored = ibis.memtable(pa.table({"customer_id": pa.array(frame["customer_id"], pa.string())}))
    progress("customers not scored, and why")
    left_out = not_scored_customers(tables, as_of, config.label, scored)
    not_scored = collect(left_out)
    progress("win-back candidates")
    winback = collect(winback_customers(tables, as_of, config, left_out))
    return Scores(as_of, frame, matrix.specs, not_scored, unseen, winback)


def nothing_eligible(as_of: dt.date, not_scored: Mapping[str, int]) -> CutoffError:
    """The error for a date at which no input customer can be scored, with the reasons."""
    return CutoffError(
        f"no customer is eligible at {as_of}, so nothing was scored; of "
        f"{sum(not_scored.values()):,} input customers: "
        + "; ".join(f"{n:,} {r}" for r, n in not_scored.items())
    )


def check_columns(bundle: ModelBundle, built: tuple[FeatureSpec, ...]) -> None:
    """Refuse features the model needs but this data cannot build, or whose dtype changed."""
    dtypes = {s.name: s.dtype for s in built}
    missing = [s.name for s in bundle.specs if s.name not in dtypes]
    if missing:
        raise ModelError(
            f"feature matrix: the model needs {len(bundle.specs)} features; {len(missing)} "
            f"cannot be built from this data (e.g. {', '.join(missing[:3])}); check that the "
            "same tables and columns are present as in training"
        )
    changed = [
        f"{s.name} (model {s.dtype}, data {dtypes[s.name]})"
        for s in bundle.specs
        if dtypes[s.name] != s.dtype
    ]
    if changed:
        raise ModelError(f"feature matrix: dtype changed since training: {', '.join(changed)}")


def _unseen_categories(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, int]:
    """Rows per categorical feature whose value the model never saw (scored as missing)."""
    known = bundle.categories()
    counts = {}
    for name, categories in known.items():
        values = frame[name]
        unseen = values.notna() & ~values.astype("object").isin(categories)
        if unseen.any():
            counts[name] = int(unseen.sum())
    return counts


WINBACK_ACTION = "win-back offer"
WINBACK_COLUMNS = [
    "customer_id",
    "as_of",
    "last_activity",
    "days_since_last_activity",
    "value_last_12m",
    "value_lifetime",
    "purchases",
    "action",
]


def winback_customers(
    tables: ValidatedTables, as_of: dt.date, config: RunConfig, not_scored: ibis.Table
) -> ibis.Table:
    """The lapsed customers (not scored: inactive), best first for a win-back campaign.

    Each with the last activity before the scoring date, net spend in the
    year before it and in all, and purchases; ranked by the year's spend,
    then lifetime spend, then id. Without transactions the values are null.
    An expression, like `not_scored_customers`, so each engine computes it.
    """
    lapsed = not_scored.filter(not_scored.reason == inactive_reason(config.label))
    lapsed = lapsed.select("customer_id")
    facts = customer_facts(tables, config.label, as_of)
    out = lapsed.left_join(facts, "customer_id").select(lapsed.customer_id, facts.last_active)
    tx = tables.tables.get("transactions")
    if tx is not None:
        date = ibis.literal(as_of)
        earlier = before(tx.timestamp, date)
        year = within_history_window(tx.timestamp, date, 365)
        amount = tx.amount.cast("float64")
        spend = tx.group_by("customer_id").aggregate(
            value_last_12m=amount.sum(where=year),
            value_lifetime=amount.sum(where=earlier),
            purchases=tx.count(where=earlier),
        )
        out = out.left_join(spend, "customer_id").select(
            *out.columns, "value_last_12m", "value_lifetime", "purchases"
        )
    else:
        out = out.mutate(
            value_last_12m=ibis.null("float64"),
            value_lifetime=ibis.null("float64"),
            purchases=ibis.null("int64"),
        )
    out = out.mutate(
        as_of=ibis.literal(as_of),
        last_activity=out.last_active.date(),
        days_since_last_activity=day_number_of(as_of) - day_number(out.last_active),
        value_last_12m=out.value_last_12m.fill_null(0.0).round(2),
        value_lifetime=out.value_lifetime.fill_null(0.0).round(2),
        purchases=out.purchases.fill_null(0),
        action=ibis.literal(WINBACK_ACTION),
    )
    return out.select(*WINBACK_COLUMNS).order_by(
        [ibis.desc("value_last_12m"), ibis.desc("value_lifetime"), "customer_id"]
    )
