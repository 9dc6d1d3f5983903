"""Optimiser requests: stored settings read into a ``PlanRequest``, checked before any solve, walking times kept.

Settings are stored as the JSON a client sent (:class:`api.schemas.recommendations.RecommendationParams`)
and read with :meth:`geoplan.optimize.PlanRequest.from_dict` wherever they are used; everything
else (the planning sites, how far walks must reach, the pre-solve checks) is the library's.
"""

from __future__ import annotations

import dataclasses

from geoplan.errors import InputError
from geoplan.optimize import PlanRequest, planning_reach, planning_sites, prepare_request
from geoplan.reach import ReachMatrix
from geoplan.region import Region

from api.errors import PayloadTooLarge
from api.schemas.recommendations import RecommendationParams
from api.services.memo import Memo

#: Settings whose API default means "not given": the library refuses them for a model that does not use them.
UNSET_AT_DEFAULT = ("within_threshold", "minimize", "keep_groups")


def plan_request(region: Region, params: dict) -> PlanRequest:
    """The ``PlanRequest`` of stored settings; a kind without ``threshold_min`` walks the region's largest threshold."""
    data = dict(params)
    for name in UNSET_AT_DEFAULT:
        if name in data and data[name] == RecommendationParams.model_fields[name].get_default(call_default_factory=True):
            del data[name]
    if data.get("kinds"):
        top = float(max(region.thresholds_min))
        data["kinds"] = [{**kind, "threshold_min": top if kind.get("threshold_min") is None else kind["threshold_min"]} for kind in data["kinds"]]
    return PlanRequest.from_dict(data)


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """How much work one request may ask for (each field is a setting)."""

    max_reach_pairs: int = 60_000_000  # GEOPLAN_MAX_REACH_PAIRS
    max_job_seconds: float = 900.0  # GEOPLAN_MAX_JOB_SECONDS


def check_reach_pairs(region: Region, sites: int, limits: RequestLimits) -> None:
    """413 when walking from ``sites`` sites to every demand cell of ``region`` is more than the limit allows."""
    pairs = sites * len(region.demand)
    if pairs > limits.max_reach_pairs:
        most = limits.max_reach_pairs // max(len(region.demand), 1)
        raise PayloadTooLarge(
            f"{sites:,} sites x {len(region.demand):,} demand cells of {region.key} = {pairs:,} walks to compute, more than "
            f"the {limits.max_reach_pairs:,} one request may ask for (GEOPLAN_MAX_REACH_PAIRS): use at most {most:,} sites "
            "(facilities and candidates together), e.g. candidates on a coarser spacing."
        )


class Planner:
    """Checks optimiser requests before any solve, and keeps the walking times they need (a few, by region and sites)."""

    def __init__(self, *, reach_cache_size: int = 8, limits: RequestLimits = RequestLimits()):
        self._reach: Memo[ReachMatrix] = Memo(maxsize=reach_cache_size)
        self.limits = limits

    def reach(self, region: Region, request: PlanRequest, *, sites_key: str) -> ReachMatrix:
        """Walking times from the request's planning sites (:func:`geoplan.optimize.planning_reach`), built once per sites and cutoff."""
        cutoff = request.options.cutoff_min(request.kinds, region.thresholds_min)
        kinds = tuple(sorted(s.kind for s in request.kinds))

        def build() -> ReachMatrix:
            check_reach_pairs(region, len(planning_sites(region, [s.kind for s in request.kinds]).sites), self.limits)
            return planning_reach(region, request)

        return self._reach.get((region.key, sites_key, kinds, cutoff), build)

    def check(self, region: Region, request: PlanRequest, *, sites_key: str) -> None:
        """Every check before a solve (:func:`geoplan.optimize.prepare_request`): InputError, or TargetUnreachable with the best figure."""
        if request.solver.time_limit_s > self.limits.max_job_seconds:
            raise InputError(
                f"time_limit_s={request.solver.time_limit_s:g} is longer than a job may run "
                f"({self.limits.max_job_seconds:g} s, GEOPLAN_MAX_JOB_SECONDS); ask for a shorter time limit."
            )
        prepare_request(region, request, reach=self.reach(region, request, sites_key=sites_key))
