"""Scenarios: a region with added and closed facilities (and optimiser settings), run and compared."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from geoplan.coords import normalize_coord_system
from geoplan.errors import InputError
from geoplan.sites import MAX_SITE_COST

from api.schemas.recommendations import MAX_CAPACITY, RecommendationParams, at_most

Finite = Annotated[float, Field(allow_inf_nan=False)]
SiteId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Kind = Literal["station", "canteen", "centre"]


def _coord_system(value: str) -> str:
    try:
        return normalize_coord_system(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


CoordSystem = Annotated[str, Field(max_length=32), AfterValidator(_coord_system)]
SiteCapacity = at_most(MAX_CAPACITY, "give the units (people) the site can really serve.", ge=0)
SiteCost = at_most(MAX_SITE_COST, "give the site's cost in yuan, or leave it out (1 each: count the sites).", ge=0)
ADDED_COST = "Total cost of the sites added; null when the costs add up past the largest number (a site's cost is absurd: fix it)."


class SiteIn(BaseModel):
    """A facility given by its coordinates (in the request's ``coord_system``)."""

    model_config = ConfigDict(extra="forbid")

    lon: Annotated[Finite, Field(ge=-180, le=180)]
    lat: Annotated[Finite, Field(ge=-90, le=90)]
    site_id: SiteId | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    kind: Kind = "station"
    capacity: SiteCapacity | None = Field(None, description=f"Units (people) the site serves, up to {MAX_CAPACITY:g}.")
    cost: SiteCost | None = Field(None, description=f"Yuan, up to {MAX_SITE_COST:g} (default 1).")


class SiteOut(BaseModel):
    site_id: str
    name: str
    kind: str
    lon: float = Field(description="WGS84")
    lat: float = Field(description="WGS84")
    capacity: float | None
    cost: float | None


class ScenarioCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: str = Field(min_length=1, max_length=64, examples=["wuchang"])
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    coord_system: CoordSystem = Field("wgs84", description="Of the added sites: wgs84, gcj02 (Amap/Tencent) or bd09 (Baidu).")
    added: list[SiteIn] = Field(default_factory=list, max_length=1000, description="New facilities.")
    closed: list[SiteId] = Field(default_factory=list, max_length=1000, description="Ids of existing facilities to close.")
    recommend: RecommendationParams | None = Field(None, description="Also run the optimiser on the edited region when the scenario runs.")


class ScenarioUpdate(BaseModel):
    """Fields to change; those left out stay as they are (``recommend: null`` removes the optimiser settings)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    coord_system: CoordSystem = Field("wgs84", description="Of the added sites: wgs84, gcj02 (Amap/Tencent) or bd09 (Baidu).")
    added: list[SiteIn] | None = Field(None, max_length=1000)
    closed: list[SiteId] | None = Field(None, max_length=1000)
    recommend: RecommendationParams | None = None


class RunState(BaseModel):
    job_id: str
    status: str
    finished_at: str | None


class CoverageChange(BaseModel):
    group: str
    label: str
    threshold_min: float
    population: float
    covered_before: float
    covered_after: float
    change: float
    covered_pct_before: float | None
    covered_pct_after: float | None


class SiteChanges(BaseModel):
    total: int = Field(description="Facilities after the scenario.")
    added: list[str]
    closed: list[str]
    added_cost: float | None = Field(description=ADDED_COST)


class ScenarioResultOut(BaseModel):
    scenario_id: str
    name: str
    region: str
    spec_hash: str
    coverage: list[CoverageChange]
    sites: SiteChanges
    plan: dict[str, Any] | None = Field(None, description="The optimiser's plan, when the scenario has recommend settings.")


class ScenarioOut(BaseModel):
    id: str
    region: str
    name: str
    description: str
    created_at: str
    updated_at: str
    facilities_source: Literal["region", "upload"]
    candidates_source: Literal["region", "upload"]
    existing: int | None = Field(description="Facilities the scenario starts from (before its edits); null if its region is no longer served.")
    candidates: int | None
    added: list[SiteOut]
    closed: list[str]
    recommend: RecommendationParams | dict[str, Any] | None = Field(
        description="The optimiser settings; shown as stored when they predate a bound the settings have now.")
    spec_hash: str = Field(description="Changes whenever the scenario's content changes.")
    version: str = Field(description="The scenario's version, as its ETag header gives it: send it in If-Match on PATCH.")
    last_run: RunState | None
    result: ScenarioResultOut | None = Field(None, description="The result for the current content, once run.")
    links: dict[str, str]


class ScenarioList(BaseModel):
    scenarios: list[ScenarioOut]


class CompareItem(BaseModel):
    scenario_id: str
    name: str
    sites: int
    added: list[str]
    closed: list[str]
    added_cost: float | None = Field(description=ADDED_COST)
    covered: dict[str, float] = Field(description="People within threshold_min, per group.")
    covered_pct: dict[str, float | None]
    change: dict[str, float] = Field(description="Covered people minus the first scenario's, per group.")


class CompareOut(BaseModel):
    region: str
    threshold_min: float
    scenarios: list[CompareItem]
