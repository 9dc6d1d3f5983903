"""Maps: self-contained HTML coverage maps (:mod:`geoplan.maps`) of a region or a scenario's end state, kept once rendered."""

from __future__ import annotations

import tempfile
from pathlib import Path

from geoplan.errors import InputError

from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService
from api.store import ScenarioRecord


class MapService:
    """Region and scenario maps, rendered on first request and cached by content."""

    def __init__(self, regions: RegionService, scenarios: ScenarioService):
        self.regions = regions
        self.scenarios = scenarios

    def region_map(self, key: str, *, basemap: str) -> bytes:
        _check_basemap(basemap)
        return self.regions.map_html(("region", key, basemap), lambda: _render(self.regions.report_with_circles(key), basemap))

    def scenario_map(self, record: ScenarioRecord, *, basemap: str) -> bytes:
        _check_basemap(basemap)
        return self.regions.map_html(
            ("scenario", record.id, record.spec_hash, basemap),
            lambda: _render(self.scenarios.end_state_report(record, with_circles=True), basemap),
        )


def _check_basemap(basemap: str) -> None:
    from geoplan.maps import BASEMAPS

    if basemap not in BASEMAPS:
        raise InputError(f"Unknown basemap {basemap!r}; use one of {', '.join(BASEMAPS)} ('none' works offline).")


def _render(report, basemap: str) -> bytes:
    from geoplan.maps import coverage_map, save_map

    with tempfile.TemporaryDirectory(prefix="geoplan-map-") as tmp:
        path = save_map(coverage_map(report, basemap=basemap), Path(tmp) / "map.html")
        return path.read_bytes()
