"""The models a training run tries, baselines included, each built from one or two parts.

A *part* is a LightGBM model or a linear model (`LinearScorer`) on a set of
feature columns; a *candidate* adds up the log-odds of at most one part of
each kind with fixed weights. The simple baselines are candidates too: the
backtest shows every candidate side by side, and whichever ranks the
backtest rows best is the model that ships, even when that is a baseline.

* ``lightgbm``: trees on every feature;
* ``logistic``: a regularised logistic regression on every feature;
* ``blend``: the average log-odds of the two;
* ``recency``: days since the last purchase (or event) alone;
* ``tenure``: days since signup (or the first purchase) alone;
* ``rfm``: recency, purchases and spend over the longest window;
* ``counts``: LightGBM on each event type's count over the shortest
  window, plus tenure (the 20-line baseline that real product logs favour).

Baselines exist only when their columns do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.config import ModelConfig
from churnmodel.model.linear import LinearScorer

PartKind = Literal["trees", "linear"]
RECENCY_COLUMNS = ("days_since_last_tx", "days_since_last_event")
TENURE_COLUMNS = ("tenure_days", "tx_tenure_days")


@dataclass(frozen=True)
class Part:
    """One fitted unit: LightGBM or the linear model, on these columns."""

    name: str
    kind: PartKind
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """A model to try: parts and the weight of each in the summed log-odds."""

    name: str
    parts: tuple[tuple[Part, float], ...]
    baseline: bool = False
    description: str = ""


def candidate_set(features: pd.DataFrame, names: list[str], windows: list[int]) -> list[Candidate]:
    """The main candidates and the baselines that the feature columns allow."""
    trees = Part("trees", "trees", tuple(names))
    linear = Part("linear", "linear", tuple(names))
    out = [
        Candidate("lightgbm", ((trees, 1.0),), description="LightGBM on every feature"),
        Candidate(
            "logistic",
            ((linear, 1.0),),
            baseline=True,
            description="regularised logistic regression on every feature",
        ),
        Candidate("blend", ((trees, 0.5), (linear, 0.5)), description="mean log-odds of both"),
    ]
    recency = next((c for c in RECENCY_COLUMNS if c in names), None)
    tenure = next((c for c in TENURE_COLUMNS if c in names), None)
    single = {"recency": recency, "tenure": tenure}
    for name, column in single.items():
        if column is not None:
            part = Part(name, "linear", (column,))
            out.append(Candidate(name, ((part, 1.0),), True, f"logistic curve on log {column}"))
    longest, shortest = max(windows), min(windows)
    rfm = ("days_since_last_tx", f"tx_count_{longest}d", f"tx_amount_sum_{longest}d")
    if all(c in names for c in rfm):
        part = Part("rfm", "linear", rfm)
        out.append(Candidate("rfm", ((part, 1.0),), True, "logistic regression on log R, F, M"))
    counts = [n for n in names if re.fullmatch(rf"ev_.+_count_{shortest}d", n)]
    if counts:
        part = Part("counts", "trees", (*counts, *([tenure] if tenure else [])))
        out.append(
            Candidate(
                "counts",
                ((part, 1.0),),
                True,
                f"LightGBM on {len(counts)} per-type {shortest}-day event counts and tenure",
            )
        )
    return out


def parts_of(candidates: list[Candidate]) -> list[Part]:
    """Every distinct part the candidates need, in first-use order."""
    seen: dict[str, Part] = {}
    for candidate in candidates:
        for part, _ in candidate.parts:
            seen.setdefault(part.name, part)
    return list(seen.values())


def lightgbm_params(config: ModelConfig) -> dict[str, Any]:
    """Booster parameters: the configured ones, fixed seeds, deterministic histograms."""
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_child_samples": config.min_child_samples,
        "feature_fraction": config.feature_fraction,
        "bagging_fraction": config.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": config.lambda_l2,
        "is_unbalance": config.balance_classes,
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def fit_trees(
    features: pd.DataFrame,
    labels: npt.ArrayLike,
    params: dict[str, Any],
    rounds: int,
    valid: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
    patience: int | None = None,
) -> tuple[lgb.Booster, list[float]]:
    """A booster of up to `rounds` trees and, with `valid`, its ROC AUC after each tree."""
    train = lgb.Dataset(features, label=np.asarray(labels))
    curve: dict[str, Any] = {}
    callbacks: list[Any] = []
    valid_sets = []
    if valid is not None:
        valid_sets = [lgb.Dataset(valid[0], label=np.asarray(valid[1]), reference=train)]
        callbacks.append(lgb.record_evaluation(curve))
        if patience:
            callbacks.append(lgb.early_stopping(patience, first_metric_only=True, verbose=False))
    booster = lgb.train(
        params,
        train,
        num_boost_round=rounds,
        valid_sets=valid_sets,
        callbacks=callbacks,
        keep_training_booster=True,  # every tree grown, not only up to the fold's best
    )
    auc = list(curve["valid_0"]["auc"]) if curve else []
    return booster, auc


def fit_linear(features: pd.DataFrame, labels: npt.ArrayLike, c: float) -> LinearScorer:
    """The linear part: log-transformed numbers, L2 strength 1/`c`."""
    return LinearScorer.fit(features, labels, c=c, log=True)


def tree_log_odds(
    booster: lgb.Booster, features: pd.DataFrame, rounds: int | None = None
) -> npt.NDArray[np.float64]:
    """Raw log-odds of the first `rounds` trees (all when None)."""
    names = booster.feature_name()
    return np.asarray(
        booster.predict(features[names], raw_score=True, num_iteration=rounds), dtype=np.float64
    )
