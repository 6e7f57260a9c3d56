"""Benchmark: training on ~1M rows x ~90 features, churnmodel vs a bare LightGBM call.

    python -m benchmarks.training [--customers 240000]

The feature matrix comes from the real pipeline (monthly cutoffs from
2024-04-01, seven windows, three trend windows) and is cached in
benchmarks/data/. Two processes then train on the same rows, each measuring
its own peak memory:

* churnmodel: `train_and_evaluate`, i.e. LightGBM with early stopping on the
  validation cutoff, calibration, the leakage check and both baselines;
* reference: `lightgbm.train` with the same parameters and early stopping,
  nothing else, so the ratio is what churnmodel adds on top of LightGBM.

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

from benchmarks.common import DATA, SIM, header, peak_rss_gib, run_part, write_result

FEATURES = {"windows_days": [7, 14, 30, 60, 90, 180, 365], "trend_windows_days": [14, 30, 90]}
CUTOFFS = {"every": "1mo", "first": "2024-04-01"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=240_000)
    parser.add_argument("--part", choices=["churnmodel", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    matrix = ensure_matrix(args.customers)
    if args.part == "churnmodel":
        print(json.dumps(run_churnmodel(matrix)))
    elif args.part == "reference":
        print(json.dumps(run_reference(matrix)))
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
    """The matrix with its categories back, its feature names and the split."""
    from churnmodel.model.split import split_cutoffs

    frame = pd.read_parquet(path)
    catalog = json.loads(pq.read_schema(path).metadata[b"churnmodel.features"])
    names = [c["name"] for c in catalog]
    split = split_cutoffs(frame["cutoff"].unique(), horizon_days=90)
    return frame, names, split


def run_churnmodel(path: Path) -> dict[str, object]:
    from churnmodel.model.baselines import fit_predict_baselines
    from churnmodel.model.training import train_and_evaluate

    frame, names, split = load(path)
    started = time.perf_counter()
    result = train_and_evaluate(frame, names, split, config().model)
    seconds = time.perf_counter() - started
    # Time the baselines again on their own, to show where the rest of the time goes.
    train, held = split.rows(frame, "train"), split.rows(frame, "holdout")
    started = time.perf_counter()
    fit_predict_baselines(train[names], train["label"], held[names])
    baselines = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "of_which_baselines_seconds": round(baselines, 1),
        "trees": result.classifier.booster_.num_trees(),
        "holdout_roc_auc": round(result.holdout.metrics["model"].roc_auc, 4),
        "logistic_roc_auc": round(result.holdout.metrics["logistic"].roc_auc, 4),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def run_reference(path: Path) -> dict[str, object]:
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    from churnmodel.model.training import classifier_from_config

    frame, names, split = load(path)
    train, valid, held = (split.rows(frame, p) for p in ("train", "validation", "holdout"))
    params = classifier_from_config(config().model).lightgbm_params()
    started = time.perf_counter()
    dtrain = lgb.Dataset(train[names], label=train["label"])
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=1000,
        valid_sets=[lgb.Dataset(valid[names], label=valid["label"], reference=dtrain)],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    seconds = time.perf_counter() - started
    scores = booster.predict(held[names], num_iteration=booster.best_iteration)
    return {
        "seconds": round(seconds, 1),
        "trees": booster.best_iteration,
        "holdout_roc_auc": round(float(roc_auc_score(held["label"], scores)), 4),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def report(args: argparse.Namespace, path: Path) -> None:
    frame, names, split = load(path)
    rows = {part: len(split.rows(frame, part)) for part in ("train", "validation", "holdout")}
    del frame
    size = ("--customers", str(args.customers))
    ours = run_part("benchmarks.training", "churnmodel", *size)
    reference = run_part("benchmarks.training", "reference", *size)
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
