"""Outputs replaced as a set: a fault or a real kill -9 leaves the old set or the new, never a mix.

User-named output folders (`--out`) go through `file_set`: staging inside
the folder, a journal as the commit, renames, and `finish_set` completing a
killed commit for the next writer or reader. Folders churnmodel owns whole
(an exported model, simulated data) go through `atomic_directory`. These
tests kill real processes at the worst moments and check what a reader
then finds and what the next run cleans up.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from churnmodel import _io
from churnmodel.errors import ConfigError

SET_WRITER = """
import os, sys, time
from pathlib import Path
from churnmodel import _io

folder, moment, ready = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def hang(*args, **kwargs):
    ready.write_text("ready")
    time.sleep(120)

if moment == "after-commit":  # the journal is written; die after the first rename
    real = os.replace
    calls = []
    def replace_then_hang(first, second):
        real(first, second)
        calls.append(second)
        if Path(second).parent == folder and Path(second).name == "list.csv":
            hang()
    _io.os.replace = replace_then_hang

with _io.file_set(folder) as staging:
    (staging / "list.csv").write_text("new list")
    (staging / "report.html").write_text("new report")
    if moment == "while-writing":
        hang()
"""

DIRECTORY_WRITER = """
import os, sys, time
from pathlib import Path
from churnmodel import _io

target, moment, ready = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def hang(*args, **kwargs):
    ready.write_text("ready")
    time.sleep(120)

if moment == "before-swap":
    _io._exchange = hang
else:  # between the two renames of a file system without an atomic exchange
    _io._exchange = lambda first, second: False
    real = os.replace
    def replace_then_hang(first, second):
        real(first, second)
        hang()
    _io.os.replace = replace_then_hang

with _io.atomic_directory(target) as tmp:
    (tmp / "list.csv").write_text("new list")
    (tmp / "report.html").write_text("new report")
"""

OLD = {"list.csv": "old list", "report.html": "old report", "features.parquet": "other"}
NEW = {"list.csv": "new list", "report.html": "new report", "features.parquet": "other"}


def _old_set(folder: Path) -> None:
    folder.mkdir()
    for name, text in OLD.items():
        (folder / name).write_text(text)


def _visible(folder: Path) -> dict[str, str]:
    """What a person opening the folder sees (hidden bookkeeping files aside)."""
    return {p.name: p.read_text() for p in folder.iterdir() if not p.name.startswith(".")}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _kill_while_writing(tmp_path: Path, script: str, target: Path, moment: str) -> None:
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    program = tmp_path / "writer.py"
    program.write_text(script)
    process = subprocess.Popen([sys.executable, str(program), str(target), moment, str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, "the writer ended before the moment to kill it"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("moment", ["while-writing", "after-commit"])
def test_kill_9_during_a_set_leaves_old_or_new_whole_after_the_next_touch(
    tmp_path: Path, moment: str
) -> None:
    folder = tmp_path / "out"
    _old_set(folder)
    _kill_while_writing(tmp_path, SET_WRITER, folder, moment)
    if moment == "while-writing":
        assert _visible(folder) == OLD  # a reader sees the old set, whole
    else:
        assert _visible(folder) == OLD | {"list.csv": "new list"}  # the commit is half renamed
        assert _io.SET_JOURNAL in _hidden(folder)
    _io.finish_set(folder)  # what the next writer, `export --from` or `monitor --scored` do first
    assert _visible(folder) == (OLD if moment == "while-writing" else NEW)
    assert _hidden(folder) == [_io.SET_LOCK]  # no staging, no journal left
    with _io.file_set(folder) as staging:  # and the next run completes normally
        (staging / "list.csv").write_text("newer list")
    assert _visible(folder)["list.csv"] == "newer list"


@pytest.mark.parametrize("moment", ["before-swap", "between-renames"])
def test_kill_9_while_swapping_an_owned_folder_and_the_next_run(
    tmp_path: Path, moment: str
) -> None:
    target = tmp_path / "demo"
    _old_set(target)
    _kill_while_writing(tmp_path, DIRECTORY_WRITER, target, moment)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".demo.")]
    assert leftovers, "the kill should leave the dead run's staging behind"
    if moment == "before-swap":
        assert _visible(target) == OLD
    else:
        assert not target.exists()  # the one moment a two-step rename leaves nothing
    _io.clear_debris(target)  # what the next run does first
    assert _visible(target) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "ready", "writer.py"]


def test_a_fault_between_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch) -> None:
    target = tmp_path / "out"
    _old_set(target)
    monkeypatch.setattr(_io, "_exchange", lambda first, second: False)
    real = os.replace
    calls = []

    def second_fails(first, second):
        calls.append(first)
        if len(calls) == 2:
            raise OSError("injected")
        real(first, second)

    monkeypatch.setattr(_io.os, "replace", second_fails)
    with pytest.raises(OSError, match="injected"), _io.atomic_directory(target) as tmp:
        (tmp / "list.csv").write_text("new list")
    assert _visible(target) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_swap_is_one_exchange_on_linux(tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "x").write_text("first")
    (second / "x").write_text("second")
    assert _io._exchange(first, second)
    assert (first / "x").read_text() == "second" and (second / "x").read_text() == "first"


def test_liveness_is_a_lock_not_a_pid(tmp_path) -> None:
    """A reused pid or another container's pid namespace cannot fool the check."""
    target = tmp_path / "out"
    target.mkdir()
    held = tmp_path / f".out.{_io.HOST}-{os.getpid()}.held"
    free = tmp_path / f".out.{_io.HOST}-{os.getpid()}.free"  # our pid, but nobody holds it
    other_host = tmp_path / ".out.elsewhere-1.abc123"  # no lock file: left to its own host
    for folder in (held, free, other_host):
        folder.mkdir()
    (free / _io.LIVE).touch()
    lock = os.open(held / _io.LIVE, os.O_CREAT | os.O_RDWR)
    try:
        _io._hold(lock)
        _io.clear_debris(target)
    finally:
        os.close(lock)
    assert held.exists() and other_host.exists() and not free.exists()


