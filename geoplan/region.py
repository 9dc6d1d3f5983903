"""A prepared region: boundary, walk network, demand, community units and sites, loaded once."""

from __future__ import annotations

import dataclasses
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan import _files
from geoplan.config import RegionConfig, check_files, load_config
from geoplan.demand import census_totals_for, load_demand, population_columns
from geoplan.errors import ConfigError, CRSMismatchError, EmptyDataError, InputError
from geoplan.network import DEFAULT_EXCLUDED_HIGHWAYS, WalkNetwork, load_network
from geoplan.reach import ReachMatrix, Router
from geoplan.sites import candidates_from_communities, candidates_from_network, empty_sites, load_facilities
from geoplan.snapping import SNAP_COLUMNS, snap_to_network

if TYPE_CHECKING:
    from geoplan.modes import TravelMode
    from geoplan.units import PlanningUnits

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$GEOPLAN_CACHE_DIR``, else ``~/.cache/geoplan``."""
    return Path(os.environ.get("GEOPLAN_CACHE_DIR", Path.home() / ".cache" / "geoplan"))


@dataclasses.dataclass(frozen=True)
class Region:
    """Everything an analysis of one region needs, in one metric CRS.

    Attributes
    ----------
    demand
        Populated raster cells (or the ``[demand_points]``) indexed by
        ``demand_id``: people per group (``pop_*``, with the ``[registers]``
        groups), where each joins the street network (``edge_id``,
        ``access_m``...), its ``component`` (-1: no street within reach on foot)
        and its community ``unit_id`` (-1: in none).
    candidates, facilities
        Candidate and existing sites indexed by ``site_id``.
    cache_dir
        Where prepared networks are cached (the networks of other travel
        modes, :mod:`geoplan.modes`, are loaded there on first use).
    """

    config: RegionConfig
    boundary: gpd.GeoDataFrame
    network: WalkNetwork
    demand: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame | None
    candidates: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    census_factors: dict[str, float]
    cache_dir: Path | None = None

    @property
    def crs(self):
        return self.network.crs

    @property
    def key(self) -> str:
        return self.config.key

    @property
    def groups(self) -> list[str]:
        """The population groups of the demand, e.g. ``['pop_total', 'pop_60', 'pop_65', 'pop_80']``."""
        return population_columns(self.demand)

    @property
    def thresholds_min(self) -> tuple[int, ...]:
        return tuple(self.config.analysis.thresholds_min)

    @cached_property
    def units(self) -> "PlanningUnits":
        """The planning units: streets (or approximate zones) and communities (built on first use).

        From the config's ``[units]``, else approximate zones from the community
        units (:func:`geoplan.units.region_units`). Points in no unit are
        :data:`geoplan.units.OUTSIDE`: ``region.units.locate(region.demand)``.
        """
        from geoplan.units import region_units

        return region_units(self)

    @cached_property
    def router(self) -> Router:
        """The network and demand prepared for reach queries (built on first use)."""
        return Router(self.network, self.demand, max_access_m=self.config.analysis.max_access_m)

    def reach(
        self, sites: gpd.GeoDataFrame, *, cutoff_min: float | None = None, mode: "str | TravelMode | None" = None,
        fallback: str | None = None,
    ) -> ReachMatrix:
        """Walking times from ``sites`` to every demand point, up to the largest threshold.

        ``mode`` (``"ebike"``, ``"car"``, a :class:`geoplan.modes.TravelMode`)
        times them by that mode instead, on its own network (a
        :class:`geoplan.modes.ModeReachMatrix`, which names its mode);
        ``fallback="detour"`` adds straight-line times for points no road
        reaches, labelled (:func:`geoplan.modes.mode_reach`).
        """
        cutoff_min = cutoff_min or max(self.thresholds_min)
        if mode in (None, self.network.mode) and fallback is None and self.network.mode == "walk":
            return self.router.travel_times(sites, cutoff_s=cutoff_min * 60)
        from geoplan.modes import mode_reach

        return mode_reach(self, sites, cutoff_min=cutoff_min, mode=mode, fallback=fallback)

    @property
    def mode(self) -> str:
        """The travel mode of the region's network (``walk`` unless built for another, :meth:`for_mode`)."""
        return self.network.mode

    @cached_property
    def _mode_cache(self) -> dict:
        return {}

    def network_for(self, mode: "str | TravelMode") -> WalkNetwork:
        """The region's network for ``mode`` (loaded, or read from the cache, on first use)."""
        from geoplan.modes import get_mode, load_mode_network

        travel = get_mode(mode, self.config)
        if travel.on_region_network and self.network.mode == "walk":
            return self.network
        if travel.name == self.network.mode == self.config.default_mode and travel.key() == get_mode(travel.name, self.config).key():
            return self.network  # the region was loaded for this mode ([modes] default)
        key = ("network", travel.key())
        if key not in self._mode_cache:
            if travel.on_region_network:
                network = _walk_network(self.config, self.boundary, self.crs, self.cache_dir)
            else:
                network = load_mode_network(self.config, self.boundary, travel, crs=self.crs, cache_dir=self.cache_dir)
            self._mode_cache[key] = network
        return self._mode_cache[key]

    def router_for(self, mode: "str | TravelMode") -> Router:
        """The demand prepared for reach queries on ``mode``'s network (built on first use)."""
        from geoplan.modes import get_mode, mode_router

        network = self.network_for(mode)
        if network is self.network:
            return self.router
        key = ("router", get_mode(mode, self.config).key())
        if key not in self._mode_cache:
            self._mode_cache[key] = mode_router(network, self.demand[["geometry"]], max_access_m=self.config.analysis.max_access_m)
        return self._mode_cache[key]

    def for_mode(self, mode: "str | TravelMode") -> "Region":
        """The same region on ``mode``'s network: its demand joined to that network, so every analysis runs in that mode."""
        network = self.network_for(mode)
        if network is self.network:
            return self
        from geoplan.modes import get_mode

        demand = self.demand.drop(columns=[c for c in (*SNAP_COLUMNS, "component") if c in self.demand.columns])
        region = dataclasses.replace(self, network=network, demand=_joined_to(network, demand, self.config.analysis.max_access_m))
        region._mode_cache.update({k: v for k, v in self._mode_cache.items() if k[0] == "network"})
        region._mode_cache[("network", get_mode(mode, self.config).key())] = network  # its own network: region.router serves it
        if self.network.mode == "walk":
            region._mode_cache[("network", get_mode("walk", self.config).key())] = self.network
        return region

    def with_facilities(self, facilities: gpd.GeoDataFrame) -> "Region":
        """The same region with another list of existing facilities (its prepared router shared: facilities change neither
        the network nor the demand)."""
        region = dataclasses.replace(self, facilities=facilities.to_crs(self.crs))
        if "router" in self.__dict__:
            region.__dict__["router"] = self.__dict__["router"]
        return region


