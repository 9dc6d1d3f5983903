"""Scenarios: create, list, get, update, delete, run (as a job) and compare.

A scenario's answers carry its version in ``ETag``; a change sent with ``If-Match``
applies only to that version (412 otherwise), so that two planners editing one
scenario do not overwrite each other's edits unseen.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED, PrincipalDep
from api.deps import ScenarioDep, ScenariosDep, StoreDep
from api.schemas.common import ERROR_RESPONSES, ErrorOut
from api.schemas.jobs import JobOut
from api.schemas.scenarios import CompareOut, ScenarioCreate, ScenarioList, ScenarioOut, ScenarioUpdate
from api.services import scenarios as sc
from api.services.jobs import job_out

router = APIRouter(prefix="/scenarios", tags=["scenarios"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)

ETAG = {"ETag": {"description": "The scenario's version: send it back in If-Match to change only this version.", "schema": {"type": "string"}}}
VERSIONED = {200: {"headers": ETAG}}
IfMatch = Annotated[str | None, Header(
    alias="If-Match", max_length=1000,
    description="The ETag of the scenario as you read it (or *): the change applies only if nobody changed the scenario since, else 412.",
)]
PATCH_DESCRIPTION = (
    "Fields left out stay as they are; `added` and `closed` replace the whole lists.\n\n"
    "**Concurrent edits:** GET /scenarios/{id} answers with the scenario's version in the `ETag` header. Send it back in "
    "`If-Match` and the change applies only if the scenario is still that version: otherwise **412 Precondition Failed**, "
    "and you GET the scenario again, make the change to what it holds now and send the new ETag. The answer carries the "
    "new `ETag`. Without If-Match the change applies to whatever the scenario holds then. Either way, a change that "
    "lands while this one is being applied makes it 409: GET the scenario and redo the change."
)


@router.post("", response_model=ScenarioOut, status_code=status.HTTP_201_CREATED, summary="Create a scenario",
             responses={201: {"headers": ETAG}})
async def create_scenario(body: ScenarioCreate, scenarios: ScenariosDep, who: PrincipalDep, response: Response) -> dict:
    def create() -> dict:
        record = scenarios.create(
            region=body.region, name=body.name, description=body.description, coord_system=body.coord_system,
            added=[s.model_dump() for s in body.added], closed=list(body.closed),
            recommend=body.recommend.model_dump() if body.recommend is not None else None, who=who,
        )
        response.headers["ETag"] = sc.etag(record)
        return scenarios.out(record)

    out = await run_in_threadpool(create)
    response.headers["Location"] = f"/scenarios/{out['id']}"
    return out


@router.get("", response_model=ScenarioList, summary="List scenarios")
async def list_scenarios(store: StoreDep, scenarios: ScenariosDep, who: PrincipalDep,
                         region: Annotated[str | None, Query(max_length=64, description="Only this region's.")] = None) -> dict:
    """The scenarios of the key's team."""
    return await run_in_threadpool(lambda: {"scenarios": [
        scenarios.out(r) for r in store.list_scenarios(region=region, team=who.team, all_teams=who.all_teams)
    ]})


@router.get("/compare", response_model=CompareOut, summary="Compare two or more scenarios of one region")
async def compare_scenarios(
    scenarios: ScenariosDep,
    who: PrincipalDep,
    ids: Annotated[list[str], Query(min_length=2, max_length=20, description="Scenario ids: ?ids=A&ids=B (the first is the reference).")],
    threshold_min: Annotated[float | None, Query(gt=0, le=120, allow_inf_nan=False, description="Walking minutes (default: the largest).")] = None,
) -> dict:
    return await run_in_threadpool(lambda: scenarios.compare(ids, who, threshold_min=threshold_min))


@router.get("/{scenario_id}", response_model=ScenarioOut, summary="A scenario, with its result once run", responses=VERSIONED,
            description="The `ETag` header holds the scenario's version, for `If-Match` on PATCH /scenarios/{id}.")
async def get_scenario(record: ScenarioDep, scenarios: ScenariosDep, response: Response) -> dict:
    response.headers["ETag"] = sc.etag(record)
    return await run_in_threadpool(scenarios.out, record)


@router.patch("/{scenario_id}", response_model=ScenarioOut, summary="Change a scenario's name, edits or optimiser settings",
              description=PATCH_DESCRIPTION, responses={**VERSIONED, 412: {
                  "model": ErrorOut, "description": "If-Match names a version the scenario no longer has: GET it again and redo the change."}})
async def update_scenario(record: ScenarioDep, body: ScenarioUpdate, scenarios: ScenariosDep, response: Response,
                          if_match: IfMatch = None) -> dict:
    sc.check_if_match(record, if_match)
    changes = body.model_dump(exclude_unset=True)
    if "recommend" in changes and body.recommend is not None:
        changes["recommend"] = body.recommend.model_dump()
    changes.setdefault("coord_system", body.coord_system)

    def update() -> dict:
        saved = scenarios.update(record, changes)
        response.headers["ETag"] = sc.etag(saved)
        return scenarios.out(saved)

    return await run_in_threadpool(update)


@router.delete("/{scenario_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, summary="Delete a scenario")
async def delete_scenario(record: ScenarioDep, scenarios: ScenariosDep) -> Response:
    await run_in_threadpool(scenarios.delete, record)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{scenario_id}/run", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Run a scenario in the background (coverage before/after, and the optimiser if it has settings)")
async def run_scenario(record: ScenarioDep, scenarios: ScenariosDep, who: PrincipalDep, response: Response) -> dict:
    job = await run_in_threadpool(scenarios.run, record, who)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_out(job)
