"""Scenarios as stored specs, and the bridge to :mod:`geoplan.scenario` and :mod:`geoplan.optimize`.

A stored spec is plain JSON: the region, the facility and candidate lists a
user uploaded (or None: the region's), the sites added (WGS84), the ids
closed and the optimiser settings (the request's JSON, read into a
``PlanRequest`` at use: :mod:`api.services.plans`). Coordinates are converted
to WGS84 and checked against the region when they come in, so a stored spec
always applies. A scenario's version is an HTTP entity tag (:func:`etag`), so that
a client may change it only if nobody else did since it read it (:func:`check_if_match`).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan import scenario as gs
from geoplan.errors import InputError
from geoplan.optimize import PlanRequest
from geoplan.region import Region
from geoplan.sites import empty_sites
from geoplan.tiers import ATTRIBUTES

from api.errors import ApiError, Conflict
from api.services.geojson import plain
from api.store import ScenarioRecord

#: Fields of a spec that change what a scenario computes (name and description do not).
CONTENT_KEYS = ("region", "facilities", "candidates", "added", "closed", "recommend")
SITE_FIELDS = ("site_id", "name", "kind", "lon", "lat", "capacity", "cost")


def empty_spec(region: str, name: str, description: str = "") -> dict:
    return {"region": region, "name": name, "description": description, "facilities": None, "candidates": None,
            "added": [], "closed": [], "recommend": None}


def spec_hash(spec: dict) -> str:
    content = {k: spec.get(k) for k in CONTENT_KEYS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """Plain JSON data: numpy unwrapped, NaN and inf as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if value is pd.NA:
        return None
    return str(value)


# versions -----------------------------------------------------------------------------------
class PreconditionFailed(ApiError):
    status_code = 412
    kind = "precondition_failed"


def etag(record: ScenarioRecord) -> str:
    """The scenario's stored version as a strong entity tag: it changes with every change stored, not with runs."""
    version = "\x1f".join((record.id, record.updated_at, record.spec_hash, record.name, str(record.spec.get("description", ""))))
    return '"' + hashlib.sha256(version.encode()).hexdigest()[:20] + '"'


def check_if_match(record: ScenarioRecord, if_match: str | None) -> None:
    """Pass without ``If-Match``, or when it is ``*`` or names the scenario's current :func:`etag`; else 412 saying what to do."""
    if if_match is None:
        return
    current = etag(record).strip('"')
    sent = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if "*" in sent or current in sent:
        return
    raise PreconditionFailed(
        f"Scenario {record.id!r} is no longer the version your If-Match names: it was changed since you read it. "
        f"GET /scenarios/{record.id}, make your change to what it holds now, and send the ETag it answers with (now \"{current}\") in If-Match."
    )


# sites <-> records --------------------------------------------------------------------------
def records(frame: gpd.GeoDataFrame) -> list[dict]:
    """Site records (WGS84, rounded to about 1 cm) of a site frame."""
    if len(frame) == 0:
        return []
    wgs = frame.to_crs(4326)
    out = []
    for site_id, row, point in zip(wgs.index, wgs.itertuples(), wgs.geometry):
        out.append({
            "site_id": str(site_id),
            "name": str(getattr(row, "name", site_id)),
            "kind": str(getattr(row, "kind", "station")),
            "lon": round(float(point.x), 7),
            "lat": round(float(point.y), 7),
            "capacity": plain(getattr(row, "capacity", None)),
            "cost": plain(getattr(row, "cost", None)),
            **{a: plain(getattr(row, a)) for a in ATTRIBUTES if a in frame.columns},  # tier attributes, when the list has them
        })
    return out


def frame(items: list[dict] | None, *, crs, status: str = "existing") -> gpd.GeoDataFrame:
    """A site frame in ``crs`` from stored WGS84 records."""
    if not items:
        return empty_sites(crs)
    table = pd.DataFrame([{k: item.get(k) for k in (*SITE_FIELDS, *ATTRIBUTES) if k in SITE_FIELDS or k in item} for item in items])
    return gs.sites_from_points(table, crs=crs, coord_system="wgs84", status=status)


def added_records(region: Region, sites: list[dict], *, coord_system: str, taken: set[str]) -> list[dict]:
    """Added sites from a request: converted to WGS84, checked to lie in the region, given ids that are free."""
    if not sites:
        return []
    table = pd.DataFrame(sites)
    if "site_id" in table:
        given = table["site_id"].dropna().astype(str)
        clash = sorted(set(given) & taken)
        if clash:
            raise InputError(f"Added site ids {clash[:10]} are already facility ids; give new sites ids of their own or leave site_id out.")
        free = (f"new-{i}" for i in range(1, 10**6) if f"new-{i}" not in taken and f"new-{i}" not in set(given))
        table["site_id"] = [sid if isinstance(sid, str) and sid else next(free) for sid in table["site_id"]]
    else:
        free = (f"new-{i}" for i in range(1, 10**6) if f"new-{i}" not in taken)
        table["site_id"] = [next(free) for _ in range(len(table))]
    table["cost"] = table["cost"].fillna(1.0) if "cost" in table else 1.0
    sites_frame = gs.sites_from_points(table, crs=region.crs, coord_system=coord_system, boundary=region.boundary)
    return records(sites_frame)


