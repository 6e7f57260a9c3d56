"""The files a retention team opens: inert formulas, German CSV, Excel, header words."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pandas as pd
import pytest

from churnmodel.config import FeatureConfig, ProfileConfig, RunConfig
from churnmodel.errors import ConfigError
from churnmodel.outreach import people
from churnmodel.outreach.build import attribute_columns
from churnmodel.outreach.export import read_outreach, write_list

HOSTILE = [
    "=1+1",
    '=HYPERLINK("http://evil.example","click")',
    "+49 30 1234",
    "-5",
    "@SUM(A1)",
    "\tx",
    "\rx",
    "plain-id",
]


def listed() -> pd.DataFrame:
    n = len(HOSTILE)
    return pd.DataFrame(
        {
            "customer_id": HOSTILE,
            "as_of": pd.Timestamp("2026-01-01", tz="UTC"),
            "churn_probability": [0.123456 + i / 100 for i in range(n)],
            "value_at_risk": [1234.5 * (i + 1) for i in range(n)],
            "reason_1": ["No purchase for 94 days; usually buys every 21 days"] * n,
            "action": ["re-engagement campaign"] * n,
            "has_reasons": [True] * n,
        }
    )


def test_hostile_ids_come_out_inert_in_the_csv(tmp_path: Path) -> None:
    path = write_list(listed(), tmp_path / "list.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["customer_id"] for r in rows] == ["'" + h for h in HOSTILE[:-1]] + ["plain-id"]
    assert all(not r["customer_id"].startswith(people.FORMULA_STARTS) for r in rows)
    assert rows[0]["reason_1"] == listed()["reason_1"][0]  # the ; inside stays in one field
    # reading the list back (export --from) gives the ids as they were
    assert read_outreach(path)["customer_id"].tolist() == HOSTILE


def test_hostile_ids_come_out_inert_in_the_xlsx(tmp_path: Path) -> None:
    path = write_list(listed(), tmp_path / "list.xlsx")
    sheet = openpyxl.load_workbook(path).active
    ids = [sheet.cell(row=i + 2, column=1) for i in range(len(HOSTILE))]
    assert all(cell.data_type == "s" for cell in ids)  # text, never a formula
    # (the xlsx XML spells a carriage return _x000D_, which openpyxl leaves as it is)
    values = [c.value.replace("_x000D_", "\r") for c in ids]
    assert values == ["'" + h for h in HOSTILE[:-1]] + ["plain-id"]
    formulas = [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]
    assert formulas == []


def test_german_csv_round_trips_to_the_same_numbers(tmp_path: Path) -> None:
    frame = listed()
    path = write_list(frame, tmp_path / "de.csv", style="german")
    text = path.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("customer_id;as_of;churn_probability")
    assert "1234,5" in text and ";0,133456;" in text  # decimal commas, ; between fields
    back = pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig")
    pd.testing.assert_series_equal(back["churn_probability"], frame["churn_probability"])
    pd.testing.assert_series_equal(back["value_at_risk"], frame["value_at_risk"])
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert {len(r) for r in rows} == {len(frame.columns)}  # reasons with ; are quoted
    assert read_outreach(path)["value_at_risk"].tolist() == frame["value_at_risk"].tolist()


def test_headers_in_german_and_back_to_names(tmp_path: Path) -> None:
    path = write_list(listed(), tmp_path / "de.csv", style="german", headers="de")
    header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(";")
    assert header[:4] == [
        "Kunden-ID",
        "Stichtag",
        "Abwanderungswahrscheinlichkeit",
        "Gefährdeter Wert",
    ]
    back = read_outreach(path)
    assert list(back.columns) == list(listed().columns)
    assert back["customer_id"].tolist() == HOSTILE


def test_the_xlsx_is_typed_frozen_filtered_and_fitted(tmp_path: Path) -> None:
    path = write_list(listed(), tmp_path / "list.xlsx", headers="en")
    sheet = openpyxl.load_workbook(path).active
    assert [c.value for c in sheet[1]][:3] == ["Customer ID", "Scoring date", "Churn probability"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:G{len(HOSTILE) + 1}"
    assert (
        sheet["B2"].value == dt.datetime(2026, 1, 1) and sheet["B2"].number_format == "yyyy-mm-dd"
    )
    assert sheet["C2"].value == pytest.approx(0.123456) and sheet["C2"].data_type == "n"
    assert sheet["G2"].value is True
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    assert widths["E"] > widths["G"] >= 10  # the reason column is wider than the flag
    # the same list gives the same bytes
    again = write_list(listed(), tmp_path / "again.xlsx", headers="en")
    assert again.read_bytes() == path.read_bytes()


def test_a_list_too_long_for_excel_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(people, "EXCEL_MAX_ROWS", 3)
    with pytest.raises(ConfigError, match="8 rows do not fit in one Excel sheet"):
        write_list(listed(), tmp_path / "list.xlsx")
    assert not (tmp_path / "list.xlsx").exists()


def test_text_attributes_read_back_as_written(tmp_path: Path) -> None:
    """A postcode 01067 or a plan 1,5 is text; only the list's own numbers become numbers."""
    frame = listed().assign(postcode="01067", plan="1,5", seats=float("inf"))
    for style in ("international", "german"):
        path = write_list(frame, tmp_path / f"{style}.csv", style=style, headers="en")
        back = read_outreach(path)
        assert back["postcode"].tolist() == ["01067"] * len(frame)
        assert back["plan"].tolist() == ["1,5"] * len(frame)
        assert back["churn_probability"].tolist() == frame["churn_probability"].tolist()
        assert back["has_reasons"].tolist() == [True] * len(frame)
    sheet = openpyxl.load_workbook(write_list(frame, tmp_path / "inf.xlsx")).active
    assert sheet.cell(row=2, column=len(frame.columns)).value is None  # inf: an empty cell


