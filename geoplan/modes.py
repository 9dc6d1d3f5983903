"""Travel modes on the road network: walking, e-bike/tricycle and car/minibus, with the same reach engine.

A mode is a set of road rules: which OSM ``highway`` classes it may use and
how fast it moves on each (:class:`TravelMode`). Its network is the region's
street file loaded with those rules (:func:`load_mode_network`): the same
clipping and joining as the walking network, with each edge's
``travel_time_s`` its length over the speed of its class, cached in the
prepared-network cache under its own key. The compiled reach engine
(:class:`geoplan.reach.Router`) then runs on it unchanged: "within 20 minutes
by e-bike" is answered exactly as "within 15 minutes on foot".

The default walk is untouched: ``region.reach(sites)`` and
``region.reach(sites, mode="walk")`` give the same matrix as before modes
existed. Any other mode returns a :class:`ModeReachMatrix`, a
:class:`~geoplan.reach.ReachMatrix` that says its mode and, when the
straight-line fallback was asked for, which demand points and sites it timed
(:func:`with_fallback`).

Defaults and their sources (every figure can be replaced in a region's
``[modes]`` or by building a :class:`TravelMode`):

* **walk** -- the region's walking network (``[network] walk_speed_mps``,
  1.0 m/s by default: 15 min = 900 m, the 800-1,000 m life circle of
  GB 50180-2018); motorways and ways under construction excluded
  (:data:`geoplan.network.DEFAULT_EXCLUDED_HIGHWAYS`).
* **ebike** (电动自行车/电动三轮车 e-bike, tricycle) -- GB 17761-2018 caps an
  e-bike's design speed at 25 km/h; geoplan rides at 20 km/h on streets (a
  typical speed below the cap; an assumption) and 12 km/h on living streets,
  service ways and tracks (shared with people on foot; an assumption).
  Not on motorways or trunk roads (non-motor vehicles may not enter
  expressways: Road Traffic Safety Law art. 67; urban expressways tagged
  ``trunk`` bar them by local rule), nor on footways, pedestrian streets,
  paths or steps (art. 57: non-motor vehicles ride on the carriageway).
* **car** (小汽车/面包车 car, minibus) -- each road class at the *lowest*
  design speed of its class (a free-flow figure that leaves room for
  junctions and traffic): ``motorway`` 80 km/h (expressway, JTG B01-2014:
  80-120), ``trunk`` 60 (urban expressway 快速路 60-100, CJJ 37-2012; or a
  class-1 highway, JTG B01-2014: 60-100), ``primary`` 40 (主干路 40-60,
  CJJ 37-2012), ``secondary`` 30 (次干路 30-50), ``tertiary`` and
  ``unclassified`` 30 (支路 20-40; 30 km/h is also the legal limit on a
  city road without a centre line, art. 45 of the Implementing Regulations
  of the Road Traffic Safety Law), ``residential`` 20 (支路, lowest);
  slip roads, living streets, service ways and tracks are assumptions (see
  :data:`CAR`). Not on footways, paths, steps, pedestrian streets or
  cycleways. OSM's Chinese road classes follow the OSM wiki's China road
  classification (motorway 高速公路, trunk 国道/快速路, primary 省道/主干路,
  secondary 县道/次干路, tertiary 乡道/支路, unclassified 村道).

Every mode reaches a home from its road by the *access leg* (the straight
line from the point to the nearest road it may use, at most the region's
``max_access_m``), at ``access_kmh``: walking speed on foot, 10 km/h by
e-bike or car on the unmapped lanes of a village (an assumption). One-way
streets are not modelled (the shipped network has no ``oneway`` tag), so
drive times can be shorter than real ones in a city centre.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.spatial import cKDTree

from geoplan.errors import InputError
from geoplan.network import DEFAULT_EXCLUDED_HIGHWAYS, EdgeSpeeds, WalkNetwork, load_network
from geoplan.reach import ReachMatrix, Router
from geoplan.snapping import SNAP_COLUMNS

if TYPE_CHECKING:
    from geoplan.config import RegionConfig
    from geoplan.region import Region

#: What a straight-line time says wherever it is used.
FALLBACK_LABEL = "straight line × detour factor (fallback, not the road network)"

#: Road distance over straight-line distance for the fallback. Road circuity
#: factors of about 1.2-1.4 are reported for many countries (Ballou,
#: Rahardja & Sakai 2002, Transportation Research A 36(9)); 1.4 errs on the
#: slow side. An assumption: give your own.
DEFAULT_DETOUR_FACTOR = 1.4

#: Ways no vehicle may use, and ways that are not roads (never in any mode's network).
_NOT_ROADS = ("construction", "proposed", "planned", "abandoned", "razed", "no", "raceway", "platform", "bus_guideway", "busway")
_FOOT_ONLY = ("footway", "path", "steps", "pedestrian", "corridor", "elevator", "bridleway")


@dataclasses.dataclass(frozen=True)
class TravelMode:
    """The road rules of one travel mode.

    Attributes
    ----------
    name
        ``walk``, ``ebike``, ``car`` or a name of your own (files and columns use it).
    name_zh
        The Chinese name, for tables and maps.
    speeds_kmh
        Speed on each OSM ``highway`` class the mode uses, km/h. Empty for
        ``walk``: walking uses the region's own network at one speed.
    other_kmh
        Speed on any class neither listed nor excluded.
    excluded_highways
        Classes the mode may not use.
    access_kmh
        Speed of the access leg from a point to its road.
    fallback_kmh
        Speed of the straight-line fallback (:func:`with_fallback`).
    buffer_m
        How far beyond the region the mode's network is kept (a drive may leave
        the region briefly); None: as the walking network.
    sources
        What each figure rests on, by field or road class.
    """

    name: str
    name_zh: str
    speeds_kmh: Mapping[str, float] = dataclasses.field(default_factory=dict)
    other_kmh: float = 20.0
    excluded_highways: tuple[str, ...] = DEFAULT_EXCLUDED_HIGHWAYS
    access_kmh: float = 3.6
    fallback_kmh: float = 3.6
    buffer_m: float | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InputError(f"A travel mode's name must be a word of letters, digits and _ (it names columns), got {self.name!r}.")
        speeds = {str(k): v for k, v in dict(self.speeds_kmh).items()}
        numbers = {**speeds, "other_kmh": self.other_kmh, "access_kmh": self.access_kmh, "fallback_kmh": self.fallback_kmh}
        bad = {k: v for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0}
        if bad:
            raise InputError(f"Travel mode {self.name!r}: speeds must be positive km/h, got {bad}.")
        both = sorted(set(speeds) & set(self.excluded_highways))
        if both:
            raise InputError(f"Travel mode {self.name!r} both gives a speed for and excludes {both}; remove them from one of the two.")
        if self.buffer_m is not None and not (isinstance(self.buffer_m, (int, float)) and self.buffer_m >= 0):
            raise InputError(f"Travel mode {self.name!r}: buffer_m must be metres >= 0, got {self.buffer_m!r}.")
        object.__setattr__(self, "speeds_kmh", MappingProxyType(speeds))
        object.__setattr__(self, "excluded_highways", tuple(self.excluded_highways))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def on_region_network(self) -> bool:
        """Walking: the mode is the region's own walking network (no speeds per class)."""
        return not self.speeds_kmh

    @property
    def label(self) -> str:
        """``ebike 电动自行车/三轮车``: how tables and maps name the mode."""
        return f"{self.name} {self.name_zh}"

    @property
    def access_mps(self) -> float:
        return self.access_kmh / 3.6

    @property
    def fallback_mps(self) -> float:
        return self.fallback_kmh / 3.6

    def edge_speeds(self) -> EdgeSpeeds:
        """The mode's speeds per road class in m/s, for :func:`geoplan.network.load_network`."""
        return EdgeSpeeds({k: v / 3.6 for k, v in self.speeds_kmh.items()}, self.other_kmh / 3.6)

    def key(self) -> tuple:
        """What makes two modes route alike (their network and times)."""
        return (self.name, tuple(sorted(self.speeds_kmh.items())), self.other_kmh, self.excluded_highways, self.access_kmh, self.buffer_m)

    def rules(self) -> pd.DataFrame:
        """One row per road class the mode names: ``allowed``, ``speed_kmh`` and the ``source`` of the figure."""
        rows = [{"mode": self.name, "highway": h, "allowed": True, "speed_kmh": v, "source": self.sources.get(h, self.sources.get("speeds_kmh", ""))}
                for h, v in self.speeds_kmh.items()]
        rows += [{"mode": self.name, "highway": h, "allowed": False, "speed_kmh": np.nan, "source": self.sources.get("excluded_highways", "")}
                 for h in self.excluded_highways]
        rows.append({"mode": self.name, "highway": "(other classes)", "allowed": True, "speed_kmh": self.other_kmh,
                     "source": self.sources.get("other_kmh", "")})
        rows.append({"mode": self.name, "highway": "(access leg to the road)", "allowed": True, "speed_kmh": self.access_kmh,
                     "source": self.sources.get("access_kmh", "")})
        return pd.DataFrame(rows)


