"""One function per verb, composed from the layers; the CLI and notebooks call these."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ibis.backends.sql import SQLBackend

from churnmodel._io import write_parquet
from churnmodel.config import RunConfig
from churnmodel.data.load import Source, load_tables
from churnmodel.data.validate import ValidatedTables, validate_tables
from churnmodel.engine import connect
from churnmodel.errors import ConfigError
from churnmodel.features.matrix import FeatureMatrix, build_feature_matrix
from churnmodel.timeline import build_spine, training_cutoffs

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FeatureRun:
    """A feature matrix and what went into it."""

    matrix: FeatureMatrix
    cutoffs: list[dt.date]
    tables: ValidatedTables


def load_data(
    config: RunConfig,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
) -> ValidatedTables:
    """Open and validate the configured tables (or the given `sources`)."""
    sources = dict(sources) if sources is not None else dict(config.data.sources())
    if not sources:
        raise ConfigError("data: no tables configured; set data.transactions and/or data.events")
    raw = load_tables(
        con or connect(config.data.engine, config.data.memory_limit), sources, config.data.columns
    )
    return validate_tables(raw, config.data.duplicates)


def build_features(
    config: RunConfig,
    cutoffs: list[dt.date] | None = None,
    sources: Mapping[str, Source] | None = None,
    con: SQLBackend | None = None,
    progress: Progress | None = None,
) -> FeatureRun:
    """Validate the data, lay out cutoffs and labels, and compute the feature matrix."""
    step = progress or (lambda _: None)
    step("validating tables")
    tables = load_data(config, sources, con)
    step("planning cutoffs")
    cutoffs = training_cutoffs(
        config.cutoffs,
        tables.observed_from,
        tables.observed_until,
        config.label.horizon_days,
        history_days=max(config.features.windows_days),
        explicit=cutoffs,
    )
    spine = build_spine(tables, cutoffs, config.label)
    step(f"computing features at {len(cutoffs)} cutoff(s)")
    matrix = build_feature_matrix(tables, spine, config.features)
    return FeatureRun(matrix, sorted(cutoffs), tables)


def write_features(matrix: FeatureMatrix, out: Path) -> Path:
    """Write the matrix as parquet, atomically; feature descriptions go in its metadata."""
    catalog = [
        {"name": s.name, "family": s.family, "dtype": s.dtype, "description": s.description}
        for s in matrix.specs
    ]
    write_parquet(matrix.frame, out, {"churnmodel.features": json.dumps(catalog)})
    return out
