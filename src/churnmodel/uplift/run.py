"""`churnmodel train-uplift`: the campaign matrix, the study, its files and its MLflow run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from churnmodel._io import file_set
from churnmodel.config import RunConfig
from churnmodel.errors import ConfigError
from churnmodel.uplift.bundle import UPLIFT_MODEL_FOLDER, bundle_of, save_uplift_bundle
from churnmodel.uplift.campaigns import check_campaigns
from churnmodel.uplift.matrix import campaign_matrix
from churnmodel.uplift.plots import write_study_plots
from churnmodel.uplift.study import BUDGET_SHARE, UpliftStudy, run_study

Progress = Callable[[str], None]


@dataclass(frozen=True)
class UpliftRun:
    """A finished study: what it found, the sends it could not use, where it went."""

    study: UpliftStudy
    left_out: Mapping[str, int]
    files: tuple[Path, ...]
    run_id: str


def train_uplift(
    config: RunConfig,
    out: Path,
    budget_share: float = BUDGET_SHARE,
    progress: Progress | None = None,
) -> UpliftRun:
    """Check the campaigns, build their matrix, run the study, write `out` and log the run.

    `out` gets the study's files and the refitted model (`out/model`, which
    `churnmodel score --uplift` reads).
    """
    from churnmodel.tracking.runs import log_uplift_run
    from churnmodel.workflows import check_data

    if config.data.campaigns is None:
        raise ConfigError(
            "data.campaigns: train-uplift learns from past campaigns; name the table of "
            "sends (customer_id, campaign_id, sent_at, treatment, optional cost)"
        )
    step = progress or (lambda _: None)
    checked = check_data(config, progress=step)
    step("checking the campaigns")
    summary = check_campaigns(checked.tables)
    step("features at every send")
    matrix = campaign_matrix(checked.tables, checked.config)
    step(f"learning uplift from {matrix.sends:,} sends (cross-fitted, twice)")
    study = run_study(matrix, budget_share, seed=checked.config.model.seed)
    step("writing the study")
    config = checked.config
    if matrix.features is not None:
        config = config.model_copy(update={"features": matrix.features})
    with file_set(out) as staging:
        written = [*write_study_plots(study, staging)]
        policies = staging / "policies.csv"
        study.policies.rename_axis("policy").reset_index().to_csv(policies, index=False)
        written.append(policies)
        bundle = bundle_of(study, matrix.specs, config, summary.unpriced)
        written.append(save_uplift_bundle(bundle, staging / UPLIFT_MODEL_FOLDER))
    files = tuple(out / path.name for path in written)
    findings = (*checked.findings, *summary.findings, *study.findings)
    run_id = log_uplift_run(checked.config, study, matrix.left_out, out, findings)
    return UpliftRun(study, matrix.left_out, files, run_id)
