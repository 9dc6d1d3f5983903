"""The rural canteen network: county central kitchen -> town canteen -> village meal point or delivery.

Tiers, as geoplan's facility kinds (:mod:`geoplan.tiers` has no kitchen kind,
so the canteen network borrows three; every table names the tier):

* ``district_centre`` -- the county central kitchen (县级中央厨房);
* ``centre`` -- a town canteen (乡镇老年食堂), the town's comprehensive centre
  with its kitchen (:data:`geoplan.tiers.SERVED_BY` already lets a centre
  serve for a canteen);
* ``canteen`` -- a village meal point (村级助餐点).

A village is *served* (:class:`~geoplan.rural.targets.CanteenRules`) by its
own meal point, by a meal point within ``meal_walk_min`` on foot, or by a
town canteen or the kitchen within ``delivery_min`` by ``delivery_mode``
(e-bike by default). :func:`service_matrix` holds, for every village and
site, the time by the site's own mode, kept only within the site's own
limit, so "served" is one question of one :class:`~geoplan.reach.ReachMatrix`
at ``rules.cutoff_min``: the same matrix the least-cost plan
(:func:`canteen_plan`, :func:`geoplan.optimize.least_cost`) is solved on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.errors import InputError
from geoplan.modes import DEFAULT_DETOUR_FACTOR, FALLBACK_LABEL, ModeReachMatrix, get_mode, mode_router, with_fallback
from geoplan.reach import ReachMatrix, within_time
from geoplan.rural.targets import CanteenRules, RuralTargets
from geoplan.rural.units import OUTSIDE, RuralUnits

if TYPE_CHECKING:
    from geoplan.region import Region

log = logging.getLogger(__name__)

#: The canteen network's tiers as facility kinds, with their names in the network.
TIER_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "district_centre": ("县级中央厨房", "county central kitchen"),
    "centre": ("乡镇老年食堂", "town canteen"),
    "canteen": ("村级助餐点", "village meal point"),
})
#: Kinds that serve on foot (a meal point) and kinds that cook and deliver.
MEAL_KINDS: tuple[str, ...] = ("canteen",)
DELIVERY_KINDS: tuple[str, ...] = ("centre", "district_centre")
#: The unit level of count requirements in the plan: every site is its own unit.
SITE_LEVEL = "site"
#: The group that counts villages (one per village) in the plan's problem.
VILLAGE_GROUP = "pop_village"


def tier_name(kind: str) -> str:
    zh, en = TIER_NAMES.get(kind, (kind, kind))
    return f"{zh} {en}"


class ServiceModel:
    """A region's villages prepared for the canteen network's questions: which site serves which village, by which mode.

    The villages are placed on the walking network and on the delivery mode's
    network once; each :meth:`matrix` then costs only the searches.
    """

    def __init__(self, region: "Region", units: RuralUnits, rules: CanteenRules, *, fallback: str | None = None):
        if fallback not in (None, "detour"):
            raise InputError(f"fallback must be None or 'detour' (straight line x detour, labelled), got {fallback!r}.")
        self.region, self.units, self.rules, self.fallback = region, units, rules, fallback
        self.walk = get_mode("walk", region.config)
        self.delivery = get_mode(rules.delivery_mode, region.config)
        self.points = gpd.GeoDataFrame(geometry=units.villages.geometry.to_numpy(), crs=units.villages.crs, index=units.villages.index)
        self._routers: dict[str, Any] = {}

    @property
    def rule_text(self) -> str:
        """How a village is served, in words."""
        r = self.rules
        return (f"its own meal point, a meal point within {r.meal_walk_min:g} min on foot ({self.walk.name}), or a town canteen or the "
                f"kitchen within {r.delivery_min:g} min by {self.delivery.name}")

    @property
    def off_road(self) -> pd.Index:
        """Villages with no road of the walk or the delivery mode within ``max_access_m``: nothing reaches them on the network."""
        return pd.Index(self._router(self.walk).off_network).intersection(pd.Index(self._router(self.delivery).off_network))

    def _router(self, mode):
        if mode.name not in self._routers:
            self._routers[mode.name] = mode_router(self.region.network_for(mode), self.points, max_access_m=self.region.config.analysis.max_access_m)
        return self._routers[mode.name]

    def mode_of(self, kinds: pd.Series) -> pd.Series:
        """The mode each site serves by: walking for meal points, the delivery mode for canteens and the kitchen, none otherwise."""
        return kinds.astype(str).map(lambda k: self.walk.name if k in MEAL_KINDS else self.delivery.name if k in DELIVERY_KINDS else None)

    def matrix(self, sites: gpd.GeoDataFrame) -> ModeReachMatrix:
        """Villages x ``sites``: seconds by each site's own mode, kept within its own limit (cutoff ``rules.cutoff_min``).

        ``sites`` needs ``kind``; a ``village_code`` column names the village a
        meal point stands in (it serves it at 0 s). The result's ``mode`` is
        ``"mixed"``; :meth:`mode_of` gives each column's.
        """
        cutoff_s = self.rules.cutoff_min * 60.0
        n_villages, n_sites = len(self.points), len(sites)
        kinds = sites["kind"].astype(str).to_numpy()
        parts, fallback_demand, fallback_sites = [], pd.Index([]), pd.Index([])
        for mode, chosen, limit_min in ((self.walk, np.isin(kinds, MEAL_KINDS), self.rules.meal_walk_min),
                                        (self.delivery, np.isin(kinds, DELIVERY_KINDS), self.rules.delivery_min)):
            positions = np.flatnonzero(chosen)
            if not len(positions):
                continue
            subset = sites.iloc[positions][["geometry"]]
            router = self._router(mode)
            reach = router.travel_times(subset, cutoff_s=limit_min * 60.0)
            if self.fallback == "detour":
                reach = with_fallback(reach, router, self.points, subset, mode)
                fallback_demand = fallback_demand.union(reach.fallback_demand)
                fallback_sites = fallback_sites.union(reach.fallback_sites)
            coo = reach.times_s.tocoo()
            parts.append((coo.row, positions[coo.col], coo.data))
        if "village_code" in sites:  # a meal point serves its own village
            codes = sites["village_code"].astype(object).to_numpy()
            own = np.flatnonzero(np.isin(kinds, MEAL_KINDS) & pd.notna(codes))
            rows = self.points.index.get_indexer(codes[own])
            ok = rows >= 0
            parts.append((rows[ok], own[ok], np.zeros(int(ok.sum()))))
        if parts:
            rows, cols, data = (np.concatenate(p) for p in zip(*parts))
        else:
            rows = cols = np.zeros(0, np.int64)
            data = np.zeros(0)
        # the quickest of a pair's times (a meal point's own village: 0); explicit zeros kept
        frame = pd.DataFrame({"r": rows, "c": cols, "t": data}).groupby(["r", "c"], sort=True)["t"].min().reset_index()
        times = sparse.csc_matrix((frame["t"].to_numpy(), (frame["r"].to_numpy(), frame["c"].to_numpy())), shape=(n_villages, n_sites))
        return ModeReachMatrix(times_s=times, demand_ids=pd.Index(self.points.index), site_ids=pd.Index(sites.index), cutoff_s=cutoff_s,
                               mode="mixed", fallback_demand=fallback_demand, fallback_sites=fallback_sites,
                               detour_factor=None if self.fallback is None else DEFAULT_DETOUR_FACTOR)

    def served_by(self, matrix: ReachMatrix, kinds: pd.Series) -> pd.DataFrame:
        """Per village: served, how (own meal point, meal point on foot, delivery), and the nearest meal walk and delivery, in minutes."""
        kinds = kinds.reindex(matrix.site_ids).astype(str)
        meal = pd.Index(matrix.site_ids[kinds.isin(MEAL_KINDS).to_numpy()], dtype=object)
        delivery = pd.Index(matrix.site_ids[kinds.isin(DELIVERY_KINDS).to_numpy()], dtype=object)
        walk_s = matrix.nearest_time_s(meal) if len(meal) else pd.Series(np.inf, index=matrix.demand_ids)
        deliver_s = matrix.nearest_time_s(delivery) if len(delivery) else pd.Series(np.inf, index=matrix.demand_ids)
        own = walk_s.to_numpy() == 0
        on_foot = within_time(walk_s.to_numpy(), self.rules.meal_walk_min * 60.0)
        delivered = within_time(deliver_s.to_numpy(), self.rules.delivery_min * 60.0)
        how = np.where(own, "own meal point 本村助餐点",
                       np.where(on_foot, f"meal point within {self.rules.meal_walk_min:g} min on foot 步行可达助餐点",
                                np.where(delivered, f"delivery within {self.rules.delivery_min:g} min by {self.delivery.name} 送餐",
                                         "not served 未覆盖")))
        mode = np.where(on_foot, self.walk.name, np.where(delivered, self.delivery.name, None))
        return pd.DataFrame({
            "served": on_foot | delivered, "served_by": how, "mode": mode,
            "meal_walk_min": walk_s.to_numpy() / 60.0, "delivery_min": deliver_s.to_numpy() / 60.0,
        }, index=matrix.demand_ids)


def village_of_sites(units: RuralUnits, sites: gpd.GeoDataFrame) -> pd.Series:
    """The village each site stands in: inside its area (derived squares, user polygons), else the nearest village point within 1 km."""
    villages = units.villages
    codes = pd.Series(None, index=sites.index, dtype=object)
    if not len(sites) or not len(villages):
        return codes
    geometry = sites.geometry.to_crs(villages.crs)
    areas = villages["area"] if "area" in villages else None
    if areas is not None and areas.notna().any():
        polygons = gpd.GeoDataFrame(geometry=areas[areas.notna()].to_numpy(), crs=villages.crs, index=areas[areas.notna()].index.rename("village_code"))
        joined = gpd.sjoin(gpd.GeoDataFrame(geometry=geometry.to_numpy(), crs=villages.crs, index=pd.RangeIndex(len(sites))),
                           polygons.reset_index(), how="left", predicate="within")
        joined = joined[~joined.index.duplicated()].sort_index()
        codes[:] = joined["village_code"].astype(object).where(joined["village_code"].notna(), None).to_numpy()
    missing = codes.isna().to_numpy()
    if missing.any():
        from scipy.spatial import cKDTree

        tree = cKDTree(np.column_stack([villages.geometry.x, villages.geometry.y]))
        distance, nearest = tree.query(np.column_stack([geometry.x.to_numpy()[missing], geometry.y.to_numpy()[missing]]), distance_upper_bound=1000.0)
        found = np.isfinite(distance)
        values = np.full(int(missing.sum()), None, dtype=object)
        values[found] = villages.index.to_numpy()[nearest[found]]
        codes[missing] = values
    return codes


def supply_check(region: "Region", canteens: gpd.GeoDataFrame, kitchens: gpd.GeoDataFrame, rules: CanteenRules) -> pd.DataFrame:
    """Per town canteen: the drive from the nearest county kitchen (``rules.supply_mode``), and whether it is within ``supply_drive_min``."""
    columns = ["supply_drive_min", "within_supply_drive", "supply_mode"]
    if not len(canteens):
        return pd.DataFrame(columns=columns, index=pd.Index([], name="site_id"))
    mode = get_mode(rules.supply_mode, region.config)
    if not len(kitchens):
        return pd.DataFrame({"supply_drive_min": np.inf, "within_supply_drive": False, "supply_mode": mode.name}, index=canteens.index)
    router = mode_router(region.network_for(mode), canteens[["geometry"]], max_access_m=region.config.analysis.max_access_m)
    reach = router.travel_times(kitchens[["geometry"]], cutoff_s=rules.supply_drive_min * 60.0 * 2)
    nearest = reach.nearest_time_s().reindex(canteens.index) / 60.0
    return pd.DataFrame({"supply_drive_min": nearest.to_numpy(), "within_supply_drive": within_time(nearest.to_numpy() * 60.0, rules.supply_drive_min * 60.0),
                         "supply_mode": mode.name}, index=canteens.index)


@dataclasses.dataclass(frozen=True)
class CanteenFigures:
    """The canteen network's figures for a set of facilities: per target, per town, per village."""

    summary: pd.DataFrame
    towns: pd.DataFrame
    villages: gpd.GeoDataFrame
    gaps: pd.DataFrame
    supply: pd.DataFrame
    matrix: ModeReachMatrix


