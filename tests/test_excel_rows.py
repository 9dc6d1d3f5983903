"""Excel sheets are read whole and only whole: every row whatever size the workbook records, and no "zip bomb"."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from geoplan import _files
from geoplan.errors import InputError

SHEET = "xl/worksheets/sheet1.xml"


def workbook(path: Path, rows: int) -> Path:
    """An .xlsx with a header (id, lng, lat) and ``rows`` sites."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "lng", "lat"])
    for i in range(rows):
        sheet.append([f"S{i}", 114.30 + i * 0.0005, 30.55])
    book.save(path)
    return path


def rewrite_sheet(path: Path, change) -> Path:
    """``path`` with its first sheet's XML replaced by ``change(xml)`` (bytes to bytes)."""
    with zipfile.ZipFile(path) as source:
        parts = {item.filename: source.read(item.filename) for item in source.infolist()}
    parts[SHEET] = change(parts[SHEET])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    return path


def recorded_as(ref: str):
    """A change of the sheet's recorded size (its <dimension>) to ``ref``."""
    return lambda xml: re.sub(rb'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{ref}"/>'.encode(), xml)


def padded(size: int):
    """A change that pads the sheet's data with ``size`` bytes of spaces (valid XML, packing ~1,000 times)."""
    return lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + b" " * size, 1)


@pytest.mark.parametrize("ref", ["A1:C3", "A1"])
def test_rows_past_a_stale_recorded_size_are_read(tmp_path, ref):
    path = rewrite_sheet(workbook(tmp_path / "stale.xlsx", 10), recorded_as(ref))
    assert openpyxl.load_workbook(path, read_only=True).worksheets[0].max_row in (1, 3)  # what the file claims
    cells, name = _files.read_sheet(path, what="facility")
    assert name == "Sheet"
    assert list(cells.index) == list(range(1, 12))
    assert cells.iloc[-1].tolist() == ["S9", pytest.approx(114.3045), 30.55]


def test_rows_past_a_stale_size_are_all_read_however_many(tmp_path):
    path = rewrite_sheet(workbook(tmp_path / "many.xlsx", 30_000), recorded_as("A1:C3"))
    cells, _ = _files.read_sheet(path, what="facility")
    assert len(cells) == 30_001


def test_blank_rows_are_left_out_and_rows_keep_excel_numbers(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "lng", "lat"])
    sheet.append(["A", 114.3, 30.5])
    sheet.cell(row=5000, column=1, value="B")
    sheet.cell(row=5000, column=2, value=114.31)
    sheet.cell(row=5000, column=3, value=30.51)
    book.save(tmp_path / "gap.xlsx")
    cells, _ = _files.read_sheet(rewrite_sheet(tmp_path / "gap.xlsx", recorded_as("A1:C2")), what="facility")
    assert list(cells.index) == [1, 2, 5000]


def test_a_padded_workbook_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    path = rewrite_sheet(workbook(tmp_path / "bomb.xlsx", 3), padded(30_000_000))
    assert path.stat().st_size < 200_000
    opened = []
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: opened.append(a))
    started = time.monotonic()
    with pytest.raises(InputError, match=r"bomb\.xlsx packs a part [\d,]+ times .*the limit is 100.*save it again as \.xlsx"):
        _files.read_sheet(path, what="facility")
    assert not opened and time.monotonic() - started < 1.0


def test_a_workbook_that_unpacks_to_too_much_is_refused(tmp_path, monkeypatch):
    path = workbook(tmp_path / "big.xlsx", 200)
    total, ratio = _files.unpacked_size(path)
    assert 10_000 < total < 1_000_000 and ratio == 0.0  # no part over 1 MB: no ratio to judge
    monkeypatch.setattr(_files, "MAX_XLSX_UNPACKED_BYTES", total - 1)
    with pytest.raises(InputError, match=rf"big\.xlsx unpacks to {total:,} bytes, more than the {total - 1:,}.*CSV"):
        _files.read_sheet(path, what="facility")


def test_ordinary_workbooks_pack_well_within_the_ratio(tmp_path):
    total, ratio = _files.unpacked_size(workbook(tmp_path / "list.xlsx", 20_000))
    assert total > 1_000_000 and 1 < ratio < _files.MAX_XLSX_RATIO / 3
    assert _files.unpacked_size(tmp_path / "missing.xlsx") == (0, 0.0)
    (tmp_path / "text.xlsx").write_text("id,lng,lat\n")
    assert _files.unpacked_size(tmp_path / "text.xlsx") == (0, 0.0)
