"""Facility uploads: a user's list (CSV, Excel, GeoJSON, GeoPackage) read by the library into a scenario.

The file is read by :func:`geoplan.sites.load_facilities`, the one reader of
site files, so an upload follows the same column rules and coordinate
systems as the CLI; its messages name the upload, not the temporary file.

A GeoPackage is an SQLite database, and SQLite runs SQL when it is read: a
layer that is a VIEW over ``WITH RECURSIVE`` makes GDAL run a query without
end (a 61 KB file took 3.7 GB in 3 s). :func:`check_geopackage` therefore
opens it first with Python's ``sqlite3`` (read-only, immutable, a progress
handler enforcing ``UploadLimits.gpkg_seconds``), reads only the schema, and
refuses views, virtual tables other than spatial indexes and computed
columns, before GDAL opens the file; it then counts the layer's features with
a bounded query.

An Excel workbook is a zip archive, which may unpack to far more than its
size (a 1.5 MB file of spaces unpacked to 1.5 GB): :func:`_check_workbook`
refuses one that would unpack to more than ``UploadLimits.unpacked_bytes``,
or packs like padding, before openpyxl opens it, then counts the rows and
columns of its first sheet as they stream (the size a workbook records may
be stale).

Each upload is written to its own folder under one parent
(:func:`default_upload_dir`, ``<tempdir>/geoplan-uploads``), locked while in
use; :func:`sweep_stale_uploads` removes what a killed process left there.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd

from geoplan import _files
from geoplan.coords import normalize_coord_system
from geoplan.errors import InputError
from geoplan.region import Region
from geoplan.sites import load_facilities

from api.errors import PayloadTooLarge
from api.limits import DEFAULT_MAX_JSON_DEPTH, check_json_depth
from api.services import scenarios as sc
from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService
from api.store import ScenarioRecord

if TYPE_CHECKING:
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: stale folders are told by their age alone
    fcntl = None

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm", ".xls", ".geojson", ".json", ".gpkg")
#: The legacy GeoJSON ``crs`` names that mean what RFC 7946 says anyway: WGS84 longitude/latitude.
WGS84_CRS_NAMES = ("urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84", "crs84", "ogc:crs84", "epsg:4326",
                   "urn:ogc:def:crs:epsg::4326", "urn:ogc:def:crs:epsg:4326", "http://www.opengis.net/def/crs/ogc/1.3/crs84",
                   "http://www.opengis.net/def/crs/epsg/0/4326")
#: The folder under the system's temporary folder that holds the uploads' folders (one per upload).
UPLOAD_DIR_NAME = "geoplan-uploads"
#: How an upload's own folder is named; :func:`sweep_stale_uploads` removes nothing else.
UPLOAD_FOLDER_PREFIX = "geoplan-upload-"
#: An upload folder untouched this long is a leftover: an upload lives for seconds (its GeoPackage checks a few).
STALE_UPLOAD_SECONDS = 3600.0
#: An Excel upload may unpack to this many times GEOPLAN_MAX_UPLOAD_BYTES (a sheet packs 5 to 15 times).
UNPACKED_PER_UPLOAD_BYTE = 20
#: Title lines a workbook may have above its header, beyond the rows allowed (the rows read are checked exactly after).
_TITLE_ROWS = 10
_IN_USE = ".in-use"  # locked (flock) by the upload that owns the folder, for as long as it runs
_PROGRESS_STEPS = 1_000  # SQLite virtual-machine steps between two looks at the clock
_VIRTUAL_TABLE = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\b", re.I)
_VIRTUAL = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\b.*?\bUSING\s+[\"'`\[]?([A-Za-z0-9_]+)", re.I | re.S)  # its module


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    """How much one upload may hold (each a setting, named in the refusal)."""

    rows: int = 20_000
    columns: int = 200
    json_depth: int = DEFAULT_MAX_JSON_DEPTH
    #: Longest the checks of a GeoPackage may run SQL (GEOPLAN_MAX_GPKG_SECONDS); every query is stopped at it.
    gpkg_seconds: float = 2.0
    #: Most bytes an Excel workbook may unpack to (UNPACKED_PER_UPLOAD_BYTE times GEOPLAN_MAX_UPLOAD_BYTES).
    unpacked_bytes: int = UNPACKED_PER_UPLOAD_BYTE * 5_000_000

    def check(self, name: str, *, rows: int | None = None, columns: int | None = None, what: str | None = None,
              more_than: bool = False) -> None:
        """A :class:`PayloadTooLarge` naming the limit and its setting if ``rows`` or ``columns`` exceed it.

        ``what`` names the upload in the message instead of ``name`` (a layer
        of it); ``more_than``: ``rows`` were counted only up to the limit plus one.
        """
        what = what or repr(name)
        if rows is not None and rows > self.rows:
            counted = f"more than {self.rows:,}" if more_than else f"{rows:,}"
            raise PayloadTooLarge(f"{what} has {counted} rows (features); the limit is {self.rows:,} (GEOPLAN_MAX_UPLOAD_ROWS). "
                                  "Split the list, or raise GEOPLAN_MAX_UPLOAD_ROWS.")
        if columns is not None and columns > self.columns:
            raise PayloadTooLarge(f"{what} has {columns:,} columns (properties); the limit is {self.columns:,} "
                                  "(GEOPLAN_MAX_UPLOAD_COLUMNS). Keep the id, name, kind, lon/lat, capacity and cost columns, "
                                  "or raise GEOPLAN_MAX_UPLOAD_COLUMNS.")


class UploadService:
    """Facility and candidate lists uploaded to a scenario."""

    def __init__(self, scenarios: ScenarioService, regions: RegionService, *, max_upload_bytes: int = 5_000_000,
                 limits: UploadLimits = UploadLimits(), upload_dir: Path | None = None):
        self.scenarios = scenarios
        self.regions = regions
        self.max_upload_bytes = max_upload_bytes
        self.limits = limits
        #: The parent of the uploads' folders (see :func:`sweep_stale_uploads`).
        self.upload_dir = Path(upload_dir) if upload_dir is not None else default_upload_dir()

    def upload(self, record: ScenarioRecord, *, filename: str, content: bytes, coord_system: str, status: str,
               kind: str, mode: str, outside: str) -> tuple[ScenarioRecord, dict]:
        """Read a user's facility (or candidate) list into the scenario: replace or extend its list."""
        if len(content) > self.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is {len(content):,} bytes; the limit is {self.max_upload_bytes:,}. Split the list or raise GEOPLAN_MAX_UPLOAD_BYTES.")
        if not content.strip():
            raise InputError(f"The uploaded file {filename!r} is empty. Upload a CSV or Excel list with lon/lat columns, or a GeoJSON of points.")
        system = normalize_coord_system(coord_system)
        base = self.regions.get(record.region)
        sites = read_upload(base, filename=filename, content=content, coord_system=system, status=status, kind=kind, outside=outside,
                            limits=self.limits, upload_dir=self.upload_dir)
        spec = dict(record.spec)
        field = "facilities" if status == "existing" else "candidates"
        new_records = sc.records(sites)
        if mode == "append":
            current = spec.get(field)
            if current is None:
                current = sc.records(base.facilities if status == "existing" else base.candidates)
            clash = sorted({r["site_id"] for r in current} & {r["site_id"] for r in new_records})
            if clash:
                raise InputError(f"Site ids {clash[:10]} are already in the scenario's {field}; give the new sites ids of their own or use mode=replace.")
            new_records = current + new_records
        spec[field] = new_records
        self.scenarios.validate(base, spec)
        saved = self.scenarios.save(record, spec)
        info = {"count": len(sites), "total": len(new_records), "site_ids": [str(i) for i in sites.index[:100]], "coord_system": system}
        return saved, info


