"""Recommendations: any optimiser model, run as a background job."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from geoplan.sites import MAX_SITE_CAPACITY

#: Upper bounds of the numbers a client gives: generous for any real plan, and far enough below the
#: largest float that sums of them stay finite and the solvers answer correctly (a capacity of 1e21
#: already reads as "infeasible" to them).
MAX_CAPACITY = MAX_SITE_CAPACITY  # people one site serves (geoplan.sites, which checks uploaded lists the same way)
MAX_BUDGET = 1e15  # yuan: a thousand sites at the largest cost one may have

Finite = Annotated[float, Field(allow_inf_nan=False)]


def at_most(limit: float, advice: str, **lower: float) -> Any:
    """A finite number above ``lower`` (``gt=`` or ``ge=``) and up to ``limit``; past it, a message saying what to give instead."""

    def check(value: float) -> float:
        if value > limit:
            raise ValueError(f"{value:g} is more than the {limit:g} allowed; {advice}")
        return value

    return Annotated[float, Field(allow_inf_nan=False, json_schema_extra={"maximum": limit}, **lower), AfterValidator(check)]


Capacity = at_most(MAX_CAPACITY, "give the units (people) one site can really serve.", gt=0)
Budget = at_most(MAX_BUDGET, "give the budget in yuan, or leave it out for no budget.", ge=0)
Group = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^pop_[A-Za-z0-9_]+$")]
Kind = Literal["station", "canteen", "centre"]


class KindIn(BaseModel):
    """What to plan for one kind of facility (see ``geoplan.optimize.KindSpec``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = "station"
    p: int | None = Field(None, ge=0, le=5000, description="At most this many new sites (mclp, pmedian; cap for target).")
    budget: Budget | None = Field(None, description=f"At most this total cost of new sites (yuan, up to {MAX_BUDGET:g}).")
    threshold_min: Annotated[Finite, Field(gt=0, le=60)] | None = Field(None, description="Walk in minutes (default: the region's largest).")
    capacity: Capacity | None = Field(None, description=f"Capacitated: units one site serves (up to {MAX_CAPACITY:g}).")
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
    total_budget: Budget | None = Field(None, description=f"At most this total cost of all new sites (yuan, up to {MAX_BUDGET:g}).")
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
