"""One entry point: :func:`recommend` a plan for a region (the CLI, the API and scenarios call this)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geoplan.optimize.errors import TargetUnreachable
from geoplan.optimize.formulations import closable_sites, max_achievable
from geoplan.optimize.options import KindSpec, ModelOptions, PlanRequest, SolverOptions, kind_specs
from geoplan.optimize.orchestration import check_request, optimize
from geoplan.optimize.phasing import phase_sites
from geoplan.optimize.plan import Plan, make_plan
from geoplan.optimize.problem import DEFAULT_WEIGHTS, Problem, build_problem, planning_sites
from geoplan.reach import ReachMatrix, within_time

log = logging.getLogger(__name__)

Kinds = KindSpec | Sequence[KindSpec] | Mapping[str, Mapping[str, Any] | None]


def recommend(
    region,
    kinds: Kinds = KindSpec("station", p=5),
    options: ModelOptions = ModelOptions(),
    solver: SolverOptions = SolverOptions(),
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    candidates=None,
    facilities=None,
    costs=None,
    reach: ReachMatrix | None = None,
) -> Plan:
    """Recommend sites for new care facilities in ``region``, exactly, as a :class:`~geoplan.optimize.plan.Plan`.

    Parameters
    ----------
    region
        A :class:`~geoplan.region.Region`; its ``facilities`` count as
        already covering.
    kinds
        What to plan: a :class:`~geoplan.optimize.options.KindSpec`, several
        (``[KindSpec("station", p=5), KindSpec("canteen", p=3,
        threshold_min=10)]``), or a mapping kind -> options.
    options
        The model and its rules (:class:`~geoplan.optimize.options.ModelOptions`).
    solver
        Solver, time limit and MIP gap (:class:`~geoplan.optimize.options.SolverOptions`).
    weights
        Priority weight per person of each group, added up (default: 60+
        count 1, 80+ count 2). Extra ``pop_*`` columns of the demand
        (``pop_disabled``, ``pop_alone``) may be weighted too.
    candidates, facilities, costs
        Candidate sites (default ``region.candidates``; a frame, or a mapping
        kind -> frame), existing facilities (default ``region.facilities``),
        and a cost per site id (default the sites' ``cost`` column, 1).
    reach
        Precomputed walking times from :func:`~geoplan.optimize.planning_sites`
        to the region's demand, reaching at least
        ``options.cutoff_min(kinds, region.thresholds_min)``.

    Raises
    ------
    InputError
        Bad options: an option the model does not use, p beyond the candidates, an unknown group...
    TargetUnreachable
        (an :class:`~geoplan.errors.InfeasibleError`) ``target_pct`` beyond
        what every candidate together reaches; its message gives the best
        achievable % and the fewest sites reaching it, and ``.plan`` is that plan.
    InfeasibleError
        No plan meets the constraints (e.g. a target beyond the budget).

    Examples
    --------
    Five stations for Wuchang (``wuchang`` is ``geoplan.load_region("wuchang")``),
    in build order, with the people aged 60+ and 80+ each brings within 15 minutes:

    >>> from geoplan.optimize import KindSpec, ModelOptions, recommend
    >>> plan = recommend(wuchang, KindSpec("station", p=5))
    >>> plan.new_sites[["name", "gain_pop_60", "gain_pop_80"]].round()
                              name  gain_pop_60  gain_pop_80
    site_id
    c572     社区 community unit 572       7110.0       1171.0
    c542     社区 community unit 542       5905.0        972.0
    c483     社区 community unit 483       5831.0        870.0
    c528     社区 community unit 528       5585.0        919.0
    c464     社区 community unit 464       5583.0        919.0

    The fewest stations that bring 70 % of the 60+ within 15 minutes; 80 % is
    beyond every candidate together, and the error says how far one can get:

    >>> recommend(wuchang, KindSpec(target_pct=70), ModelOptions("target")).objective
    58.0
    >>> recommend(wuchang, KindSpec(target_pct=80), ModelOptions("target"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geoplan.optimize.errors.TargetUnreachable: The target of 80 % of pop_60 within 15 min for stations cannot be reached: with every candidate and existing site open, at most 74.8 % (172,783 of 231,028) are within reach. ...
    """
    problem = prepare(region, kinds, options, weights=weights, candidates=candidates, facilities=facilities, costs=costs,
                      reach=reach, check_targets=False)  # a target out of reach is told by plan_problem, with the best plan
    return plan_problem(problem, options, solver, region_key=region.key, crs=region.crs,
                        demand_cells=_cells(region), thresholds_min=region.thresholds_min)


def recommend_request(region, request: PlanRequest, *, reach: ReachMatrix | None = None) -> Plan:
    """:func:`recommend` for a stored or received :class:`~geoplan.optimize.options.PlanRequest`."""
    return recommend(region, request.kinds, request.options, request.solver, weights=request.weights or DEFAULT_WEIGHTS, reach=reach)


def prepare_request(region, request: PlanRequest, *, reach: ReachMatrix | None = None) -> Problem:
    """:func:`prepare` (the checks before any solve) for a :class:`~geoplan.optimize.options.PlanRequest`."""
    return prepare(region, request.kinds, request.options, weights=request.weights or DEFAULT_WEIGHTS, reach=reach)


def planning_reach(region, request: PlanRequest) -> ReachMatrix:
    """Walking times from every site of the request's plan (:func:`~geoplan.optimize.planning_sites`), as far as it needs."""
    sites = planning_sites(region, [s.kind for s in request.kinds]).sites
    return region.reach(sites, cutoff_min=request.options.cutoff_min(request.kinds, region.thresholds_min))


def prepare(
    region,
    kinds: Kinds,
    options: ModelOptions = ModelOptions(),
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    candidates=None,
    facilities=None,
    costs=None,
    reach: ReachMatrix | None = None,
    check_targets: bool = True,
) -> Problem:
    """The checked :class:`~geoplan.optimize.problem.Problem` of a request, before any solve.

    Refuses what cannot be solved (options the model does not use, p beyond
    the candidates, a reach matrix that is too short) and, with
    ``check_targets``, a coverage target beyond every candidate's reach
    (:class:`TargetUnreachable`), so a service can answer at once instead of
    failing a job later.
    """
    specs = kind_specs(kinds)
    options.check_kinds(specs)
    cutoff_min = options.cutoff_min(specs, region.thresholds_min)
    if reach is not None:
        reach.check_threshold(cutoff_min * 60)
    problem = build_problem(region, specs=specs, weights=weights, candidates=candidates, facilities=facilities, costs=costs,
                            reach=reach, cutoff_min=cutoff_min)
    check_request(problem, options)
    if options.model == "target" and check_targets:
        for spec in problem.specs:
            total = float(problem.people[spec.target_group].sum())
            best = max_achievable(problem, spec)
            if total and 100.0 * best / total < spec.target_pct - 1e-9:
                raise TargetUnreachable(spec, target=spec.target_pct / 100.0 * total, best=best, total=total)
    return problem


def plan_problem(
    problem: Problem,
    options: ModelOptions = ModelOptions(),
    solver: SolverOptions = SolverOptions(),
    *,
    region_key: str = "custom",
    crs=None,
    demand_cells=None,
    thresholds_min: Sequence[float] = (5, 10, 15),
) -> Plan:
    """Solve a :class:`~geoplan.optimize.problem.Problem` and make its :class:`Plan` (what :func:`recommend` does after loading)."""
    try:
        outcome = optimize(problem, options, solver)
    except TargetUnreachable as first:
        raise _with_best_plan(first, problem, options, solver, region_key, crs, demand_cells, thresholds_min) from None

    reasons = closing_reasons(problem, outcome) if options.model == "consolidate" else None
    phasing = phase_sites(problem, outcome.opened, outcome.kept, model=options.model,
                          within_threshold=options.assign_within_threshold)
    parameters = {
        "options": options.as_dict(),
        "solver_options": solver.as_dict(),
        "weights": dict(problem.weights),
        "kinds": [s.as_dict() for s in problem.specs],
        "thresholds": {s.kind: s.threshold_min for s in problem.specs},
        "n_candidates": {s.kind: int(len(problem.candidates_for(s.kind))) for s in problem.specs},
        "n_existing": int((problem.sites["status"] == "existing").sum()),
    }
    return make_plan(
        problem, outcome, region_key=region_key, crs=crs, demand_cells=demand_cells, thresholds_min=tuple(thresholds_min),
        parameters=parameters, phasing=phasing, closable_reason=reasons,
    )


def _with_best_plan(error: TargetUnreachable, problem, options, solver, region_key, crs, demand_cells, thresholds_min) -> TargetUnreachable:
    """The error, with the plan that reaches the best achievable coverage with the fewest sites."""
    try:
        # the best share is reached with every candidate open: its fewest sites may need more than p or the budget
        best_specs = [
            dataclasses.replace(s, target_pct=_best_pct(problem, s), p=None, budget=None) if s.target_pct > _best_pct(problem, s) else s
            for s in problem.specs
        ]
        plan = plan_problem(problem.with_specs(best_specs), options, solver, region_key=region_key, crs=crs,
                            demand_cells=demand_cells, thresholds_min=thresholds_min)
    except Exception as exc:  # the best plan is a courtesy: the error stands without it
        log.warning("optimize: could not build the best achievable plan: %s", exc)
        return error
    new = plan.new_sites
    return error.with_plan(plan, list(new[new["kind"] == error.spec.kind].index))


def _best_pct(problem: Problem, spec: KindSpec) -> float:
    total = float(problem.people[spec.target_group].sum())
    return 100.0 * max_achievable(problem, spec) / total if total else 0.0


def closing_reasons(problem: Problem, outcome) -> dict[str, dict[int, str]]:
    """Why each closed site may close, in English and Chinese: its catchment, and who stays within reach of another site."""
    reasons: dict[str, dict[int, str]] = {}
    for spec in problem.specs:
        closed = outcome.closed.get(spec.kind, np.zeros(0, int))
        if len(closed) == 0:
            continue
        _, catchment = closable_sites(problem, spec)
        own = problem.own_existing(spec.kind)
        after = problem.reach.nearest_time_s(np.r_[outcome.kept[spec.kind], outcome.opened[spec.kind]].astype(np.int64)).to_numpy()
        people = problem.people[spec.target_group].to_numpy(dtype=float)
        out = {}
        for pos in closed:
            c = float(catchment[np.flatnonzero(own == pos)[0]])
            rows = problem.reach.within(spec.threshold_s, np.array([pos])).tocsc().indices
            still = float(people[rows][within_time(after[rows], spec.threshold_s)].sum())
            out[int(pos)] = (
                f"catchment {c:,.0f} {spec.target_group} within {spec.threshold_min:g} min < {spec.min_catchment:,.0f}; "
                f"{still:,.0f} of them stay within reach of another site 服务人数少于{spec.min_catchment:,.0f}，"
                f"其中{still:,.0f}人仍在其他站点{spec.threshold_min:g}分钟内"
            )
        reasons[spec.kind] = out
    return reasons


def _cells(region):
    return region.demand["cell"] if "cell" in region.demand else region.demand.geometry
