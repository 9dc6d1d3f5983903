"""Background jobs: recommendations and scenario runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "failed"]
JobKind = Literal["recommendation", "scenario_run"]


class JobError(BaseModel):
    type: str = Field(description="interrupted (its worker stopped twice mid-job), time_budget, infeasible, input_error, internal...")
    message: str = Field(description="What happened and what to do.")
    best_achievable: dict[str, Any] | None = None


class JobOut(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    region: str | None
    scenario_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int = Field(0, description="How many times a worker took the job (a job whose worker died is retried once).")
    params: dict[str, Any]
    result: dict[str, Any] | None = Field(None, description="The job's result once it has succeeded.")
    error: JobError | None = Field(None, description="Why it failed.")
    links: dict[str, str]


class JobList(BaseModel):
    jobs: list[JobOut]
