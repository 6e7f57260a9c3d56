"""Model health between retrains: feature drift against training, and live performance.

Drift compares the features of a scoring run with a *profile* of the
training rows stored in the model bundle at training time (`training.json`),
so a batch job can check drift without the training data:

* numeric features: shares of rows in ten bins cut at the training deciles,
  plus a bin for missing values;
* categorical features: shares per training category, a missing bin, and
  one bin for every category training never saw.

The population stability index is ``sum((a - e) * ln(a / e))`` over those
bins (e: training share, a: scoring share, both floored at 0.0001 so an
empty bin does not make it infinite). Rules of thumb: below 0.1 stable,
0.1-0.25 a moderate shift, above 0.25 a large one.

Live performance joins an earlier scored list (`outreach.parquet`) with the
labels of its date once the label window is over, and measures ROC AUC and
calibration of the probabilities that were actually sent out.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from churnmodel.config import LabelConfig, MonitorConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.engine import collect
from churnmodel.errors import ConfigError
from churnmodel.features.catalog import FeatureSpec
from churnmodel.model.evaluate import Metrics, calibration_table, evaluate_scores
from churnmodel.timeline import build_spine, label_observed

DECILES = np.linspace(0.1, 0.9, 9)
FLOOR = 1e-4
EDGE_TOLERANCE = 1e-9
MISSING = "(missing)"
UNSEEN = "(unseen)"


def feature_profile(frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> dict[str, Any]:
    """Per feature: bin edges or categories and the training shares (JSON-ready)."""
    profile: dict[str, Any] = {}
    for spec in specs:
        column = frame[spec.name]
        if spec.dtype == "category":
            shares = column.astype("object").value_counts(normalize=True, dropna=False)
            profile[spec.name] = {
                "kind": "category",
                "shares": {_category(k): float(v) for k, v in sorted(shares.items(), key=str)},
            }
        else:
            values = column.astype("float64")
            edges = (
                np.unique(np.nanquantile(values, DECILES)) if values.notna().any() else np.array([])
            )
            counts = _numeric_counts(values, edges)
            profile[spec.name] = {
                "kind": "numeric",
                "edges": [float(e) for e in edges],
                "shares": (counts / max(len(values), 1)).tolist(),
            }
    return profile


def _category(value: object) -> str:
    return MISSING if pd.isna(value) else str(value)  # type: ignore[call-overload]


def _numeric_counts(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Rows per bin: (-inf, e1], (e1, e2], ..., (ek, inf), then missing.

    A value within a relative 1e-9 of an edge counts as on it: features tie
    at edges often (a trend of exactly 1), and engines differ in the last
    bits, which must not move a crowd of rows into the next bin.
    """
    present = values.dropna().to_numpy()
    widened = edges + EDGE_TOLERANCE * np.maximum(1.0, np.abs(edges))
    bins = np.searchsorted(widened, present, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    return np.append(counts, float(values.isna().sum()))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])), 6)
    0.0
    >>> round(psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])), 4)  # .4 ln 1.8 + .4 ln 5
    0.8789
    """
    e = np.maximum(expected, FLOOR)
    a = np.maximum(actual, FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(profile: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled feature: PSI, missing shares and the share of unseen categories."""
    rows = []
    for name, entry in profile.items():
        column = frame[name]
        if entry["kind"] == "category":
            shares = entry["shares"]
            now = column.astype("object").map(_category)
            known = now.isin(list(shares))
            current = [float((now == k).mean()) for k in shares] + [float((~known).mean())]
            expected = [*shares.values(), 0.0]
            unseen = float((~known).mean())
            missing_train = shares.get(MISSING, 0.0)
        else:
            edges = np.asarray(entry["edges"], dtype=float)
            counts = _numeric_counts(column.astype("float64"), edges)
            current = (counts / max(len(column), 1)).tolist()
            expected = entry["shares"]
            unseen = 0.0
            missing_train = expected[-1]
        rows.append(
            {
                "feature": name,
                "kind": entry["kind"],
                "psi": psi(np.asarray(expected), np.asarray(current)),
                "missing_train": float(missing_train),
                "missing_now": float(column.isna().mean()),
                "unseen_category_share": unseen,
            }
        )
    drift = pd.DataFrame(rows)
    drift["missing_increase"] = drift["missing_now"] - drift["missing_train"]
    return drift.sort_values(["psi", "feature"], ascending=[False, True], ignore_index=True)


def ignored(features: pd.Series, patterns: Sequence[str]) -> pd.Series:
    """Which features match one of the `[monitor] ignore` shell patterns."""
    return features.map(lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns))


