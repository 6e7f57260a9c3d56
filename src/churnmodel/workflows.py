"""One function per verb, composed from the layers; the CLI and notebooks call these."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ibis.backends.sql import SQLBackend

from churnmodel import spark_scoring, tracking
from churnmodel._html import write_png
from churnmodel._io import among, file_set, scratch_folder, write_csv, write_parquet
from churnmodel.config import OutreachConfig, RunConfig
from churnmodel.data.load import Source, load_tables
from churnmodel.data.validate import ValidatedTables, check_survey_scales, validate_tables
from churnmodel.discovery import (
    DataFacts,
    event_type_counts,
    event_type_findings,
    gather_facts,
    resolve,
    resolve_label,
    table_facts,
)
from churnmodel.engine import connect
from churnmodel.errors import ConfigError, ModelError
from churnmodel.features.matrix import FeatureMatrix, build_feature_matrix
from churnmodel.kpi import Cohorts, cohort_retention, complete_periods, retention_kpis
from churnmodel.model.backtest import Backtest, Fold, backtest_rows, plan_folds, run_backtest
from churnmodel.model.candidates import candidate_set
from churnmodel.model.evaluate import Metrics
from churnmodel.model.plots import write_driver_plots, write_evaluation_plots
from churnmodel.model.training import TrainingResult, train_and_evaluate
from churnmodel.model.tuning import tune
from churnmodel.monitor_report import render_monitor
from churnmodel.monitoring import (
    LivePerformance,
    drift_alerts,
    feature_drift,
    feature_profile,
    ignored,
    measure_list,
    psi_chart,
    trained_auc,
)
from churnmodel.outreach import build_outreach, write_outreach
from churnmodel.outreach.build import REASON_COLUMNS, explain_rows
from churnmodel.outreach.export import read_outreach
from churnmodel.outreach.people import write_people_csv
from churnmodel.outreach.reasons import risk_reference
from churnmodel.outreach.report import render_report, report_data
from churnmodel.registry.bundle import ModelBundle, save_bundle
from churnmodel.registry.promotion import (
    ChampionScores,
    Comparison,
    Decision,
    compare_with_champion,
    decide,
)
from churnmodel.scoring import (
    Scores,
    check_compatible,
    default_as_of,
    nothing_eligible,
    score_customers,
    setting_differences,
)
from churnmodel.timeline import build_spine, training_cutoffs
from churnmodel.uplift.bundle import UPLIFT_MODEL_FOLDER, UpliftBundle, load_uplift_bundle
from churnmodel.uplift.targeting import Budget, Targeting, plan_contacts, require_costs

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

CONTRIBUTION_SAMPLE = 2_000
"""Holdout rows whose TreeSHAP contributions summarise the drivers in a training run."""


@dataclass(frozen=True)
class FeatureRun:
    """A feature matrix and what went into it.

    `config` is the run's config with every open setting decided from the
    data (`churnmodel.discovery`); `facts` are what those decisions used.
    """

    matrix: FeatureMatrix
    cutoffs: list[dt.date]
    tables: ValidatedTables
    config: RunConfig
    facts: DataFacts
    findings: tuple[str, ...] = ()  # the data-quality warnings
    requested: RunConfig | None = None  # the config as given, before the data decided the rest


def load_data(
    config: RunConfig,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
) -> ValidatedTables:
    """Open and validate the configured tables (or the given `sources`).

    `con` is an open engine, e.g. ``connect("spark", spark_session=spark)``
    for a notebook's own Spark session; by default the configured engine.
    """
    sources = dict(sources) if sources is not None else dict(config.data.sources())
    if not sources:
        raise ConfigError("data: no tables configured; set data.transactions and/or data.events")
    raw = load_tables(con or connect_configured(config), sources, config.data.columns)
    return validate_tables(raw, config.data.duplicates, config.data.quality_rules())


def check_surveys(tables: ValidatedTables, config: RunConfig) -> None:
    """Survey answers on their scale, for the survey types the features read."""
    events = tables.get("events")
    if events is not None:
        check_survey_scales(events, {s: s for s in config.features.feedback.surveys})


def connect_configured(config: RunConfig) -> SQLBackend:
    """The engine named in `[data]`, with its settings."""
    data = config.data
    return connect(data.engine, data.memory_limit, data.spark_master, spark_conf=data.spark_conf)


@dataclass(frozen=True)
class CheckedData:
    """Validated tables, the config with every open setting decided, and what was found."""

    tables: ValidatedTables
    config: RunConfig
    facts: DataFacts
    findings: tuple[str, ...]  # every warning of the data-quality pass, for the run's record


def check_data(
    config: RunConfig,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
    progress: Progress | None = None,
) -> CheckedData:
    """The data-quality pass that `features` and `train` start with (and `churnmodel check` is).

    Errors stop the run (`DataContractError`); warnings are logged as they
    are found and returned, so a training run can record them.
    """
    step = progress or (lambda _: None)
    step("validating tables")
    tables = load_data(config, sources, con)
    check_surveys(tables, config)
    step("finding defaults in the data")
    facts = gather_facts(tables)
    config = resolve(config, facts)
    event_findings = event_type_findings(config, facts.event_types)
    for finding in event_findings:
        log.warning(finding)
    return CheckedData(tables, config, facts, (*tables.findings, *event_findings))


def build_features(
    config: RunConfig,
    cutoffs: list[dt.date] | None = None,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
    progress: Progress | None = None,
) -> FeatureRun:
    """Check the data, lay out cutoffs and labels, and compute the feature matrix."""
    step = progress or (lambda _: None)
    requested = config
    checked = check_data(config, sources, con, step)
    tables, config = checked.tables, checked.config
    step("planning cutoffs")
    cutoffs = training_cutoffs(
        config.cutoffs, tables.observed_until, config.label.horizon, explicit=cutoffs
    )
    spine = build_spine(tables, cutoffs, config.label)
    step(f"computing features at {len(cutoffs)} cutoff(s)")
    matrix = build_feature_matrix(
        tables,
        spine,
        config.features,
        max_rows=config.data.max_matrix_rows,
        seed=config.model.seed,
        progress=lambda what: step(f"computing features: {what}"),
    )
    return FeatureRun(
        matrix, sorted(cutoffs), tables, config, checked.facts, checked.findings, requested
    )


def write_features(matrix: FeatureMatrix, out: Path) -> Path:
    """Write the matrix as parquet, atomically; feature descriptions go in its metadata."""
    catalog = [
        {"name": s.name, "family": s.family, "dtype": s.dtype, "description": s.description}
        for s in matrix.specs
    ]
    write_parquet(matrix.frame, out, {"churnmodel.features": json.dumps(catalog)})
    return out


@dataclass(frozen=True)
class TrainingOutcome:
    """What `train` did: the run, the registered version and the promotion decision."""

    run_id: str
    version: str
    result: TrainingResult
    champion: Comparison
    decision: Decision
    exported: Path | None
    config: RunConfig  # as trained: every setting decided from the data filled in


@dataclass(frozen=True)
class FittedModel:
    """What `fit` returns: the model as a bundle would hold it, and how it was chosen.

    `bundle.predict(features)` scores a feature matrix; `result.backtest`
    holds every candidate's and baseline's out-of-fold scores and metrics;
    `save_bundle(fitted.bundle, folder)` writes it as `train` would.
    """

    bundle: ModelBundle
    result: TrainingResult
    held: pd.DataFrame  # the backtest rows, in the backtest's order

    def __repr__(self) -> str:
        auc = self.result.backtest.metrics["model"].roc_auc
        return (
            f"FittedModel(winner={self.result.winner!r}, backtest_roc_auc={auc:.4f}, "
            f"features={len(self.bundle.specs)}, backtest_rows={len(self.held):,})"
        )

    @property
    def metrics(self) -> dict[str, Metrics]:
        """Backtest metrics per scorer: the shipped model ("model"), candidates, baselines."""
        return dict(self.result.backtest.metrics)


def fit(
    features: FeatureRun,
    config: RunConfig | None = None,
    progress: Progress | None = None,
) -> FittedModel:
    """Backtest every candidate on `features`, refit the best: no MLflow, nothing written.

    The side-effect-free core of `train` (which adds tuning, the champion
    comparison, MLflow and the registry). `config` defaults to the one the
    features were built with; its `[model]` section sets the learner.
    """
    step = progress or (lambda _: None)
    if not isinstance(features, FeatureRun):
        raise ConfigError(
            f"fit: expected the features of `build_features(config, ...)`, got "
            f"{type(features).__name__}"
        )
    config = _with_matrix_settings(config or features.config, features)
    frame, specs = features.matrix.frame, features.matrix.specs
    folds = _folds(features, config)
    result = train_and_evaluate(
        frame,
        features.matrix.feature_names,
        folds,
        config.model,
        config.features.windows_days,
        step,
    )
    shipped = result.backtest.with_scores({"model": result.backtest.rows[result.winner]})
    result = dataclasses.replace(result, backtest=shipped)  # "model": the winner, as it ships
    facts = {
        **_training_facts(result, features.facts),
        "profile": feature_profile(frame, specs),
        "reason_reference": risk_reference(frame, specs, config.model.seed),
        "bgnbd": features.matrix.bgnbd.to_dict() if features.matrix.bgnbd else None,
    }
    bundle = ModelBundle(result.model, specs, config, facts)
    return FittedModel(bundle, result, backtest_rows(frame, result.backtest))


def train(
    config: RunConfig,
    features: FeatureRun | None = None,
    sources: Mapping[str, Source] | None = None,
    tune_trials: int = 0,
    force_promote: bool = False,
    progress: Progress | None = None,
) -> TrainingOutcome:
    """`fit`, then compare with the champion, log to MLflow, register, maybe promote.

    The new version always gets the alias ``challenger``; it becomes
    ``champion`` (and is exported) only when `decide` says so.
    """
    step = progress or (lambda _: None)
    features = features or build_features(config, sources=sources, progress=step)
    config = _with_matrix_settings(config, features)
    if tune_trials:
        config = _tuned(config, features, tune_trials, step)
    tracking.use_tracking(config.mlflow)
    fitted = fit(features, config, step)
    step("scoring the current champion on the backtest rows")
    result, comparison, decision = _against_champion(
        config, fitted.result, fitted.held, force_promote
    )
    step("logging to MLflow")
    with scratch_folder("train") as scratch, tracking.start_training_run(config) as run:
        _write_training_plots(result, fitted.held, scratch / "plots")
        bundle = save_bundle(
            fitted.bundle,
            scratch / "bundle",
            code={tracking.PYFUNC_CODE.name: tracking.PYFUNC_CODE},
        )
        run.log_inputs(
            config,
            (features.tables.observed_from, features.tables.observed_until),
            result.cutoffs,
            features.matrix.specs,
            features.findings,
        )
        run.log_results(
            result.params,
            result.backtest.metrics,
            {"backtest_roc_auc": result.leakage.backtest_auc},
            result.backtest.per_cutoff,
            scratch / "plots",
        )
        run.log_candidates(_candidate_table(result))
        example = fitted.held[features.matrix.feature_names].head(5)
        model_uri = run.log_model(bundle, example, result.model.predict_proba(example)[:, 1])
        version = tracking.register_version(model_uri, config.mlflow.registered_model)
        tracking.set_alias(config.mlflow.registered_model, "challenger", version)
        run.tag(
            {
                "churnmodel.version": version,
                "churnmodel.winner": result.winner,
                "churnmodel.leakage_suspected": str(result.leakage.suspected).lower(),
                "churnmodel.leakage": result.leakage.message() or "none",
                "churnmodel.tune_trials": tune_trials,
            }
        )
        result, comparison, decision, exported = _promote(
            config, version, result, comparison, decision, fitted.held, force_promote, step
        )
        run.tag(
            {
                "churnmodel.promotion": decision.reason,
                "churnmodel.compared_with": comparison.version or "none",
            }
        )
    return TrainingOutcome(run.run_id, version, result, comparison, decision, exported, config)


def _tuned(config: RunConfig, features: FeatureRun, trials: int, step: Progress) -> RunConfig:
    """The config with `[model]` from an Optuna search, each trial a backtest."""
    frame = features.matrix.frame
    folds = _folds(features, config)
    tuned = tune(
        frame,
        features.matrix.feature_names,
        folds,
        config.model,
        trials,
        on_trial=lambda i, auc: step(
            f"tuning: trial {i + 1}/{trials} done (backtest ROC AUC {auc:.3f})"
        ),
    )
    return config.model_copy(update={"model": tuned})


def _promote(
    config: RunConfig,
    version: str,
    result: TrainingResult,
    comparison: Comparison,
    decision: Decision,
    held: pd.DataFrame,
    force_promote: bool,
    step: Progress,
) -> tuple[TrainingResult, Comparison, Decision, Path | None]:
    """Set the champion alias and export it, if the (re-checked) decision says so.

    Compare-and-set: another training may have promoted since the comparison;
    under the lock, a changed champion is measured again before anything moves.
    """
    name, export_dir = config.mlflow.registered_model, config.mlflow.export_dir
    with tracking.promotion_lock(config.mlflow, lambda: step("waiting for another promotion")):
        tracking.reconcile_export(name, export_dir)
        if tracking.version_of_alias(name, "champion") != comparison.version:
            step("the champion changed during training; comparing with the new one")
            result, comparison, decision = _against_champion(config, result, held, force_promote)
        if not decision.promote:
            return result, comparison, decision, None
        tracking.set_alias(name, "champion", version)
        return result, comparison, decision, tracking.export_version(name, version, export_dir)


def _against_champion(
    config: RunConfig, result: TrainingResult, held: pd.DataFrame, force_promote: bool
) -> tuple[TrainingResult, Comparison, Decision]:
    """The current champion scored on the backtest rows beside the challenger, and the verdict."""
    champion = _score_champion(config, held)  # `fit` already added the shipped "model" scores
    scores = {"champion": champion.scores} if champion.scores is not None else {}
    backtest = result.backtest.with_scores(scores)
    comparison, challenger_auc = compare_with_champion(champion, backtest)
    decision = decide(challenger_auc, comparison, force_promote)
    return dataclasses.replace(result, backtest=backtest), comparison, decision


MATRIX_SECTIONS = ("data", "label", "cutoffs", "features")
"""The settings a feature matrix is built with; training cannot change them afterwards."""


def _with_matrix_settings(config: RunConfig, features: FeatureRun) -> RunConfig:
    """The caller's config, with the (resolved) settings the feature matrix was built with.

    A setting the caller set differently from the matrix's is an error, not
    silently dropped: the features would have to be built again. Only the
    backtest's `cutoffs.holdout` is the caller's to choose here.
    """
    built = features.config
    asked = features.requested or built

    def changed(reference: RunConfig, section: str) -> dict[str, tuple[object, object]]:
        return {
            key: (old, new)
            for key, old, new in setting_differences(
                getattr(reference, section).model_dump(mode="json", exclude={"holdout"}),
                getattr(config, section).model_dump(mode="json", exclude={"holdout"}),
            )
        }

    # a setting differs when it matches neither what was asked nor what the data decided
    differences = [
        f"{section}.{key}: features {old!r}, config {new!r}"
        for section in MATRIX_SECTIONS
        for key, (old, new) in changed(built, section).items()
        if key in changed(asked, section)
    ]
    if differences:
        raise ConfigError(
            "the config sets what the feature matrix was built without; build the features "
            f"with this config first ({'; '.join(differences[:5])})"
        )
    cutoffs = built.cutoffs.model_copy(update={"holdout": config.cutoffs.holdout})
    update = {name: getattr(built, name) for name in ("data", "label", "features")}
    return config.model_copy(update={**update, "cutoffs": cutoffs})


DEFAULT_FOLDS = 4
"""Backtest cutoffs when `cutoffs.holdout` is not set."""


def _folds(features: FeatureRun, config: RunConfig) -> list[Fold]:
    """The backtest folds over the matrix's cutoffs (`cutoffs.holdout` of them, else 4)."""
    count = config.cutoffs.holdout or DEFAULT_FOLDS
    return plan_folds(features.cutoffs, config.label.horizon, count)


