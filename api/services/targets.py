"""Targets reviews: a region (or a scenario's end state) against a preset or an uploaded targets file.

Planning units are built once per region; a review is kept per region,
targets, scenario state and consolidation threshold (a bounded cache). The
library does the work (:func:`geoplan.targets.targets`); this service only
picks the facilities and the targets and turns the review into JSON.
"""

from __future__ import annotations

import hashlib

import geopandas as gpd

from geoplan.errors import InputError
from geoplan.targets import ConsolidationOptions, available_presets, load_targets, loads_targets, targets
from geoplan.targets.presets import TargetSet

from api.auth import Principal
from api.errors import NotFound
from api.services.memo import Memo
from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService


class TargetService:
    """Reviews against plans' targets over the shared regions and stored scenarios."""

    def __init__(self, regions: RegionService, scenarios: ScenarioService, *, max_upload_bytes: int = 200_000, cache_size: int = 16):
        self.regions = regions
        self.scenarios = scenarios
        self.max_upload_bytes = max_upload_bytes
        self._units: Memo = Memo()
        self._reviews: Memo = Memo(maxsize=cache_size)

    def presets(self) -> list[dict]:
        return [load_targets(name).as_dict() for name in available_presets()]

    def preset(self, name: str) -> TargetSet:
        """A shipped preset, or 404 naming the presets there are."""
        if name not in available_presets():
            raise NotFound(
                f"Unknown targets preset {name!r}; the presets are {', '.join(available_presets())} (GET /targets/presets). "
                f"To review against your own targets, POST the .toml file to /regions/{{region}}/targets."
            )
        return load_targets(name)

    def parse(self, filename: str, content: bytes) -> tuple[TargetSet, str]:
        """An uploaded targets file, and a fingerprint of its content (422 when it cannot be read)."""
        if not content.strip():
            raise InputError(f"The uploaded targets file {filename!r} is empty. Upload a TOML file with [plan] and [[targets]] tables.")
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"The uploaded targets file {filename!r} is not UTF-8 text; save it as UTF-8.") from None
        return loads_targets(text, name=f"the uploaded targets file {filename!r}"), hashlib.sha256(content).hexdigest()[:16]

    def review(self, key: str, target_set: TargetSet, *, fingerprint: str, who: Principal, scenario_id: str | None = None,
               min_catchment: float | None = None) -> dict:
        """The review as JSON (cached per region, targets, scenario state and threshold)."""
        region = self.regions.get(key)
        facilities, state = self._facilities(key, scenario_id, who)
        cache_key = (key, fingerprint, state, min_catchment)

        def build() -> dict:
            units = self.units(key)
            review = targets(region, target_set, facilities=facilities, units=units,
                             consolidation=ConsolidationOptions(min_catchment=min_catchment))
            return {**review.to_dict(), "scenario_id": scenario_id}

        return self._reviews.get(cache_key, build)

    def units(self, key: str):
        """The region's planning units, built once (``Region.units``)."""
        from geoplan.units import region_units

        region = self.regions.get(key)
        return self._units.get(key, lambda: region.units if hasattr(type(region), "units") else region_units(region))

    def _facilities(self, key: str, scenario_id: str | None, who: Principal) -> tuple[gpd.GeoDataFrame | None, str]:
        if scenario_id is None:
            return None, "base"
        record = self.scenarios.get_in(key, scenario_id, who)
        sites = self.scenarios.end_state_report(record, with_circles=False).sites
        if "status" in sites:
            sites = sites[sites["status"].astype(str) != "closed"]
        return sites, record.spec_hash
