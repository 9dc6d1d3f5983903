"""Recommendations: an optimiser request for a region (or a scenario's sites), checked at once and solved as a job."""

from __future__ import annotations

from geoplan.optimize import recommend_request

from api.auth import Principal
from api.services import scenarios as sc
from api.services.jobs import JobRunner
from api.services.plans import Planner, plan_request
from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService
from api.store import JobRecord


class RecommendationService:
    """Recommendation jobs: submitted after the library's pre-solve checks, solved by :func:`geoplan.optimize.recommend_request`."""

    def __init__(self, regions: RegionService, jobs: JobRunner, planner: Planner, scenarios: ScenarioService):
        self.regions = regions
        self.jobs = jobs
        self.planner = planner
        self.scenarios = scenarios

    def register_jobs(self) -> None:
        self.jobs.register("recommendation", self._job)

    def submit(self, *, region: str, scenario_id: str | None, params: dict, who: Principal) -> JobRecord:
        """Queue a recommendation; bad options and unreachable targets raise here (422), before any job."""
        key = self.regions.require(region)
        base = self.regions.get(key)
        spec = self.scenarios.get_in(key, scenario_id, who).spec if scenario_id is not None else None
        edited = sc.check(base, spec) if spec is not None else base
        self.planner.check(edited, plan_request(edited, params), sites_key=sc.sites_key(spec))
        job_params = {"region": key, "scenario_id": scenario_id, "request": params, "spec": spec}
        return self.jobs.submit("recommendation", job_params, scenario_id=scenario_id, by=who.submitter)

    def _job(self, job: JobRecord) -> dict:
        params = job.params
        base = self.regions.get(params["region"])
        spec = params.get("spec")
        region = sc.check(base, spec) if spec is not None else base
        request = plan_request(region, params["request"])
        plan = recommend_request(region, request, reach=self.planner.reach(region, request, sites_key=sc.sites_key(spec)))
        return {"region": params["region"], "scenario_id": params.get("scenario_id"), "plan": sc.plan_json(plan)}
