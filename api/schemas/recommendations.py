"""Recommendations: any optimiser model, run as a background job."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Finite = Annotated[float, Field(allow_inf_nan=False)]
Group = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^pop_[A-Za-z0-9_]+$")]
Kind = Literal["station", "canteen", "centre"]


class KindIn(BaseModel):
    """What to plan for one kind of facility (see ``geoplan.optimize.KindSpec``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = "station"
    p: int | None = Field(None, ge=0, le=5000, description="At most this many new sites (mclp, pmedian; cap for target).")
    budget: Annotated[Finite, Field(ge=0)] | None = Field(None, description="At most this total cost of new sites.")
    threshold_min: Annotated[Finite, Field(gt=0, le=60)] | None = Field(None, description="Walk in minutes (default: the region's largest).")
    capacity: Annotated[Finite, Field(gt=0)] | None = Field(None, description="Capacitated: units one site serves.")
    capacity_group: Group = "pop_60"
    use_rate: Annotated[Finite, Field(gt=0, le=1000)] = 1.0
    target_pct: Annotated[Finite, Field(ge=0, le=100)] | None = Field(None, description="Target model: percent of target_group within the walk.")
    target_group: Group = "pop_60"
    min_catchment: Annotated[Finite, Field(ge=0)] | None = Field(None, description="Consolidate: existing sites with fewer people may close.")


class RecommendationParams(BaseModel):
    """Optimiser settings (``geoplan.optimize.recommend``)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["mclp", "target", "pmedian", "consolidate"] = Field(
        "mclp", description="mclp: most people for p sites; target: fewest sites for target_pct; pmedian: shortest walks; consolidate: close small sites."
    )
    kinds: list[KindIn] = Field(default_factory=lambda: [KindIn(p=5)], min_length=1, max_length=3)
    weights: dict[Group, Annotated[Finite, Field(ge=0, le=1000)]] | None = Field(None, description="Priority weight per person of each group (default 60+: 1, 80+: 2).")
    one_per_site: bool = False
    total_budget: Annotated[Finite, Field(ge=0)] | None = None
    within_threshold: bool = False
    minimize: Literal["count", "cost"] = "count"
    keep_groups: list[Group] = Field(default_factory=lambda: ["pop_60", "pop_80"], max_length=8)
    time_limit_s: Annotated[Finite, Field(gt=0, le=600)] = 60.0
    mip_gap: Annotated[Finite, Field(ge=0, lt=1)] = 0.0

    @field_validator("kinds")
    @classmethod
    def _one_spec_per_kind(cls, kinds: list[KindIn]) -> list[KindIn]:
        names = [k.kind for k in kinds]
        if len(set(names)) != len(names):
            raise ValueError(f"each kind at most once, got {names}")
        return kinds


class RecommendationCreate(RecommendationParams):
    """A recommendation for a region, optionally on top of a scenario's facilities."""

    region: str = Field(min_length=1, max_length=64, examples=["wuchang"])
    scenario_id: str | None = Field(None, max_length=64, description="Plan with this scenario's facilities and candidates.")
