"""Coverage answers: the coverage index of a region or a scenario's end state, and care circles of a site or a point."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from api.errors import NotFound
from api.services import scenarios as sc
from api.services.coverage import CoverageIndex
from api.services.regions import RegionService, point_site
from api.services.scenario_service import ScenarioService


class CoverageService:
    """Coverage and care circles over the shared regions, for the region's own facilities or a scenario's."""

    def __init__(self, regions: RegionService, scenarios: ScenarioService):
        self.regions = regions
        self.scenarios = scenarios

    def index(self, key: str, scenario_id: str | None = None) -> CoverageIndex:
        """The coverage of the region's own facilities, or of a scenario's end state (its plan folded in)."""
        if scenario_id is None:
            return self.regions.coverage(key)
        record = self.scenarios.get_in(key, scenario_id)
        return self.regions.scenario_coverage(key, record.spec_hash, lambda: self.scenarios.end_state_report(record, with_circles=False))

    def circles_for_site(self, key: str, site_id: str, *, scenario_id: str | None, thresholds_min: tuple[float, ...]) -> dict:
        base = self.regions.get(key)
        region, fingerprint = base, "base"
        if scenario_id is not None:
            record = self.scenarios.get_in(key, scenario_id)
            region, fingerprint = sc.check(base, record.spec), record.spec_hash
        pool = pd.concat([region.facilities, region.candidates.assign(status="candidate")])
        pool = pool[~pool.index.duplicated()]
        if site_id not in pool.index:
            where = f"scenario {scenario_id!r}" if scenario_id else key
            raise NotFound(f"No facility or candidate site {site_id!r} in {where}. List them with GET /regions/{key}/facilities.")
        site = gpd.GeoDataFrame(pool.loc[[site_id]], geometry="geometry", crs=region.crs)
        return self.regions.circles(region, site, thresholds_min=thresholds_min, cache_key=(key, fingerprint, site_id, thresholds_min))

    def circles_for_point(self, key: str, *, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> dict:
        region = self.regions.get(key)
        site = point_site(region, lon=lon, lat=lat, coord_system=coord_system)
        return self.regions.circles(region, site, thresholds_min=thresholds_min)