def canteen_figures(model: ServiceModel, facilities: gpd.GeoDataFrame, targets: RuralTargets) -> CanteenFigures:
    """The figures of every target of ``targets`` for ``facilities`` (``kind`` per facility) on ``model``'s villages."""
    units, rules, region = model.units, model.rules, model.region
    facilities = facilities.copy()
    facilities["village_code"] = village_of_sites(units, facilities).to_numpy()
    facilities["town_code"] = units.town_of(facilities).to_numpy() if len(facilities) else pd.Series([], dtype=object)
    kinds = facilities["kind"].astype(str) if len(facilities) else pd.Series([], dtype=object)
    matrix = model.matrix(facilities)
    service = model.served_by(matrix, kinds)
    villages = units.villages.drop(columns=[c for c in ("area", "square") if c in units.villages]).copy()
    for column in service.columns:
        villages[column] = service[column].reindex(villages.index).to_numpy()
    villages["priority"] = villages.get("pop_60", 0.0) + villages.get("pop_80", 0.0)  # an 80+ person weighs double
    villages["delivery_mode"] = model.delivery.name
    villages["village_source"] = units.village_label
    off_road = villages.index.isin(model.off_road)
    villages["road_within_reach"] = ~off_road
    villages["time_source"] = np.where(off_road, FALLBACK_LABEL if model.fallback else "no road within reach", "network")

    town_kinds = kinds.isin(DELIVERY_KINDS) if len(facilities) else pd.Series([], dtype=bool)
    town_has = facilities.loc[town_kinds.to_numpy(), "town_code"].value_counts() if len(facilities) else pd.Series(dtype=int)
    meal_in = facilities.loc[kinds.isin(MEAL_KINDS).to_numpy(), "town_code"].value_counts() if len(facilities) else pd.Series(dtype=int)
    towns = pd.DataFrame(units.towns.drop(columns="geometry"))
    towns["villages"] = villages.groupby("town_code").size().reindex(towns.index, fill_value=0)
    towns["villages_served"] = villages[villages["served"]].groupby("town_code").size().reindex(towns.index, fill_value=0)
    towns["villages_served_pct"] = 100.0 * towns["villages_served"] / towns["villages"].where(towns["villages"] > 0)
    towns["rural_pop_60"] = villages.groupby("town_code")["pop_60"].sum().reindex(towns.index, fill_value=0.0) if "pop_60" in villages else np.nan
    towns["town_canteens"] = town_has.reindex(towns.index, fill_value=0).astype(int)
    towns["meal_points"] = meal_in.reindex(towns.index, fill_value=0).astype(int)
    towns["has_canteen"] = towns["town_canteens"] > 0

    centres = facilities[kinds.to_numpy() == "centre"] if len(facilities) else facilities
    kitchens = facilities[kinds.to_numpy() == "district_centre"] if len(facilities) else facilities
    supply = supply_check(region, centres, kitchens, rules)

    rows = []
    for target in targets.targets:
        value, detail = _figure(target.indicator, villages, towns, kitchens, units, fallback=model.fallback is not None)
        passed = None if target.min is None or value is None else bool(value >= target.min - 1e-9)
        rows.append({
            "id": target.id, "indicator": target.indicator, "value": value, "unit": target.unit, "target": target.target_text, "min": target.min,
            "pass": passed, "detail": detail, "mode": _indicator_mode(target.indicator, model), "plan": target.plan, "section": target.section,
            "clause": target.clause, "quote_zh": target.quote_zh, "note": target.note,
        })
    summary = pd.DataFrame(rows).set_index("id")
    gaps = villages[~villages["served"]].sort_values(["priority", "pop_60"] if "pop_60" in villages else ["priority"], ascending=False)
    gaps = pd.DataFrame(gaps.drop(columns="geometry"))
    gaps.insert(0, "rank", np.arange(1, len(gaps) + 1))
    return CanteenFigures(summary=summary, towns=towns, villages=villages, gaps=gaps, supply=supply, matrix=matrix)


