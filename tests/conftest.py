"""Shared helpers: tiny tables in, validated Ibis tables and feature frames out."""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Mapping
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pytest
from ibis.backends.sql import SQLBackend

from churnmodel._io import current_umask
from churnmodel.config import FeatureConfig
from churnmodel.data.load import load_tables
from churnmodel.data.validate import ValidatedTables, validate_tables
from churnmodel.engine import connect
from churnmodel.features.matrix import build_feature_matrix
from churnmodel.pointintime import Method


@pytest.fixture(scope="session")
def con() -> SQLBackend:
    return connect()


def utc(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


def frame(rows: list[tuple[object, ...]], columns: list[str]) -> pd.DataFrame:
    """A frame whose timestamp-like columns are UTC, even when empty."""
    out = pd.DataFrame(rows, columns=columns)
    for column in ("timestamp", "signup_date", "churn_date"):
        if column in out:
            out[column] = pd.to_datetime(out[column], utc=True, format="ISO8601")
    if "customer_id" in out:
        out["customer_id"] = out["customer_id"].astype("str")
    return out


def validated(con: SQLBackend, tables: Mapping[str, pd.DataFrame]) -> ValidatedTables:
    return validate_tables(load_tables(con, tables))


def spine_of(pairs: list[tuple[str, dt.date]]) -> ibis.Table:
    ids, cutoffs = zip(*pairs, strict=True)
    return ibis.memtable(
        pa.table(
            {"customer_id": pa.array(ids, pa.string()), "cutoff": pa.array(cutoffs, pa.date32())}
        )
    )


def features_at(
    con: SQLBackend,
    tables: Mapping[str, pd.DataFrame],
    pairs: list[tuple[str, dt.date]],
    config: FeatureConfig,
    method: Method | None = None,
) -> pd.DataFrame:
    """The feature matrix for the given (customer, cutoff) rows, indexed by customer_id."""
    matrix = build_feature_matrix(validated(con, tables), spine_of(pairs), config, method)
    return matrix.frame.set_index("customer_id")


def assert_modes_follow_the_umask(root: Path) -> None:
    """Every file and folder under `root` has the mode a plain open/mkdir gives (0644/0755 at 022).

    Readable by another service account or a team share as the umask allows,
    not 0600/0700 as `tempfile` would leave them.
    """
    mask = current_umask()
    checked = 0
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == expected, f"{path}: {path.stat().st_mode:o}"
        checked += 1
    assert checked > 1


def assert_page_looks_right(page: Path, work: Path) -> None:
    """In a real browser 1400 px wide: no horizontal overflow, no image shown out of its shape.

    Also leaves a screenshot beside `work` for a person to look at.
    """
    from tests.browser import WIDTH, measure, screenshot

    layout = measure(page, work)
    assert layout.images, f"{page}: no charts"
    assert layout.scroll_width <= layout.client_width <= WIDTH, layout
    assert layout.distorted() == [], layout.distorted()
    shot = screenshot(page, work / f"{page.stem}.png")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
