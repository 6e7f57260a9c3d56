"""Join the feature families onto the spine and hand a pandas frame to the model.

This is where results cross from the engine into pandas: one row per
(customer, cutoff), one column per feature, with stable names and dtypes
(float64 for numbers, category for attributes) whatever the engine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import ibis
import pandas as pd

from churnmodel.config import FeatureConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.engine import collect
from churnmodel.errors import ConfigError
from churnmodel.features.catalog import FeatureFamily, FeatureSpec
from churnmodel.features.engagement import engagement_features
from churnmodel.features.feedback import feedback_features
from churnmodel.features.profile import profile_features
from churnmodel.features.transactions import transaction_features

KEYS = ["customer_id", "cutoff"]


@dataclass(frozen=True)
class FeatureMatrix:
    """The model's input: keys, features (and label) plus what each feature means."""

    frame: pd.DataFrame
    specs: tuple[FeatureSpec, ...]

    @property
    def feature_names(self) -> list[str]:
        """Feature columns in matrix order."""
        return [s.name for s in self.specs]

    @property
    def has_labels(self) -> bool:
        """Whether the frame carries a label column."""
        return "label" in self.frame.columns


def feature_families(
    tables: ValidatedTables, spine: ibis.Table, config: FeatureConfig
) -> list[FeatureFamily]:
    """Every family the available tables support, in a fixed order."""
    families = []
    if (transactions := tables.get("transactions")) is not None:
        families.append(transaction_features(transactions, spine, config))
    if (events := tables.get("events")) is not None:
        families.append(engagement_features(events, spine, config))
        families.append(feedback_features(events, spine, config))
    if (customers := tables.get("customers")) is not None:
        families.append(profile_features(customers, spine, config.profile))
    return families


def feature_table(spine: ibis.Table, families: list[FeatureFamily]) -> ibis.Table:
    """Left-join every family from the spine, so each spine row keeps its place."""
    names = Counter(spec.name for family in families for spec in family.specs)
    clashes = sorted(name for name, n in names.items() if n > 1 or name in ("label", *KEYS))
    if clashes:
        raise ConfigError(
            f"feature names used twice (rename the attribute or event type): {clashes}"
        )
    table = spine
    for family in families:
        table = table.left_join(family.table, KEYS).select(
            *table.columns, *(spec.name for spec in family.specs)
        )
    return table


def build_feature_matrix(
    tables: ValidatedTables, spine: ibis.Table, config: FeatureConfig
) -> FeatureMatrix:
    """Compute all features for every spine row and collect them as pandas."""
    families = feature_families(tables, spine, config)
    specs = tuple(spec for family in families for spec in family.specs)
    frame = collect(feature_table(spine, families))
    return FeatureMatrix(to_stable_dtypes(frame, specs), specs)


def to_stable_dtypes(frame: pd.DataFrame, specs: tuple[FeatureSpec, ...]) -> pd.DataFrame:
    """Fix column order, dtypes and row order, so equal inputs give equal frames."""
    label = ["label"] if "label" in frame.columns else []
    out = frame[[*KEYS, *label, *(s.name for s in specs)]].copy()
    out["customer_id"] = out["customer_id"].astype("str")
    out["cutoff"] = pd.to_datetime(out["cutoff"]).astype("datetime64[ns]")
    if label:
        out["label"] = out["label"].astype("int8")
    for spec in specs:
        column = out[spec.name]
        if spec.dtype == "category":
            values = column.astype("object").where(column.notna(), None)
            categories = sorted(v for v in values.dropna().unique())
            out[spec.name] = pd.Categorical(values, categories=categories)
        else:
            out[spec.name] = column.astype("float64")
    return out.sort_values(KEYS, ignore_index=True)
