"""Orchestration: check a request, build its model, solve it (and refine), and read the decisions back."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
from scipy import sparse

from geoplan.errors import InfeasibleError, InputError
from geoplan.optimize import exact
from geoplan.optimize import formulations as f
from geoplan.optimize.builder import Block, ModelBuilder, Outcome
from geoplan.optimize.options import ModelOptions, SolverOptions
from geoplan.optimize.problem import Problem
from geoplan.optimize.errors import SolverError
from geoplan.optimize.solve import MIN_SOLVE_S, MipModel, SolverStats, finish_s, not_run, solve_model, solver_budget

log = logging.getLogger(__name__)

#: The share of the time limit kept free at its end, against errors in the estimates of build and read-back times.
DEADLINE_MARGIN = 0.03


def check_request(problem: Problem, options: ModelOptions) -> None:
    """Clear errors for requests that cannot be solved: options the model does not use, missing ones, p beyond the candidates."""
    options.check_kinds(problem.specs)
    for spec in problem.specs:
        n_candidates = len(problem.candidates_for(spec.kind))
        if spec.p is not None and spec.p > n_candidates:
            raise InputError(
                f"p = {spec.p} new {spec.kind} sites asked for, but there are only {n_candidates} candidate sites. "
                "Lower p, or add candidates (e.g. geoplan.candidates_from_network(region.network, region.boundary, spacing_m=200))."
            )
    unknown = [g for g in options.groups_kept if g not in problem.people.columns]
    if options.model == "consolidate" and unknown:
        raise InputError(f"Unknown population group(s) {unknown} in keep_groups; the demand has {list(problem.people.columns)}.")
    if options.model == "pmedian" and options.pmedian_cutoff_min is not None:
        problem.reach.check_threshold(options.pmedian_cutoff_min * 60)


def build_model(problem: Problem, options: ModelOptions = ModelOptions()) -> tuple[MipModel, list[Block]]:
    """The model for ``problem`` as arrays, and its blocks (one per kind) for reading the solution back."""
    check_request(problem, options)
    model, reduce = options.model, options.reduce
    build = ModelBuilder()
    blocks: list[Block] = []
    start: dict[int, float] | None = {} if options.warm_start and not options.one_per_site else None
    coupled = options.one_per_site
    sense = "max" if model == "mclp" else "min"
    for spec in problem.specs:
        if model == "pmedian":
            block = f.assign_block(build, problem, spec, model=model, reduce=reduce, within_threshold=options.assign_within_threshold,
                                   start=start, taken=set())
        elif spec.capacitated:
            block = f.assign_block(build, problem, spec, model=model, reduce=reduce, within_threshold=True,
                                   minimize=options.minimize_by, start=None, taken=set())
        else:
            block = f.cover_block(
                build, problem, spec, model=model, reduce=reduce, dominance=not coupled, minimize=options.minimize_by,
                keep_groups=options.groups_kept, start=start, taken=set(), any_budget=options.total_budget is not None,
            )
        blocks.append(block)
    if coupled:
        f.one_per_site_rows(build, blocks)
    if options.total_budget is not None:
        cols = np.concatenate([b.x_cols[b.x_new] for b in blocks])
        cost = np.concatenate([problem.sites["cost"].to_numpy(dtype=float)[b.x_sites[b.x_new]] for b in blocks])
        build.rows(np.zeros(len(cols)), cols, cost, 1, hi=options.total_budget)
    name = f"{model}_" + "_".join(problem.kinds)
    mip = build.model(name, sense, start=start or None)
    if any(b.family == "median" for b in blocks):
        # the radius LP is large and degenerate: interior point solves its root about twice as fast as simplex
        mip = dataclasses.replace(mip, highs_options=(("mip_lp_solver", "ipm"),))
    return mip, blocks


def decode(problem: Problem, model: str, blocks: list[Block], values: np.ndarray) -> tuple[dict, dict, dict, dict]:
    """Opened, kept and closed site positions per kind, and assignments (demand, site, share) for assign blocks."""
    opened, kept, closed, assignment = {}, {}, {}, {}
    for b in blocks:
        on = values[b.x_cols] > 0.5
        opened[b.kind] = np.sort(b.x_sites[on & b.x_new])
        closed_sites = b.x_sites[~on & ~b.x_new]
        closed[b.kind] = np.sort(np.r_[np.setdiff1d(b.closable, b.x_sites), closed_sites]).astype(np.int64)
        kept[b.kind] = np.sort(np.setdiff1d(np.r_[b.fixed, b.closable], closed[b.kind])).astype(np.int64)
        if b.family == "median":  # everyone walks to the nearest open site within the limit
            open_sites = np.r_[kept[b.kind], opened[b.kind]].astype(np.int64)
            times = problem.reach.limited(b.limit_s, open_sites).tocoo()
            if times.nnz:
                order = np.lexsort((times.data, times.row))
                rows, cols = times.row[order], times.col[order]
                first = np.r_[True, rows[1:] != rows[:-1]]
                assignment[b.kind] = (rows[first].astype(np.int64), open_sites[cols[first]], np.ones(int(first.sum())))
            else:
                assignment[b.kind] = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        if b.family == "assign":
            share = values[b.pair_cols]
            live = share > 1e-9
            n_rows = int(b.row_of.max()) + 1 if (b.row_of >= 0).any() else 0
            by_row = sparse.csr_matrix(
                (share[live], (b.pair_row[live], b.pair_site[live])), shape=(n_rows, problem.n_sites)
            )
            in_model = np.flatnonzero(b.row_of >= 0)
            expanded = by_row[b.row_of[in_model]].tocoo()  # a merged row's shares hold for each of its points
            assignment[b.kind] = (in_model[expanded.row], expanded.col.astype(np.int64), expanded.data)
    return opened, kept, closed, assignment


def optimize(problem: Problem, options: ModelOptions = ModelOptions(), solver: SolverOptions = SolverOptions()) -> Outcome:
    """Build and solve one model; for the target and consolidation models, then refine (see :mod:`geoplan.optimize`).

    Every solution the solver returns is checked against the model
    (:func:`~geoplan.optimize.solve.solve_model`). ``solver.time_limit_s``
    bounds the whole call: each stage gets what is left, less the estimated
    build and read-back of its model; a refining stage with no time left is
    not run (stage 1's plan kept, reported with status ``time_limit``). Only
    a whole-model solve with no plan yet may run over (at least a tenth of
    the limit), as there is nothing to return without it.

    Raises
    ------
    InputError
        A request that cannot be solved as given (an option the model does not use, p beyond the candidates...).
    TargetUnreachable
        (an :class:`~geoplan.errors.InfeasibleError`) a target beyond every candidate's reach.
    InfeasibleError
        The model has no solution (e.g. a budget too small for a target, capacities too small).
    """
    t0 = time.perf_counter()
    # the stages plan to end a little before the limit: their build and read-back times are estimates
    deadline = None if solver.time_limit_s is None else t0 + (1 - DEADLINE_MARGIN) * float(solver.time_limit_s)
    mip, blocks = build_model(problem, options)
    build_s = time.perf_counter() - t0
    log.info("optimize: %s model, %d variables, %d constraints, %d nonzeros", options.model, mip.n_cols, mip.n_rows, mip.A.nnz)
    first, state = None, None
    if exact.applies(problem, options, blocks):  # bounds, plans and fixing first; the solver gets what is left
        first, state = exact.solve(problem, options, mip, blocks, _until(solver, deadline))
    if first is None:
        first, state = solve_model(mip, _main_budget(solver, mip, deadline)), None
    stats = [first.stats]
    if first.values is None:
        raise InfeasibleError(_infeasible_message(problem, options))
    values = first.values
    if options.refines and first.stats.objective is not None:
        # the refining stage gets what is left of the time limit, and is not run (stage 1's plan kept) when nothing is
        second_model = refine_model(mip, blocks, values)
        if state is not None:
            values, second = exact.refine(mip, blocks, values, second_model, _until(solver, deadline), state)
        else:
            values, second = _refine(second_model, values, solver, deadline)
        if second is not None:
            stats.append(second)
    opened, kept, closed, assignment = decode(problem, options.model, blocks, values)
    if first.stats.status == "time_limit":
        log.warning(
            "optimize: time limit of %s s reached; returning the best plan found, not proven optimal (gap %s)",
            solver.time_limit_s, "unknown" if first.stats.gap is None else f"{100 * first.stats.gap:.2f} %",
        )
    return Outcome(
        model=options.model, opened=opened, kept=kept, closed=closed, assignment=assignment, stats=tuple(stats),
        reductions={b.kind: b.sizes for b in blocks}, build_s=build_s,
    )


def _until(solver: SolverOptions, deadline: float | None) -> SolverOptions:
    """``solver`` with what is left until ``deadline`` as its time limit (next to nothing when nothing is left)."""
    if deadline is None:
        return solver
    return dataclasses.replace(solver, time_limit_s=max(deadline - time.perf_counter(), 1e-3))


def _main_budget(solver: SolverOptions, mip: MipModel, deadline: float | None) -> SolverOptions:
    """The whole model's solve: what is left after its build and read-back, but at least a tenth of the limit.

    With no plan at all there is nothing to return, so this stage alone may
    run over a limit that the model's build has used up.
    """
    if deadline is None:
        return solver
    floor = 0.1 * float(solver.time_limit_s)
    return dataclasses.replace(solver, time_limit_s=max(solver_budget(mip, deadline - finish_s(mip)), floor))


def _refine(second: MipModel, values: np.ndarray, solver: SolverOptions, deadline: float | None) -> tuple[np.ndarray, SolverStats | None]:
    """Keep the optimal count/cost and maximise the weighted people reached (the already-covered ones included).

    Without time left for the solver, stage 1's plan is kept and the stage reported as not run.
    """
    budget = solver_budget(second, None if deadline is None else deadline - finish_s(second))
    if budget is not None and budget < MIN_SOLVE_S:
        return values, not_run(second, values, solver, exact.NO_TIME, stage="refine")
    limited = solver if budget is None else dataclasses.replace(solver, time_limit_s=budget)
    try:
        result = solve_model(second, limited, stage="refine")
    except SolverError as exc:  # no plan in time: stage 1's stands
        if budget is None:
            raise
        log.info("optimize: the refining stage found no plan in time (%s)", exc)
        return values, not_run(second, values, solver, "stopped: no plan found in time", stage="refine")
    if result.values is None:
        return values, None
    return result.values, result.stats


def refine_model(mip: MipModel, blocks: list[Block], values: np.ndarray) -> MipModel:
    """The refining model: stage 1's rows, its count/cost at most what ``values`` reach, the weighted people reached as objective."""
    cols = np.concatenate([b.x_cols for b in blocks if b.objective_x is not None])
    coef = np.concatenate([b.objective_x for b in blocks if b.objective_x is not None])
    best = float(coef @ values[cols])
    integral = np.allclose(coef, np.round(coef))
    limit = best + (0.5 if integral else 1e-9 * max(1.0, abs(best)))
    c = np.zeros(mip.n_cols)
    for b in blocks:
        c[b.second_c[0]] = b.second_c[1]
    A = sparse.vstack([mip.A, sparse.csr_matrix((coef, (np.zeros(len(cols), int), cols)), shape=(1, mip.n_cols))]).tocsr()
    start = {int(j): float(round(values[j])) for j in np.flatnonzero(mip.integer)}
    return dataclasses.replace(
        mip, name=mip.name + "_refine", sense="max", c=c, A=A, row_lo=np.r_[mip.row_lo, -np.inf],
        row_hi=np.r_[mip.row_hi, limit], constant=float(sum(b.covered_weight for b in blocks)), start=start,
    )


def _infeasible_message(problem: Problem, options: ModelOptions) -> str:
    model, total_budget = options.model, options.total_budget
    parts = []
    for spec in problem.specs:
        bits = []
        if spec.p is not None:
            bits.append(f"p = {spec.p}")
        if spec.budget is not None:
            bits.append(f"budget = {spec.budget:g}")
        if spec.capacitated:
            bits.append(f"capacity = {spec.capacity:g}")
        if spec.target_pct is not None and model == "target":
            bits.append(f"target = {spec.target_pct:g} % of {spec.target_group}")
        parts.append(f"{spec.kind} ({', '.join(bits) or 'no limits'})")
    extra = f", total budget {total_budget:g}" if total_budget is not None else ""
    return (
        f"The {model} model has no solution for {'; '.join(parts)}{extra}. "
        "A target that needs more sites than p or the budget allows, or capacities too small for a target, "
        "make it infeasible: raise p, the budget or the capacities, or lower the target."
    )
