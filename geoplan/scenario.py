"""What-if scenarios: a region's facilities with some stations added and some closed, run and compared.

A :class:`Scenario` names the edits (sites added, existing facilities closed,
optionally a replacement facility list or candidate list, and the optimiser
settings of a recommendation); :func:`run` is the one place that chains the
stages (edits, optional optimisation, coverage) into a frozen
:class:`ScenarioResult`; :func:`compare` puts results side by side, in people.

Wuchang (``wuchang`` is ``geoplan.load_region("wuchang")``, which has no
existing facilities) as it is, with one station added at a point, and with
five stations the optimiser places; people aged 60+ within 15 minutes:

    >>> from geoplan.optimize import KindSpec, PlanRequest
    >>> from geoplan.scenario import Scenario, compare, run, sites_from_points
    >>> new = sites_from_points([{"lon": 114.31, "lat": 30.55}], crs=wuchang.crs)
    >>> five = Scenario("five planned", recommend=PlanRequest(KindSpec("station", p=5)))
    >>> results = [run(wuchang, s, with_circles=False) for s in (None, Scenario("one more", added=new), five)]
    >>> compare(results)[["sites", "covered_pop_60", "change_pop_60"]].round()
                  sites  covered_pop_60  change_pop_60
    scenario
    baseline          0             0.0            0.0
    one more          1          3377.0         3377.0
    five planned      5         30016.0        30016.0
    >>> results[2].added
    ('c572', 'c542', 'c483', 'c528', 'c464')
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan.analysis import CoverageReport, analyse_coverage
from geoplan.coords import normalize_coord_system, to_wgs84
from geoplan.errors import InputError
from geoplan.region import Region
from geoplan.sites import FACILITY_KINDS, empty_sites
from geoplan.tiers import ATTRIBUTES

log = logging.getLogger(__name__)

#: Columns of a site frame, as :func:`geoplan.sites.load_facilities` returns it.
SITE_COLUMNS = ("name", "kind", "status", "capacity", "cost")


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Edits to a region's facilities.

    Attributes
    ----------
    name
        A label for tables and maps.
    added
        New sites (a site frame, e.g. from :func:`sites_from_points`); they
        count as facilities of the scenario.
    closed
        Site ids of existing facilities to close.
    facilities
        A facility list that replaces the region's own before the edits
        (None: keep the region's).
    candidates
        A candidate list that replaces the region's (None: keep the region's).
    recommend
        A :class:`geoplan.optimize.PlanRequest` run on the edited region
        (None: no optimisation).
    """

    name: str = "scenario"
    added: gpd.GeoDataFrame | None = None
    closed: tuple[str, ...] = ()
    facilities: gpd.GeoDataFrame | None = None
    candidates: gpd.GeoDataFrame | None = None
    recommend: Any = None  # a geoplan.optimize.PlanRequest (imported lazily: the optimiser is optional)


@dataclasses.dataclass(frozen=True)
class ScenarioResult:
    """A scenario run: coverage before and after the edits (and the plan), in people.

    Attributes
    ----------
    scenario
        What was run.
    region
        The region with the scenario's facilities (edits applied, plan not).
    before
        Coverage summary of the facilities before the edits.
    report
        Coverage of the final sites: the edited facilities, plus the sites the
        plan opens and minus those it closes. Its ``sites`` say what changed in
        ``status``: ``existing``, ``added`` (by the scenario), ``new`` (by the
        plan) and ``closed`` (drawn on maps, not counted in the coverage).
    plan
        The optimiser's result (None without ``Scenario.recommend``).
    added, closed
        Site ids opened and closed, by the edits and the plan together.
    added_cost
        Total cost of the sites added (their ``cost`` column).
    """

    scenario: Scenario
    region: Region
    before: pd.DataFrame
    report: CoverageReport
    plan: Any
    added: tuple[str, ...]
    closed: tuple[str, ...]
    added_cost: float

    @property
    def after(self) -> pd.DataFrame:
        return self.report.summary

    @property
    def n_sites(self) -> int:
        """Facilities after the scenario (closed ones, kept in ``report.sites`` for maps, not counted)."""
        return int((self.report.sites["status"].astype(str) != "closed").sum())

    def change(self) -> pd.DataFrame:
        """Covered people before and after, per group and threshold, with the difference."""
        table = pd.DataFrame(
            {
                "label": self.after["label"],
                "population": self.after["population"],
                "covered_before": self.before["covered"],
                "covered_after": self.after["covered"],
            }
        )
        table["change"] = table["covered_after"] - table["covered_before"]
        table["covered_pct_before"] = self.before["covered_pct"]
        table["covered_pct_after"] = self.after["covered_pct"]
        return table