def read_upload(region: Region, *, filename: str, content: bytes, coord_system: str, status: str, kind: str, outside: str,
                limits: UploadLimits = UploadLimits(), upload_dir: Path | None = None) -> gpd.GeoDataFrame:
    """A user's uploaded facility file read by :func:`geoplan.sites.load_facilities`, its messages naming the upload.

    Its size is checked against ``limits`` before the library reads it (rows
    and columns of a CSV, features and properties of a GeoJSON or a layer,
    nesting of a GeoJSON; a GeoPackage's tables by :func:`check_geopackage`),
    and its rows again after (a workbook's). The file is written to a folder
    of its own under ``upload_dir`` (default :func:`default_upload_dir`),
    removed afterwards.
    """
    name = Path(filename or "upload").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InputError(
            f"Cannot read {name!r}: upload a .csv or an Excel .xlsx/.xls list (with lon/lat or 经度/纬度 columns), "
            f"a .geojson of points, or a .gpkg; the file name must end in one of {', '.join(UPLOAD_SUFFIXES)}."
        )
    if suffix in (".geojson", ".json"):
        _check_json(name, content, limits)
    elif suffix in (".csv", ".txt"):
        _check_csv(name, content, limits)
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)[-100:] or f"upload{suffix}"  # keeps the suffix: the library reads by it
    with upload_folder(upload_dir) as tmp:
        path = tmp / safe
        path.write_bytes(content)
        try:
            if suffix == ".gpkg":
                check_geopackage(name, path, limits)
            elif suffix in _files.EXCEL_SUFFIXES:
                _check_workbook(name, path, limits)
            sites = load_facilities(path, crs=region.crs, boundary=region.boundary, coord_system=coord_system, kind=kind,
                                    status=status, outside=outside)
            limits.check(name, rows=len(sites))
            return sites
        except InputError as exc:
            message = str(exc).replace(str(path), name).replace(str(tmp) + "/", "")
            raise type(exc)(message) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"Cannot read {name!r} as a facility list: {exc}") from None


