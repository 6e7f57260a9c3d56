"""Connections to the engines that run the Ibis expressions, and fetching results.

This is the only module that names an Ibis backend. Everything downstream
receives a connected backend and builds backend-neutral expressions on it;
`collect` and `scalar` bring small results back the same way from either
engine. The Spark scoring job (`spark_scoring`) is the one other place that
talks to Spark directly, because it must not bring the list back at all.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from ibis.backends.sql import SQLBackend

from churnmodel._io import spill_folder
from churnmodel.errors import ConfigError

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")
SPARK_DEFAULTS = {
    # Every timestamp is naive UTC after validation; the session must agree.
    "spark.sql.session.timeZone": "UTC",
    # Arrow moves pandas batches to and from the Python workers (scoring UDF).
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
LOCAL_SPARK = {
    # One machine: a few shuffle partitions per core, not the cluster default of 200.
    "spark.sql.shuffle.partitions": "8",
    # Let adaptive execution coalesce partitions inside cached plans too.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
}
"""SQL settings for a local session churnmodel starts (also under spark-submit --master local)."""


def connect(
    engine: str = "duckdb",
    memory_limit: str | None = None,
    spark_master: str | None = None,
    spark_session: Any = None,
    spark_conf: Mapping[str, str] | None = None,
) -> SQLBackend:
    """Open a backend with the session time zone pinned to UTC.

    Timestamps are stored as naive UTC after validation; pinning the session
    time zone keeps casts and date truncation from depending on the machine.

    DuckDB: results are always sorted explicitly, so DuckDB need not preserve
    insertion order (which costs memory on large windows and joins).
    `memory_limit` (e.g. "4GB") caps DuckDB's memory; beyond it, it spills
    to a private folder in the system's temp folder instead of growing. By
    default it is `DUCKDB_MEMORY_SHARE` of the machine's (or container's)
    memory, see `default_memory_limit`.

    Spark: `spark_session` is used as given (a notebook's or a cluster's
    session); otherwise one is started, on `spark_master` when given, else
    on whatever `spark-submit` configured (or local[*] when run bare), with
    `spark_conf` on top (settings such as driver memory apply only here).
    """
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql("SET preserve_insertion_order = false")
        # return freed memory to the system in the background: otherwise the pages of the
        # feature passes stay with the process while pandas holds the matrix
        con.raw_sql("SET allocator_background_threads = true")
        memory_limit = memory_limit or _within_address_space() or default_memory_limit()
        if memory_limit:
            con.raw_sql(f"SET memory_limit = '{memory_limit}'")
        spill = str(spill_folder("duckdb", con)).replace("'", "''")
        con.raw_sql(f"SET temp_directory = '{spill}'")
        return con
    if engine == "spark":
        session = spark_session or _start_spark(spark_master, spark_conf or {})
        for key, value in SPARK_DEFAULTS.items():
            session.conf.set(key, value)
        backend: SQLBackend = ibis.pyspark.connect(session)
        return backend
    raise ConfigError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")


DUCKDB_MEMORY_SHARE = 0.2
"""DuckDB's default share of the memory: the matrix, LightGBM's copy of it and
the Python side need the rest. DuckDB fills whatever it is given while it
groups, joins and sorts, so the share sets the peak of a large run. At 1M
customers on 24 GiB, the features run peaked at 9.9 GiB with DuckDB's own
default (80 %), 6.7 GiB with 25 %, and 5.6 GiB with 20 % at the same speed
(docs/performance.md)."""


CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def default_memory_limit() -> str | None:
    """`DUCKDB_MEMORY_SHARE` of the memory this process can have: the machine's, or less.

    A container's cgroup limit counts when it is lower than the machine's
    memory, as DuckDB would otherwise size itself from the host. At least
    1 GiB, so a tiny container still runs small data. None where the
    memory cannot be read (Windows): DuckDB's own default then applies.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - Windows
        return None
    for cgroup_limit in CGROUP_MEMORY_LIMITS:
        try:
            text = Path(cgroup_limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return f"{max(1024, int(total * DUCKDB_MEMORY_SHARE / 2**20))}MiB"


ADDRESS_SPACE_SHARE = 0.4
"""DuckDB's part of a capped address space: Python, LightGBM and MLflow need the rest."""
SMALL_ADDRESS_SPACE = 4 * 2**30


def _within_address_space() -> str | None:
    """A DuckDB memory limit inside `ulimit -v`, when the process has one (else None).

    DuckDB sizes itself from the machine's memory; under a hard address-space
    limit its allocations then fail deep inside native code, which can end in
    a crash with no message. Holding it to a share of the limit makes it spill
    to disk instead, and the note below is the last word if it still fails.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    limit_mb = int(soft * ADDRESS_SPACE_SHARE / 2**20)
    level = logging.WARNING if soft < SMALL_ADDRESS_SPACE else logging.INFO
    log.log(
        level,
        "this process may use at most %.1f GiB of address space (ulimit -v): DuckDB is held "
        "to %d MiB and spills beyond it; below about 4 GiB, training or a large scoring run "
        "may still be killed without a message (set data.memory_limit, or use Spark)",
        soft / 2**30,
        limit_mb,
    )
    return f"{limit_mb}MiB"


def _start_spark(master: str | None, conf: Mapping[str, str]) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "engine 'spark' needs PySpark: pip install 'churnmodel[spark]' (and Java 17+)"
        ) from exc
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not launched_by_spark_submit and (master is None or master.startswith("local")):
        # Local Python workers must run this interpreter (its venv has pandas,
        # lightgbm and churnmodel), not whatever `python3` is first on PATH.
        # Under spark-submit the workers' Python is the job's own setting.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("churnmodel")
    if master is not None:
        builder = builder.master(master)
    settings = {**SPARK_DEFAULTS, "spark.ui.showConsoleProgress": "false", **conf}
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")  # keep a batch job's log readable
    if (session.sparkContext.master or "").startswith("local"):
        for key, value in LOCAL_SPARK.items():
            if key not in conf:
                session.conf.set(key, value)
    return session


def is_spark(expr: ibis.Expr) -> bool:
    """Whether `expr` runs on the Spark backend."""
    return bool(expr._find_backend(use_default=True).name == "pyspark")


def default_collation(expr: ibis.Expr) -> str:
    """The default collation of the DuckDB connection that runs `expr` ('' unless one was set).

    Under one (e.g. NOCASE), DISTINCT and joins call different bytes equal.
    Spark has none.
    """
    if is_spark(expr):
        return ""
    backend = expr._find_backend(use_default=True)
    return str(backend.raw_sql("SELECT current_setting('default_collation')").fetchall()[0][0])


def _duckdb_function(name: str, argument: dt.DataType, returns: dt.DataType) -> Any:
    """A DuckDB function of one argument that Ibis does not name, as an Ibis function."""

    def function(value: Any) -> None:
        """Only its signature matters: DuckDB computes the values."""

    return ibis.udf.scalar.builtin(name=name, signature=((argument,), returns))(function)


_epoch_us = _duckdb_function("epoch_us", dt.Timestamp(timezone="UTC"), dt.int64)
_make_timestamp = _duckdb_function("make_timestamp", dt.int64, dt.timestamp)


def naive_utc(value: ir.TimestampValue) -> ir.TimestampValue:
    """A timestamp as naive UTC: what every timestamp is after validation.

    With a time zone, DuckDB's cast converts each value through the session
    time zone (UTC here): 2.1 s for 47.6M events, paid again by every pass
    that reads the typed table. Counting microseconds from the epoch gives
    the same values in 0.3 s. Other engines cast.
    """
    if value.type().timezone is None or is_spark(value):
        return value.cast("timestamp")
    naive: ir.TimestampValue = _make_timestamp(_epoch_us(value))
    return naive


def to_spark(table: ibis.Table) -> Any:
    """The Spark DataFrame that computes `table`; nothing runs until an action."""
    backend = table._find_backend(use_default=True)
    backend._run_pre_execute_hooks(table)  # registers in-memory tables with Spark
    return backend.raw_sql(backend.compile(table))


def cache(table: ibis.Table) -> ibis.Table:
    """`table.cache()`, with the in-memory tables it reads registered first.

    Ibis 12's PySpark backend compiles the cached query without registering
    memtables (the cutoff list is one), so Spark cannot find them; running the
    backend's pre-execution hooks first is what `execute` itself does.
    """
    table._find_backend(use_default=True)._run_pre_execute_hooks(table)
    return table.cache()


def collect(expr: ibis.Table) -> pd.DataFrame:
    """Run a table expression and return pandas, going through Arrow.

    Arrow keeps string ids as strings and skips ibis's pandas conversion,
    which trips deprecation warnings on pandas 3 (on Spark, Ibis converts
    through `toPandas`, so Spark results are fetched as Arrow directly).
    """
    table = spark_to_arrow(to_spark(expr)) if is_spark(expr) else expr.to_pyarrow()
    # split_blocks + self_destruct hand Arrow's buffers to pandas column by
    # column instead of holding both copies of a large result at once.
    frame: pd.DataFrame = table.to_pandas(split_blocks=True, self_destruct=True)
    return frame


_RESULT_FOLDERS: dict[int, Path] = {}
"""The private folder each live DuckDB connection's large results wait in (`collect_later`).

Keyed by identity: Ibis backends compare equal by database, so every
in-memory DuckDB connection is equal to every other, and a folder keyed by
equality was removed with an older connection while a newer one used it.
"""


def collect_later(expr: ibis.Table, order_by: Sequence[str] = ()) -> Callable[[], pd.DataFrame]:
    """Run `expr` now; what it returns hands the rows over as pandas, once, when called.

    So that a large result and the engine tables it was computed from are
    not in memory together: the result streams from DuckDB into an Arrow
    file in a private spill folder (`spill_folder`), and the caller drops
    its stored tables before reading it. At 1M customers, fetching the 3.1
    GiB matrix straight from DuckDB peaked at 9.2 GiB (the stored passes,
    DuckDB's sorted result and Arrow's copy alive together); through the
    file it peaked at the engine's query (docs/performance.md). The file is
    removed once read, or with the folder. Spark results are collected at
    once, as `collect` does.

    The rows come sorted by `order_by` (ascending, missing values last).
    The file holds them unsorted and the reader puts them in order
    (`read_sorted`): at 1M customers, DuckDB's sort of the 4.4M-row matrix
    took 15 s and spilled 3.3 GB; sorting its keys and taking each column
    in that order takes about 5 s. An Arrow file rather than parquet: the
    batches are written as DuckDB hands them over and read back without
    decoding (at 1M customers, about 24 s for both against 40 s).
    """
    if is_spark(expr):
        frame = collect(expr.order_by(list(order_by)) if order_by else expr)
        return lambda: frame
    backend = expr._find_backend(use_default=True)
    if id(backend) not in _RESULT_FOLDERS:  # one per connection, not one per result
        _RESULT_FOLDERS[id(backend)] = spill_folder("duckdb-result", backend)
        weakref.finalize(backend, _RESULT_FOLDERS.pop, id(backend), None)
    path = _RESULT_FOLDERS[id(backend)] / f"{uuid.uuid4().hex}.arrow"
    try:
        write_arrow(expr, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise

    def read() -> pd.DataFrame:
        try:
            return read_sorted(path, order_by)
        finally:
            path.unlink(missing_ok=True)

    return read


WRITE_BATCH_ROWS = 1 << 18
"""Rows per batch of the Arrow file: a batch of the 94-column matrix is about 200 MB."""


def write_arrow(expr: ibis.Table, path: Path) -> None:
    """`expr`'s rows as an uncompressed Arrow IPC file, batch by batch as the query runs."""
    schema = expr.schema().to_pyarrow()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches(expr, WRITE_BATCH_ROWS):
            writer.write_batch(batch)


COLUMNS_AT_ONCE = 8
"""Columns `read_sorted` reads, sorts and converts together: few enough that the
sorted copy of them is a small part of the frame. (Two groups at once in
threads saved about 1 s at 1M customers, but raised the peak towards 6 GiB.)"""


def read_sorted(path: Path, keys: Sequence[str]) -> pd.DataFrame:
    """An Arrow file's rows as pandas, sorted by `keys`, a few columns at a time.

    Sorting the whole table at once would hold it twice (at 1M customers
    the peak went from 5.8 to 8.9 GiB). Text sorts by its bytes, as
    DuckDB's and Spark's default collation do.
    """
    if not keys:
        whole: pd.DataFrame = _read_arrow(path).to_pandas(
            split_blocks=True, self_destruct=True, date_as_object=False
        )
        return whole
    names = _read_arrow(path).schema.names
    order = pc.sort_indices(
        _read_arrow(path, [names.index(k) for k in keys]),
        sort_keys=[(k, "ascending") for k in keys],
    )
    places = order.to_numpy().astype(np.intp)
    parts = []
    for first in range(0, len(names), COLUMNS_AT_ONCE):
        fields = list(range(first, min(first + COLUMNS_AT_ONCE, len(names))))
        # one chunk first: Arrow's take across many chunks is several times slower
        parts.append(_in_order(_read_arrow(path, fields).combine_chunks(), order, places))
    # side by side without a copy (copy-on-write): the frame is held once
    frame: pd.DataFrame = pd.concat(parts, axis=1)
    return frame


def _in_order(part: pa.Table, order: pa.Array, places: np.ndarray) -> pd.DataFrame:
    """`part`'s rows taken in `order` (`places` as numpy), as pandas.

    Numbers go to numpy first and are gathered there (missing values
    become NaN, as pandas would have them): at 1M customers, Arrow's take
    and conversion of the 87 numeric columns took 5.4 s. Dates come as
    datetime64, not as a Python object per row.
    """
    names = part.column_names
    numeric = [
        name
        for name, dtype in zip(names, part.schema.types, strict=True)
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype)
    ]
    columns = {name: np.take(part[name].to_numpy(), places) for name in numeric}
    others = part.drop_columns(numeric).take(order)
    del part
    converted = others.to_pandas(split_blocks=True, self_destruct=True, date_as_object=False)
    columns.update(converted.items())
    return pd.DataFrame({name: columns[name] for name in names}, copy=False)


