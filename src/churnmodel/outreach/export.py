"""Writing the outreach files atomically, and cutting shorter lists from the full one.

Every file is written beside its final name and renamed into place, so a
killed job leaves the previous file (or none), never half of one. The data
files carry no timestamps: the same scores give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnmodel._io import write_csv, write_parquet, write_text
from churnmodel.errors import ConfigError
from churnmodel.outreach.build import COLUMNS, LIST_ASCENDING, LIST_ORDER, SEGMENTS, TIERS

OUTPUTS = ("outreach.parquet", "outreach.csv", "not_scored.csv", "report.html")


def write_outreach(
    outreach: pd.DataFrame, not_scored: pd.DataFrame, report: str, out_dir: Path
) -> dict[str, Path]:
    """Write the full list (parquet, csv), the customers not scored and the report."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in OUTPUTS}
    write_parquet(outreach, paths["outreach.parquet"])
    write_csv(outreach, paths["outreach.csv"])
    write_csv(not_scored, paths["not_scored.csv"])
    write_text(report, paths["report.html"])
    return paths


def read_outreach(path: Path) -> pd.DataFrame:
    """The full list written by `churnmodel score`: parquet, csv, or Spark's outreach/ folder."""
    path = Path(path)
    if path.is_dir():  # parquet by risk tier, as Spark writes it: back to list order and dtypes
        frame = pd.read_parquet(path)
        frame["risk_tier"] = pd.Categorical(frame["risk_tier"].astype(str), TIERS, ordered=True)
        frame["segment"] = pd.Categorical(frame["segment"].astype(str), list(SEGMENTS))
        ordered = frame.sort_values(LIST_ORDER, ascending=LIST_ASCENDING, kind="stable")
        return ordered[COLUMNS].reset_index(drop=True)
    if not path.is_file():
        raise ConfigError(f"outreach list {path} does not exist; run `churnmodel score` first")
    if path.suffix == ".csv":
        return pd.read_csv(path, encoding="utf-8-sig", dtype={"customer_id": str})
    return pd.read_parquet(path)


def filter_outreach(
    outreach: pd.DataFrame,
    top: int | None = None,
    min_probability: float | None = None,
    tiers: list[str] | None = None,
    segments: list[str] | None = None,
) -> pd.DataFrame:
    """Rows matching every filter, in list order (by value at risk); `top` applies last."""
    _known("--tier", tiers, TIERS)
    _known("--segment", segments, SEGMENTS)
    keep = pd.Series(True, index=outreach.index)
    if min_probability is not None:
        keep &= outreach["churn_probability"] >= min_probability
    if tiers:
        keep &= outreach["risk_tier"].astype(str).isin(tiers)
    if segments:
        keep &= outreach["segment"].astype(str).isin(segments)
    selected = outreach[keep]
    return selected.head(top) if top is not None else selected


def _known(option: str, given: list[str] | None, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given or ()) - set(allowed))
    if unknown:
        raise ConfigError(f"{option}: unknown {unknown}; expected some of {', '.join(allowed)}")


def write_list(frame: pd.DataFrame, target: Path) -> Path:
    """A shorter list as csv or parquet, chosen by the file's suffix."""
    target = Path(target)
    if target.suffix == ".parquet":
        write_parquet(frame, target)
    elif target.suffix == ".csv":
        write_csv(frame, target)
    else:
        raise ConfigError(f"--out {target}: expected a .csv or .parquet file name")
    return target
