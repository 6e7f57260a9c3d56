"""Folders swapped in whole: a fault or a real kill -9 leaves the old set or the new, never a mix.

Every output set (the list, the monitor and KPI folders, an exported model,
the simulated data) goes through `atomic_directory`; these tests kill a
real process at the two worst moments and check what a reader then finds
and what the next run cleans up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from churnmodel import _io
from churnmodel.errors import ConfigError

WRITER = """
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

with _io.atomic_directory(target, keep=_io.KEEP_ALL) as tmp:
    (tmp / "list.csv").write_text("new list")
    (tmp / "report.html").write_text("new report")
"""


def _old_set(target: Path) -> dict[str, str]:
    target.mkdir()
    files = {"list.csv": "old list", "report.html": "old report", "features.parquet": "other"}
    for name, text in files.items():
        (target / name).write_text(text)
    return files


def _contents(target: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in target.iterdir()}


def _kill_while_writing(tmp_path: Path, target: Path, moment: str) -> None:
    ready = tmp_path / "ready"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    process = subprocess.Popen([sys.executable, str(script), str(target), moment, str(ready)])
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


@pytest.mark.parametrize("moment", ["before-swap", "between-renames"])
def test_kill_9_while_writing_leaves_the_old_set_and_the_next_run_cleans_up(
    tmp_path: Path, moment: str
) -> None:
    target = tmp_path / "out"
    old = _old_set(target)
    _kill_while_writing(tmp_path, target, moment)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers, "the kill should leave the dead run's staging behind"
    if moment == "before-swap":
        assert _contents(target) == old  # a reader sees the old set, whole
    else:
        assert not target.exists()  # the one moment a two-step rename leaves nothing
    _io.clear_debris(target)  # what the next run does first
    assert _contents(target) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "ready", "writer.py"]
    with _io.atomic_directory(target, keep=_io.KEEP_ALL) as tmp:  # and the next run completes
        (tmp / "list.csv").write_text("new list")
    assert _contents(target) == old | {"list.csv": "new list"}


def test_a_fault_between_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch) -> None:
    target = tmp_path / "out"
    old = _old_set(target)
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
    assert _contents(target) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_swap_is_one_exchange_on_linux(tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "x").write_text("first")
    (second / "x").write_text("second")
    assert _io._exchange(first, second)
    assert (first / "x").read_text() == "second" and (second / "x").read_text() == "first"


def test_a_live_runs_staging_is_left_alone(tmp_path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    ours = tmp_path / f".out.{_io.HOST}-{os.getpid()}.abc123"  # this process: alive
    other_host = tmp_path / ".out.elsewhere-1.abc123"
    dead = tmp_path / f".out.{_io.HOST}-{_dead_pid()}.abc123"
    for folder in (ours, other_host, dead):
        folder.mkdir()
    _io.clear_debris(target)
    assert ours.exists() and other_host.exists() and not dead.exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_working_folder_is_never_swapped(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for target in (tmp_path, tmp_path.parent):
        with (
            pytest.raises(ConfigError, match="holds the working folder"),
            _io.atomic_directory(target),
        ):
            pass
