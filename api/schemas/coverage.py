"""Coverage: who lives within a walk of care, gaps and care circles."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import FeatureCollection


class CoverageRow(BaseModel):
    group: str
    label: str
    threshold_min: float
    population: float
    covered: float
    not_covered: float
    covered_pct: float | None
    not_reachable_on_foot: float | None = Field(None, description="People too far from any walkable street to be reached on foot at all.")


class CoverageOut(BaseModel):
    region: str
    scenario_id: str | None
    site_source: str = Field(description="facilities (existing), candidates (every candidate open, for a region with no facility list) or scenario.")
    sites: int
    rows: list[CoverageRow]


class GapParams(BaseModel):
    """Query of the gap cells."""

    group: str = Field("pop_60", max_length=40, description="Group whose people count as uncovered.")
    threshold_min: float | None = Field(None, gt=0, le=120, allow_inf_nan=False, description="Walking minutes (default: the largest, 15).")
    bbox: str | None = Field(None, max_length=200, description="min_lon,min_lat,max_lon,max_lat (WGS84): only cells touching it.")
    limit: int = Field(1000, ge=1, le=10000, description="At most this many cells (most people first).")
    min_people: float = Field(0.0, ge=0, allow_inf_nan=False, description="Only cells with more people of the group than this.")
    scenario_id: str | None = Field(None, max_length=64, description="Gaps after this scenario instead of with the region's own facilities.")


class GapCollection(FeatureCollection):
    """Uncovered population cells, most people of ``group`` first."""

    region: str
    scenario_id: str | None
    group: str
    threshold_min: float
    bbox: list[float] | None
    total: int = Field(description="Matching cells in all.")
    returned: int = Field(description="Cells in this answer (at most limit).")
    uncovered_people: float = Field(description="People of the group in all matching cells.")


class CareCircleCollection(FeatureCollection):
    region: str
