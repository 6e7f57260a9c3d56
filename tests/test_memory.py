"""Memory by design: DuckDB's default share, where it spills, and no second copy of the matrix."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from churnmodel import engine
from churnmodel.config import FeatureConfig
from churnmodel.engine import DUCKDB_MEMORY_SHARE, collect_later, connect
from churnmodel.features.bgnbd import bgnbd_columns, fit_at_cutoff
from churnmodel.features.matrix import add_derived

CONNECT = """
import json, os, sys
from churnmodel.engine import connect
con = connect(memory_limit=sys.argv[1] if len(sys.argv) > 1 else None)
settings = con.raw_sql(
    "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
).fetchone()
# a sort that cannot fit in the limit given: it must spill, not fail
rows = con.raw_sql(
    "SELECT count(*) FROM (SELECT range AS i, hash(range) AS h FROM range(4000000) ORDER BY h)"
).fetchone()[0]
spill = settings[1]
mode = oct(os.stat(spill).st_mode & 0o777)
seen = {"limit": settings[0], "spill": spill, "exists": os.path.isdir(spill), "rows": rows}
seen["mode"] = mode
print(json.dumps(seen))
sys.stdout.flush()
if os.environ.get("DIE"):
    os._exit(9)  # no atexit: what a killed run leaves behind
"""


def _connect(tmp_path: Path, *args: str, die: bool = False) -> dict[str, object]:
    env = {**os.environ, "TMPDIR": str(tmp_path), **({"DIE": "1"} if die else {})}
    done = subprocess.run(
        [sys.executable, "-c", CONNECT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == (9 if die else 0), done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_default_limit_is_a_quarter_of_the_memory(tmp_path) -> None:
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = Path(limit).read_text().strip() if Path(limit).is_file() else ""
        physical = min(physical, int(text)) if text.isdigit() else physical
    number, unit = str(_connect(tmp_path)["limit"]).split()  # as DuckDB reports it
    seen = float(number) * {"MiB": 2**20, "GiB": 2**30}[unit]
    # DuckDB shows one decimal (5.8 GiB for 5.88): a tenth of a GiB either way
    assert abs(seen - max(2**30, physical * DUCKDB_MEMORY_SHARE)) <= 0.1 * 2**30


def test_duckdb_spills_into_a_private_temp_folder_that_is_removed_after(tmp_path) -> None:
    seen = _connect(tmp_path, "40MB")
    assert seen["rows"] == 4_000_000  # sorted 4M rows (~100 MB) under a 40 MB limit
    assert seen["limit"] in ("38.1 MiB", "40.0 MB")  # DuckDB shows MiB
    spill = Path(str(seen["spill"]))
    assert spill.parent == tmp_path and spill.name.startswith(".churnmodel-duckdb.")
    assert seen["exists"] and seen["mode"] == "0o700"  # spills hold customer data: private
    assert not spill.exists()  # removed when the process ended
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_spill_folder_is_removed_by_the_next_run(tmp_path) -> None:
    killed = Path(str(_connect(tmp_path, "40MB", die=True)["spill"]))
    assert killed.is_dir()  # left behind: os._exit skips the clean-up
    later = _connect(tmp_path)
    assert not killed.exists()
    assert later["limit"] != "38.1 MiB"  # the default, not the killed run's setting
    assert list(tmp_path.iterdir()) == []


def test_the_derived_features_do_not_copy_the_matrix() -> None:
    """No second copy of a matrix that can be gigabytes (the issue's 'never held twice')."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "cutoff": pd.to_datetime(["2025-01-01", "2025-02-01"] * (n // 2)),
            "tx_purchase_days_total": rng.integers(0, 10, n).astype(float),
            "tx_tenure_days": rng.integers(100, 400, n).astype(float),
            "days_since_last_tx": rng.integers(0, 100, n).astype(float),
        }
    )
    config = FeatureConfig.model_validate({"bgnbd": True, "bgnbd_horizon_days": 90})
    derived, fitted = add_derived(frame, config, None, fit=True)
    assert fitted is not None
    for column in frame.select_dtypes("number").columns:
        assert np.shares_memory(derived[column].to_numpy(), frame[column].to_numpy()), column
    assert {"tx_p_alive", "tx_expected_purchases_90d", "tx_expected_purchases_365d"} <= set(derived)
    # each cutoff's rows (interleaved here) hold the values of that cutoff's own fit
    for _, rows in derived.groupby("cutoff"):
        own = bgnbd_columns(rows, fit_at_cutoff(rows), 90)
        for name, values in own.items():
            np.testing.assert_array_equal(rows[name].to_numpy(), values)