def _check_csv(name: str, content: bytes, limits: UploadLimits) -> None:
    """Refuse a CSV with more rows or columns than ``limits``, counted without decoding it.

    Latin-1 maps every byte to one character, and no byte of a UTF-8 or GBK
    character is a comma, a quote or a line break, so the records counted are
    those pandas reads (blank lines skipped).
    """
    records = csv.reader(io.StringIO(content.decode("latin-1"), newline=""))
    try:
        header = next(records, [])
        limits.check(name, columns=len(header))
        rows = sum(1 for record in records if record)
    except csv.Error:
        return  # the library says what is wrong with it
    limits.check(name, rows=rows)


def check_geopackage(name: str, path: Path, limits: UploadLimits = UploadLimits()) -> None:
    """Refuse a GeoPackage that would make its reader run costly SQL, or whose layer is larger than ``limits``.

    Done before GDAL opens the file, with Python's ``sqlite3`` on a read-only,
    immutable connection whose every query is stopped after
    ``limits.gpkg_seconds`` (a :class:`PayloadTooLarge` naming
    GEOPLAN_MAX_GPKG_SECONDS). Only the schema is read first, so no stored
    query runs:

    - not an SQLite database, or no ``gpkg_contents`` table: an ``InputError``
      saying a GeoPackage was expected;
    - any VIEW, layer or not (GDAL lists unregistered tables and views, and
      reads the first layer it lists): an ``InputError`` naming it;
    - a VIRTUAL table registered as a layer, or any virtual table but the
      ``rtree`` spatial indexes GeoPackages carry: an ``InputError``;
    - a table with a VIRTUAL generated column (computed at each read, e.g.
      ``zeroblob(1e9)``): an ``InputError``.

    Triggers are allowed: they run on writes only, and the file is only read
    (every spatial index comes with triggers). What remains are plain tables,
    whose reading is bounded by the file's size. The layer GDAL reads (the
    first it lists, as the library reads it) then has its features counted up
    to ``limits.rows`` plus one and its fields counted: too many is a
    :class:`PayloadTooLarge` naming GEOPLAN_MAX_UPLOAD_ROWS (or _COLUMNS).
    """
    import pyogrio

    with _geopackage_connection(name, path, limits.gpkg_seconds) as db:
        _, tables = _vet_geopackage_schema(name, db)
        try:
            listed = pyogrio.list_layers(path)  # safe now: only plain tables and spatial indexes remain
        except Exception:  # noqa: BLE001 - GDAL cannot open it: the library's reader says why
            return
        if not len(listed):
            return
        first = str(listed[0][0])
        table = tables.get(first.lower())
        if table is None:
            raise InputError(f"{name!r}: GDAL would read the layer {first!r}, which is not a table of the file. "
                             "Export the facility layer to a new GeoPackage (QGIS: Export > Save Features As; ogr2ogr) and upload that.")
        what = f"{name!r} (layer {first!r})"
        rows = db.execute(f"SELECT count(*) FROM (SELECT 1 FROM {_quoted(table)} LIMIT ?)", (limits.rows + 1,)).fetchone()[0]
        limits.check(name, rows=rows, what=what, more_than=True)
        geometry = {c.lower() for (c,) in db.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)", (table,))} if "gpkg_geometry_columns" in tables else set()
        columns = db.execute("SELECT name, pk, type FROM pragma_table_xinfo(?) LIMIT ?", (table, limits.columns + 10)).fetchall()
        fields = [c for c, pk, kind in columns if c.lower() not in geometry and not (pk == 1 and kind.upper() == "INTEGER")]
        limits.check(name, columns=len(fields), what=what)


