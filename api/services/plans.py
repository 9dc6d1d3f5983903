"""Optimiser requests: stored settings read into a ``PlanRequest``, checked before any solve, walking times kept.

Settings are stored as the JSON a client sent (:class:`api.schemas.recommendations.RecommendationParams`)
and read with :meth:`geoplan.optimize.PlanRequest.from_dict` wherever they are used; everything
else (the planning sites, how far walks must reach, the pre-solve checks) is the library's.
"""

from __future__ import annotations

from geoplan.optimize import PlanRequest, planning_reach, prepare_request
from geoplan.reach import ReachMatrix
from geoplan.region import Region

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


class Planner:
    """Checks optimiser requests before any solve, and keeps the walking times they need (a few, by region and sites)."""

    def __init__(self, *, reach_cache_size: int = 8):
        self._reach: Memo[ReachMatrix] = Memo(maxsize=reach_cache_size)

    def reach(self, region: Region, request: PlanRequest, *, sites_key: str) -> ReachMatrix:
        """Walking times from the request's planning sites (:func:`geoplan.optimize.planning_reach`), built once per sites and cutoff."""
        cutoff = request.options.cutoff_min(request.kinds, region.thresholds_min)
        kinds = tuple(sorted(s.kind for s in request.kinds))
        return self._reach.get((region.key, sites_key, kinds, cutoff), lambda: planning_reach(region, request))

    def check(self, region: Region, request: PlanRequest, *, sites_key: str) -> None:
        """Every check before a solve (:func:`geoplan.optimize.prepare_request`): InputError, or TargetUnreachable with the best figure."""
        prepare_request(region, request, reach=self.reach(region, request, sites_key=sites_key))
