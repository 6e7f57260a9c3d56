"""What every benchmark shares: where data and results live, peak memory, the result file."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / "data"
RESULTS = HERE / "results"
# About 10 purchases and 50 events per customer, the ratio of the 1M / 10M / 50M.
SIM = {"purchase_rate": 0.025, "login_rate": 0.09, "feature_use_rate": 0.045}


class Laps:
    """Seconds per phase of one run: call it with a phase's name when the phase ends.

    `starting` is the other way round, for churnmodel's progress callbacks,
    which name the step that begins.
    """

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.started = self.clock = time.perf_counter()
        self.current: str | None = None

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self.clock, 1)
        self.clock = now
        self.current = None

    def starting(self, name: str) -> None:
        """End the open phase (if any) and open `name`."""
        if self.current is not None:
            self(self.current)
        else:
            self.clock = time.perf_counter()
        self.current = name

    @property
    def seconds(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.started


def peak_rss_gib() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def header(benchmark: str) -> dict[str, object]:
    """The fields every result file starts with: what ran, on what, when.

    Cores and memory are read from the system (the cores this process may
    use, which a container or `taskset` can limit), so a result copied from
    another machine says so.
    """
    return {
        "benchmark": benchmark,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "memory_gib": round(_memory_bytes() / 2**30, 1),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def _commit() -> str:
    """The checked-out commit, marked "-dirty" when tracked files differ from it.

    The result files themselves do not count: a `make bench` rewrites them
    one after the other, which would mark every result but the first.
    """

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
        except OSError:  # no git: a copy of the sources, not a checkout
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":/",
        ":(top,exclude)benchmarks/results",
    )
    return commit + ("-dirty" if changed else "")


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_result(result: dict[str, object], name: str) -> Path:
    """Write `result` to benchmarks/results/<name>.json and print it."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return out


def run_part(module: str, part: str, *args: str) -> dict[str, object]:
    """Run one side of a benchmark in its own process; it prints its result as JSON last."""
    command = [sys.executable, "-m", module, "--part", part, *args]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
