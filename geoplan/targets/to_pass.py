"""Least cost to pass: the cheapest new facilities that make a review's failing targets pass.

:func:`requirements_for` translates the failing targets of a
:class:`~geoplan.targets.review.Review` into the requirement values of
:mod:`geoplan.optimize.requirements`; :func:`least_cost_to_pass` builds the
problem (the review's facilities kept, street-junction candidates and one
candidate per community unit, walking times from the one reach path) and
solves it with :func:`geoplan.optimize.least_cost.least_cost`, exactly, with
the greedy plan beside it.

How each indicator becomes a requirement (new facilities are of the target's
tier; every kind the target counts counts):

* ``unit_share`` -> :class:`~geoplan.optimize.requirements.UnitShare` on the
  review's streets (or zones) or communities;
* ``reach`` -> :class:`~geoplan.optimize.requirements.CoverageShare`;
* ``facility_count`` (at least *n*) -> a UnitShare over the sites themselves
  (each site its own unit: *n* distinct sites hold a facility of the kinds);
* ``floor_area_per_100_households``, ``land_per_resident``,
  ``beds_per_1000_older`` -> a district-wide
  :class:`~geoplan.optimize.requirements.Quantity` per people
  (per 100 households = per 100 x household size residents);
* ``nursing_bed_share`` -> :class:`~geoplan.optimize.requirements.Ratio`.

A target that cannot be translated (no figure, no data for an attribute the
existing facilities lack, no attribute given for new facilities) is listed in
``skipped`` with the reason, never planned on a guess.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan import _files
from geoplan.errors import InputError
from geoplan.targets.indicators import OUTSIDE
from geoplan.targets.presets import DEFAULT_THRESHOLD_MIN, INDICATOR_ATTRIBUTE, Target
from geoplan.targets.review import Review, bilingual, sheet_values
from geoplan.tiers import KIND_NAMES, KINDS

log = logging.getLogger(__name__)

#: The unit level of facility-count requirements: every site is its own unit.
SITE_LEVEL = "site"

#: A tie-break on cost per tier: among plans with the fewest new facilities, the one with the lowest tiers
#: (a station before a street centre before a district centre), so a count objective never builds a
#: district centre where a station does. Small enough that it never trades one more facility for a lower tier.
TIER_EPSILON = 1e-3
_TIER_RANK = {"station": 0, "canteen": 0, "home": 0, "centre": 1, "district_centre": 2}

_PER_PEOPLE = {
    # indicator: (group, people per amount as a function of the household size)
    "floor_area_per_100_households": ("pop_total", lambda size: 100.0 * size),
    "land_per_resident": ("pop_total", lambda size: 1.0),
    "beds_per_1000_older": ("pop_60", lambda size: 1000.0),
}


@dataclasses.dataclass(frozen=True)
class PassPlan:
    """The least-cost plan that makes a review pass, and what it rests on.

    Attributes
    ----------
    review
        The review planned for.
    plan
        The :class:`~geoplan.optimize.least_cost.LeastCostPlan` (``opened``,
        ``cost``, ``greedy_cost``, ``solver``, ``requirements`` before/after, ``phases``).
    requirements
        The requirement values the failing targets became.
    skipped
        Targets not planned for, with the reason (``id`` -> ``reason``).
    new_sites
        The new sites in build order: ``phase``, ``kind``, ``street_code``,
        ``community_code``, ``lon``/``lat`` (WGS84), in the region's CRS.
    n_candidates
        How many candidate sites the plan chose from.
    """

    review: Review
    plan: Any
    requirements: tuple
    skipped: pd.DataFrame
    new_sites: gpd.GeoDataFrame
    n_candidates: int

    @property
    def requirement_table(self) -> pd.DataFrame:
        """The plan's requirements before and after, a facility count read as facilities (not % of sites)."""
        table = self.plan.requirements
        n_sites = self.n_candidates + int(len(self.review.facilities))
        for r in self.requirements:
            if getattr(r, "level", None) == SITE_LEVEL:
                target = self.review.targets.get(r.id)
                table.loc[r.id, "description"] = f"at least {target.min:g} facilities ({', '.join(r.kinds)})"
                table.loc[r.id, "value_unit"] = "facilities"
                for column in ("target", "before", "after", "best"):
                    table.loc[r.id, column] = round(float(table.loc[r.id, column]) * n_sites / 100.0) if column != "target" else target.min
        return table

    def summary(self) -> dict[str, Any]:
        stats = self.plan.solver
        greedy = self.plan.greedy_cost
        return {
            "candidates": self.n_candidates, "new_sites": int(len(self.new_sites)), "cost": round(self.plan.cost, 6),
            "greedy_cost": None if greedy is None else round(greedy, 6), "status": stats.status, "gap": stats.gap,
            "seconds": round(stats.solve_s + (stats.build_s or 0), 3),
            "new_by_kind": {k: int(len(v)) for k, v in self.plan.opened.items()},
            "skipped": {i: r for i, r in self.skipped["reason"].items()},
        }

    def to_dict(self) -> dict[str, Any]:
        table = self.requirement_table.reset_index()
        sites = pd.DataFrame(self.new_sites.drop(columns=self.new_sites.geometry.name)).reset_index()
        return {
            **self.summary(),
            "requirements": [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")],
            "sites": [{k: _plain(v) for k, v in row.items()} for row in sites.to_dict(orient="records")],
        }

    def to_xlsx(self, path: str | Path) -> Path:
        """The plan as a workbook: the new sites in build order, the requirements before and after, the targets left out."""
        path = Path(path)
        sites = pd.DataFrame(self.new_sites.drop(columns=self.new_sites.geometry.name)).reset_index()
        sites["kind"] = [f"{KIND_NAMES.get(k, (k,))[0]} {k}" for k in sites["kind"]]
        about = pd.DataFrame([(k, str(v)) for k, v in self.summary().items()], columns=["item", "value"])
        with _files.atomic_file(path) as tmp:
            with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
                bilingual(sites).to_excel(writer, sheet_name="new sites 新建设施", index=False)
                bilingual(sheet_values(self.requirement_table.reset_index())).to_excel(writer, sheet_name="requirements 目标要求", index=False)
                bilingual(self.skipped.reset_index()).to_excel(writer, sheet_name="not planned 未纳入", index=False)
                bilingual(about).to_excel(writer, sheet_name="about 说明", index=False)
        return path

    def to_geojson(self, path: str | Path) -> Path:
        path = Path(path)
        frame = self.new_sites.reset_index().to_crs(4326)
        with _files.atomic_file(path) as tmp:
            frame.to_file(tmp, driver="GeoJSON")
        return path


def requirements_for(review: Review, *, new_attributes: Mapping[str, Mapping[str, float]] | None = None,
                     only_failing: bool = True) -> tuple[list, pd.DataFrame, list[str]]:
    """The requirement values of a review's targets, the targets left out (with why), and the kinds to build.

    Parameters
    ----------
    review
        The review.
    new_attributes
        Per kind, the attributes of a new facility (``{"station": {"floor_area_m2": 300}}``):
        without them an attribute target cannot be planned for.
    only_failing
        Translate only the targets that fail (default); the others hold
        already and keep holding as facilities are only added, except a
        share such as nursing beds of beds, which stays a requirement
        whenever the plan may build a kind it counts.
    """
    from geoplan.optimize.requirements import CoverageShare, Quantity, Ratio, UnitShare

    new_attributes = {k: dict(v) for k, v in (new_attributes or {}).items()}
    summary = review.summary[review.summary["source"] == "targets file"]
    facilities = review.facilities
    requirements, skipped, build = [], [], []
    for target in review.targets.targets:
        verdict = summary.at[target.id, "pass"]  # .at keeps None (a row Series of text may turn it into NaN)
        status = summary.at[target.id, "status"]
        if target.min is None:
            skipped.append((target.id, "the plan gives no figure (reported, not judged)"))
            continue
        if verdict is True and only_failing:
            continue
        if verdict is None:
            skipped.append((target.id, f"not judged: {status}"))
            continue
        kinds = tuple(target.counts)
        tier = target.tier or _attribute_tier(target, new_attributes)
        if tier is None:
            attribute = INDICATOR_ATTRIBUTE[target.indicator]
            skipped.append((target.id, f"give new_attributes with {attribute} for a kind it counts ({', '.join(kinds)})"))
            continue
        if target.indicator == "unit_share":
            requirement = UnitShare(target.id, kinds=kinds, level=target.level, share_pct=target.min)
        elif target.indicator == "reach":
            requirement = CoverageShare(target.id, kinds=kinds, group=target.group, threshold_min=target.threshold_min, pct=target.min)
        elif target.indicator == "facility_count":
            n = int(math.ceil(target.min - 1e-9))
            if n <= 0:
                continue
            requirement = ("count", target.id, kinds, n)  # made a UnitShare once the sites are known
        else:
            attributes = [INDICATOR_ATTRIBUTE[target.indicator]] + (["beds"] if target.indicator == "nursing_bed_share" else [])
            lacking = [a for a in attributes if a not in facilities.columns and (facilities["kind"].isin(kinds)).any()]
            if lacking:
                skipped.append((target.id, f"no data (column {', '.join(lacking)} missing): the existing facilities' amounts are unknown"))
                continue
            if not any(a in new_attributes.get(tier, {}) for a in attributes):
                skipped.append((target.id, f"give new_attributes={{{tier!r}: {{{attributes[0]!r}: ...}}}} (what a new {tier} adds)"))
                continue
            if target.indicator == "nursing_bed_share":
                requirement = Ratio(target.id, kinds=kinds, numerator="nursing_beds", denominator="beds", share_pct=target.min)
            else:
                group, per = _PER_PEOPLE[target.indicator]
                requirement = Quantity(target.id, kinds=kinds, attribute=attributes[0], amount=target.min, per_group=group,
                                       per_people=per(review.household_size))
        requirements.append(requirement)
        if tier not in build:
            build.append(tier)
    # a share (nursing beds of beds) that holds today can fail once new facilities of a kind it counts are built:
    # it stays a requirement whenever the plan may build such a kind
    for target in review.targets.targets:
        counted = tuple(target.counts)
        if (target.indicator == "nursing_bed_share" and target.min is not None and summary.at[target.id, "pass"] is True
                and only_failing and set(counted) & set(build)
                and {"nursing_beds", "beds"} <= set(facilities.columns)):
            requirements.append(Ratio(target.id, kinds=counted, numerator="nursing_beds", denominator="beds", share_pct=target.min))
    skipped_frame = pd.DataFrame(skipped, columns=["id", "reason"]).set_index("id")
    return requirements, skipped_frame, [k for k in KINDS if k in build]


def least_cost_to_pass(
    review: Review,
    *,
    candidates: gpd.GeoDataFrame | None = None,
    spacing_m: float = 300.0,
    new_attributes: Mapping[str, Mapping[str, float]] | None = None,
    solver=None,
    only_failing: bool = True,
    kind_costs: Mapping[str, float] | None = None,
) -> PassPlan:
    """The cheapest new facilities (count, or the candidates' ``cost``) that make the review's failing targets pass.

    Parameters
    ----------
    review
        A :class:`~geoplan.targets.review.Review`; its facilities are kept.
    candidates
        Candidate sites (default: street junctions about ``spacing_m`` apart,
        :func:`geoplan.candidates_from_network`, plus the region's own
        candidates, one on a street inside each community unit).
    new_attributes
        Per kind, the attributes of a new facility, for floor-space, land and bed targets.
    solver
        :class:`~geoplan.optimize.options.SolverOptions` (default: HiGHS, 60 s).
    kind_costs
        Per kind, a factor on a new site's cost (default: 1 plus :data:`TIER_EPSILON`
        per tier above a station, so the count is minimised and ties go to the lower tier).

    Raises
    ------
    InputError
        Nothing to plan: no target fails, or none that fails can be planned for (the message says why).
    RequirementsUnreachable
        A target beyond every candidate (its ``unreachable`` gives the best achievable).
    """
    from geoplan.optimize import KindSpec, LeastCostOptions, SolverOptions, build_problem, least_cost
    from geoplan.optimize.requirements import UnitShare
    from geoplan.sites import candidates_from_network

    region = review.region
    requirements, skipped, build = requirements_for(review, new_attributes=new_attributes, only_failing=only_failing)
    if not requirements:
        reasons = "; ".join(f"{i}: {r}" for i, r in skipped["reason"].items())
        raise InputError(
            "Nothing to plan: " + ("no target of the file fails." if not len(skipped) else f"no failing target can be planned for ({reasons}).")
        )
    if candidates is None:
        junctions = candidates_from_network(region.network, region.boundary, spacing_m=spacing_m)
        parts = [junctions] + ([region.candidates] if len(region.candidates) else [])
        candidates = gpd.GeoDataFrame(pd.concat(parts), geometry="geometry", crs=region.crs)
        candidates = candidates[~candidates.index.duplicated()]
    facilities = review.facilities
    clash = candidates.index.intersection(facilities.index)
    if len(clash):
        candidates = candidates.drop(index=clash)
    thresholds = [r.threshold_min for r in requirements if hasattr(r, "threshold_min")]
    specs = [KindSpec(kind, threshold_min=DEFAULT_THRESHOLD_MIN[kind]) for kind in build]
    cutoff = max([*thresholds, *(s.threshold_min for s in specs)])
    problem = build_problem(region, specs=specs, candidates=candidates, facilities=facilities, cutoff_min=cutoff)
    sites = problem.sites
    located = review.units.locate(gpd.GeoDataFrame(geometry=sites["geometry"].to_numpy(), crs=region.crs, index=sites.index))
    site_units = {}
    for level in ("street", "community"):
        codes = located[f"{level}_code"].astype(object)
        known = facilities[f"{level}_code"].reindex(sites.index)
        codes = known.where(known.notna(), codes)  # the review's own placement of existing facilities
        site_units[level] = codes.where(codes != OUTSIDE, None)
    site_units[SITE_LEVEL] = pd.Series(sites.index.astype(str), index=sites.index, dtype=object)
    unit_codes = {"street": [str(c) for c in review.units.streets.index], "community": [str(c) for c in review.units.communities.index],
                  SITE_LEVEL: [str(c) for c in sites.index]}
    final = []
    for r in requirements:
        if isinstance(r, tuple):
            _, rid, kinds, n = r
            total = len(sites)
            final.append(UnitShare(rid, kinds=kinds, level=SITE_LEVEL, share_pct=min(100.0, 100.0 * (n - 0.5) / total)))
        else:
            final.append(r)
    levels = {getattr(r, "level", None) for r in final}
    demand_units = {level: review.demand_units[f"{level}_code"].where(review.demand_units[f"{level}_code"] != OUTSIDE, None)
                    for level in ("street", "community")}
    plan = least_cost(
        problem, final, solver=solver or SolverOptions(), options=LeastCostOptions(
        site_units={k: v for k, v in site_units.items() if k in levels},
        demand_units={k: v.reindex(problem.people.index) for k, v in demand_units.items() if k in levels},
        unit_codes={k: v for k, v in unit_codes.items() if k in levels},
        new_attributes=new_attributes, build=build,
        kind_costs=dict(kind_costs) if kind_costs is not None else {k: 1.0 + TIER_EPSILON * _TIER_RANK[k] for k in build},
    ))
    new_sites = _new_sites(plan, sites, site_units, region.crs)
    log.info("least cost to pass: %d new sites (cost %g, greedy %s), %s", len(new_sites), plan.cost, plan.greedy_cost, plan.status)
    return PassPlan(review=review, plan=plan, requirements=tuple(final), skipped=skipped, new_sites=new_sites,
                    n_candidates=int((sites["status"] == "candidate").sum()))


def _attribute_tier(target: Target, new_attributes: Mapping[str, Mapping[str, float]]) -> str | None:
    """For a district ratio without a tier: the first counted kind that new facilities carry the attribute for."""
    attribute = INDICATOR_ATTRIBUTE.get(target.indicator)
    return next((k for k in target.counts if attribute in new_attributes.get(k, {})), None)


def _new_sites(plan, sites: pd.DataFrame, site_units: Mapping[str, pd.Series], crs) -> gpd.GeoDataFrame:
    phases = plan.phases
    if phases.empty:
        frame = gpd.GeoDataFrame({"phase": [], "kind": []}, geometry=gpd.GeoSeries([], crs=crs))
        frame.index.name = "site_id"
        return frame
    ids = pd.Index(phases["site_id"], name="site_id")
    geometry = gpd.GeoSeries(sites.loc[ids, "geometry"].to_numpy(), crs=crs)
    wgs = geometry.to_crs(4326)
    frame = gpd.GeoDataFrame(
        {"phase": phases["phase"].to_numpy(), "kind": phases["kind"].to_numpy(), "cost": phases["cost"].to_numpy(),
         "cumulative_cost": phases["cumulative_cost"].to_numpy(),
         "street_code": site_units["street"].reindex(ids).to_numpy(), "community_code": site_units["community"].reindex(ids).to_numpy(),
         "lon": wgs.x.round(6).to_numpy(), "lat": wgs.y.round(6).to_numpy(),
         **{c: phases[c].to_numpy() for c in phases.columns if c.startswith("gain_")}, "met": phases["met"].to_numpy()},
        geometry=geometry.to_numpy(), crs=crs, index=ids,
    )
    return frame


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else round(float(value), 4)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value
