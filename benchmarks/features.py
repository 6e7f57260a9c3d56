"""Benchmark: the full feature matrix against the machine's floor and a plain pandas loop.

    python -m benchmarks.features [--customers 1000000] [--cutoffs 12]

Three measurements from one run, each in its own process so that peak
memory (VmHWM) is its own:

* churnmodel: `build_features` (validation, cutoffs, labels, every feature
  family, BG/NBD) on DuckDB, as `churnmodel features` runs it;
* the floor: the cheapest plan DuckDB has for a part of the same work. Four
  event counts (30/90/180/365 days) at the same spine rows, as per-day
  running sums read at probe rows, in one hand-written query, materialised.
  Its time is what this machine needs for one window pass over the events
  right now, so the ratio churnmodel / floor is comparable between runs
  on a noisy, shared machine where seconds are not;
* the pandas reference (benchmarks/reference.py): the same features by
  plain groupbys. Both matrices must agree on every feature (1e-9).

The synthetic data is generated once per size and cached in
benchmarks/data/. Results go to benchmarks/results/features-<customers>.json
and are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import DATA, SIM, Laps, header, peak_rss_gib, run_part, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--cutoffs", type=int, default=12)
    parser.add_argument("--skip-reference", action="store_true", help="only time the Ibis pipeline")
    parser.add_argument("--part", choices=["ibis", "floor", "pandas"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = ensure_data(args.customers)
    cutoffs = monthly_cutoffs(args.cutoffs)
    if args.part == "ibis":
        print(json.dumps(run_ibis(data, cutoffs)))
    elif args.part == "floor":
        print(json.dumps(run_floor(data)))
    elif args.part == "pandas":
        print(json.dumps(run_pandas(data)))
    else:
        report(args, data, cutoffs)


def ensure_data(customers: int) -> Path:
    from churnmodel.data.simulate import SimulationParams, write_simulation

    folder = DATA / f"sim-{customers}"
    if not (folder / "events.parquet").exists():
        started = time.perf_counter()
        write_simulation(folder, SimulationParams(n_customers=customers, seed=2024, **SIM))  # type: ignore[arg-type]
        print(
            f"simulated {customers:,} customers in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return folder


def monthly_cutoffs(n: int) -> list[dt.date]:
    """The n latest month starts whose 90-day label window fits in the simulated data."""
    from churnmodel.timeline import schedule

    return schedule(dt.date(2024, 1, 1), dt.date(2025, 10, 1), "1mo")[-n:]


def config_for(data: Path):
    from churnmodel.config import RunConfig

    tables = {
        name: str(data / f"{name}.parquet") for name in ("customers", "transactions", "events")
    }
    return RunConfig.model_validate({"data": tables})


def run_ibis(data: Path, cutoffs: list[dt.date]) -> dict[str, float | int]:
    from churnmodel.workflows import build_features

    lap = Laps()
    run = build_features(config_for(data), cutoffs, progress=lap.starting)
    lap(lap.current or "features")
    seconds = lap.seconds
    frame = run.matrix.frame
    frame.to_parquet(data / "ibis_features.parquet")
    # the settings the data decided (event types, attributes), for the pandas reference
    (data / "ibis_config.json").write_text(run.config.model_dump_json())
    return {
        "seconds": seconds,
        "phases": lap.phases,
        "rows": len(frame),
        "features": len(run.matrix.specs),
        "peak_rss_gib": peak_rss_gib(),
    }


FLOOR_EDGES = (0, 30, 90, 180, 365)
FLOOR_SQL = """
CREATE TABLE floor AS
WITH daily AS (
    SELECT customer_id, date_diff('day', DATE '1970-01-01', CAST("timestamp" AS DATE)) AS day,
           count(*) AS n, CAST(NULL AS INTEGER) AS edge
    FROM read_parquet('{events}') GROUP BY ALL
), spine AS (
    SELECT DISTINCT customer_id,
           date_diff('day', DATE '1970-01-01', CAST(cutoff AS DATE)) AS cutoff_day
    FROM read_parquet('{spine}')
), probes AS (
    SELECT customer_id, cutoff_day - edge AS day, CAST(NULL AS BIGINT) AS n, edge
    FROM spine, (SELECT CAST(unnest({edges}) AS INTEGER) AS edge)
), running AS (
    SELECT customer_id, day, edge, coalesce(sum(n) OVER (
        PARTITION BY customer_id ORDER BY day, edge IS NULL ROWS UNBOUNDED PRECEDING), 0) AS total
    FROM (SELECT * FROM daily UNION ALL SELECT * FROM probes)
)
SELECT customer_id, day + edge AS cutoff_day, {counts}
FROM running WHERE edge IS NOT NULL GROUP BY ALL
"""


def run_floor(data: Path) -> dict[str, float | int]:
    """The floor probe (see the module docstring), at the spine rows churnmodel computed."""
    import duckdb

    at = "max(total) FILTER (edge = {})"
    counts = ", ".join(f"{at.format(0)} - {at.format(e)} AS events_{e}d" for e in FLOOR_EDGES[1:])
    sql = FLOOR_SQL.format(
        events=data / "events.parquet",
        spine=data / "ibis_features.parquet",
        edges=list(FLOOR_EDGES),
        counts=counts,
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # as churnmodel's own connection
    con.execute("SET preserve_insertion_order = false")
    started = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM floor").fetchone()
    return {"seconds": seconds, "rows": rows[0] if rows else 0, "peak_rss_gib": peak_rss_gib()}


def run_pandas(data: Path) -> dict[str, float | int]:
    from benchmarks.reference import reference_features

    spine = pd.read_parquet(data / "ibis_features.parquet", columns=["customer_id", "cutoff"])
    started = time.perf_counter()
    tables = {
        name: _naive(pd.read_parquet(data / f"{name}.parquet"))
        for name in ("customers", "transactions", "events")
    }
    from churnmodel.config import RunConfig

    config = RunConfig.model_validate_json((data / "ibis_config.json").read_text())
    frame = reference_features(tables, spine, config.features)
    seconds = time.perf_counter() - started
    frame.to_parquet(data / "pandas_features.parquet")
    return {"seconds": seconds, "rows": len(frame), "peak_rss_gib": peak_rss_gib()}


def _naive(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("timestamp", "signup_date"):
        if column in frame:
            frame[column] = frame[column].dt.tz_localize(None)
    if "event_type" in frame:
        frame["event_type"] = frame["event_type"].astype("category")
    return frame


def agreement(data: Path) -> float:
    """Largest absolute difference between the two matrices over all numeric features."""
    keys = ["customer_id", "cutoff"]
    ours = pd.read_parquet(data / "ibis_features.parquet").sort_values(keys, ignore_index=True)
    theirs = pd.read_parquet(data / "pandas_features.parquet").sort_values(keys, ignore_index=True)
    assert (ours["customer_id"].to_numpy() == theirs["customer_id"].astype(str).to_numpy()).all()
    worst = 0.0
    # the BG/NBD columns come from a fit, not from the reference's arithmetic
    for column in ours.columns.drop([*keys, "label"]).intersection(theirs.columns, sort=False):
        if ours[column].dtype == "category":
            same = ours[column].astype("object").fillna("") == theirs[column].astype(
                "object"
            ).fillna("")
            assert same.all(), column
            continue
        a, b = ours[column].to_numpy(float), theirs[column].to_numpy(float)
        assert (np.isnan(a) == np.isnan(b)).all(), column
        both = ~np.isnan(a)
        worst = max(worst, float(np.max(np.abs(a[both] - b[both]), initial=0.0)))
    return worst


def sizes_args(args: argparse.Namespace) -> tuple[str, ...]:
    return ("--customers", str(args.customers), "--cutoffs", str(args.cutoffs))


def report(args: argparse.Namespace, data: Path, cutoffs: list[dt.date]) -> None:
    import pyarrow.parquet as pq

    sizes = {
        name: pq.ParquetFile(data / f"{name}.parquet").metadata.num_rows
        for name in ("customers", "transactions", "events")
    }
    result: dict[str, object] = {
        **header("features"),
        "input_rows": sizes,
        "cutoffs": [str(c) for c in cutoffs],
        "ibis_duckdb": run_part("benchmarks.features", "ibis", *sizes_args(args)),
    }
    ibis_side = result["ibis_duckdb"]
    ibis_side["rows_per_second"] = round(ibis_side["rows"] / ibis_side["seconds"])  # type: ignore[index]
    floor = run_part("benchmarks.features", "floor", *sizes_args(args))
    result["floor"] = floor
    result["ratio_to_floor"] = round(ibis_side["seconds"] / floor["seconds"], 2)  # type: ignore[index]
    if not args.skip_reference:
        pandas_side = run_part("benchmarks.features", "pandas", *sizes_args(args))
        result["pandas_reference"] = pandas_side
        result["speedup_vs_pandas"] = round(pandas_side["seconds"] / ibis_side["seconds"], 2)  # type: ignore[index]
        result["max_abs_difference"] = agreement(data)
    write_result(result, f"features-{args.customers}")


if __name__ == "__main__":
    main()
