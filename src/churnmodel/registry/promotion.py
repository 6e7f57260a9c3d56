"""The champion/challenger decision, as a pure function of the measured numbers.

A new model replaces the champion only when it ranks the same rows better
(mean ROC AUC per cutoff), so a retrain that got worse never reaches the
scoring job by itself. The rows: the backtest cutoffs newer than anything
the champion was trained on, where the challenger's out-of-fold scores and
the champion's scores are both honest. When the champion has seen every
backtest cutoff (a retrain on the same data), the two backtests are
compared instead: the challenger's, and the one the champion reported when
it was trained. The reason is always spelled out, because someone will ask
why the model did or did not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.model.backtest import Backtest, measure_per_cutoff

CHALLENGER = "model"
CHAMPION = "champion"


@dataclass(frozen=True)
class ChampionScores:
    """The current champion: its scores on the backtest rows and what it was trained on."""

    version: str | None  # None: there is no champion yet
    scores: npt.NDArray[np.float64] | None = None  # None: it could not score these rows
    last_trained: pd.Timestamp | None = None  # the newest cutoff it was trained on
    backtest_auc: float | None = None  # as reported by its own training run
    note: str = ""

    @classmethod
    def of_bundle(
        cls, version: str, training: dict[str, Any], scores: npt.NDArray[np.float64]
    ) -> ChampionScores:
        """Read the champion's training cutoffs and reported quality from its bundle."""
        cutoffs = [c for part in training.get("cutoffs", {}).values() for c in part]
        metrics = training.get("backtest_metrics") or training.get("holdout_metrics") or {}
        reported = metrics.get("model", {}).get("roc_auc")
        return cls(
            version,
            scores,
            pd.Timestamp(max(cutoffs)) if cutoffs else None,
            float(reported) if reported is not None else None,
        )


@dataclass(frozen=True)
class Comparison:
    """The current champion measured like the challenger, and on what."""

    version: str | None  # None: there is no champion yet
    roc_auc: float | None  # None: the champion could not be compared
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str


def compare_with_champion(champion: ChampionScores, backtest: Backtest) -> tuple[Comparison, float]:
    """The champion's ROC AUC and the challenger's, measured on the same rows."""
    challenger = backtest.metrics[CHALLENGER].roc_auc
    if champion.version is None or champion.scores is None:
        return Comparison(champion.version, None, champion.note), challenger
    rows = backtest.rows
    unseen = (
        rows["cutoff"] > champion.last_trained
        if champion.last_trained is not None
        else pd.Series(False, index=rows.index)
    )
    if unseen.any():
        fresh = rows[unseen.to_numpy()]
        table = measure_per_cutoff(fresh, [CHALLENGER, CHAMPION])
        means = table.groupby("scorer")["roc_auc"].mean()
        cutoffs = fresh["cutoff"].nunique()
        note = f"on {cutoffs} backtest cutoff(s) it was not trained on"
        return Comparison(champion.version, float(means[CHAMPION]), note), float(means[CHALLENGER])
    if champion.backtest_auc is None:
        return Comparison(
            champion.version, None, "it was trained on every backtest row"
        ), challenger
    note = "backtest against the champion's own backtest (it was trained on these rows)"
    return Comparison(champion.version, champion.backtest_auc, note), challenger


def decide(challenger_auc: float, champion: Comparison, force: bool = False) -> Decision:
    """Promote when forced, when there is no champion, or when the challenger ranks better.

    >>> decide(0.81, Comparison("3", 0.80)).promote
    True
    >>> print(decide(0.80, Comparison("3", 0.80)).reason)
    kept champion v3: backtest ROC AUC 0.8000 is not above the champion's 0.8000
    """
    if force:
        return Decision(True, "promoted: forced")
    if champion.version is None:
        return Decision(True, "promoted: there was no champion yet")
    if champion.roc_auc is None:
        return Decision(
            False,
            f"kept champion v{champion.version}: it could not be compared ({champion.note}); "
            "force the promotion to replace it",
        )
    on = f" ({champion.note})" if champion.note else ""
    if challenger_auc > champion.roc_auc:
        return Decision(
            True,
            f"promoted: backtest ROC AUC {challenger_auc:.4f} beats champion "
            f"v{champion.version}'s {champion.roc_auc:.4f}{on}",
        )
    return Decision(
        False,
        f"kept champion v{champion.version}: backtest ROC AUC {challenger_auc:.4f} is not above "
        f"the champion's {champion.roc_auc:.4f}{on}",
    )
