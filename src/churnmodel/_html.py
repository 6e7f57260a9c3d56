"""Self-contained HTML pages: inline CSS, inline PNG charts, no scripts, no links.

Shared by the outreach report and the KPI report, so a page can be mailed
or dropped on a share, and the same input gives the same bytes (PNG
metadata carries no software version or time).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from churnmodel._io import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } .charts img { max-width: 540px; }
.alert { color: #b00; font-weight: bold; } .ok { color: #2a7a2a; font-weight: bold; }
"""


def page(title: str, body: list[str]) -> str:
    """A complete HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def table(frame: pd.DataFrame) -> str:
    """An HTML table; text columns left-aligned (pandas escapes the values)."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    out = frame.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:,.3f}")
    for column in text:
        out = out.replace(f"<th>{column}</th>", f'<th class="text">{column}</th>')
    return out


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes, without metadata that would change between runs."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def image(figure: Figure) -> str:
    """An <img> with the chart inline."""
    data = base64.b64encode(png(figure)).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


def write_png(figure: Figure, target: Path) -> Path:
    """Write the chart as a PNG file, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(png(figure))
    return target