def load_region(
    name_or_path: str | Path | RegionConfig = "wuchang",
    *,
    cache_dir: str | Path | None = None,
    facilities: str | Path | None = None,
    coord_system: str | None = None,
    drop_outside: bool = False,
    sheet: str | int | None = None,
) -> Region:
    """Load a region from its config: a shipped name (``wuchang``, ``jiangan``) or a TOML path.

    ``facilities`` overrides the config's facility list (with ``coord_system``:
    ``wgs84``, ``gcj02`` or ``bd09``; ``sheet``: which sheet of an Excel
    list, default the first). The prepared network is cached in
    ``cache_dir`` (default :func:`default_cache_dir`).
    """
    config = name_or_path if isinstance(name_or_path, RegionConfig) else load_config(name_or_path)
    check_files(config, skip=("facilities",) if facilities is not None else ())
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    boundary_raw = _read_filtered(config.boundary.path, config.boundary.where, what="boundary", layer=config.boundary.layer)
    _check_geographic_plausible(boundary_raw, config.boundary.path)
    _check_polygons(boundary_raw, config.boundary.path)
    crs = boundary_raw.estimate_utm_crs()
    boundary = boundary_raw.to_crs(crs)
    district = None
    if config.boundary.clip_to_network:  # the part of the district the street file covers (geoplan.extent)
        from geoplan.extent import clip_to_extent

        district, boundary = boundary, clip_to_extent(boundary, config.network.path)

    analysis = config.analysis
    if config.default_mode == "walk":
        network = _walk_network(config, boundary, crs, cache_dir)
    else:  # a region built for another travel mode ([modes] default; geoplan.modes)
        from geoplan.modes import load_mode_network

        network = load_mode_network(config, boundary, config.default_mode, crs=crs, cache_dir=cache_dir)

    if config.demand_points is not None:  # counted points (residential compounds) instead of the raster
        from geoplan.demand import CENSUS_COLUMNS
        from geoplan.registers import load_demand_points

        points = config.demand_points
        raw_demand = load_demand_points(
            points.path, crs=crs, boundary=boundary, coord_system=points.coord_system, cell_m=points.cell_m,
            columns=points.columns, sheet=points.sheet, outside="drop" if drop_outside else "error",
        )
        totals = _census_totals(config, [g for g in population_columns(raw_demand) if g in CENSUS_COLUMNS])
    else:
        bands = config.population.bands or None
        raw_demand = load_demand(config.population.path, boundary, crs=crs, **({"bands": bands} if bands else {}))
        totals = _census_totals(config, population_columns(raw_demand))
        if district is not None and totals:  # the district's totals, shared as its raster shares them: the district's own factor
            from geoplan.extent import raw_district_demand

            whole = raw_district_demand(config)
            totals = {g: v * float(raw_demand[g].sum()) / float(whole[g].sum()) if whole[g].sum() > 0 else 0.0 for g, v in totals.items()}
    demand = raw_demand
    factors: dict[str, float] = {}
    if totals:
        from geoplan.demand import rescale_to_totals

        census = config.census
        source = (
            f"The census totals ([census] totals of {config.source.name})" if census.totals
            else f"The census row {census.code!r} ([census] of {config.source.name})"
        ) + (", shared by the raster with the part inside the street network's extent" if district is not None else "")
        limit = {"max_factor": census.max_factor} if census.max_factor is not None else {}
        demand = rescale_to_totals(raw_demand, totals, source=source, **limit)
        factors = {g: float(totals[g] / raw_demand[g].sum()) for g in totals}

    demand = _joined_to(network, demand, analysis.max_access_m)

    communities = None
    if config.communities is not None:
        communities = _load_communities(config, crs)
        demand["unit_id"] = _unit_of(demand, communities)
    if config.registers is not None:
        demand = _with_register(config, demand, communities)

    candidates = (
        candidates_from_communities(network, communities)
        if communities is not None
        else candidates_from_network(network, boundary)
    )
    facility_path = facilities or (config.facilities.path if config.facilities else None)
    if facility_path is not None:
        system = coord_system or (config.facilities.coord_system if config.facilities else "wgs84")
        kind = config.facilities.kind if config.facilities else "station"
        existing = load_facilities(
            facility_path, crs=crs, boundary=boundary, coord_system=system, kind=kind,
            outside="drop" if drop_outside else "error", sheet=sheet,
        )
    else:
        existing = empty_sites(crs)
    return Region(
        config=config,
        boundary=boundary,
        network=network,
        demand=demand,
        communities=communities,
        candidates=candidates,
        facilities=existing,
        census_factors=factors,
        cache_dir=cache_dir,
    )


