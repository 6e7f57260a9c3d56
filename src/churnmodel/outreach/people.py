"""Files people open: CSV for Excel (in English or German style), an .xlsx, headers in words.

The parquet list keeps the machine names; these files are for a retention
team working in a spreadsheet, so they follow three rules:

* **No formula injection.** A text cell that starts with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return is written with a leading ``'``
  (OWASP's advice for CSV injection), so a customer id like ``=1+1`` or
  ``=HYPERLINK(...)`` stays inert text in Excel. The .xlsx stores every text
  cell as a string and never as a formula, and gets the same prefix.
  Reading a list back (`export --from`) removes the prefix again.
* **The team's number style.** ``german`` CSV uses ``;`` between fields and
  a decimal comma, as Excel with a German locale expects; fields holding
  ``;`` (reason texts) are quoted.
* **Headers in words** (English or German) when asked; ``names`` keeps the
  machine names, which every churnmodel command reads back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from churnmodel._io import FORMULA_STARTS, atomic_path, inert, is_text, map_text, write_csv
from churnmodel.errors import ConfigError

CsvStyle = Literal["international", "german"]
Headers = Literal["names", "en", "de"]

EXCEL_MAX_ROWS = 1_048_575  # one sheet, below its header row

HEADER_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "customer_id": "Customer ID",
        "as_of": "Scoring date",
        "churn_probability": "Churn probability",
        "risk_tier": "Risk tier",
        "health_score": "Health score",
        "value_12m": "Value next 12 months",
        "value_at_risk": "Value at risk",
        "reason_1": "Reason 1",
        "reason_2": "Reason 2",
        "reason_3": "Reason 3",
        "action": "Action",
        "segment": "Segment",
        "model_version": "Model version",
        "has_reasons": "Has reasons",
        "reason": "Reason",
        "last_activity": "Last activity",
        "days_since_last_activity": "Days since last activity",
        "value_last_12m": "Value last 12 months",
        "value_lifetime": "Lifetime value",
        "purchases": "Purchases",
        "contact_rank": "Contact order",
        "best_offer": "Best offer",
        "expected_saved_value": "Expected saved value",
        "uplift": "Churn probability lowered by the offer",
        "offer_cost": "Offer cost",
    },
    "de": {
        "customer_id": "Kunden-ID",
        "as_of": "Stichtag",
        "churn_probability": "Abwanderungswahrscheinlichkeit",
        "risk_tier": "Risikostufe",
        "health_score": "Gesundheitswert",
        "value_12m": "Wert nächste 12 Monate",
        "value_at_risk": "Gefährdeter Wert",
        "reason_1": "Grund 1",
        "reason_2": "Grund 2",
        "reason_3": "Grund 3",
        "action": "Maßnahme",
        "segment": "Segment",
        "model_version": "Modellversion",
        "has_reasons": "Mit Gründen",
        "reason": "Grund",
        "last_activity": "Letzte Aktivität",
        "days_since_last_activity": "Tage seit letzter Aktivität",
        "value_last_12m": "Wert letzte 12 Monate",
        "value_lifetime": "Wert gesamt",
        "purchases": "Käufe",
        "contact_rank": "Kontaktreihenfolge",
        "best_offer": "Bestes Angebot",
        "expected_saved_value": "Erwarteter geretteter Wert",
        "uplift": "Senkung der Abwanderungswahrscheinlichkeit durch das Angebot",
        "offer_cost": "Angebotskosten",
    },
}
"""Header words per language; a column without an entry keeps its name."""

NUMBER_FORMATS = {
    "churn_probability": "0.000",
    "value_12m": "#,##0.00",
    "value_at_risk": "#,##0.00",
    "health_score": "0",
    "expected_saved_value": "#,##0.00",
    "uplift": "0.000",
    "offer_cost": "#,##0.00",
}


def restore(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo `neutralise` on a list read back from a CSV (only the prefix it added)."""
    return map_text(frame, _restored)


def with_headers(frame: pd.DataFrame, headers: Headers) -> pd.DataFrame:
    """The frame with column headers in words (`en`, `de`) or as they are (`names`)."""
    return frame if headers == "names" else frame.rename(columns=HEADER_WORDS[headers])


def header_words() -> set[str]:
    """Every header word of every language."""
    return {word for words in HEADER_WORDS.values() for word in words.values()}


def machine_names(columns: pd.Index) -> dict[str, str]:
    """Header words of any language back to machine names, for lists read back in."""
    known = {word: name for words in HEADER_WORDS.values() for name, word in words.items()}
    return {c: known[c] for c in columns if c in known and known[c] not in columns}


