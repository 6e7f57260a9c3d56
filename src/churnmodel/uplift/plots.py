"""The uplift study's charts: Qini curves per offer, and what each policy would have gained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from churnmodel.model.plots import figure_of, save_figure, titled_axes
from churnmodel.uplift.study import UpliftStudy

POLICY_COLORS = {"uplift": "#1f77b4", "random": "#b0b0b0"}  # random: a reference only
BASELINE_COLOR = "#ff7f0e"


def write_study_plots(study: UpliftStudy, out: Path) -> list[Path]:
    """``qini.png`` and ``policies.png`` in `out`."""
    return [
        save_figure(_qini(study), out / "qini.png"),
        save_figure(_policies(study), out / "policies.png"),
    ]


def _qini(study: UpliftStudy) -> Figure:
    axes = titled_axes(
        f"Qini curves on the held-out sends ({study.held_out})",
        "share of the offer's and the control group's sends contacted, by predicted uplift",
        "churners saved",
    )
    for offer, curve in study.curves.items():
        share = curve.contacted / max(int(curve.contacted[-1]), 1)
        axes.plot(share, curve.value, label=f"{offer} (Qini {study.qini[offer]:+.3f})")
        axes.plot([0, 1], [0, curve.value[-1]], linestyle="--", color="#7f7f7f", linewidth=1)
    axes.legend(title="offer; dashed: random targeting")
    return figure_of(axes)


def _policies(study: UpliftStudy) -> Figure:
    policies = study.policies.drop(index="nobody")
    axes = titled_axes(
        f"Value gained per send over no contact, at {study.budget:,} contacts or fewer",
        "estimated gain in value kept minus offer costs, per held-out send (95 % interval)",
        "",
        size=(7, 3.5),
    )
    names = list(policies.index)
    gains = policies["gain_per_send"].to_numpy(np.float64)
    colors = [POLICY_COLORS.get(n, BASELINE_COLOR) for n in names]
    margins = 1.96 * policies["gain_se"].to_numpy(np.float64)
    axes.barh(names, gains, xerr=margins, color=colors, capsize=4)
    axes.axvline(0, color="#333333", linewidth=1)
    for y, (gain, contacts) in enumerate(zip(gains, policies["contacts"], strict=True)):
        axes.annotate(
            f"{gain:+,.2f}, {contacts:,} contacts",
            (0, y),
            xytext=(4, 9),
            textcoords="offset points",
            fontsize=8,
        )
    axes.invert_yaxis()
    return figure_of(axes)
