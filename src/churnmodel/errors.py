"""The exceptions churnmodel raises on purpose.

Every error a user can cause with their data or config derives from
`ChurnModelError`, so the CLI can turn it into a one-line message and a
non-zero exit code instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class ChurnModelError(Exception):
    """Base class of all errors caused by input, config or models."""

    exit_code = 2


class ConfigError(ChurnModelError):
    """The run configuration or an API argument is invalid."""


class DataContractError(ChurnModelError):
    """A table does not meet the data contract.

    The message names the table, the column, what was expected, how many
    rows are affected and a few example values, because that is what a user
    needs to find and fix the problem in their own data.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        expected: str,
        rows: int | None = None,
        examples: Sequence[object] = (),
    ) -> None:
        self.table = table
        self.column = column
        self.expected = expected
        self.rows = rows
        self.examples = list(examples)
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        message = f"{where}: expected {expected}"
        if rows is not None:
            message += f"; {rows:,} row{'s' if rows != 1 else ''} affected"
        if self.examples:
            message += f" (e.g. {', '.join(repr(e) for e in self.examples)})"
        super().__init__(message)


class CutoffError(ChurnModelError):
    """No usable cutoff: the schedule is empty or a label window is not observed."""


class ModelError(ChurnModelError):
    """A saved model is missing, damaged, or does not fit the data it is asked to score."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says Python or DuckDB ran out of memory: a setting to change, not a bug.

    DuckDB's exception is recognised by name, so this leaf module imports no engine.
    """
    kind = type(exc)
    return isinstance(exc, MemoryError) or (
        kind.__name__ == "OutOfMemoryException" and "duckdb" in kind.__module__
    )
