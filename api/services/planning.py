"""The service's workflows: scenarios, uploads, runs, comparisons, recommendations, maps and job handlers.

Routes call these methods and shape nothing but the HTTP answer; everything
geographic is done by the library (:mod:`geoplan.scenario`,
:mod:`geoplan.optimize`, :mod:`geoplan.maps`) on the shared regions.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geoplan.coords import normalize_coord_system
from geoplan.errors import InputError
from geoplan.region import Region
from geoplan.sites import load_facilities

from api.errors import Conflict, NotFound, PayloadTooLarge
from api.services import scenarios as sc
from api.services.coverage import CoverageIndex
from api.services.jobs import JobRunner
from api.services.memo import Memo
from api.services.regions import RegionService, point_site, sites_collection
from api.store import JobRecord, ScenarioRecord, StaleScenario, Store

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".csv", ".txt", ".geojson", ".json", ".gpkg")


class Planning:
    """Scenarios, recommendations and maps over the shared regions, store and job runner."""

    def __init__(self, store: Store, regions: RegionService, jobs: JobRunner, *, max_upload_bytes: int = 5_000_000):
        self.store = store
        self.regions = regions
        self.jobs = jobs
        self.max_upload_bytes = max_upload_bytes
        self._reach: Memo = Memo(maxsize=8)

    def register_jobs(self) -> None:
        self.jobs.register("scenario_run", self._scenario_job)
        self.jobs.register("recommendation", self._recommendation_job)

    # scenarios ---------------------------------------------------------------------------
    def create_scenario(self, *, region: str, name: str, description: str, coord_system: str, added: list[dict],
                        closed: list[str], recommend: dict | None) -> ScenarioRecord:
        key = self.regions.require(region)
        base = self.regions.get(key)
        spec = sc.empty_spec(key, name, description)
        spec["added"] = sc.added_records(base, added, coord_system=coord_system, taken=set(map(str, base.facilities.index)))
        spec["closed"] = list(dict.fromkeys(closed))
        spec["recommend"] = recommend
        self._validate(base, spec)
        return self.store.create_scenario(region=key, name=name, spec=spec, spec_hash=sc.spec_hash(spec))

    def update_scenario(self, record: ScenarioRecord, changes: dict) -> ScenarioRecord:
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
        self._validate(base, spec)
        return self._save(record, spec)

    def delete_scenario(self, record: ScenarioRecord) -> None:
        self.store.delete_scenario(record.id)

    def upload_facilities(self, record: ScenarioRecord, *, filename: str, content: bytes, coord_system: str, status: str,
                          kind: str, mode: str, outside: str) -> tuple[ScenarioRecord, dict]:
        """Read a user's facility (or candidate) list into the scenario: replace or extend its list."""
        if len(content) > self.max_upload_bytes:
            raise PayloadTooLarge(f"The upload is {len(content):,} bytes; the limit is {self.max_upload_bytes:,}. Split the list or raise GEOPLAN_MAX_UPLOAD_BYTES.")
        if not content.strip():
            raise InputError(f"The uploaded file {filename!r} is empty. Upload a CSV with lon/lat columns or a GeoJSON of points.")
        system = normalize_coord_system(coord_system)
        base = self.regions.get(record.region)
        sites = read_upload(base, filename=filename, content=content, coord_system=system, status=status, kind=kind, outside=outside)
        spec = dict(record.spec)
        field = "facilities" if status == "existing" else "candidates"
        new_records = sc.records(sites)
        if mode == "append":
            current = spec.get(field)
            if current is None:
                current = sc.records(base.facilities if status == "existing" else base.candidates)
            clash = sorted({r["site_id"] for r in current} & {r["site_id"] for r in new_records})
            if clash:
                raise InputError(f"Site ids {clash[:10]} are already in the scenario's {field}; give the new sites ids of their own or use mode=replace.")
            new_records = current + new_records
        spec[field] = new_records
        self._validate(base, spec)
        saved = self._save(record, spec)
        info = {"count": len(sites), "total": len(new_records), "site_ids": [str(i) for i in sites.index[:100]], "coord_system": system}
        return saved, info

    def _save(self, record: ScenarioRecord, spec: dict) -> ScenarioRecord:
        try:
            saved = self.store.update_scenario(record.id, name=spec["name"], spec=spec, spec_hash=sc.spec_hash(spec), expected=record)
        except StaleScenario:
            raise Conflict(
                f"Scenario {record.id!r} was changed by another request meanwhile; GET /scenarios/{record.id} and apply the change again."
            ) from None
        if saved is None:
            raise NotFound(f"Scenario {record.id!r} was deleted meanwhile.")
        return saved

    def _validate(self, base: Region, spec: dict) -> None:
        """Every edit applies (closures exist, ids are free) and the optimiser settings are solvable in principle."""
        edited = sc.check(base, spec)
        clash = edited.candidates.index.intersection(edited.facilities.index)
        if len(clash):
            raise InputError(f"Site ids {sorted(map(str, clash))[:10]} are both facilities and candidates; give candidates ids of their own.")
        if spec.get("recommend") is not None:
            sc.precheck(edited, self._recommend_kwargs(edited, spec["recommend"], sites_key=self._sites_key(spec)))

    @staticmethod
    def _sites_key(spec: dict | None) -> str:
        if spec is None:
            return "base"
        return sc.spec_hash({**spec, "recommend": None})

    def _recommend_kwargs(self, region: Region, params: dict, *, sites_key: str) -> dict:
        kwargs = sc.recommend_kwargs(region, params)
        cutoff = max([float(max(region.thresholds_min)), *(s.threshold_min for s in kwargs["kinds"])])
        if kwargs["model"] == "pmedian":
            # as geoplan.optimize.recommend does by default (pmedian_cutoff_min): walks up to twice the
            # threshold, a person with no site that near counting that long; a shorter reach matrix would
            # silently make the p-median's penalty the threshold itself
            cutoff *= 2
        kwargs["reach"] = self._reach.get((region.key, sites_key, cutoff), lambda: sc.planning_reach(region, cutoff_min=cutoff))
        return kwargs

    def result_of(self, record: ScenarioRecord) -> dict | None:
        return self.store.get_result(record.id, record.spec_hash)

    def run_scenario(self, record: ScenarioRecord) -> JobRecord:
        base = self.regions.get(record.region)
        self._validate(base, record.spec)
        params = {"region": record.region, "scenario_id": record.id, "spec_hash": record.spec_hash, "spec": record.spec}
        return self.jobs.submit("scenario_run", params, scenario_id=record.id)

    def _scenario_job(self, job: JobRecord) -> dict:
        params = job.params
        spec = params["spec"]
        base = self.regions.get(params["region"])
        reach = None
        if spec.get("recommend") is not None:
            edited = sc.check(base, spec)
            reach = self._recommend_kwargs(edited, spec["recommend"], sites_key=self._sites_key(spec))["reach"]
        result = sc.evaluate(base, spec, scenario_id=params["scenario_id"], reach=reach)
        self.store.put_result(params["scenario_id"], params["spec_hash"], result, job_id=job.id)
        return result

    def scenario_out(self, record: ScenarioRecord) -> dict:
        spec = record.spec
        base = self.regions.get(record.region) if record.region in self.regions.names() else None
        existing = len(spec["facilities"]) if spec.get("facilities") is not None else (len(base.facilities) if base is not None else None)
        candidates = len(spec["candidates"]) if spec.get("candidates") is not None else (len(base.candidates) if base is not None else None)
        runs = self.store.list_jobs(kind="scenario_run", scenario_id=record.id, limit=1)
        last = {"job_id": runs[0].id, "status": runs[0].status, "finished_at": runs[0].finished_at} if runs else None
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
            "last_run": last,
            "result": self._public_result(self.result_of(record)),
            "links": {
                "self": f"/scenarios/{record.id}",
                "run": f"/scenarios/{record.id}/run",
                "facilities": f"/scenarios/{record.id}/facilities",
                "map": f"/scenarios/{record.id}/map",
                "coverage": f"/regions/{record.region}/coverage?scenario_id={record.id}",
                "gaps": f"/regions/{record.region}/coverage/gaps?scenario_id={record.id}",
            },
        }

    @staticmethod
    def _public_result(result: dict | None) -> dict | None:
        if result is None:
            return None
        return {k: v for k, v in result.items() if k != "plan_sites"}

    def compare(self, ids: list[str], *, threshold_min: float | None) -> dict:
        """Scenarios side by side at one threshold: sites, cost, covered people per group and the change from the first."""
        records = []
        for scenario_id in dict.fromkeys(ids):
            record = self.store.get_scenario(scenario_id)
            if record is None:
                raise NotFound(f"No scenario {scenario_id!r}. List them with GET /scenarios.")
            records.append(record)
        if len(records) < 2:
            raise InputError("Compare needs at least two different scenario ids: /scenarios/compare?ids=A&ids=B.")
        regions = {r.region for r in records}
        if len(regions) > 1:
            raise InputError(f"Scenarios of different regions ({', '.join(sorted(regions))}) cannot be compared; pick scenarios of one region.")
        region_key = records[0].region
        base = self.regions.get(region_key)
        threshold = float(threshold_min if threshold_min is not None else max(base.thresholds_min))
        if threshold not in [float(t) for t in base.thresholds_min]:
            raise InputError(f"threshold_min must be one of {[float(t) for t in base.thresholds_min]} for {region_key}; got {threshold:g}.")
        items = []
        for record in records:
            result = self.result_of(record)
            if result is None:
                if record.spec.get("recommend") is not None:
                    raise Conflict(
                        f"Scenario {record.id!r} ({record.name}) has optimiser settings and has not been run for its current "
                        f"content: POST /scenarios/{record.id}/run, wait for the job, then compare."
                    )
                result = sc.evaluate(base, record.spec, scenario_id=record.id)
                self.store.put_result(record.id, record.spec_hash, result, job_id=None)
            rows = [r for r in result["coverage"] if float(r["threshold_min"]) == threshold]
            items.append({
                "scenario_id": record.id,
                "name": record.name,
                "sites": result["sites"]["total"],
                "added": result["sites"]["added"],
                "closed": result["sites"]["closed"],
                "added_cost": result["sites"]["added_cost"],
                "covered": {r["group"]: r["covered_after"] for r in rows},
                "covered_pct": {r["group"]: r["covered_pct_after"] for r in rows},
            })
        first = items[0]["covered"]
        for item in items:
            item["change"] = {g: round(item["covered"][g] - first.get(g, 0.0), 4) for g in item["covered"]}
        return {"region": region_key, "threshold_min": threshold, "scenarios": items}

    # coverage ----------------------------------------------------------------------------
    def coverage_index(self, key: str, scenario_id: str | None = None) -> CoverageIndex:
        """The coverage of the region's own facilities, or of a scenario's end state."""
        if scenario_id is None:
            return self.regions.coverage(key)
        record = self._scenario_in(key, scenario_id)
        result = self.result_of(record) if record.spec.get("recommend") is not None else None
        base = self.regions.get(key)
        return self.regions.scenario_coverage(
            key, record.spec_hash, lambda: sc.scenario_report(base, record.spec, result, with_circles=False)
        )

    def _scenario_in(self, key: str, scenario_id: str) -> ScenarioRecord:
        record = self.store.get_scenario(scenario_id)
        if record is None:
            raise NotFound(f"No scenario {scenario_id!r}. List them with GET /scenarios.")
        if record.region != key:
            raise InputError(f"Scenario {scenario_id!r} is in {record.region}, not {key}: use /regions/{record.region}/...")
        return record

    # facilities --------------------------------------------------------------------------
    def region_sites(self, key: str, *, status: str, kind: str | None) -> dict:
        region = self.regions.get(key)
        frames = []
        if status in ("existing", "all"):
            frames.append(region.facilities.assign(status="existing"))
        if status in ("candidate", "all"):
            frames.append(region.candidates.assign(status="candidate"))
        return self._collection(region, frames, kind=kind, extra={"region": key, "scenario_id": None})

    def scenario_sites(self, record: ScenarioRecord, *, status: str, kind: str | None) -> dict:
        base = self.regions.get(record.region)
        spec = record.spec
        edited = sc.check(base, spec)
        starting = sc.base_facilities(base, spec)
        frames = []
        if status in ("existing", "all"):
            facilities = edited.facilities.copy()
            added = {s["site_id"] for s in spec.get("added") or []}
            facilities["change"] = ["added" if str(i) in added else "kept" for i in facilities.index]
            closed = starting[starting.index.astype(str).isin(spec.get("closed") or [])].assign(status="closed", change="closed")
            frames += [facilities.assign(status="existing"), closed]
        if status in ("candidate", "all"):
            frames.append(edited.candidates.assign(status="candidate"))
        return self._collection(base, frames, kind=kind, extra={"region": record.region, "scenario_id": record.id})

    @staticmethod
    def _collection(region: Region, frames: list[gpd.GeoDataFrame], *, kind: str | None, extra: dict) -> dict:
        frames = [f.to_crs(region.crs) for f in frames if len(f)]
        if frames:
            sites = gpd.GeoDataFrame(pd.concat(frames), geometry="geometry", crs=region.crs)
        else:
            sites = gpd.GeoDataFrame({"name": [], "kind": [], "status": []}, geometry=gpd.GeoSeries([], crs=region.crs))
        if kind is not None and len(sites):
            sites = sites[sites["kind"].astype(str) == kind]
        counts = {str(k): int(v) for k, v in sites["status"].astype(str).value_counts().items()} if len(sites) else {}
        return sites_collection(sites, extra={**extra, "counts": counts})

    # care circles ------------------------------------------------------------------------
    def circles_for_site(self, key: str, site_id: str, *, scenario_id: str | None, thresholds_min: tuple[float, ...]) -> dict:
        base = self.regions.get(key)
        region, fingerprint = base, "base"
        if scenario_id is not None:
            record = self._scenario_in(key, scenario_id)
            region, fingerprint = sc.check(base, record.spec), record.spec_hash
        pool = pd.concat([region.facilities, region.candidates.assign(status="candidate")])
        pool = pool[~pool.index.duplicated()]
        if site_id not in pool.index:
            where = f"scenario {scenario_id!r}" if scenario_id else key
            raise NotFound(f"No facility or candidate site {site_id!r} in {where}. List them with GET /regions/{key}/facilities.")
        site = gpd.GeoDataFrame(pool.loc[[site_id]], geometry="geometry", crs=region.crs)
        return self.regions.circles(region, site, thresholds_min=thresholds_min, cache_key=(key, fingerprint, site_id, thresholds_min))

    def circles_for_point(self, key: str, *, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> dict:
        region = self.regions.get(key)
        site = point_site(region, lon=lon, lat=lat, coord_system=coord_system)
        return self.regions.circles(region, site, thresholds_min=thresholds_min)

    # maps --------------------------------------------------------------------------------
    def region_map(self, key: str, *, basemap: str) -> bytes:
        from geoplan.maps import BASEMAPS

        _check_basemap(basemap, BASEMAPS)
        return self.regions.map_html(("region", key, basemap), lambda: _render(self.regions.report_with_circles(key), basemap))

    def scenario_map(self, record: ScenarioRecord, *, basemap: str) -> bytes:
        from geoplan.maps import BASEMAPS

        _check_basemap(basemap, BASEMAPS)
        base = self.regions.get(record.region)
        result = self.result_of(record) if record.spec.get("recommend") is not None else None
        return self.regions.map_html(
            ("scenario", record.id, record.spec_hash, basemap),
            lambda: _render(sc.scenario_report(base, record.spec, result, with_circles=True), basemap),
        )

    # recommendations ---------------------------------------------------------------------
    def submit_recommendation(self, *, region: str, scenario_id: str | None, params: dict) -> JobRecord:
        key = self.regions.require(region)
        base = self.regions.get(key)
        spec = None
        if scenario_id is not None:
            spec = self._scenario_in(key, scenario_id).spec
        edited = sc.check(base, spec) if spec is not None else base
        sc.precheck(edited, self._recommend_kwargs(edited, params, sites_key=self._sites_key(spec)))
        job_params = {"region": key, "scenario_id": scenario_id, "request": params, "spec": spec}
        return self.jobs.submit("recommendation", job_params, scenario_id=scenario_id)

    def _recommendation_job(self, job: JobRecord) -> dict:
        from geoplan.optimize import recommend

        params = job.params
        base = self.regions.get(params["region"])
        spec = params.get("spec")
        region = sc.check(base, spec) if spec is not None else base
        kwargs = self._recommend_kwargs(region, params["request"], sites_key=self._sites_key(spec))
        plan = recommend(region, **kwargs)
        return {"region": params["region"], "scenario_id": params.get("scenario_id"), "plan": sc.plan_json(plan)}

    def job_out(self, job: JobRecord) -> dict:
        prefix = "/recommendations" if job.kind == "recommendation" else "/jobs"
        links = {"self": f"{prefix}/{job.id}", "job": f"/jobs/{job.id}"}
        if job.scenario_id:
            links["scenario"] = f"/scenarios/{job.scenario_id}"
        return {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "region": job.params.get("region"),
            "scenario_id": job.scenario_id,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "params": {k: v for k, v in job.params.items() if k != "spec"},
            "result": job.result,
            "error": job.error,
            "links": links,
        }


def read_upload(region: Region, *, filename: str, content: bytes, coord_system: str, status: str, kind: str, outside: str) -> gpd.GeoDataFrame:
    """A user's uploaded facility file read by :func:`geoplan.sites.load_facilities`, its messages naming the upload."""
    name = Path(filename or "upload").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InputError(
            f"Cannot read {name!r}: upload a .csv (with lon/lat or 经度/纬度 columns), a .geojson of points, or a .gpkg; "
            f"the file name must end in one of {', '.join(UPLOAD_SUFFIXES)}."
        )
    if suffix in (".geojson", ".json"):
        _check_json(name, content)
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)[-100:] or f"upload{suffix}"
    with tempfile.TemporaryDirectory(prefix="geoplan-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(content)
        try:
            return load_facilities(path, crs=region.crs, boundary=region.boundary, coord_system=coord_system, kind=kind,
                                   status=status, outside=outside)
        except InputError as exc:
            message = str(exc).replace(str(path), name).replace(str(tmp) + "/", "")
            raise type(exc)(message) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"Cannot read {name!r} as a facility list: {exc}") from None


def _check_json(name: str, content: bytes) -> None:
    """A clear message for an upload that is not GeoJSON at all (GDAL's own is about drivers)."""
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"{name!r} is not UTF-8 text; save the GeoJSON as UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{name!r} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); upload a GeoJSON FeatureCollection of points.") from None
    if not isinstance(data, dict) or data.get("type") not in ("FeatureCollection", "Feature"):
        raise InputError(f"{name!r} is JSON but not a GeoJSON FeatureCollection; upload {{\"type\": \"FeatureCollection\", \"features\": [...]}} with Point geometries.")
    if data.get("type") == "FeatureCollection" and not data.get("features"):
        raise InputError(f"{name!r} has no features; add the facilities as Point features.")


def _check_basemap(basemap: str, allowed: tuple[str, ...]) -> None:
    if basemap not in allowed:
        raise InputError(f"Unknown basemap {basemap!r}; use one of {', '.join(allowed)} ('none' works offline).")


def _render(report, basemap: str) -> bytes:
    from geoplan.maps import coverage_map, save_map

    with tempfile.TemporaryDirectory(prefix="geoplan-map-") as tmp:
        path = save_map(coverage_map(report, basemap=basemap), Path(tmp) / "map.html")
        return path.read_bytes()
