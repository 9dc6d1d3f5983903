"""The planner's web workspace: its page and assets at ``/app`` (open), and two reads it needs.

The page (``api/workspace/``: plain ES modules, no build step) and Leaflet
(``geoplan/static/leaflet``) ship with the package, so the workspace works on a
bureau's network without any internet access; the page signs in with an API key
itself and then calls the service like any other client. ``/app`` is an open
path (``api.auth.OPEN_PREFIXES``): nothing under it reads or writes plans.

The two reads, behind keys like every other route:

* ``GET /regions/{region}/streets``: the walk network's streets as GeoJSON, the
  workspace's base layer drawn without web tiles (the street network the review
  map draws), built once per region;
* ``GET /regions/{region}/targets/workbook``: the review against a preset as the
  library's Excel workbook (:meth:`geoplan.targets.review.Review.to_xlsx`).
"""

from __future__ import annotations

import gzip
import json
import mimetypes
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import geopandas as gpd
import numpy as np
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from geoplan.maps import geojson_layer
from geoplan.targets import ConsolidationOptions, targets

from api.auth import AUTHORIZED, PrincipalDep
from api.deps import RegionKey
from api.errors import NotFound
from api.schemas.common import JSON_ERROR_RESPONSES, FeatureCollection
from api.services.memo import Memo

PAGE_DIR = Path(__file__).resolve().parents[1] / "workspace"
LEAFLET_DIR = resources.files("geoplan") / "static" / "leaflet"
ASSET_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml"}
#: The page loads nothing from elsewhere and talks only to this service.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; "
                               "base-uri 'self'; form-action 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Street classes drawn heavier: the review map's main roads.
MAJOR_HIGHWAYS = frozenset({"motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary", "secondary_link"})
STREETS_AROUND_M = 300.0
STREETS_TOLERANCE_M = 2.0

router = APIRouter()
pages = APIRouter(include_in_schema=False)
reads = APIRouter(tags=["workspace"], responses=JSON_ERROR_RESPONSES, dependencies=AUTHORIZED)

_streets: Memo[tuple[bytes, bytes]] = Memo(maxsize=8)
_workbooks: Memo[bytes] = Memo(maxsize=16)


# --- the page ------------------------------------------------------------------------------


@pages.get("/app")
async def workspace_root() -> RedirectResponse:
    return RedirectResponse("app/", status_code=307)  # relative, so it holds behind a proxy's path prefix too


@pages.get("/app/")
async def workspace_page() -> Response:
    return _asset(PAGE_DIR, "index.html")


@pages.get("/app/static/leaflet/{name:path}")
async def leaflet_asset(name: str) -> Response:
    return _asset(LEAFLET_DIR, name)


@pages.get("/app/{name:path}")
async def workspace_asset(name: str) -> Response:
    return _asset(PAGE_DIR, name)


def _asset(root, name: str) -> Response:
    """A file under ``root`` (a folder or package resource), or 404; never a path outside it."""
    parts = [p for p in name.split("/") if p]
    suffix = Path(name).suffix.lower()
    if not parts or any(p in (".", "..") or p.startswith(".") or "\\" in p for p in parts) or suffix not in ASSET_TYPES:
        raise NotFound(f"No workspace file {name!r}; the workspace is at /app/.")
    target = root.joinpath(*parts)
    if not target.is_file():
        raise NotFound(f"No workspace file {name!r}; the workspace is at /app/.")
    return Response(target.read_bytes(), media_type=ASSET_TYPES.get(suffix) or mimetypes.guess_type(name)[0], headers=PAGE_HEADERS)


# --- streets -------------------------------------------------------------------------------


class StreetCollection(FeatureCollection):
    """The region's streets (WGS84): one MultiLineString per class, ``major`` (main roads) or ``street``."""

    region: str


@reads.get("/regions/{region}/streets", response_model=StreetCollection,
           summary="The region's streets as GeoJSON lines (a base layer that needs no web tiles)")
