"""Consolidation in the review: under-used facilities, where each would merge, and who would lose coverage.

A facility of a walk-served tier (station, canteen) is *under-used* when
fewer than ``min_catchment`` people of ``group`` live within its tier's walk
(:data:`geoplan.targets.presets.DEFAULT_THRESHOLD_MIN`). Each would merge into
another facility of the same kind: the nearest on foot (walking times between
facilities from :func:`geoplan.reach.travel_times`, the one coverage path)
among those with spare capacity when capacities are known. The people who
would lose coverage are those within its walk and within no other facility
serving the tier (:data:`geoplan.tiers.SERVED_BY`) once it and the ones
before it are closed; a facility merges only if at most ``allow_loss`` people
lose coverage (default none). Under-used facilities are taken smallest
catchment first, so the losses of a row count the closures above it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from geoplan.errors import InputError
from geoplan.coverage import assigned_catchments, catchments
from geoplan.reach import ReachMatrix, within_time
from geoplan.targets.presets import DEFAULT_THRESHOLD_MIN
from geoplan.tiers import SERVED_BY

log = logging.getLogger(__name__)

#: The tiers whose facilities serve a walk (and so have a catchment to judge).
WALK_TIERS = ("station", "canteen")

COLUMNS = [
    "name", "kind", "street_code", "community_code", "catchment", "group", "threshold_min", "merge_into", "merge_into_name",
    "merge_walk_min", "spare_capacity", "lose_pop_60", "lose_pop_80", "can_merge", "reason",
]


@dataclasses.dataclass(frozen=True)
class ConsolidationOptions:
    """When a facility counts as under-used, and how much loss of coverage a merger may cause.

    Parameters
    ----------
    min_catchment
        Facilities with fewer ``group`` people within their tier's walk are
        under-used (None: no consolidation is reviewed).
    group
        The population group a catchment counts.
    allow_loss
        People (of ``group``) who may lose coverage through one merger: 0 by
        default, so only facilities whose people all stay within reach of
        another one may merge.
    max_merge_walk_min
        How far, on foot, a facility may be from the one it merges into.
    """

    min_catchment: float | None = None
    group: str = "pop_60"
    allow_loss: float = 0.0
    max_merge_walk_min: float = 30.0

    def __post_init__(self):
        if self.min_catchment is not None and not (np.isfinite(self.min_catchment) and self.min_catchment >= 0):
            raise InputError(f"min_catchment must be a number of people >= 0, got {self.min_catchment!r}.")
        if not (np.isfinite(self.allow_loss) and self.allow_loss >= 0):
            raise InputError(f"allow_loss must be a number of people >= 0 (0: nobody may lose coverage), got {self.allow_loss!r}.")
        if not (np.isfinite(self.max_merge_walk_min) and self.max_merge_walk_min > 0):
            raise InputError(f"max_merge_walk_min must be positive minutes, got {self.max_merge_walk_min!r}.")


def tier_catchments(facilities: pd.DataFrame, people: pd.DataFrame, reach: ReachMatrix, *, group: str) -> pd.Series:
    """People of ``group`` within each facility's own tier walk (overlapping catchments), by ``site_id``."""
    return _per_tier(facilities, people, reach, group=group, count=catchments)


