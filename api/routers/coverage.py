"""Coverage: summary by group and threshold, gap cells as GeoJSON, care circles for a site or a point."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from geoplan.errors import InputError

from api.auth import AUTHORIZED, Principal, PrincipalDep
from api.deps import CoverageDep, RegionKey
from api.schemas.common import ERROR_RESPONSES
from api.schemas.coverage import CareCircleCollection, CoverageOut, GapCollection, GapParams
from api.services.coverage import GapQuery
from api.services.coverage_service import CoverageService

router = APIRouter(prefix="/regions/{region}", tags=["coverage"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)

GroupQuery = Annotated[str | None, Query(max_length=40, description="Population group, e.g. pop_60 (GET /regions/{region} lists them).")]
ScenarioQuery = Annotated[str | None, Query(max_length=64, description="Coverage after this scenario (its edits and plan) instead of the region's own facilities.")]
ThresholdQuery = Annotated[float | None, Query(gt=0, le=120, allow_inf_nan=False, description="Walking minutes (default: the largest, 15).")]


@router.get("/coverage", response_model=CoverageOut, summary="People within a walk of care, per group and threshold")
async def coverage_summary(key: RegionKey, coverage: CoverageDep, who: PrincipalDep, group: GroupQuery = None,
                           threshold_min: ThresholdQuery = None, scenario_id: ScenarioQuery = None) -> dict:
    index = await _index(coverage, key, scenario_id, who)
    sites = index.report.sites
    n_sites = int((sites["status"].astype(str) != "closed").sum()) if "status" in sites else len(sites)
    return {"region": key, "scenario_id": scenario_id, "site_source": index.report.site_source, "sites": n_sites,
            "rows": index.summary(group=group, threshold_min=threshold_min)}


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    """OpenAPI query parameters of a pydantic model's fields (for a route that validates its query itself)."""
    schema = model.model_json_schema()
    return [
        {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop,
         "description": prop.get("description", "")}
        for name, prop in schema["properties"].items()
    ]


@router.get(
    "/coverage/gaps",
    response_model=None,
    response_class=Response,
    responses={200: {"model": GapCollection, "description": "Uncovered cells (GeoJSON, WGS84), most people first."}},
    openapi_extra={"parameters": _query_parameters(GapParams)},
    summary="Uncovered population cells as GeoJSON",
)
async def coverage_gaps(key: RegionKey, request: Request, who: PrincipalDep) -> Response:
    # The hot path: the query is validated by GapParams directly (documented through
    # openapi_extra), which spares FastAPI's per-parameter machinery on every request.
    try:
        query = GapParams.model_validate(request.query_params)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]) from None
    coverage = request.app.state.services.coverage
    index = await _index(coverage, key, query.scenario_id, who)
    threshold = query.threshold_min if query.threshold_min is not None else index.cutoff_min
    box = parse_bbox(query.bbox) if query.bbox else None
    body, total, returned, people = index.gaps(
        GapQuery(group=query.group, threshold_min=threshold, bbox=box, limit=query.limit, min_people=query.min_people)
    )
    meta = json.dumps({
        "type": "FeatureCollection", "region": key, "scenario_id": query.scenario_id, "group": query.group, "threshold_min": threshold,
        "bbox": list(box) if box else None, "total": total, "returned": returned, "uncovered_people": round(people, 2),
    }, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content=meta[:-1] + b',"features":[' + body + b"]}", media_type="application/json")


@router.get("/care-circles", response_model=CareCircleCollection, summary="Care circles (walking isochrones) of a site or a point")
async def care_circles(
    key: RegionKey,
    coverage: CoverageDep,
    who: PrincipalDep,
    site_id: Annotated[str | None, Query(max_length=64, description="A facility or candidate id (GET /regions/{region}/facilities).")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180, allow_inf_nan=False)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90, allow_inf_nan=False)] = None,
    coord_system: Annotated[str, Query(max_length=32, description="Of lon/lat: wgs84, gcj02 (Amap/Tencent) or bd09 (Baidu).")] = "wgs84",
    thresholds_min: Annotated[list[float] | None, Query(max_length=6, description="Minutes, e.g. 5, 10, 15 (default: the region's).")] = None,
    scenario_id: ScenarioQuery = None,
) -> dict | Response:
    region = coverage.regions.loaded(key) or await run_in_threadpool(coverage.regions.get, key)
    thresholds = tuple(sorted(set(thresholds_min))) if thresholds_min else tuple(float(t) for t in region.thresholds_min)
    if site_id is not None and (lon is not None or lat is not None):
        raise InputError("Give either site_id or lon and lat, not both.")
    if site_id is not None:
        return await run_in_threadpool(
            lambda: coverage.circles_for_site(key, site_id, scenario_id=scenario_id, thresholds_min=thresholds, who=who)
        )
    if lon is None or lat is None:
        raise InputError("Give a site_id, or a point as lon and lat (with coord_system if not wgs84).")
    point = dict(lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds)
    # a kept answer is sent as kept, from the event loop; a new one is computed in a worker thread
    body = coverage.kept_circles_json(key, **point) or await run_in_threadpool(lambda: coverage.circles_for_point_json(key, **point))
    if body is None:  # an answer JSON cannot hold as it is (none is known): sent through the response model
        return await run_in_threadpool(lambda: coverage.circles_for_point(key, **point))
    return Response(content=body, media_type="application/json")


async def _index(coverage: CoverageService, key: str, scenario_id: str | None, who: Principal):
    """The warm index without leaving the event loop; a cold one is built in a worker thread."""
    if scenario_id is None:
        index = coverage.regions.peek_coverage(key)
        if index is not None:
            return index
    return await run_in_threadpool(lambda: coverage.index(key, scenario_id, who=who))


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(abs(v) < float("inf") for v in values):
        raise InputError(f"bbox must be four numbers min_lon,min_lat,max_lon,max_lat (WGS84), e.g. 114.28,30.52,114.33,30.56; got {text!r}.")
    minx, miny, maxx, maxy = values
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InputError(
            f"bbox {text!r} is not min_lon,min_lat,max_lon,max_lat in degrees with min <= max "
            "(longitude -180..180 first, then latitude -90..90)."
        )
    return minx, miny, maxx, maxy