def test_attributes_never_take_a_list_column_or_header_name() -> None:
    profile = ProfileConfig(attributes=["Segment", "plan", "Action"], numeric=["purchases"])
    config = RunConfig(features=FeatureConfig(profile=profile))
    bundle = SimpleNamespace(
        config=config, feature_names=["Segment", "plan", "Action", "purchases"]
    )
    assert attribute_columns(bundle) == {  # type: ignore[arg-type]
        "Segment": "customer_Segment",
        "plan": "plan",
        "Action": "customer_Action",
        "purchases": "customer_purchases",
    }
    assert people.machine_names(pd.Index(["segment", "Segment", "Risk tier"])) == {
        "Risk tier": "risk_tier"
    }


def test_csv_matches_pandas_own_date_formatting(tmp_path: Path) -> None:
    """Dates formatted before pandas writes give the bytes pandas' own `date_format` gives."""
    from churnmodel._io import neutralise, write_csv

    stamps = pd.to_datetime(["2026-01-01 13:45", None, "2025-12-31 23:59"])
    mixed = [dt.datetime(2026, 1, 2, 5, 6), "text", None]
    frames = {
        "plain": pd.DataFrame(
            {
                "id": ["=a", "b", None],
                "naive": stamps,
                "aware": stamps.tz_localize("Europe/Berlin"),
                "day": [dt.date(2026, 1, 3), None, dt.date(2026, 1, 4)],
                "tier": pd.Categorical(["high", "low", "high"]),
                "p": [0.1, float("nan"), 1e-5],
                "flag": [True, False, True],
            }
        ),
        "with datetime objects": pd.DataFrame({"when": pd.Series(mixed, dtype=object)}),
    }
    for name, frame in frames.items():
        for sep, decimal in ((",", "."), (";", ",")):
            ours = write_csv(frame, tmp_path / f"{name}.csv", sep=sep, decimal=decimal)
            pandas_way = tmp_path / f"{name}-pandas.csv"
            neutralise(frame).to_csv(
                pandas_way,
                index=False,
                encoding="utf-8-sig",
                date_format="%Y-%m-%d",
                sep=sep,
                decimal=decimal,
                lineterminator="\r\n",
            )
            assert ours.read_bytes() == pandas_way.read_bytes(), name
    assert "2026-01-02" in (tmp_path / "with datetime objects.csv").read_text("utf-8-sig")


def test_the_formula_pattern_is_the_formula_starts() -> None:
    import re

    from churnmodel._io import FORMULA_PATTERN, FORMULA_STARTS

    starts = {chr(c) for c in range(128) if re.match(FORMULA_PATTERN, chr(c) + "x")}
    assert starts == set(FORMULA_STARTS)
