"""Benchmark: training on ~1M rows x ~90 features, churnmodel vs a bare LightGBM call.

    python -m benchmarks.training [--customers 240000]

The feature matrix comes from the real pipeline (monthly cutoffs from
2024-04-01, seven windows, three trend windows) and is cached in
benchmarks/data/. Two processes then train on the same rows, each measuring
its own peak memory:

* churnmodel: `train_and_evaluate`, i.e. the rolling-origin backtest of every
  candidate (LightGBM, logistic regression, their blend and the baselines) on
  four folds, the refit of the winner on every labelled cutoff, calibration
  and the leakage check;
* reference: one bare `lightgbm.train` on every labelled row with the same
  parameters and the number of trees churnmodel chose (the refit alone), so
  the ratio is what the whole procedure costs on top of one LightGBM fit.

Results go to benchmarks/results/training-<customers>.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from benchmarks.common import DATA, SIM, Laps, header, peak_rss_gib, run_part, write_result

FEATURES = {"windows_days": [7, 14, 30, 60, 90, 180, 365], "trend_windows_days": [14, 30, 90]}
CUTOFFS = {"every": "1mo", "first": "2024-04-01"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=240_000)
    parser.add_argument("--part", choices=["churnmodel", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--trees", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    matrix = ensure_matrix(args.customers)
    if args.part == "churnmodel":
        print(json.dumps(run_churnmodel(matrix)))
    elif args.part == "reference":
        print(json.dumps(run_reference(matrix, args.trees)))
    else:
        report(args, matrix)


def config():
    from churnmodel.config import RunConfig

    return RunConfig.model_validate({"features": FEATURES, "cutoffs": CUTOFFS})


def ensure_matrix(customers: int) -> Path:
    """Simulate and build the feature matrix once per size (cached as parquet)."""
    path = DATA / f"training-matrix-{customers}.parquet"
    if path.exists():
        return path
    import churnmodel as cm
    from churnmodel.data.simulate import SimulationParams, write_simulation

    folder = DATA / f"training-sim-{customers}"
    started = time.perf_counter()
    if not (folder / "events.parquet").exists():
        write_simulation(folder, SimulationParams(n_customers=customers, seed=7, **SIM))  # type: ignore[arg-type]
    tables = {n: folder / f"{n}.parquet" for n in ("customers", "transactions", "events")}
    run = cm.build_features(config(), sources=tables)
    cm.write_features(run.matrix, path)
    print(f"built the matrix in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def load(path: Path):
    """The matrix with its categories back, its feature names and the backtest folds."""
    from churnmodel.model.backtest import plan_folds

    frame = pd.read_parquet(path)
    catalog = json.loads(pq.read_schema(path).metadata[b"churnmodel.features"])
    names = [c["name"] for c in catalog]
    folds = plan_folds(frame["cutoff"].unique(), horizon_days=90, folds=4)
    return frame, names, folds


def run_churnmodel(path: Path) -> dict[str, object]:
    from churnmodel.model.training import train_and_evaluate

    frame, names, folds = load(path)
    lap = Laps()
    lap.starting("candidates")
    windows = FEATURES["windows_days"]
    result = train_and_evaluate(frame, names, folds, config().model, windows, lap.starting)
    lap(f"{lap.current}, calibration and the leakage check")
    seconds = lap.seconds
    metrics = result.backtest.metrics
    return {
        "seconds": round(seconds, 1),
        "phases_seconds": lap.phases,
        "winner": result.winner,
        "trees": result.model.trees,
        "backtest_roc_auc": {name: round(m.roc_auc, 4) for name, m in metrics.items()},
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def run_reference(path: Path, trees: int) -> dict[str, object]:
    import lightgbm as lgb

    from churnmodel.model.candidates import lightgbm_params

    frame, names, _ = load(path)
    params = lightgbm_params(config().model)
    started = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(frame[names], label=frame["label"]), trees)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "trees": booster.num_trees(),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def report(args: argparse.Namespace, path: Path) -> None:
    frame, names, folds = load(path)
    scored = frame["cutoff"].isin([f.scored for f in folds])
    rows = {"all": len(frame), "backtest": int(scored.sum()), "cutoffs": frame["cutoff"].nunique()}
    del frame
    size = ("--customers", str(args.customers))
    ours = run_part("benchmarks.training", "churnmodel", *size)
    trees = str(max(1, int(ours["trees"])))  # type: ignore[call-overload]
    reference = run_part("benchmarks.training", "reference", *size, "--trees", trees)
    result = {
        **header("training"),
        "customers": args.customers,
        "rows": rows,
        "features": len(names),
        "churnmodel": ours,
        "lightgbm_reference": reference,
        "time_ratio_vs_reference": round(ours["seconds"] / reference["seconds"], 2),  # type: ignore[operator]
    }
    write_result(result, f"training-{args.customers}")


if __name__ == "__main__":
    main()
