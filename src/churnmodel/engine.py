"""Connections to the engines that run the Ibis expressions.

This is the only module that names an Ibis backend. Everything downstream
receives a connected backend and builds backend-neutral expressions on it.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends.sql import SQLBackend

from churnmodel.errors import ConfigError

ENGINES = ("duckdb",)


def connect(engine: str = "duckdb", memory_limit: str | None = None) -> SQLBackend:
    """Open a backend with the session time zone pinned to UTC.

    Timestamps are stored as naive UTC after validation; pinning the session
    time zone keeps casts and date truncation from depending on the machine.
    Results are always sorted explicitly, so DuckDB need not preserve
    insertion order (which costs memory on large windows and joins).
    `memory_limit` (e.g. "4GB") caps DuckDB's memory; beyond it, it spills
    to disk instead of growing.
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql("SET preserve_insertion_order = false")
        if memory_limit:
            con.raw_sql(f"SET memory_limit = '{memory_limit}'")
        return con
    raise ConfigError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")


def collect(expr: ibis.Table) -> pd.DataFrame:
    """Run a table expression and return pandas, going through Arrow.

    Arrow keeps string ids as strings and skips ibis's pandas conversion,
    which trips deprecation warnings on pandas 3.
    """
    # split_blocks + self_destruct hand Arrow's buffers to pandas column by
    # column instead of holding both copies of a large result at once.
    frame: pd.DataFrame = expr.to_pyarrow().to_pandas(split_blocks=True, self_destruct=True)
    return frame


def scalar(expr: ir.Scalar) -> Any:
    """Run a scalar expression and return a plain Python value."""
    return expr.to_pyarrow().as_py()
