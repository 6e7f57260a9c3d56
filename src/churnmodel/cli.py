"""The `churnmodel` command line: options -> config -> workflows -> a rich summary.

Errors the user can fix (bad data, bad config) print one line and exit with
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from churnmodel import __version__
from churnmodel.config import RunConfig, load_config, parse_config
from churnmodel.errors import ChurnModelError, ConfigError, is_out_of_memory

if TYPE_CHECKING:  # the rest is imported by the command that needs it: --help stays fast
    import pandas as pd

    from churnmodel.model.evaluate import Metrics
    from churnmodel.outreach.people import CsvStyle, Headers
    from churnmodel.spark_scoring import SparkScores
    from churnmodel.starter import Starter
    from churnmodel.uplift.run import UpliftRun
    from churnmodel.workflows import (
        FeatureRun,
        KpiRun,
        MonitorOutcome,
        ScoreRun,
        TrainingOutcome,
    )

app = typer.Typer(
    help="Customer churn prediction: find your data's settings, build features, train, "
    "evaluate, score, export lists, monitor the model and compute retention KPIs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])


WIDE = 200
"""Columns for tables when the output is a file or pipe (rich would cut them at 80)."""


class JsonLines(logging.Formatter):
    """One JSON object per log line, for schedulers that collect structured logs."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as `{"time", "level", "logger", "message"}` (time in UTC)."""
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(entry, ensure_ascii=False)


OUT_OF_MEMORY_EXIT_CODE = 2
"""Like any input the machine cannot take: a setting fixes it, not a bug report."""


def _say_error(message: str) -> None:
    """One red line on stderr, or one JSON log line under --log-json."""
    if any(isinstance(h.formatter, JsonLines) for h in logging.getLogger().handlers):
        logging.getLogger("churnmodel").error("error: %s", message)
    else:
        console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def _friendly_errors(command: F) -> F:
    """Turn a ChurnModelError into one red line (or one JSON log line) and its exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChurnModelError as exc:
            _say_error(str(exc))
            raise typer.Exit(exc.exit_code) from exc
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            detail = (str(exc).splitlines() or ["no detail"])[0]
            _say_error(
                f"out of memory ({type(exc).__name__}: {detail}); "
                'set data.memory_limit (e.g. "4GB": DuckDB then spills to disk), '
                "data.max_matrix_rows for training, or use --engine spark"
            )
            raise typer.Exit(OUT_OF_MEMORY_EXIT_CODE) from exc

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"churnmodel {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show debug logging.", metavar="")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Only warnings and errors; no summary tables (for schedulers).",
            metavar="",
        ),
    ] = False,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log one JSON object per line to stderr.", metavar="")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version.", metavar=""
        ),
    ] = False,
) -> None:
    """Customer churn prediction from transactions and engagement events."""
    for stream in (console, out):  # a log file gets whole tables, not 80 columns
        if not stream.is_terminal and "COLUMNS" not in os.environ:
            stream.width = WIDE
    out.quiet = quiet
    handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False)
    if log_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
    elif not console.is_terminal:  # a log file: plain lines, no padding to the table width
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("ibis", "sqlglot", "urllib3", "alembic", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow narrates every download and schema migration; keep its errors only.
    logging.getLogger("mlflow").setLevel(logging.DEBUG if verbose else logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


TERMINATED_EXIT_CODE = 143
"""128 + SIGTERM, as a shell reports a process the signal ended."""


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """A scheduler's stop (SIGTERM) unwinds like an error: runs end FAILED, staging is removed."""
    raise SystemExit(TERMINATED_EXIT_CODE)


def run() -> None:
    """The `churnmodel` command: the app, with SIGTERM turned into an orderly exit.

    Only the real command installs the handler; a notebook or a test that
    calls `app` in its own process keeps its own signal handling.
    """
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    app()


