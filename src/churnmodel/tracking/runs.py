"""MLflow runs: where tracking points, and what a training or evaluation run records.

A training run records enough to answer, months later, "what was this model
trained on and was it any good": the configuration, the data window, rows
and churn rate per cutoff, parameters, every metric of the model and of the
baselines on the same rows, the plots, the feature list with dtypes, and the
model itself with a signature and an input example.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from churnmodel._io import HOST, file_lock, process_running
from churnmodel.config import MlflowConfig, RunConfig
from churnmodel.features.catalog import FeatureSpec, slug
from churnmodel.model.evaluate import Metrics
from churnmodel.monitoring import LivePerformance

if TYPE_CHECKING:
    from churnmodel.uplift.study import UpliftStudy

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_REQUIREMENTS = ("lightgbm", "scikit-learn", "pandas", "numpy", "pydantic", "mlflow")


def tracking_uri(config: MlflowConfig) -> str:
    """The config's URI, else MLFLOW_TRACKING_URI, else a sqlite file in the working directory.

    A config read from a file already names its store (`load_config` puts
    the default `mlflow.db` beside the file); the working directory is only
    the fallback for configs built in code.

    Always explicit: left to itself MLflow may fall back to a `./mlruns`
    file store, and runs would silently land somewhere else.
    """
    return config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def use_tracking(config: MlflowConfig) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id.

    With a sqlite store, a new experiment keeps its artifacts in `mlartifacts/`
    beside the database file rather than in the working directory, and the
    first use of a new store (MLflow creates its tables then) holds a lock
    beside the file, so two runs started together do not both create them.
    Runs that a killed process of this machine left RUNNING are marked FAILED.
    """
    uri = tracking_uri(config)
    users_choice = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow exports its URI to the environment; put back the user's, so the
    # next config loaded in this process still finds its own store
    if users_choice is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = users_choice
    database = _sqlite_file(uri)
    lock: AbstractContextManager[None] = nullcontext()
    if database is not None and os.access(database.parent, os.W_OK):
        lock = file_lock(database.with_name(database.name + ".lock"))
    with lock:
        found = mlflow.get_experiment_by_name(config.experiment)
        if found is None:
            location = (database.parent / "mlartifacts").as_uri() if database else None
            experiment_id = str(
                mlflow.create_experiment(config.experiment, artifact_location=location)
            )
        else:
            experiment_id = str(found.experiment_id)
    _close_dead_runs(experiment_id)
    return experiment_id


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a plain sqlite URI (not in memory, no query string)."""
    if not uri.startswith("sqlite:///") or "?" in uri or uri.endswith(":memory:"):
        return None
    database = Path(uri.removeprefix("sqlite:///")).resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    return database


def _close_dead_runs(experiment_id: str) -> None:
    """Mark FAILED the runs of this host whose process died (kill -9, OOM) while they ran."""
    stuck = mlflow.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{HOST}'",
        output_format="list",
    )
    for run in stuck:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and not process_running(int(pid)):
            MlflowClient().set_terminated(run.info.run_id, "FAILED")
            log.warning(
                "run %s of process %s (no longer running) marked FAILED", run.info.run_id, pid
            )


HOST_TAG, PID_TAG = "churnmodel.host", "churnmodel.pid"


def _owner_tags() -> dict[str, str]:
    """Which process runs this run, so a later run can tell when it died unfinished."""
    return {HOST_TAG: HOST, PID_TAG: str(os.getpid())}


@dataclass(frozen=True)
class TrainingRun:
    """The active MLflow run of one training."""

    run_id: str

    def log_inputs(
        self,
        config: RunConfig,
        observed: tuple[object, object],
        cutoffs: pd.DataFrame,
        specs: tuple[FeatureSpec, ...],
        findings: Sequence[str] = (),
    ) -> None:
        """Config, data window, per-cutoff rows and churn rate, the feature list, data findings."""
        mlflow.log_params(_flatten(config.model_dump(mode="json")))
        mlflow.log_params({"data.observed_from": observed[0], "data.observed_until": observed[1]})
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        _log_csv(cutoffs, "data/cutoffs.csv")
        for part, rows in cutoffs.groupby("part"):
            mlflow.log_metrics(
                {
                    f"rows_{part}": float(rows["rows"].sum()),
                    f"customers_{part}": float(rows["customers"].sum()),
                    f"churn_rate_{part}": float(
                        (rows["churn_rate"] * rows["rows"]).sum() / rows["rows"].sum()
                    ),
                }
            )
        features = [{"name": s.name, "family": s.family, "dtype": s.dtype} for s in specs]
        mlflow.log_dict({"features": features}, "features.json")
        mlflow.log_param("feature_count", len(specs))
        log_findings(findings)

    def log_results(
        self,
        params: Mapping[str, object],
        metrics: Mapping[str, Metrics],
        extra_metrics: Mapping[str, float],
        backtest: pd.DataFrame,
        plots: Path,
    ) -> None:
        """Model parameters, every scorer's metrics, the backtest table and the plots."""
        mlflow.log_params({f"trained.{k}": v for k, v in params.items()})
        mlflow.log_metrics(dict(extra_metrics))
        _log_evaluation(metrics, backtest, plots)

    def log_candidates(self, table: pd.DataFrame) -> None:
        """Every candidate the backtest tried, with its metrics and whether it shipped."""
        _log_csv(table, "evaluation/candidates.csv")

    def log_model(self, bundle: Path, example: pd.DataFrame, probabilities: Any) -> str:
        """The pyfunc model (code + plain bundle) with signature and input example.

        The example is cast at the model boundary: pandas categories become
        plain text (with None for missing), which signatures can describe.
        """
        example = _at_model_boundary(example)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"bundle": str(bundle)},
            signature=infer_signature(example, probabilities),
            input_example=example,
            pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in MODEL_REQUIREMENTS],
        )
        return str(info.model_uri)

    def tag(self, tags: Mapping[str, object]) -> None:
        """Set run tags (values become text)."""
        mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_findings(findings: Sequence[str]) -> None:
    """The data-quality warnings: their count as a metric, their text as data/quality.txt."""
    mlflow.log_metric("data_quality_warnings", len(findings))
    mlflow.set_tag("churnmodel.data_quality", f"{len(findings)} warning(s)")
    mlflow.log_text("".join(f"{f}\n" for f in findings) or "no warnings\n", "data/quality.txt")


