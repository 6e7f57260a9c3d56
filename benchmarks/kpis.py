"""Benchmark: monthly retention KPIs and cohorts for every customer, from the raw tables.

    python -m benchmarks.kpis [--customers 1000000]

Runs what `churnmodel kpis` runs on the features benchmark's simulated data
(the same cached tables): validation, the KPIs of every whole month by
segment, the monthly cohort table, and writing kpis.csv, cohorts.csv and
the HTML report with its charts. The goal is under 60 s for 1M customers.

There is no second implementation to compare with, so the ratio reported
is against the floor of the features benchmark's kind: one grouped pass of
DuckDB over the same events (active customers per month), timed in the
same process just before, so a slow moment of a shared machine shows in
both. Results go to benchmarks/results/kpis-<customers>.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from benchmarks.common import Laps, header, peak_rss_gib, run_part, write_result
from benchmarks.features import config_for, ensure_data

MONTHLY_ACTIVE_SQL = """
SELECT count(*) FROM (
    SELECT date_trunc('month', CAST("timestamp" AS DATE)) AS month,
           count(DISTINCT customer_id) AS active
    FROM read_parquet('{events}') GROUP BY ALL
)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--part", choices=["churnmodel"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = ensure_data(args.customers)
    if args.part == "churnmodel":
        print(json.dumps(run_churnmodel(data)))
        return
    ours = run_part("benchmarks.kpis", "churnmodel", "--customers", str(args.customers))
    result = {
        **header("kpis"),
        "customers": args.customers,
        "churnmodel": ours,
        "ratio_to_floor": ours.pop("ratio_to_floor"),
    }
    write_result(result, f"kpis-{args.customers}")


def run_churnmodel(data: Path) -> dict[str, object]:
    import duckdb

    from churnmodel.kpi.report import write_kpis
    from churnmodel.workflows import compute_kpis

    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(MONTHLY_ACTIVE_SQL.format(events=data / "events.parquet")).fetchall()
    floor_seconds = time.perf_counter() - started
    con.close()

    lap = Laps()
    run = compute_kpis(config_for(data), progress=lap.starting)
    lap(lap.current or "computing cohort retention")
    out = data / "kpis-out"
    shutil.rmtree(out, ignore_errors=True)
    write_kpis(run.kpis, run.cohorts, run.title(), out)
    lap("writing files")
    return {
        "seconds": round(lap.seconds, 1),
        "phases": lap.phases,
        "periods": len(run.periods),
        "kpi_rows": len(run.kpis),
        "cohort_rows": len(run.cohorts.table),
        "floor_seconds": round(floor_seconds, 2),
        "ratio_to_floor": round(lap.seconds / floor_seconds, 1),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


if __name__ == "__main__":
    main()
