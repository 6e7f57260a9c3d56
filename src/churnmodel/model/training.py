"""Fit the model and its baselines on the same out-of-time split, and score the holdout.

Everything a training run reports comes from here, computed on the same
rows: the model and both baselines see the same training cutoffs and are
judged on the same held-out cutoffs. The leakage check lives here too: a
churn model that is nearly perfect on a later cutoff almost always reads the
future, so the run says so loudly instead of reporting a miracle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnmodel.config import ModelConfig
from churnmodel.errors import CutoffError
from churnmodel.model.baselines import fit_predict_baselines
from churnmodel.model.estimator import ChurnClassifier
from churnmodel.model.evaluate import Metrics, evaluate_scores
from churnmodel.model.split import CutoffSplit

log = logging.getLogger(__name__)

PARTS = ("train", "validation", "holdout", "unused")


@dataclass(frozen=True)
class LeakageCheck:
    """Whether the validation scores are too good to be true, and which features look guilty."""

    validation_auc: float
    threshold: float
    suspects: dict[str, float] = field(default_factory=dict)

    @property
    def suspected(self) -> bool:
        """True when the model or any single feature reaches the threshold."""
        return self.validation_auc >= self.threshold or bool(self.suspects)

    def message(self) -> str:
        """One paragraph for logs, the CLI and the MLflow tag."""
        if not self.suspected:
            return ""
        named = ", ".join(f"{name} (AUC {auc:.3f})" for name, auc in self.suspects.items())
        return (
            f"possible label leakage: validation ROC AUC {self.validation_auc:.3f} "
            f">= {self.threshold}"
            + (f"; features that alone reach it: {named}" if named else "")
            + ". Churn is rarely this predictable: check that no feature reads rows at or "
            "after its cutoff."
        )


@dataclass(frozen=True)
class HoldoutEvaluation:
    """The model and both baselines scored on the same held-out rows."""

    table: pd.DataFrame  # customer_id, cutoff, label and one probability column per scorer
    metrics: dict[str, Metrics]  # scorer -> metrics on all holdout rows
    backtest: pd.DataFrame  # one row per holdout cutoff and scorer

    def scores(self) -> dict[str, pd.Series]:
        """Each scorer's probabilities, in holdout row order."""
        return {name: self.table[name] for name in self.metrics}


@dataclass(frozen=True)
class TrainingResult:
    """The fitted model and everything measured on the same rows."""

    classifier: ChurnClassifier
    split: CutoffSplit
    feature_names: list[str]
    params: dict[str, object]
    holdout: HoldoutEvaluation
    cutoffs: pd.DataFrame  # rows, customers and churn rate per cutoff, with its part
    leakage: LeakageCheck


def classifier_from_config(config: ModelConfig, **overrides: object) -> ChurnClassifier:
    """A ChurnClassifier with the configured (or overridden) hyperparameters."""
    params = config.model_dump(exclude={"validation", "leakage_auc", "seed"})
    params.update(overrides)
    return ChurnClassifier(**params, random_state=config.seed)


def train_and_evaluate(
    frame: pd.DataFrame,
    feature_names: list[str],
    split: CutoffSplit,
    config: ModelConfig,
    overrides: dict[str, object] | None = None,
    extra: Mapping[str, npt.ArrayLike] | None = None,
) -> TrainingResult:
    """Fit the model on the training cutoffs and compare it with the baselines on the holdout.

    `extra` scorers (e.g. the current champion's probabilities, in the row
    order of ``split.rows(frame, "holdout")``) are measured alongside.
    """
    train, valid, held = (split.rows(frame, p) for p in ("train", "validation", "holdout"))
    _require_both_classes(train, "training")
    _require_both_classes(valid, "validation")
    classifier = classifier_from_config(config, **(overrides or {}))
    classifier.fit(train[feature_names], train["label"], valid[feature_names], valid["label"])
    leakage = check_leakage(classifier.validation_auc_, valid, feature_names, config.leakage_auc)
    if leakage.suspected:
        log.warning(leakage.message())
    model_scores = classifier.predict_proba(held[feature_names])[:, 1]
    return TrainingResult(
        classifier=classifier,
        split=split,
        feature_names=feature_names,
        params={
            **classifier.lightgbm_params(),
            "n_estimators": classifier.n_estimators,
            "early_stopping_rounds": classifier.early_stopping_rounds,
            "best_iteration": classifier.booster_.num_trees(),
            "calibration": classifier.calibration,
        },
        holdout=evaluate_on_holdout(frame, feature_names, split, model_scores, extra),
        cutoffs=cutoff_summary(frame, split),
        leakage=leakage,
    )