_CAR_DESIGN = "lowest design speed of the class: CJJ 37-2012 (urban roads) / JTG B01-2014 (highways)"
_ASSUMPTION = "assumption (no standard gives it): set your own in [modes]"

#: Walking on the region's own network (its ``walk_speed_mps``, 1.0 m/s by default).
WALK = TravelMode(
    name="walk", name_zh="步行", other_kmh=3.6, access_kmh=3.6, fallback_kmh=3.6,
    sources={
        "speeds_kmh": "the region's [network] walk_speed_mps (default 1.0 m/s: 15 min = 900 m, GB 50180-2018's 800-1,000 m life circle)",
        "excluded_highways": "geoplan.network.DEFAULT_EXCLUDED_HIGHWAYS (as osmnx's walk network: no motorways)",
        "other_kmh": "every class walking may use, at the walking speed ([network] walk_speed_mps, default 1.0 m/s = 3.6 km/h)",
        "access_kmh": "walking speed",
    },
)

#: E-bike or e-tricycle (电动自行车/电动三轮车), e.g. meal delivery from a kitchen.
EBIKE = TravelMode(
    name="ebike", name_zh="电动自行车/三轮车",
    speeds_kmh={
        **dict.fromkeys(("trunk_link", "primary", "primary_link", "secondary", "secondary_link", "tertiary", "tertiary_link",
                         "unclassified", "residential", "road", "cycleway"), 20.0),
        **dict.fromkeys(("living_street", "service", "track"), 12.0),
    },
    other_kmh=12.0,
    excluded_highways=("motorway", "motorway_link", "trunk", *_FOOT_ONLY, *_NOT_ROADS),
    access_kmh=10.0, fallback_kmh=20.0, buffer_m=3000.0,
    sources={
        "speeds_kmh": "20 km/h: a riding speed below GB 17761-2018's 25 km/h cap on an e-bike's design speed (assumption)",
        "living_street": "12 km/h on ways shared with people on foot: " + _ASSUMPTION,
        "service": "12 km/h on ways shared with people on foot: " + _ASSUMPTION,
        "track": "12 km/h on farm tracks: " + _ASSUMPTION,
        "trunk_link": "slip roads of trunk roads at street speed (the ramps to ground level): " + _ASSUMPTION,
        "excluded_highways": "no expressways (Road Traffic Safety Law art. 67; urban expressways tagged trunk by local rule), "
                             "no footways, pedestrian streets, paths or steps (art. 57: ride on the carriageway)",
        "other_kmh": _ASSUMPTION, "access_kmh": "10 km/h on unmapped village lanes: " + _ASSUMPTION,
        "fallback_kmh": "the street speed, 20 km/h", "buffer_m": "3 km: a ride may leave the region briefly (" + _ASSUMPTION + ")",
    },
)

