"""The stratified, seeded sample that keeps a large training matrix collectable."""

from __future__ import annotations

import datetime as dt
import math

import ibis
import pandas as pd
import pyarrow as pa
from ibis.backends.sql import SQLBackend

from churnmodel.config import RunConfig
from churnmodel.data.simulate import simulate
from churnmodel.discovery import gather_facts, resolve
from churnmodel.engine import collect
from churnmodel.features.matrix import build_feature_matrix, derived_specs, stratified_sample
from churnmodel.timeline import build_spine, training_cutoffs
from tests.conftest import validated

A, B = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
# (cutoff, label) -> rows
STRATA = {(A, 1): 10, (A, 0): 30, (B, 0): 20, (B, 1): 5}


def spine() -> ibis.Table:
    rows = [
        (f"C{cutoff:%m}{label}{i:02d}", cutoff, label)
        for (cutoff, label), n in STRATA.items()
        for i in range(n)
    ]
    ids, cutoffs, labels = zip(*rows, strict=True)
    return ibis.memtable(
        pa.table(
            {
                "customer_id": pa.array(ids, pa.string()),
                "cutoff": pa.array(cutoffs, pa.date32()),
                "label": pa.array(labels, pa.int8()),
            }
        )
    )


def test_every_stratum_keeps_the_same_share_rounded_up() -> None:
    kept = collect(stratified_sample(spine(), 0.2, seed=1))
    counts = kept.groupby(["cutoff", "label"]).size()
    # ceil(0.2 * n): 10 -> 2, 30 -> 6, 20 -> 4, 5 -> 1
    assert {(pd.Timestamp(c).date(), int(lab)): int(n) for (c, lab), n in counts.items()} == {
        (A, 1): 2,
        (A, 0): 6,
        (B, 0): 4,
        (B, 1): 1,
    }


def test_the_same_seed_keeps_the_same_rows_and_another_seed_others() -> None:
    def ids(seed: int) -> set[str]:
        return set(collect(stratified_sample(spine(), 0.5, seed))["customer_id"])

    assert ids(7) == ids(7)
    assert ids(7) != ids(8)
    assert len(ids(7)) == 5 + 15 + 10 + 3


def test_a_matrix_above_max_rows_is_sampled_before_features(con: SQLBackend) -> None:
    data = simulate(600, seed=2)
    tables = validated(con, data.as_tables())
    config = resolve(RunConfig(), gather_facts(tables))
    cutoffs = training_cutoffs(config.cutoffs, tables.observed_until, config.label.horizon)[-3:]
    spine_table = build_spine(tables, cutoffs, config.label)
    full = build_feature_matrix(tables, spine_table, config.features).frame
    limit = len(full) // 4
    sampled = build_feature_matrix(
        tables, spine_table, config.features, max_rows=limit, seed=3
    ).frame
    share = limit / len(full)
    strata = full.groupby(["cutoff", "label"]).size()
    expected = {key: math.ceil(n * share) for key, n in strata.items()}
    assert sampled.groupby(["cutoff", "label"]).size().to_dict() == expected
    # sampled rows carry exactly the features they have in the full matrix, but for the
    # BG/NBD view, whose population parameters are fitted on the rows kept
    fitted = [s.name for s in derived_specs(config.features)]
    again = full.merge(sampled[["customer_id", "cutoff"]], on=["customer_id", "cutoff"])
    assert fitted and again.drop(columns=fitted).reset_index(drop=True).equals(
        sampled.drop(columns=fitted).reset_index(drop=True)
    )
