"""Benchmark: scoring 1M customers from raw tables, churnmodel vs a pandas reference.

    python -m benchmarks.scoring [--customers 1000000]

A model is trained once on 50,000 simulated customers (same generator
settings, another seed) and saved as a bundle. Then, each in its own
process so that peak memory is its own:

* churnmodel: validate the raw tables, build the features of every eligible
  customer, predict, build the outreach list (tiers, value, health, TreeSHAP
  reasons for the high tier) and write parquet, csv, not_scored.csv and the
  HTML report;
* reference: the same features computed by the plain pandas implementation
  in benchmarks/reference.py for the same customers, then the same booster's
  predict; no reasons, no files. Its probabilities must match churnmodel's.

Results go to benchmarks/results/scoring-<customers>.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import DATA, Laps, header, peak_rss_gib, run_part, write_result
from benchmarks.features import config_for, ensure_data

TRAIN_CUSTOMERS = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--part", choices=["churnmodel", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    data, bundle = ensure_data(args.customers), ensure_model()
    if args.part == "churnmodel":
        print(json.dumps(run_churnmodel(data, bundle)))
    elif args.part == "reference":
        print(json.dumps(run_reference(data, bundle, args.customers)))
    else:
        report(args, data)


def ensure_model() -> Path:
    """Train on a separate, smaller simulation once and keep the bundle."""
    folder = DATA / f"scoring-model-{TRAIN_CUSTOMERS}"
    if (folder / "MANIFEST.json").exists():
        return folder
    import churnmodel as cm
    from churnmodel.model.backtest import plan_folds
    from churnmodel.model.training import train_and_evaluate
    from churnmodel.registry.bundle import ModelBundle, save_bundle

    data = DATA / f"sim-{TRAIN_CUSTOMERS}"
    ensure_data(TRAIN_CUSTOMERS)
    run = cm.build_features(config_for(data))
    config = run.config
    folds = plan_folds(run.cutoffs, config.label.horizon, 4)
    frame, names = run.matrix.frame, run.matrix.feature_names
    result = train_and_evaluate(frame, names, folds, config.model, config.features.windows_days)
    facts = {
        "data_facts": run.facts.to_dict(),
        "bgnbd": run.matrix.bgnbd.to_dict() if run.matrix.bgnbd else None,
    }
    save_bundle(ModelBundle(result.model, run.matrix.specs, config, facts), folder)
    return folder


def run_churnmodel(data: Path, bundle_dir: Path) -> dict[str, object]:
    from churnmodel.outreach import build_outreach
    from churnmodel.registry.bundle import load_bundle
    from churnmodel.scoring import default_as_of, score_customers
    from churnmodel.workflows import ScoreRun, load_data, write_score_outputs

    config = config_for(data)
    lap = Laps()
    bundle = load_bundle(bundle_dir)
    tables = load_data(config)
    lap("validating tables")
    scores = score_customers(tables, bundle, default_as_of(tables), lap.starting)
    lap(lap.current or "scoring")
    outreach = build_outreach(scores, bundle, config.outreach, "benchmark")
    lap("ranking, reasons (TreeSHAP) and the list")
    write_score_outputs(ScoreRun(scores, outreach, "benchmark"), data / "scoring-out")
    lap("writing files and the report")
    seconds = lap.seconds
    scores.frame[["customer_id", "churn_probability"]].to_parquet(data / "scoring-ours.parquet")
    return {
        "seconds": round(seconds, 1),
        "phases": lap.phases,
        "scored": len(outreach),
        "not_scored": len(scores.not_scored),
        "with_reasons": int(outreach["has_reasons"].sum()),
        "customers_per_second": round(scores.input_customers / seconds),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def run_reference(data: Path, bundle_dir: Path, customers: int) -> dict[str, object]:
    from benchmarks.features import _naive
    from benchmarks.reference import reference_features
    from churnmodel.features.matrix import add_derived
    from churnmodel.registry.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    ours = pd.read_parquet(data / "scoring-ours.parquet")
    as_of = pd.Timestamp(pd.read_parquet(data / "scoring-out" / "outreach.parquet")["as_of"][0])
    spine = pd.DataFrame({"customer_id": ours["customer_id"], "cutoff": as_of})
    started = time.perf_counter()
    tables = {
        name: _naive(pd.read_parquet(data / f"{name}.parquet"))
        for name in ("customers", "transactions", "events")
    }
    features = reference_features(tables, spine, bundle.config.features)
    # BG/NBD from the model's stored fit, as scoring computes it (not a feature the reference owns)
    features, _ = add_derived(features, bundle.config.features, bundle.bgnbd())
    probability = bundle.predict(features)
    seconds = time.perf_counter() - started
    aligned = pd.Series(probability, index=features["customer_id"].astype(str))
    difference = np.abs(aligned.loc[ours["customer_id"]].to_numpy() - ours["churn_probability"])
    return {
        "seconds": round(seconds, 1),
        "customers_per_second": round(customers / seconds),
        "max_abs_probability_difference": float(difference.max()),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def report(args: argparse.Namespace, data: Path) -> None:
    size = ("--customers", str(args.customers))
    ours = run_part("benchmarks.scoring", "churnmodel", *size)
    reference = run_part("benchmarks.scoring", "reference", *size)
    result = {
        **header("scoring"),
        "customers": args.customers,
        "churnmodel": ours,
        "pandas_reference": reference,
        "speedup_vs_reference": round(reference["seconds"] / ours["seconds"], 2),  # type: ignore[operator]
    }
    write_result(result, f"scoring-{args.customers}")


if __name__ == "__main__":
    main()
