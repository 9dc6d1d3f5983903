"""Jobs: every background job (recommendations and scenario runs) by id."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED, PrincipalDep
from api.deps import StoreDep
from api.errors import NotFound
from api.schemas.common import ERROR_RESPONSES
from api.schemas.jobs import JobList, JobOut
from api.services.jobs import job_out

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)


@router.get("", response_model=JobList, summary="Recent jobs (without their results)")
async def list_jobs(
    store: StoreDep,
    who: PrincipalDep,
    kind: Annotated[Literal["recommendation", "scenario_run"] | None, Query()] = None,
    status: Annotated[Literal["queued", "running", "succeeded", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    jobs = await run_in_threadpool(lambda: store.list_jobs(kind=kind, status=status, limit=limit, team=who.team, all_teams=who.all_teams))
    return {"jobs": [{**job_out(j), "result": None} for j in jobs]}


@router.get("/{job_id}", response_model=JobOut, summary="A job's status, result or failure reason")
async def get_job(job_id: Annotated[str, Path(max_length=64)], store: StoreDep, who: PrincipalDep) -> dict:
    job = await run_in_threadpool(store.get_job, job_id)
    if job is None or not who.sees(job.team):
        raise NotFound(f"No job {job_id!r}. List them with GET /jobs.")
    return job_out(job)
