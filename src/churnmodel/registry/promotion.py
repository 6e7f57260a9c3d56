"""The champion/challenger decision, as a pure function of the measured numbers.

A new model replaces the champion only when it ranks the same held-out rows
better (ROC AUC, champion re-scored in the same run), so a retrain that got
worse never reaches the scoring job by itself. The reason is always spelled
out, because someone will ask why the model did or did not change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """The current champion measured on the challenger's holdout rows."""

    version: str | None  # None: there is no champion yet
    roc_auc: float | None  # None: the champion could not be scored on these rows
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str


def decide(challenger_auc: float, champion: Comparison, force: bool = False) -> Decision:
    """Promote when forced, when there is no champion, or when the challenger ranks better.

    >>> decide(0.81, Comparison("3", 0.80)).promote
    True
    >>> print(decide(0.80, Comparison("3", 0.80)).reason)
    kept champion v3: holdout ROC AUC 0.8000 is not above the champion's 0.8000
    """
    if force:
        return Decision(True, "promoted: forced (--force-promote)")
    if champion.version is None:
        return Decision(True, "promoted: there was no champion yet")
    if champion.roc_auc is None:
        return Decision(
            False,
            f"kept champion v{champion.version}: it could not be compared ({champion.note}); "
            "use --force-promote to replace it",
        )
    if challenger_auc > champion.roc_auc:
        return Decision(
            True,
            f"promoted: holdout ROC AUC {challenger_auc:.4f} beats champion "
            f"v{champion.version}'s {champion.roc_auc:.4f}",
        )
    return Decision(
        False,
        f"kept champion v{champion.version}: holdout ROC AUC {challenger_auc:.4f} is not above "
        f"the champion's {champion.roc_auc:.4f}",
    )