def _indicator_mode(indicator: str, model: ServiceModel) -> str:
    if indicator in ("villages_served", "rural_older_served"):
        return f"{model.walk.name} (meal point, ≤ {model.rules.meal_walk_min:g} min) or {model.delivery.name} (delivery, ≤ {model.rules.delivery_min:g} min)"
    return "–"


def _figure(indicator: str, villages: pd.DataFrame, towns: pd.DataFrame, kitchens: pd.DataFrame, units: RuralUnits, *,
            fallback: bool = False) -> tuple[float | None, str]:
    if indicator == "county_kitchen":
        return float(len(kitchens)), f"{len(kitchens)} county kitchens (kind district_centre)"
    if indicator == "towns_with_canteen":
        n, total = int(towns["has_canteen"].sum()), len(towns)
        return (100.0 * n / total if total else None), f"{n} of {total} {units.town_label} have a town canteen or the county kitchen"
    if indicator == "villages_served":
        n, total = int(villages["served"].sum()), len(villages)
        off = int((~villages["road_within_reach"].astype(bool)).sum())
        then = (f"their times are {FALLBACK_LABEL}" if fallback else "so only a meal point of their own serves them")
        roads = f"; {off} have no road within reach in the street file, {then}" if off else ""
        return (100.0 * n / total if total else None), f"{n} of {total} {units.village_label} served{roads}"
    people = villages["pop_60"].to_numpy(dtype=float) if "pop_60" in villages else np.zeros(len(villages))
    total, within = float(people.sum()), float(people[villages["served"].to_numpy(dtype=bool)].sum())
    return (100.0 * within / total if total else None), f"{within:,.0f} of {total:,.0f} rural 60+ of the villages live in a served village"