def drift_alerts(drift: pd.DataFrame, limits: MonitorConfig) -> list[str]:
    """One line per feature and limit it breaks; features in `limits.ignore` never alarm."""
    alerts = []
    watched = drift[~ignored(drift["feature"], limits.ignore)] if len(drift) else drift
    for row in watched.to_dict("records"):
        name, value = row["feature"], float(row["psi"])
        missing, was = float(row["missing_now"]), float(row["missing_train"])
        unseen = float(row["unseen_category_share"])
        if value > limits.psi:
            alerts.append(f"{name}: PSI {value:.3f} > {limits.psi}")
        if missing - was > limits.missing_increase:
            alerts.append(
                f"{name}: missing {missing:.1%}, was {was:.1%} in training "
                f"(+{missing - was:.1%} > {limits.missing_increase:.0%})"
            )
        if unseen > limits.new_categories:
            alerts.append(
                f"{name}: {unseen:.1%} of rows have categories unseen in training "
                f"(> {limits.new_categories:.0%})"
            )
    return alerts


@dataclass(frozen=True)
class LivePerformance:
    """How an earlier list fared once its label window had passed."""

    source: str
    as_of: str
    model: str
    metrics: Metrics
    unlabelled: int  # listed customers no longer in the data at that date

    def alerts(self, trained_auc: float | None, limits: MonitorConfig) -> list[str]:
        """Lines for an AUC below the training backtest's (minus the margin) or poor calibration."""
        found = []
        where = f"list of {self.as_of} ({self.model})"
        auc = self.metrics.roc_auc
        if trained_auc is not None and not math.isnan(auc) and auc < trained_auc - limits.auc_drop:
            found.append(
                f"{where}: live ROC AUC {auc:.3f} < backtest {trained_auc:.3f} - {limits.auc_drop}"
            )
        if not math.isnan(self.metrics.ece) and self.metrics.ece > limits.max_ece:
            found.append(
                f"{where}: expected calibration error {self.metrics.ece:.3f} > {limits.max_ece}"
            )
        return found


@dataclass(frozen=True)
class MeasuredList:
    """An earlier list against what happened since: its live result, or why not yet."""

    live: LivePerformance | None
    calibration: pd.DataFrame | None  # per probability bin; with as_of
    waiting: str | None  # set when the list's label window is not over in the data


def measure_list(
    tables: ValidatedTables, listed: pd.DataFrame, source: str, label: LabelConfig
) -> MeasuredList:
    """Label an earlier outreach list from today's data, by the model's churn definition.

    Listed customers without a label at the list's date (no longer in the
    data) are counted as unlabelled, not guessed.
    """
    listed_as_of = list_date(listed, source)
    if not label_observed(listed_as_of, label.horizon, tables.observed_until):
        end = listed_as_of + dt.timedelta(days=label.horizon)
        return MeasuredList(
            None,
            None,
            f"{source}: the label window of {listed_as_of} ends {end}, after the data "
            f"({tables.observed_until.date()})",
        )
    labels = collect(build_spine(tables, [listed_as_of], label).select("customer_id", "label"))
    joined = listed.merge(labels, on="customer_id", how="left")
    known = joined[joined["label"].notna()]
    metrics = evaluate_scores(known["label"], known["churn_probability"])
    version = str(listed["model_version"].iloc[0]) if len(listed) else "-"
    live = LivePerformance(source, str(listed_as_of), version, metrics, len(joined) - len(known))
    table = calibration_table(known["label"], known["churn_probability"])
    return MeasuredList(live, table.assign(as_of=str(listed_as_of)), None)


def list_date(listed: pd.DataFrame, source: str) -> dt.date:
    """The one scoring date of an outreach list (its `as_of` column)."""
    dates = pd.to_datetime(listed["as_of"]).dt.date.unique()
    if len(dates) != 1:
        raise ConfigError(
            f"outreach list {source}: expected one scoring date in column as_of, found {len(dates)}"
        )
    return pd.Timestamp(dates[0]).date()


def trained_auc(training: Mapping[str, Any]) -> float | None:
    """The backtest ROC AUC a model reported when it was trained (None if it has none)."""
    reported = training.get("backtest_metrics") or training.get("holdout_metrics")
    value = (reported or {}).get("model", {}).get("roc_auc")
    return float(value) if value is not None else None


def psi_chart(drift: pd.DataFrame, limit: float, top: int = 20) -> Figure:
    """The features with the highest PSI, with the alert limit and the 0.1 rule of thumb."""
    shown = drift.head(top).iloc[::-1]  # barh draws bottom-up
    figure = Figure(figsize=(7, max(3.0, 0.28 * len(shown) + 1)))
    axes = figure.add_subplot()
    colors = ["#d62728" if v > limit else "#1f77b4" for v in shown["psi"]]
    axes.barh(shown["feature"], shown["psi"], color=colors)
    axes.axvline(0.1, color="#999", ls=":", label="0.1 moderate shift")
    axes.axvline(limit, color="#d62728", ls="--", label=f"{limit} alert")
    axes.set(title="Feature drift since training (PSI)", xlabel="population stability index")
    axes.tick_params(axis="y", labelsize="small")
    axes.legend(loc="lower right")
    return figure
