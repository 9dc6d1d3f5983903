"""Recommendations: any optimiser model, solved as a background job (poll the job by id)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED, PrincipalDep
from api.deps import RecommendationsDep, StoreDep
from api.errors import NotFound
from api.schemas.common import ERROR_RESPONSES
from api.schemas.jobs import JobList, JobOut
from api.schemas.recommendations import RecommendationCreate
from api.services.jobs import job_out

router = APIRouter(prefix="/recommendations", tags=["recommendations"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED,
             summary="Start a recommendation (202 with a job id; bad options and unreachable targets answer 422 at once)")
async def create_recommendation(body: RecommendationCreate, recommendations: RecommendationsDep, who: PrincipalDep,
                                response: Response) -> dict:
    params = body.model_dump(exclude={"region", "scenario_id"})
    job = await run_in_threadpool(lambda: recommendations.submit(region=body.region, scenario_id=body.scenario_id, params=params, who=who))
    response.headers["Location"] = f"/recommendations/{job.id}"
    return job_out(job)


@router.get("", response_model=JobList, summary="Recent recommendations")
async def list_recommendations(
    store: StoreDep,
    who: PrincipalDep,
    status_: Annotated[Literal["queued", "running", "succeeded", "failed"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    jobs = await run_in_threadpool(lambda: store.list_jobs(kind="recommendation", status=status_, limit=limit, team=who.team, all_teams=who.all_teams))
    return {"jobs": [{**job_out(j), "result": None} for j in jobs]}


@router.get("/{job_id}", response_model=JobOut, summary="A recommendation's status, and its plan once it has succeeded")
async def get_recommendation(job_id: Annotated[str, Path(max_length=64)], store: StoreDep, who: PrincipalDep) -> dict:
    job = await run_in_threadpool(store.get_job, job_id)
    if job is None or job.kind != "recommendation" or not who.sees(job.team):
        raise NotFound(f"No recommendation {job_id!r}. Start one with POST /recommendations.")
    return job_out(job)
