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


def connect(engine: str = "duckdb", **options: Any) -> SQLBackend:
    """Open a backend with the session time zone pinned to UTC.

    Timestamps are stored as naive UTC after validation; pinning the session
    time zone keeps casts and date truncation from depending on the machine.
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect(**options)
        con.raw_sql("SET TimeZone = 'UTC'")
        return con
    raise ConfigError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")


def collect(expr: ibis.Table) -> pd.DataFrame:
    """Run a table expression and return pandas, going through Arrow.

    Arrow keeps string ids as strings and skips ibis's pandas conversion,
    which trips deprecation warnings on pandas 3.
    """
    frame: pd.DataFrame = expr.to_pyarrow().to_pandas()
    return frame


def scalar(expr: ir.Scalar) -> Any:
    """Run a scalar expression and return a plain Python value."""
    return expr.to_pyarrow().as_py()