@app.command()
@_friendly_errors
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the parquet tables.")] = Path(
        "data/demo"
    ),
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 5_000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives identical files.")
    ] = 0,
    business: Annotated[
        str, typer.Option(help="contractual (writes a churn table) or non_contractual.")
    ] = "non_contractual",
    campaigns: Annotated[
        str | None,
        typer.Option(
            help="Send days of past retention campaigns, e.g. 2024-11-04,2025-03-03: writes "
            "campaigns (and campaign_truth, the true effects, for checking a learner).",
            metavar="DAYS",
        ),
    ] = None,
) -> None:
    """Write a realistic synthetic data set: customers, transactions, events (churn, campaigns)."""
    import pyarrow.parquet as pq

    from churnmodel.data.simulate import Business, SimulationParams, write_simulation

    if business not in ("contractual", "non_contractual"):
        raise typer.BadParameter("expected contractual or non_contractual", param_hint="--business")
    params = SimulationParams(
        n_customers=customers,
        seed=seed,
        business=cast(Business, business),
        campaign_dates=_days(campaigns) if campaigns else (),
    )
    outside = [d for d in params.campaign_dates if not params.start <= d < params.end]
    if outside:
        raise typer.BadParameter(
            f"{outside[0]} lies outside the simulated days, {params.start} to "
            f"{params.end - dt.timedelta(days=1)}",
            param_hint="--campaigns",
        )
    with console.status(f"simulating {customers:,} customers"):
        paths = write_simulation(out_dir, params)
    table = Table("table", "rows", "file", title=f"simulated {business} data (seed {seed})")
    for name, path in paths.items():
        table.add_row(name, f"{pq.ParquetFile(path).metadata.num_rows:,}", str(path))
    out.print(table)


def _days(text: str) -> tuple[dt.date, ...]:
    """Comma-separated ISO days, sorted; a bad one is a one-line error naming the option."""
    try:
        return tuple(
            sorted({dt.date.fromisoformat(d.strip()) for d in text.split(",") if d.strip()})
        )
    except ValueError as error:
        raise typer.BadParameter(f"expected days like 2024-11-04,2025-03-03 ({error})") from None


TableOption = Annotated[
    Path | None, typer.Option(help="This table's file or folder, if its name does not say.")
]


@app.command("init")
@_friendly_errors
def init_command(
    data: Annotated[
        Path, typer.Option("--data", help="Folder with the tables (parquet or csv files/folders).")
    ] = Path("data"),
    out_path: Annotated[Path, typer.Option("--out", help="The config to write.")] = Path(
        "churn.toml"
    ),
    customers: TableOption = None,
    transactions: TableOption = None,
    events: TableOption = None,
    churn: TableOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing config.", metavar="")
    ] = False,
) -> None:
    """Find the tables in a folder, show what the data holds, and write a starter churn.toml.

    Tables are found by name (orders.csv is the transactions table, users.parquet
    the customers table ...) and their columns by common names (user_id, ts,
    total ...). Every default churnmodel would use is printed and written out.
    """
    from churnmodel._io import write_text
    from churnmodel.starter import inspect_data, render_toml

    if out_path.exists() and not force:
        raise typer.BadParameter(
            f"{out_path} exists; pass --force to replace it", param_hint="--out"
        )
    named = {"customers": customers, "transactions": transactions, "events": events, "churn": churn}
    explicit = {name: path for name, path in named.items() if path is not None}
    with console.status(f"reading {data}"):
        starter = inspect_data(data, explicit)
    _print_starter(starter)
    write_text(render_toml(starter, out_path), out_path)
    out.print(f"wrote [bold]{out_path}[/]; next: churnmodel train --config {out_path}")


def _print_starter(starter: Starter) -> None:
    import pandas as pd

    from churnmodel.starter import attribute_notes

    facts, config = starter.facts, starter.config
    folders = {str(p.parent) for p in starter.sources.values()}
    tables = Table(
        "table", "rows", "file", "columns mapped", title=f"tables in {', '.join(folders)}"
    )
    for name, path in starter.sources.items():
        mapped = "\n".join(f"{c}={u}" for c, u in starter.columns.get(name, {}).items())
        tables.add_row(name, f"{facts.rows.get(name, 0):,}", path.name, mapped or "as named")
    out.print(tables)
    out.print(
        f"data from {facts.observed_from:%Y-%m-%d} to {facts.observed_until:%Y-%m-%d} "
        f"({(facts.observed_until - facts.observed_from).days} days)"
    )
    if facts.event_types:
        used = set(config.features.engagement.types)
        reserved = set(config.features.feedback.event_types)
        total = sum(facts.event_types.values())
        kinds = Table("event type", "events", "share", "becomes", title="event types")
        for kind, count in facts.event_types.items():
            role = "own features" if kind in used else "feedback" if kind in reserved else "other"
            kinds.add_row(kind, f"{count:,}", f"{count / total:.2%}", role)
        out.print(kinds)
    notes = attribute_notes(starter)
    if notes:
        attributes = Table("customers column", "becomes", title="customer attributes")
        for name, note in notes.items():
            attributes.add_row(name, note)
        out.print(attributes)
    label = config.label
    out.print(
        f"label: {label.business}, churn = "
        + (
            f"a churn date within {label.horizon} days of a cutoff"
            if label.contractual
            else f"no {label.activity} for {label.horizon} days after a cutoff"
        )
    )
    rates = Table("cutoff", "customers", "churn rate", title="labels at a few cutoffs")
    for row in starter.churn_rates.to_dict("records"):
        rates.add_row(
            f"{pd.Timestamp(row['cutoff']):%Y-%m-%d}",
            f"{int(row['customers']):,}",
            f"{row['churn_rate']:.1%}",
        )
    out.print(rates)
    cutoffs = starter.cutoffs
    out.print(
        f"{len(cutoffs)} training cutoffs every {config.cutoffs.every}, "
        f"{cutoffs[0]} to {cutoffs[-1]}"
    )


ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Run config (TOML).")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a local folder "
        "(e.g. models/, following its champion pointer); default: the registered champion."
    ),
]


