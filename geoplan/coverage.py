"""Coverage and gaps: who lives within a walk of care, counted in people.

Every function takes demand (people per group per point) and a
:class:`~geoplan.reach.ReachMatrix` and returns pandas objects labelled by
group, threshold, site or community unit. Percentages always stand beside the
people they describe.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan.demand import GROUP_LABELS, population_columns
from geoplan.errors import InputError
from geoplan.reach import ReachMatrix, within_time


def nearest_time_s(reach: ReachMatrix, demand: pd.DataFrame) -> pd.Series:
    """Each demand point's walk to its nearest site, in seconds, following ``demand``'s rows (inf: none within the cutoff)."""
    return reach.nearest_time_s().reindex(demand.index, fill_value=np.inf)


def covered(reach: ReachMatrix, demand: pd.DataFrame, threshold_min: float) -> np.ndarray:
    """Per row of ``demand``: some site is within ``threshold_min`` (refused beyond the reach's cutoff)."""
    threshold_s = reach.check_threshold(threshold_min * 60)
    return within_time(nearest_time_s(reach, demand).to_numpy(), threshold_s)


def coverage_summary(
    demand: pd.DataFrame,
    reach: ReachMatrix,
    *,
    thresholds_min: tuple[float, ...] = (5, 10, 15),
) -> pd.DataFrame:
    """People covered and not covered, per group and threshold.

    Returns one row per (group, threshold_min) with ``population``,
    ``covered``, ``not_covered``, ``covered_pct``, and the part of the
    not-covered people who live too far from any walkable street to be reached
    on foot at all (``not_reachable_on_foot``).
    """
    unreachable = off_network(reach, demand)
    nearest = nearest_time_s(reach, demand).to_numpy()  # once, for every threshold
    within = {threshold: within_time(nearest, reach.check_threshold(threshold * 60)) for threshold in thresholds_min}
    rows = []
    for group in population_columns(demand):
        people = demand[group].to_numpy()
        total = people.sum()
        for threshold in thresholds_min:
            people_covered = people[within[threshold]].sum()
            rows.append(
                {
                    "group": group,
                    "label": GROUP_LABELS.get(group, group),
                    "threshold_min": threshold,
                    "population": total,
                    "covered": people_covered,
                    "not_covered": total - people_covered,
                    "covered_pct": 100 * people_covered / total if total else np.nan,
                    "not_reachable_on_foot": people[unreachable].sum(),
                }
            )
    return pd.DataFrame(rows).set_index(["group", "threshold_min"])


def catchments(demand: pd.DataFrame, reach: ReachMatrix, *, threshold_min: float = 15) -> pd.DataFrame:
    """People within ``threshold_min`` of each site, per group (overlapping catchments)."""
    within = reach.within(threshold_min * 60)
    groups = population_columns(demand)
    people = demand.loc[reach.demand_ids, groups].to_numpy()
    table = pd.DataFrame(within.T @ people, index=reach.site_ids, columns=groups)
    table.index.name = "site_id"
    return table


def assigned_catchments(demand: pd.DataFrame, reach: ReachMatrix, *, threshold_min: float = 15) -> pd.DataFrame:
    """People per site when everyone goes to their nearest site within ``threshold_min``.

    Unlike :func:`catchments`, nobody is counted twice: the columns add up to
    the covered population.
    """
    times = reach.limited(threshold_min * 60).tocoo()
    pairs = pd.DataFrame({"d": times.row, "s": times.col, "t": times.data})
    nearest = pairs.sort_values(["d", "t", "s"]).drop_duplicates("d")
    groups = population_columns(demand)
    people = demand.loc[reach.demand_ids, groups].to_numpy()[nearest["d"].to_numpy()]
    table = pd.DataFrame(people, columns=groups).groupby(nearest["s"].to_numpy()).sum()
    table = table.reindex(range(len(reach.site_ids)), fill_value=0.0)
    table.index = reach.site_ids
    table.index.name = "site_id"
    return table


def by_unit(
    demand: pd.DataFrame,
    reach: ReachMatrix,
    *,
    threshold_min: float = 15,
    sites: gpd.GeoDataFrame | None = None,
    communities: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Coverage per community unit: people per group, covered people, and sites inside.

    ``demand`` needs a ``unit_id`` column (-1 for points in no unit). With
    ``sites`` and ``communities``, ``sites_inside`` counts the sites in each
    unit, for targets such as "60 % of communities have a day-care station".
    """
    if "unit_id" not in demand:
        raise InputError("The demand has no unit_id column: give the region community units ([communities] in its config).")
    groups = population_columns(demand)
    is_covered = covered(reach, demand, threshold_min)
    frame = demand[groups].copy()
    frame["unit_id"] = demand["unit_id"].to_numpy()
    totals = frame.groupby("unit_id")[groups].sum()
    covered_people = frame[is_covered].groupby("unit_id")[groups].sum().reindex(totals.index, fill_value=0.0)
    table = totals.join(covered_people.add_suffix("_covered"))
    for group in groups:
        table[f"{group}_covered_pct"] = 100 * table[f"{group}_covered"] / table[group].where(table[group] > 0)
    if communities is not None:
        table = table.reindex(communities.index.union(table.index))
        table.loc[:, groups + [f"{g}_covered" for g in groups]] = table[groups + [f"{g}_covered" for g in groups]].fillna(0.0)
    if sites is not None and communities is not None:
        joined = gpd.sjoin(sites[["geometry"]], communities[["geometry"]].to_crs(sites.crs), predicate="within")
        table["sites_inside"] = joined.groupby("unit_id").size().reindex(table.index, fill_value=0).astype(int)
    table.index.name = "unit_id"
    return table


def gaps(
    demand: gpd.GeoDataFrame,
    reach: ReachMatrix,
    *,
    threshold_min: float = 15,
    group: str = "pop_60",
) -> gpd.GeoDataFrame:
    """The cells whose ``group`` people live beyond ``threshold_min`` of every site.

    Returns the cell squares (``cell`` column of the demand, or the points when
    there is none) with every group's people, the walk to the nearest site
    (``nearest_time_min``, inf beyond the reach cutoff) and ``on_foot`` (False
    where no walkable street is near enough to reach the cell at all).
    """
    if group not in population_columns(demand):
        raise InputError(f"Unknown population group {group!r}; the demand has {population_columns(demand)}.")
    nearest = nearest_time_s(reach, demand)
    uncovered = ~covered(reach, demand, threshold_min) & (demand[group].to_numpy() > 0)
    groups = population_columns(demand)
    cells = demand.loc[uncovered]
    geometry = cells["cell"] if "cell" in cells else cells.geometry
    result = gpd.GeoDataFrame(
        cells[groups].copy(),
        geometry=gpd.GeoSeries(geometry, crs=demand.crs),
    )
    result["nearest_time_min"] = nearest[uncovered] / 60
    result["on_foot"] = ~off_network(reach, demand)[uncovered]
    if "unit_id" in cells:
        result["unit_id"] = cells["unit_id"].to_numpy()
    return result.sort_values(group, ascending=False)


def off_network(reach: ReachMatrix, demand: pd.DataFrame) -> np.ndarray:
    """Per row of ``demand``: no walkable street near enough to reach it on foot at all."""
    off = demand.index.isin(reach.off_network)
    if "edge_id" in demand:
        off |= demand["edge_id"].to_numpy() < 0
    return off