#: Car or minibus (小汽车/面包车), e.g. drive times between rural homes.
CAR = TravelMode(
    name="car", name_zh="小汽车/面包车",
    speeds_kmh={
        "motorway": 80.0, "trunk": 60.0, "primary": 40.0, "secondary": 30.0, "tertiary": 30.0, "unclassified": 30.0,
        "residential": 20.0, "motorway_link": 40.0, "trunk_link": 30.0, "primary_link": 30.0, "secondary_link": 25.0,
        "tertiary_link": 20.0, "living_street": 10.0, "service": 15.0, "track": 15.0, "road": 20.0,
    },
    other_kmh=15.0,
    excluded_highways=(*_FOOT_ONLY, "cycleway", *_NOT_ROADS),
    access_kmh=10.0, fallback_kmh=30.0, buffer_m=5000.0,
    sources={
        "motorway": "80 km/h: expressway 80-120 (JTG B01-2014), " + _CAR_DESIGN,
        "trunk": "60 km/h: urban expressway 快速路 60-100 (CJJ 37-2012) / class-1 highway 60-100 (JTG B01-2014), " + _CAR_DESIGN,
        "primary": "40 km/h: 主干路 40-60 (CJJ 37-2012), " + _CAR_DESIGN,
        "secondary": "30 km/h: 次干路 30-50 (CJJ 37-2012), " + _CAR_DESIGN,
        "tertiary": "30 km/h: 支路 20-40 (CJJ 37-2012); the legal limit without a centre line in a city (Implementing Regulations "
                    "of the Road Traffic Safety Law art. 45)",
        "unclassified": "30 km/h: village road 村道 (class-4 highway 20-30, JTG B01-2014; art. 45 as tertiary)",
        "residential": "20 km/h: 支路, " + _CAR_DESIGN,
        "motorway_link": "40 km/h: half the motorway speed on slip roads: " + _ASSUMPTION,
        "trunk_link": "30 km/h on slip roads: " + _ASSUMPTION, "primary_link": "30 km/h: " + _ASSUMPTION,
        "secondary_link": "25 km/h: " + _ASSUMPTION, "tertiary_link": "20 km/h: " + _ASSUMPTION,
        "living_street": "10 km/h: people on foot have priority (OSM living_street): " + _ASSUMPTION,
        "service": "15 km/h: " + _ASSUMPTION, "track": "15 km/h on farm tracks: " + _ASSUMPTION, "road": "20 km/h: " + _ASSUMPTION,
        "excluded_highways": "no footways, paths, steps, pedestrian streets or cycleways",
        "other_kmh": _ASSUMPTION, "access_kmh": "10 km/h on unmapped village lanes: " + _ASSUMPTION,
        "fallback_kmh": "30 km/h, the village-road speed", "buffer_m": "5 km: a drive may leave the region briefly (" + _ASSUMPTION + ")",
    },
)

