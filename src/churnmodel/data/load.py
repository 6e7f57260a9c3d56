"""Open user tables on an engine and apply the column mapping.

A source is a pandas frame, an Ibis table already on the engine, a local
parquet/csv file or folder, a URI the engine reads (``s3://...``), a Delta
folder, or ``table:NAME`` for a table the engine already knows.

CSV files are read with every column as text: type inference would turn the
customer id `00042` into the number 42, and the contract checks give better
errors for bad timestamps and amounts than a CSV sniffer does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias

import ibis
import pandas as pd
import pyarrow as pa
from ibis.backends.sql import SQLBackend
from pandas.errors import Pandas4Warning

from churnmodel.config import is_local_path
from churnmodel.data.contract import CONTRACT
from churnmodel.errors import DataContractError, is_out_of_memory

Source: TypeAlias = "str | Path | pd.DataFrame | ibis.Table"
CATALOG_PREFIX = "table:"


def load_tables(
    con: SQLBackend,
    sources: Mapping[str, Source],
    columns: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, ibis.Table]:
    """Open each source and rename user columns to canonical names.

    `columns` maps, per table, canonical column -> user column, e.g.
    ``{"transactions": {"customer_id": "cust", "timestamp": "order_ts"}}``.
    """
    columns = columns or {}
    for name in [*sources, *columns]:
        if name not in CONTRACT:
            raise DataContractError(
                name, None, f"one of the canonical tables {', '.join(CONTRACT)}", None
            )
    return {
        name: _rename(name, _open(con, name, source), columns.get(name, {}))
        for name, source in sources.items()
    }


def _open(con: SQLBackend, name: str, source: Source) -> ibis.Table:
    if isinstance(source, ibis.Table):
        return source
    if isinstance(source, pd.DataFrame):
        # Through Arrow: exact string ids, tz-aware timestamps, no pandas inference.
        with warnings.catch_warnings():
            # pyarrow < 26 (capped by mlflow) reads pandas 3.1 columns via .values
            warnings.filterwarnings("ignore", "Series.values returning an", Pandas4Warning)
            return ibis.memtable(pa.Table.from_pandas(source, preserve_index=False))
    where = str(source)
    try:
        if where.startswith(CATALOG_PREFIX):
            database, _, table = where.removeprefix(CATALOG_PREFIX).rpartition(".")
            return con.table(table, database=database or None)
        if not is_local_path(where):  # the engine resolves remote URIs itself
            return _read(con, where, Path(where).suffix, is_dir=not Path(where).suffix)
        path = Path(where)
        if not path.exists():
            raise DataContractError(name, None, f"a readable file, but {path} does not exist")
        return _read(con, where, "".join(path.suffixes[-2:]), is_dir=path.is_dir())
    except DataContractError:
        raise
    except Exception as exc:  # the engine's own message says what is wrong with the source
        if is_out_of_memory(exc):
            raise
        raise DataContractError(name, None, f"a readable table at {where}: {exc}") from exc


def _read(con: SQLBackend, where: str, suffix: str, is_dir: bool) -> ibis.Table:
    if is_dir:
        if (Path(where) / "_delta_log").is_dir():
            return con.read_delta(where)
        if con.name == "duckdb":  # a folder of parquet parts, as Spark and many exports write
            return con.read_parquet(f"{where.rstrip('/')}/**/*.parquet")
        return con.read_parquet(where)
    if suffix.endswith((".parquet", ".pq")):
        return con.read_parquet(where)
    if ".csv" in suffix:
        if con.name == "duckdb":
            return con.read_csv(where, all_varchar=True)
        return con.read_csv(where, inferSchema=False)  # every column as text, like DuckDB
    raise ValueError(f"expected a .parquet or .csv file or a folder, got {Path(where).name}")


def _rename(name: str, table: ibis.Table, mapping: Mapping[str, str]) -> ibis.Table:
    spec = CONTRACT[name]
    for canonical, user_column in mapping.items():
        if canonical not in spec.columns and not spec.open_columns:
            raise DataContractError(
                name, canonical, f"a known column of {name} ({', '.join(spec.columns)})"
            )
        if user_column not in table.columns:
            raise DataContractError(
                name,
                user_column,
                f"the column mapped to '{canonical}' to exist; "
                f"the table has {', '.join(table.columns)}",
            )
    renames = {canonical: user for canonical, user in mapping.items() if canonical != user}
    return table.rename(renames) if renames else table