def _score_champion(config: RunConfig, held: pd.DataFrame) -> ChampionScores:
    """The current champion's probabilities on the backtest rows, and what it was trained on."""
    name = config.mlflow.registered_model
    version = tracking.version_of_alias(name, "champion")
    if version is None:
        return ChampionScores(None)
    try:
        bundle, _ = tracking.load_model_bundle(f"models:/{name}@champion", config.mlflow)
        scores = bundle.predict(held)
    except ModelError as exc:  # e.g. its features were renamed since: not comparable
        return ChampionScores(version, note=str(exc))
    return ChampionScores.of_bundle(version, bundle.training, scores)


def _candidate_table(result: TrainingResult) -> pd.DataFrame:
    """One row per candidate: what it is, its mean backtest metrics, whether it shipped."""
    rows = []
    for candidate in result.backtest.candidates:
        metrics = result.backtest.metrics[candidate.name]
        rows.append(
            {
                "candidate": candidate.name,
                "baseline": candidate.baseline,
                "description": candidate.description,
                "shipped": candidate.name == result.winner,
                **metrics.as_dict(),
            }
        )
    return pd.DataFrame(rows)


def _write_training_plots(result: TrainingResult, held: pd.DataFrame, out: Path) -> None:
    rows = result.backtest.rows
    write_evaluation_plots(rows["label"], {s: rows[s] for s in result.backtest.scorers}, out)
    # TreeSHAP costs ~1000x a prediction: a seeded sample of backtest rows is enough to summarise.
    sample = held[result.feature_names].sample(min(len(held), CONTRIBUTION_SAMPLE), random_state=0)
    write_driver_plots(result.model.importance(), result.model.contributions(sample), sample, out)


