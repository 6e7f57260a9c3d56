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

import ctypes
import errno
import functools
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnmodel.errors import ConfigError


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
_DEBRIS = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.(?P<rest>.*)$")


def _scratch_prefix(name: str) -> str:
    """Hidden, and naming host and process, so a later run can tell a dead run's leftovers."""
    return f".{name}.{HOST}-{os.getpid()}."


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=_scratch_prefix(target.name), suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~current_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(target: Path, keep: Iterable[str] | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; swap it in for `target` on success.

    An existing `target` is replaced only after the new content is complete,
    in one atomic exchange where the file system offers it (Linux), so a
    reader or a kill never finds `target` missing or half-new. `keep` names
    entries of the old `target` that the new one must not lose unless it
    writes them itself (``keep=KEEP_ALL`` carries every entry over): they are
    hard-linked into the staging folder (copied where links are refused),
    so a features file or a monitor/ folder beside the list survives.
    """
    target = Path(target)
    here = Path.cwd().resolve()
    if target.resolve() == here or target.resolve() in here.parents:
        raise ConfigError(
            f"output folder {target} holds the working folder; it is replaced as a whole "
            "when the outputs are complete, so choose a folder of its own"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target)
    tmp = Path(tempfile.mkdtemp(prefix=_scratch_prefix(target.name), dir=target.parent))
    tmp.chmod(0o777 & ~current_umask())
    try:
        yield tmp
        if keep is not None and target.is_dir():
            _carry_over(target, tmp, keep)
        swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


KEEP_ALL = ("*",)
"""`atomic_directory(keep=KEEP_ALL)`: every entry of the old folder that the run does not write."""


def _carry_over(old: Path, new: Path, keep: Iterable[str]) -> None:
    wanted = set(keep)
    for entry in old.iterdir():
        if (new / entry.name).exists() or _DEBRIS.match(entry.name):
            continue
        if "*" not in wanted and entry.name not in wanted:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, new / entry.name)


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def swap_in(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target` and delete what `target` held.

    With renameat2(RENAME_EXCHANGE) the two names trade places at once;
    elsewhere the old folder is first renamed aside, and a run killed
    between the two renames leaves it there, under a name `clear_debris`
    recognises and puts back.
    """
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)
        return
    old = target.with_name(_scratch_prefix(target.name) + "old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)  # never leave `target` missing
        raise
    shutil.rmtree(old, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Atomically trade the names of two paths (Linux renameat2); False where unsupported."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False  # a file system or kernel without the exchange: rename in two steps
    raise OSError(error, os.strerror(error), str(second))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def clear_debris(target: Path) -> None:
    """Remove what runs killed while writing `target` left beside it; restore a set-aside folder.

    Only leftovers of processes on this host that no longer run are
    touched, so a concurrent run's staging folder is never taken.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        found = _DEBRIS.match(entry.name)
        if not found or found["name"] != target.name or found["host"] != HOST:
            continue
        if process_running(int(found["pid"])):
            continue
        if found["rest"] == "old" and not target.exists():
            os.replace(entry, target)  # killed between the two renames of swap_in
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def process_running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (someone else's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


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


@contextmanager
def file_lock(path: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block.

    An advisory `flock`: every churnmodel process on machines sharing the
    file waits its turn; the kernel releases it when a process dies, so a
    killed run never leaves it held. `waiting` is called once when another
    process holds it. Where `fcntl` is missing (Windows) the block runs
    unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the platforms we test
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def scratch_folder(purpose: str) -> Iterator[Path]:
    """A temporary folder in the system's temp folder, deleted afterwards.

    Named after host and process like the staging folders, so the next run
    deletes what a killed one left (`clear_debris`), instead of letting
    downloads and plots pile up in /tmp.
    """
    base = Path(tempfile.gettempdir()) / f"churnmodel-{purpose}"
    clear_debris(base)
    with tempfile.TemporaryDirectory(prefix=_scratch_prefix(base.name)) as tmp:
        yield Path(tmp)