@contextlib.contextmanager
def _geopackage_connection(name: str, path: Path, seconds: float) -> Iterator[sqlite3.Connection]:
    """A read-only, immutable ``sqlite3`` connection to ``path`` whose queries are stopped after ``seconds`` in all.

    The deadline is enforced by a progress handler (looking at the clock every
    :data:`_PROGRESS_STEPS` virtual-machine steps), so no query can run
    unbounded: an overrun is a :class:`PayloadTooLarge` naming
    GEOPLAN_MAX_GPKG_SECONDS. ``immutable`` is safe: the file is the upload's
    private copy, which nothing writes. SQLite errors (not a database, a
    malformed one) are an ``InputError`` saying a GeoPackage was expected.
    """
    deadline = time.monotonic() + seconds
    overrun = []

    def stop() -> bool:
        if time.monotonic() > deadline:
            overrun.append(True)
            return True
        return False

    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    try:
        db.set_progress_handler(stop, _PROGRESS_STEPS)
        db.execute("PRAGMA trusted_schema = OFF")  # no function with side effects, nor virtual table, from the file's schema
        db.execute("PRAGMA query_only = ON")
        yield db
        if time.monotonic() > deadline:  # time also spent outside SQLite (GDAL listing the layers)
            overrun.append(True)
            raise sqlite3.OperationalError("interrupted")
    except sqlite3.Error as exc:
        if overrun:
            raise PayloadTooLarge(
                f"Checking the GeoPackage {name!r} took longer than {seconds:g} s, the limit (GEOPLAN_MAX_GPKG_SECONDS). "
                "Its tables are too large or its SQL too costly: export the facility layer to a new GeoPackage of plain tables "
                "(QGIS: Export > Save Features As; ogr2ogr), or raise GEOPLAN_MAX_GPKG_SECONDS."
            ) from None
        raise InputError(
            f"Cannot read {name!r} as a GeoPackage ({exc}): a .gpkg upload must be an SQLite GeoPackage database. "
            "Save the facility layer as a GeoPackage again (QGIS: Export > Save Features As; ogr2ogr -f GPKG), "
            "or upload a CSV, Excel list or GeoJSON."
        ) from None
    finally:
        db.close()


