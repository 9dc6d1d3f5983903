"""One entry point: :func:`recommend` a plan for a region (the CLI and the API call this)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geoplan.errors import InputError
from geoplan.optimize.models import TargetUnreachable, closable_sites, optimize
from geoplan.optimize.phasing import phase_sites
from geoplan.optimize.plan import Plan, make_plan
from geoplan.optimize.problem import DEFAULT_WEIGHTS, KindSpec, Problem, build_problem

log = logging.getLogger(__name__)

_SINGLE_KIND = ("p", "budget", "threshold_min", "capacity", "target_pct", "min_catchment")


def recommend(
    region,
    *,
    model: str = "mclp",
    kinds: Sequence[KindSpec] | Mapping[str, Mapping[str, Any]] | None = None,
    kind: str = "station",
    p: int | None = None,
    budget: float | None = None,
    threshold_min: float | None = None,
    capacity: float | None = None,
    capacity_group: str = "pop_60",
    use_rate: float = 1.0,
    target_pct: float | None = None,
    target_group: str = "pop_60",
    min_catchment: float | None = None,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    candidates=None,
    facilities=None,
    costs=None,
    one_per_site: bool = False,
    total_budget: float | None = None,
    within_threshold: bool = False,
    pmedian_cutoff_min: float | None = None,
    minimize: str = "count",
    keep_groups: Sequence[str] = ("pop_60", "pop_80"),
    solver: str = "highs",
    time_limit_s: float | None = 60.0,
    mip_gap: float = 0.0,
    reduce: bool = True,
    refine: bool = True,
    reach=None,
) -> Plan:
    """Recommend sites for new care facilities in ``region``, exactly, as a :class:`~geoplan.optimize.plan.Plan`.

    Parameters
    ----------
    region
        A :class:`~geoplan.region.Region`; its ``facilities`` count as
        already covering.
    model
        ``"mclp"``: open ``p`` sites (or within ``budget``) to reach the most
        weighted older people within the walk. ``"target"``: the fewest new
        sites (``minimize="cost"``: least cost) so that ``target_pct`` % of
        ``target_group`` are within the walk. ``"pmedian"``: ``p`` sites that
        make the weighted walk shortest. ``"consolidate"``: close existing
        sites whose catchment is below ``min_catchment`` (opening up to ``p``
        new ones) while no group in ``keep_groups`` loses coverage.
    kinds
        Several kinds at once, e.g. ``[KindSpec("station", p=5),
        KindSpec("canteen", p=3, threshold_min=10)]`` or ``{"station": {"p":
        5}, "canteen": {"p": 3, "threshold_min": 10}}``. Without it, one kind
        from ``kind``, ``p``, ``budget``, ``threshold_min``, ``capacity``,
        ``target_pct``, ``min_catchment``.
    threshold_min
        The walk in minutes (default: the region's largest threshold, 15).
    capacity, capacity_group, use_rate
        Capacitated plan: a site serves at most ``capacity`` units, one
        person of ``capacity_group`` needing ``use_rate`` units.
    weights
        Priority weight per person of each group, added up (default: 60+
        count 1, 80+ count 2). Extra ``pop_*`` columns of the demand
        (``pop_disabled``, ``pop_alone``) may be weighted too.
    candidates, facilities, costs
        Candidate sites (default ``region.candidates``; a frame, or a mapping
        kind -> frame), existing facilities (default ``region.facilities``),
        and a cost per site id (default the sites' ``cost`` column, 1).
    one_per_site
        With several kinds: a candidate takes at most one new facility.
    total_budget
        With several kinds: the cost of all new sites together.
    within_threshold
        p-median: assign people only within the threshold (else up to
        ``pmedian_cutoff_min``).
    pmedian_cutoff_min
        p-median: how far walks are computed (default twice the largest
        threshold, 30 min); a person with no site that near counts this long.
    solver, time_limit_s, mip_gap
        ``"highs"`` (default, through PuLP; CBC if HiGHS is unavailable) or
        ``"cbc"``; a time limit in seconds (the best plan found so far is
        returned with ``status="time_limit"``); the relative MIP gap at which
        to stop (0: proven optimal).
    reduce
        Apply the optimum-preserving reductions (:mod:`geoplan.optimize.reduce`).
    refine
        Target and consolidation: among the plans with the fewest sites, take
        the one reaching the most weighted people.
    reach
        A precomputed :class:`~geoplan.reach.ReachMatrix` (see
        :func:`~geoplan.optimize.problem.build_problem`).

    Raises
    ------
    InputError
        Bad options: p beyond the candidates, a negative capacity, an unknown group...
    TargetUnreachable
        (an :class:`~geoplan.errors.InfeasibleError`) ``target_pct`` beyond
        what every candidate together reaches; its message gives the best
        achievable % and the fewest sites reaching it, and ``.plan`` is that plan.
    InfeasibleError
        No plan meets the constraints (e.g. a target beyond the budget).

    Examples
    --------
    >>> import geoplan
    >>> from geoplan.optimize import recommend
    >>> region = geoplan.load_region("wuchang")                           # doctest: +SKIP
    >>> plan = recommend(region, p=5)                                     # doctest: +SKIP
    >>> plan.new_sites[["name", "gain_pop_60", "gain_pop_80"]]           # doctest: +SKIP
    >>> recommend(region, model="target", target_pct=80).solver.objective  # doctest: +SKIP
    """
    specs = _specs(
        kinds, region_threshold=max(region.thresholds_min),
        single=dict(kind=kind, p=p, budget=budget, threshold_min=threshold_min, capacity=capacity, capacity_group=capacity_group,
                    use_rate=use_rate, target_pct=target_pct, target_group=target_group, min_catchment=min_catchment),
    )
    cutoff_min = max([max(region.thresholds_min), *(s.threshold_min for s in specs)])
    if model == "pmedian":
        cutoff_min = pmedian_cutoff_min if pmedian_cutoff_min is not None else 2 * cutoff_min
        if cutoff_min < max(s.threshold_min for s in specs):
            raise InputError(f"pmedian_cutoff_min ({cutoff_min:g}) must be at least the threshold.")
        if reach is not None and reach.cutoff_s + 1e-9 < cutoff_min * 60:
            # walks beyond the reach's cutoff would silently cost only its cutoff
            raise InputError(
                f"The given reach matrix stops at {reach.cutoff_s / 60:g} min, but p-median needs walking times "
                f"up to pmedian_cutoff_min = {cutoff_min:g} min. Compute it with region.reach(sites, cutoff_min={cutoff_min:g})."
            )
    problem = build_problem(
        region, specs=specs, weights=weights, candidates=candidates, facilities=facilities, costs=costs, reach=reach,
        cutoff_min=cutoff_min,
    )
    cells = region.demand["cell"] if "cell" in region.demand else region.demand.geometry
    return plan_problem(
        problem, model=model, region_key=region.key, crs=region.crs, demand_cells=cells,
        thresholds_min=region.thresholds_min, one_per_site=one_per_site, total_budget=total_budget,
        within_threshold=within_threshold, minimize=minimize, keep_groups=keep_groups, solver=solver,
        time_limit_s=time_limit_s, mip_gap=mip_gap, reduce=reduce, refine=refine,
    )


def plan_problem(
    problem: Problem,
    *,
    model: str = "mclp",
    region_key: str = "custom",
    crs=None,
    demand_cells=None,
    thresholds_min: Sequence[float] = (5, 10, 15),
    one_per_site: bool = False,
    total_budget: float | None = None,
    within_threshold: bool = False,
    minimize: str = "count",
    keep_groups: Sequence[str] = ("pop_60", "pop_80"),
    solver: str = "highs",
    time_limit_s: float | None = 60.0,
    mip_gap: float = 0.0,
    reduce: bool = True,
    refine: bool = True,
) -> Plan:
    """Solve a :class:`~geoplan.optimize.problem.Problem` and make its :class:`Plan` (what :func:`recommend` does after loading)."""
    options = dict(
        model=model, one_per_site=one_per_site, total_budget=total_budget, within_threshold=within_threshold,
        minimize=minimize, keep_groups=tuple(keep_groups), solver=solver, time_limit_s=time_limit_s,
        mip_gap=mip_gap, reduce=reduce, refine=refine,
    )
    try:
        outcome = optimize(problem, **options)
    except TargetUnreachable as first:
        raise _with_best_plan(first, problem, options, region_key, crs, demand_cells, thresholds_min) from None

    reasons = _closing_reasons(problem, outcome) if model == "consolidate" else None
    phasing = phase_sites(problem, outcome.opened, outcome.kept, model=model, within_threshold=within_threshold)
    parameters = {
        **{k: v for k, v in options.items()},
        "keep_groups": list(keep_groups),
        "weights": dict(problem.weights),
        "kinds": [dataclasses.asdict(s) for s in problem.specs],
        "thresholds": {s.kind: s.threshold_min for s in problem.specs},
        "n_candidates": {s.kind: int(len(problem.candidates_for(s.kind))) for s in problem.specs},
        "n_existing": int((problem.sites["status"] == "existing").sum()),
    }
    return make_plan(
        problem, outcome, region_key=region_key, crs=crs, demand_cells=demand_cells, thresholds_min=tuple(thresholds_min),
        parameters=parameters, phasing=phasing, closable_reason=reasons,
    )


def _with_best_plan(error: TargetUnreachable, problem, options, region_key, crs, demand_cells, thresholds_min) -> TargetUnreachable:
    """The error, with the plan that reaches the best achievable coverage with the fewest sites."""
    specs = list(problem.specs)
    for _ in range(len(specs)):
        try:
            best_specs = [
                dataclasses.replace(s, target_pct=_best_pct(problem, s)) if s.target_pct is not None and s.target_pct > _best_pct(problem, s) else s
                for s in specs
            ]
            best_problem = dataclasses.replace(problem, specs=tuple(best_specs))
            plan = plan_problem(best_problem, region_key=region_key, crs=crs, demand_cells=demand_cells, thresholds_min=thresholds_min, **options)
        except Exception as exc:  # the best plan is a courtesy: the error stands without it
            log.warning("optimize: could not build the best achievable plan: %s", exc)
            return error
        new = plan.new_sites
        return error.with_plan(plan, list(new[new["kind"] == error.spec.kind].index))
    return error


def _best_pct(problem: Problem, spec: KindSpec) -> float:
    from geoplan.optimize.models import max_achievable

    total = float(problem.people[spec.target_group].sum())
    return 100.0 * max_achievable(problem, spec) / total if total else 0.0


def _closing_reasons(problem: Problem, outcome) -> dict[str, dict[int, str]]:
    from geoplan.optimize.plan import _nearest

    reasons: dict[str, dict[int, str]] = {}
    for spec in problem.specs:
        closed = outcome.closed.get(spec.kind, np.zeros(0, int))
        if len(closed) == 0:
            continue
        _, catchment = closable_sites(problem, spec)
        own = np.flatnonzero((problem.sites["status"].to_numpy() == "existing") & (problem.sites["kind"].to_numpy() == spec.kind))
        after = _nearest(problem, np.r_[outcome.kept[spec.kind], outcome.opened[spec.kind]].astype(np.int64))
        people = problem.people[spec.target_group].to_numpy(dtype=float)
        out = {}
        for pos in closed:
            c = float(catchment[np.flatnonzero(own == pos)[0]])
            rows = problem.within(spec.threshold_s, np.array([pos])).tocsc().indices
            still = float(people[rows][after[rows] <= spec.threshold_s + 1e-9].sum())
            out[int(pos)] = (
                f"catchment {c:,.0f} {spec.target_group} within {spec.threshold_min:g} min < {spec.min_catchment:,.0f}; "
                f"{still:,.0f} of them stay within reach of another site 服务人数少于{spec.min_catchment:,.0f}，"
                f"其中{still:,.0f}人仍在其他站点{spec.threshold_min:g}分钟内"
            )
        reasons[spec.kind] = out
    return reasons


def _specs(kinds, *, region_threshold: float, single: dict) -> tuple[KindSpec, ...]:
    if kinds is None:
        values = dict(single)
        if values["threshold_min"] is None:
            values["threshold_min"] = float(region_threshold)
        return (KindSpec(**values),)
    given = [k for k in _SINGLE_KIND if single.get(k) is not None]
    if given:
        raise InputError(f"Give the options of each kind inside kinds=..., not as {', '.join(given)} (which are for one kind).")
    specs = []
    if isinstance(kinds, Mapping):
        for name, options in kinds.items():
            options = dict(options or {})
            unknown = sorted(set(options) - {f.name for f in dataclasses.fields(KindSpec)})
            if unknown:
                raise InputError(f"Unknown option(s) {unknown} for kind {name!r}; known: {[f.name for f in dataclasses.fields(KindSpec) if f.name != 'kind']}.")
            options.setdefault("threshold_min", float(region_threshold))
            specs.append(KindSpec(kind=name, **options))
    else:
        for spec in kinds:
            if not isinstance(spec, KindSpec):
                raise InputError(f"kinds must hold KindSpec objects (or be a mapping kind -> options), got {type(spec).__name__}.")
            specs.append(spec)
    return tuple(specs)