def _training_facts(result: TrainingResult, facts: DataFacts) -> dict[str, object]:
    """What the bundle remembers of its training run: cutoffs, parameters, backtest, data."""
    return {
        "cutoffs": {
            "refit": [str(c.date()) for c in result.cutoffs["cutoff"]],
            "backtest": [str(f.scored.date()) for f in result.backtest.folds],
        },
        "params": result.params,
        "winner": result.winner,
        "backtest_metrics": {k: m.as_dict() for k, m in result.backtest.metrics.items()},
        "leakage": result.leakage.message() or None,
        "data_facts": facts.to_dict(),
    }


@dataclass(frozen=True)
class EvaluationOutcome:
    """A registered model re-measured on new data, next to freshly fitted baselines."""

    run_id: str
    model: str
    evaluation: Backtest


def evaluate(
    config: RunConfig,
    model: str = "models:/churnmodel@champion",
    sources: Mapping[str, Source] | None = None,
    progress: Progress | None = None,
) -> EvaluationOutcome:
    """Score the latest labelled cutoffs of the (new) data with an existing model.

    The baselines are backtested on the same data and folds, so the
    comparison stays on equal terms; the result is logged as an MLflow
    evaluation run. Rows the model was trained on flatter it: evaluate on
    data newer than its training.
    """
    step = progress or (lambda _: None)
    bundle, label = tracking.load_model_bundle(model, config.mlflow)
    features = build_features(config, sources=sources, progress=step)
    config = features.config
    frame, names = features.matrix.frame, features.matrix.feature_names
    folds = _folds(features, config)
    baselines = [c for c in candidate_set(frame, names, config.features.windows_days) if c.baseline]
    backtest = run_backtest(frame, baselines, folds, config.model, step)
    held = backtest_rows(frame, backtest)
    step(f"scoring {len(held):,} backtest rows with {label}")
    evaluation = backtest.with_scores({"model": bundle.predict(held)})
    with scratch_folder("evaluate") as tmp:
        plots = Path(tmp)
        rows = evaluation.rows
        write_evaluation_plots(rows["label"], {s: rows[s] for s in evaluation.scorers}, plots)
        run_id = tracking.log_evaluation_run(
            config, label, evaluation.metrics, evaluation.per_cutoff, plots
        )
    return EvaluationOutcome(run_id, label, evaluation)