async def region_streets(key: RegionKey, request: Request) -> Response:
    regions = request.app.state.services.regions
    plain, packed = await run_in_threadpool(lambda: _streets.get(key, lambda: _street_bodies(regions.get(key))))
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(packed, media_type="application/json", headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding",
                                                                        "Cache-Control": "private, max-age=3600"})
    return Response(plain, media_type="application/json", headers={"Vary": "Accept-Encoding", "Cache-Control": "private, max-age=3600"})


def street_lines(region) -> gpd.GeoDataFrame:
    """The walk network's streets within 300 m of the region, merged per class (``major``, ``street``), in its CRS.

    The selection of the review map's street layer (:mod:`geoplan.targets.review_map`).
    """
    edges = region.network.edges
    area = shapely.union_all(region.boundary.geometry.to_numpy()).buffer(STREETS_AROUND_M)
    edges = edges[shapely.intersects(edges.geometry.to_numpy(), area)]
    major = edges["highway"].astype(str).isin(MAJOR_HIGHWAYS).to_numpy() if "highway" in edges else np.zeros(len(edges), bool)
    classes, lines = [], []
    for name, mask in (("street", ~major), ("major", major)):
        if mask.any():
            classes.append(name)
            lines.append(shapely.line_merge(shapely.union_all(edges.geometry.to_numpy()[mask])))
    return gpd.GeoDataFrame({"class": classes}, geometry=lines, crs=edges.crs)


def _street_bodies(region) -> tuple[bytes, bytes]:
    layer = geojson_layer(street_lines(region), tolerance_m=STREETS_TOLERANCE_M)
    features = [{"type": "Feature", "geometry": f["geometry"], "properties": f["properties"]} for f in layer["features"]]
    body = json.dumps({"type": "FeatureCollection", "region": region.key, "features": features}, separators=(",", ":")).encode()
    return body, gzip.compress(body, compresslevel=6)


# --- the review workbook -------------------------------------------------------------------


@reads.get(
    "/regions/{region}/targets/workbook",
    response_class=Response,
    responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                     "description": "The review as an Excel workbook (Chinese and English headers): summary, streets or zones, communities, consolidation, one sheet per tier."}},
    summary="The review against a preset's targets as an Excel workbook",
)
async def review_workbook(
    key: RegionKey,
    request: Request,
    who: PrincipalDep,
    preset: Annotated[str, Query(max_length=64, description="A shipped preset (GET /targets/presets).")] = "shuimogou",
    scenario_id: Annotated[str | None, Query(max_length=64, description="Review a scenario's end state instead of the region's own facilities.")] = None,
    min_catchment: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Consolidation: stations/canteens with fewer 60+ within their walk are under-used.")] = None,
) -> Response:
    service = request.app.state.targets
    target_set = service.preset(preset)

    def build() -> bytes:
        region = service.regions.get(key)
        facilities, state = None, "base"
        if scenario_id is not None:
            record = service.scenarios.get_in(key, scenario_id, who)
            sites = service.scenarios.end_state_report(record, with_circles=False).sites
            facilities = sites[sites["status"].astype(str) != "closed"] if "status" in sites else sites
            state = record.spec_hash

        def write() -> bytes:
            review = targets(region, target_set, facilities=facilities, units=service.units(key),
                             consolidation=ConsolidationOptions(min_catchment=min_catchment))
            with tempfile.TemporaryDirectory(prefix="geoplan-workbook-") as tmp:
                return review.to_xlsx(Path(tmp) / "review.xlsx").read_bytes()

        return _workbooks.get((key, preset, state, min_catchment), write)

    content = await run_in_threadpool(build)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{key}_{preset}_review" + (f"_{scenario_id}" if scenario_id else ""))
    return Response(content, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"',
                                                       "Cache-Control": "private, no-cache"})


router.include_router(pages)
router.include_router(reads)
