"""Writing the outreach files atomically, and cutting shorter lists from the full one.

Every file is written beside its final name and renamed into place, so a
killed job leaves the previous file (or none), never half of one. The data
files carry no timestamps: the same scores give byte-identical files.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd

from churnmodel._io import among, complete_set, write_parquet, write_text
from churnmodel.errors import ConfigError
from churnmodel.outreach.build import (
    COLUMNS,
    LIST_ASCENDING,
    LIST_ORDER,
    SEGMENTS,
    TIERS,
    list_columns,
)
from churnmodel.outreach.people import (
    CsvStyle,
    Headers,
    read_csv_list,
    write_people_csv,
    write_xlsx,
)

OUTPUTS = ("outreach.parquet", "outreach.csv", "not_scored.csv", "winback.csv", "report.html")


def write_outreach(
    outreach: pd.DataFrame,
    not_scored: pd.DataFrame,
    winback: pd.DataFrame,
    report: str,
    out_dir: Path,
    style: CsvStyle = "international",
    headers: Headers = "names",
) -> dict[str, Path]:
    """Write the full list (parquet, csv), the win-back list, the customers not scored, the report.

    The lapsed customers in `winback` are left out of not_scored.csv, so the
    three lists together hold every input customer once. The parquet keeps
    the machine names; the csv files follow `style` and `headers` (see
    `outreach.people`).
    """
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in OUTPUTS}
    rest = not_scored[~among(not_scored["customer_id"], winback["customer_id"])]
    write_parquet(outreach, paths["outreach.parquet"])
    write_people_csv(outreach, paths["outreach.csv"], style, headers)
    write_people_csv(winback, paths["winback.csv"], style, headers)
    write_people_csv(rest, paths["not_scored.csv"], style, headers)
    write_text(report, paths["report.html"])
    return paths


def read_outreach(path: Path) -> pd.DataFrame:
    """The full list written by `churnmodel score`: parquet, csv, or Spark's outreach/ folder.

    A set of outputs whose writer was killed while renaming is completed
    first (`complete_set`), so the list read is never half of two runs.
    """
    path = Path(path)
    with contextlib.suppress(OSError):  # a read-only folder: nobody renamed there
        complete_set(path.parent)
    if path.is_dir():  # parquet by risk tier, as Spark writes it: back to list order and dtypes
        frame = pd.read_parquet(path)
        frame["risk_tier"] = pd.Categorical(frame["risk_tier"].astype(str), TIERS, ordered=True)
        frame["segment"] = pd.Categorical(frame["segment"].astype(str), list(SEGMENTS))
        ordered = frame.sort_values(LIST_ORDER, ascending=LIST_ASCENDING, kind="stable")
        extra = {c: c for c in frame.columns if c not in COLUMNS}  # the customer attributes
        return ordered[list_columns(extra)].reset_index(drop=True)
    if not path.is_file():
        raise ConfigError(f"outreach list {path} does not exist; run `churnmodel score` first")
    if path.suffix == ".csv":
        return read_csv_list(path)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ConfigError(
            f"outreach list {path}: not a parquet file ({exc}); expected the outreach.parquet, "
            "outreach.csv or Spark outreach/ folder that scoring writes"
        ) from exc


def filter_outreach(
    outreach: pd.DataFrame,
    top: int | None = None,
    min_probability: float | None = None,
    tiers: list[str] | None = None,
    segments: list[str] | None = None,
) -> pd.DataFrame:
    """Rows matching every filter, in list order (by value at risk); `top` applies last."""
    _known("tiers", tiers, TIERS)
    _known("segments", segments, SEGMENTS)
    keep = pd.Series(True, index=outreach.index)
    if min_probability is not None:
        keep &= outreach["churn_probability"] >= min_probability
    if tiers:
        keep &= outreach["risk_tier"].astype(str).isin(tiers)
    if segments:
        keep &= outreach["segment"].astype(str).isin(segments)
    selected = outreach[keep]
    return selected.head(top) if top is not None else selected


def _known(parameter: str, given: list[str] | None, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given or ()) - set(allowed))
    if unknown:
        raise ConfigError(f"{parameter}: unknown {unknown}; expected some of {', '.join(allowed)}")


def write_list(
    frame: pd.DataFrame,
    target: Path,
    style: CsvStyle = "international",
    headers: Headers = "names",
) -> Path:
    """A shorter list as csv, xlsx or parquet, chosen by the file's suffix.

    `style` and `headers` shape the csv (and the xlsx headers); the parquet
    always keeps the machine names.
    """
    target = Path(target)
    if target.suffix == ".parquet":
        write_parquet(frame, target)
    elif target.suffix == ".csv":
        write_people_csv(frame, target, style, headers)
    elif target.suffix == ".xlsx":
        write_xlsx(frame, target, headers)
    else:
        raise ConfigError(f"output {target}: expected a .csv, .xlsx or .parquet file name")
    return target