@dataclass(frozen=True)
class ScoreRun:
    """A scoring run: the scores, the outreach list built from them, and the model used."""

    scores: Scores
    outreach: pd.DataFrame
    model: str
    findings: tuple[str, ...] = ()  # the data-quality warnings of this run
    targeting: Targeting | None = None  # the budgeted contact list, when one was asked for

    def counts(self) -> dict[str, int]:
        """Scored and not-scored customers by reason; they add up to `input customers`."""
        return {
            "input customers": self.scores.input_customers,
            "scored": len(self.outreach),
            **{f"not scored: {r}": n for r, n in self.scores.not_scored_counts().items()},
        }


def score(
    config: RunConfig,
    model: str | None = None,
    as_of: dt.date | None = None,
    sources: Mapping[str, Source] | None = None,
    progress: Progress | None = None,
    budget: Budget | None = None,
    uplift: Path | None = None,
) -> ScoreRun:
    """Score every customer eligible at `as_of` and build the outreach list.

    `model` defaults to the registered champion. The config's feature and
    label settings must match the model's (checked before any work). With
    a `budget` or an `uplift` model (a `train-uplift` folder), the run also
    plans the budgeted contact list (`uplift.targeting`).
    """
    step = progress or (lambda _: None)
    uplift_bundle = load_uplift_bundle(_uplift_folder(uplift)) if uplift is not None else None
    require_costs(budget or Budget(), uplift_bundle)  # before any work
    bundle, label = _scoring_model(config, model, step)
    step("validating tables")
    tables = load_data(config, sources)
    as_of = as_of or default_as_of(tables)
    findings = check_scoring_data(tables, bundle)
    step(f"computing features and scores as of {as_of}")
    scores = score_customers(tables, bundle, as_of, lambda what: step(f"scoring: {what}"))
    if scores.frame.empty:
        raise nothing_eligible(as_of, scores.not_scored_counts())
    step("ranking and explaining the riskiest customers")
    outreach = build_outreach(scores, bundle, config.outreach, label)
    if budget is None and uplift_bundle is None:
        return ScoreRun(scores, outreach, label, findings)
    targeting, notes = _plan_targeting(
        tables, scores, outreach, budget or Budget(), uplift_bundle, step
    )
    contacts, unexplained = _with_reasons(
        targeting.contacts, outreach, scores, bundle, config.outreach
    )
    targeting = dataclasses.replace(targeting, contacts=contacts)
    return ScoreRun(scores, outreach, label, (*findings, *notes, *unexplained), targeting)