def test_a_large_result_is_read_after_the_engine_lets_go_of_it(tmp_path, monkeypatch) -> None:
    """`collect_later`: the rows wait in a private file, then come back exactly, and it goes."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    con = connect()
    amounts = pa.array([Decimal("1.000000001"), None, Decimal("-2.5")], pa.decimal128(38, 9))
    rows = pa.table(
        {
            "customer_id": ["b", "a", "c"],
            "cutoff": pa.array([dt.date(2025, 1, 1)] * 3, pa.date32()),
            "amount": amounts,
            "seen": pa.array([dt.datetime(2025, 1, 2, 3, 4, 5), None, None], pa.timestamp("us")),
        }
    )
    table = con.create_table("rows", rows, temp=True)
    read = collect_later(table, order_by=["customer_id"])
    (waiting,) = list(tmp_path.glob(".churnmodel-duckdb-result.*/*.arrow"))
    assert oct(waiting.parent.stat().st_mode & 0o777) == "0o700"
    con.drop_table("rows")  # what the caller frees before reading
    expected = rows.sort_by("customer_id").to_pandas(date_as_object=False)
    pd.testing.assert_frame_equal(read(), expected)
    assert not waiting.exists()
    collect_later(con.create_table("again", rows, temp=True))()  # same connection, same folder
    assert [p.name for p in tmp_path.glob(".churnmodel-duckdb-result.*")] == [waiting.parent.name]
    # another connection (Ibis calls them equal) keeps its own folder when the first one goes
    other = connect()
    later = collect_later(other.create_table("rows", rows, temp=True))
    del con, table
    gc.collect()
    assert not waiting.parent.exists()
    assert later()["customer_id"].tolist() == ["b", "a", "c"]


def test_a_result_is_sorted_by_every_key_in_turn_across_batches(monkeypatch) -> None:
    """`read_sorted`: rows in order of the first key, then the second, each row whole.

    300k rows span three batches of the Arrow file, and two columns at a
    time are read, so the order holds across both kinds of border.
    """
    monkeypatch.setattr(engine, "COLUMNS_AT_ONCE", 2)
    monkeypatch.setattr(engine, "WRITE_BATCH_ROWS", 100_000)
    n = 300_000
    number = np.arange(n)
    rows = pa.table(
        {
            "x": number.astype(float),
            "customer_id": pa.array((number * 7919 % 1000).astype(str)),
            "cutoff": pa.array(number * 31 % 997, pa.int32()).cast(pa.date32()),
            "n": number,
            # numbers with gaps are gathered through numpy: NaN, as pandas has them from Arrow
            "maybe": pa.array(np.where(number % 3 == 0, np.nan, number / 7), from_pandas=True),
            "count": pa.array([None if i % 5 == 0 else i % 100 for i in range(n)], pa.int8()),
        }
    )
    con = connect()
    frame = collect_later(con.create_table("rows", rows, temp=True), ["customer_id", "cutoff"])()
    expected = rows.to_pandas(date_as_object=False).sort_values(
        ["customer_id", "cutoff"], ignore_index=True
    )
    pd.testing.assert_frame_equal(frame, expected)
    assert frame["customer_id"].iloc[0] == "0" and frame["customer_id"].iloc[-1] == "999"  # bytes
