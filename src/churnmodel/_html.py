"""Self-contained HTML pages: inline CSS, inline PNG charts, no scripts, no links.

Shared by the outreach report and the KPI report, so a page can be mailed
or dropped on a share, and the same input gives the same bytes (PNG
metadata carries no software version or time).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from churnmodel._io import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; } td { white-space: nowrap; }
.wide { overflow-x: auto; max-width: 100%; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.charts img { max-width: 100%; height: auto; }
img.full { width: 100%; max-width: 1200px; height: auto; }
.legend { background: #f8f8f8; border-left: 4px solid #1f77b4; padding: 0.5em 1em; }
.alert { color: #b00; font-weight: bold; } .ok { color: #2a7a2a; font-weight: bold; }
"""

Format = Callable[[Any], str]


def page(title: str, body: list[str]) -> str:
    """A complete HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def count(value: Any) -> str:
    """A whole number with thousands separators."""
    return f"{int(value):,}"


def decimals(places: int) -> Format:
    """A number with thousands separators and `places` decimals."""
    return lambda value: f"{float(value):,.{places}f}"


def money(currency: str = "") -> Format:
    """Two decimals with thousands separators, and the currency when one is set."""
    return lambda value: f"{float(value):,.2f}" + (f" {currency}" if currency else "")


def table(
    frame: pd.DataFrame,
    headers: Mapping[str, str] | None = None,
    formats: Mapping[str, Format] | None = None,
) -> str:
    """An HTML table a person reads: words as headers, text left, numbers right and formatted.

    `headers` maps column names to the words shown; `formats` says how to
    show a column's values (default: whole numbers with thousands
    separators, other numbers with two decimals, text escaped as it is).
    Missing values are empty cells. Wrapped so a wide table scrolls inside
    the page instead of widening it.
    """
    headers, formats = headers or {}, formats or {}
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
    head = "".join(
        f'<th class="{"num" if numeric[c] else "text"}">{html.escape(headers.get(c, str(c)))}</th>'
        for c in frame.columns
    )
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            shown = _shown(value, formats.get(column), numeric[column], frame[column].dtype)
            cells.append(f'<td class="{"num" if numeric[column] else "text"}">{shown}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _shown(value: Any, how: Format | None, numeric: bool, dtype: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if how is not None:
        return html.escape(how(value))
    if numeric and not pd.api.types.is_bool_dtype(dtype):
        return count(value) if pd.api.types.is_integer_dtype(dtype) else f"{float(value):,.2f}"
    return html.escape(str(value))


def compact_number(value: float) -> str:
    """Axis labels people read at a glance: 950, 12k, 1.2M (never 1e6).

    >>> [compact_number(v) for v in (950, 12_000, 1_250_000)]
    ['950', '12k', '1.2M']
    """
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:,.0f}k"
    return f"{value:,.0f}"


def compact_axis(axis: Axis) -> None:
    """Label an axis with `compact_number`."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: compact_number(value)))


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes, without metadata that would change between runs."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def image(figure: Figure, alt: str = "chart", full: bool = False) -> str:
    """An <img> with the chart inline; `full` spans the page width (wide charts, heat maps)."""
    data = base64.b64encode(png(figure)).decode("ascii")
    css = ' class="full"' if full else ""
    return f'<img{css} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_png(figure: Figure, target: Path) -> Path:
    """Write the chart as a PNG file, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(png(figure))
    return target
