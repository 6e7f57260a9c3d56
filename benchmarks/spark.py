"""Benchmark: Spark local[2] next to DuckDB on the same 1M customers.

    python -m benchmarks.spark [--customers 1000000] [--cutoffs 3]

Two jobs, each engine in its own process: the training feature matrix at the
latest `--cutoffs` monthly cutoffs (collected to pandas, as `train` does; the
two matrices are compared value by value), and the scoring job.

Data and model are those of benchmarks/scoring.py (1M customers, ~10M
purchases, ~48M events; a bundle trained on 50,000 other customers). Each
side runs in its own process:

* duckdb: `benchmarks.scoring`'s churnmodel part (validate, features,
  predict, list, reasons, files);
* spark: the same job through `workflows.score_on_spark` on a local[2]
  session (validate, then features, predict, list and reasons on Spark,
  written as partitioned parquet plus the top rows as csv).

Spark's probabilities are checked against DuckDB's for every customer. The
Spark side also reads its stage metrics from the Spark UI's REST API:
summed task time of stages that ran one task (they do not spread over
executors) and of the rest, which gives a paper estimate of the wall time on
more cores: driver time + serial task time + parallel task time / cores.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import header, peak_rss_gib, run_part, write_result
from benchmarks.features import config_for, ensure_data
from benchmarks.scoring import ensure_model

CORES = 2
DRIVER_MEMORY = "6g"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--cutoffs", type=int, default=3)
    parser.add_argument(
        "--part", choices=["spark", "features-duckdb", "features-spark"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    data, bundle = ensure_data(args.customers), ensure_model()
    if args.part == "spark":
        print(json.dumps(run_spark(data, bundle)))
    elif args.part in ("features-duckdb", "features-spark"):
        print(json.dumps(run_features(data, args.part.removeprefix("features-"), args.cutoffs)))
    else:
        report(args, data)


def run_features(data: Path, engine: str, cutoffs: int) -> dict[str, object]:
    from benchmarks.features import monthly_cutoffs
    from churnmodel.engine import connect
    from churnmodel.workflows import build_features

    started = time.perf_counter()
    con = connect(engine) if engine == "duckdb" else _spark()
    run = build_features(config_for(data), monthly_cutoffs(cutoffs), con=con)
    seconds = time.perf_counter() - started
    run.matrix.frame.to_parquet(data / f"features-{engine}.parquet")
    return {
        "seconds": round(seconds, 1),
        "rows": len(run.matrix.frame),
        "features": len(run.matrix.specs),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def _spark() -> Any:
    from churnmodel.engine import connect

    return connect(
        "spark",
        spark_master=f"local[{CORES}]",
        spark_conf={"spark.driver.memory": DRIVER_MEMORY, "spark.ui.enabled": "true"},
    )


def run_spark(data: Path, bundle_dir: Path) -> dict[str, object]:
    from churnmodel import spark_scoring
    from churnmodel.registry.bundle import load_bundle
    from churnmodel.scoring import default_as_of
    from churnmodel.workflows import load_data

    config = config_for(data)
    started = time.perf_counter()
    con = _spark()
    session = con._session
    session_seconds = time.perf_counter() - started
    bundle = load_bundle(bundle_dir)
    tables = load_data(config, con=con)
    validated = time.perf_counter()
    out = data / "spark-out"
    run = spark_scoring.score_on_spark(
        tables, bundle, default_as_of(tables), config.outreach, "benchmark", out, top=1_000
    )
    finished = time.perf_counter()
    stages = _stage_metrics(session)
    ours = pd.read_parquet(data / "scoring-ours.parquet")
    spark_list = pd.read_parquet(out / "outreach", columns=["customer_id", "churn_probability"])
    merged = ours.merge(spark_list, on="customer_id", suffixes=("_duckdb", "_spark"))
    difference = np.abs(
        merged["churn_probability_duckdb"].round(6) - merged["churn_probability_spark"]
    )
    seconds = finished - started
    task_seconds = stages["serial_task_seconds"] + stages["parallel_task_seconds"]
    driver_seconds = max(0.0, seconds - stages["wall_seconds_in_stages"])
    return {
        "seconds": round(seconds, 1),
        "phases": {
            "start_session": round(session_seconds, 1),
            "validate": round(validated - started - session_seconds, 1),
            "features_predict_list_files": round(finished - validated, 1),
        },
        "scored": run.counts["scored"],
        "same_customers_as_duckdb": len(merged) == len(ours) == run.counts["scored"],
        "max_abs_probability_difference": float(difference.max()),
        "stages": stages,
        "task_seconds": round(task_seconds, 1),
        "estimated_seconds_on_cores": {
            str(cores): round(
                driver_seconds
                + stages["serial_task_seconds"]
                + stages["parallel_task_seconds"] / cores,
                1,
            )
            for cores in (2, 8, 32)
        },
        "driver_peak_rss_gib": round(peak_rss_gib(), 2),
    }


def _stage_metrics(session: Any) -> dict[str, Any]:
    """Summed task time of one-task stages and of the others, from the Spark UI's REST API."""
    base = session.sparkContext.uiWebUrl
    app = session.sparkContext.applicationId
    with urllib.request.urlopen(f"{base}/api/v1/applications/{app}/stages?status=complete") as r:
        stages = json.load(r)
    serial = sum(s["executorRunTime"] for s in stages if s["numTasks"] == 1) / 1000
    parallel = sum(s["executorRunTime"] for s in stages if s["numTasks"] > 1) / 1000
    spans = [
        (pd.Timestamp(s["submissionTime"]), pd.Timestamp(s["completionTime"]))
        for s in stages
        if "submissionTime" in s and "completionTime" in s
    ]
    busy = _union_seconds(spans)
    slowest = sorted(stages, key=lambda s: -s["executorRunTime"])[:5]
    return {
        "count": len(stages),
        "serial_task_seconds": round(serial, 1),
        "parallel_task_seconds": round(parallel, 1),
        "wall_seconds_in_stages": round(busy, 1),
        "slowest": [
            {
                "name": s["name"][:60],
                "tasks": s["numTasks"],
                "task_seconds": round(s["executorRunTime"] / 1000, 1),
            }
            for s in slowest
        ],
    }