def _walk_network(config: RegionConfig, boundary: gpd.GeoDataFrame, crs, cache_dir) -> WalkNetwork:
    """The region's walking network, as its config describes it."""
    speed = config.network.walk_speed_mps
    buffer_m = config.network.buffer_m
    if buffer_m is None:  # far enough that no walk within the largest threshold leaves the clipped network
        buffer_m = max(config.analysis.thresholds_min) * 60 * speed + 100
    return load_network(
        config.network.path,
        boundary=boundary,
        buffer_m=buffer_m,
        crs=crs,
        walk_speed_mps=speed,
        excluded_highways=config.network.excluded_highways or DEFAULT_EXCLUDED_HIGHWAYS,
        cache_dir=cache_dir,
    )


def _joined_to(network: WalkNetwork, demand: gpd.GeoDataFrame, max_access_m: float) -> gpd.GeoDataFrame:
    """The demand with where each point joins ``network`` (the snap columns) and its ``component`` (-1: no street within reach)."""
    demand = demand.join(snap_to_network(network, demand, max_access_m=max_access_m))
    on_street = demand["edge_id"].to_numpy() >= 0
    component = np.full(len(demand), -1)
    edge_u = network.edges["u"].to_numpy()[demand["edge_id"].to_numpy()[on_street]]
    component[on_street] = network.nodes["component"].loc[edge_u].to_numpy()
    demand["component"] = component
    return demand