def write_people_csv(
    frame: pd.DataFrame, target: Path, style: CsvStyle = "international", headers: Headers = "names"
) -> Path:
    """A CSV for spreadsheets: inert text cells, the team's number style and header words."""
    sep, decimal = (";", ",") if style == "german" else (",", ".")
    return write_csv(with_headers(frame, headers), target, sep=sep, decimal=decimal)


def write_xlsx(frame: pd.DataFrame, target: Path, headers: Headers = "names") -> Path:
    """An Excel workbook: typed cells, a frozen header row, fitted widths and an autofilter."""
    import xlsxwriter  # only the Excel export needs it

    if len(frame) > EXCEL_MAX_ROWS:
        raise ConfigError(
            f"{target}: {len(frame):,} rows do not fit in one Excel sheet "
            f"({EXCEL_MAX_ROWS:,} at most); cut the list with top, a tier or a segment"
        )
    names = list(frame.columns)
    shown = list(with_headers(frame.head(0), headers).columns)
    with atomic_path(target) as tmp:
        options = {
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            "constant_memory": True,
        }
        workbook = xlsxwriter.Workbook(str(tmp), options)
        workbook.set_properties({"created": dt.datetime(2000, 1, 1)})  # same list, same bytes
        sheet = workbook.add_worksheet("churn list")
        bold = workbook.add_format({"bold": True, "bg_color": "#F2F2F2", "bottom": 1})
        formats = {
            name: workbook.add_format({"num_format": NUMBER_FORMATS[name]})
            for name in names
            if name in NUMBER_FORMATS
        }
        dates = workbook.add_format({"num_format": "yyyy-mm-dd"})
        for j, (name, header) in enumerate(zip(names, shown, strict=True)):
            sheet.set_column(j, j, _width(frame[name], header))
        sheet.write_row(0, 0, shown, bold)
        columns = [_cells(frame[name]) for name in names]
        for i in range(len(frame)):
            for j, name in enumerate(names):
                _write(sheet, i + 1, j, columns[j][i], formats.get(name), dates)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, len(frame), max(len(names) - 1, 0))
        workbook.close()
    return target


def _cells(values: pd.Series) -> list[object]:
    if is_text(values):
        return values.map(inert).tolist()
    return values.tolist()


def _write(sheet: object, row: int, col: int, value: object, number: object, dates: object) -> None:
    if value is None or value is pd.NaT or (isinstance(value, float) and not np.isfinite(value)):
        sheet.write_blank(row, col, None)  # type: ignore[attr-defined]
    elif isinstance(value, bool | np.bool_):
        sheet.write_boolean(row, col, bool(value))  # type: ignore[attr-defined]
    elif isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        stamp = pd.Timestamp(value)
        day = stamp.tz_convert(None) if stamp.tzinfo else stamp
        sheet.write_datetime(row, col, day.to_pydatetime(), dates)  # type: ignore[attr-defined]
    elif isinstance(value, int | float | np.integer | np.floating):
        sheet.write_number(row, col, float(value), number)  # type: ignore[attr-defined]
    else:
        sheet.write_string(row, col, str(value))  # type: ignore[attr-defined]


def _width(values: pd.Series, header: str, sample: int = 1_000) -> float:
    longest = values.head(sample).astype(str).str.len().max() if len(values) else 0
    return float(min(60, max(len(header), int(longest or 0), 8) + 2))


def _restored(value: object) -> object:
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


NUMBER_COLUMNS = (
    "churn_probability",
    "health_score",
    "value_12m",
    "value_at_risk",
    "days_since_last_activity",
    "value_last_12m",
    "value_lifetime",
    "purchases",
)
"""The list's own numbers; every other column is read back as the text it was written as."""


def read_csv_list(path: Path) -> pd.DataFrame:
    """A list written by `write_people_csv`, in either style and with any headers.

    Everything is read as text (a postcode `01067` stays `01067`, a plan
    `1,5` stays `1,5`), then the list's own numbers and flags are converted.
    """
    with path.open(encoding="utf-8-sig") as handle:
        first = handle.readline()
    german = first.count(";") > first.count(",")
    frame = pd.read_csv(
        path,
        encoding="utf-8-sig",
        sep=";" if german else ",",
        dtype=str,
        keep_default_na=False,
        na_values=[""],
    )
    frame = restore(frame.rename(columns=machine_names(frame.columns)))
    for column in NUMBER_COLUMNS:
        if column in frame:
            text = frame[column].str.replace(",", ".", regex=False) if german else frame[column]
            frame[column] = pd.to_numeric(text)
    if "has_reasons" in frame:
        frame["has_reasons"] = frame["has_reasons"].map({"True": True, "False": False})
    return frame
