"""Regions: what the service plans for."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import FeatureCollection


class RegionOut(BaseModel):
    key: str = Field(description="Region key used in URLs, e.g. wuchang.")
    name: str
    name_zh: str
    city: str
    loaded: bool = Field(description="Whether this process has the region prepared in memory already.")


class RegionList(BaseModel):
    regions: list[RegionOut]


class FacilityCounts(BaseModel):
    existing: int
    candidates: int
    existing_by_kind: dict[str, int]


class RegionDetailOut(BaseModel):
    key: str
    name: str
    name_zh: str
    city: str
    crs: str = Field(description="The metric CRS the region is analysed in.")
    bbox: list[float] = Field(description="[min lon, min lat, max lon, max lat], WGS84.")
    groups: list[str] = Field(description="Population groups, e.g. pop_60.")
    thresholds_min: list[float] = Field(description="Care-circle walking times, minutes.")
    population: dict[str, float] = Field(description="People per group (census-scaled where the region says so).")
    census_factors: dict[str, float]
    facilities: FacilityCounts
    communities: int
    boundary: FeatureCollection