@contextmanager
def start_training_run(config: RunConfig, run_name: str | None = None) -> Iterator[TrainingRun]:
    """An MLflow run in the configured experiment; failed runs are marked FAILED."""
    experiment_id = use_tracking(config.mlflow)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"churnmodel.kind": "training", **_owner_tags()})
        yield TrainingRun(run.info.run_id)


def log_evaluation_run(
    config: RunConfig,
    model: str,
    metrics: Mapping[str, Metrics],
    backtest: pd.DataFrame,
    plots: Path,
) -> str:
    """Record a re-evaluation of an existing model on new data; returns the run id."""
    experiment_id = use_tracking(config.mlflow)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate {model}") as run:
        mlflow.set_tags(
            {"churnmodel.kind": "evaluation", "churnmodel.model": model, **_owner_tags()}
        )
        mlflow.log_params(_flatten(config.model_dump(mode="json")))
        _log_evaluation(metrics, backtest, plots)
        return str(run.info.run_id)


def log_monitor_run(
    config: RunConfig,
    model: str,
    as_of: dt.date,
    drift: pd.DataFrame,
    live: Sequence[LivePerformance],
    calibration: pd.DataFrame,
    alerts: Sequence[str],
    findings: Sequence[str] = (),
) -> str:
    """Record a monitoring check (PSI per feature, live metrics per list, alerts); returns its id.

    Metric names: ``psi.<feature>``, ``drift_max_psi``, ``alerts`` and
    ``live.<list date>.<metric>``, so the MLflow UI can chart them across
    monthly checks.
    """
    experiment_id = use_tracking(config.mlflow)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor {as_of}") as run:
        mlflow.set_tags(
            {
                "churnmodel.kind": "monitor",
                "churnmodel.model": model,
                "churnmodel.as_of": str(as_of),
                "churnmodel.alert": str(bool(alerts)).lower(),
                **_owner_tags(),
            }
        )
        mlflow.log_params(_flatten(config.monitor.model_dump(mode="json"), "monitor."))
        log_findings(findings)
        mlflow.log_metrics(
            {f"psi.{f}": float(v) for f, v in zip(drift.feature, drift.psi, strict=True)}
        )
        mlflow.log_metrics({"drift_max_psi": float(drift.psi.max()), "alerts": float(len(alerts))})
        for result in live:
            # a metric that is NaN (e.g. ROC AUC when the list churned all or none) is left out
            values = result.metrics.as_dict()
            known = {k: v for k, v in values.items() if not math.isnan(v)}
            mlflow.log_metrics({f"live.{result.as_of}.{k}": v for k, v in known.items()})
        _log_csv(drift, "monitor/drift.csv")
        if len(calibration):
            _log_csv(calibration, "monitor/calibration.csv")
        mlflow.log_text("\n".join(alerts) + ("\n" if alerts else ""), "monitor/alerts.txt")
        return str(run.info.run_id)