#: The shipped modes by name.
MODES: Mapping[str, TravelMode] = MappingProxyType({m.name: m for m in (WALK, EBIKE, CAR)})

#: Keys a region's ``[modes.<name>]`` table may set.
MODE_KEYS = ("name_zh", "speeds_kmh", "other_kmh", "excluded_highways", "access_kmh", "fallback_kmh", "buffer_m")


def get_mode(mode: str | TravelMode | None, config: "RegionConfig | None" = None) -> TravelMode:
    """The travel mode named ``mode`` (a shipped one, changed by the region's ``[modes]``), or ``mode`` itself.

    None is walking. A region's ``[modes.<name>]`` table replaces the
    defaults it names, or defines a new mode (then ``speeds_kmh`` is needed).
    """
    if isinstance(mode, TravelMode):
        return mode
    name = "walk" if mode is None else mode
    overrides = dict(getattr(config, "modes", None) or {}) if config is not None else {}
    if not isinstance(name, str) or (name not in MODES and name not in overrides):
        known = sorted(set(MODES) | set(overrides))
        raise InputError(f"Unknown travel mode {mode!r}; use one of {', '.join(known)} (or add [modes.{mode}] to the region config).")
    given = dict(overrides.get(name, {}))
    if name == "walk" and given:
        raise InputError("The walk mode is the region's walking network: change [network] walk_speed_mps or excluded_highways, not [modes.walk].")
    if name not in MODES:
        if "speeds_kmh" not in given:
            raise InputError(f"[modes.{name}] defines a new mode, so it needs speeds_kmh = {{ primary = 40, ... }} (km/h per OSM highway class).")
        base = TravelMode(name=name, name_zh=given.get("name_zh", name), speeds_kmh=given["speeds_kmh"],
                          excluded_highways=tuple(given.get("excluded_highways", _FOOT_ONLY + _NOT_ROADS)))
    else:
        base = MODES[name]
    if not given:
        return base
    source = f"the region config's [modes.{name}]"
    speeds = dict(base.speeds_kmh)
    speeds.update(given.get("speeds_kmh", {}))
    excluded = tuple(given.get("excluded_highways", base.excluded_highways))
    speeds = {k: v for k, v in speeds.items() if k not in excluded or k in given.get("speeds_kmh", {})}
    excluded = tuple(h for h in excluded if h not in given.get("speeds_kmh", {}))
    sources = dict(base.sources)
    sources.update({k: source for k in given.get("speeds_kmh", {})})
    sources.update({k: source for k in given if k != "speeds_kmh"})
    return dataclasses.replace(
        base, name_zh=given.get("name_zh", base.name_zh), speeds_kmh=speeds, excluded_highways=excluded,
        **{k: given[k] for k in ("other_kmh", "access_kmh", "fallback_kmh", "buffer_m") if k in given}, sources=sources,
    )