def _vet_geopackage_schema(name: str, db: sqlite3.Connection) -> tuple[list[str], dict[str, str]]:
    """The layers registered in ``gpkg_contents`` and the plain tables (lower-cased name: name), the file's views and
    virtual tables refused, read from ``sqlite_master`` and ``gpkg_contents`` only (no stored query runs)."""
    objects = db.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    views = [n for kind, n, _ in objects if kind == "view"]
    virtual = {}  # lower-cased name: (name, module)
    for kind, n, sql in objects:
        if kind == "table" and sql and _VIRTUAL_TABLE.match(sql):
            module = _VIRTUAL.match(sql)
            virtual[n.lower()] = (n, module.group(1).lower() if module else "?")
    tables = {n.lower(): n for kind, n, _ in objects if kind == "table" and n.lower() not in virtual and not n.lower().startswith("sqlite_")}
    if "gpkg_contents" not in tables:
        if "gpkg_contents" in {v.lower() for v in views} | set(virtual):
            raise InputError(f"{name!r} is not a valid GeoPackage: its gpkg_contents is a view or virtual table, not a table. "
                             "Save the facility layer as a GeoPackage again (QGIS: Export > Save Features As; ogr2ogr -f GPKG).")
        raise InputError(
            f"{name!r} is an SQLite database but not a GeoPackage: it has no gpkg_contents table listing its layers. "
            "A .gpkg upload must be a GeoPackage of points: save the facility layer as one (QGIS: Export > Save Features As; "
            "ogr2ogr -f GPKG), or upload a CSV, Excel list or GeoJSON."
        )
    layers = [str(t) for (t,) in db.execute("SELECT table_name FROM gpkg_contents WHERE table_name IS NOT NULL")]
    registered = {t.lower() for t in layers}
    how = "(QGIS: Export > Save Features As; ogr2ogr -f GPKG out.gpkg in.gpkg LAYER) and upload the new GeoPackage."
    to_table = f"Export the layer to a table {how}"
    for view in sorted(views, key=lambda v: v.lower() not in registered):
        if view.lower() in registered:
            raise InputError(f"{name!r}: its layer {view!r} is a VIEW (a stored query run each time the layer is read), "
                             f"not a table; uploads must hold their features in tables. Export the view to a table {how}")
        raise InputError(f"{name!r} holds the VIEW {view!r} (a stored query, which a reader may run); uploads may hold tables only. "
                         f"Export the facility layer to a new GeoPackage (ogr2ogr -f GPKG out.gpkg in.gpkg LAYER) and upload that.")
    for key, (table, module) in sorted(virtual.items(), key=lambda item: item[0] not in registered):
        if key in registered:
            raise InputError(f"{name!r}: its layer {table!r} is a VIRTUAL table (module {module}), computed when read, "
                             f"not a table of features. {to_table}")
        if module != "rtree":
            raise InputError(f"{name!r} holds the VIRTUAL table {table!r} (module {module}); a GeoPackage upload may hold "
                             "tables and their rtree spatial indexes only. Export the facility layer to a new GeoPackage "
                             "(ogr2ogr -f GPKG out.gpkg in.gpkg LAYER) and upload that.")
    for table in tables.values():
        computed = [c for c, hidden in db.execute("SELECT name, hidden FROM pragma_table_xinfo(?)", (table,)) if hidden == 2]
        if computed:
            raise InputError(f"{name!r}: the table {table!r} has computed (VIRTUAL generated) columns {computed[:10]}, "
                             f"worked out each time the table is read. {to_table}")
    return layers, tables


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _check_workbook(name: str, path: Path, limits: UploadLimits) -> None:
    """Refuse a workbook that unpacks to too much, or whose first sheet has more rows or columns than ``limits``.

    The unpacked size is read from the zip's directory before openpyxl opens
    the file. The sheet's rows are then counted as they stream, not taken from
    the size the workbook records (which may be stale): a few title lines
    above the header are allowed for, and the rows read are checked exactly
    afterwards.
    """
    import openpyxl

    _check_unpacked(name, path, limits)
    try:
        book = openpyxl.load_workbook(path, read_only=True)
    except Exception:  # noqa: BLE001 - not a workbook: the library's reader says why
        return
    try:
        _count_sheet(name, book.worksheets[0], limits)
    except PayloadTooLarge:
        raise
    except Exception:  # noqa: BLE001 - no sheet, or a damaged one: the library's reader says why
        return
    finally:
        book.close()


