"""Rolling-origin backtest: how every candidate would have done at the latest cutoffs.

Fold k scores one cutoff ``S_k`` with parts trained only on cutoffs whose
label window ends by then (``c + horizon <= S_k``): exactly what a data
scientist could have trained on the morning of ``S_k``. The scored cutoffs
are the newest ones, at least four weeks apart, so a few folds cover
several months instead of a few neighbouring weeks.

LightGBM parts record ROC AUC on the scored rows after every tree. The
number of trees is chosen once for all folds, at the peak of the
fold-average curve, and every fold is cut there: one number chosen on the
backtest, the same one the final model uses. (Picking one number out of a
smooth curve flatters the backtest a little; picking it per fold would
flatter it more, and one fold's early stopping would not transfer.)

Out-of-fold probabilities are cross-fitted: the rows of fold k are
calibrated by a calibrator fitted on the other folds' rows, so the Brier
score and calibration error reported are out of sample too. With a single
fold there is nothing to fit on, and the raw probabilities are reported.

Every metric is computed per backtest cutoff and averaged over them, the
way a retention team meets the model: one scoring date at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from churnmodel.config import ModelConfig
from churnmodel.errors import CutoffError
from churnmodel.model.calibration import Calibration, Calibrator, sigmoid
from churnmodel.model.candidates import (
    Candidate,
    fit_linear,
    fit_trees,
    lightgbm_params,
    parts_of,
    tree_log_odds,
)
from churnmodel.model.evaluate import Metrics, evaluate_scores

log = logging.getLogger(__name__)

FOLD_SPACING_DAYS = 28
KEYS = ["customer_id", "cutoff", "label"]
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Fold:
    """One backtest step: the cutoff it scores and the cutoffs its parts are trained on."""

    scored: pd.Timestamp
    train: tuple[pd.Timestamp, ...]


def plan_folds(cutoffs: Iterable[dt.date], horizon_days: int, folds: int) -> list[Fold]:
    """Up to `folds` folds scoring the newest cutoffs, at least four weeks apart.

    A cutoff can be scored when at least one earlier cutoff's label window
    ends by it; the result is in time order.
    """
    ordered = sorted({pd.Timestamp(c) for c in cutoffs})
    horizon = pd.Timedelta(days=horizon_days)
    chosen: list[Fold] = []
    for cutoff in reversed(ordered):
        if len(chosen) == folds:
            break
        if chosen and chosen[-1].scored - cutoff < pd.Timedelta(days=FOLD_SPACING_DAYS):
            continue
        train = tuple(c for c in ordered if c + horizon <= cutoff)
        if train:
            chosen.append(Fold(cutoff, train))
    if not chosen:
        span = (ordered[-1] - ordered[0]).days if ordered else 0
        raise CutoffError(
            f"a backtest needs a cutoff at least {horizon_days} days (the label horizon) after "
            f"an earlier one; the {len(ordered)} labelled cutoff(s) span {span} days. Give more "
            "history, set an earlier cutoffs.first, or a shorter label.horizon_days"
        )
    return chosen[::-1]


def scored_rows(frame: pd.DataFrame, folds: list[Fold]) -> pd.DataFrame:
    """The rows the folds score, in frame order (not the backtest's order: see `backtest_rows`)."""
    return frame[frame["cutoff"].isin([f.scored for f in folds])]


def backtest_rows(frame: pd.DataFrame, backtest: Backtest) -> pd.DataFrame:
    """The frame's rows the backtest scored, in the order of its score columns.

    The backtest stacks its rows fold by fold, which is not the frame's
    order in general; another scorer (the champion, a model being
    evaluated) must score exactly these rows, in this order, to be measured
    alongside.
    """
    position = pd.Series(np.arange(len(frame)), index=pd.MultiIndex.from_frame(frame[KEYS[:2]]))
    wanted = pd.MultiIndex.from_frame(backtest.rows[KEYS[:2]])
    return frame.iloc[position.loc[wanted].to_numpy()].reset_index(drop=True)


@dataclass(frozen=True)
class Backtest:
    """Every candidate's out-of-fold scores on the same rows, and what they measure."""

    folds: list[Fold]
    candidates: list[Candidate]
    rows: pd.DataFrame  # customer_id, cutoff, label + one calibrated probability per scorer
    log_odds: pd.DataFrame  # one out-of-fold log-odds column per candidate, same rows
    rounds: dict[str, int]  # trees chosen per LightGBM part
    curves: dict[str, Array]  # fold-average ROC AUC after each tree, per LightGBM part
    per_cutoff: pd.DataFrame = field(init=False)
    metrics: dict[str, Metrics] = field(init=False)

    def __post_init__(self) -> None:
        per_cutoff = measure_per_cutoff(self.rows, self.scorers)
        object.__setattr__(self, "per_cutoff", per_cutoff)
        object.__setattr__(self, "metrics", mean_over_cutoffs(per_cutoff, self.rows))

    @property
    def scorers(self) -> list[str]:
        """Score columns of `rows`: the candidates, then any extra scorer (the champion)."""
        return [c for c in self.rows.columns if c not in KEYS]

    def winner(self) -> Candidate:
        """The candidate with the highest mean ROC AUC (the earlier one on a tie)."""
        return max(self.candidates, key=lambda c: _or_zero(self.metrics[c.name].roc_auc))

    def with_scores(self, scores: Mapping[str, npt.ArrayLike]) -> Backtest:
        """The same backtest with extra scorers (in row order) measured alongside."""
        rows = self.rows.assign(**{n: np.asarray(s, dtype=float) for n, s in scores.items()})
        return Backtest(self.folds, self.candidates, rows, self.log_odds, self.rounds, self.curves)


def run_backtest(
    frame: pd.DataFrame,
    candidates: list[Candidate],
    folds: list[Fold],
    config: ModelConfig,
    progress: Callable[[str], None] | None = None,
) -> Backtest:
    """Fit every part on every fold, choose the trees, score and calibrate out of fold."""
    step = progress or (lambda _: None)
    parts = parts_of(candidates)
    params = lightgbm_params(config)
    usable = [f for f in folds if _both_classes(frame, f)]
    if not usable:
        raise CutoffError(
            "no backtest fold has both churners and stayers in its training and scored "
            "cutoffs; add history or check the label settings"
        )
    tests = [frame[frame["cutoff"] == f.scored] for f in usable]
    fitted: dict[str, list[lgb.Booster]] = {}
    linear: dict[str, list[Array]] = {}
    curves: dict[str, list[list[float]]] = {}
    for i, (fold, test) in enumerate(zip(usable, tests, strict=True)):
        step(f"backtest fold {i + 1}/{len(usable)}: scoring {fold.scored.date()}")
        train = frame.iloc[training_rows(frame, fold, config.backtest_max_rows, config.seed)]
        for part in parts:
            columns = list(part.columns)
            if part.kind == "trees":
                booster, curve = fit_trees(
                    train[columns],
                    train["label"],
                    params,
                    config.n_estimators,
                    valid=(test[columns], test["label"]),
                    patience=config.early_stopping_rounds,
                )
                fitted.setdefault(part.name, []).append(booster)
                curves.setdefault(part.name, []).append(curve)
            else:
                scorer = fit_linear(train[columns], train["label"], config.logistic_c)
                linear.setdefault(part.name, []).append(scorer.raw_score(test[columns]))
    mean_curves = {name: _mean_curve(c) for name, c in curves.items()}
    rounds = {name: int(np.argmax(c)) + 1 for name, c in mean_curves.items()}
    part_scores = {
        name: [tree_log_odds(b, t, rounds[name]) for b, t in zip(boosters, tests, strict=True)]
        for name, boosters in fitted.items()
    } | linear
    rows = pd.concat(tests)[KEYS].reset_index(drop=True)
    log_odds = pd.DataFrame(
        {c.name: _combine(c, part_scores) for c in candidates}, index=rows.index
    )
    fold_of = np.repeat(np.arange(len(tests)), [len(t) for t in tests])
    probabilities = {
        name: cross_fitted(
            log_odds[name].to_numpy(), rows["label"].to_numpy(), fold_of, config.calibration
        )
        for name in log_odds.columns
    }
    return Backtest(usable, candidates, rows.assign(**probabilities), log_odds, rounds, mean_curves)


def training_rows(
    frame: pd.DataFrame, fold: Fold, max_rows: int | None, seed: int
) -> npt.NDArray[np.intp]:
    """Positions of the rows `fold` trains on: all of its cutoffs' rows, or a sample of them.

    The growing folds together train on about three times the refit's rows,
    so on a large matrix the backtest, not the shipped model, is most of the
    training time. Above `max_rows`, every (cutoff, label) stratum keeps the
    same share (rounded up, so no stratum empties and about `max_rows` are
    kept), chosen by a generator seeded with `seed`: churn rates per cutoff
    are those of the full rows, and the same run samples the same rows.
    """
    positions = np.flatnonzero(frame["cutoff"].isin(fold.train).to_numpy())
    if max_rows is None or len(positions) <= max_rows:
        return positions
    share = max_rows / len(positions)
    strata = (
        pd.DataFrame(
            {
                "cutoff": frame["cutoff"].to_numpy()[positions],
                "label": frame["label"].to_numpy()[positions],
            }
        )
        .groupby(["cutoff", "label"], sort=True)
        .indices
    )
    rng = np.random.default_rng(seed)
    kept = [
        rng.choice(members, size=math.ceil(share * len(members)), replace=False)
        for members in strata.values()  # in (cutoff, label) order
    ]
    chosen = np.sort(positions[np.concatenate(kept)])
    log.info(
        "backtest fold scoring %s: trained on %d of its %d rows, the same share of every "
        "cutoff and label (model.backtest_max_rows = %d); it is scored on all its rows",
        fold.scored.date(),
        len(chosen),
        len(positions),
        max_rows,
    )
    return chosen


def _combine(candidate: Candidate, scores: dict[str, list[Array]]) -> Array:
    return np.concatenate(
        [
            sum(weight * scores[part.name][i] for part, weight in candidate.parts)
            for i in range(len(next(iter(scores.values()))))
        ]
    )


def _both_classes(frame: pd.DataFrame, fold: Fold) -> bool:
    train = frame.loc[frame["cutoff"].isin(fold.train), "label"]
    test = frame.loc[frame["cutoff"] == fold.scored, "label"]
    ok = train.nunique() == 2 and test.nunique() == 2
    if not ok:
        log.warning(
            "backtest fold scoring %s skipped: it needs churners and stayers on both sides "
            "(training rows %d, churners %d; scored rows %d, churners %d)",
            fold.scored.date(),
            len(train),
            int(train.sum()),
            len(test),
            int(test.sum()),
        )
    return ok


def _mean_curve(curves: list[list[float]]) -> Array:
    """Fold-average ROC AUC after each tree.

    A fold that stopped early (no gain for `early_stopping_rounds` trees)
    counts with its last value beyond that, as if flat; truncating every
    fold to the shortest would let one noisy fold cap all the others.
    """
    length = max(len(c) for c in curves)
    padded = [c + [c[-1]] * (length - len(c)) for c in curves]
    return np.asarray(np.mean(padded, axis=0), dtype=np.float64)


def cross_fitted(
    log_odds: Array, labels: npt.NDArray[np.int8], fold_of: npt.NDArray[np.int64], kind: Calibration
) -> Array:
    """Calibrated probabilities, each fold's rows by a calibrator fitted on the other folds."""
    raw = sigmoid(log_odds)
    folds = np.unique(fold_of)
    if len(folds) < 2 or kind == "none":
        return np.asarray(raw)
    out = np.empty_like(raw)
    for k in folds:
        mine = fold_of == k
        others = ~mine & np.isfinite(raw)
        if np.unique(labels[others]).size < 2:
            out[mine] = raw[mine]
            continue
        out[mine] = Calibrator.fit(kind, raw[others], labels[others]).apply(raw[mine])
    return out


def measure_per_cutoff(rows: pd.DataFrame, scorers: list[str]) -> pd.DataFrame:
    """Metrics of every scorer at every backtest cutoff."""
    records = [
        {"cutoff": cutoff, "scorer": name, **evaluate_scores(part["label"], part[name]).as_dict()}
        for cutoff, part in rows.groupby("cutoff", sort=True)
        for name in scorers
    ]
    return pd.DataFrame(records)


def mean_over_cutoffs(per_cutoff: pd.DataFrame, rows: pd.DataFrame) -> dict[str, Metrics]:
    """Per scorer: the mean of each metric over the cutoffs (rows and churn rate pooled)."""
    names = [f.name for f in fields(Metrics)]
    out: dict[str, Metrics] = {}
    for scorer, part in per_cutoff.groupby("scorer", sort=False):
        values = {n: float(part[n].mean()) for n in names}
        values["rows"] = len(rows)
        values["churn_rate"] = float(rows["label"].mean())
        out[str(scorer)] = Metrics(**values)  # type: ignore[arg-type]
    return out


def _or_zero(value: float) -> float:
    return 0.0 if np.isnan(value) else value