def rules_table(modes=("walk", "ebike", "car"), config: "RegionConfig | None" = None) -> pd.DataFrame:
    """The road rules of ``modes`` (names or :class:`TravelMode`), one row per mode and road class, with sources."""
    return pd.concat([get_mode(m, config).rules() for m in modes], ignore_index=True)


def load_mode_network(config: "RegionConfig", boundary: gpd.GeoDataFrame, mode: str | TravelMode, *, crs=None,
                      cache_dir=None, buffer_m: float | None = None) -> WalkNetwork:
    """The region's street file as ``mode``'s network: its classes only, edge times by class, cached under its own key."""
    mode = get_mode(mode, config)
    if mode.on_region_network:
        raise InputError("Walking uses the region's own network (region.network); load_mode_network is for the other modes.")
    if buffer_m is None:
        buffer_m = mode.buffer_m if mode.buffer_m is not None else (config.network.buffer_m or 1000.0)
    network = load_network(
        config.network.path, boundary=boundary, buffer_m=buffer_m, crs=crs or boundary.crs, walk_speed_mps=mode.access_mps,
        excluded_highways=mode.excluded_highways, edge_speeds=mode.edge_speeds(), cache_dir=cache_dir,
    )
    return dataclasses.replace(network, mode=mode.name)


@dataclasses.dataclass(frozen=True)
class ModeReachMatrix(ReachMatrix):
    """A :class:`~geoplan.reach.ReachMatrix` that says its travel mode and where the straight-line fallback stands in.

    ``mode`` names the travel mode; ``fallback_demand`` and ``fallback_sites``
    are the demand points and sites with no road of the mode within reach
    whose times are straight line x ``detour_factor`` at the mode's fallback
    speed (:func:`with_fallback`; empty when the fallback was not asked for).
    """

    mode: str = "walk"
    fallback_demand: pd.Index = dataclasses.field(default_factory=lambda: pd.Index([]))
    fallback_sites: pd.Index = dataclasses.field(default_factory=lambda: pd.Index([]))
    detour_factor: float | None = None

    @classmethod
    def of(cls, reach: ReachMatrix, **labels: Any) -> "ModeReachMatrix":
        """``reach`` with labels (those of ``reach`` itself kept where not given)."""
        own = {f.name: getattr(reach, f.name) for f in dataclasses.fields(reach)}
        return cls(**{**own, **labels})

    @property
    def uses_fallback(self) -> bool:
        return len(self.fallback_demand) > 0 or len(self.fallback_sites) > 0

    @property
    def time_source(self) -> str:
        """Where the times come from, in words, for every table that shows them."""
        if not self.uses_fallback:
            return f"{self.mode} on the road network"
        return (f"{self.mode} on the road network; {len(self.fallback_demand):,} demand points and {len(self.fallback_sites):,} sites "
                f"with no road within reach: {FALLBACK_LABEL} {self.detour_factor:g}")

    def _labels(self, demand_ids: pd.Index | None = None, site_ids: pd.Index | None = None) -> dict:
        return {
            "mode": self.mode, "detour_factor": self.detour_factor,
            "fallback_demand": self.fallback_demand if demand_ids is None else self.fallback_demand.intersection(demand_ids),
            "fallback_sites": self.fallback_sites if site_ids is None else self.fallback_sites.intersection(site_ids),
        }

    def select(self, sites) -> "ModeReachMatrix":
        base = super().select(sites)
        return ModeReachMatrix.of(base, **self._labels(site_ids=base.site_ids))

    def for_demand(self, demand_ids: pd.Index) -> "ModeReachMatrix":
        base = super().for_demand(demand_ids)
        return base if base is self else ModeReachMatrix.of(base, **self._labels(demand_ids=base.demand_ids))

    def to_frame(self) -> pd.DataFrame:
        """Long form with ``mode`` and ``time_source`` (``network`` or the fallback) on every row."""
        frame = super().to_frame()
        frame["mode"] = self.mode
        fallback = frame["demand_id"].isin(self.fallback_demand) | frame["site_id"].isin(self.fallback_sites)
        frame["time_source"] = np.where(fallback, FALLBACK_LABEL, "network")
        return frame


