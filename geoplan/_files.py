"""File helpers shared by the loaders and writers: checks, reading, hashing, atomic writes."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geoplan.errors import EmptyDataError, InputError

#: File name endings read as Excel workbooks (.xlsx/.xlsm with openpyxl, the legacy .xls with xlrd).
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")

_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx/.xlsm are zip archives
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (and password-protected .xlsx) are OLE2 files

#: Most bytes the parts of an .xlsx/.xlsm may unpack to: more than a full sheet of a facility list, far less than a "zip bomb".
MAX_XLSX_UNPACKED_BYTES = 500_000_000
#: Highest compression ratio of a large part: sheets pack 5 to 15 times, padding (a "zip bomb") about 1,000 times.
MAX_XLSX_RATIO = 100
#: Parts smaller than this unpack to too little to matter, whatever their ratio.
_RATIO_FLOOR_BYTES = 1_000_000


def existing_file(path: str | Path, *, what: str) -> Path:
    """The path as a ``Path`` if it is a non-empty file, else a clear ``InputError``."""
    given = Path(path).expanduser()
    path = given
    if not path.exists():
        start = f" (relative paths start at the working directory {Path.cwd()})" if not given.is_absolute() else ""
        raise InputError(f"The {what} file {path} does not exist. Check the path{start}.")
    if path.is_dir():
        raise InputError(f"The {what} path {path} is a folder; give the file inside it.")
    if path.stat().st_size == 0:
        raise EmptyDataError(f"The {what} file {path} is empty.")
    return path


def read_vector(path: str | Path, *, what: str, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a vector layer (GeoParquet or anything GDAL reads) with errors that name the file."""
    path = existing_file(path, what=what)
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            frame = gpd.read_parquet(path)
        else:
            encoding = shapefile_encoding(path)
            frame = gpd.read_file(path, layer=layer, **({"encoding": encoding} if encoding else {}))
    except Exception as exc:  # GDAL, pyarrow and fiona raise many kinds
        raise InputError(
            f"Cannot read the {what} file {path} ({exc}). Give a GeoJSON, GeoPackage, Shapefile or GeoParquet layer"
            " (or, for a site list, a CSV or Excel table with lon/lat columns)."
        ) from exc
    if frame.empty:
        raise EmptyDataError(f"The {what} file {path} has no features.")
    return frame


#: Bytes of a .dbf read to tell its text encoding.
_DBF_SAMPLE_BYTES = 8 << 20