# spec -> geoplan ----------------------------------------------------------------------------
def base_facilities(region: Region, spec: dict) -> gpd.GeoDataFrame:
    return region.facilities if spec.get("facilities") is None else frame(spec["facilities"], crs=region.crs)


def to_scenario(region: Region, spec: dict, *, recommend: PlanRequest | None = None) -> gs.Scenario:
    added = spec.get("added") or []
    return gs.Scenario(
        name=spec.get("name", "scenario"),
        added=frame(added, crs=region.crs) if added else None,
        closed=tuple(spec.get("closed") or ()),
        facilities=None if spec.get("facilities") is None else frame(spec["facilities"], crs=region.crs),
        candidates=None if spec.get("candidates") is None else frame(spec["candidates"], crs=region.crs, status="candidate"),
        recommend=recommend,
    )


def sites_key(spec: dict | None) -> str:
    """A fingerprint of the sites a spec plans with (its content without the optimiser settings); "base" for none."""
    return "base" if spec is None else spec_hash({**spec, "recommend": None})


def check(region: Region, spec: dict) -> Region:
    """The edited region, or an InputError saying which closure or id does not fit."""
    return gs.apply(region, to_scenario(region, spec))


# optimiser ----------------------------------------------------------------------------------
def plan_json(plan) -> dict:
    """The parts of a Plan an API client needs: model, solver, the changed sites and coverage before/after."""
    data = plan.to_dict()
    changed = [s for s in data["sites"] if s.get("status") in ("new", "closed")]
    return jsonable({
        "region": data["region"],
        "model": data["model"],
        "status": plan.status,
        "optimal": plan.optimal,
        "objective": plan.objective,
        "parameters": data["parameters"],
        "solver": data["solver"],
        "stages": data["stages"],
        "new_sites": [s for s in changed if s.get("status") == "new"],
        "closed_sites": [s for s in changed if s.get("status") == "closed"],
        "existing_sites": int(sum(1 for s in data["sites"] if s.get("status") == "existing")),
        "coverage": data["coverage"],
    })


# results ------------------------------------------------------------------------------------
def result_json(result: gs.ScenarioResult, *, scenario_id: str, spec: dict, spec_hash_: str) -> dict:
    change = result.change().reset_index()
    coverage = [
        {
            "group": r["group"], "label": r["label"], "threshold_min": float(r["threshold_min"]),
            "population": r["population"], "covered_before": r["covered_before"], "covered_after": r["covered_after"],
            "change": r["change"], "covered_pct_before": r["covered_pct_before"], "covered_pct_after": r["covered_pct_after"],
        }
        for r in change.to_dict(orient="records")
    ]
    plan_sites = None
    if result.plan is not None:
        new = result.plan.new_sites
        new = new[~new.index.duplicated()]
        plan_sites = {
            "new": [
                {"site_id": str(i), "name": str(r["name"]), "kind": str(r["kind"]), "lon": float(r["lon"]), "lat": float(r["lat"]),
                 "capacity": plain(r.get("capacity")), "cost": plain(r.get("cost"))}
                for i, r in new.iterrows()
            ],
            "closed": [str(i) for i in result.plan.closed_sites.index.unique()],
        }
    return jsonable({
        "scenario_id": scenario_id,
        "name": spec.get("name", ""),
        "region": spec["region"],
        "spec_hash": spec_hash_,
        "coverage": coverage,
        "sites": {"total": result.n_sites, "added": list(result.added), "closed": list(result.closed), "added_cost": result.added_cost},
        "plan": plan_json(result.plan) if result.plan is not None else None,
        "plan_sites": plan_sites,
    })


def end_state(region: Region, spec: dict, result: dict | None) -> tuple[gs.Scenario, list[str]]:
    """The scenario's end state as plain edits (:func:`geoplan.scenario.fold_plan` of its stored plan), and the plan's new ids.

    A scenario with optimiser settings needs its stored result for that.
    """
    scenario = to_scenario(region, spec)
    if spec.get("recommend") is None:
        return scenario, []
    if result is None or not result.get("plan_sites"):
        raise Conflict(
            "This scenario has optimiser settings and no result for its current content yet: "
            "POST /scenarios/{id}/run and wait for the job to succeed."
        )
    plan_sites = result["plan_sites"]
    new = frame(plan_sites["new"], crs=region.crs)
    return gs.fold_plan(scenario, new, plan_sites["closed"]), [s["site_id"] for s in plan_sites["new"]]


def end_state_report(region: Region, spec: dict, result: dict | None, *, with_circles: bool):
    """The coverage report of a scenario's end state (plan included), sites marked added/new/closed."""
    scenario, plan_new = end_state(region, spec, result)
    return gs.end_state_report(region, scenario, plan_new=plan_new, with_circles=with_circles)