def mode_reach(region: "Region", sites: gpd.GeoDataFrame, *, cutoff_min: float | None = None, mode: str | TravelMode | None = None,
               fallback: str | None = None, detour_factor: float = DEFAULT_DETOUR_FACTOR) -> ModeReachMatrix:
    """Times by ``mode`` from ``sites`` to every demand point of ``region`` (what ``region.reach(..., mode=)`` returns).

    ``fallback="detour"`` times the demand points and sites with no road of
    the mode within ``max_access_m`` by the straight line x ``detour_factor``
    at the mode's fallback speed, labelled in the result; by default (None)
    they reach nothing, as on foot.
    """
    if fallback not in (None, "detour"):
        raise InputError(f"fallback must be None (no fallback: points off the network reach nothing) or 'detour', got {fallback!r}.")
    travel = get_mode(mode if mode is not None else region.network.mode, region.config)
    cutoff_min = cutoff_min or max(region.thresholds_min)
    router = region.router_for(travel)
    if not travel.on_region_network:
        sites = _without_snap(sites)
    reach = ModeReachMatrix.of(router.travel_times(sites, cutoff_s=cutoff_min * 60.0), mode=travel.name)
    if fallback == "detour":
        reach = with_fallback(reach, router, region.demand, sites, travel, detour_factor=detour_factor)
    return reach


def mode_router(network: WalkNetwork, demand: gpd.GeoDataFrame, *, max_access_m: float) -> Router:
    """A :class:`~geoplan.reach.Router` of ``demand`` on a mode's network (the demand snapped to that network's roads)."""
    return Router(network, _without_snap(demand), max_access_m=max_access_m)


