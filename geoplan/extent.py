"""How much of a district the street network covers: its extent, the older people outside it, and clipping to it.

A street file covers the area it was extracted for. geoplan's Wuhan file
(``data/osm/wuhan_osm_streets_fua8989.parquet``) holds the streets of the
Wuhan functional urban area only: about 6 % of Jiangxia's area, 12 % of
Huangpi's, 24 % of Caidian's, none of Xinzhou's or Hannan's. Outside that
area the data has no road at all, so a walk, ride or drive there cannot be
routed. geoplan says so instead of guessing:

* :func:`network_extent` -- the area the file covers, taken as the convex hull
  of its streets (for the Wuhan file this gives the figures above);
* :func:`extent_report` -- the district's area and its people per age group
  (the population raster scaled to the district's census totals) inside and
  outside that extent, and near a street (within ``max_access_m``);
* ``[boundary] clip_to_network = true`` in a region config -- the region is the
  part of the district inside the extent (:func:`clip_to_extent`), with the
  census totals of the district shared by the raster (the district's own
  census factor applies);
* the straight-line x detour fallback (:func:`geoplan.modes.with_fallback`) --
  only when asked (``fallback="detour"``), and labelled wherever it is used.

A county with no streets in the file brings its own: an OSM extract of the
county (``.osm``, e.g. cut from a Geofabrik China extract with osmium) or its
own road centreline layer, named in ``[network] path``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan import _files
from geoplan.errors import InputError

if TYPE_CHECKING:
    from geoplan.config import RegionConfig

#: How the extent of a street file is drawn, in words (tables and sheets say it).
EXTENT_METHOD = "convex hull of the street file's edges (the area the file was extracted for)"

#: The census groups the report counts (those the region's demand has).
REPORT_GROUPS = ("pop_total", "pop_60", "pop_65", "pop_80")


def network_extent(path: str | Path, crs) -> shapely.Geometry:
    """The area a street file covers, in ``crs``: the convex hull of every edge's points (cached per file and CRS)."""
    path = _files.existing_file(path, what="street network")
    return _extent(str(path.resolve()), _files.content_hash(path), str(gpd.GeoSeries([], crs=crs).crs.to_wkt()))


@functools.lru_cache(maxsize=8)
def _extent(path: str, digest: str, crs_wkt: str) -> shapely.Geometry:
    from geoplan.network import read_street_edges

    edges = read_street_edges(path)
    if edges.crs is None:
        raise InputError(f"The street network {path} has no CRS; save it with one to compute its extent.")
    lines = edges.geometry.to_crs(crs_wkt).to_numpy()
    return shapely.convex_hull(shapely.multipoints(shapely.get_coordinates(lines)))


def clip_to_extent(boundary: gpd.GeoDataFrame, network_path: str | Path) -> gpd.GeoDataFrame:
    """``boundary`` cut to the street file's extent (one feature: their intersection), or an error when they do not meet."""
    area = shapely.union_all(boundary.geometry.to_numpy())
    extent = network_extent(network_path, boundary.crs)
    clipped = shapely.intersection(area, extent)
    if clipped.is_empty or clipped.area < 1e-6 * max(area.area, 1e-9):
        raise InputError(
            f"The street network {Path(network_path).name} covers none of the region: [boundary] clip_to_network leaves nothing. "
            "Bring the county's own streets (an OSM extract or a road layer) in [network] path, or set clip_to_network = false."
        )
    frame = gpd.GeoDataFrame({"clipped_to": ["street network extent"]}, geometry=[clipped], crs=boundary.crs)
    frame.attrs["share_of_area"] = float(clipped.area / area.area)
    return frame


