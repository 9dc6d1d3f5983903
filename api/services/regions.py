"""Prepared regions, loaded once per process, and everything derived from them, built once.

``load_region`` results are kept by region key (the network itself is cached
on disk by the library); the coverage of a region's own facilities is
analysed lazily on first use and kept, as are the coverage of recent
scenarios, care circles and rendered maps (bounded caches).
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan.analysis import CoverageReport, analyse_coverage
from geoplan.config import available_regions
from geoplan.coords import normalize_coord_system, to_wgs84
from geoplan.coverage import catchments
from geoplan.errors import InputError
from geoplan.isochrones import care_circles
from geoplan.region import Region, load_region

from api.errors import NotFound
from api.services.coverage import CellTable, CoverageIndex
from api.services.geojson import feature_collection
from api.services.memo import Memo
from api.settings import Settings

log = logging.getLogger(__name__)

#: Boundary simplification for region detail answers, in metres.
BOUNDARY_TOLERANCE_M = 10.0


class RegionService:
    """The regions this process serves, and their derived, cached products."""

    def __init__(self, settings: Settings):
        self.cache_dir: Path | None = settings.cache_dir
        self._allowed = tuple(settings.regions) if settings.regions else tuple(available_regions())
        self._regions: Memo[Region] = Memo()
        self._from_config: set[str] = set()
        self._cells: Memo[CellTable] = Memo()
        self._coverage: Memo[CoverageIndex] = Memo()
        self._scenario_coverage: Memo[CoverageIndex] = Memo(maxsize=settings.coverage_cache_size)
        self._circles: Memo[dict] = Memo(maxsize=512)
        self._maps: Memo[bytes] = Memo(maxsize=32)
        self._details: Memo[dict] = Memo()
        self._reports: Memo[CoverageReport] = Memo()

    # regions -----------------------------------------------------------------------------
    def names(self) -> tuple[str, ...]:
        return self._allowed

    def require(self, key: str) -> str:
        if key not in self._allowed:
            raise NotFound(f"Unknown region {key!r}. This service has: {', '.join(self._allowed) or 'none'} (GET /regions).")
        return key

    def get(self, key: str) -> Region:
        """The prepared region (loaded on first use, then shared)."""
        self.require(key)
        return self._regions.get(key, lambda: self._load(key))

    def _load(self, key: str) -> Region:
        log.info("loading region %s", key)
        region = load_region(key, cache_dir=self.cache_dir)
        self._from_config.add(key)
        return region

    def put(self, region: Region, key: str | None = None) -> None:
        """Use an already loaded region (tests, notebooks)."""
        self._from_config.discard(key or region.key)
        self._regions.put(key or region.key, region)

    def loads_itself(self, key: str) -> bool:
        """Whether the region was loaded here from its config (as another process loading it gets it), not handed in."""
        return key in self._from_config

    def loaded(self, key: str) -> Region | None:
        """The region if it is loaded already (no loading, no wait)."""
        return self._regions.peek(key) if key in self._allowed else None

    def is_loaded(self, key: str) -> bool:
        return key in self._regions

    def detail(self, key: str) -> dict:
        return self._details.get(key, lambda: _region_detail(self.get(key)))

    # coverage ----------------------------------------------------------------------------
    def coverage(self, key: str) -> CoverageIndex:
        """The coverage of the region's own facilities (or every candidate when it has none), built once."""
        return self._coverage.get(key, lambda: CoverageIndex.build(analyse_coverage(self.get(key), with_circles=False), self.cells(key)))

    def cells(self, key: str) -> CellTable:
        """The region's demand cells ready to send, shared by its coverage and every scenario's."""
        def build() -> CellTable:
            region = self.get(key)
            return CellTable.of(region.demand, region.groups)

        return self._cells.get(key, build)

    def peek_coverage(self, key: str) -> CoverageIndex | None:
        return self._coverage.peek(key) if key in self._allowed else None

    def scenario_coverage(self, key: str, fingerprint: str, build) -> CoverageIndex:
        """The coverage of a scenario (``build()`` gives its report), kept for its content's fingerprint."""
        return self._scenario_coverage.get((key, fingerprint), lambda: CoverageIndex.build(build(), self.cells(key)))

    # care circles ------------------------------------------------------------------------
    def circles(self, region: Region, sites: gpd.GeoDataFrame, *, thresholds_min: tuple[float, ...], cache_key=None) -> dict:
        """Care circles of ``sites`` as a FeatureCollection, with the people inside each circle."""
        top = max(region.thresholds_min)
        bad = [t for t in thresholds_min if not 0 < t <= top]
        if bad:
            raise InputError(f"Care-circle thresholds must be more than 0 and at most {top:g} minutes in {region.key}; got {bad}.")

        def build() -> dict:
            reach = region.reach(sites, cutoff_min=max(thresholds_min))
            circles = care_circles(region.network, sites, demand=region.demand, reach=reach,
                                   thresholds_min=tuple(sorted(set(thresholds_min))),
                                   max_access_m=region.config.analysis.max_access_m)
            if circles.empty:
                raise InputError(
                    f"No walkable street within {region.config.analysis.max_access_m:g} m of the site, so it has no care circle. "
                    "Check the coordinates and their coordinate system (wgs84, gcj02 or bd09)."
                )
            within = {t: catchments(region.demand, reach, threshold_min=t) for t in set(circles["threshold_min"])}
            people = [
                {g: round(float(within[row.threshold_min].loc[row.site_id, g]), 2) for g in region.groups}
                for row in circles.itertuples()
            ]
            circles = circles.assign(people=people)
            return feature_collection(circles, properties=["site_id", "threshold_min", "area_km2", "people"],
                                      extra={"region": region.key})

        return build() if cache_key is None else self._circles.get(cache_key, build)

    # maps --------------------------------------------------------------------------------
    def map_html(self, cache_key, build) -> bytes:
        return self._maps.get(cache_key, build)

    def report_with_circles(self, key: str) -> CoverageReport:
        """The region's coverage report with its care circles (for maps), built once."""
        return self._reports.get(key, lambda: analyse_coverage(self.get(key), with_circles=True))


