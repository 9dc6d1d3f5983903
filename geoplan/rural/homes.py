"""Merging remote rural homes (敬老院): rank the small, under-used and remote ones, propose a larger home for each.

A home is a facility of kind ``home`` with ``beds`` and ``residents`` (在院人数).
Each home is ranked by how strong a case it makes for merging: fewest
residents first, then lowest use (residents / beds), then most remote
(longest drive to the nearest hub: by default the existing town centres and
county kitchen, else the region's 60+-weighted centre, labelled so). A home
with fewer than ``max_residents`` residents or a use below ``max_use_pct``
is a *merge candidate*; in rank order, each moves into the nearest home by
``mode`` (car by default) within ``max_drive_min`` that

* has more beds than it (a larger home),
* is not itself closing, and
* has the spare beds (beds - residents, counting the residents it has already
  taken in) for every one of its residents.

So no merge ever leaves a resident without a bed: capacity is never lost
(:func:`check_capacity` verifies it on the result). Each proposal says what a
resident gains or loses: ``gain_min`` (the drive to the nearest hub before
minus after: positive, nearer services) and ``visit_extra_min`` (the drive
from the old home to the new one: at most what a visiting family near the old
home now drives more). Where the residents come from is not in the data, so
both are per home, the same for each of its residents.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan.errors import InputError
from geoplan.modes import get_mode, mode_router
from geoplan.reach import within_time

if TYPE_CHECKING:
    from geoplan.region import Region

log = logging.getLogger(__name__)

#: Column names read as a home's residents (在院人数), compared without case.
RESIDENT_NAMES = ("residents", "occupied_beds", "在院人数", "入住人数", "在住人数", "在院老人", "供养人数", "入住老人数")

COLUMNS = [
    "rank", "name", "beds", "residents", "use_pct", "remote_min", "merge_candidate", "merge_into", "merge_into_name", "into_beds",
    "into_residents_before", "into_spare_before", "into_residents_after", "drive_min", "remote_after_min", "gain_min", "visit_extra_min",
    "can_merge", "reason", "mode", "time_source", "hub_source",
]


@dataclasses.dataclass(frozen=True)
class HomeMergeOptions:
    """Which homes are merge candidates, and how far a merge may move their residents.

    Parameters
    ----------
    max_residents
        Homes with fewer residents are merge candidates (an assumption: a
        home this small struggles to staff round-the-clock care; give yours).
    max_use_pct
        Homes used below this share of their beds are merge candidates.
    max_drive_min
        The receiving home lies within this drive (``mode``).
    mode
        The travel mode of the drives (:mod:`geoplan.modes`).
    hub_cutoff_min
        How far the drive to the nearest hub is looked for (beyond: ``inf``).
    """

    max_residents: float = 30.0
    max_use_pct: float = 50.0
    max_drive_min: float = 30.0
    mode: str = "car"
    hub_cutoff_min: float = 180.0

    def __post_init__(self):
        for name, low in (("max_residents", 0), ("max_use_pct", 0), ("max_drive_min", 1e-9), ("hub_cutoff_min", 1e-9)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
                raise InputError(f"HomeMergeOptions.{name} must be a number >= {low:g}, got {value!r}.")
        if self.max_use_pct > 100:
            raise InputError(f"HomeMergeOptions.max_use_pct is a percentage of beds (0-100), got {self.max_use_pct!r}.")


@dataclasses.dataclass(frozen=True)
class HomeMerges:
    """The merge proposals: one row per home (``table``), with what the whole set does."""

    table: pd.DataFrame
    options: HomeMergeOptions
    hub_source: str

    @property
    def proposals(self) -> pd.DataFrame:
        return self.table[self.table["can_merge"]]

    def summary(self) -> dict:
        moved = self.proposals
        return {
            "homes": int(len(self.table)), "merge_candidates": int(self.table["merge_candidate"].sum()), "merges": int(len(moved)),
            "residents_moved": float(moved["residents"].sum()), "beds_closed": float(moved["beds"].sum()),
            "beds_after": float(self.table["beds"].sum() - moved["beds"].sum()), "residents": float(self.table["residents"].sum()),
            "mode": self.options.mode, "hub_source": self.hub_source, "capacity_kept": bool(check_capacity(self.table)),
        }


def homes_with_residents(facilities: gpd.GeoDataFrame, path=None) -> gpd.GeoDataFrame:
    """The homes of a facility list with ``residents``: its own column, or read again from the file ``path`` by id.

    :func:`geoplan.sites.load_facilities` keeps only the attributes it knows,
    so a list's residents column (:data:`RESIDENT_NAMES`) is joined here.
    """
    homes = facilities[facilities["kind"].astype(str) == "home"].copy()
    if "residents" in homes or not len(homes):
        return homes
    if path is None:
        raise InputError("The homes have no residents column; add one (residents / 在院人数) to the facility list.")
    from geoplan import _files
    from geoplan.sites import _read_csv, _read_excel

    suffix = str(path).lower()
    if suffix.endswith((".csv", ".txt")):
        table = _read_csv(_files.existing_file(path, what="facility"))
    elif suffix.endswith(tuple(_files.EXCEL_SUFFIXES)):
        table, _ = _read_excel(_files.existing_file(path, what="facility"), None)
    else:
        table = pd.DataFrame(_files.read_vector(path, what="facility").drop(columns="geometry"))
    column = _files.find_column(table, RESIDENT_NAMES)
    if column is None:
        raise InputError(f"{path} has no residents column ({', '.join(RESIDENT_NAMES[:4])}...); add the residents of each home to review merges.")
    ids = _files.find_column(table, ("site_id", "id", "编号"))
    keys = table[ids].astype(str).to_numpy() if ids else np.array([f"f{i + 1:03d}" for i in range(len(table))])
    values = pd.Series(pd.to_numeric(table[column], errors="coerce").to_numpy(), index=keys)
    homes["residents"] = values.reindex(homes.index.astype(str)).to_numpy()
    return homes


def merge_homes(region: "Region", homes: gpd.GeoDataFrame, *, options: HomeMergeOptions = HomeMergeOptions(),
                hubs: gpd.GeoDataFrame | None = None, fallback: str | None = None) -> HomeMerges:
    """Rank ``homes`` (``beds``, ``residents``) and propose merges that never lose capacity (see the module docstring).

    ``hubs`` are the points remoteness is measured to (default: the region's
    facilities of kind ``centre`` and ``district_centre``; with none, the
    region's 60+-weighted centre, labelled as derived). A home with no road
    of the mode within ``max_access_m`` cannot be timed and is said so;
    ``fallback="detour"`` times it by the straight line x detour instead
    (:func:`geoplan.modes.with_fallback`, labelled in ``time_source``).
    """
    from geoplan.modes import FALLBACK_LABEL, with_fallback

    if fallback not in (None, "detour"):
        raise InputError(f"fallback must be None or 'detour', got {fallback!r}.")
    homes = _checked(homes)
    mode = get_mode(options.mode, region.config)
    hubs, hub_source = _hubs(region, hubs)
    network = region.network_for(mode)
    max_access = region.config.analysis.max_access_m
    points = homes[["geometry"]].to_crs(region.crs)
    hub_points = hubs[["geometry"]].to_crs(region.crs)
    router = mode_router(network, points, max_access_m=max_access)
    drives = router.travel_times(points, cutoff_s=options.max_drive_min * 60.0)
    to_hubs = router.travel_times(hub_points, cutoff_s=options.hub_cutoff_min * 60.0)
    off_road = set(drives.off_network)
    timed_by_line: set = set()
    if fallback == "detour":
        drives = with_fallback(drives, router, points, points, mode)
        to_hubs = with_fallback(to_hubs, router, points, hub_points, mode)
        timed_by_line = set(drives.fallback_demand) | set(drives.fallback_sites)
    between = drives.to_frame()
    between = between[between["demand_id"] != between["site_id"]]
    remote = to_hubs.nearest_time_s() / 60.0

    beds = homes["beds"].astype(float)
    residents = homes["residents"].astype(float)
    use = 100.0 * residents / beds
    order = pd.DataFrame({"residents": residents, "use": use, "remote": -remote.reindex(homes.index).fillna(np.inf)})
    ranked = order.sort_values(["residents", "use", "remote"], kind="stable").index
    occupants = residents.copy()
    closing: set = set()
    receiving: set = set()
    rows = []
    for rank, home in enumerate(ranked, start=1):
        row = {
            "rank": rank, "name": homes.at[home, "name"] if "name" in homes else str(home), "beds": beds[home], "residents": residents[home],
            "use_pct": use[home], "remote_min": float(remote.get(home, np.inf)), "mode": mode.name, "hub_source": hub_source,
            "time_source": FALLBACK_LABEL if home in timed_by_line else "no road within reach" if home in off_road else "network",
            "merge_into": None, "merge_into_name": None, "into_beds": np.nan, "into_residents_before": np.nan, "into_spare_before": np.nan,
            "into_residents_after": np.nan, "drive_min": np.nan, "remote_after_min": np.nan, "gain_min": np.nan, "visit_extra_min": np.nan,
        }
        candidate = residents[home] < options.max_residents or use[home] < options.max_use_pct
        row["merge_candidate"] = bool(candidate)
        if not candidate:
            row.update(can_merge=False, reason=f"{residents[home]:,.0f} residents, {use[home]:.0f} % used: not a merge candidate 规模与使用率达标")
        elif home in off_road and fallback is None:
            row.update(can_merge=False, reason=(
                f"no {mode.name} road within {max_access:g} m in the street file: its drives cannot be timed (place it on its road, "
                f"or ask for the straight-line fallback) 路网中{max_access:g}米内无道路"))
        elif home in receiving:
            row.update(can_merge=False, reason="takes in the residents of a home merged before it 已接收其他机构老人")
        else:
            target, drive_s = _receiver(home, between, beds, occupants, closing, options)
            if target is None:
                row.update(can_merge=False, reason=(
                    f"no larger home within {options.max_drive_min:g} min by {mode.name} with {residents[home]:,.0f} spare beds "
                    f"{options.max_drive_min:g}分钟车程内无床位充足的较大机构"))
            else:
                before = occupants[target]
                occupants[target] = before + occupants[home]
                occupants[home] = 0.0
                closing.add(home)
                receiving.add(target)
                after_remote = float(remote.get(target, np.inf))
                row.update(
                    merge_into=str(target), merge_into_name=homes.at[target, "name"] if "name" in homes else str(target), into_beds=beds[target],
                    into_residents_before=before, into_spare_before=beds[target] - before, into_residents_after=occupants[target],
                    drive_min=drive_s / 60.0, remote_after_min=after_remote, gain_min=row["remote_min"] - after_remote,
                    visit_extra_min=drive_s / 60.0, can_merge=True,
                    reason=(f"{residents[home]:,.0f} residents into {target} ({drive_s / 60:.1f} min by {mode.name}; "
                            f"{beds[target] - before:,.0f} spare beds) 并入{target}"),
                )
        rows.append({"site_id": home, **row})
    table = pd.DataFrame(rows, columns=["site_id", *COLUMNS]).set_index("site_id")
    if not check_capacity(table):  # by construction; a failure here is a bug, not bad input
        raise AssertionError("a merge proposal would leave residents without beds")
    log.info("homes: %d homes, %d merge candidates, %d merges", len(table), int(table["merge_candidate"].sum()), int(table["can_merge"].sum()))
    return HomeMerges(table=table, options=options, hub_source=hub_source)


def check_capacity(table: pd.DataFrame) -> bool:
    """Whether the proposals keep every resident in a bed: each receiving home's residents after every merge into it fit its beds.

    Recounts from ``beds``, ``residents`` and ``merge_into`` alone (not from
    the running columns), and checks that no closing home takes anyone in.
    """
    moved = table[table["can_merge"].astype(bool)]
    if moved.empty:
        return True
    closing = set(moved.index)
    if closing & set(moved["merge_into"]):
        return False
    arriving = moved.groupby("merge_into")["residents"].sum()
    after = table["residents"].reindex(arriving.index) + arriving
    return bool((after <= table["beds"].reindex(arriving.index) + 1e-9).all())


def _receiver(home, between: pd.DataFrame, beds: pd.Series, occupants: pd.Series, closing: set, options: HomeMergeOptions):
    """The nearest larger home, not closing, with the spare beds for ``home``'s residents (and the drive, s)."""
    drives = between[between["demand_id"] == home].sort_values(["time_s", "site_id"])
    need = occupants[home]
    for target, time_s in zip(drives["site_id"], drives["time_s"]):
        if target in closing or beds[target] <= beds[home] or not within_time(time_s, options.max_drive_min * 60.0):
            continue
        if beds[target] - occupants[target] >= need - 1e-9:
            return target, float(time_s)
    return None, np.nan


def _checked(homes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if not isinstance(homes, gpd.GeoDataFrame):
        raise InputError("homes must be a GeoDataFrame of homes (kind home) with beds and residents columns.")
    missing = [c for c in ("beds", "residents") if c not in homes]
    if missing:
        raise InputError(f"The homes lack {', '.join(missing)}: add beds (床位) and residents (在院人数) per home to review merges.")
    if homes.index.has_duplicates:
        raise InputError(f"Home ids repeat: {sorted(map(str, homes.index[homes.index.duplicated()]))[:10]}.")
    beds = pd.to_numeric(homes["beds"], errors="coerce")
    residents = pd.to_numeric(homes["residents"], errors="coerce")
    bad = homes.index[~(beds > 0) | ~(residents >= 0) | beds.isna() | residents.isna()]
    if len(bad):
        raise InputError(f"Homes {sorted(map(str, bad))[:10]} need beds > 0 and residents >= 0 (numbers); fix those rows.")
    over = homes.index[residents > beds]
    if len(over):
        raise InputError(f"Homes {sorted(map(str, over))[:10]} have more residents than beds; check the two columns.")
    homes = homes.copy()
    homes["beds"], homes["residents"] = beds.astype(float), residents.astype(float)
    return homes


def _hubs(region: "Region", hubs: gpd.GeoDataFrame | None) -> tuple[gpd.GeoDataFrame, str]:
    if hubs is not None:
        if not len(hubs):
            raise InputError("hubs is empty; give at least one point to measure remoteness to, or leave it out.")
        return hubs, f"the {len(hubs)} hubs given"
    facilities = region.facilities
    chosen = facilities[facilities["kind"].astype(str).isin(["centre", "district_centre"])] if len(facilities) else facilities
    if len(chosen):
        return chosen, f"the region's {len(chosen)} town centres and county kitchens (kind centre, district_centre)"
    demand = region.demand
    group = "pop_60" if "pop_60" in demand else demand.columns[0]
    weights = demand[group].to_numpy(dtype=float)
    x = float(np.average(demand.geometry.x, weights=weights))
    y = float(np.average(demand.geometry.y, weights=weights))
    xy = np.column_stack([demand.geometry.x, demand.geometry.y])
    nearest = int(np.argmin(np.hypot(xy[:, 0] - x, xy[:, 1] - y)))  # a populated cell, not a field
    centre = gpd.GeoDataFrame(geometry=[demand.geometry.iloc[nearest]], crs=demand.crs, index=pd.Index(["centre"], name="site_id"))
    return centre, "derived: the region's 60+-weighted centre (no town centre or county kitchen in the facility list)"