def review_consolidation(
    facilities: pd.DataFrame,
    people: pd.DataFrame,
    reach: ReachMatrix,
    options: ConsolidationOptions,
    *,
    between: ReachMatrix | None = None,
) -> pd.DataFrame:
    """One row per under-used facility: its catchment, the facility it would merge into, and who would lose coverage.

    Parameters
    ----------
    facilities
        The facilities (``kind``, ``name``, unit codes, optional ``capacity``), indexed by ``site_id``.
    people
        People per group per demand point, rows following ``reach``.
    reach
        Walking times from ``facilities`` to ``people`` (at least the tiers' walks).
    options
        :class:`ConsolidationOptions`.
    between
        Walking times between the facilities (rows: facilities as points,
        columns: facilities), at least ``options.max_merge_walk_min`` long.
        None: nobody merges (the table still says who is under-used).
    """
    if options.min_catchment is None or not len(facilities):
        return pd.DataFrame(columns=COLUMNS, index=pd.Index([], name="site_id"))
    group = options.group
    if group not in people:
        raise InputError(f"Consolidation counts {group!r}, which the demand does not have; use one of {list(people.columns)}.")
    catchment = tier_catchments(facilities, people, reach, group=group)
    values = {g: people[g].to_numpy(dtype=float) for g in ("pop_60", "pop_80", group) if g in people}
    assigned = _assigned(facilities, people, reach, group=group)
    rows = []
    closed: set[str] = set()
    kinds = facilities["kind"].astype(str)
    under = catchment[catchment < options.min_catchment].sort_values(kind="stable")
    pairs = between.to_frame() if between is not None else pd.DataFrame(columns=["demand_id", "site_id", "time_s"])
    for site_id, people_within in under.items():
        kind = kinds[site_id]
        threshold = DEFAULT_THRESHOLD_MIN[kind]
        serving = facilities.index[kinds.isin(SERVED_BY[kind]).to_numpy()]
        others = pd.Index([s for s in serving if s != site_id and s not in closed], dtype=object)
        own = reach.within(threshold * 60.0, sites=pd.Index([site_id], dtype=object)).toarray().ravel() > 0
        still = reach.covered(threshold * 60.0, sites=others) if len(others) else np.zeros(len(own), dtype=bool)
        lost = own & ~still
        lose = {g: float(values[g][lost].sum()) for g in values}
        target, walk_min, spare = _merge_target(site_id, kind, facilities, kinds, pairs, closed, assigned, options)
        row = {
            "name": facilities.at[site_id, "name"] if "name" in facilities else site_id,
            "kind": kind,
            "street_code": facilities.at[site_id, "street_code"] if "street_code" in facilities else None,
            "community_code": facilities.at[site_id, "community_code"] if "community_code" in facilities else None,
            "catchment": float(people_within), "group": group, "threshold_min": threshold,
            "merge_into": target, "merge_into_name": facilities.at[target, "name"] if target is not None and "name" in facilities else None,
            "merge_walk_min": walk_min, "spare_capacity": spare,
            "lose_pop_60": lose.get("pop_60", np.nan), "lose_pop_80": lose.get("pop_80", np.nan),
        }
        loss = lose[group]
        if target is None:
            row["can_merge"] = False
            row["reason"] = (
                f"no other {kind} within {options.max_merge_walk_min:g} min on foot"
                + (" with spare capacity" if "capacity" in facilities and facilities["capacity"].notna().any() else "")
                + f" 步行{options.max_merge_walk_min:g}分钟内无同类设施可并入"
            )
        elif loss > options.allow_loss + 1e-9:
            row["can_merge"] = False
            row["reason"] = (
                f"{loss:,.0f} {group[4:]}+ would lose coverage (more than the {options.allow_loss:,.0f} allowed) "
                f"并入后{loss:,.0f}名老人将失去{threshold:g}分钟覆盖"
            )
        else:
            row["can_merge"] = True
            row["reason"] = (
                f"catchment {people_within:,.0f} < {options.min_catchment:,.0f}; merge into {target} ({walk_min:.1f} min on foot), "
                f"{loss:,.0f} lose coverage 服务人数少于{options.min_catchment:,.0f}，可并入{target}"
            )
            closed.add(site_id)
            if target in assigned.index and site_id in assigned.index:
                assigned[target] += assigned[site_id]
        rows.append({"site_id": site_id, **row})
    table = pd.DataFrame(rows, columns=["site_id", *COLUMNS]).set_index("site_id")
    log.info("consolidation: %d under-used facilities, %d could merge", len(table), int(table["can_merge"].sum()) if len(table) else 0)
    return table


def _assigned(facilities: pd.DataFrame, people: pd.DataFrame, reach: ReachMatrix, *, group: str) -> pd.Series:
    """People of ``group`` who use each facility: everyone goes to the nearest of its kind within the kind's walk."""
    return _per_tier(facilities, people, reach, group=group, count=assigned_catchments).fillna(0.0)


def _per_tier(facilities: pd.DataFrame, people: pd.DataFrame, reach: ReachMatrix, *, group: str, count) -> pd.Series:
    """``count`` (a :mod:`geoplan.coverage` catchment) of each walking tier's facilities at that tier's walk."""
    out = pd.Series(np.nan, index=facilities.index, name=f"catchment_{group}")
    for kind in WALK_TIERS:
        ids = pd.Index(facilities.index[facilities["kind"].astype(str).to_numpy() == kind], dtype=object)
        if len(ids):
            out.loc[ids] = count(people, reach.select(ids), threshold_min=DEFAULT_THRESHOLD_MIN[kind])[group].to_numpy()
    return out


def _merge_target(site_id, kind, facilities, kinds, pairs, closed, assigned, options) -> tuple[str | None, float, float]:
    """The facility of the same kind to merge into, its walk in minutes and its spare capacity (NaN: unknown)."""
    if pairs.empty:
        return None, np.nan, np.nan
    walks = pairs[(pairs["demand_id"] == site_id) & (pairs["site_id"] != site_id)]
    same = np.array([kinds.get(s) == kind and s not in closed for s in walks["site_id"]], dtype=bool)
    walks = walks[same]
    walks = walks[within_time(walks["time_s"].to_numpy(), options.max_merge_walk_min * 60.0)].sort_values(["time_s", "site_id"])
    capacity = pd.to_numeric(facilities["capacity"], errors="coerce") if "capacity" in facilities else pd.Series(np.nan, index=facilities.index)
    need = float(assigned.get(site_id, 0.0))
    for target, time_s in zip(walks["site_id"], walks["time_s"]):
        cap = capacity.get(target, np.nan)
        spare = float(cap - assigned.get(target, 0.0)) if np.isfinite(cap) else np.nan
        if np.isfinite(spare) and spare < need - 1e-9:
            continue  # known to be full
        return str(target), float(time_s) / 60.0, spare
    return None, np.nan, np.nan
