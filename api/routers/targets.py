"""Targets: review a region (or a scenario) against a plan's targets, per street (or approximate zone) and community."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED, PrincipalDep, role
from api.deps import RegionKey
from api.errors import PayloadTooLarge
from api.schemas.common import ERROR_RESPONSES
from api.schemas.targets import PresetList, TargetReviewOut
from api.services.targets import TargetService

router = APIRouter(tags=["targets"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)


async def get_targets(request: Request) -> TargetService:
    return request.app.state.targets


TargetsDep = Annotated[TargetService, Depends(get_targets)]
PresetQuery = Annotated[str, Query(max_length=64, description="A shipped preset: shuimogou, yunfu, baodi, xinjiang, chaoyang (GET /targets/presets).")]
ScenarioQuery = Annotated[str | None, Query(max_length=64, description="Review a scenario's end state (its edits and plan) instead of the region's own facilities.")]
CatchmentQuery = Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Consolidation: stations/canteens with fewer 60+ within their walk are under-used.")]


@router.get("/targets/presets", response_model=PresetList, summary="The shipped targets presets, each target with its plan and clause")
async def presets(service: TargetsDep) -> dict:
    return {"presets": await run_in_threadpool(service.presets)}


@router.get("/regions/{region}/targets", response_model=TargetReviewOut, response_model_by_alias=True,
            summary="Review a region against a preset's targets: which streets (or zones) and communities pass")
async def review(key: RegionKey, service: TargetsDep, who: PrincipalDep, preset: PresetQuery = "shuimogou", scenario_id: ScenarioQuery = None,
                 min_catchment: CatchmentQuery = None) -> dict:
    target_set = service.preset(preset)
    out = await run_in_threadpool(
        lambda: service.review(key, target_set, fingerprint=f"preset:{preset}", who=who, scenario_id=scenario_id, min_catchment=min_catchment)
    )
    return {**out, "preset": preset}


@router.post("/regions/{region}/targets", response_model=TargetReviewOut, response_model_by_alias=True,
             summary="Review a region against your own targets file (TOML, the format of the presets)", openapi_extra=role("viewer"))
async def review_file(
    key: RegionKey,
    service: TargetsDep,
    who: PrincipalDep,
    file: Annotated[UploadFile, File(description="A targets TOML file: [plan] name = ...; [[targets]] id, indicator, tier, min, clause...")],
    scenario_id: Annotated[str | None, Form(max_length=64)] = None,
    min_catchment: Annotated[float | None, Form(ge=0, allow_inf_nan=False)] = None,
) -> dict:
    limit = service.max_upload_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"The targets file is larger than {limit:,} bytes; a targets file is a few kB of TOML.")
    target_set, fingerprint = service.parse(file.filename or "targets.toml", content)
    out = await run_in_threadpool(
        lambda: service.review(key, target_set, fingerprint=f"file:{fingerprint}", who=who, scenario_id=scenario_id, min_catchment=min_catchment)
    )
    return {**out, "preset": None}
