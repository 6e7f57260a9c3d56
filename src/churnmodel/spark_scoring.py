"""Batch scoring on Spark: features, scores and the list stay on the executors.

The same feature builders, model bundle and list rules as `scoring` and
`outreach`; only the steps that collect to pandas there are done by Spark:

* probability, health, value and value at risk come from `row_figures`,
  applied to each partition (`mapInPandas`) with the bundle broadcast once;
* risk tiers and the high-value cut need every row in order: each is a
  window over the whole list, which Spark runs in a single task on a few
  narrow columns (the only step that does not spread over executors);
* reasons are computed on the driver for at most `max_reason_rows` rows;
* the list is written by Spark as parquet partitioned by risk tier, the
  customers not scored as parquet, and the first `top` rows as csv;
* the report is drawn from aggregates (tiers, a probability histogram,
  value by segment), the reason texts and the top rows.

Nothing collects the scored customers to the driver: only counts,
aggregates, the reason rows and the top rows cross over.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from churnmodel._io import atomic_directory, write_text
from churnmodel.config import OutreachConfig
from churnmodel.data.validate import ValidatedTables
from churnmodel.engine import cache, spark_to_arrow, to_spark
from churnmodel.features.matrix import add_derived, derived_specs, feature_families, feature_table
from churnmodel.outreach.build import (
    LIST_ASCENDING,
    LIST_ORDER,
    REASONS,
    TIERS,
    ListCuts,
    attribute_columns,
    explain_rows,
    list_columns,
    ranked_labels,
    row_figures,
    warn_if_capped,
)
from churnmodel.outreach.people import write_people_csv
from churnmodel.outreach.report import BINS, ReportData, render_report
from churnmodel.registry.bundle import ModelBundle
from churnmodel.scoring import check_columns, nothing_eligible, winback_customers
from churnmodel.timeline import build_spine
from churnmodel.timeline.not_scored import inactive_reason, not_scored_customers

OUTPUTS = (
    "outreach",
    "outreach_top.csv",
    "not_scored",
    "winback",
    "report.html",
    "summary.json",
)
ROW_SCHEMA = (
    "customer_id string, churn_probability double, health_score long, value_12m double, "
    "value_at_risk double, probability double, new boolean"
)
RANKED_SCHEMA = (
    "customer_id string, churn_probability double, health_score long, value_12m double, "
    "value_at_risk double, risk_tier string, segment string"
)


@dataclass(frozen=True)
class SparkScores:
    """What a Spark scoring run wrote, and the figures it printed."""

    as_of: dt.date
    model: str
    counts: dict[str, int]  # input customers, scored, not scored: <reason>
    tiers: pd.DataFrame  # as `outreach.build.tier_summary`
    unseen_categories: dict[str, int]
    top: pd.DataFrame  # the first rows of the list, as in outreach_top.csv
    paths: dict[str, Path]


def score_on_spark(
    tables: ValidatedTables,
    bundle: ModelBundle,
    as_of: dt.date,
    config: OutreachConfig,
    model_version: str,
    out_dir: Path,
    top: int,
    findings: Sequence[str] = (),
) -> SparkScores:
    """Score everyone eligible at `as_of` on Spark and write the list under `out_dir`.

    `findings` (the data-quality warnings) go into the report and summary.json.
    """
    from pyspark.sql import functions as F

    with ExitStack() as cached:

        def materialize(table: Any) -> Any:
            return cached.enter_context(cache(table))

        def persist(frame: Any) -> Any:
            cached.callback(frame.unpersist)
            return frame.cache()

        spine = materialize(build_spine(tables, [as_of], bundle.config.label, with_labels=False))
        families = feature_families(tables, bundle.config.features, [as_of], materialize)
        table, specs = feature_table(spine, families, materialize, method="direct")
        derived = derived_specs(bundle.config.features)
        check_columns(bundle, (*specs, *derived))
        built = [n for n in bundle.feature_names if n not in {s.name for s in derived}]
        features = persist(to_spark(table.select("customer_id", *built)))
        unseen = _unseen_categories(features, bundle)
        figures = persist(_row_figures(features, bundle, config))
        rows = figures.count()
        eligible = spine.select("customer_id")
        left_out = not_scored_customers(tables, as_of, bundle.config.label, eligible)
        not_scored = persist(to_spark(left_out))
        not_scored_counts = _count_by_reason(not_scored)
        winback = to_spark(winback_customers(tables, as_of, bundle.config, left_out))
        if not rows:
            raise nothing_eligible(as_of, not_scored_counts)
        listed = persist(_ranked(figures, rows, config))
        attributes = attribute_columns(bundle)
        outreach = persist(
            listed.join(_reasons(listed, features, bundle, config), "customer_id", "left")
            .withColumn("has_reasons", F.col("action").isNotNull())
            .fillna("", [*(f"reason_{i + 1}" for i in range(REASONS)), "action"])
            # naive, like every timestamp in churnmodel (parquet without a time zone)
            .withColumn("as_of", F.lit(str(as_of)).cast("timestamp_ntz"))
            .withColumn("model_version", F.lit(model_version))
            .join(features.select("customer_id", *_renamed(attributes)), "customer_id", "left")
            .select(*list_columns(attributes))
        )
        lapsed = inactive_reason(bundle.config.label)
        still_not_scored = not_scored.filter(not_scored.reason != F.lit(lapsed))
        paths, top_rows = _write(outreach, still_not_scored, winback, out_dir, top, config)
        report = _report_data(outreach, as_of, rows, top_rows)
    counts = {
        "input customers": rows + sum(not_scored_counts.values()),
        "scored": rows,
        **{f"not scored: {r}": n for r, n in not_scored_counts.items()},
    }
    page = render_report(report, counts, model_version, unseen, config.currency, findings)
    write_text(page, paths["report.html"])
    summary = {
        "as_of": str(as_of),
        "model": model_version,
        "counts": counts,
        "unseen_categories": unseen,
        "data_quality": list(findings),
    }
    write_text(json.dumps(summary, indent=2) + "\n", paths["summary.json"])
    return SparkScores(as_of, model_version, counts, report.tiers, unseen, top_rows, paths)


def with_derived(frame: pd.DataFrame, bundle: ModelBundle) -> pd.DataFrame:
    """`frame` with the pandas-computed features (BG/NBD with the model's fit)."""
    return add_derived(frame, bundle.config.features, bundle.bgnbd())[0]


def _unseen_categories(features: Any, bundle: ModelBundle) -> dict[str, int]:
    """Rows per categorical feature whose value the model never saw (scored as missing)."""
    from pyspark.sql import functions as F

    known = bundle.categories()
    if not known:
        return {}
    unseen = {
        name: F.sum(
            (F.col(name).isNotNull() & ~F.col(name).isin([str(c) for c in categories])).cast("long")
        )
        for name, categories in known.items()
    }
    row = features.agg(*(count.alias(name) for name, count in unseen.items())).first()
    return {name: int(row[name]) for name in known if row[name]}


def _renamed(attributes: dict[str, str]) -> list[Any]:
    from pyspark.sql import functions as F

    return [F.col(name).alias(column) for name, column in attributes.items()]


def _row_figures(features: Any, bundle: ModelBundle, config: OutreachConfig) -> Any:
    """`row_figures` on every partition, with the bundle shipped to each executor once."""
    shared = features.sparkSession.sparkContext.broadcast(bundle)

    def figures(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model: ModelBundle = shared.value
        for raw in batches:
            batch = with_derived(raw, model)
            frame = model.prepare(batch).assign(customer_id=batch["customer_id"])
            probability = model.predict(frame)
            yield row_figures(frame, probability, model, config).reset_index(drop=True)

    return features.mapInPandas(figures, ROW_SCHEMA)


def _ranked(figures: Any, rows: int, config: OutreachConfig) -> Any:
    """Risk tier and segment by the rules of `build_outreach`, in the same code.

    `ListCuts` with the cuts from one ranking pass over the whole list each
    (a window without partitions, one task), then `ranked_labels` per batch.
    """
    cuts = ListCuts.find(partial(_kth_largest, figures), rows, config)

    def labelled(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            labels = ranked_labels(batch, cuts)
            yield batch.assign(**labels).drop(columns=["probability", "new"])

    return figures.mapInPandas(labelled, RANKED_SCHEMA)


def _kth_largest(frame: Any, column: str, ks: tuple[int, ...]) -> tuple[float, ...]:
    """`outreach.build.kth_largest` of `column` for each k, from one ranking pass."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ranked = frame.select(column, F.row_number().over(Window.orderBy(F.desc(column))).alias("k"))
    found = {r["k"]: r[column] for r in ranked.filter(F.col("k").isin(list(ks))).collect()}
    return tuple(float(found[k]) if k in found else math.inf for k in ks)


def _list_order() -> list[Any]:
    from pyspark.sql import functions as F

    return [
        F.col(c).asc() if ascending else F.col(c).desc()
        for c, ascending in zip(LIST_ORDER, LIST_ASCENDING, strict=True)
    ]


def _reasons(listed: Any, features: Any, bundle: ModelBundle, config: OutreachConfig) -> Any:
    """reason_1..3 and action for the first `max_reason_rows` rows of the reason tiers."""
    contacted = listed.filter(listed.risk_tier.isin(list(config.reason_tiers)))
    warn_if_capped(contacted.count(), config)
    chosen = contacted.orderBy(*_list_order()).limit(config.max_reason_rows).select("customer_id")
    rows = with_derived(_fetch(features.join(chosen, "customer_id")), bundle)
    columns = [*(f"reason_{i + 1}" for i in range(REASONS)), "action"]
    explained = (
        explain_rows(bundle.prepare(rows), bundle, config)
        if len(rows)
        else pd.DataFrame({c: [] for c in columns})
    )
    explained.insert(0, "customer_id", rows["customer_id"].to_numpy())
    # typed columns even when no row was chosen (Spark cannot write untyped ones)
    table = pa.table({c: pa.array(explained[c].tolist(), pa.string()) for c in explained})
    return listed.sparkSession.createDataFrame(table)


def _count_by_reason(not_scored: Any) -> dict[str, int]:
    from pyspark.sql import functions as F

    counts = spark_to_arrow(not_scored.groupBy("reason").agg(F.count("*").alias("n")))
    return dict(sorted(zip(counts["reason"].to_pylist(), counts["n"].to_pylist(), strict=True)))


def _write(
    outreach: Any, not_scored: Any, winback: Any, out_dir: Path, top: int, config: OutreachConfig
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Write the datasets (each swapped in whole) and the top rows.

    `not_scored` leaves out the lapsed customers, who are in `winback`.
    """
    out_dir = Path(out_dir).resolve()
    paths = {name: out_dir / name for name in OUTPUTS}
    ordered = outreach.orderBy(*_list_order())
    with atomic_directory(paths["outreach"]) as tmp:
        # each task writes its slice of the sorted list into every tier's folder,
        # so part files follow the list order; readers sort again all the same
        ordered.write.mode("overwrite").partitionBy("risk_tier").parquet(tmp.as_uri())
    with atomic_directory(paths["not_scored"]) as tmp:
        not_scored.write.mode("overwrite").parquet(tmp.as_uri())
    with atomic_directory(paths["winback"]) as tmp:
        winback.coalesce(1).write.mode("overwrite").parquet(tmp.as_uri())
    top_rows = _fetch(ordered.limit(top))
    write_people_csv(top_rows, paths["outreach_top.csv"], config.csv_style, config.headers)
    return paths, top_rows


def _report_data(outreach: Any, as_of: dt.date, rows: int, top_rows: pd.DataFrame) -> ReportData:
    """The report's figures as Spark aggregates; only the reason texts are fetched row by row.

    Those are the rows with reasons, at most `max_reason_rows`.
    """
    from pyspark.sql import functions as F

    tiers = outreach.groupBy("risk_tier").agg(
        F.count("*").alias("customers"),
        F.avg("churn_probability").alias("mean_probability"),
        F.sum("value_12m").alias("value_12m"),
        F.sum("value_at_risk").alias("value_at_risk"),
        F.sum(F.col("has_reasons").cast("long")).alias("with_reasons"),
    )
    probability_bin = F.least(F.floor(F.col("churn_probability") * BINS), F.lit(BINS - 1))
    bins = outreach.groupBy(probability_bin.alias("bin"), "risk_tier").count()
    segments = outreach.groupBy("segment").agg(F.sum("value_at_risk").alias("value_at_risk"))
    leading = outreach.filter("has_reasons").select("reason_1")
    tier_rows = _fetch(tiers).set_index("risk_tier").reindex(list(TIERS))
    counted = ["customers", "with_reasons"]
    tier_rows[counted] = tier_rows[counted].fillna(0).astype("int64")
    tier_rows = tier_rows.fillna({"value_12m": 0.0, "value_at_risk": 0.0}).reset_index()
    histogram = _fetch(bins).pivot_table(
        index="bin", columns="risk_tier", values="count", fill_value=0
    )
    by_segment = _fetch(segments).set_index("segment")["value_at_risk"]
    reasons = _fetch(leading)["reason_1"]
    return ReportData(
        as_of=str(as_of),
        scored=rows,
        with_reasons=int(tier_rows["with_reasons"].sum()),
        tiers=tier_rows,
        histogram=histogram,
        value_by_segment=by_segment,
        leading_reasons=reasons,
        top=top_rows,
    )


def _fetch(frame: Any) -> pd.DataFrame:
    result: pd.DataFrame = spark_to_arrow(frame).to_pandas()
    return result