# --- the least-cost plan ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CanteenPlan:
    """The cheapest new meal points, town canteens and kitchen that meet the canteen network's targets.

    Attributes
    ----------
    plan
        The :class:`~geoplan.optimize.least_cost.LeastCostPlan` (``opened``,
        ``cost``, ``greedy_cost``, ``solver``, ``requirements``, ``phases``).
    new_sites
        The new sites in build order: ``phase``, ``kind``, ``tier``, ``mode``
        (how it serves), ``town_code``, ``village_code``, ``lon``/``lat`` (WGS84).
    requirements
        The requirement values the targets became; ``skipped`` those left out, with why.
    supply
        Per town canteen of the plan (existing and new): the drive from the nearest kitchen.
    after
        The canteen network's figures with the plan built.
    n_candidates, seconds
        Candidate sites, and the time to build the service matrix and solve.
    """

    plan: Any
    new_sites: gpd.GeoDataFrame
    requirements: tuple
    skipped: pd.DataFrame
    supply: pd.DataFrame
    after: CanteenFigures
    n_candidates: int
    n_sites: int
    matrix_s: float
    solve_s: float

    rule_text: str = ""

    @property
    def status(self) -> str:
        return self.plan.solver.status

    def requirement_table(self) -> pd.DataFrame:
        """The requirements before and after the plan; a count of kitchens reads as kitchens (not % of sites)."""
        table = self.plan.requirements
        for r in self.requirements:
            if getattr(r, "level", None) == SITE_LEVEL:
                table.loc[r.id, "description"] = f"at least {math.ceil(r.share_pct * self.n_sites / 100.0):g} {', '.join(r.kinds)}"
                table.loc[r.id, "value_unit"] = "facilities"
                table.loc[r.id, "target"] = math.ceil(r.share_pct * self.n_sites / 100.0)
                for column in ("before", "after", "best"):
                    table.loc[r.id, column] = round(float(table.loc[r.id, column]) * self.n_sites / 100.0)
            elif r.kinds == (*MEAL_KINDS, *DELIVERY_KINDS):  # the service matrix holds each site's own rule, not one walk
                what = "villages" if r.group == VILLAGE_GROUP else f"the villages' {r.group[4:]}+"
                table.loc[r.id, "description"] = f"at least {r.pct:g} % of {what} served: {self.rule_text}"
                table.loc[r.id, "value_unit"] = "% of villages" if r.group == VILLAGE_GROUP else f"% of the villages' {r.group}"
        return table

    def summary(self) -> dict[str, Any]:
        stats = self.plan.solver
        return {
            "candidates": self.n_candidates, "new_sites": int(len(self.new_sites)), "cost": round(float(self.plan.cost), 6),
            "greedy_cost": None if self.plan.greedy_cost is None else round(float(self.plan.greedy_cost), 6), "status": stats.status,
            "gap": stats.gap, "matrix_s": round(self.matrix_s, 3), "solve_s": round(self.solve_s, 3),
            "new_by_tier": {tier_name(k): int(len(v)) for k, v in self.plan.opened.items()},
            "skipped": {i: r for i, r in self.skipped["reason"].items()},
        }


