"""The `churnmodel` command line: options -> config -> workflows -> a rich summary.

Errors the user can fix (bad data, bad config) print one line and exit with
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from churnmodel import __version__
from churnmodel.config import RunConfig, load_config
from churnmodel.data.simulate import Business, SimulationParams, write_simulation
from churnmodel.errors import ChurnModelError
from churnmodel.workflows import FeatureRun, build_features, write_features

app = typer.Typer(
    help="Customer churn prediction: simulate data, build point-in-time features.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])


def _friendly_errors(command: F) -> F:
    """Turn a ChurnModelError into one red line and its exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChurnModelError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"churnmodel {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Customer churn prediction from transactions and engagement events."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("ibis", "sqlglot", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
) -> None:
    """Write a realistic synthetic data set (customers, transactions, events[, churn])."""
    if business not in ("contractual", "non_contractual"):
        raise typer.BadParameter("expected contractual or non_contractual", param_hint="--business")
    params = SimulationParams(n_customers=customers, seed=seed, business=cast(Business, business))
    with console.status(f"simulating {customers:,} customers"):
        paths = write_simulation(out_dir, params)
    table = Table("table", "rows", "file", title=f"simulated {business} data (seed {seed})")
    for name, path in paths.items():
        table.add_row(name, f"{pq.ParquetFile(path).metadata.num_rows:,}", str(path))
    out.print(table)


@app.command()
@_friendly_errors
def features(
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config (TOML).")] = Path(
        "churn.toml"
    ),
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the feature matrix.")
    ] = Path("out/features.parquet"),
    cutoff: Annotated[
        list[dt.datetime] | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="A cutoff date (repeatable); default: the config's schedule."
        ),
    ] = None,
) -> None:
    """Build the point-in-time feature matrix (one row per customer and cutoff) with labels."""
    run_config = load_config(config)
    cutoffs = [c.date() for c in cutoff] if cutoff else None
    with console.status("starting") as status:
        run = build_features(run_config, cutoffs, progress=lambda msg: status.update(msg))
        status.update(f"writing {out_path}")
        write_features(run.matrix, out_path)
    _print_feature_summary(run, run_config, out_path)


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
