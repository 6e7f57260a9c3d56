"""Open user tables (parquet, csv, pandas) on an engine and apply the column mapping.

CSV files are read with every column as text: type inference would turn the
customer id `00042` into the number 42, and the contract checks give better
errors for bad timestamps and amounts than a CSV sniffer does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
from ibis.backends.sql import SQLBackend
from pandas.errors import Pandas4Warning

from churnmodel.data.contract import CONTRACT
from churnmodel.errors import DataContractError

Source = str | Path | pd.DataFrame


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
    if isinstance(source, pd.DataFrame):
        # Through Arrow: exact string ids, tz-aware timestamps, no pandas inference.
        with warnings.catch_warnings():
            # pyarrow < 26 (capped by mlflow) reads pandas 3.1 columns via .values
            warnings.filterwarnings("ignore", "Series.values returning an", Pandas4Warning)
            return ibis.memtable(pa.Table.from_pandas(source, preserve_index=False))
    path = Path(source)
    if not path.exists():
        raise DataContractError(name, None, f"a readable file, but {path} does not exist")
    if path.is_dir():  # a folder of parquet parts, as Spark and many exports write them
        return con.read_parquet(str(path / "**" / "*.parquet"))
    suffix = "".join(path.suffixes[-2:])
    try:
        if suffix.endswith((".parquet", ".pq")):
            return con.read_parquet(path)
        if ".csv" in suffix:
            return con.read_csv(path, all_varchar=True)
    except Exception as exc:  # the engine's own message says what is wrong with the file
        raise DataContractError(
            name, None, f"a readable parquet/csv file at {path}: {exc}"
        ) from exc
    raise DataContractError(name, None, f"a .parquet or .csv file, got {path.name}")


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