def evaluate_on_holdout(
    frame: pd.DataFrame,
    feature_names: list[str],
    split: CutoffSplit,
    model_scores: npt.ArrayLike,
    extra: Mapping[str, npt.ArrayLike] | None = None,
) -> HoldoutEvaluation:
    """Fit the baselines on the training cutoffs and measure every scorer on the holdout.

    `model_scores` (and any `extra` scorers, e.g. the champion) must follow
    the row order of ``split.rows(frame, "holdout")``.
    """
    train, held = split.rows(frame, "train"), split.rows(frame, "holdout")
    scores: dict[str, npt.ArrayLike] = {"model": model_scores}
    scores |= fit_predict_baselines(train[feature_names], train["label"], held[feature_names])
    scores |= extra or {}
    table = held[["customer_id", "cutoff", "label"]].reset_index(drop=True)
    table = table.assign(**{name: np.asarray(s, dtype=float) for name, s in scores.items()})
    names = tuple(scores)
    return HoldoutEvaluation(
        table=table,
        metrics={name: evaluate_scores(table["label"], table[name]) for name in names},
        backtest=backtest(table, names),
    )


def backtest(holdout: pd.DataFrame, scorers: tuple[str, ...]) -> pd.DataFrame:
    """Metrics per held-out cutoff and scorer, so drift over time is visible."""
    rows = [
        {"cutoff": cutoff, "scorer": name, **evaluate_scores(part["label"], part[name]).as_dict()}
        for cutoff, part in holdout.groupby("cutoff", sort=True)
        for name in scorers
    ]
    return pd.DataFrame(rows)


def cutoff_summary(frame: pd.DataFrame, split: CutoffSplit) -> pd.DataFrame:
    """Rows, customers and churn rate per cutoff, and which part of the split it is in."""
    part_of = {c: part for part in PARTS for c in getattr(split, part)}
    summary = frame.groupby("cutoff", sort=True).agg(
        rows=("label", "size"), customers=("customer_id", "nunique"), churn_rate=("label", "mean")
    )
    return summary.reset_index().assign(part=lambda s: s["cutoff"].map(part_of))


def check_leakage(
    validation_auc: float, valid: pd.DataFrame, feature_names: list[str], threshold: float
) -> LeakageCheck:
    """Flag a too-good validation AUC, naming numeric features that reach it on their own."""
    suspects = {}
    for name in feature_names:
        column = valid[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.nunique() < 2:
            continue
        filled = column.fillna(column.min() - 1)
        auc = float(roc_auc_score(valid["label"], filled))
        if max(auc, 1 - auc) >= threshold:
            suspects[name] = round(max(auc, 1 - auc), 4)
    return LeakageCheck(round(validation_auc, 6), threshold, suspects)


def _require_both_classes(rows: pd.DataFrame, part: str) -> None:
    counts = rows["label"].value_counts()
    if len(rows) == 0 or len(counts) < 2:
        churners = int(counts.get(1, 0))
        raise CutoffError(
            f"the {part} cutoffs have {len(rows)} rows and {churners} churner(s); a model needs "
            "both churners and stayers there (add cutoffs or check the label settings)"
        )
