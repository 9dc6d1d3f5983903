"""Dependencies as ``Annotated`` aliases: the shared services, settings, and path lookups that 404.

Each reads the shared services straight from the app state (no chains of
sub-dependencies to solve per request), and the trivial ones are ``async`` so
that FastAPI resolves them on the event loop instead of a thread hop each.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Depends, Path, Request

from api.auth import PrincipalDep
from api.services.coverage_service import CoverageService
from api.services.facilities import FacilityService
from api.services.jobs import JobRunner
from api.services.maps import MapService
from api.services.recommendations import RecommendationService
from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService
from api.services.uploads import UploadService
from api.settings import Settings, get_settings
from api.store import ScenarioRecord, Store


@dataclasses.dataclass(frozen=True)
class Services:
    """Everything built once in the lifespan and shared by the requests."""

    settings: Settings
    store: Store
    regions: RegionService
    jobs: JobRunner
    scenarios: ScenarioService
    uploads: UploadService
    recommendations: RecommendationService
    maps: MapService
    facilities: FacilityService
    coverage: CoverageService


async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _shared(name: str):
    """A dependency that hands out one of the shared services, read straight from the app state."""

    async def shared(request: Request):
        return getattr(request.app.state.services, name)

    shared.__name__ = f"get_{name}"
    return Depends(shared)


StoreDep = Annotated[Store, _shared("store")]
RegionsDep = Annotated[RegionService, _shared("regions")]
JobsDep = Annotated[JobRunner, _shared("jobs")]
ScenariosDep = Annotated[ScenarioService, _shared("scenarios")]
UploadsDep = Annotated[UploadService, _shared("uploads")]
RecommendationsDep = Annotated[RecommendationService, _shared("recommendations")]
MapsDep = Annotated[MapService, _shared("maps")]
FacilitiesDep = Annotated[FacilityService, _shared("facilities")]
CoverageDep = Annotated[CoverageService, _shared("coverage")]


async def region_key(request: Request, region: Annotated[str, Path(max_length=64, description="Region key, e.g. wuchang (GET /regions).")]) -> str:
    """The path's region key, or 404 naming the regions there are."""
    return request.app.state.services.regions.require(region)


RegionKey = Annotated[str, Depends(region_key)]


def scenario_record(request: Request, who: PrincipalDep, scenario_id: Annotated[str, Path(max_length=64)]) -> ScenarioRecord:
    """The path's scenario, or 404 (also for another team's)."""
    return request.app.state.services.scenarios.get(scenario_id, who)


ScenarioDep = Annotated[ScenarioRecord, Depends(scenario_record)]