def _with_register(config: RegionConfig, demand: gpd.GeoDataFrame, communities: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """The demand with the ``[registers]`` counts spread over each community's cells (:mod:`geoplan.registers`)."""
    from geoplan.registers import add_register, load_register, spread_register
    from geoplan.units import OUTSIDE, as_communities

    if communities is None:
        raise ConfigError(f"[registers] in {config.source} counts people per community, but the region has no [communities] layer to join them to.")
    source = config.registers
    counts = load_register(
        source.path, as_communities(communities), sheet=source.sheet, code_column=source.code_column,
        name_column=source.name_column, columns=source.columns, unmatched=source.unmatched,
    )
    unit = demand["unit_id"].to_numpy()
    community_of = pd.Series(np.where(unit >= 0, unit.astype(str), OUTSIDE), index=demand.index)
    return add_register(demand, spread_register(demand, counts, community_of, by=source.by, unmatched=source.unmatched))


def _census_totals(config: RegionConfig, groups: list[str]) -> dict[str, float]:
    census = config.census
    if census is None or not census.rescale:
        return {}
    if census.totals:
        return {g: float(v) for g, v in census.totals.items()}
    if census.path is None or census.code is None:
        raise InputError(f"[census] in {config.source} needs either totals = {{...}} or both path and code.")
    return census_totals_for(census.path, census.code, groups)


def _read_filtered(path: Path, where: dict, *, what: str, layer: str | None = None) -> gpd.GeoDataFrame:
    frame = _files.read_vector(path, what=what, layer=layer)
    if frame.crs is None:
        raise CRSMismatchError(f"The {what} file {path} has no CRS. Save it with one (EPSG:4326 for lon/lat).")
    for column, value in where.items():
        if column not in frame:
            raise InputError(f"The {what} file {path} has no column {column!r} to filter on; columns: {list(frame.columns)}.")
        frame = frame[frame[column].astype(str) == str(value)]
        if frame.empty:
            raise EmptyDataError(f"No feature of {path} has {column} = {value!r}. Check the value in the region config.")
    return frame


def _check_polygons(boundary: gpd.GeoDataFrame, path: Path) -> None:
    """A boundary is an area: points or lines are refused with what they are."""
    parts = shapely.get_parts(boundary.geometry.dropna().to_numpy())  # a GeometryCollection of polygons is an area too
    kinds = sorted(set(shapely.get_type_id(parts).tolist()) - {3, 6})
    kinds = [{0: "Point", 1: "LineString", 2: "LinearRing", 4: "MultiPoint", 5: "MultiLineString"}.get(k, "other") for k in kinds]
    if kinds:
        raise InputError(
            f"The boundary {path} holds {', '.join(kinds)} geometry; a region's boundary must be polygons (the district's "
            "or county's outline). Give its area layer, not the points or lines drawn on it."
        )


def _check_geographic_plausible(frame: gpd.GeoDataFrame, path: Path) -> None:
    if frame.crs.is_geographic:
        minx, miny, maxx, maxy = frame.total_bounds
        if min(minx, miny) < -180 or maxx > 180 or max(abs(miny), abs(maxy)) > 90:
            raise CRSMismatchError(
                f"{path} says its CRS is {frame.crs.to_string()} (degrees) but holds coordinates up to "
                f"{max(abs(maxx), abs(maxy)):,.0f}: they look like metres. Save the file with its true projected CRS."
            )


def _load_communities(config: RegionConfig, crs) -> gpd.GeoDataFrame:
    source = config.communities
    units = _read_filtered(source.path, source.where, what="community units", layer=source.layer).to_crs(crs)
    if source.id_column not in units:
        raise InputError(f"The community file {source.path} has no id column {source.id_column!r}; columns: {list(units.columns)}.")
    units = units.set_index(source.id_column)
    units.index.name = "unit_id"
    columns = {}
    if source.population_column:
        columns[source.population_column] = "unit_population"
    if source.name_column:
        columns[source.name_column] = "unit_name"
    return units.rename(columns=columns)


def _unit_of(demand: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> np.ndarray:
    joined = gpd.sjoin(demand[["geometry"]], communities[["geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    return joined["unit_id"].fillna(-1).astype(np.int64).reindex(demand.index).to_numpy()
