"""The evaluation plots of a training run, as PNG files.

Every chart that compares scores draws the model and the baselines (and the
champion, when there is one) on the same backtest rows. Figures are built
with matplotlib's object API, without pyplot, so nothing depends on a
display or on global state.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from churnmodel.model.evaluate import calibration_table

TOP_FEATURES = 20
COLORS = {"model": "#1f77b4", "recency": "#7f7f7f", "logistic": "#ff7f0e", "champion": "#2ca02c"}


def write_evaluation_plots(
    labels: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    out: Path,
) -> list[Path]:
    """ROC, precision-recall, cumulative gains / lift and calibration charts."""
    y = np.asarray(labels, dtype=float)
    curves = {name: np.asarray(s, dtype=float) for name, s in scores.items()}
    return [
        save_figure(_roc(y, curves), out / "roc.png"),
        save_figure(_precision_recall(y, curves), out / "precision_recall.png"),
        save_figure(_gains(y, curves), out / "gains_lift.png"),
        save_figure(_calibration(y, curves), out / "calibration.png"),
    ]


def write_driver_plots(
    importance: pd.Series, contributions: pd.DataFrame, values: pd.DataFrame, out: Path
) -> list[Path]:
    """Gain importance, and per-row contributions of the strongest drivers."""
    return [
        save_figure(_importance(importance), out / "importance_gain.png"),
        save_figure(_contributions(contributions, values), out / "contributions.png"),
    ]


def save_figure(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG (the folder is made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def titled_axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (6, 5)) -> Axes:
    """One set of axes on its own figure, titled and lightly gridded."""
    axes = Figure(figsize=size).add_subplot()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    return axes


def _color(name: str) -> str:
    return COLORS.get(name, "#9467bd")


def _roc(y: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    axes = titled_axes("ROC curve (backtest)", "false positive rate", "true positive rate")
    for name, score in curves.items():
        fpr, tpr, _ = roc_curve(y, score)
        auc = roc_auc_score(y, score)
        axes.plot(fpr, tpr, color=_color(name), label=f"{name}  AUC {auc:.3f}")
    axes.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":", label="random")
    axes.legend(loc="lower right")
    return figure_of(axes)


def _precision_recall(y: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    axes = titled_axes("Precision-recall (backtest)", "recall", "precision")
    for name, score in curves.items():
        precision, recall, _ = precision_recall_curve(y, score)
        ap = average_precision_score(y, score)
        axes.plot(recall, precision, color=_color(name), label=f"{name}  AP {ap:.3f}")
    axes.axhline(y.mean(), color="black", lw=0.8, ls=":", label=f"churn rate {y.mean():.3f}")
    axes.legend(loc="upper right")
    return figure_of(axes)


def _gains(y: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    figure = Figure(figsize=(11, 4.5))
    gains, lift = figure.subplots(1, 2)
    share = np.arange(1, len(y) + 1) / len(y)
    for name, score in curves.items():
        found = np.cumsum(y[np.argsort(-score, kind="stable")]) / max(y.sum(), 1)
        gains.plot(share, found, color=_color(name), label=name)
        lift.plot(share, found / share, color=_color(name), label=name)
    gains.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":", label="random")
    gains.set(
        title="Cumulative gains",
        xlabel="share of customers contacted",
        ylabel="share of churners reached",
    )
    lift.axhline(1, color="black", lw=0.8, ls=":")
    lift.set(
        title="Lift",
        xlabel="share of customers contacted",
        ylabel="lift over random",
        xlim=(0.01, 1),
    )
    for axes in (gains, lift):
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def _calibration(y: np.ndarray, curves: dict[str, np.ndarray], bins: int = 10) -> Figure:
    figure = Figure(figsize=(6, 6.5))
    curve, counts = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    for name, score in curves.items():
        table = calibration_table(y, score, bins)
        curve.plot(
            table["predicted"], table["observed"], marker="o", color=_color(name), label=name
        )
        counts.hist(score, bins=bins, range=(0, 1), histtype="step", color=_color(name))
    curve.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":", label="perfect")
    curve.set(title="Calibration (backtest)", ylabel="observed churn rate")
    curve.grid(alpha=0.3)
    curve.legend(loc="upper left")
    counts.set(xlabel="predicted churn probability", ylabel="rows", yscale="log")
    return figure


def _importance(importance: pd.Series) -> Figure:
    top = importance.head(TOP_FEATURES)[::-1]
    axes = titled_axes(
        "Feature importance (total gain)", "gain", "", size=(7, 0.3 * len(top) + 1.5)
    )
    axes.barh(top.index, top.to_numpy(), color=COLORS["model"])
    return figure_of(axes)


def _contributions(contributions: pd.DataFrame, values: pd.DataFrame) -> Figure:
    """A beeswarm-like strip per feature: contribution, coloured by the feature's percentile."""
    order = contributions.abs().mean().sort_values(ascending=False).head(TOP_FEATURES).index
    order = order[::-1]
    axes = titled_axes(
        f"Per-row contributions, {len(contributions):,} backtest rows",
        "contribution to churn log-odds (TreeSHAP)",
        "",
        size=(8, 0.35 * len(order) + 1.5),
    )
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=len(contributions))
    for position, name in enumerate(order):
        column = values[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            colour: npt.ArrayLike = np.full(len(column), 0.5)
        else:
            colour = column.rank(pct=True).fillna(0.5).to_numpy()
        axes.scatter(
            contributions[name],
            position + jitter,
            c=colour,
            cmap="coolwarm",
            s=4,
            vmin=0,
            vmax=1,
            rasterized=True,
        )
    axes.set_yticks(range(len(order)), list(order))
    axes.axvline(0, color="black", lw=0.8)
    axes.text(
        1.0,
        -0.08,
        "colour: feature value percentile (blue low, red high)",
        transform=axes.transAxes,
        ha="right",
        fontsize=8,
    )
    return figure_of(axes)


def figure_of(axes: Axes) -> Figure:
    """The figure `titled_axes` made for these axes."""
    figure = axes.get_figure()
    assert isinstance(figure, Figure)
    return figure