@dataclasses.dataclass(frozen=True)
class ExtentReport:
    """A district against its street file's extent.

    Attributes
    ----------
    district, code
        The district's name and admin code (as the config gives them).
    area_km2, inside_km2
        The district's area and the part inside the extent.
    people
        One row per group (``pop_total``, ``pop_60``...): ``district`` (the
        raster scaled to the district's census totals), ``inside_extent``,
        ``outside_extent``, ``inside_pct``, ``near_street`` (within
        ``max_access_m`` of a street of the file) and ``near_street_pct``.
    method, network, max_access_m
        How the extent was drawn, the street file, the access distance.
    clipped
        Whether the region is clipped to the extent (``[boundary] clip_to_network``).
    """

    district: str
    code: str | None
    area_km2: float
    inside_km2: float
    people: pd.DataFrame
    method: str
    network: str
    max_access_m: float
    clipped: bool
    census_source: str

    @property
    def inside_area_pct(self) -> float:
        return 100.0 * self.inside_km2 / self.area_km2 if self.area_km2 else float("nan")

    def share_pct(self, group: str = "pop_60") -> float:
        """The share of the district's ``group`` inside the extent, %."""
        return float(self.people.at[group, "inside_pct"])

    def text(self) -> str:
        """One sentence for tables and the command line."""
        row = self.people.loc["pop_60"] if "pop_60" in self.people.index else self.people.iloc[0]
        return (
            f"The street network covers {self.inside_area_pct:.1f} % of {self.district}'s area ({self.inside_km2:,.0f} of "
            f"{self.area_km2:,.0f} km²) and {row['inside_pct']:.1f} % of its {row.name[4:]}+ ({row['inside_extent']:,.0f} of "
            f"{row['district']:,.0f}); {row['outside_extent']:,.0f} live outside it"
            + (" and are left out (the region is clipped to the network)" if self.clipped else "")
            + f". Extent: {self.method}."
        )

    def to_frame(self) -> pd.DataFrame:
        """The figures as ``item``/``value`` rows (a sheet)."""
        rows: list[tuple[str, Any]] = [
            ("district 区县", f"{self.district} ({self.code})" if self.code else self.district),
            ("street network 路网", self.network),
            ("extent method 路网范围", self.method),
            ("district area km² 区县面积", round(self.area_km2, 1)),
            ("area inside the extent km² 路网范围内面积", round(self.inside_km2, 1)),
            ("area inside % 面积覆盖率", round(self.inside_area_pct, 2)),
            ("clipped to the extent 是否裁剪", "yes: people outside are left out 是" if self.clipped else "no 否"),
            ("people from 人口来源", self.census_source),
        ]
        for group, row in self.people.iterrows():
            rows += [
                (f"{group} in the district 区县{group}", round(float(row["district"]))),
                (f"{group} inside the extent 路网范围内", round(float(row["inside_extent"]))),
                (f"{group} outside the extent 路网范围外", round(float(row["outside_extent"]))),
                (f"{group} inside % 覆盖率", round(float(row["inside_pct"]), 2)),
                (f"{group} within {self.max_access_m:g} m of a street 临街", round(float(row["near_street"]))),
            ]
        return pd.DataFrame(rows, columns=["item", "value"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "district": self.district, "code": self.code, "area_km2": round(self.area_km2, 2), "inside_km2": round(self.inside_km2, 2),
            "inside_area_pct": round(self.inside_area_pct, 2), "method": self.method, "network": self.network, "clipped": self.clipped,
            "max_access_m": self.max_access_m, "census_source": self.census_source,
            "people": {g: {k: round(float(v), 2) for k, v in row.items()} for g, row in self.people.iterrows()},
        }


def district_boundary(config: "RegionConfig") -> gpd.GeoDataFrame:
    """The config's whole boundary (before any ``clip_to_network``), in its UTM zone."""
    from geoplan.region import _read_filtered

    raw = _read_filtered(config.boundary.path, config.boundary.where, what="boundary", layer=config.boundary.layer)
    return raw.to_crs(raw.estimate_utm_crs())


_RAW_CACHE: dict[tuple, gpd.GeoDataFrame] = {}


def raw_district_demand(config: "RegionConfig") -> gpd.GeoDataFrame:
    """Every populated cell of the config's whole district (before any ``clip_to_network``), as the raster has it.

    Kept in memory per boundary and raster (the region's census factor, the
    extent report and the rural classification all need it).
    """
    from geoplan.demand import load_demand

    if config.population is None:
        raise InputError(f"Counting the district's people needs the population raster; {config.source} has none ([population]).")
    key = (str(config.boundary.path), repr(sorted(config.boundary.where.items())), config.boundary.layer, str(config.population.path),
           repr(sorted(config.population.bands.items())))
    if key not in _RAW_CACHE:
        if len(_RAW_CACHE) >= 4:
            _RAW_CACHE.pop(next(iter(_RAW_CACHE)))
        boundary = district_boundary(config)
        bands = config.population.bands or None
        _RAW_CACHE[key] = load_demand(config.population.path, boundary, crs=boundary.crs, **({"bands": bands} if bands else {}))
    return _RAW_CACHE[key].copy()


def district_demand(config: "RegionConfig") -> tuple[gpd.GeoDataFrame, str]:
    """Every populated cell of the config's whole district, scaled to its census totals (when the config has them), and the source in words."""
    from geoplan.demand import population_columns, rescale_to_totals
    from geoplan.region import _census_totals

    demand = raw_district_demand(config)
    totals = _census_totals(config, population_columns(demand))
    if not totals:
        return demand, "the population raster as it is (no census rescaling in the config)"
    limit = {"max_factor": config.census.max_factor} if config.census.max_factor is not None else {}
    scaled = rescale_to_totals(demand, totals, source=f"The census totals of {config.source.name}", **limit)
    code = f" {config.census.code}" if config.census.code else ""
    return scaled, f"the population raster scaled to the district's 2020 census totals{code}"


def extent_report(config_or_region, *, max_access_m: float | None = None) -> ExtentReport:
    """The district of a region (or a config) against its street file's extent (see :class:`ExtentReport`)."""
    from geoplan.config import RegionConfig, load_config
    from geoplan.demand import population_columns

    config = getattr(config_or_region, "config", config_or_region)
    if not isinstance(config, RegionConfig):
        config = load_config(config)
    max_access_m = config.analysis.max_access_m if max_access_m is None else float(max_access_m)
    boundary = district_boundary(config)
    area = shapely.union_all(boundary.geometry.to_numpy())
    extent = network_extent(config.network.path, boundary.crs)
    demand, source = district_demand(config)
    xy = shapely.get_coordinates(demand.geometry.to_numpy())
    inside = shapely.contains_xy(extent, xy[:, 0], xy[:, 1])
    near = _near_street(config.network.path, demand.geometry, max_access_m)
    rows = {}
    for group in [g for g in REPORT_GROUPS if g in population_columns(demand)]:
        people = demand[group].to_numpy(dtype=float)
        total = float(people.sum())
        rows[group] = {
            "district": total, "inside_extent": float(people[inside].sum()), "outside_extent": float(people[~inside].sum()),
            "inside_pct": 100.0 * float(people[inside].sum()) / total if total else np.nan,
            "near_street": float(people[near].sum()), "near_street_pct": 100.0 * float(people[near].sum()) / total if total else np.nan,
        }
    people = pd.DataFrame.from_dict(rows, orient="index")
    people.index.name = "group"
    code = config.census.code if config.census is not None else None
    name = str(boundary["name"].iloc[0]) if "name" in boundary and len(boundary) == 1 else (config.region.name_zh or config.region.name)
    return ExtentReport(
        district=name, code=code, area_km2=area.area / 1e6, inside_km2=shapely.intersection(area, extent).area / 1e6, people=people,
        method=EXTENT_METHOD, network=Path(config.network.path).name, max_access_m=max_access_m,
        clipped=bool(getattr(config.boundary, "clip_to_network", False)), census_source=source,
    )


def _near_street(network_path: Path, points: gpd.GeoSeries, max_access_m: float) -> np.ndarray:
    """Per point: some street of the file lies within ``max_access_m``."""
    from geoplan.network import read_street_edges

    edges = read_street_edges(network_path).geometry.to_crs(points.crs).to_numpy()
    point_idx, _ = shapely.STRtree(edges).query_nearest(points.to_numpy(), max_distance=max_access_m, all_matches=False)
    near = np.zeros(len(points), dtype=bool)
    near[point_idx] = True
    return near
