"""Facilities: existing and candidate sites of a region or a scenario; upload a facility list to a scenario."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED
from api.deps import FacilitiesDep, RegionKey, ScenarioDep, UploadsDep
from api.errors import PayloadTooLarge
from api.schemas.common import ERROR_RESPONSES
from api.schemas.facilities import SiteCollection, UploadOut

router = APIRouter(tags=["facilities"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)

StatusQuery = Annotated[Literal["existing", "candidate", "all"], Query(description="Which sites.")]
KindQuery = Annotated[Literal["station", "canteen", "centre"] | None, Query(description="Only this kind.")]


@router.get("/regions/{region}/facilities", response_model=SiteCollection, summary="A region's existing facilities and candidate sites (GeoJSON)")
async def region_facilities(key: RegionKey, facilities: FacilitiesDep, status: StatusQuery = "all", kind: KindQuery = None) -> dict:
    return await run_in_threadpool(lambda: facilities.region_sites(key, status=status, kind=kind))


@router.get("/scenarios/{scenario_id}/facilities", response_model=SiteCollection,
            summary="A scenario's facilities after its edits (change: kept/added/closed) and candidates (GeoJSON)")
async def scenario_facilities(record: ScenarioDep, facilities: FacilitiesDep, status: StatusQuery = "all", kind: KindQuery = None) -> dict:
    return await run_in_threadpool(lambda: facilities.scenario_sites(record, status=status, kind=kind))


@router.post("/scenarios/{scenario_id}/facilities", response_model=UploadOut, summary="Upload a facility or candidate list (CSV, Excel or GeoJSON) to a scenario")
async def upload_facilities(
    record: ScenarioDep,
    uploads: UploadsDep,
    file: Annotated[UploadFile, File(description="CSV or Excel (.xlsx, .xls) with lon/lat (or lng, 经度/纬度) columns and optional site_id, name (名称), kind, capacity, cost; or a GeoJSON/GeoPackage of points.")],
    coord_system: Annotated[str, Form(max_length=32, description="wgs84 (GPS), gcj02 (Amap/Gaode, Tencent) or bd09 (Baidu).")] = "wgs84",
    status: Annotated[Literal["existing", "candidate"], Form(description="existing: the scenario's facility list; candidate: its candidate sites.")] = "existing",
    kind: Annotated[Literal["station", "canteen", "centre"], Form(description="Kind for rows without a kind column.")] = "station",
    mode: Annotated[Literal["replace", "append"], Form(description="Replace the list, or append to it.")] = "replace",
    outside: Annotated[Literal["error", "drop"], Form(description="Points outside the region: an error that lists them, or drop them.")] = "error",
) -> dict:
    limit = uploads.max_upload_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"The upload is larger than {limit:,} bytes. Split the list or raise GEOPLAN_MAX_UPLOAD_BYTES.")
    saved, info = await run_in_threadpool(
        lambda: uploads.upload(record, filename=file.filename or "upload.csv", content=content, coord_system=coord_system,
                               status=status, kind=kind, mode=mode, outside=outside)
    )
    return {"scenario_id": saved.id, "status": status, "mode": mode, **info,
            "links": {"scenario": f"/scenarios/{saved.id}", "facilities": f"/scenarios/{saved.id}/facilities"}}