def _union_seconds(spans: list[tuple[pd.Timestamp, pd.Timestamp]]) -> float:
    """Wall time covered by at least one stage (stages of one job may overlap)."""
    total, end = 0.0, None
    for start, stop in sorted(spans):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total


def report(args: argparse.Namespace, data: Path) -> None:
    size = ("--customers", str(args.customers), "--cutoffs", str(args.cutoffs))
    features = {
        engine: run_part("benchmarks.spark", f"features-{engine}", *size)
        for engine in ("duckdb", "spark")
    }
    duckdb_matrix = pd.read_parquet(data / "features-duckdb.parquet")
    spark_matrix = pd.read_parquet(data / "features-spark.parquet")
    numeric = duckdb_matrix.select_dtypes("number").columns
    same_layout = duckdb_matrix.dtypes.equals(spark_matrix.dtypes) and len(duckdb_matrix) == len(
        spark_matrix
    )
    difference = (duckdb_matrix[numeric] - spark_matrix[numeric]).abs().max().max()
    duckdb = run_part("benchmarks.scoring", "churnmodel", "--customers", str(args.customers))
    spark = run_part("benchmarks.spark", "spark", *size)
    result = {
        **header("spark"),
        "customers": args.customers,
        "training_features": {
            "cutoffs": args.cutoffs,
            "duckdb": features["duckdb"],
            f"spark_local_{CORES}": features["spark"],
            "same_columns_dtypes_rows": bool(same_layout),
            "max_abs_difference": float(difference),
            "labels_equal": bool(duckdb_matrix["label"].equals(spark_matrix["label"])),
            "spark_over_duckdb": round(
                features["spark"]["seconds"] / features["duckdb"]["seconds"],  # type: ignore[operator]
                2,
            ),
        },
        "scoring": {
            "duckdb": duckdb,
            f"spark_local_{CORES}": spark,
            "spark_over_duckdb": round(spark["seconds"] / duckdb["seconds"], 2),  # type: ignore[operator]
        },
    }
    write_result(result, f"spark-{args.customers}")


if __name__ == "__main__":
    main()