def log_uplift_run(
    config: RunConfig,
    study: UpliftStudy,
    left_out: Mapping[str, int],
    files: Path,
    findings: Sequence[str] = (),
) -> str:
    """Record an uplift study (`churnmodel train-uplift`); returns the run id.

    Metrics: the sends learned from and judged, the Qini coefficient per
    offer, and per policy its contacts, value and gain per held-out send;
    the table and the charts are the run's artifacts.
    """
    experiment_id = use_tracking(config.mlflow)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"uplift {study.held_out}") as run:
        mlflow.set_tags(
            {
                "churnmodel.kind": "uplift",
                "churnmodel.uplift.winner": study.winner,
                **_owner_tags(),
            }
        )
        mlflow.log_params(
            {
                "held_out": study.held_out,
                "budget_contacts": study.budget,
                "best_on_average": study.best_on_average,
                **{f"cost.{slug(offer)}": cost for offer, cost in study.costs.items()},
            }
        )
        metrics = {
            "sends_learned": study.sends_learned,
            "sends_judged": study.sends_judged,
            "uplift_wins": float(study.uplift_wins),
            **{f"qini_{slug(offer)}": q for offer, q in study.qini.items()},
        }
        for policy, row in study.policies.iterrows():
            name = slug(str(policy))
            metrics |= {f"policy_{name}_{k}": float(v) for k, v in row.items()}
        mlflow.log_metrics(metrics)
        unused = "".join(f"{n} send(s): {reason}\n" for reason, n in left_out.items())
        mlflow.log_text(unused or "every send was used\n", "uplift/sends_left_out.txt")
        log_findings(findings)
        mlflow.log_artifacts(str(files), "uplift")
        return str(run.info.run_id)


def _log_evaluation(metrics: Mapping[str, Metrics], backtest: pd.DataFrame, plots: Path) -> None:
    """Every scorer's metrics as `<scorer>_<metric>`, the backtest table and the plots."""
    for scorer, values in metrics.items():
        mlflow.log_metrics({f"{scorer}_{k}": v for k, v in values.as_dict().items()})
    _log_csv(backtest, "evaluation/backtest.csv")
    mlflow.log_artifacts(str(plots), "plots")


def _at_model_boundary(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    # object labels: mlflow compares the column index with a range, which
    # pandas 3 deprecates for its Arrow-backed string index
    out.columns = pd.Index(list(out.columns), dtype="object")
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("object").where(out[column].notna(), None)
    return out


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"label.horizon_days": "90", ...}; lists as JSON."""
    flat: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            flat |= _flatten(item, f"{name}.")
        else:
            flat[name] = json.dumps(item) if isinstance(item, list | dict) else str(item)
    return flat


def _log_csv(frame: pd.DataFrame, artifact_file: str) -> None:
    """A table artifact people can open (dates as YYYY-MM-DD)."""
    mlflow.log_text(frame.to_csv(index=False, date_format="%Y-%m-%d"), artifact_file)