def _uplift_folder(path: Path) -> Path:
    """The uplift model inside what a user may point at: its folder, or train-uplift's --out."""
    if not Path(path).exists():
        raise ModelError(
            f"uplift model {path}: does not exist; expected the --out folder of "
            "`churnmodel train-uplift`"
        )
    inner = Path(path) / UPLIFT_MODEL_FOLDER
    return inner if (inner / "MANIFEST.json").is_file() else Path(path)


def _plan_targeting(
    tables: ValidatedTables,
    scores: Scores,
    outreach: pd.DataFrame,
    budget: Budget,
    bundle: UpliftBundle | None,
    step: Progress,
) -> tuple[Targeting, tuple[str, ...]]:
    """The budgeted list, and a note for every scored customer the uplift model cannot rank."""
    from churnmodel.uplift.scoring import predicted_uplift

    scored = outreach[["customer_id", "churn_probability", "value_12m"]]
    if bundle is None:
        step("planning the contacts by risk x value (no uplift model)")
        return plan_contacts(scored, budget), ()
    step("uplift of every scored customer")
    effects = predicted_uplift(tables, bundle, scored["customer_id"], scores.as_of, step)
    known = among(scored["customer_id"], effects.index)
    notes: tuple[str, ...] = ()
    if not known.all():
        notes = (
            f"uplift model: {int((~known).sum()):,} scored customer(s) are not eligible under its "
            f"label settings at {scores.as_of}, so it has no uplift for them: not on the contact "
            "list",
        )
        log.warning(notes[0])
    scored = scored[known]
    effects = effects.reindex(scored["customer_id"].astype(str)).set_axis(scored.index)
    step("planning the contacts")
    return plan_contacts(scored, budget, bundle, effects), notes