def canteen_candidates(model: ServiceModel, facilities: gpd.GeoDataFrame, *, hubs: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Candidate sites: a meal point at every village that has none, and town canteen/kitchen sites at street junctions (or ``hubs``)."""
    from geoplan.sites import candidates_from_network

    units, region = model.units, model.region
    held = set(village_of_sites(units, facilities[facilities["kind"].astype(str).isin(MEAL_KINDS)]).dropna()) if len(facilities) else set()
    villages = units.villages[~units.villages.index.isin(held)]
    meal = gpd.GeoDataFrame({"name": [f"助餐点候选 meal point at {c}" for c in villages.index], "kind": "canteen", "village_code": villages.index.to_numpy()},
                            geometry=villages.geometry.to_numpy(), crs=villages.crs, index=pd.Index([f"m_{c}" for c in villages.index], name="site_id"))
    if hubs is None:
        hubs = candidates_from_network(region.network, region.boundary, spacing_m=model.rules.hub_spacing_m)
    hub = gpd.GeoDataFrame({"name": hubs["name"].astype(str).to_numpy() if "name" in hubs else hubs.index.astype(str), "kind": "centre",
                            "village_code": None}, geometry=hubs.geometry.to_crs(region.crs).to_numpy(), crs=region.crs,
                           index=pd.Index([f"h_{i}" for i in hubs.index], name="site_id"))
    return gpd.GeoDataFrame(pd.concat([meal, hub]), geometry="geometry", crs=region.crs)


def canteen_plan(model: ServiceModel, facilities: gpd.GeoDataFrame, targets: RuralTargets, *, candidates: gpd.GeoDataFrame | None = None,
                 solver=None) -> CanteenPlan:
    """The least-cost plan over the three tiers that meets every judged target (:func:`geoplan.optimize.least_cost`).

    Targets become requirements: ``county_kitchen`` (at least *n*) a
    :class:`~geoplan.optimize.requirements.UnitShare` over the sites (each
    its own unit), ``towns_with_canteen`` a UnitShare over the towns,
    ``villages_served`` and ``rural_older_served`` a
    :class:`~geoplan.optimize.requirements.CoverageShare` of the villages
    (counted one each, or by their 60+) on the service matrix. A target
    without a figure is reported, not planned. Meal-point candidates may
    take only a meal point; junction candidates a town canteen or the kitchen.
    """
    import time

    from geoplan.optimize import CoverageShare, KindSpec, LeastCostOptions, Problem, SolverOptions, UnitShare, least_cost

    t0 = time.perf_counter()
    existing = facilities[facilities["kind"].astype(str).isin(TIER_NAMES)].copy() if len(facilities) else facilities
    existing["village_code"] = village_of_sites(model.units, existing).to_numpy() if len(existing) else pd.Series([], dtype=object)
    candidates = canteen_candidates(model, existing) if candidates is None else candidates
    clash = candidates.index.intersection(existing.index)
    if len(clash):
        raise InputError(f"Candidate ids {sorted(map(str, clash))[:10]} are also existing facilities; give candidates ids of their own.")
    sites = gpd.GeoDataFrame(pd.concat([existing.assign(status="existing"), candidates.assign(status="candidate")]), geometry="geometry", crs=model.region.crs)
    sites["cost"] = 1.0  # times the tier's relative cost (rules.costs)
    matrix = model.matrix(sites)
    matrix_s = time.perf_counter() - t0

    villages = model.units.villages
    people = pd.DataFrame({g: villages[g].to_numpy(dtype=float) for g in ("pop_60", "pop_80") if g in villages}, index=villages.index)
    people[VILLAGE_GROUP] = 1.0
    people.index.name = "demand_id"
    status = sites["status"].to_numpy()
    is_meal = sites["kind"].astype(str).isin(MEAL_KINDS).to_numpy() & (status == "candidate")
    is_hub = sites["kind"].astype(str).isin(DELIVERY_KINDS).to_numpy() & (status == "candidate")
    build = ("canteen", "centre", "district_centre")
    cut = model.rules.cutoff_min
    problem = Problem.from_matrix(matrix, people, sites.drop(columns=["geometry"]), specs=[KindSpec(k, threshold_min=cut) for k in build],
                                  eligible={"canteen": is_meal, "centre": is_hub, "district_centre": is_hub})

    requirements, skipped = [], []
    n_sites = len(sites)
    for target in targets.targets:
        if target.min is None:
            skipped.append((target.id, "the file gives no figure (reported, not planned)"))
            continue
        if target.indicator == "county_kitchen":
            n = int(math.ceil(target.min - 1e-9))
            if n > 0:
                requirements.append(UnitShare(target.id, kinds=("district_centre",), level=SITE_LEVEL, share_pct=min(100.0, 100.0 * (n - 0.5) / n_sites)))
        elif target.indicator == "towns_with_canteen":
            requirements.append(UnitShare(target.id, kinds=DELIVERY_KINDS, level="town", share_pct=target.min))
        else:
            group = VILLAGE_GROUP if target.indicator == "villages_served" else "pop_60"
            requirements.append(CoverageShare(target.id, kinds=(*MEAL_KINDS, *DELIVERY_KINDS), group=group, threshold_min=cut, pct=target.min))
    if not requirements:
        raise InputError("Nothing to plan: no target of the rural targets file has a figure (min).")
    town = model.units.town_of(sites)
    options = LeastCostOptions(
        site_units={"town": town.where(town != OUTSIDE, None), SITE_LEVEL: pd.Series(sites.index.astype(str), index=sites.index)},
        unit_codes={"town": [str(c) for c in model.units.towns.index], SITE_LEVEL: [str(c) for c in sites.index]},
        build=build, kind_costs=dict(model.rules.costs),
    )
    t1 = time.perf_counter()
    plan = least_cost(problem, requirements, options=options, solver=solver or SolverOptions(time_limit_s=60))
    solve_s = time.perf_counter() - t1

    new_sites = _new_sites(plan, sites, town, model)
    built = _built(existing, new_sites, model.region.crs)
    kinds = built["kind"].astype(str).to_numpy()
    supply = supply_check(model.region, built[kinds == "centre"], built[kinds == "district_centre"], model.rules)
    after = canteen_figures(model, built, targets)
    log.info("canteen plan: %d new sites (cost %g, greedy %s), %s in %.1f s", len(new_sites), plan.cost, plan.greedy_cost, plan.solver.status, solve_s)
    return CanteenPlan(plan=plan, new_sites=new_sites, requirements=tuple(requirements),
                       skipped=pd.DataFrame(skipped, columns=["id", "reason"]).set_index("id"), supply=supply, after=after,
                       n_candidates=int((status == "candidate").sum()), n_sites=n_sites, matrix_s=matrix_s, solve_s=solve_s,
                       rule_text=model.rule_text)


def _new_sites(plan, sites: gpd.GeoDataFrame, town: pd.Series, model: ServiceModel) -> gpd.GeoDataFrame:
    phases = plan.phases
    columns = ["phase", "kind", "tier", "mode", "town_code", "village_code", "cost", "cumulative_cost", "lon", "lat"]
    if phases.empty:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=gpd.GeoSeries([], crs=sites.crs), index=pd.Index([], name="site_id"))
    ids = pd.Index(phases["site_id"], name="site_id")
    geometry = gpd.GeoSeries(sites.geometry.loc[ids].to_numpy(), crs=sites.crs)
    wgs = geometry.to_crs(4326)
    kinds = phases["kind"].astype(str)
    return gpd.GeoDataFrame(
        {"phase": phases["phase"].to_numpy(), "kind": kinds.to_numpy(), "tier": [tier_name(k) for k in kinds],
         "mode": model.mode_of(kinds).to_numpy(), "town_code": town.reindex(ids).to_numpy(),
         "village_code": sites["village_code"].reindex(ids).to_numpy(), "cost": phases["cost"].to_numpy(),
         "cumulative_cost": phases["cumulative_cost"].to_numpy(), "lon": wgs.x.round(6).to_numpy(), "lat": wgs.y.round(6).to_numpy(),
         **{c: phases[c].to_numpy() for c in phases.columns if c.startswith("gain_")}, "met": phases["met"].to_numpy()},
        geometry=geometry.to_numpy(), crs=sites.crs, index=ids,
    )


def _built(existing: gpd.GeoDataFrame, new_sites: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    new = gpd.GeoDataFrame({"name": [f"new {tier_name(k)}" for k in new_sites["kind"]], "kind": new_sites["kind"].to_numpy()},
                           geometry=new_sites.geometry.to_numpy(), crs=crs, index=new_sites.index)
    old = existing[["kind", "geometry"]].assign(name=existing["name"] if "name" in existing else existing.index.astype(str)) if len(existing) else None
    parts = [p for p in (old, new) if p is not None and len(p)]
    if not parts:
        return gpd.GeoDataFrame({"name": [], "kind": []}, geometry=gpd.GeoSeries([], crs=crs))
    return gpd.GeoDataFrame(pd.concat(parts), geometry="geometry", crs=crs)
