"""Facility uploads: a user's list (CSV, Excel, GeoJSON, GeoPackage) read by the library into a scenario.

The file is read by :func:`geoplan.sites.load_facilities`, the one reader of
site files, so an upload follows the same column rules and coordinate
systems as the CLI; its messages name the upload, not the temporary file.
"""

from __future__ import annotations

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
from api.services import scenarios as sc
from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService
from api.store import ScenarioRecord

UPLOAD_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm", ".xls", ".geojson", ".json", ".gpkg")


class UploadService:
    """Facility and candidate lists uploaded to a scenario."""

    def __init__(self, scenarios: ScenarioService, regions: RegionService, *, max_upload_bytes: int = 5_000_000):
        self.scenarios = scenarios
        self.regions = regions
        self.max_upload_bytes = max_upload_bytes

    def upload(self, record: ScenarioRecord, *, filename: str, content: bytes, coord_system: str, status: str,
               kind: str, mode: str, outside: str) -> tuple[ScenarioRecord, dict]:
        """Read a user's facility (or candidate) list into the scenario: replace or extend its list."""
        if len(content) > self.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is {len(content):,} bytes; the limit is {self.max_upload_bytes:,}. Split the list or raise GEOPLAN_MAX_UPLOAD_BYTES.")
        if not content.strip():
            raise InputError(f"The uploaded file {filename!r} is empty. Upload a CSV or Excel list with lon/lat columns, or a GeoJSON of points.")
        system = normalize_coord_system(coord_system)
        base = self.regions.get(record.region)
        sites = read_upload(base, filename=filename, content=content, coord_system=system, status=status, kind=kind, outside=outside)
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


def read_upload(region: Region, *, filename: str, content: bytes, coord_system: str, status: str, kind: str, outside: str) -> gpd.GeoDataFrame:
    """A user's uploaded facility file read by :func:`geoplan.sites.load_facilities`, its messages naming the upload."""
    name = Path(filename or "upload").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InputError(
            f"Cannot read {name!r}: upload a .csv or an Excel .xlsx/.xls list (with lon/lat or 经度/纬度 columns), "
            f"a .geojson of points, or a .gpkg; the file name must end in one of {', '.join(UPLOAD_SUFFIXES)}."
        )
    if suffix in (".geojson", ".json"):
        _check_json(name, content)
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)[-100:] or f"upload{suffix}"  # keeps the suffix: the library reads by it
    with tempfile.TemporaryDirectory(prefix="geoplan-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(content)
        try:
            return load_facilities(path, crs=region.crs, boundary=region.boundary, coord_system=coord_system, kind=kind,
                                   status=status, outside=outside)
        except InputError as exc:
            message = str(exc).replace(str(path), name).replace(str(tmp) + "/", "")
            raise type(exc)(message) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"Cannot read {name!r} as a facility list: {exc}") from None


def _check_json(name: str, content: bytes) -> None:
    """A clear message for an upload that is not GeoJSON at all (GDAL's own is about drivers)."""
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