AsOfOption = Annotated[
    dt.datetime | None,
    typer.Option(
        "--as-of",
        formats=["%Y-%m-%d"],
        help="Scoring date; default: the day after the last timestamp in the data.",
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", help="duckdb or spark; default: the config's data.engine (duckdb)."),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="With --engine spark: local[2], spark://host:7077, yarn ...; "
        "default: what spark-submit set, else local[*].",
    ),
]


def _run_config(
    path: Path, engine: str | None, spark_master: str | None, **sections: dict[str, object]
) -> RunConfig:
    """The config file with the command line's options applied; None keeps the file's value."""
    raw = load_config(path).model_dump()
    options: dict[str, dict[str, object]] = {
        "data": {"engine": engine, "spark_master": spark_master},
        **sections,
    }
    for section, values in options.items():
        raw[section] |= {key: value for key, value in values.items() if value is not None}
    return parse_config(raw, source="command line")


@app.command()
@_friendly_errors
def check(
    config: ConfigOption = Path("churn.toml"),
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Check the data as every command does first; exit 2 on an error, 0 with warnings listed.

    Validates each table against the data contract, then looks across rows
    and tables: timestamps outside the regular activity (they never move
    the default scoring date), ids that match no customer or look damaged,
    numbers written with thousands separators, survey answers off their
    scale, and configured event types that never occur.
    """
    from churnmodel.workflows import check_data

    run_config = _run_config(config, engine, spark_master)
    with console.status("starting") as status:
        checked = check_data(run_config, progress=lambda msg: status.update(msg))
    tables = checked.tables
    table = Table("table", "rows", "exact duplicates", title="tables")
    for name, report in tables.reports.items():
        table.add_row(name, f"{report.rows:,}", f"{report.duplicate_rows:,}")
    out.print(table)
    last = tables.observed_until.date() - dt.timedelta(days=1)
    out.print(
        f"regular activity from {tables.observed_from:%Y-%m-%d} to {last}; "
        f"default scoring date {tables.observed_until:%Y-%m-%d}"
    )
    out.print(
        f"{len(checked.findings)} warning(s)" + (" (listed above)" if checked.findings else "")
    )


@app.command()
@_friendly_errors
def features(
    config: ConfigOption = Path("churn.toml"),
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the feature matrix.")
    ] = Path("out/features.parquet"),
    cutoff: Annotated[
        list[dt.datetime] | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="A cutoff date (repeatable); default: the config's schedule."
        ),
    ] = None,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Build the point-in-time feature matrix (one row per customer and cutoff) with labels."""
    from churnmodel.workflows import build_features, write_features

    run_config = _run_config(config, engine, spark_master)
    cutoffs = [c.date() for c in cutoff] if cutoff else None
    with console.status("starting") as status:
        run = build_features(run_config, cutoffs, progress=lambda msg: status.update(msg))
        status.update(f"writing {out_path}")
        write_features(run.matrix, out_path)
    _print_feature_summary(run, run.config, out_path)


def _print_feature_summary(run: FeatureRun, config: RunConfig, path: Path) -> None:
    frame = run.matrix.frame
    per_cutoff = frame.groupby("cutoff", observed=True)["label"].agg(["size", "mean"])
    table = Table(
        "cutoff",
        "customers",
        "churn rate",
        title=f"{config.label.business} labels, {config.label.horizon_days}-day horizon",
    )
    for cutoff, row in per_cutoff.iterrows():
        table.add_row(f"{cutoff:%Y-%m-%d}", f"{int(row['size']):,}", f"{row['mean']:.1%}")
    table.add_section()
    table.add_row("all", f"{len(frame):,}", f"{frame['label'].mean():.1%}")
    out.print(table)
    families = sorted({s.family for s in run.matrix.specs})
    out.print(
        f"{len(frame):,} rows x {len(run.matrix.specs)} features "
        f"({', '.join(families)}) at {len(run.cutoffs)} cutoffs -> [bold]{path}[/]"
    )


@app.command("train")
@_friendly_errors
def train_command(
    config: ConfigOption = Path("churn.toml"),
    tune: Annotated[
        int, typer.Option(min=0, help="Optuna trials (each a LightGBM backtest) before training.")
    ] = 0,
    force_promote: Annotated[
        bool,
        typer.Option(
            "--force-promote", help="Make the new version champion regardless.", metavar=""
        ),
    ] = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Train LightGBM, compare it with baselines and the champion, log and register it in MLflow.

    With --engine spark the features are computed on Spark and the matrix is
    collected for LightGBM (sampled when above data.max_matrix_rows).
    """
    from churnmodel.workflows import train

    run_config = _run_config(config, engine, spark_master)
    with console.status("starting") as status:
        outcome = train(
            run_config,
            tune_trials=tune,
            force_promote=force_promote,
            progress=lambda msg: status.update(msg),
        )
    _print_training_summary(outcome, outcome.config)


@app.command("train-uplift")
@_friendly_errors
def train_uplift_command(
    config: ConfigOption = Path("churn.toml"),
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder for the study: policies.csv, qini.png and policies.png."
        ),
    ] = Path("out/uplift"),
    budget: Annotated[
        float,
        typer.Option(
            "--budget-share",
            "--budget",
            min=0.001,
            max=1.0,
            help="Contacts allowed on the held-out campaign, as a share of its sends (0-1).",
        ),
    ] = 0.2,
) -> None:
    """Learn from past campaigns whom each offer keeps; judge it on the newest campaign.

    Needs data.campaigns (customer_id, campaign_id, sent_at, treatment, optional
    cost; treatment 'control' for the hold-out group). The learner is fitted on
    every campaign but the newest and compared there, at the same number of
    contacts, with targeting by risk, by risk x value and at random; then it is
    refitted on all campaigns. The run is logged to MLflow. See docs/uplift.md.
    """
    from churnmodel.uplift.run import train_uplift

    run_config = _run_config(config, None, None)
    with console.status("starting") as status:
        run = train_uplift(run_config, out_dir, budget, progress=lambda msg: status.update(msg))
    _print_uplift_summary(run)


def _print_uplift_summary(run: UpliftRun) -> None:
    study = run.study
    table = Table(
        "policy",
        "contacts",
        "value per send",
        "gain per send (95 % interval)",
        title=f"Targeting on the held-out campaign {escape(study.held_out)} "
        f"({study.sends_judged:,} sends; learned from {study.sends_learned:,})",
        caption="doubly robust estimates on the randomised sends: value kept minus offer costs; "
        f"gain: over no contact; risk, risk x value and random send "
        f"{escape(repr(study.best_on_average))}",
    )
    for policy, row in study.policies.iterrows():
        margin = 1.96 * row["gain_se"]
        table.add_row(
            str(policy),
            f"{int(row['contacts']):,}",
            f"{row['value_per_send']:,.2f}",
            f"{row['gain_per_send']:+,.2f} ({row['gain_per_send'] - margin:+,.2f} to "
            f"{row['gain_per_send'] + margin:+,.2f})",
        )
    out.print(table)
    qini = ", ".join(f"{offer} {q:+.4f}" for offer, q in study.qini.items())
    out.print(f"Qini coefficient per offer: {escape(qini)}")
    if study.uplift_wins:
        out.print(
            "[bold green]uplift targeting beat both risk rankings[/] on the held-out campaign"
        )
    else:
        out.print(
            f"[bold yellow]uplift targeting did not beat {study.winner!r}[/] on the held-out "
            f"campaign: rank by {study.winner} until more campaigns are in"
        )
    for reason, n in run.left_out.items():
        out.print(f"{n:,} send(s) left out: {reason}")
    for path in run.files:
        out.print(f"{path.name:<14} [bold]{path}[/]")
    out.print(f"MLflow run {run.run_id}")


@app.command("evaluate")
@_friendly_errors
def evaluate_command(
    config: ConfigOption = Path("churn.toml"),
    model: ModelOption = None,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Re-evaluate a trained model on the latest labelled cutoffs of the configured data."""
    from churnmodel.workflows import evaluate

    run_config = _run_config(config, engine, spark_master)
    model = model or f"models:/{run_config.mlflow.registered_model}@champion"
    with console.status("starting") as status:
        outcome = evaluate(run_config, model, progress=lambda msg: status.update(msg))
    evaluation = outcome.evaluation
    out.print(
        _metrics_table(evaluation.metrics, _backtest_title(evaluation.rows), model=outcome.model)
    )
    out.print(f"evaluation run [bold]{outcome.run_id}[/] ({outcome.model})")


def _backtest_title(rows: pd.DataFrame) -> str:
    cutoffs = ", ".join(f"{c:%Y-%m-%d}" for c in sorted(rows["cutoff"].unique()))
    return (
        f"backtest at {cutoffs}: {len(rows):,} rows, churn rate {rows['label'].mean():.1%} "
        "(each cutoff scored by models trained before it; metrics are means over the cutoffs)"
    )


def _metrics_table(
    metrics: dict[str, Metrics],
    title: str,
    champion: str = "",
    model: str = "model",
    baselines: frozenset[str] = frozenset(),
) -> Table:
    table = Table(
        "scorer",
        "ROC AUC",
        "PR AUC",
        "lift@10",
        "cap@10",
        "cap@20",
        "Brier",
        "ECE",
        title=title,
        caption="lift@10: churn rate in the top 10 % over the overall rate; cap@k: share of "
        "churners in the top k %; ECE: expected calibration error"
        + ("; *: a baseline" if baselines else ""),
    )
    ordered = sorted(metrics, key=lambda name: name != "model")  # the shipped model first
    for name in ordered:
        m = metrics[name]
        label = {"champion": f"champion v{champion}", "model": model}.get(name, name)
        table.add_row(
            f"[bold]{label}[/]" if name == "model" else label + ("*" if name in baselines else ""),
            f"{m.roc_auc:.3f}",
            f"{m.pr_auc:.3f}",
            f"{m.lift_at_10:.2f}",
            f"{m.capture_at_10:.1%}",
            f"{m.capture_at_20:.1%}",
            f"{m.brier:.4f}",
            f"{m.ece:.4f}",
        )
    return table


def _print_training_summary(outcome: TrainingOutcome, config: RunConfig) -> None:
    from churnmodel.tracking.runs import tracking_uri

    result = outcome.result
    backtest = result.backtest
    title = _backtest_title(backtest.rows)
    baselines = frozenset(c.name for c in backtest.candidates if c.baseline)
    shipped = f"model = {result.winner}, refit on all {len(result.cutoffs)} cutoffs"
    out.print(
        _metrics_table(backtest.metrics, title, outcome.champion.version or "", shipped, baselines)
    )
    if result.leakage.suspected:
        console.print(f"[bold red]WARNING:[/] {result.leakage.message()}", soft_wrap=True)
    name = config.mlflow.registered_model
    trees = f", {result.model.trees} trees" if result.model.trees else ""
    out.print(
        f"run [bold]{outcome.run_id}[/]: {name} v{outcome.version} = {result.winner}{trees}, "
        f"refit on all {len(result.cutoffs)} labelled cutoffs; churn = leaving within "
        f"{config.label.horizon} days ({config.label.business})"
    )
    out.print(outcome.decision.reason)
    if outcome.exported is not None:
        out.print(f"champion exported to [bold]{outcome.exported}[/]")
    out.print(f"browse runs: mlflow ui --backend-store-uri {tracking_uri(config.mlflow)}")


@app.command("score")
@_friendly_errors
def score_command(
    config: ConfigOption = Path("churn.toml"),
    as_of: AsOfOption = None,
    model: ModelOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the outputs.")] = Path("out"),
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    top: Annotated[
        int, typer.Option(min=1, help="With --engine spark: rows in outreach_top.csv.")
    ] = 1_000,
    budget: Annotated[
        int | None,
        typer.Option(min=0, help="Contacts the team can make: writes contacts.csv, best first."),
    ] = None,
    budget_money: Annotated[
        float | None,
        typer.Option(min=0, help="Money for offers (needs --uplift, whose costs it knows)."),
    ] = None,
    uplift: Annotated[
        Path | None,
        typer.Option(
            help="The uplift model (train-uplift's --out folder): rank contacts by the value "
            "a contact is expected to keep, with each customer's best offer."
        ),
    ] = None,
) -> None:
    """Score every eligible customer and write the outreach list, not-scored list and report.

    DuckDB writes outreach.parquet/.csv, winback.csv, not_scored.csv and
    report.html. Spark writes outreach/ (parquet by risk tier), winback/ and
    not_scored/ without collecting the list, plus outreach_top.csv (first
    --top rows), report.html and summary.json.

    With --budget, --budget-money or --uplift, also contacts.parquet/.csv:
    whom to contact, best first, within the budget. With an uplift model the
    ranking is the one its study found best (expected saved value, or risk,
    or risk x value), each row with its offer, and the list stops where the
    expected profit does; without one, risk x value. See docs/uplift.md.
    """
    from churnmodel.uplift.targeting import Budget
    from churnmodel.workflows import score, score_on_spark, write_score_outputs

    run_config = _run_config(config, engine, spark_master)
    targeted = budget is not None or budget_money is not None or uplift is not None
    if targeted and run_config.data.engine == "spark":
        raise ConfigError(
            "--budget, --budget-money and --uplift: not available with the Spark engine yet; "
            "score with DuckDB for a budgeted contact list"
        )
    _output_folder(out_dir)
    date = as_of.date() if as_of else None
    plan = Budget(budget, budget_money) if targeted else None
    with console.status("starting") as status:
        if run_config.data.engine == "spark":
            spark_run = score_on_spark(
                run_config, out_dir, model, date, top, progress=lambda msg: status.update(msg)
            )
        else:
            run = score(
                run_config,
                model,
                date,
                progress=lambda msg: status.update(msg),
                budget=plan,
                uplift=uplift,
            )
            status.update(f"writing {out_dir}")
            paths = write_score_outputs(run, out_dir, run_config.outreach)
    if run_config.data.engine == "spark":
        _print_spark_summary(spark_run)
    else:
        _print_score_summary(run, paths)


ALERT_EXIT_CODE = 3
"""`monitor` found drift or a live result beyond the configured limits (see [monitor])."""
DRIFT_ROWS = 10
"""Features shown in the drift table (the highest PSI first)."""


@app.command("monitor")
@_friendly_errors
def monitor_command(
    config: ConfigOption = Path("churn.toml"),
    as_of: AsOfOption = None,
    model: ModelOption = None,
    scored: Annotated[
        list[Path] | None,
        typer.Option(
            "--scored",
            help="An earlier outreach list (outreach.parquet/.csv or a Spark outreach/ folder) "
            "to measure once its label window is over (repeatable).",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the results.")] = Path(
        "out/monitor"
    ),
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    r"""Check model health between retrains; exit code 3 when a limit in \[monitor] is broken.

    Compares the features at the scoring date with the training data
    (population stability index, missing values, unseen categories) and,
    for every --scored list whose label window has passed, the realised
    churn (live ROC AUC, calibration). Features that drift by design
    (tenure, ages, lifetime totals: \[monitor] ignore) are shown but never
    alarm. Logs an MLflow run and writes monitor.html, monitor.json,
    drift.csv, live.csv, calibration.csv and psi.png.
    """
    from churnmodel.workflows import monitor, write_monitor_outputs

    run_config = _run_config(config, engine, spark_master)
    _output_folder(out_dir)
    date = as_of.date() if as_of else None
    with console.status("starting") as status:
        outcome = monitor(
            run_config, model, date, scored or [], progress=lambda msg: status.update(msg)
        )
        paths = write_monitor_outputs(outcome, run_config.monitor.psi, out_dir)
    _print_monitor_summary(outcome, paths)
    if outcome.alerts:
        raise typer.Exit(ALERT_EXIT_CODE)


def _print_monitor_summary(outcome: MonitorOutcome, paths: dict[str, Path]) -> None:
    drift = Table(
        "feature",
        "PSI",
        "missing (train)",
        "missing (now)",
        "unseen categories",
        "alarms",
        title=f"feature drift as of {outcome.as_of} vs training, model {outcome.model}",
        caption=f"the {DRIFT_ROWS} highest PSI of {len(outcome.drift)} features; all in drift.csv",
    )
    for row in outcome.drift.head(DRIFT_ROWS).to_dict("records"):
        drift.add_row(
            str(row["feature"]),
            f"{row['psi']:.3f}",
            f"{row['missing_train']:.1%}",
            f"{row['missing_now']:.1%}",
            f"{row['unseen_category_share']:.1%}",
            "no (by design)" if row["ignored"] else "yes",
        )
    out.print(drift)
    if outcome.live:
        live = Table("list", "model", "customers", "churn rate", "ROC AUC", "ECE", title="live")
        for p in outcome.live:
            m = p.metrics
            live.add_row(
                p.as_of,
                p.model,
                f"{m.rows:,}",
                f"{m.churn_rate:.1%}",
                f"{m.roc_auc:.3f}",
                f"{m.ece:.3f}",
            )
        out.print(live)
    for line in outcome.waiting:
        console.print(f"[yellow]waiting:[/] {line}", soft_wrap=True)
    for line in outcome.alerts:
        console.print(f"[bold red]ALERT:[/] {line}", soft_wrap=True)
    if not outcome.alerts:
        out.print("no alerts")
    out.print(
        f"MLflow run [bold]{outcome.run_id}[/]; results in [bold]{paths['monitor.json'].parent}[/]"
    )


@app.command("kpis")
@_friendly_errors
def kpis_command(
    config: ConfigOption = Path("churn.toml"),
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for tables and charts.")] = Path(
        "out/kpis"
    ),
    period: Annotated[
        str | None, typer.Option(help="month or quarter; default: the config's kpi.period.")
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="A customers attribute to break the KPIs down by (repeatable), e.g. plan; "
            "default: the config's kpi.segments.",
        ),
    ] = None,
    margin: Annotated[
        float | None, typer.Option(min=0, max=1, help="Gross margin for the CLV (default 1).")
    ] = None,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Retention KPIs per month or quarter (and segment), cohort retention, charts and a report.

    Writes kpis.csv/.parquet (one row per period and segment), cohorts.csv/.parquet
    (one row per signup cohort and month since signup), a PNG per chart and
    kpis.html. Definitions: docs/kpis.md.
    """
    from churnmodel.kpi import write_kpis
    from churnmodel.workflows import compute_kpis

    run_config = _run_config(
        config, engine, spark_master, kpi={"period": period, "segments": by, "margin": margin}
    )
    _output_folder(out_dir)
    with console.status("starting") as status:
        run = compute_kpis(run_config, progress=lambda msg: status.update(msg))
        status.update(f"writing {out_dir}")
        paths = write_kpis(run.kpis, run.cohorts, run.title(), out_dir)
    _print_kpi_summary(run, paths)


def _print_kpi_summary(run: KpiRun, paths: dict[str, Path]) -> None:
    from churnmodel.kpi import overall

    rates = ("retention_rate", "churn_rate", "aov", "clv", "nps", "csat")
    table = Table(
        run.period,
        "start",
        "new",
        "lost",
        "retention",
        "churn",
        "AOV",
        "CLV",
        "NPS",
        "CSAT",
        title=run.title(),
        caption="start: customers at period start; retention % = (end - new) / start; "
        "churn % = lost / start; -: a denominator is 0",
    )
    for row in overall(run.kpis).to_dict("records"):
        counts = (row["customers_start"], row["new_customers"], row["lost_customers"])
        table.add_row(
            f"{row['period']:%Y-%m}",
            *(f"{int(n):,}" for n in counts),
            *(_number(float(row[name])) for name in rates),
        )
    out.print(table)
    for name in ("kpis.csv", "cohorts.csv", "kpis.html"):
        out.print(f"{name:<12} [bold]{paths[name]}[/]")
    charts = [name for name in paths if name.endswith(".png")]
    out.print(f"{len(charts)} charts (PNG) in [bold]{paths['kpis.html'].parent}[/]")


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


@app.command("export")
@_friendly_errors
def export_command(
    source: Annotated[
        Path, typer.Option("--from", help="The full list written by `score`.")
    ] = Path("out/outreach.parquet"),
    out_path: Annotated[
        Path,
        typer.Option("--out", help="The shorter list: .csv, .xlsx (Excel) or .parquet."),
    ] = Path("out/outreach_top.csv"),
    top: Annotated[int | None, typer.Option(min=1, help="Keep the first N rows.")] = None,
    min_probability: Annotated[
        float | None, typer.Option(min=0, max=1, help="Keep churn_probability >= this.")
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(help="Keep these risk tiers (repeatable).", metavar="high|medium|low"),
    ] = None,
    segment: Annotated[
        list[str] | None,
        typer.Option(
            help="Keep these segments (repeatable).", metavar="new|high-value|at-risk|regular"
        ),
    ] = None,
    csv_style: Annotated[
        str,
        typer.Option(
            help="international (, and decimal point) or german (; and decimal comma, "
            "for Excel with a German locale)."
        ),
    ] = "international",
    headers: Annotated[
        str,
        typer.Option(help="Column headers: names (machine names), en or de (words)."),
    ] = "names",
) -> None:
    """Cut a shorter list (by value at risk) from the full outreach list.

    Text cells that a spreadsheet would run as a formula are written with a
    leading ' in the csv and xlsx files.
    """
    from churnmodel.outreach.export import filter_outreach, read_outreach, write_list

    style, words = (
        _choice("--csv-style", csv_style, CSV_STYLES),
        _choice("--headers", headers, HEADERS),
    )
    full = read_outreach(source)
    try:
        selected = filter_outreach(full, top, min_probability, tier, segment)
    except ConfigError as exc:  # the library names its parameters; say the options
        option = str(exc).replace("tiers:", "--tier:").replace("segments:", "--segment:")
        raise ConfigError(option) from exc
    write_list(selected, out_path, style, words)
    value = selected["value_at_risk"].sum()
    out.print(
        f"{len(selected):,} of {len(full):,} customers (value at risk {value:,.2f}) "
        f"-> [bold]{out_path}[/]"
    )


def _output_folder(path: Path) -> None:
    """Refuse, before any work, an --out that is an existing file (the folder itself is kept)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: an existing file; expected a folder for the outputs")


CSV_STYLES: tuple[CsvStyle, ...] = ("international", "german")  # as outreach.people
HEADERS: tuple[Headers, ...] = ("names", "en", "de")
C = TypeVar("C", bound=str)


def _choice(option: str, given: str, allowed: tuple[C, ...]) -> C:
    for value in allowed:
        if given == value:
            return value
    raise typer.BadParameter(
        f"expected one of {', '.join(allowed)}, got {given!r}", param_hint=option
    )


def _print_score_summary(run: ScoreRun, paths: dict[str, Path]) -> None:
    from churnmodel.outreach.build import tier_summary

    title = f"outreach list as of {run.scores.as_of}, model {run.model}"
    tiers = tier_summary(run.outreach)
    _print_list_summary(title, tiers, run.counts(), run.scores.unseen_categories, paths)
    targeting = run.targeting
    if targeting is not None:
        contacts = targeting.contacts
        line = f"contacts.csv: {targeting.size:,} customers to contact ({escape(targeting.why)})"
        if targeting.profit is not None:
            saved = contacts["expected_saved_value"].sum()
            line += f"; expected saved value after offer costs {saved:,.2f}"
        if targeting.in_vain is not None:
            line += (
                f"; {targeting.in_vain:.0%} of as many customers ranked by risk alone are "
                "not expected to pay"
            )
        out.print(line)
        if targeting.check:
            out.print(escape(targeting.check))


def _print_spark_summary(run: SparkScores) -> None:
    title = f"outreach list as of {run.as_of}, model {run.model} (Spark)"
    _print_list_summary(title, run.tiers, run.counts, run.unseen_categories, run.paths)


def _print_list_summary(
    title: str,
    tiers: pd.DataFrame,
    counts: dict[str, int],
    unseen_categories: dict[str, int],
    paths: dict[str, Path],
) -> None:
    from churnmodel.outreach.build import TIERS

    columns = ("tier", "customers", "mean probability", "value at risk", "with reasons")
    table = Table(*columns, title=title)
    by_tier = {str(row["risk_tier"]): row for row in tiers.to_dict("records")}
    for tier in TIERS:
        row = by_tier.get(tier, {})
        customers = int(row.get("customers", 0))
        table.add_row(
            tier,
            f"{customers:,}",
            f"{row['mean_probability']:.3f}" if customers else "-",
            f"{row.get('value_at_risk', 0):,.2f}",
            f"{int(row.get('with_reasons', 0)):,}",
        )
    out.print(table)
    counted = Table("customers", "count", title="every input customer accounted for")
    for label, count in counts.items():
        counted.add_row(label, f"{count:,}")
    out.print(counted)
    for feature, unseen in sorted(unseen_categories.items()):
        console.print(
            f"[yellow]note:[/] {unseen:,} rows have a {feature} unseen in training "
            "(scored as missing)"
        )
    for name, path in paths.items():
        out.print(f"{name:<17} [bold]{path}[/]")
