"""Scenarios: create, update, delete, run (as a job), their results, and comparisons.

A scenario is a stored spec (:mod:`api.services.scenarios`); running it, its
end state and the comparison of several are :mod:`geoplan.scenario`'s.
"""

from __future__ import annotations

import dataclasses

from geoplan import scenario as gs
from geoplan.errors import InputError
from geoplan.optimize import PlanRequest, planning_sites
from geoplan.region import Region

from api.auth import Principal
from api.errors import Conflict, NotFound
from api.services import scenarios as sc
from api.services.jobs import JobRunner
from api.services.memo import Memo
from api.services.plans import Planner, check_reach_pairs, plan_request
from api.services.regions import RegionService
from api.store import JobRecord, ScenarioRecord, StaleScenario, Store


class ScenarioService:
    """The scenarios in the store, checked against the shared regions; runs go to the job runner."""

    def __init__(self, store: Store, regions: RegionService, jobs: JobRunner, planner: Planner, *, runs_cache_size: int = 16):
        self.store = store
        self.regions = regions
        self.jobs = jobs
        self.planner = planner
        self._end_states: Memo[gs.ScenarioResult] = Memo(maxsize=runs_cache_size)

    def register_jobs(self) -> None:
        self.jobs.register("scenario_run", self._run_job)

    # lookups -----------------------------------------------------------------------------
    def get(self, scenario_id: str, who: Principal) -> ScenarioRecord:
        """The scenario, or 404 (also when it is another team's: it is not theirs to know of)."""
        record = self.store.get_scenario(scenario_id)
        if record is None or not who.sees(record.team):
            raise NotFound(f"No scenario {scenario_id!r}. List them with GET /scenarios.")
        return record

    def get_in(self, key: str, scenario_id: str, who: Principal) -> ScenarioRecord:
        """The scenario, or 404; an InputError when it belongs to another region."""
        record = self.get(scenario_id, who)
        if record.region != key:
            raise InputError(f"Scenario {scenario_id!r} is in {record.region}, not {key}: use /regions/{record.region}/...")
        return record

    def result_of(self, record: ScenarioRecord) -> dict | None:
        return self.store.get_result(record.id, record.spec_hash)

    # changes -----------------------------------------------------------------------------
    def create(self, *, region: str, name: str, description: str, coord_system: str, added: list[dict],
               closed: list[str], recommend: dict | None, who: Principal) -> ScenarioRecord:
        key = self.regions.require(region)
        base = self.regions.get(key)
        spec = sc.empty_spec(key, name, description)
        spec["added"] = sc.added_records(base, added, coord_system=coord_system, taken=set(map(str, base.facilities.index)))
        spec["closed"] = list(dict.fromkeys(closed))
        spec["recommend"] = recommend
        self.validate(base, spec)
        return self.store.create_scenario(region=key, name=name, spec=spec, spec_hash=sc.spec_hash(spec), team=who.team)

    def update(self, record: ScenarioRecord, changes: dict) -> ScenarioRecord:
        base = self.regions.get(record.region)
        spec = dict(record.spec)
        for field in ("name", "description"):
            if changes.get(field) is not None:
                spec[field] = changes[field]
        if "recommend" in changes:
            spec["recommend"] = changes["recommend"]
        if changes.get("closed") is not None:
            spec["closed"] = list(dict.fromkeys(changes["closed"]))
        if changes.get("added") is not None:
            taken = set(map(str, sc.base_facilities(base, spec).index))
            spec["added"] = sc.added_records(base, changes["added"], coord_system=changes.get("coord_system", "wgs84"), taken=taken)
        self.validate(base, spec)
        return self.save(record, spec)

    def delete(self, record: ScenarioRecord) -> None:
        self.store.delete_scenario(record.id)

    def save(self, record: ScenarioRecord, spec: dict) -> ScenarioRecord:
        """Store a changed spec; 409 when another request changed the scenario meanwhile."""
        try:
            saved = self.store.update_scenario(record.id, name=spec["name"], spec=spec, spec_hash=sc.spec_hash(spec), expected=record)
        except StaleScenario:
            raise Conflict(
                f"Scenario {record.id!r} was changed by another request meanwhile; GET /scenarios/{record.id} and apply the change again."
            ) from None
        if saved is None:
            raise NotFound(f"Scenario {record.id!r} was deleted meanwhile.")
        return saved

    def validate(self, base: Region, spec: dict) -> None:
        """Every edit applies (closures exist, ids are free) and the optimiser settings pass the library's pre-solve checks."""
        edited = sc.check(base, spec)
        if spec.get("recommend") is None:
            sites = planning_sites(edited).sites  # facility and candidate ids apart
            check_reach_pairs(edited, len(sites), self.planner.limits)
            return
        self.planner.check(edited, plan_request(edited, spec["recommend"]), sites_key=sc.sites_key(spec))

    # runs --------------------------------------------------------------------------------
    def run(self, record: ScenarioRecord, who: Principal) -> JobRecord:
        self.validate(self.regions.get(record.region), record.spec)
        params = {"region": record.region, "scenario_id": record.id, "spec_hash": record.spec_hash, "spec": record.spec}
        return self.jobs.submit("scenario_run", params, scenario_id=record.id, by=who.submitter)

    def _run_job(self, job: JobRecord) -> dict:
        params = job.params
        spec = params["spec"]
        base = self.regions.get(params["region"])
        request: PlanRequest | None = None
        reach = None
        if spec.get("recommend") is not None:
            edited = sc.check(base, spec)
            request = plan_request(edited, spec["recommend"])
            reach = self.planner.reach(edited, request, sites_key=sc.sites_key(spec))
        return self._evaluate(base, params["scenario_id"], spec, params["spec_hash"], request=request, reach=reach, job_id=job.id)

    def _evaluate(self, base: Region, scenario_id: str, spec: dict, spec_hash: str, *, request: PlanRequest | None = None,
                  reach=None, job_id: str | None = None) -> dict:
        """Run the scenario (:func:`geoplan.scenario.run`), store its result, and keep the run for comparisons.

        A run compares as its end state does (same coverage, sites, openings,
        closures and cost), so it is kept without its plan for :meth:`compare`.
        """
        run = gs.run(base, sc.to_scenario(base, spec, recommend=request), with_circles=False, reach=reach)
        result = sc.result_json(run, scenario_id=scenario_id, spec=spec, spec_hash_=spec_hash)
        self.store.put_result(scenario_id, spec_hash, result, job_id=job_id)
        self._end_states.put((spec["region"], spec_hash), dataclasses.replace(run, plan=None))
        return result

    def end_state_report(self, record: ScenarioRecord, *, with_circles: bool):
        """The coverage report of the scenario's end state (its plan folded in: 409 until it has run)."""
        result = self.result_of(record) if record.spec.get("recommend") is not None else None
        return sc.end_state_report(self.regions.get(record.region), record.spec, result, with_circles=with_circles)

    def _end_state_run(self, base: Region, record: ScenarioRecord) -> gs.ScenarioResult:
        """The scenario's end state run by :func:`geoplan.scenario.run` (run and stored first when it needs no solve)."""
        key = (record.region, record.spec_hash)
        result = self.result_of(record)
        if result is None:
            if record.spec.get("recommend") is not None:
                raise Conflict(
                    f"Scenario {record.id!r} ({record.name}) has optimiser settings and has not been run for its current "
                    f"content: POST /scenarios/{record.id}/run, wait for the job, then compare."
                )
            self._evaluate(base, record.id, record.spec, record.spec_hash)
        return self._end_states.get(key, lambda: gs.run(base, sc.end_state(base, record.spec, result)[0], with_circles=False))

    # answers -----------------------------------------------------------------------------
    def out(self, record: ScenarioRecord) -> dict:
        spec = record.spec
        base = self.regions.get(record.region) if record.region in self.regions.names() else None
        existing = len(spec["facilities"]) if spec.get("facilities") is not None else (len(base.facilities) if base is not None else None)
        candidates = len(spec["candidates"]) if spec.get("candidates") is not None else (len(base.candidates) if base is not None else None)
        runs = self.store.list_jobs(kind="scenario_run", scenario_id=record.id, limit=1)
        last = {"job_id": runs[0].id, "status": runs[0].status, "finished_at": runs[0].finished_at} if runs else None
        result = self.result_of(record)
        return {
            "id": record.id,
            "region": record.region,
            "name": record.name,
            "description": spec.get("description", ""),
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "facilities_source": "region" if spec.get("facilities") is None else "upload",
            "candidates_source": "region" if spec.get("candidates") is None else "upload",
            "existing": existing,
            "candidates": candidates,
            "added": spec.get("added") or [],
            "closed": spec.get("closed") or [],
            "recommend": spec.get("recommend"),
            "spec_hash": record.spec_hash,
            "version": sc.etag(record),
            "last_run": last,
            "result": None if result is None else {k: v for k, v in result.items() if k != "plan_sites"},
            "links": {
                "self": f"/scenarios/{record.id}",
                "run": f"/scenarios/{record.id}/run",
                "facilities": f"/scenarios/{record.id}/facilities",
                "map": f"/scenarios/{record.id}/map",
                "coverage": f"/regions/{record.region}/coverage?scenario_id={record.id}",
                "gaps": f"/regions/{record.region}/coverage/gaps?scenario_id={record.id}",
            },
        }

    def compare(self, ids: list[str], who: Principal, *, threshold_min: float | None) -> dict:
        """Scenarios side by side at one threshold (:func:`geoplan.scenario.compare` of their end states)."""
        records = [self.get(scenario_id, who) for scenario_id in dict.fromkeys(ids)]
        if len(records) < 2:
            raise InputError("Compare needs at least two different scenario ids: /scenarios/compare?ids=A&ids=B.")
        regions = {r.region for r in records}
        if len(regions) > 1:
            raise InputError(f"Scenarios of different regions ({', '.join(sorted(regions))}) cannot be compared; pick scenarios of one region.")
        region_key = records[0].region
        base = self.regions.get(region_key)
        thresholds = [float(t) for t in base.thresholds_min]
        threshold = float(threshold_min if threshold_min is not None else max(thresholds))
        if threshold not in thresholds:
            raise InputError(f"threshold_min must be one of {thresholds} for {region_key}; got {threshold:g}.")
        runs = [self._end_state_run(base, record) for record in records]
        table = gs.compare(runs, threshold_min=threshold)
        groups = [c.removeprefix("change_") for c in table.columns if c.startswith("change_")]
        items = [
            {
                "scenario_id": record.id,
                "name": record.name,
                "sites": row["sites"],
                "added": list(run.added),
                "closed": list(run.closed),
                "added_cost": row["added_cost"],
                "covered": {g: row[f"covered_{g}"] for g in groups},
                "covered_pct": {g: row[f"covered_pct_{g}"] for g in groups},
                "change": {g: round(row[f"change_{g}"], 4) for g in groups},
            }
            for record, run, row in zip(records, runs, table.to_dict(orient="records"))
        ]
        return sc.jsonable({"region": region_key, "threshold_min": threshold, "scenarios": items})