def _read_arrow(path: Path, fields: Sequence[int] = ()) -> pa.Table:
    """The given columns (by place; all when none) of an Arrow file, memory-mapped.

    The mapping goes once nothing refers to the table, so a caller that
    copies what it reads maps a few columns at a time.
    """
    options = pa.ipc.IpcReadOptions(included_fields=list(fields) or None)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source, options=options).read_all()


def batches(expr: ibis.Table, rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """A DuckDB result as Arrow batches of about `rows` rows, not gathered anywhere first.

    The batches stream from the running query, so a large result is never
    held whole by the engine. Ibis 12's own streaming call does not run on
    DuckDB 2.
    """
    backend = expr._find_backend(use_default=True)
    backend._run_pre_execute_hooks(expr)  # registers the in-memory tables it reads
    schema = expr.schema().to_pyarrow()  # DuckDB's own types (HUGEINT sums) as Ibis types them
    for batch in backend.con.sql(backend.compile(expr)).to_arrow_reader(rows):
        yield batch.cast(schema)


def scalar(expr: ir.Scalar) -> Any:
    """Run a scalar expression and return a plain Python value."""
    if is_spark(expr):
        return spark_to_arrow(to_spark(expr.as_table())).column(0)[0].as_py()
    return expr.to_pyarrow().as_py()


def spark_to_arrow(frame: Any) -> pa.Table:
    """A (small) Spark result as Arrow, timestamps naive UTC like everywhere else.

    Spark marks timestamps with the session time zone (UTC); dropping the
    zone keeps the same instants as the naive UTC values DuckDB returns.
    """
    table: pa.Table = frame.toArrow()
    naive = pa.schema(
        field.with_type(pa.timestamp(field.type.unit))
        if pa.types.is_timestamp(field.type) and field.type.tz is not None
        else field
        for field in table.schema
    )
    return table.cast(naive)