def test_a_set_keeps_the_folder_itself_its_mode_and_its_other_files(tmp_path) -> None:
    real = tmp_path / "share" / "list"
    real.mkdir(parents=True)
    real.chmod(0o2770)
    (real / "notes.xlsx").write_text("mine")
    (real / "monitor").mkdir()
    inode = (real / "monitor").stat().st_ino
    link = tmp_path / "out"
    link.symlink_to(real)
    with _io.file_set(link) as staging:
        (staging / "list.csv").write_text("new list")
    assert link.is_symlink() and (real / "list.csv").read_text() == "new list"
    assert stat.S_IMODE(real.stat().st_mode) == 0o2770
    assert (real / "notes.xlsx").read_text() == "mine"
    assert (real / "monitor").stat().st_ino == inode  # a nested output folder is never touched


def test_a_set_retires_the_files_of_an_older_run_it_does_not_write(tmp_path) -> None:
    """An old contact list must not stay beside a new outreach list: gone with the commit."""
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("contacts.csv", "notes.xlsx"):
        (folder / name).write_text("old")
    with _io.file_set(folder, retire=("contacts.csv", "contacts.parquet", "list.csv")) as staging:
        (staging / "list.csv").write_text("new list")  # a name the set writes is not retired
    assert _visible(folder) == {"list.csv": "new list", "notes.xlsx": "old"}
    # a commit that a killed run left unfinished retires them when the next touch finishes it
    (folder / "contacts.csv").write_text("old")
    journal = {"staging": "set-gone", "entries": [], "retired": ["contacts.csv"]}
    (folder / _io.SET_JOURNAL).write_text(json.dumps(journal))
    _io.finish_set(folder)
    assert _visible(folder) == {"list.csv": "new list", "notes.xlsx": "old"}


@pytest.mark.parametrize("kind", ["symlink", "file", "working folder", "its parent"])
def test_an_owned_folder_that_cannot_be_swapped_is_refused(tmp_path, monkeypatch, kind) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "afile").write_text("keep me")
    target = {
        "symlink": tmp_path / "link",
        "file": tmp_path / "afile",
        "working folder": tmp_path,
        "its parent": tmp_path.parent,
    }[kind]
    with pytest.raises(ConfigError, match="output folder"), _io.atomic_directory(target):
        pass
    assert (tmp_path / "afile").read_text() == "keep me"
    assert (tmp_path / "link").is_symlink()
