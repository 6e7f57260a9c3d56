"""Atomic file and directory writes.

A scheduler may kill a job at any moment; readers must then see either the
previous complete output or nothing, never a half-written file under the
final name. Everything is written beside the target and renamed into place.

`tempfile` creates its files 0600 and folders 0700 whatever the umask, so
each one is given the mode a plain `open` or `mkdir` would have given it:
another service account or a team share can then read the list and the
exported model, as the umask allows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~current_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; swap it in for `target` on success.

    An existing `target` is replaced only after the new content is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o777 & ~current_umask())
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(
    frame: pd.DataFrame, target: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write a frame as parquet under `target` atomically, with extra schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {k.encode(): v.encode() for k, v in (metadata or {}).items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


def write_csv(frame: pd.DataFrame, target: Path, sep: str = ",", decimal: str = ".") -> Path:
    """CSV a spreadsheet opens cleanly: UTF-8 with BOM, ISO dates, inert text cells.

    Text that a spreadsheet would run as a formula (starting with ``=``,
    ``+``, ``-``, ``@``, a tab or CR) gets a leading ``'`` (OWASP's advice
    for CSV injection); `sep` and `decimal` give, e.g., the German style.
    """
    with atomic_path(target) as tmp:
        neutralise(frame).to_csv(
            tmp,
            index=False,
            encoding="utf-8-sig",
            date_format="%Y-%m-%d",
            sep=sep,
            decimal=decimal,
            lineterminator="\r\n",  # Excel's own; a CR inside a cell is then quoted
        )
    return target


def write_text(text: str, target: Path) -> Path:
    """Write UTF-8 text under `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet run a text cell as a formula (OWASP, CSV injection)."""


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell a spreadsheet could run as a formula made inert."""
    return map_text(frame, inert)


def map_text(frame: pd.DataFrame, change: Callable[[object], object]) -> pd.DataFrame:
    """A copy of `frame` with `change` applied to every cell of its text columns."""
    out = frame.copy()
    for column in out.columns:
        if is_text(out[column]):
            out[column] = out[column].map(change)
    return out


def inert(value: object) -> object:
    """`value` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def is_text(values: pd.Series) -> bool:
    """Object, string or categorical: the columns that may hold a formula-like text."""
    return bool(
        pd.api.types.is_object_dtype(values)
        or pd.api.types.is_string_dtype(values)
        or isinstance(values.dtype, pd.CategoricalDtype)
    )