def point_site(region: Region, *, lon: float, lat: float, coord_system: str) -> gpd.GeoDataFrame:
    """A one-row site frame at a point given in ``coord_system``, checked to lie in or near the region."""
    system = normalize_coord_system(coord_system)
    x, y = to_wgs84(np.array([lon]), np.array([lat]), system)
    point = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=4326).to_crs(region.crs)
    area = shapely.union_all(region.boundary.geometry.to_numpy())
    distance = float(point.iloc[0].distance(area))
    limit = region.config.analysis.max_access_m
    if distance > limit:
        raise InputError(
            f"The point ({lon:g}, {lat:g}) read as {system} lies {distance / 1000:,.1f} km outside {region.key}. "
            "Give a point inside the region, and check the coordinate order (lon, lat) and system (wgs84, gcj02, bd09)."
        )
    frame = gpd.GeoDataFrame({"name": ["point"], "kind": ["station"], "status": ["candidate"]}, geometry=point.to_numpy(), crs=region.crs,
                             index=pd.Index(["point"], name="site_id"))
    return frame


def _region_detail(region: Region) -> dict:
    boundary = region.boundary[["geometry"]].copy()
    wgs = region.boundary.to_crs(4326)
    minx, miny, maxx, maxy = wgs.total_bounds
    info = region.config.region
    population = {g: round(float(region.demand[g].sum()), 1) for g in region.groups}
    kinds = region.facilities["kind"].value_counts().to_dict() if len(region.facilities) else {}
    return {
        "key": region.key,
        "name": info.name,
        "name_zh": info.name_zh,
        "city": info.city,
        "crs": region.crs.to_string(),
        "bbox": [round(float(v), 6) for v in (minx, miny, maxx, maxy)],
        "groups": list(region.groups),
        "thresholds_min": [float(t) for t in region.thresholds_min],
        "population": population,
        "census_factors": {k: round(float(v), 4) for k, v in region.census_factors.items()},
        "facilities": {"existing": int(len(region.facilities)), "candidates": int(len(region.candidates)),
                       "existing_by_kind": {str(k): int(v) for k, v in kinds.items()}},
        "communities": int(len(region.communities)) if region.communities is not None else 0,
        "boundary": feature_collection(boundary, properties=[], tolerance_m=BOUNDARY_TOLERANCE_M),
    }


def sites_collection(sites: gpd.GeoDataFrame, *, extra: dict | None = None) -> dict:
    columns = ["name", "kind", "status", "capacity", "cost"] + [c for c in ("change", "unit_id") if c in sites]
    return feature_collection(sites, properties=columns, index_as="site_id", extra=extra)


__all__ = ["RegionService", "point_site", "sites_collection"]
