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

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnmodel.errors import ConfigError

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writes stay atomic, nothing is locked
    fcntl = None


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_DEBRIS = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d{1,10})\.(?P<rest>.*)$")
LIVE = ".live"
"""A file in each staging folder, locked while its writer lives (the kernel frees it on death)."""


def _scratch_prefix(name: str) -> str:
    """Hidden, and naming host and process, so a later run can tell a dead run's leftovers."""
    return f".{name}.{HOST}-{os.getpid()}."


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success.

    The temporary file stays locked while this process writes it, so a
    later run clears it only once its writer is gone (`clear_debris`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=_scratch_prefix(target.name), suffix=".tmp", dir=target.parent
    )
    tmp = Path(tmp_name)
    try:
        _hold(fd)
        tmp.chmod(0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, target)
    finally:
        os.close(fd)
        tmp.unlink(missing_ok=True)


@contextmanager
def file_set(folder: Path, retire: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a staging folder inside `folder`; what it holds replaces `folder`'s entries together.

    For output folders the user names (`--out`): the folder itself is never
    replaced, so a mount point, a symlink, a team share's group and ACLs and
    the other files in it stay as they are. The set is written complete
    into hidden staging inside `folder`; a journal naming its entries is
    then written atomically (the commit) and the entries are renamed into
    place, microseconds apart. A run killed before the journal leaves the
    old set; one killed after it is finished by the next writer or reader
    (`finish_set`), so readers that go through churnmodel never see a mix.
    Writers of one folder take turns (a lock file in it). `retire` names
    files of an earlier set that this one does not write: they are
    removed in the same commit, so no file of an older run stays beside
    the new set (an old contact list beside a new outreach list).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output folder {folder}: an existing file; expected a folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _set_writer(folder, retire) as staging:
            yield staging
    except BaseException:
        if created:  # a run that wrote nothing leaves no folder behind either
            (folder / SET_LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


@contextmanager
def _set_writer(folder: Path, retire: Sequence[str] = ()) -> Iterator[Path]:
    """The staging, journal and renames of `file_set`, under the folder's lock."""
    with file_lock(folder / SET_LOCK):
        finish_set(folder)
        staging, live = _staging("set", folder)
        committed = False
        try:
            yield staging
            entries = sorted(p.name for p in staging.iterdir() if p.name != LIVE)
            retired = sorted(Path(n).name for n in retire if Path(n).name not in entries)
            journal = {"staging": staging.name, "entries": entries, "retired": retired}
            write_text(json.dumps(journal) + "\n", folder / SET_JOURNAL)
            committed = True  # from here on the new set wins, even if renaming fails now
            finish_set(folder)
        finally:
            os.close(live)
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)


SET_JOURNAL = ".churnmodel-set.json"
SET_LOCK = ".churnmodel-set.lock"


def complete_set(folder: Path) -> None:
    """For readers: finish a committed set left half-renamed, under the writers' lock.

    Does nothing (and creates no lock file) where no journal is waiting.
    """
    folder = Path(folder)
    if (folder / SET_JOURNAL).is_file():
        with file_lock(folder / SET_LOCK):
            finish_set(folder)


def finish_set(folder: Path) -> None:
    """Complete a committed set that a killed run left half-renamed, and clear dead staging.

    Idempotent: entries already in place are skipped. Called by every
    writer of `folder` first and by readers of its files (`export --from`,
    `monitor --scored`).
    """
    folder = Path(folder)
    journal = folder / SET_JOURNAL
    if journal.is_file():
        try:
            committed = json.loads(journal.read_text(encoding="utf-8"))
            staging, entries = folder / committed["staging"], list(committed["entries"])
        except (ValueError, KeyError, TypeError):  # written atomically, so only by hand
            committed, entries = None, []
        if committed is not None and Path(committed["staging"]).name == committed["staging"]:
            for name in entries:
                source = staging / Path(name).name
                with contextlib.suppress(FileNotFoundError):  # already in place
                    if source.is_dir() and (folder / source.name).is_dir():
                        swap_in(source, folder / source.name)
                    elif source.exists():
                        os.replace(source, folder / source.name)
            for name in committed.get("retired", []):  # a journal from before: none
                (folder / Path(name).name).unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        journal.unlink(missing_ok=True)
    clear_debris(folder / "set")


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; swap it in for `target` on success.

    For folders churnmodel owns whole (an exported model version, simulated
    data, a Spark output folder inside a `file_set`). An existing `target`
    is replaced only after the new content is complete, in one atomic
    exchange where the file system offers it (Linux), so a reader or a kill
    never finds `target` missing or half-new. A symlink, a mount point or a
    file is refused rather than swapped away.
    """
    target = Path(target)
    _check_swappable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target)
    tmp, live = _staging(target.name, target.parent)
    try:
        yield tmp
        os.close(live)
        live = -1
        (tmp / LIVE).unlink(missing_ok=True)
        swap_in(tmp, target)
    finally:
        if live >= 0:
            os.close(live)
        shutil.rmtree(tmp, ignore_errors=True)


def _staging(name: str, parent: Path, private: bool = False) -> tuple[Path, int]:
    """A new hidden staging folder in `parent`, and its held lock.

    Its mode is the one `mkdir` gives, or 0700 (`mkdtemp`'s) when `private`.
    The caller closes the returned descriptor when the staging is done with.
    """
    staging = Path(tempfile.mkdtemp(prefix=_scratch_prefix(name), dir=parent))
    live = os.open(staging / LIVE, os.O_CREAT | os.O_RDWR, 0o600)
    _hold(live)
    if not private:
        staging.chmod(0o777 & ~current_umask())
    return staging, live


def spill_folder(purpose: str, owner: object) -> Path:
    """A private folder in the system's temp folder for as long as `owner` lives.

    For an engine's spill files, which hold customer data: only this user
    can read it (mode 0700, as `mkdtemp` makes it), each connection has its
    own (two engines never share spill file names), and it is removed when
    `owner` is collected or the process exits. A killed run's folder is
    removed by the next run (`clear_debris`, through the held lock), so
    spills never pile up in /tmp or in the working folder. `TMPDIR` moves
    it to a bigger disk.
    """
    base = Path(tempfile.gettempdir()) / f"churnmodel-{purpose}"
    clear_debris(base)
    folder, live = _staging(base.name, base.parent, private=True)
    weakref.finalize(owner, _remove_spill, folder, live)
    return folder


def _remove_spill(folder: Path, live: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.close(live)


def _check_swappable(target: Path) -> None:
    problem = None
    if target.is_symlink():
        problem = f"a symlink (to {os.readlink(target)}); name the folder itself"
    elif target.exists() and not target.is_dir():
        problem = "an existing file; expected a folder"
    elif target.is_dir() and os.path.ismount(target):
        problem = "a mount point, which cannot be replaced; use a folder inside it"
    else:
        try:
            here = Path.cwd().resolve()
        except OSError:  # the working folder was deleted: nothing to protect
            here = None
        if here is not None and (target.resolve() == here or target.resolve() in here.parents):
            problem = "the working folder or one holding it; choose a folder of its own"
    if problem:
        raise ConfigError(f"output folder {target}: {problem}")


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
    if not sys.platform.startswith("linux"):
        return False
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


def _hold(fd: int) -> None:
    """Lock an open file for as long as this process keeps it open (no-op without fcntl)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _abandoned(entry: Path) -> bool:
    """Whether the writer of a staging entry is gone: its lock can be taken.

    The lock is the proof: the kernel releases it when a process dies, in any
    pid namespace, so neither a reused pid nor a container restart matters.
    Entries without a lock file (a set-aside folder of `swap_in`) fall back
    to their name's host and pid.
    """
    lock = entry / LIVE if entry.is_dir() and not entry.is_symlink() else entry
    if lock.is_file():
        if fcntl is None:  # pragma: no cover - Windows: nothing tells, so nothing is taken
            return False
        try:
            with lock.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
        except OSError:  # held by a live writer (BlockingIOError), or not ours to read
            return False
    found = _DEBRIS.match(entry.name)
    if found is None or found["host"] != HOST:
        return False
    return int(found["pid"]) != os.getpid() and not process_running(int(found["pid"]))


def clear_debris(target: Path) -> None:
    """Remove what killed runs left beside `target`; restore a folder set aside by `swap_in`.

    Only entries named like this module's scratch files and whose writer is
    gone (`_abandoned`) are touched, so a concurrent run's staging is never
    taken.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        found = _DEBRIS.match(entry.name)
        if not found or found["name"] != target.name or not _abandoned(entry):
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
    except (PermissionError, OverflowError):  # someone else's process; an absurd number
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
        dated, date_format = _dates_as_text(neutralise(frame))
        dated.to_csv(
            tmp,
            index=False,
            encoding="utf-8-sig",
            date_format=date_format,
            sep=sep,
            decimal=decimal,
            lineterminator="\r\n",  # Excel's own; a CR inside a cell is then quoted
        )
    return target


DATE_FORMAT = "%Y-%m-%d"


def _dates_as_text(frame: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """`frame` with datetime columns written as ISO days, and the date format still to apply.

    pandas applies a `date_format` by calling Python on every cell of every
    text column (2.6M calls for a list of 400,000 rows), so datetime columns
    are formatted here and the format is passed on only when a text column
    holds datetime objects, which only pandas' own pass formats.
    """
    out = frame.copy(deep=False)
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime(DATE_FORMAT)
    mixed = any(
        pd.api.types.is_object_dtype(out[column])
        and pd.api.types.infer_dtype(out[column], skipna=True) not in PLAIN_KINDS
        for column in out.columns
    )
    return out, DATE_FORMAT if mixed else None


PLAIN_KINDS = ("string", "empty", "integer", "floating", "boolean", "date", "decimal")
"""What `infer_dtype` calls a column without datetime objects (a `datetime.date` is a day)."""


def write_text(text: str, target: Path) -> Path:
    """Write UTF-8 text under `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet run a text cell as a formula (OWASP, CSV injection)."""
FORMULA_PATTERN = r"^[=+\-@\t\r]"
"""The same starts as a regular expression, for Arrow's vectorised match."""


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell a spreadsheet could run as a formula made inert.

    Columns of text alone are checked in one vectorised pass and only the
    few risky cells change; categories and mixed columns go cell by cell.
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not is_text(values):
            continue
        if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.infer_dtype(
            values, skipna=True
        ) not in ("string", "empty"):
            out[column] = values.map(inert)
            continue
        text = pa.array(values, pa.string(), from_pandas=True)
        found = pc.match_substring_regex(text, FORMULA_PATTERN)
        risky = found.fill_null(False).to_numpy(zero_copy_only=False)
        if risky.any():
            out[column] = values.where(~risky, "'" + values[risky])
    return out


def among(ids: pd.Series, others: pd.Series | pd.Index) -> npt.NDArray[np.bool_]:
    """Which `ids` are among `others`, as text: ``ids.isin(others)`` for any number of ids.

    pandas' `isin` on Arrow text makes a Python object of every id in
    `others` (2-3 s for the 500,000 lapsed customers of a million).
    """
    text = pa.array(ids.astype(str), pa.string())
    found = pc.is_in(text, value_set=pa.array(others.astype(str), pa.string()))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


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
    if fcntl is None:  # pragma: no cover - not on the platforms we test
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
