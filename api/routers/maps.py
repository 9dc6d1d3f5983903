"""Maps: an embeddable, self-contained HTML map (for an iframe) per region and per scenario."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED
from api.deps import MapsDep, RegionKey, ScenarioDep
from api.schemas.common import JSON_ERROR_RESPONSES

router = APIRouter(tags=["maps"], responses=JSON_ERROR_RESPONSES, dependencies=AUTHORIZED)

BasemapQuery = Annotated[Literal["none", "osm"], Query(description="none: no tiles, works offline; osm: OpenStreetMap tiles.")]
HTML = {200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "A self-contained HTML page."}}
# A map is meant for iframes on other sites: allow any framing, and let browsers cache it briefly.
HEADERS = {"Content-Security-Policy": "frame-ancestors *", "Cache-Control": "public, max-age=300"}


@router.get("/regions/{region}/map", response_class=HTMLResponse, responses=HTML, summary="Coverage map of a region (HTML for an iframe)")
async def region_map(key: RegionKey, maps: MapsDep, basemap: BasemapQuery = "none") -> HTMLResponse:
    page = await run_in_threadpool(lambda: maps.region_map(key, basemap=basemap))
    return HTMLResponse(page, headers=HEADERS)


@router.get("/scenarios/{scenario_id}/map", response_class=HTMLResponse, responses=HTML,
            summary="Coverage map of a scenario: added, new, closed sites and care circles (HTML for an iframe)")
async def scenario_map(record: ScenarioDep, maps: MapsDep, basemap: BasemapQuery = "none") -> HTMLResponse:
    page = await run_in_threadpool(lambda: maps.scenario_map(record, basemap=basemap))
    return HTMLResponse(page, headers=HEADERS)