def shapefile_encoding(path: Path) -> str | None:
    """The text encoding of a Shapefile's .dbf that declares none (no .cpg, no language byte), or ``None``.

    GDAL reads such a .dbf as Latin-1, which turns Chinese names and headers
    into junk without an error. Files written in China are mostly GBK, newer
    ones UTF-8: the .dbf's bytes are tried as UTF-8, then as GB18030 (a
    superset of GBK) if that reads as Chinese; ``None`` when it is plain
    ASCII, declares its encoding, or is neither (GDAL's Latin-1 then stands).
    """
    if path.suffix.lower() != ".shp":
        return None
    if any(path.with_suffix(ext).exists() for ext in (".cpg", ".CPG")):
        return None
    dbf = next((p for p in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return None
    with open(dbf, "rb") as handle:
        sample = handle.read(_DBF_SAMPLE_BYTES)
    if len(sample) < 32 or sample[29] != 0 or max(sample[32:], default=0) < 0x80:  # byte 29: the language driver
        return None
    for encoding in ("utf-8", "gb18030"):
        for cut in range(4):  # a sample may end inside a character
            try:
                text = sample[32:len(sample) - cut].decode(encoding)
            except UnicodeDecodeError:
                if len(sample) < _DBF_SAMPLE_BYTES:
                    break
                continue
            # GB18030 decodes almost any bytes: take it only for text that is mostly Chinese (not a Latin-1 file's accents)
            wide = [c for c in text if ord(c) >= 0x80]
            if encoding == "utf-8" or sum("\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"
                                          for c in wide) >= 0.8 * len(wide):
                return encoding
            break
    return None


def read_sheet(path: str | Path, *, what: str, sheet: str | int | None = None) -> tuple[pd.DataFrame, str]:
    """The cells of one sheet of an Excel workbook, and the sheet's name.

    The format is told by the file's first bytes, not its name: a zip archive
    is read as .xlsx with openpyxl, an OLE2 file as a legacy .xls with xlrd
    (imported only then). Anything else (an HTML table or a CSV saved under an
    Excel name, as many systems export) is an ``InputError`` saying so.

    Parameters
    ----------
    path
        The workbook.
    what
        What the file holds, for messages (``"facility"``).
    sheet
        A sheet name, or its 1-based position; ``None`` for the first sheet.

    Returns
    -------
    The cells (formulas as their last computed value) with positional columns,
    indexed by the row numbers Excel shows (1-based), fully blank rows left
    out; and the name of the sheet read. An empty sheet is an ``EmptyDataError``.
    Every row is read, whatever size the workbook records for the sheet. An
    .xlsx that would unpack to more than :data:`MAX_XLSX_UNPACKED_BYTES`, or
    packs a large part more than :data:`MAX_XLSX_RATIO` times (padding, not
    cells), is an ``InputError`` before it is opened.
    """
    path = existing_file(path, what=what)
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(_ZIP_MAGIC):
        _check_unpacked(path)
        names, name, rows = _xlsx_rows(path, sheet)
    elif head.startswith(_OLE2_MAGIC):
        names, name, rows = _xls_rows(path, sheet)
    else:
        raise InputError(_not_a_workbook(path, head))
    width = max((len(r) for _, r in rows), default=0)
    cells = pd.DataFrame([r + [None] * (width - len(r)) for _, r in rows], index=[n for n, _ in rows], columns=range(width))
    if width:
        cells = cells[cells.notna().any(axis=1)]
    if cells.empty:
        raise EmptyDataError(
            f"Sheet {name!r} of {path} is empty. The workbook's sheets: {', '.join(names)}; choose the one that "
            "holds the list with sheet=... (CLI: --sheet NAME), or move the list to the first sheet."
        )
    return cells, name


def _xlsx_rows(path: Path, sheet: str | int | None) -> tuple[list[str], str, list[tuple[int, list]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # a zip that is no workbook raises KeyError, BadZipFile, InvalidFileException...
        raise InputError(
            f"Cannot read {path} as an Excel workbook ({type(exc).__name__}: {exc}). "
            "Open it in Excel or WPS and save it again as .xlsx, or save the list as CSV (.csv)."
        ) from exc
    try:
        names = [ws.title for ws in book.worksheets]
        name = _pick_sheet(names, sheet, path)
        worksheet = book[name]
        worksheet.reset_dimensions()  # the recorded size may be stale: rows past it would be lost
        rows = [
            (number, [_cell(v) for v in values])
            for number, values in enumerate(worksheet.iter_rows(min_row=1, min_col=1, values_only=True), start=1)
            if any(v is not None for v in values)
        ]
    finally:
        book.close()
    return names, name, rows


def unpacked_size(path: Path) -> tuple[int, float]:
    """The bytes a zip archive's members unpack to, and the highest compression ratio of a member over 1 MB.

    Read from the archive's directory, without unpacking; ``zipfile`` reads no
    member past its recorded size. ``(0, 0.0)`` for a file that is no zip archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0, 0.0
    total = sum(m.file_size for m in members)
    ratios = [m.file_size / max(m.compress_size, 1) for m in members if m.file_size > _RATIO_FLOOR_BYTES]
    return total, max(ratios, default=0.0)


def _check_unpacked(path: Path) -> None:
    """An ``InputError`` for an .xlsx whose parts unpack to too much, or pack too tightly to hold cells."""
    total, ratio = unpacked_size(path)
    if total > MAX_XLSX_UNPACKED_BYTES:
        raise InputError(f"{path} unpacks to {total:,} bytes, more than the {MAX_XLSX_UNPACKED_BYTES:,} an Excel list "
                         "may unpack to. Split the list into smaller workbooks, or save it as CSV (.csv).")
    if ratio > MAX_XLSX_RATIO:
        raise InputError(f"{path} packs a part {ratio:,.0f} times (a sheet of cells packs 5 to 15 times; the limit is "
                         f"{MAX_XLSX_RATIO}): it is padded with filler, not cells. Open it in Excel or WPS and save it "
                         "again as .xlsx, or save the list as CSV (.csv).")


def _xls_rows(path: Path, sheet: str | int | None) -> tuple[list[str], str, list[tuple[int, list]]]:
    try:
        import xlrd
    except ImportError as exc:
        raise InputError(
            f"{path} is a legacy Excel 97-2003 workbook (.xls); reading it needs xlrd: pip install 'xlrd>=2'. "
            "Or open it in Excel and save it as .xlsx."
        ) from exc
    try:
        book = xlrd.open_workbook(path, on_demand=True)
    except Exception as exc:  # XLRDError, CompDocError, struct errors on damaged files
        raise InputError(
            f"Cannot read {path} as an Excel 97-2003 workbook ({exc}). If it is password-protected, remove the "
            "password; then save it as .xlsx, or save the list as CSV (.csv)."
        ) from exc
    try:
        names = book.sheet_names()
        name = _pick_sheet(names, sheet, path)
        table = book.sheet_by_name(name)
        rows = []
        for number in range(table.nrows):
            values = []
            for cell in table.row(number):
                if cell.ctype == xlrd.XL_CELL_ERROR:
                    values.append(xlrd.error_text_from_code.get(cell.value, "#ERROR"))
                elif cell.ctype == xlrd.XL_CELL_NUMBER and float(cell.value).is_integer():
                    values.append(int(cell.value))  # .xls stores every number as a float; ids 1, 2... stay 1, 2
                else:
                    values.append(_cell(cell.value))
            rows.append((number + 1, values))
    finally:
        book.release_resources()
    return names, name, rows


def _cell(value):
    """A cell value with blank text as None."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _pick_sheet(names: list[str], sheet: str | int | None, path: Path) -> str:
    if not names:
        raise EmptyDataError(f"The workbook {path} has no worksheets.")
    if sheet is None:
        return names[0]
    if isinstance(sheet, str):
        if sheet in names:
            return sheet
        folded = {n.strip().casefold(): n for n in names}
        if sheet.strip().casefold() in folded:
            return folded[sheet.strip().casefold()]
        if sheet.strip().isdigit():
            sheet = int(sheet.strip())
    if isinstance(sheet, int) and not isinstance(sheet, bool) and 1 <= sheet <= len(names):
        return names[sheet - 1]
    shown = repr(sheet) if isinstance(sheet, str) else str(sheet)
    raise InputError(
        f"{path} has no sheet {shown}; its sheets are {', '.join(names)}. Give a sheet name or its number, 1 to {len(names)}."
    )


def _not_a_workbook(path: Path, head: bytes) -> str:
    text = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:  # incremental: the first 4 kB may end inside a character
            text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
            break
        except UnicodeDecodeError:
            continue
    if text is not None and text.lstrip().startswith("<"):
        kind = "a web page (HTML) or XML file with an Excel name, as many systems export"
        fix = "Open it in Excel or WPS and use Save As > Excel Workbook (.xlsx), or save it as CSV (UTF-8, .csv)."
    elif text is not None and "\x00" not in text:
        kind = "plain text"
        fix = "If it holds comma-separated values, rename it to .csv; otherwise open it in Excel and save it as .xlsx."
    else:
        kind = "neither an .xlsx nor an .xls file"
        fix = "Open it in Excel or WPS and save it as .xlsx, or save the list as CSV (.csv)."
    return f"{path} is not an Excel workbook: it is {kind}. {fix}"


def find_column(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that ``table`` has as a column, compared without case or surrounding spaces (None: none)."""
    lower = {str(c).strip().lower(): c for c in table.columns}
    return next((lower[n.lower()] for n in names if n.lower() in lower), None)


def row_list(rows) -> str:
    """Row numbers as the planner counts them (the table's index), the first ten."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:10])
    return shown + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (the cache key of anything built from it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Build a directory in a temporary place and move it to ``target`` only on success.

    For content-addressed folders (caches): when another process finished the
    same ``target`` first, its folder is kept and this one dropped, so a reader
    of ``target`` never sees it removed under it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, target)  # fails when target exists and is not empty: another writer won
        except OSError:
            if not target.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Write a file at a temporary path beside ``target`` and rename it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_gdal_file(target: Path) -> Iterator[Path]:
    """:func:`atomic_file` for a GDAL writer, with its warning that NaN and Infinity are written as null kept quiet."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*NaN of Infinity.*")
        with atomic_file(target) as tmp:
            yield tmp


def bilingual_header(column: str, names_zh: Mapping[str, str], prefixes: Mapping[str, Callable[[str], str | None]] | None = None) -> str:
    """A column's Excel header with its Chinese first: ``"<Chinese> <column>"``, or the column itself when none is known.

    The Chinese is ``names_zh[column]``, else, for the first of ``prefixes``
    the column starts with whose function gives one (not None), that
    function of the rest of the column name.

    >>> bilingual_header("gain_pop_60", {"site_id": "站点编号"}, {"gain_": lambda g: f"新增{g}"})
    '新增pop_60 gain_pop_60'
    """
    if column in names_zh:
        return f"{names_zh[column]} {column}"
    for prefix, zh in (prefixes or {}).items():
        text = zh(column[len(prefix):]) if column.startswith(prefix) else None
        if text is not None:
            return f"{text} {column}"
    return column


def write_workbook(path: Path, sheets: Mapping[str, pd.DataFrame]) -> Path:
    """Write ``sheets`` (name -> table, without its index) to an Excel workbook atomically, columns as wide as their first 50 cells (10 to 60)."""
    try:
        import openpyxl  # noqa: F401
    except ImportError as exc:
        raise ImportError("Writing Excel files needs openpyxl: pip install openpyxl") from exc
    with atomic_file(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, frame in sheets.items():
                frame.to_excel(writer, sheet_name=name, index=False)
            for sheet in writer.sheets.values():
                for column in sheet.columns:
                    width = max(len(str(c.value or "")) for c in column[:50])
                    sheet.column_dimensions[column[0].column_letter].width = min(max(10, width + 2), 60)
    return path
