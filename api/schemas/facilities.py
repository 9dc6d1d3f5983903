"""Facilities: existing and candidate sites, and facility-list uploads."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import FeatureCollection


class SiteCollection(FeatureCollection):
    region: str
    scenario_id: str | None
    counts: dict[str, int]


class UploadOut(BaseModel):
    scenario_id: str
    status: str = Field(description="existing or candidate: which list the upload replaced or extended.")
    mode: str
    coord_system: str
    count: int = Field(description="Sites read from the file (after dropping those outside, if asked).")
    total: int = Field(description="Sites in the scenario's list now.")
    site_ids: list[str] = Field(description="The first 100 ids read.")
    links: dict[str, str]