def with_fallback(reach: ReachMatrix, router: Router, demand: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, mode: TravelMode, *,
                  detour_factor: float = DEFAULT_DETOUR_FACTOR) -> ModeReachMatrix:
    """``reach`` with straight-line times for the demand points and sites that no road of the mode reaches.

    A pair with such a point or site takes ``distance x detour_factor /
    fallback speed`` (kept up to the cutoff); every other pair keeps its
    network time. The result lists which points and sites were so timed.
    """
    if not (isinstance(detour_factor, (int, float)) and math.isfinite(detour_factor) and detour_factor >= 1):
        raise InputError(f"detour_factor must be a number >= 1 (road distance over straight-line distance), got {detour_factor!r}.")
    from geoplan.snapping import snap_to_network

    site_frame = sites if set(SNAP_COLUMNS) <= set(sites.columns) else snap_to_network(router.network, sites, max_access_m=router.max_access_m)
    off_sites = pd.Index(site_frame.index[site_frame["edge_id"].to_numpy() < 0])
    off_demand = pd.Index(reach.off_network)
    if not len(off_demand) and not len(off_sites):
        return ModeReachMatrix.of(reach, mode=mode.name, detour_factor=float(detour_factor))
    crs = router.network.crs
    demand_xy = _xy(demand.geometry.to_crs(crs).reindex(reach.demand_ids))
    site_xy = _xy(sites.geometry.to_crs(crs).reindex(reach.site_ids))
    radius = reach.cutoff_s * mode.fallback_mps / detour_factor
    rows, cols = [], []
    off_row = reach.demand_ids.get_indexer(off_demand)
    if len(off_row):  # off-network demand to every site
        hits = cKDTree(site_xy).query_ball_point(demand_xy[off_row], r=radius)
        rows += [np.repeat(off_row, [len(h) for h in hits])]
        cols += [np.fromiter((c for h in hits for c in h), dtype=np.int64)]
    off_col = reach.site_ids.get_indexer(off_sites)
    if len(off_col):  # every demand point to off-network sites
        hits = cKDTree(demand_xy).query_ball_point(site_xy[off_col], r=radius)
        cols += [np.repeat(off_col, [len(h) for h in hits])]
        rows += [np.fromiter((r for h in hits for r in h), dtype=np.int64)]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    pairs = np.unique(np.column_stack([rows, cols]), axis=0) if len(rows) else np.zeros((0, 2), np.int64)
    distance = np.hypot(*(demand_xy[pairs[:, 0]] - site_xy[pairs[:, 1]]).T)
    times = distance * detour_factor / mode.fallback_mps
    keep = times <= reach.cutoff_s
    # an off-network point or site has no network time at all, so the two sets of pairs never overlap
    network = reach.times_s.tocoo()
    times_s = sparse.csc_matrix(
        (np.concatenate([network.data, times[keep]]),
         (np.concatenate([network.row, pairs[keep, 0]]), np.concatenate([network.col, pairs[keep, 1]]))),
        shape=reach.shape,
    )
    return ModeReachMatrix(
        times_s=times_s, demand_ids=reach.demand_ids, site_ids=reach.site_ids, cutoff_s=reach.cutoff_s,
        off_network=pd.Index([]), mode=mode.name, fallback_demand=off_demand, fallback_sites=off_sites, detour_factor=float(detour_factor),
    )


def _without_snap(points: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``points`` without the snap columns of another network (they would be read as this network's)."""
    stale = [c for c in (*SNAP_COLUMNS, "component") if c in points.columns]
    if not isinstance(points, gpd.GeoDataFrame):
        raise InputError("Points must be a GeoDataFrame to be placed on a travel mode's network.")
    return points.drop(columns=stale) if stale else points


def _xy(geometry: gpd.GeoSeries) -> np.ndarray:
    points = geometry if (geometry.geom_type == "Point").all() else geometry.representative_point()
    return np.column_stack([points.x.to_numpy(), points.y.to_numpy()])
