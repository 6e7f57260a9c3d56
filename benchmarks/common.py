"""What every benchmark shares: where data and results live, peak memory, the result file."""

from __future__ import annotations

import datetime as dt
import json
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
    """Seconds per phase of one run: call it with a phase's name when the phase ends."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.started = self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self.clock, 1)
        self.clock = now

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
    """The fields every result file starts with."""
    return {
        "benchmark": benchmark,
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}, 2 cores",
    }


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
