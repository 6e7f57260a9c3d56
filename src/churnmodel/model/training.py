"""Training: a backtest picks the candidate and its trees; the model ships refit on everything.

1. The rolling-origin backtest (`model.backtest`) fits every candidate,
   baselines included, on every fold and measures them on the same rows.
2. The candidate with the highest mean backtest ROC AUC wins, whether it is
   LightGBM, the logistic regression, their blend or a baseline: a model
   that loses to its own baseline is never shipped.
3. The winner is refit on every labelled cutoff, up to the newest, with the
   trees the backtest chose, and calibrated on its out-of-fold scores.

The quality reported is the backtest's (out of fold, labelled as such); the
refit model itself has no unseen rows left to be measured on. The leakage
check lives here too: a churn model that is nearly perfect on later cutoffs
almost always reads the future, so the run says so loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnmodel.config import ModelConfig
from churnmodel.model.backtest import Backtest, Fold, run_backtest
from churnmodel.model.calibration import Calibrator, sigmoid
from churnmodel.model.candidates import (
    Candidate,
    candidate_set,
    fit_linear,
    fit_trees,
    lightgbm_params,
)
from churnmodel.model.churn_model import ChurnModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeakageCheck:
    """Whether the backtest scores are too good to be true, and which features look guilty."""

    backtest_auc: float
    threshold: float
    suspects: dict[str, float] = field(default_factory=dict)

    @property
    def suspected(self) -> bool:
        """True when the model or any single feature reaches the threshold."""
        return self.backtest_auc >= self.threshold or bool(self.suspects)

    def message(self) -> str:
        """One paragraph for logs, the CLI and the MLflow tag."""
        if not self.suspected:
            return ""
        named = ", ".join(f"{name} (AUC {auc:.3f})" for name, auc in self.suspects.items())
        return (
            f"possible label leakage: backtest ROC AUC {self.backtest_auc:.3f} "
            f">= {self.threshold}"
            + (f"; features that alone reach it: {named}" if named else "")
            + ". Churn is rarely this predictable: check that no feature reads rows at or "
            "after its cutoff."
        )


@dataclass(frozen=True)
class TrainingResult:
    """The shipped model and everything measured on the way."""

    model: ChurnModel
    backtest: Backtest
    feature_names: list[str]
    params: dict[str, object]
    cutoffs: pd.DataFrame  # rows, customers and churn rate per cutoff, and its role
    leakage: LeakageCheck

    @property
    def winner(self) -> str:
        """The name of the candidate that ships."""
        return self.model.name


def train_and_evaluate(
    frame: pd.DataFrame,
    feature_names: list[str],
    folds: list[Fold],
    config: ModelConfig,
    windows: list[int],
    progress: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Backtest every candidate on `folds`, refit the winner on all of `frame`'s rows."""
    step = progress or (lambda _: None)
    candidates = candidate_set(frame, feature_names, windows)
    backtest = run_backtest(frame, candidates, folds, config, step)
    winner = backtest.winner()
    step(f"refitting {winner.name} on all {frame['cutoff'].nunique()} labelled cutoffs")
    calibrator = Calibrator.fit(
        config.calibration,
        sigmoid(backtest.log_odds[winner.name].to_numpy()),
        backtest.rows["label"].to_numpy(),
    )
    model = refit(frame, winner, backtest.rounds, config, calibrator)
    leakage = check_leakage(
        backtest.metrics[winner.name].roc_auc, backtest.rows, frame, feature_names, config
    )
    if leakage.suspected:
        log.warning(leakage.message())
    return TrainingResult(
        model=model,
        backtest=backtest,
        feature_names=feature_names,
        params=training_params(config, frame, backtest, winner),
        cutoffs=cutoff_summary(frame, folds),
        leakage=leakage,
    )


def refit(
    frame: pd.DataFrame,
    candidate: Candidate,
    rounds: dict[str, int],
    config: ModelConfig,
    calibrator: Calibrator,
) -> ChurnModel:
    """The candidate's parts fitted on every row, with the backtest's trees."""
    booster, linear, tree_weight = None, None, 1.0
    for part, weight in candidate.parts:
        columns = list(part.columns)
        if part.kind == "trees":
            params = lightgbm_params(config)
            booster, _ = fit_trees(frame[columns], frame["label"], params, rounds[part.name])
            tree_weight = weight
        else:
            linear = fit_linear(frame[columns], frame["label"], config.logistic_c)
    return ChurnModel(candidate.name, booster, linear, tree_weight, calibrator)


def training_params(
    config: ModelConfig, frame: pd.DataFrame, backtest: Backtest, winner: Candidate
) -> dict[str, object]:
    """What the run logs as parameters: the LightGBM settings, trees chosen, the winner."""
    params: dict[str, object] = dict(lightgbm_params(config))
    params |= {f"trees_{name}": n for name, n in backtest.rounds.items()}
    params |= {
        "winner": winner.name,
        "logistic_c": config.logistic_c,
        "calibration": config.calibration,
        "backtest_folds": len(backtest.folds),
        "max_trees": config.n_estimators,
        "early_stopping_rounds": config.early_stopping_rounds,
        "backtest_max_rows": config.backtest_max_rows,
    }
    return params


def cutoff_summary(frame: pd.DataFrame, folds: list[Fold]) -> pd.DataFrame:
    """Rows, customers and churn rate per cutoff, and its role in the backtest."""
    scored = {f.scored for f in folds}
    summary = frame.groupby("cutoff", sort=True).agg(
        rows=("label", "size"), customers=("customer_id", "nunique"), churn_rate=("label", "mean")
    )
    summary = summary.reset_index()
    summary["part"] = np.where(summary["cutoff"].isin(scored), "backtest", "train")
    return summary


def check_leakage(
    backtest_auc: float,
    rows: pd.DataFrame,
    frame: pd.DataFrame,
    feature_names: list[str],
    config: ModelConfig,
) -> LeakageCheck:
    """Flag a too-good backtest AUC, naming numeric features that reach it on their own."""
    scored = frame[frame["cutoff"].isin(rows["cutoff"].unique())]
    suspects = {}
    for name in feature_names:
        column = scored[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.nunique() < 2:
            continue
        filled = column.fillna(column.min() - 1)
        auc = float(roc_auc_score(scored["label"], filled))
        if max(auc, 1 - auc) >= config.leakage_auc:
            suspects[name] = round(max(auc, 1 - auc), 4)
    return LeakageCheck(round(backtest_auc, 6), config.leakage_auc, suspects)