def sites_from_points(
    points: Iterable[Mapping[str, Any]] | pd.DataFrame,
    *,
    crs,
    coord_system: str = "wgs84",
    status: str = "existing",
    kind: str = "station",
    boundary: gpd.GeoDataFrame | None = None,
    id_prefix: str = "new-",
) -> gpd.GeoDataFrame:
    """A site frame from records with ``lon`` and ``lat`` (and optional ``site_id``, ``name``, ``kind``, ``capacity``, ``cost``,
    and the tier attributes of :data:`geoplan.tiers.ATTRIBUTES`: floor area, land, beds...).

    Coordinates are converted from ``coord_system`` (``wgs84``, ``gcj02`` or
    ``bd09``) and the result is in ``crs``, indexed by ``site_id`` (given, or
    ``id_prefix`` and a number). With ``boundary``, a point outside the region
    is an error that names it.
    """
    coord_system = normalize_coord_system(coord_system)
    if status not in ("existing", "candidate"):
        raise InputError(f"status must be 'existing' or 'candidate', got {status!r}.")
    table = points.copy() if isinstance(points, pd.DataFrame) else pd.DataFrame([dict(p) for p in points])
    if table.empty:
        return empty_sites(crs)
    missing = [c for c in ("lon", "lat") if c not in table]
    if missing:
        raise InputError(f"Every site needs 'lon' and 'lat' (degrees); missing {missing}.")
    table = table.reset_index(drop=True)
    lon = pd.to_numeric(table["lon"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(table["lat"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(lon) & np.isfinite(lat)) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        raise InputError(f"Sites {_rows(bad)} have no valid longitude/latitude (lon -180..180, lat -90..90).")
    lon, lat = to_wgs84(lon, lat, coord_system)
    ids = (
        table["site_id"].astype(str)
        if "site_id" in table and table["site_id"].notna().all()
        else pd.Series([f"{id_prefix}{i + 1}" for i in range(len(table))])
    )
    if ids.duplicated().any():
        raise InputError(f"Site ids repeat: {sorted(set(ids[ids.duplicated()]))[:10]}. Give each site its own id.")
    kinds = table["kind"].fillna(kind).astype(str).str.lower() if "kind" in table else pd.Series(kind, index=table.index)
    unknown = sorted(set(kinds) - set(FACILITY_KINDS))
    if unknown:
        raise InputError(f"Unknown facility kinds {unknown}; use {', '.join(FACILITY_KINDS)}.")
    names = table["name"].where(table["name"].notna(), ids) if "name" in table else ids
    frame = gpd.GeoDataFrame(
        {
            "name": names.astype(str).to_numpy(),
            "kind": kinds.to_numpy(),
            "status": status,
            "capacity": _numbers(table, "capacity", np.nan),
            "cost": _numbers(table, "cost", 1.0),
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=4326,
        index=pd.Index(ids.to_numpy(dtype=object), name="site_id"),
    ).to_crs(crs)
    for attribute in ATTRIBUTES:
        if attribute in table and attribute.endswith("_code"):
            frame[attribute] = table[attribute].where(table[attribute].notna(), None).to_numpy(dtype=object)
        elif attribute in table:
            frame[attribute] = _numbers(table, attribute, np.nan)
    if boundary is not None:
        region = shapely.union_all(boundary.to_crs(crs).geometry.to_numpy())
        outside = ~frame.within(region).to_numpy()
        if outside.any():
            listed = ", ".join(map(str, frame.index[outside][:10]))
            raise InputError(
                f"{outside.sum()} of {len(frame)} sites lie outside the region: {listed}. They were read as "
                f"{coord_system}; coordinates from Amap/Tencent are gcj02, from Baidu bd09. "
                "Fix the coordinates or the coordinate system."
            )
    return frame


def apply(region: Region, scenario: Scenario) -> Region:
    """``region`` with the scenario's facility list, closures and additions (and candidates)."""
    base = region.facilities if scenario.facilities is None else scenario.facilities.to_crs(region.crs)
    closed = pd.Index([str(c) for c in scenario.closed], dtype=object)
    unknown = closed.difference(base.index.astype(str))
    if len(unknown):
        known = ", ".join(map(str, base.index[:20])) or "none"
        raise InputError(
            f"Cannot close {sorted(unknown)[:10]}: not existing facilities of {region.key}. Existing ids: {known}."
        )
    added = scenario.added.to_crs(region.crs) if scenario.added is not None else empty_sites(region.crs)
    clash = added.index.intersection(base.index)
    if len(clash):
        raise InputError(f"Added site ids {sorted(map(str, clash))[:10]} are already facility ids; give new sites ids of their own.")
    kept = base[~base.index.astype(str).isin(closed)]
    parts = [frame for frame in (kept, added.assign(status="existing")) if len(frame)]
    facilities = (
        gpd.GeoDataFrame(pd.concat(parts), geometry="geometry", crs=region.crs) if parts else empty_sites(region.crs)
    )
    facilities.index.name = "site_id"
    edited = region.with_facilities(facilities)
    if scenario.candidates is not None:
        edited = dataclasses.replace(edited, candidates=scenario.candidates.to_crs(region.crs))
    return edited


def run(region: Region, scenario: Scenario | None = None, *, with_circles: bool = True, gap_group: str = "pop_60",
        reach=None) -> ScenarioResult:
    """Apply ``scenario`` to ``region``, optimise if it asks to, and analyse coverage before and after.

    "Before" is the facility list the scenario starts from (the region's or
    ``Scenario.facilities``); "after" adds the scenario's sites, closes its
    closures, and applies the plan's openings and closures when
    ``Scenario.recommend`` is set. ``reach`` may hand the optimiser walking
    times computed before (:func:`geoplan.optimize.planning_reach` of the
    edited region).
    """
    scenario = scenario or Scenario(name="baseline")
    base = region.facilities if scenario.facilities is None else scenario.facilities.to_crs(region.crs)
    before = analyse_coverage(region, base, with_circles=False).summary
    end = _end_state(region, scenario, base, with_circles=with_circles, gap_group=gap_group, reach=reach)
    return ScenarioResult(scenario=scenario, region=end.region, before=before, report=end.report, plan=end.plan,
                          added=end.added, closed=end.closed, added_cost=end.added_cost)


@dataclasses.dataclass(frozen=True)
class _EndState:
    """What :func:`run` finds after the edits (and the plan), without the coverage before them."""

    region: Region
    report: CoverageReport
    plan: Any
    added: tuple[str, ...]
    closed: tuple[str, ...]
    added_cost: float


def _end_state(region: Region, scenario: Scenario, base: gpd.GeoDataFrame, *, with_circles: bool, gap_group: str = "pop_60",
               reach=None) -> _EndState:
    """The scenario applied to ``region`` (``base``: the sites it starts from), optimised if it asks to, and analysed."""
    edited = apply(region, scenario)
    sites = edited.facilities
    plan = None
    if scenario.recommend is not None:
        from geoplan.optimize import PlanRequest, recommend_request

        if not isinstance(scenario.recommend, PlanRequest):
            raise InputError(f"Scenario.recommend must be a geoplan.optimize.PlanRequest, got {type(scenario.recommend).__name__}.")
        plan = recommend_request(edited, scenario.recommend, reach=reach)
        sites = plan_sites(edited, plan)
    report = analyse_coverage(edited, sites, with_circles=with_circles, gap_group=gap_group)
    added = sites.index.difference(base.index)
    closed = base.index.difference(sites.index)
    cost = pd.to_numeric(sites.loc[added, "cost"], errors="coerce").fillna(1.0).sum() if len(added) else 0.0
    report = dataclasses.replace(report, sites=_marked(report.sites, base, added, closed), site_source="scenario")
    return _EndState(region=edited, report=report, plan=plan, added=tuple(map(str, added)), closed=tuple(map(str, closed)),
                     added_cost=float(cost))


def fold_plan(scenario: Scenario, new_sites: gpd.GeoDataFrame, closed: Sequence[str]) -> Scenario:
    """The scenario's end state as plain edits: its own edits plus a plan's new sites and closures, and no optimiser.

    ``new_sites`` already in the scenario (added by it, or facilities it
    starts from) and closures it already makes are not repeated.
    """
    own_added = scenario.added if scenario.added is not None else None
    taken = set(map(str, own_added.index)) if own_added is not None else set()
    if scenario.facilities is not None:
        taken |= set(map(str, scenario.facilities.index))
    fresh = new_sites[~new_sites.index.astype(str).isin(taken)]
    parts = [frame for frame in (own_added, fresh.to_crs(own_added.crs) if own_added is not None and len(fresh) else fresh) if frame is not None and len(frame)]
    added = gpd.GeoDataFrame(pd.concat(parts), geometry="geometry", crs=parts[0].crs) if parts else None
    if added is not None:
        added.index.name = "site_id"
    more_closed = tuple(c for c in map(str, closed) if c not in set(map(str, scenario.closed)))
    return dataclasses.replace(scenario, added=added, closed=tuple(scenario.closed) + more_closed, recommend=None)


def end_state_report(region: Region, scenario: Scenario, *, plan_new: Iterable[str] = (), with_circles: bool = True) -> CoverageReport:
    """Coverage of a scenario's end state (:func:`fold_plan`), with the plan's own sites marked ``new``."""
    base = region.facilities if scenario.facilities is None else scenario.facilities.to_crs(region.crs)
    report = _end_state(region, scenario, base, with_circles=with_circles).report
    plan_new = set(map(str, plan_new))
    if not plan_new:
        return report
    sites = report.sites.copy()
    status = np.array(sites["status"].astype(object), dtype=object)
    status[sites.index.astype(str).isin(list(plan_new))] = "new"
    sites["status"] = status
    return dataclasses.replace(report, sites=sites)


def plan_sites(region: Region, plan: Any) -> gpd.GeoDataFrame:
    """The facilities after ``plan`` (a :class:`geoplan.optimize.Plan`): the region's, minus its closures, plus its new sites.

    New sites get ``status="new"``; a candidate that takes two kinds appears once.
    """
    sites = plan.sites
    status = sites["status"].astype(str)
    new = sites[status.to_numpy() == "new"]
    new = new[~new.index.duplicated()]
    closed = set(map(str, sites.index[status.to_numpy() == "closed"]))
    kept = region.facilities[~region.facilities.index.astype(str).isin(closed)]
    columns = [c for c in ("name", "kind", "capacity", "cost") if c in new]
    opened = gpd.GeoDataFrame(new[columns].assign(status="new"), geometry=new.geometry.to_numpy(), crs=plan.sites.crs).to_crs(region.crs)
    parts = [frame for frame in (kept, opened) if len(frame)]
    if not parts:
        return empty_sites(region.crs)
    frame = gpd.GeoDataFrame(pd.concat(parts), geometry="geometry", crs=region.crs)
    frame.index.name = "site_id"
    return frame


def compare(results: Sequence[ScenarioResult], *, threshold_min: float | None = None) -> pd.DataFrame:
    """Scenarios side by side: sites, cost and covered people per group (at ``threshold_min``, default the largest).

    One row per scenario (named by ``Scenario.name``); ``covered_<group>`` and
    ``covered_pct_<group>`` per population group, and ``change_<group>``: the
    difference from the first scenario, in people.
    """
    if not results:
        raise InputError("compare() needs at least one scenario result.")
    rows = []
    for result in results:
        summary = result.after
        threshold = threshold_min or max(summary.index.get_level_values("threshold_min"))
        if threshold not in set(summary.index.get_level_values("threshold_min")):
            raise InputError(f"No coverage at {threshold} min; the scenarios were run for {sorted(set(summary.index.get_level_values('threshold_min')))}.")
        at = summary.xs(threshold, level="threshold_min")
        row = {
            "scenario": result.scenario.name,
            "threshold_min": threshold,
            "sites": result.n_sites,
            "added": len(result.added),
            "closed": len(result.closed),
            "added_cost": result.added_cost,
        }
        for group in at.index:
            row[f"covered_{group}"] = at.loc[group, "covered"]
            row[f"covered_pct_{group}"] = at.loc[group, "covered_pct"]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("scenario")
    for column in [c for c in table.columns if c.startswith("covered_") and not c.startswith("covered_pct_")]:
        table[column.replace("covered_", "change_", 1)] = table[column] - table[column].iloc[0]
    return table


def _marked(sites: gpd.GeoDataFrame, base: gpd.GeoDataFrame, added: pd.Index, closed: pd.Index) -> gpd.GeoDataFrame:
    """The analysed sites with ``status`` saying what changed (``added``, ``new`` from a plan), and the closed ones (``closed``) for maps."""
    marked = sites.copy()
    status = np.array(marked["status"].astype(object), dtype=object) if "status" in marked else np.full(len(marked), "existing", dtype=object)
    is_added = marked.index.isin(added) & (status != "new")
    status[is_added] = "added"
    marked["status"] = status
    if len(closed):
        gone = base.loc[closed].assign(status="closed").to_crs(marked.crs)
        marked = gpd.GeoDataFrame(pd.concat([marked, gone]), geometry="geometry", crs=marked.crs)
        marked.index.name = "site_id"
    return marked


def _numbers(table: pd.DataFrame, column: str, default: float) -> np.ndarray:
    if column not in table:
        return np.full(len(table), default)
    values = pd.to_numeric(table[column], errors="coerce")
    bad = (values.isna() & table[column].notna()) | (values < 0)
    if bad.any():
        raise InputError(f"{column!r} must be a number >= 0; sites {_rows(bad.to_numpy())} are not.")
    return values.fillna(default).to_numpy(dtype=float)


def _rows(mask: np.ndarray) -> str:
    positions = np.flatnonzero(mask)
    shown = ", ".join(str(p + 1) for p in positions[:10])
    return shown + (f" and {len(positions) - 10} more" if len(positions) > 10 else "")
