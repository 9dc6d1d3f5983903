"""Regions: list and detail (boundary, population by group, facility counts)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED
from api.deps import RegionKey, RegionsDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.regions import RegionDetailOut, RegionList

router = APIRouter(prefix="/regions", tags=["regions"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)


@router.get("", response_model=RegionList, summary="Regions this service plans for")
async def list_regions(regions: RegionsDep) -> dict:
    from geoplan.config import load_config

    items = []
    for key in regions.names():
        info = load_config(key).region
        items.append({"key": key, "name": info.name, "name_zh": info.name_zh, "city": info.city, "loaded": regions.is_loaded(key)})
    return {"regions": items}


@router.get("/{region}", response_model=RegionDetailOut, summary="A region: boundary, population by group, facilities")
async def region_detail(key: RegionKey, regions: RegionsDep) -> dict:
    return await run_in_threadpool(regions.detail, key)
