"""Facility uploads: a user's list (CSV, Excel, GeoJSON, GeoPackage) read by the library into a scenario.

The file is read by :func:`geoplan.sites.load_facilities`, the one reader of
site files, so an upload follows the same column rules and coordinate
systems as the CLI; its messages name the upload, not the temporary file.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import tempfile
from pathlib import Path

import geopandas as gpd

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

UPLOAD_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm", ".xls", ".geojson", ".json", ".gpkg")
#: The legacy GeoJSON ``crs`` names that mean what RFC 7946 says anyway: WGS84 longitude/latitude.
WGS84_CRS_NAMES = ("urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84", "crs84", "ogc:crs84", "epsg:4326",
                   "urn:ogc:def:crs:epsg::4326", "urn:ogc:def:crs:epsg:4326", "http://www.opengis.net/def/crs/ogc/1.3/crs84",
                   "http://www.opengis.net/def/crs/epsg/0/4326")


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    """How much one upload may hold (each a setting, named in the refusal)."""

    rows: int = 20_000
    columns: int = 200
    json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def check(self, name: str, *, rows: int | None = None, columns: int | None = None) -> None:
        """A :class:`PayloadTooLarge` naming the limit and its setting if ``rows`` or ``columns`` exceed it."""
        if rows is not None and rows > self.rows:
            raise PayloadTooLarge(f"{name!r} has {rows:,} rows (features); the limit is {self.rows:,} (GEOPLAN_MAX_UPLOAD_ROWS). "
                                  "Split the list, or raise GEOPLAN_MAX_UPLOAD_ROWS.")
        if columns is not None and columns > self.columns:
            raise PayloadTooLarge(f"{name!r} has {columns:,} columns (properties); the limit is {self.columns:,} "
                                  "(GEOPLAN_MAX_UPLOAD_COLUMNS). Keep the id, name, kind, lon/lat, capacity and cost columns, "
                                  "or raise GEOPLAN_MAX_UPLOAD_COLUMNS.")


class UploadService:
    """Facility and candidate lists uploaded to a scenario."""

    def __init__(self, scenarios: ScenarioService, regions: RegionService, *, max_upload_bytes: int = 5_000_000,
                 limits: UploadLimits = UploadLimits()):
        self.scenarios = scenarios
        self.regions = regions
        self.max_upload_bytes = max_upload_bytes
        self.limits = limits

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
                            limits=self.limits)
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
                limits: UploadLimits = UploadLimits()) -> gpd.GeoDataFrame:
    """A user's uploaded facility file read by :func:`geoplan.sites.load_facilities`, its messages naming the upload.

    Its size is checked against ``limits`` before the library reads it (rows
    and columns of a CSV, features and properties of a GeoJSON or a layer,
    nesting of a GeoJSON), and its rows again after (a workbook's).
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
    with tempfile.TemporaryDirectory(prefix="geoplan-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(content)
        try:
            if suffix == ".gpkg":
                _check_layer(name, path, limits)
            elif suffix in (".xlsx", ".xlsm"):
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


def _check_layer(name: str, path: Path, limits: UploadLimits) -> None:
    """Refuse a GeoPackage layer with more features or fields than ``limits``, from its metadata."""
    import pyogrio

    try:
        info = pyogrio.read_info(path)
    except Exception:  # noqa: BLE001 - not readable: the library's reader says why
        return
    limits.check(name, rows=int(info.get("features") or 0), columns=len(info.get("fields") or ()))


def _check_workbook(name: str, path: Path, limits: UploadLimits) -> None:
    """Refuse a workbook whose first sheet is far larger than ``limits``, from its recorded dimensions.

    A few title lines above the header are allowed for; the rows read are
    checked exactly afterwards.
    """
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True)
    except Exception:  # noqa: BLE001 - not a workbook: the library's reader says why
        return
    try:
        sheet = book.worksheets[0]
        rows, columns = sheet.max_row, sheet.max_column
    except Exception:  # noqa: BLE001 - no recorded dimensions: read and check the rows afterwards
        return
    finally:
        book.close()
    if rows is not None:
        limits.check(name, rows=max(rows - 10, 0))
    if columns is not None:
        limits.check(name, columns=columns)


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
