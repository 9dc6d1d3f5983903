"""Facilities: a region's or a scenario's existing and candidate sites as GeoJSON."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from geoplan.region import Region

from api.services import scenarios as sc
from api.services.regions import RegionService, sites_collection
from api.store import ScenarioRecord


class FacilityService:
    """Site listings of the shared regions and of stored scenarios."""

    def __init__(self, regions: RegionService):
        self.regions = regions

    def region_sites(self, key: str, *, status: str, kind: str | None) -> dict:
        region = self.regions.get(key)
        frames = []
        if status in ("existing", "all"):
            frames.append(region.facilities.assign(status="existing"))
        if status in ("candidate", "all"):
            frames.append(region.candidates.assign(status="candidate"))
        return _collection(region, frames, kind=kind, extra={"region": key, "scenario_id": None})

    def scenario_sites(self, record: ScenarioRecord, *, status: str, kind: str | None) -> dict:
        """The facilities after the scenario's edits (``change``: kept, added, closed) and its candidates."""
        base = self.regions.get(record.region)
        spec = record.spec
        edited = sc.check(base, spec)
        starting = sc.base_facilities(base, spec)
        frames = []
        if status in ("existing", "all"):
            facilities = edited.facilities.copy()
            added = {s["site_id"] for s in spec.get("added") or []}
            facilities["change"] = ["added" if str(i) in added else "kept" for i in facilities.index]
            closed = starting[starting.index.astype(str).isin(spec.get("closed") or [])].assign(status="closed", change="closed")
            frames += [facilities.assign(status="existing"), closed]
        if status in ("candidate", "all"):
            frames.append(edited.candidates.assign(status="candidate"))
        return _collection(base, frames, kind=kind, extra={"region": record.region, "scenario_id": record.id})


def _collection(region: Region, frames: list[gpd.GeoDataFrame], *, kind: str | None, extra: dict) -> dict:
    frames = [f.to_crs(region.crs) for f in frames if len(f)]
    if frames:
        sites = gpd.GeoDataFrame(pd.concat(frames), geometry="geometry", crs=region.crs)
    else:
        sites = gpd.GeoDataFrame({"name": [], "kind": [], "status": []}, geometry=gpd.GeoSeries([], crs=region.crs))
    if kind is not None and len(sites):
        sites = sites[sites["kind"].astype(str) == kind]
    counts = {str(k): int(v) for k, v in sites["status"].astype(str).value_counts().items()} if len(sites) else {}
    return sites_collection(sites, extra={**extra, "counts": counts})