def _with_reasons(
    contacts: pd.DataFrame,
    outreach: pd.DataFrame,
    scores: Scores,
    bundle: ModelBundle,
    config: OutreachConfig,
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The contact list with each customer's risk tier, reasons and action, and a note.

    A contact outside the tiers that got reasons (uplift can pick a low-risk
    customer) is explained here, so every contacted row has them, up to
    `max_reason_rows` such rows (the first contacts); the note says how many
    are left without.
    """
    shown = ["risk_tier", *REASON_COLUMNS]
    known = outreach.set_index("customer_id")
    joined = contacts.join(known[[*shown, "has_reasons"]], on="customer_id")
    missing = ~joined["has_reasons"].fillna(False).astype(bool)
    notes: tuple[str, ...] = ()
    if missing.sum() > config.max_reason_rows:
        notes = (
            f"contact list: {int(missing.sum()) - config.max_reason_rows:,} of "
            f"{int(missing.sum()):,} contacts outside the tiers with reasons have none "
            f"(outreach.max_reason_rows is {config.max_reason_rows:,})",
        )
        log.warning(notes[0])
        missing &= missing.cumsum() <= config.max_reason_rows
    if missing.any():
        frame = scores.frame
        rows = frame.index[frame["customer_id"].isin(joined.loc[missing, "customer_id"])]
        explained = explain_rows(frame.loc[rows], bundle, config)
        explained.index = frame.loc[rows, "customer_id"].to_numpy()
        for column in REASON_COLUMNS:
            values = joined.loc[missing, "customer_id"].map(explained[column])
            joined.loc[missing, column] = values.to_numpy()
    return joined[[*contacts.columns, *shown]], notes


def score_on_spark(
    config: RunConfig,
    out_dir: Path,
    model: str | None = None,
    as_of: dt.date | None = None,
    top: int = 1_000,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
    progress: Progress | None = None,
) -> spark_scoring.SparkScores:
    """`score` for data on Spark: the list is computed and written by Spark, never collected.

    Writes `out_dir/outreach/` (parquet by risk tier), `winback/`, `not_scored/`, the
    first `top` rows as `outreach_top.csv`, `report.html` and `summary.json`.
    """
    step = progress or (lambda _: None)
    bundle, label = _scoring_model(config, model, step)
    step("validating tables")
    tables = load_data(config, sources, con)
    as_of = as_of or default_as_of(tables)
    findings = check_scoring_data(tables, bundle)
    step(f"computing features, scores and the list as of {as_of} on Spark")
    with file_set(out_dir, retire=CONTACT_FILES) as staging:  # one set, as `write_score_outputs`
        run = spark_scoring.score_on_spark(
            tables, bundle, as_of, config.outreach, label, staging, top, findings
        )
    written = Path(staging).resolve()  # Spark's paths are absolute
    moved = {name: Path(out_dir) / path.relative_to(written) for name, path in run.paths.items()}
    return dataclasses.replace(run, paths=moved)


def check_scoring_data(tables: ValidatedTables, bundle: ModelBundle) -> tuple[str, ...]:
    """Survey scales, and the model's event types against the data's (e.g. 'login' vs 'Login').

    Returns every data-quality warning of the run, validation's included.
    """
    check_surveys(tables, bundle.config)
    findings = event_type_findings(bundle.config, event_type_counts(tables))
    for finding in findings:
        log.warning(finding)
    return (*tables.findings, *findings)


def _scoring_model(config: RunConfig, model: str | None, step: Progress) -> tuple[ModelBundle, str]:
    """The bundle to score with (default: the champion), checked against the config.

    Scoring with the registry's champion first repairs an export that an
    interrupted promotion left pointing at another version, so that
    `--model models/` and the default agree from then on.
    """
    if model is None:
        model = f"models:/{config.mlflow.registered_model}@champion"
        tracking.repair_export(config.mlflow)
    step(f"loading {model}")
    bundle, label = tracking.load_model_bundle(model, config.mlflow)
    check_compatible(bundle, config)
    return bundle, label


@dataclass(frozen=True)
class MonitorOutcome:
    """Drift of the features at `as_of` against training, earlier lists' live results, alerts."""

    as_of: dt.date
    model: str
    drift: pd.DataFrame
    live: list[LivePerformance]
    calibration: pd.DataFrame  # as_of, probability bin, rows, predicted, observed
    waiting: list[str]  # lists whose label window is not over yet
    alerts: list[str]
    run_id: str

    def live_rows(self) -> list[dict[str, object]]:
        """One record per earlier list: where it came from and its live metrics."""
        return [
            {"source": p.source, "as_of": p.as_of, "model": p.model, "unlabelled": p.unlabelled}
            | p.metrics.as_dict()
            for p in self.live
        ]

    def summary(self) -> dict[str, object]:
        """What monitor.json holds: the date, the model, the alerts and the live metrics."""
        return {
            "as_of": str(self.as_of),
            "model": self.model,
            "alerts": self.alerts,
            # of the features that can alarm (not those in [monitor] ignore); null if none can
            "max_psi": _max_or_none(self.drift.loc[~self.drift["ignored"], "psi"]),
            "live": [
                {
                    "source": p.source,
                    "as_of": p.as_of,
                    "model": p.model,
                    "unlabelled": p.unlabelled,
                    **p.metrics.as_dict(),
                }
                for p in self.live
            ],
            "waiting": self.waiting,
            "mlflow_run": self.run_id,
        }


def monitor(
    config: RunConfig,
    model: str | None = None,
    as_of: dt.date | None = None,
    scored: Sequence[Path] = (),
    sources: Mapping[str, Source] | None = None,
    progress: Progress | None = None,
) -> MonitorOutcome:
    """Compare the features at `as_of` with training; measure earlier lists whose labels are in.

    The features are recomputed exactly as `score` computes them (same
    model, same date, same data give the same rows). `scored` are earlier
    outreach lists; each is labelled from today's data once its label
    window has passed. The result is logged as an MLflow run.
    """
    step = progress or (lambda _: None)
    bundle, label = _scoring_model(config, model, step)
    profile = bundle.training.get("profile")
    if not profile:
        raise ModelError(
            f"{label} has no training profile (it was trained before churnmodel could monitor "
            "drift); retrain it to monitor"
        )
    step("validating tables")
    tables = load_data(config, sources)
    as_of = as_of or default_as_of(tables)
    findings = check_scoring_data(tables, bundle)
    step(f"computing features as of {as_of}")
    scores = score_customers(tables, bundle, as_of, step)
    if scores.frame.empty:
        raise nothing_eligible(as_of, scores.not_scored_counts())
    drift = feature_drift(profile, scores.frame)
    drift["ignored"] = ignored(drift["feature"], config.monitor.ignore)
    live, calibration, waiting = [], [], []
    for path in scored:
        step(f"labelling {path}")
        # the model's churn definition, not the config's
        measured = measure_list(tables, read_outreach(Path(path)), str(path), bundle.config.label)
        live += [measured.live] if measured.live is not None else []
        calibration += [measured.calibration] if measured.calibration is not None else []
        waiting += [measured.waiting] if measured.waiting is not None else []
    reported = trained_auc(bundle.training)
    alerts = drift_alerts(drift, config.monitor) + [
        line for p in live for line in p.alerts(reported, config.monitor)
    ]
    step("logging to MLflow")
    calibrated = pd.concat(calibration, ignore_index=True) if calibration else pd.DataFrame()
    run_id = tracking.log_monitor_run(
        config, label, as_of, drift, live, calibrated, alerts, findings
    )
    return MonitorOutcome(as_of, label, drift, live, calibrated, waiting, alerts, run_id)


def _max_or_none(values: pd.Series) -> float | None:
    """The largest value, or None (JSON null, not NaN) when there is none."""
    return float(values.max()) if values.notna().any() else None


def write_monitor_outputs(outcome: MonitorOutcome, limit: float, out_dir: Path) -> dict[str, Path]:
    """The monitor files (json, csv, png, html), written as one set (`file_set`)."""
    names = ("monitor.json", "drift.csv", "live.csv", "calibration.csv", "psi.png", "monitor.html")
    live = pd.DataFrame(outcome.live_rows())
    chart = psi_chart(outcome.drift, limit)
    title = f"Model health as of {outcome.as_of}, model {outcome.model}"
    with file_set(out_dir) as tmp:
        (tmp / "monitor.json").write_text(json.dumps(outcome.summary(), indent=2) + "\n")
        write_csv(outcome.drift, tmp / "drift.csv")
        write_csv(live, tmp / "live.csv")
        write_csv(outcome.calibration, tmp / "calibration.csv")
        write_png(chart, tmp / "psi.png")
        page = render_monitor(title, outcome.drift, live, outcome.alerts, outcome.waiting, chart)
        (tmp / "monitor.html").write_text(page, encoding="utf-8")
    return {name: Path(out_dir) / name for name in names}


@dataclass(frozen=True)
class KpiRun:
    """KPIs per period and segment, the cohort table, and the periods they cover."""

    kpis: pd.DataFrame
    cohorts: Cohorts
    period: str  # month or quarter
    periods: list[tuple[dt.date, dt.date]]

    def title(self) -> str:
        """What the report is about, e.g. "Retention KPIs by month, 2024-04 to 2025-12"."""
        first, last = self.periods[0][0], self.periods[-1][0]
        return f"Retention KPIs by {self.period}, {first:%Y-%m} to {last:%Y-%m}"


def compute_kpis(
    config: RunConfig,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
    progress: Progress | None = None,
) -> KpiRun:
    """Retention, revenue and survey KPIs per whole period, and cohort retention by month."""
    step = progress or (lambda _: None)
    step("validating tables")
    tables = load_data(config, sources, con)
    config = config.model_copy(update={"label": resolve_label(config.label, table_facts(tables))})
    periods = complete_periods(
        tables.observed_from, tables.observed_until, config.kpi.period, config.label
    )
    step(f"computing KPIs for {len(periods)} {config.kpi.period}s")
    table = retention_kpis(tables, periods, config.label, config.kpi)
    step("computing cohort retention")
    return KpiRun(table, cohort_retention(tables, config.label), config.kpi.period, periods)


CONTACT_FILES = ("contacts.parquet", "contacts.csv")
"""The budgeted contact list, written by a scoring run with a budget or an uplift model."""


def write_score_outputs(
    run: ScoreRun, out_dir: Path, files: OutreachConfig | None = None
) -> dict[str, Path]:
    """outreach.parquet/.csv, winback.csv, not_scored.csv and report.html, as one set.

    They are written as one set (`file_set`), so the list, the customers
    not scored and the report always come from the same run, even if the
    job is killed while writing. Other files in `out_dir` are kept. `files` (the config's
    `[outreach]`) sets the csv style and header words. A run with a
    budgeted list adds contacts.parquet and contacts.csv.
    """
    files = files or OutreachConfig()
    data = report_data(run.outreach)
    unseen = run.scores.unseen_categories
    report = render_report(
        data, run.counts(), run.model, unseen, files.currency, run.findings, run.targeting
    )
    winback = run.scores.winback
    if winback is None:
        winback = pd.DataFrame({"customer_id": pd.Series([], dtype="object")})
    with file_set(out_dir, retire=CONTACT_FILES) as staging:
        written = write_outreach(
            run.outreach,
            run.scores.not_scored,
            winback,
            report,
            staging,
            files.csv_style,
            files.headers,
        )
        if run.targeting is not None:  # else an older run's contact list is retired
            contacts = run.targeting.contacts
            parquet, csv = (staging / name for name in CONTACT_FILES)
            write_parquet(contacts, parquet)
            written[parquet.name] = parquet
            written[csv.name] = write_people_csv(contacts, csv, files.csv_style, files.headers)
    return {name: Path(out_dir) / path.name for name, path in written.items()}