def _check_unpacked(name: str, path: Path, limits: UploadLimits) -> None:
    """Refuse a workbook that unpacks to more than ``limits.unpacked_bytes``, or packs a part like padding ("zip bomb").

    Read from the zip's directory (:func:`geoplan._files.unpacked_size`), nothing unpacked.
    """
    total, ratio = _files.unpacked_size(path)
    if total > limits.unpacked_bytes:
        raise PayloadTooLarge(
            f"{name!r} unpacks to {total:,} bytes; an Excel upload may unpack to {limits.unpacked_bytes:,} "
            f"({UNPACKED_PER_UPLOAD_BYTE} times GEOPLAN_MAX_UPLOAD_BYTES). Split the list, save it as CSV, "
            "or raise GEOPLAN_MAX_UPLOAD_BYTES."
        )
    if ratio > _files.MAX_XLSX_RATIO:
        raise PayloadTooLarge(
            f"{name!r} packs a part {ratio:,.0f} times (a sheet of cells packs 5 to 15 times; the limit is "
            f"{_files.MAX_XLSX_RATIO}): it is padded with filler, not cells. Open it in Excel or WPS and save it "
            "again as .xlsx, or save the list as CSV."
        )


def _count_sheet(name: str, sheet: ReadOnlyWorksheet, limits: UploadLimits) -> None:
    """Refuse a read-only worksheet with more columns, or more rows that are not blank, than ``limits``.

    Stops reading at the first row over a limit.
    """
    sheet.reset_dimensions()  # count what is there, not what the workbook says is there
    rows = 0
    for values in sheet.iter_rows(min_row=1, min_col=1, values_only=True):
        limits.check(name, columns=len(values))
        rows += any(v is not None for v in values)
        if rows > limits.rows + _TITLE_ROWS:
            limits.check(name, rows=rows, more_than=True)


def _check_json(name: str, content: bytes, limits: UploadLimits = UploadLimits()) -> None:
    """A clear message for an upload that is not GeoJSON at all (GDAL's own is about drivers), or is too large or deep."""
    check_json_depth(content, limit=limits.json_depth, what=repr(name))
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"{name!r} is not UTF-8 text; save the GeoJSON as UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{name!r} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); upload a GeoJSON FeatureCollection of points.") from None
    if not isinstance(data, dict) or data.get("type") not in ("FeatureCollection", "Feature"):
        raise InputError(f"{name!r} is JSON but not a GeoJSON FeatureCollection; upload {{\"type\": \"FeatureCollection\", \"features\": [...]}} with Point geometries.")
    if data.get("type") == "FeatureCollection" and not data.get("features"):
        raise InputError(f"{name!r} has no features; add the facilities as Point features.")
    features = data.get("features") if data.get("type") == "FeatureCollection" else [data]
    if isinstance(features, list):
        limits.check(name, rows=len(features))
        widths = [len(f["properties"]) for f in features if isinstance(f, dict) and isinstance(f.get("properties"), dict)]
        limits.check(name, columns=max(widths, default=0))
    _check_crs_member(name, data.get("crs"))


