"""Targets: a district reviewed against a plan's targets (per street or approximate zone, per community)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from geoplan.targets.presets import Target


class PresetOut(BaseModel):
    key: str
    name: str
    place: str | None = None
    horizon: str | None = None
    source: str | None = None
    targets: list[Target] = Field(description="The targets as geoplan reads them (geoplan.targets.presets.Target); min null: the plan names the aim without a figure.")


class PresetList(BaseModel):
    presets: list[PresetOut]


class SummaryRow(BaseModel):
    """One indicator: its value against its target, with the plan and clause it comes from."""

    model_config = ConfigDict(extra="allow")

    id: str
    indicator: str
    value: float | None = Field(description="In unit; null when it cannot be computed (status says why: e.g. 'no data (column beds missing)').")
    unit: str
    target: str
    pass_: bool | None = Field(alias="pass", description="True: passes; false: fails; null: not judged (no figure, or no data).")
    status: str
    detail: str
    source: str = Field(description="'targets file' or 'standard' (reported for every review, no target in the file).")


class UnitRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str | None = None
    passes: bool | None = Field(None, description="Every target the unit is judged on passes (null: none applies, or the outside row).")
    failing: str | None = None


class TargetReviewOut(BaseModel):
    """The review: the summary, per-unit pass/fail, consolidation and what it rests on."""

    model_config = ConfigDict(extra="allow")

    region: str
    scenario_id: str | None = None
    preset: str | None = Field(None, description="The shipped preset reviewed against (null: an uploaded targets file).")
    targets: dict[str, Any]
    units: dict[str, Any] = Field(description="Where the units come from; approximate: true when the streets are approximate zones, not streets.")
    household_size: float
    household_source: str
    facilities: int
    facilities_by_kind: dict[str, int]
    missing_attributes: list[str] = Field(description="Facility attributes the list has no column for: indicators that need them say 'no data'.")
    passed: bool | None
    summary: list[SummaryRow]
    streets: list[UnitRow] = Field(description="Streets or approximate zones; the last row ('outside') holds the people outside every unit.")
    communities: list[UnitRow]
    consolidation: list[dict[str, Any]]
