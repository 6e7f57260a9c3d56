"""How long `import churnmodel` and `churnmodel --help` take, against a bare interpreter.

Goal (issue 15): both under a second; nothing heavy (MLflow, Optuna,
matplotlib, PySpark) imported until a verb needs it. Each command runs
several times in fresh processes; the median is reported beside the median
of `python -c pass` from the same run, as a ratio, since this machine is
shared and noisy.

    python -m benchmarks.startup
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

from benchmarks.common import header, write_result

RUNS = 7
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import churnmodel": [sys.executable, "-c", "import churnmodel"],
    "churnmodel --help": [shutil.which("churnmodel") or "churnmodel", "--help"],
    "import churnmodel.workflows": [sys.executable, "-c", "import churnmodel.workflows"],
}


def median_seconds(command: list[str]) -> float:
    """The median wall time of `RUNS` fresh runs of `command`."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def main() -> None:
    seconds = {name: median_seconds(command) for name, command in COMMANDS.items()}
    floor = seconds["python -c pass"]
    result = {
        **header("startup"),
        "runs": RUNS,
        "seconds": seconds,
        "ratio_to_bare_python": {
            name: round(value / floor, 1) for name, value in seconds.items() if value != floor
        },
    }
    write_result(result, "startup")


if __name__ == "__main__":
    main()