def _check_crs_member(name: str, crs) -> None:
    """Refuse a legacy ``crs`` member other than WGS84 lon/lat: GDAL would read it, or ignore it and read degrees."""
    if crs is None:
        return
    declared = crs.get("properties", {}).get("name") if isinstance(crs, dict) and isinstance(crs.get("properties"), dict) else None
    if isinstance(declared, str) and declared.strip().lower() in WGS84_CRS_NAMES:
        return
    shown = declared if isinstance(declared, str) else json.dumps(crs)[:200]
    raise InputError(
        f"{name!r} declares the crs {shown!r}; a GeoJSON upload must be WGS84 longitude/latitude (EPSG:4326, RFC 7946). "
        "Reproject it to EPSG:4326 and remove the crs member, or upload a GeoPackage (.gpkg) that carries its CRS."
    )


# --- the uploads' folders --------------------------------------------------------------------------


def default_upload_dir() -> Path:
    """The parent of the uploads' folders: ``<tempdir>/geoplan-uploads`` (``tempfile.gettempdir()``)."""
    return Path(tempfile.gettempdir()) / UPLOAD_DIR_NAME


def _upload_parent(parent: Path) -> Path:
    """``parent``, made if missing (owner only); refused if it is a symlink or another user's (a shared /tmp)."""
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(parent)
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "geteuid") and info.st_uid != os.geteuid()):
        raise RuntimeError(f"The uploads' folder {parent} is a symlink or another user's; remove it, or give the service "
                           "another folder for uploads.")
    return parent


@contextlib.contextmanager
def upload_folder(parent: Path | None = None) -> Iterator[Path]:
    """A new folder for one upload under ``parent`` (default :func:`default_upload_dir`), removed on leaving.

    The folder is named ``geoplan-upload-*`` and holds a ``.in-use`` file
    locked (``flock``) for as long as the upload runs, so that
    :func:`sweep_stale_uploads` leaves it alone even if it is older than the
    sweep's threshold; the lock goes with the process, so a folder left by a
    killed process is unlocked and removed by the next sweep.
    """
    parent = _upload_parent(Path(parent) if parent is not None else default_upload_dir())
    folder = Path(tempfile.mkdtemp(prefix=UPLOAD_FOLDER_PREFIX, dir=parent))
    lock = None
    try:
        lock = open(folder / _IN_USE, "wb")
        if fcntl is not None:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            lock.close()


def sweep_stale_uploads(parent: Path, older_than_s: float = STALE_UPLOAD_SECONDS) -> int:
    """Remove the upload folders under ``parent`` left by killed processes; the number removed.

    Called at service start. Only folders named ``geoplan-upload-*`` (not
    symlinks) are considered, and one is removed only if (1) neither it nor
    anything directly in it was modified in the last ``older_than_s`` seconds
    (default :data:`STALE_UPLOAD_SECONDS`, 1 hour: an upload lives for
    seconds, so a live one is far younger) and (2) its ``.in-use`` lock is
    free (a live upload holds it, whatever its age; a killed process's lock is
    released by the system). A missing ``parent`` removes nothing.
    """
    if older_than_s < 0:
        raise ValueError(f"older_than_s must be >= 0, got {older_than_s!r}")
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return 0
    now, removed = time.time(), 0
    for entry in entries:
        try:
            if not entry.name.startswith(UPLOAD_FOLDER_PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            folder = Path(entry.path)
            if now - _last_modified(folder) <= older_than_s:
                continue
            with _claimed(folder) as free:
                if not free:
                    continue
                shutil.rmtree(folder, ignore_errors=True)
            if not os.path.lexists(folder):
                removed += 1
        except FileNotFoundError:  # removed meanwhile (another process's sweep)
            continue
    if removed:
        log.info("removed %d stale upload folder(s) from %s", removed, parent)
    return removed


def _last_modified(folder: Path) -> float:
    """The latest modification time of ``folder`` and of what is directly in it (symlinks not followed)."""
    latest = os.lstat(folder).st_mtime
    with os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
    return latest


@contextlib.contextmanager
def _claimed(folder: Path) -> Iterator[bool]:
    """Whether no live upload holds ``folder``'s lock (then held until leaving); no lock file: not in use."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(folder / _IN_USE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        yield True
        return
    except OSError:  # a symlink or unreadable: not ours to judge, leave it
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
