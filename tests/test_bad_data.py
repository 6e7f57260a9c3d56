"""A hostile tester's data, case by case: every variant is refused in one line or warned about.

Each case edits the tables of a small simulated shop (written as csv, so
text-level damage such as ``3.260`` reaches the reader as it would from a
real export), runs `churnmodel check` through the command line, and asserts
the documented outcome exactly: exit 2 with table, column and row count in
one line, or exit 0 with the documented warning and result. No traceback,
ever.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import churnmodel as cm
from churnmodel.cli import app

Tables = dict[str, pd.DataFrame]
runner = CliRunner()


@dataclass(frozen=True)
class Refused:
    """Exit 2 with one line naming the table, the column and how many rows."""

    table: str
    column: str | None
    rows: int | None
    words: str = ""


@dataclass(frozen=True)
class Warned:
    """Exit 0 with a warning holding `words`; `scoring_date` is the default date then."""

    words: str
    scoring_date: str | None = None
    first_day: str | None = None


@dataclass(frozen=True)
class Accepted:
    """Exit 0 and no warning at all."""

    scoring_date: str | None = None


Outcome = Refused | Warned | Accepted


@dataclass(frozen=True)
class Case:
    name: str
    edit: Callable[[Tables], None]
    outcome: Outcome
    config: str = ""


@pytest.fixture(scope="module")
def base() -> Tables:
    """The tables of 400 simulated customers as text, exactly as a csv export holds them."""
    tables = cm.simulate(400, seed=1).as_tables()
    text = {}
    for name, table in tables.items():
        if name == "churn" or table is None:
            continue
        out = table.copy()
        for column in out.columns:
            if pd.api.types.is_datetime64_any_dtype(out[column]):
                out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        text[name] = out.astype("string").fillna("")
    return text


LAST = "2025-12-31"  # the last day of the simulated history (checked in test_the_base_is_clean)
NEXT = "2026-01-01"


def _set(table: str, column: str, value: str, rows: int | slice = 1) -> Callable[[Tables], None]:
    """An edit: `value` in the first `rows` rows of `table.column`."""

    def edit(tables: Tables) -> None:
        frame = tables[table]
        where = slice(0, rows) if isinstance(rows, int) else rows
        frame.loc[frame.index[where], column] = value

    return edit


def _map_ids(table: str, change: Callable[[str], str], share: float = 1.0):
    def edit(tables: Tables) -> None:
        frame = tables[table]
        count = round(len(frame) * share)
        frame.loc[frame.index[:count], "customer_id"] = frame["customer_id"][:count].map(change)

    return edit


def _numeric_ids(tables: Tables) -> None:
    for frame in tables.values():
        frame["customer_id"] = frame["customer_id"].str.lstrip("C0")


def _german_numbers(tables: Tables) -> None:
    for table, column in (("transactions", "amount"), ("events", "value")):
        tables[table][column] = tables[table][column].str.replace(".", ",", regex=False)


def _then(*edits: Callable[[Tables], None]) -> Callable[[Tables], None]:
    def edit(tables: Tables) -> None:
        for step in edits:
            step(tables)

    return edit


def _drop_column(table: str, column: str):
    def edit(tables: Tables) -> None:
        tables[table] = tables[table].drop(columns=column)

    return edit


def _empty(table: str):
    def edit(tables: Tables) -> None:
        tables[table] = tables[table].head(0)

    return edit


def _duplicate_rows(table: str, rows: int):
    def edit(tables: Tables) -> None:
        tables[table] = pd.concat([tables[table], tables[table].head(rows)], ignore_index=True)

    return edit


def _rename_type(old: str, new: str):
    def edit(tables: Tables) -> None:
        events = tables["events"]
        events.loc[events["event_type"] == old, "event_type"] = new

    return edit


def _survey(kind: str, value: str, rows: int = 1):
    def edit(tables: Tables) -> None:
        events = tables["events"]
        answered = events.index[(events["event_type"] == kind) & (events["value"] != "")]
        events.loc[answered[:rows], "value"] = value

    return edit


def _zoe(form: str):
    """The first customer becomes 'Zoë' in the NFC form; `form` is used in the transactions."""

    def edit(tables: Tables) -> None:
        old = tables["customers"]["customer_id"].iloc[0]
        for name, frame in tables.items():
            spelled = unicodedata.normalize(form if name == "transactions" else "NFC", "Zoë")
            frame.loc[frame["customer_id"] == old, "customer_id"] = spelled

    return edit


NAMED_TYPES = """
[features.engagement]
event_types = ["login", "feature_use", "support_ticket", "nps", "csat"]
"""
ALL_ROWS = slice(None)

CASES = [
    # --- timestamps that would move the scoring date or the cutoff schedule
    Case(
        "one transaction in 2062",
        _set("transactions", "timestamp", "2062-03-01T10:00:00Z"),
        Warned("1 row(s) outside the regular activity", scoring_date=NEXT),
    ),
    Case(
        "one event in 2062",
        _set("events", "timestamp", "2062-03-01"),
        Warned("table 'events', column 'timestamp': 1 row(s)", scoring_date=NEXT),
    ),
    Case(
        "one transaction 20 days late",
        _set("transactions", "timestamp", "2026-01-20T08:00:00Z"),
        Warned("e.g. 2026-01-20", scoring_date=NEXT),
    ),
    Case(
        "one transaction in 1900",
        _set("transactions", "timestamp", "1900-01-01"),
        Warned("e.g. 1900-01-01", first_day="2024-01-01"),
    ),
    Case(
        "a year-0001 placeholder",
        _set("events", "timestamp", "0001-01-01T00:00:00"),
        Warned("e.g. 0001-01-01", first_day="2024-01-01"),
    ),
    Case(
        "a stray early row a year before the rest",
        _set("events", "timestamp", "2022-11-05T00:00:00Z"),
        Warned("e.g. 2022-11-05", first_day="2024-01-01"),
    ),
    Case(
        "outliers in both tables, both said",
        _then(
            _set("events", "timestamp", "2070-01-01"),
            _set("transactions", "timestamp", "1899-12-31"),
        ),
        Warned("table 'transactions', column 'timestamp'", scoring_date=NEXT),
    ),
    Case(
        "2 % of transactions in the future",
        _set("transactions", "timestamp", "2062-01-01", 176),
        Refused("transactions", "timestamp", 176, "data.max_outlier_share"),
    ),
    Case(
        "outliers stop the run when the share is 0",
        _set("transactions", "timestamp", "2062-01-01"),
        Refused("transactions", "timestamp", 1, "max_outlier_share = 0"),
        "[data]\nmax_outlier_share = 0\n",
    ),
    Case(
        "a timestamp that is not one",
        _set("transactions", "timestamp", "yesterday"),
        Refused("transactions", "timestamp", 1, "a timestamp"),
    ),
    Case(
        "an empty timestamp",
        _set("events", "timestamp", "", 3),
        Refused("events", "timestamp", 3, "not an empty value"),
    ),
    Case(
        "an impossible date",
        _set("transactions", "timestamp", "2025-02-30"),
        Refused("transactions", "timestamp", 1),
    ),
    Case(
        "a signup date that is not one",
        _set("customers", "signup_date", "01/02/2024x"),
        Refused("customers", "signup_date", 1),
    ),
    # --- ids that match nothing, or look damaged
    Case(
        "integer ids against zero-padded customers",
        _map_ids("transactions", lambda i: str(int(i.lstrip("C")))),
        Refused("transactions", "customer_id", None, "not in 'customers'"),
    ),
    Case(
        "float-looking ids",
        _then(_numeric_ids, _map_ids("transactions", lambda i: f"{i}.0")),
        Refused("transactions", "customer_id", None, "data.max_unmatched_share"),
    ),
    Case(
        "float-looking ids accepted when allowed, and still said",
        _then(_numeric_ids, _map_ids("transactions", lambda i: f"{i}.0")),
        Warned("the look of a float"),
        "[data]\nmax_unmatched_share = 1.0\n",
    ),
    Case(
        "a trailing space on a few event ids",
        _map_ids("events", lambda i: i + " ", 0.002),
        Warned("spaces at the start or end"),
    ),
    Case(
        "a trailing space on 10 % of transaction ids",
        _map_ids("transactions", lambda i: i + " ", 0.1),
        Refused("transactions", "customer_id", None, "880 of 8,802 rows"),
    ),
    Case(
        "a leading space in customers",
        _map_ids("customers", lambda i: " " + i, 0.01),
        Warned("spaces at the start or end"),
    ),
    Case(
        "a whitespace-only id",
        _set("transactions", "customer_id", "   "),
        Refused("transactions", "customer_id", 1, "not empty or blank"),
    ),
    Case(
        "an empty id",
        _set("events", "customer_id", "", 2),
        Refused("events", "customer_id", 2, "not empty or blank"),
    ),
    Case(
        "a tab for an id",
        _set("customers", "customer_id", "\t"),
        Refused("customers", "customer_id", 1),
    ),
    Case("NFD against NFC", _zoe("NFD"), Warned("a Unicode form other than NFC")),
    Case("the same id in NFC everywhere", _zoe("NFC"), Accepted()),
    Case(
        "events of customers nobody knows (0.5 %)",
        _map_ids("events", lambda i: "X" + i, 0.005),
        Warned("have a customer_id that is not in 'customers'"),
    ),
    Case(
        "a customer listed twice with different data",
        _then(_duplicate_rows("customers", 1), _set("customers", "plan", "gold", slice(-1, None))),
        Refused("customers", "customer_id", 1, "one row per customer"),
    ),
    # --- numbers
    Case(
        "European thousands separators",
        _set("transactions", "amount", "3.260", 55),
        Refused("transactions", "amount", 55, "thousands"),
    ),
    Case(
        "thousands separators read as decimals when asked",
        _set("transactions", "amount", "3.260", 55),
        Accepted(),
        "[data]\nnumber_style = 'point'\n",
    ),
    Case(
        "German numbers read with number_style = comma",
        _then(
            _german_numbers,
            _set("transactions", "amount", "1.234,56", 10),
            _set("transactions", "amount", "12,5", slice(10, 20)),
        ),
        Accepted(),
        "[data]\nnumber_style = 'comma'\n",
    ),
    Case(
        "German numbers without the setting",
        _set("transactions", "amount", "1.234,56", 10),
        Refused("transactions", "amount", 10, "a number"),
    ),
    Case(
        "NaN amount",
        _set("transactions", "amount", "NaN", 2),
        Refused("transactions", "amount", 2, "finite"),
    ),
    Case(
        "infinite amount",
        _set("transactions", "amount", "inf"),
        Refused("transactions", "amount", 1, "finite"),
    ),
    Case(
        "negative infinite amount",
        _set("transactions", "amount", "-Infinity"),
        Refused("transactions", "amount", 1, "finite"),
    ),
    Case(
        "an absurd amount",
        _set("transactions", "amount", "1e300"),
        Refused("transactions", "amount", 1, "finite"),
    ),
    Case(
        "an amount that is text",
        _set("transactions", "amount", "twelve"),
        Refused("transactions", "amount", 1, "a number"),
    ),
    Case(
        "an empty amount",
        _set("transactions", "amount", "", 4),
        Refused("transactions", "amount", 4, "not an empty value"),
    ),
    Case("refunds are negative amounts", _set("transactions", "amount", "-19.99", 30), Accepted()),
    Case("NaN survey answer", _survey("nps", "nan"), Refused("events", "value", 1, "finite")),
    Case("infinite survey answer", _survey("csat", "inf"), Refused("events", "value", 1)),
    Case("NPS on 0-100", _survey("nps", "85", 40), Refused("events", "value", 40, "NPS")),
    Case("CSAT of 6", _survey("csat", "6", 3), Refused("events", "value", 3, "CSAT")),
    Case("CSAT of 0", _survey("csat", "0"), Refused("events", "value", 1, "between 1 and 5")),
    # --- event types
    Case(
        "Login instead of login",
        _rename_type("login", "Login"),
        Warned("did you mean 'Login'"),
        NAMED_TYPES,
    ),
    Case(
        "a trailing space in a type",
        _rename_type("feature_use", "feature_use "),
        Warned("did you mean 'feature_use '"),
        NAMED_TYPES,
    ),
    Case(
        "most events of a type nobody uses",
        _then(_rename_type("login", "session_start"), _rename_type("feature_use", "click")),
        Warned("of the events have a type no setting uses"),
        NAMED_TYPES + "group_other = false\n",
    ),
    Case(
        "a type the config names that never occurs",
        _rename_type("support_ticket", "ticket"),
        Warned("'support_ticket'"),
        NAMED_TYPES,
    ),
    # --- tables and columns
    Case(
        "no amount column",
        _drop_column("transactions", "amount"),
        Refused("transactions", "amount", None, "required column"),
    ),
    Case(
        "no event_type column",
        _drop_column("events", "event_type"),
        Refused("events", "event_type", None),
    ),
    Case(
        "an empty transactions table",
        _empty("transactions"),
        Refused("transactions", None, 0, "at least one row"),
    ),
    Case("an empty customers table", _empty("customers"), Refused("customers", None, 0)),
    Case(
        "exact duplicate transactions",
        _duplicate_rows("transactions", 7),
        Warned("7 exact duplicate row(s) kept"),
    ),
    Case(
        "exact duplicates dropped when asked",
        _duplicate_rows("events", 5),
        Warned("5 exact duplicate row(s) dropped"),
        "[data]\nduplicates = 'drop'\n",
    ),
    Case("an optional column left empty", _set("events", "value", "", ALL_ROWS), Accepted()),
    Case("an all-empty signup_date", _set("customers", "signup_date", "", ALL_ROWS), Accepted()),
]


def _write(tables: Tables, folder: Path, extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[data]"]
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
        lines.append(f'{name} = "{name}.csv"')
    config = "\n".join(lines) + "\n"
    if extra.startswith("[data]"):  # merge into the one [data] table
        config = config + extra.removeprefix("[data]\n")
    else:
        config = config + extra
    path = folder / "churn.toml"
    path.write_text(config)
    return path


def _check(tables: Tables, folder: Path, extra: str = ""):
    config = _write(tables, folder, extra)
    return runner.invoke(app, ["check", "--config", str(config)], catch_exceptions=False)


def test_the_base_is_clean(base: Tables, tmp_path: Path) -> None:
    result = _check({k: v.copy() for k, v in base.items()}, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"regular activity from 2024-01-01 to {LAST}; default scoring date {NEXT}" in (
        result.output
    )
    assert "0 warning(s)" in result.output


def test_there_are_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_data(case: Case, base: Tables, tmp_path: Path) -> None:
    tables = {k: v.copy() for k, v in base.items()}
    case.edit(tables)
    result = _check(tables, tmp_path, case.config)
    output = result.output
    assert "Traceback" not in output
    outcome = case.outcome
    if isinstance(outcome, Refused):
        assert result.exit_code == 2, output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, output
        line = re.sub(r"\s+", " ", output[output.index("error:") :])
        assert f"table '{outcome.table}'" in line
        if outcome.column:
            assert f"column '{outcome.column}'" in line
        if outcome.rows is not None:
            assert f"{outcome.rows:,} row" in line
        assert outcome.words in line
        return
    assert result.exit_code == 0, output
    flat = re.sub(r"\s+", " ", output)
    if isinstance(outcome, Accepted):
        assert "0 warning(s)" in output, output
        assert "WARNING" not in output
    else:
        assert outcome.words in flat, output
        assert re.search(r"[1-9]\d* warning\(s\)", output), output
    scoring_date = outcome.scoring_date
    if scoring_date:
        assert f"default scoring date {scoring_date}" in output
    first = getattr(outcome, "first_day", None)
    if first:
        assert f"regular activity from {first} to {LAST}" in output


def test_out_of_memory_is_one_line_with_the_setting_to_change(base: Tables, tmp_path) -> None:
    result = _check(
        {k: v.copy() for k, v in base.items()}, tmp_path, "[data]\nmemory_limit = '1MB'\n"
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error: out of memory (OutOfMemoryException" in result.output
    assert "set data.memory_limit" in re.sub(r"\s+", " ", result.output)


@pytest.mark.slow
def test_a_hard_address_space_limit_ends_in_a_message_not_a_crash(base, tmp_path) -> None:
    config = _write({k: v.copy() for k, v in base.items()}, tmp_path, "")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1_500 * 2**20, resource.RLIM_INFINITY))

    done = subprocess.run(
        [sys.executable, "-m", "churnmodel", "check", "--config", str(config)],
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = re.sub(r"\s+", " ", done.stderr)
    assert done.returncode in (0, 2), said  # never killed by a signal (negative) or a traceback (1)
    assert "ulimit -v" in said and "DuckDB is held to" in said
    if done.returncode == 2:
        assert "error: out of memory" in said


def test_suspicious_ids_are_counted_in_rows_not_ids(con) -> None:
    import pyarrow as pa

    from churnmodel.data.validate import suspicious_id_rows

    ids = ["a ", "a ", " b", "12.0", "12.0", "12.0", "-7.00", "Zoë", "c", None]
    table = con.create_table("suspects", pa.table({"customer_id": ids}), temp=True)
    assert suspicious_id_rows(table.customer_id) == {"spaces": 3, "float": 4, "unicode": 1}
