"""A trained uplift model as a folder of plain files, checked like the churn model's bundle.

    uplift.json       the offers and arms, which file holds each model, the offer
                      costs, and what the study found: the ranking that won on the
                      held-out campaign, the offer best on average, the policy values
    effect_<i>.txt    LightGBM text of offer i's effect model
    outcome_<i>.txt   LightGBM text of arm i's outcome model (the control group first)
    features.json     the feature columns in order, with dtypes and descriptions
    config.json       the run configuration, feature settings decided from the data
    MANIFEST.json     format and sha256 of every file (`registry.bundle.write_manifested`)

Models are numbered in the file names because offer names are the data's
(``"20% off"`` is no file name). Scoring computes the features with
`config.json`'s settings, so the model reads what it learned from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb

from churnmodel.config import RunConfig
from churnmodel.errors import ModelError
from churnmodel.features.catalog import FeatureSpec
from churnmodel.registry.bundle import as_json, checked_manifest, write_manifested
from churnmodel.uplift.learners import UpliftModel
from churnmodel.uplift.study import UpliftStudy

FORMAT = "churnmodel-uplift/1"
UPLIFT_MODEL_FOLDER = "model"
"""Where `train-uplift` saves the model inside its output folder."""
WHAT = "uplift model"
REQUIRED = ("uplift.json", "features.json", "config.json")


@dataclass(frozen=True)
class UpliftBundle:
    """The refitted uplift model, the features it reads, and the study's verdict."""

    model: UpliftModel
    specs: tuple[FeatureSpec, ...]
    config: RunConfig
    costs: dict[str, float]  # per offer, per contact
    winner: str  # "uplift", "risk" or "risk x value": the ranking a list should use
    best_on_average: str  # the offer a risk ranking sends
    study: dict[str, Any]  # held-out campaign, sends, budget and the policies table


def bundle_of(
    study: UpliftStudy,
    specs: tuple[FeatureSpec, ...],
    config: RunConfig,
    unpriced: list[str] | None = None,
) -> UpliftBundle:
    """What `train-uplift` saves: the model refitted on every send, and the study's findings.

    `unpriced` names the offers without any cost in the campaigns (saved as
    free): a money budget cannot be planned with them.
    """
    summary = {
        "unpriced": list(unpriced or []),
        "held_out": study.held_out,
        "sends_learned": study.sends_learned,
        "sends_judged": study.sends_judged,
        "budget": study.budget,
        "policies": study.policies.rename_axis("policy").reset_index().to_dict("records"),
        "qini": study.qini,
    }
    return UpliftBundle(
        study.model, specs, config, study.costs, study.winner, study.best_on_average, summary
    )


def save_uplift_bundle(bundle: UpliftBundle, directory: Path) -> Path:
    """Write the bundle atomically into `directory` (replacing an older one)."""
    model = bundle.model
    arms = list(model.outcomes)
    described = {
        "offers": list(model.offers),
        "arms": arms,
        "feature_names": list(model.feature_names),
        "costs": bundle.costs,
        "winner": bundle.winner,
        "best_on_average": bundle.best_on_average,
        "study": bundle.study,
    }
    contents = {
        "uplift.json": as_json(described),
        "features.json": as_json([asdict(s) for s in bundle.specs]),
        "config.json": bundle.config.model_dump_json(indent=2),
        **{
            f"effect_{i}.txt": model.effects[k].model_to_string()
            for i, k in enumerate(model.offers)
        },
        **{f"outcome_{i}.txt": model.outcomes[a].model_to_string() for i, a in enumerate(arms)},
    }
    return write_manifested(directory, contents, FORMAT)


def load_uplift_bundle(directory: Path) -> UpliftBundle:
    """Read a bundle, refusing it (one `ModelError` naming the file) when damaged or changed."""
    directory = Path(directory)
    if not (directory / "MANIFEST.json").is_file():
        raise ModelError(
            f"{WHAT} {directory}: no saved uplift model here; expected the --out folder of "
            "`churnmodel train-uplift` (or its model/ folder); rerun it if the folder is from "
            "before it saved models"
        )
    checked_manifest(directory, {FORMAT: REQUIRED}, WHAT)
    try:
        described = json.loads((directory / "uplift.json").read_text())
        offers, arms = list(described["offers"]), list(described["arms"])
        effects = {k: _booster(directory / f"effect_{i}.txt") for i, k in enumerate(offers)}
        outcomes = {a: _booster(directory / f"outcome_{i}.txt") for i, a in enumerate(arms)}
        specs = tuple(
            FeatureSpec(**s) for s in json.loads((directory / "features.json").read_text())
        )
        config = RunConfig.model_validate_json((directory / "config.json").read_text())
        model = UpliftModel(tuple(offers), tuple(described["feature_names"]), effects, outcomes)
        bundle = UpliftBundle(
            model,
            specs,
            config,
            {str(k): float(v) for k, v in described["costs"].items()},
            str(described["winner"]),
            str(described["best_on_average"]),
            dict(described["study"]),
        )
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        lgb.basic.LightGBMError,
    ) as exc:
        raise ModelError(f"{WHAT} {directory}: cannot be read ({exc}); damaged") from exc
    _check_consistent(bundle, directory)
    return bundle


RANKINGS = ("uplift", "risk", "risk x value")
"""What a study can name as the ranking to use."""


def _check_consistent(bundle: UpliftBundle, directory: Path) -> None:
    """uplift.json's parts must fit together: a cost per offer, known names."""
    offers = set(bundle.model.offers)
    problems = []
    if set(bundle.costs) != offers:
        problems.append(f"costs for {sorted(bundle.costs)}, offers {sorted(offers)}")
    if bundle.best_on_average not in offers:
        problems.append(f"best_on_average {bundle.best_on_average!r} is no offer")
    if bundle.winner not in RANKINGS:
        problems.append(f"winner {bundle.winner!r}, expected one of {', '.join(RANKINGS)}")
    if problems:
        raise ModelError(
            f"{WHAT} {directory}: uplift.json does not fit together: "
            + "; ".join(problems)
            + "; damaged or edited"
        )


def _booster(path: Path) -> lgb.Booster:
    if not path.is_file():
        raise ModelError(f"{WHAT} {path.parent}: {path.name} is missing; damaged")
    return lgb.Booster(model_str=path.read_text())
