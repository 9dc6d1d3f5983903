r"""Exact coverage plans at city size: plans and bounds first, then the solver on what is left.

For the maximum coverage (MCLP) and target (fewest sites) models of one
uncapacitated kind without budgets, :func:`solve` replaces the single solve
of the whole model (``ModelOptions(lagrangian=False)`` keeps that path):

1. **Plans** -- greedy, then swap search (:mod:`geoplan.optimize._kernels`);
   for the target, sites are taken away one at a time while a swap-optimal
   plan still reaches the target, then a perturbation search (sites taken
   out around a random one, put back by greedy and swaps) looks for plans
   of fewer sites (:func:`_perturb`); the target also tries the solver on
   the candidates the LP uses.
2. **Bounds** -- MCLP: Lagrangian relaxation of the coverage rows by
   subgradient steps; target: the LP's duals, turned into an exact Lagrangian
   bound (:mod:`geoplan.optimize.lagrange`), rounded up since counts are whole.
3. **Fixing** -- candidates that the bound says no better plan opens are left
   out, those every better plan opens are fixed in (MCLP: better than the
   best plan; target: no more sites than it), demand they cover is counted
   once, rows are merged again and dominated candidates dropped
   (:mod:`geoplan.optimize.reduce`); for the MCLP this repeats on what is left
   while it keeps shrinking.
4. **The rest** -- the model that is left is solved by the solver (HiGHS or
   CBC, :func:`~geoplan.optimize.solve.solve_model`, answer checked), started
   from the best plan.

*Time.* A stage's ``SolverOptions.time_limit_s`` is what is left of the
call's limit; each solve's own limit is what is left less an estimate of the
PuLP build, read-back and check of its model and of what follows on the
whole model (:func:`~geoplan.optimize.solve.solver_budget`,
:func:`~geoplan.optimize.solve.finish_s`). With too little left the solver
is not started: the best plan is returned with its proven bound, status
``time_limit`` and a note in ``solver`` (never a worse plan).

*Why the optimum is kept.* Let :math:`v` be the value (count) of the best plan
found. Every plan at least as good as it opens no left-out candidate and every
fixed-in one (:mod:`geoplan.optimize.lagrange`), so the set of such plans is
the feasible set of the residual model, with the covered demand as a
constant; the best plan itself is kept in it (its candidates are never left
out nor dropped as dominated). Dropping dominated candidates keeps the
residual's optimum (:func:`~geoplan.optimize.reduce.dominated_columns`) and
merging identical rows keeps every plan's value
(:func:`~geoplan.optimize.reduce.merge_identical_rows`). So the residual's
optimum, with the fixed-in sites, is the whole model's optimum; a bound on it
(the solver's, or a Lagrangian bound of the residual) is a bound on the whole
model, and the result's ``bound`` is the tightest of them. The plan returned
is rebuilt on the whole model and checked against it
(:func:`~geoplan.optimize.solve.check_solution`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from geoplan.optimize.builder import Block, ModelBuilder
from geoplan.optimize.errors import SolverError
from geoplan.optimize.lagrange import (
    BOUND_TOLERANCE,
    Pattern,
    column_scaled_duals,
    mclp_bound,
    mclp_fixing,
    target_duals,
    target_fixing,
    target_value,
    whole_bound,
)
from geoplan.optimize.options import KindSpec, ModelOptions, SolverOptions
from geoplan.optimize.reduce import dominated_columns, merge_identical_rows
from geoplan.optimize.solve import MIN_SOLVE_S, MipModel, Solution, SolverStats, check_solution, finish_s, solve_model, solver_budget

log = logging.getLogger(__name__)

#: The share of the time limit the MCLP's Lagrangian rounds may take (the solver gets the rest).
BOUND_SHARE = 0.3
#: Lagrangian rounds on the MCLP's residual, while each leaves out at least a tenth of the candidates left.
MAX_ROUNDS = 4
#: A residual model larger than this (nonzeros) is not handed to the solver unless the bounds have closed the gap:
#: building and presolving it alone can take longer than the time left on a city-size instance.
RESIDUAL_NONZEROS = 250_000
#: The share of the time left that the target's LP may take (of a model too large to hand to the solver: more).
LP_SHARE, LP_SHARE_LARGE = 0.5, 0.85
#: The target's heuristic solve: the candidates whose LP value is above this, and at most this share of the time.
LP_SUPPORT = 0.2
HEURISTIC_SHARE = 0.2
#: The target's perturbation search: sites taken out around a random open one, the share of the time left it may
#: take (all of it when the model is too large for the solver), and the steps without a better plan after which it
#: stops (but for a model too large for the solver, under a time limit).
PERTURB_SITES = 6
PERTURB_SHARE = 0.25
PERTURB_PATIENCE = 300
PERTURB_RESERVE_S = 1.0


@dataclasses.dataclass(frozen=True)
class Steps:
    """Which steps of this path run (all by default); the tests turn each off to show the optimum does not move."""

    swaps: bool = True  # swap search on the greedy plans (and taking sites away, for the target)
    fixing: bool = True  # leave out / fix in what the bounds decide
    rounds: bool = True  # further Lagrangian rounds on what is left (MCLP, refining)
    merge: bool = True  # merge identical rows again in what is left
    dominance: bool = True  # drop dominated candidates again in what is left
    lp_bound: bool = True  # the target's bound from the LP's duals (else only column-scaled multipliers)
    lp_support: bool = True  # the target's heuristic solve on the candidates the LP uses
    perturb: bool = True  # the target's perturbation search for a plan of fewer sites
    refine_bounds: bool = True  # fixing and Lagrangian rounds in the refining stage


#: The steps in force (module-wide; tests replace it).
STEPS = Steps()


def applies(problem, options: ModelOptions, blocks: list[Block]) -> bool:
    """Whether :func:`solve` handles this model (else the whole model goes to the solver)."""
    if not options.uses_lagrangian or len(blocks) != 1 or options.one_per_site or options.total_budget is not None:
        return False
    block = blocks[0]
    spec = problem.spec(block.kind)
    if block.family != "cover" or block.cover is None or spec.capacitated or spec.budget is not None or len(block.closable):
        return False
    if not block.x_new.all():
        return False
    if options.model == "mclp":
        return spec.p is not None
    return options.model == "target" and options.minimize_by == "count" and block.need is not None


@dataclasses.dataclass
class State:
    """What stage 1 learnt, for the refining stage of the target model."""

    pattern: Pattern
    bound: float  # the Lagrangian lower bound on the count
    reduced: np.ndarray | None  # reduced costs 1 - s_j of that bound (None: no LP bound)


@dataclasses.dataclass(frozen=True)
class Residual:
    """The model left after fixing: its columns (block columns), merged rows and what fixing already covers."""

    cols: np.ndarray
    pattern: Pattern
    weight: np.ndarray
    need: np.ndarray
    fixed_in: np.ndarray  # block columns opened in every plan the residual stands for
    const_weight: float
    const_need: float

    @property
    def n_cols(self) -> int:
        return len(self.cols)


def restrict(pattern: Pattern, weight: np.ndarray, need: np.ndarray, out: np.ndarray, fixed_in: np.ndarray,
             keep: np.ndarray, *, dominance: bool = True, merge: bool | None = None) -> Residual:
    """The model with the ``out`` columns left out and the ``fixed_in`` ones open; ``keep`` columns are never dropped.

    Rows covered by a fixed-in column become constants, rows no column left
    covers go, identical rows are merged, and (``dominance``) candidates
    dominated by another one left are dropped unless in ``keep``.
    """
    n, m = pattern.shape
    opened = np.flatnonzero(fixed_in)
    covered = pattern.covered(opened)
    const_weight, const_need = float(weight[covered].sum()), float(need[covered].sum())
    free = np.flatnonzero(~out & ~fixed_in)
    sub = pattern.by_col[:, free].tocsr()
    rows = np.flatnonzero(~covered & (sub.getnnz(axis=1) > 0))
    sub = sub[rows]
    w, g = weight[rows], need[rows]
    merge = STEPS.merge if merge is None else merge
    dominance = dominance and STEPS.dominance
    if len(rows):
        if merge:
            sub, (w, g), _ = merge_identical_rows(sub, w, g)
        if dominance and len(free) > 1:
            beaten = dominated_columns(sub, np.ones(len(free))) & ~keep[free]
            if beaten.any():
                free, sub = free[~beaten], sub[:, ~beaten]
                if merge:
                    sub, (w, g), _ = merge_identical_rows(sub, w, g)
    return Residual(cols=free, pattern=Pattern.of(sub), weight=np.asarray(w, float), need=np.asarray(g, float),
                    fixed_in=opened, const_weight=const_weight, const_need=const_need)


def solve(problem, options: ModelOptions, mip: MipModel, blocks: list[Block], solver: SolverOptions) -> tuple[Solution | None, State | None]:
    """Stage 1 of the MCLP or target model by plans, bounds and fixing; no solution when it must be left to the solver."""
    block = blocks[0]
    spec = problem.spec(block.kind)
    t0 = time.perf_counter()
    if options.model == "mclp":
        return _solve_mclp(mip, block, spec, solver, t0), None
    return _solve_target(mip, block, spec, solver, t0)


# --------------------------------------------------------------------------- MCLP


def _solve_mclp(mip: MipModel, block: Block, spec: KindSpec, solver: SolverOptions, t0: float) -> Solution | None:
    pattern = Pattern.of(block.cover)
    n, m = pattern.shape
    w = np.asarray(block.second_c[1], dtype=float)
    p = int(spec.p)
    if m == 0 or p == 0 or p >= m:
        return None  # nothing to choose: the solver answers at once
    deadline = _deadline(t0, solver, mip)
    chosen = _greedy(pattern, w, p)
    _swaps(pattern, w, chosen)
    sizes = block.sizes
    sizes["greedy_swap_value"] = _value(pattern, w, chosen) + mip.constant
    found = _rounds(pattern, w, p, chosen, solver, t0)
    chosen, best, bound, residual = found.chosen, found.best, found.bound, found.residual
    sizes.update(bound_rounds=found.rounds, lagrangian_bound=float(bound + mip.constant), heuristic_value=float(best + mip.constant),
                 fixed_out=found.fixed_out, fixed_in=found.fixed_in, residual_candidates=residual.n_cols,
                 residual_rows=int(residual.pattern.shape[0]), bounds_s=time.perf_counter() - t0)
    p_left = p - len(residual.fixed_in)
    if residual.n_cols == 0 or p_left <= 0:
        return _result(mip, block, pattern, chosen, None, best, solver, t0, status="optimal")
    if _too_large(residual):
        return _result(mip, block, pattern, chosen, None, bound, solver, t0, status="time_limit", note=TOO_LARGE)
    model = _cover_model("mclp_residual", residual, sense="max", count=p_left)
    solution, note = _solve_residual(model, _start(residual, chosen), solver, deadline)
    if solution is None and solver.time_limit_s is not None:  # no time (or no plan) for the solver: the best plan and bound
        closed = bound - best <= _tolerance(best, solver)
        return _result(mip, block, pattern, chosen, None, bound, solver, t0, status="optimal" if closed else "time_limit", note=note)
    if solution is None or solution.values is None:
        return None
    opened = _opened(m, residual, solution.values)
    if _value(pattern, w, opened) < best:  # the solver stopped with less than the best plan
        opened = chosen
    value = _value(pattern, w, opened)
    stats = solution.stats
    res_bound = np.inf if stats.bound is None else stats.bound + residual.const_weight
    total_bound = min(bound, max(value, res_bound))
    optimal = stats.status == "optimal" or total_bound - value <= _tolerance(value, solver)
    return _result(mip, block, pattern, opened, stats, total_bound, solver, t0, status="optimal" if optimal else "time_limit")


@dataclasses.dataclass(frozen=True)
class Rounds:
    chosen: np.ndarray
    best: float
    bound: float
    residual: Residual
    rounds: int
    fixed_out: int
    fixed_in: int


def _rounds(pattern: Pattern, w: np.ndarray, p: int, chosen: np.ndarray, solver: SolverOptions, t0: float, *,
            out: np.ndarray | None = None, fixed_in: np.ndarray | None = None, need: np.ndarray | None = None,
            floor: float | None = None) -> Rounds:
    """Lagrangian rounds of the MCLP (the most ``w`` within ``p`` sites): bound, better plans, fixing, on what is left.

    With ``need`` and ``floor`` the plans must also cover at least ``floor`` of
    ``need`` (the refining stage of the target model): the bound relaxes that
    row too, so it stays a bound, and plans are kept only if they meet it.
    Candidates already ``out`` or ``fixed_in`` stay so.
    """
    n, m = pattern.shape
    need = np.zeros(n) if need is None else need
    feasible = (lambda plan: True) if floor is None else (lambda plan: _value(pattern, need, plan) >= floor)
    best = _value(pattern, w, chosen)
    out = np.zeros(m, bool) if out is None else out.copy()
    fixed_in = np.zeros(m, bool) if fixed_in is None else fixed_in.copy()
    residual = restrict(pattern, w, need, out, fixed_in, chosen)
    bound_deadline = None if solver.time_limit_s is None else t0 + BOUND_SHARE * float(solver.time_limit_s)
    bound, rounds = np.inf, 0
    for rounds in range(1, (MAX_ROUNDS if STEPS.rounds else 1) + 1):
        p_left = p - len(residual.fixed_in)
        if residual.n_cols <= p_left or p_left <= 0:
            break
        need_left = None if floor is None else floor - residual.const_need
        found = mclp_bound(residual.pattern, residual.weight, p_left, best - residual.const_weight, deadline=bound_deadline,
                           need=None if floor is None else residual.need, floor=need_left)
        # the residual holds every plan better than `best` (and that plan): its bound, or `best`, bounds the optimum
        bound = min(bound, max(best, found.bound + residual.const_weight))
        if found.plan_value + residual.const_weight > best:  # the subproblems' plan, filled up to p and improved by swaps
            better = np.zeros(m, bool)
            better[residual.fixed_in] = True
            better[residual.cols[found.plan]] = True
            _greedy(pattern, w, p - int(better.sum()), chosen=better, allowed=~out)
            if feasible(better):
                _swaps(pattern, w, better, allowed=~out, need=need, floor=-np.inf if floor is None else floor)
                if _value(pattern, w, better) > best and feasible(better):
                    chosen, best = better, _value(pattern, w, better)
        if not STEPS.fixing:
            break
        if bound - best <= _tolerance(best, solver):  # proven: only the best plan is left to check
            out, fixed_in = ~chosen, np.zeros(m, bool)
            residual = restrict(pattern, w, need, out, fixed_in, chosen, dominance=False)
            break
        o, i, _ = mclp_fixing(residual.pattern, residual.weight, found.lam, p_left, best - residual.const_weight, mu=found.mu,
                              need=None if floor is None else residual.need, floor=need_left)
        out[residual.cols[o]] = True
        fixed_in[residual.cols[i]] = True
        out &= ~chosen
        fixed_in &= chosen
        smaller = restrict(pattern, w, need, out, fixed_in, chosen)
        shrunk = smaller.n_cols < 0.9 * residual.n_cols
        residual = smaller
        if not shrunk or (bound_deadline is not None and time.perf_counter() > bound_deadline):
            break
    return Rounds(chosen, best, bound, residual, rounds, int(out.sum()), int(fixed_in.sum()))


# --------------------------------------------------------------------------- target


def _solve_target(mip: MipModel, block: Block, spec: KindSpec, solver: SolverOptions, t0: float):
    pattern = Pattern.of(block.cover)
    n, m = pattern.shape
    g = np.asarray(block.need, dtype=float)
    w = np.asarray(block.second_c[1], dtype=float)
    target = float(block.target_rhs)
    cap = spec.p
    if m == 0 or target <= 0:
        return None, None
    deadline = _deadline(t0, solver, mip)
    sizes = block.sizes
    chosen = _greedy(pattern, g, -1 if cap is None else int(cap), need=g, target=target)
    if _value(pattern, g, chosen) < target:
        return None, None  # greedy misses the target within the cap: the solver says whether any plan meets it
    sizes["greedy_count"] = int(chosen.sum())
    chosen = _shrink(pattern, g, chosen, target, deadline)
    sizes["swap_count"] = int(chosen.sum())
    left = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
    lam, x_lp = None, None
    if STEPS.lp_bound:  # a model too large for the solver is settled by the bounds: the LP may take most of the time
        share = LP_SHARE_LARGE if pattern.by_row.nnz > RESIDUAL_NONZEROS else LP_SHARE
        lam, x_lp = target_duals(pattern, g, target, time_limit_s=None if left is None else share * left, threads=solver.threads)
    bound, reduced = target_value(pattern, column_scaled_duals(pattern, g), g, target)
    sizes["quick_bound"] = float(bound)
    if lam is not None:
        lp_bound, lp_reduced = target_value(pattern, lam, g, target)
        if lp_bound > bound:
            bound, reduced = lp_bound, lp_reduced
    lower = whole_bound(bound)
    sizes["lp_bound"] = float(bound)
    large = pattern.by_row.nnz > RESIDUAL_NONZEROS
    if STEPS.perturb and lower < chosen.sum():
        # on a model too large for the solver nothing else is left to do: the search may take all the time left
        chosen = _perturb(pattern, g, chosen, target, lower, _perturb_deadline(deadline, large),
                          patience=np.inf if large and deadline is not None else PERTURB_PATIENCE)
    if STEPS.lp_support and x_lp is not None and lower < chosen.sum() and not (large and deadline is not None):
        better = _lp_support_plan(pattern, g, target, x_lp, chosen, cap, solver, deadline)
        if better is not None and better.sum() < chosen.sum():
            chosen = _shrink(pattern, g, better, target, deadline)
    count = int(chosen.sum())
    sizes["heuristic_count"] = count
    out, fixed_in = np.zeros(m, bool), np.zeros(m, bool)
    if not STEPS.fixing:
        pass
    elif lower >= count:  # proven: only the best plan is left to check
        out = ~chosen
    elif reduced is not None:  # what no plan of at most `count` sites does
        out, fixed_in = target_fixing(bound, reduced, count)
        out &= ~chosen
        fixed_in &= chosen
    residual = restrict(pattern, w, g, out, fixed_in, chosen, dominance=lower < count or not STEPS.fixing)
    sizes.update(lower_bound=lower, fixed_out=int(out.sum()), fixed_in=int(fixed_in.sum()), residual_candidates=residual.n_cols,
                 residual_rows=int(residual.pattern.shape[0]), bounds_s=time.perf_counter() - t0)
    state = State(pattern=pattern, bound=bound, reduced=reduced)
    limit = count if cap is None else min(count, int(cap))
    if residual.n_cols == 0:
        return _result(mip, block, pattern, chosen, None, float(count), solver, t0, status="optimal"), state
    if _too_large(residual) and lower < count:
        return _result(mip, block, pattern, chosen, None, float(lower), solver, t0, status="time_limit", note=TOO_LARGE), state
    model = _cover_model("target_residual", residual, sense="min", count=limit - len(residual.fixed_in),
                         need_at_least=target - residual.const_need)
    solution, note = _solve_residual(model, _start(residual, chosen), solver, deadline)
    if solution is None and solver.time_limit_s is not None:  # no time (or no plan) for the solver: the best plan and bound
        status = "optimal" if lower >= count else "time_limit"
        return _result(mip, block, pattern, chosen, None, float(lower), solver, t0, status=status, note=note), state
    if solution is None or solution.values is None:
        return None, state
    opened = _opened(m, residual, solution.values)
    if _value(pattern, g, opened) < target - 1e-9 * max(1.0, target) or opened.sum() > count:
        opened = chosen
    stats = solution.stats
    res_bound = 0.0 if stats.bound is None else stats.bound + len(residual.fixed_in)
    total_bound = float(min(opened.sum(), max(lower, whole_bound(res_bound))))
    optimal = stats.status == "optimal" or total_bound >= opened.sum()
    return _result(mip, block, pattern, opened, stats, total_bound, solver, t0, status="optimal" if optimal else "time_limit"), state


def refine(mip: MipModel, blocks: list[Block], values: np.ndarray, second: MipModel, solver: SolverOptions,
           state: State) -> tuple[np.ndarray, SolverStats | None]:
    """Stage 2 of the target model on what is left: among plans with the fewest sites, the most weighted people.

    Every such plan has exactly stage 1's count, so candidates that the stage-1
    bound keeps out of (or in) every plan of that many sites are fixed first;
    the plan of stage 1, improved by swaps that keep the target, is the start.
    ``second`` is the refining model on the whole problem (what the answer is
    checked against).
    """
    t0 = time.perf_counter()
    block = blocks[0]
    pattern = state.pattern
    m = pattern.shape[1]
    w = np.asarray(block.second_c[1], dtype=float)
    g = np.asarray(block.need, dtype=float)
    target = float(block.target_rhs)
    chosen = values[block.x_cols] > 0.5
    count = int(chosen.sum())
    out, fixed_in = np.zeros(m, bool), np.zeros(m, bool)
    bounds = STEPS.refine_bounds
    if bounds and STEPS.fixing and state.reduced is not None:
        out, fixed_in = target_fixing(state.bound, state.reduced, count)
        out &= ~chosen
        fixed_in &= chosen
    _swaps(pattern, w, chosen, allowed=~out, need=g, floor=target)
    if bounds:
        found = _rounds(pattern, w, count, chosen, solver, t0, out=out, fixed_in=fixed_in, need=g, floor=target)
    else:
        found = Rounds(chosen, _value(pattern, w, chosen), np.inf, restrict(pattern, w, g, out, fixed_in, chosen), 0, 0, 0)
    chosen, residual = found.chosen, found.residual
    if residual.n_cols == 0 or (_too_large(residual) and found.bound - found.best > _tolerance(found.best, solver)):
        return _refined_plan(mip, block, pattern, values, second, found, solver, t0, TOO_LARGE)
    model = _cover_model("refine_residual", residual, sense="max", count=count - len(residual.fixed_in),
                         need_at_least=target - residual.const_need)
    solution, note = _solve_residual(model, _start(residual, chosen), solver, _deadline(t0, solver, second), stage="refine")
    if solution is None and solver.time_limit_s is not None:  # no time (or no plan) for the solver: the swaps' plan and the bound
        return _refined_plan(mip, block, pattern, values, second, found, solver, t0, note)
    if solution is None or solution.values is None:
        return values, None
    opened = _opened(m, residual, solution.values)
    if _value(pattern, g, opened) < target - 1e-9 * max(1.0, target) or opened.sum() > count or _value(pattern, w, opened) < _value(pattern, w, chosen):
        opened = chosen
    full = _full_values(mip, block, pattern, opened)
    stats = solution.stats
    objective = float(second.c @ full) + second.constant
    constant = second.constant + residual.const_weight
    bound = found.bound + second.constant
    if stats.bound is not None:
        bound = min(bound, stats.bound - model.constant + constant)
    bound = max(objective, bound)
    status = "optimal" if stats.status == "optimal" or bound - objective <= _tolerance(objective, solver) else stats.status
    if status == "optimal" and solver.mip_gap == 0:
        bound = objective
    problems = check_solution(second, full, objective)
    if problems:  # never expected: the plan is rebuilt on the whole model
        log.warning("optimize: the refined plan fails its checks on the whole model (%s); keeping stage 1's", "; ".join(problems))
        return values, None
    block.sizes.update(refine_lagrangian_bound=float(found.bound + second.constant), refine_fixed_out=found.fixed_out,
                       refine_fixed_in=found.fixed_in, refine_residual_candidates=residual.n_cols)
    return full, _stats_for(second, stats, objective, bound, solver, t0, status, stage="refine")


def _refined_plan(mip: MipModel, block: Block, pattern: Pattern, values: np.ndarray, second: MipModel, found: Rounds,
                  solver: SolverOptions, t0: float, note: str) -> tuple[np.ndarray, SolverStats | None]:
    """The refining stage without the solver (``note`` says why): the best plan of the swaps and rounds, and their bound."""
    full = _full_values(mip, block, pattern, found.chosen)
    objective = float(second.c @ full) + second.constant
    if check_solution(second, full, objective):
        return values, None
    bound = max(objective, found.bound + second.constant)
    status = "optimal" if bound - objective <= _tolerance(objective, solver) else "time_limit"
    note = "not needed" if status == "optimal" else note
    return full, _stats_for(second, _skipped(solver, status, objective, bound, note), objective,
                            objective if status == "optimal" else bound, solver, t0, status, stage="refine")


# --------------------------------------------------------------------------- pieces


def _deadline(t0: float, solver: SolverOptions, whole: MipModel | None = None) -> float | None:
    """When this stage must end: ``t0`` plus its time limit, less what follows it on the ``whole`` model."""
    if solver.time_limit_s is None:
        return None
    return t0 + float(solver.time_limit_s) - (0.0 if whole is None else finish_s(whole))


def _tolerance(value: float, solver: SolverOptions) -> float:
    return max(BOUND_TOLERANCE, float(solver.mip_gap)) * max(1.0, abs(value))


def _value(pattern: Pattern, weight: np.ndarray, chosen: np.ndarray) -> float:
    return float(weight[pattern.covered(np.flatnonzero(chosen))].sum())


def _greedy(pattern: Pattern, weight: np.ndarray, k: int, *, chosen: np.ndarray | None = None, need: np.ndarray | None = None,
            target: float = np.inf, allowed: np.ndarray | None = None) -> np.ndarray:
    from geoplan.optimize import _kernels

    m = pattern.shape[1]
    chosen = np.zeros(m, bool) if chosen is None else chosen
    need = np.zeros(pattern.shape[0]) if need is None else need
    allowed = np.ones(m, bool) if allowed is None else np.ascontiguousarray(allowed, dtype=bool)
    if k == 0:
        return chosen
    _kernels.greedy(*pattern.kernel_args(), np.ascontiguousarray(weight, dtype=np.float64), allowed, chosen, int(k),
                    np.ascontiguousarray(need, dtype=np.float64), float(target))
    return chosen


def _swaps(pattern: Pattern, weight: np.ndarray, chosen: np.ndarray, *, allowed: np.ndarray | None = None,
           need: np.ndarray | None = None, floor: float = -np.inf, passes: int = 50) -> np.ndarray:
    from geoplan.optimize import _kernels

    if not STEPS.swaps:
        return chosen

    m = pattern.shape[1]
    allowed = np.ones(m, bool) if allowed is None else np.ascontiguousarray(allowed, dtype=bool)
    need = np.zeros(pattern.shape[0]) if need is None else need
    _kernels.swap_search(*pattern.kernel_args(), np.ascontiguousarray(weight, dtype=np.float64), allowed, chosen,
                         np.ascontiguousarray(need, dtype=np.float64), float(floor), int(passes))
    return chosen


def _shrink(pattern: Pattern, need: np.ndarray, chosen: np.ndarray, target: float, deadline: float | None) -> np.ndarray:
    """Take sites away one at a time (the one losing least, then swaps) while the plan still reaches ``target``."""
    chosen = chosen.copy()
    if not STEPS.swaps:
        return chosen
    _swaps(pattern, need, chosen)
    while chosen.sum() > 0 and (deadline is None or time.perf_counter() < deadline):
        trial, reached = _one_fewer(pattern, need, chosen)
        if reached < target:
            break
        chosen = trial
    return chosen


def _perturb(pattern: Pattern, need: np.ndarray, chosen: np.ndarray, target: float, lower: int, deadline: float | None,
             *, patience: float = PERTURB_PATIENCE, seed: int = 0) -> np.ndarray:
    """A plan of fewer sites by iterated local search: the fewest found that still reach ``target``.

    One site fewer than the best plan, swap-optimal, is the current plan; each
    step takes out :data:`PERTURB_SITES` open sites around a random one, adds
    as many others by greedy (not those just taken out), improves by swaps and
    keeps the result when it covers no less ``need``. A current plan that
    reaches the target is the new best; the search goes on with one site
    fewer. It stops at ``lower`` sites, at ``deadline``, or after ``patience``
    steps without a better current plan. Only
    plans are found here: whatever it returns reaches the target.
    """
    from geoplan.optimize import _kernels

    rng = np.random.default_rng(seed)
    best = chosen.copy()
    current, value = _one_fewer(pattern, need, best)
    since = 0
    while best.sum() > lower and current.any() and since < patience:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        since += 1
        around = _kernels.nearest_open(*pattern.kernel_args(), current, int(rng.choice(np.flatnonzero(current))), PERTURB_SITES)
        trial = current.copy()
        trial[around] = False
        allowed = np.ones(len(trial), bool)
        allowed[around] = False
        _greedy(pattern, need, len(around), chosen=trial, allowed=allowed)
        _swaps(pattern, need, trial)
        reached = _value(pattern, need, trial)
        if reached < value - 1e-12 * max(1.0, value):
            continue
        if reached > value:
            since = 0
        current, value = trial, reached
        if value >= target:
            best = current.copy()
            current, value = _one_fewer(pattern, need, best)
            since = 0
    return best


def _perturb_deadline(deadline: float | None, large: bool) -> float | None:
    """Until when the perturbation search runs: a share of the time left, all of it (less a reserve) on a model too large
    for the solver, since nothing else is left to do there."""
    if deadline is None:
        return None
    now = time.perf_counter()
    return deadline - PERTURB_RESERVE_S if large else now + PERTURB_SHARE * max(deadline - now, 0.0)


def _one_fewer(pattern: Pattern, need: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, float]:
    """The plan without its site that loses least, improved by swaps, and the ``need`` it covers."""
    from geoplan.optimize import _kernels

    c_ptr, c_idx, _, _ = pattern.kernel_args()
    trial = chosen.copy()
    if trial.any():
        j, _ = _kernels.least_loss(c_ptr, c_idx, np.ascontiguousarray(need, dtype=np.float64), trial,
                                   _kernels.counts(c_ptr, c_idx, pattern.shape[0], trial))
        trial[j] = False
        _swaps(pattern, need, trial)
    return trial, _value(pattern, need, trial)


def _lp_support_plan(pattern, need, target, x_lp, chosen, cap, solver, deadline) -> np.ndarray | None:
    """The fewest sites among the candidates the LP uses (and the best plan's), by the solver within a share of the time."""
    m = pattern.shape[1]
    allowed = (x_lp > LP_SUPPORT) | chosen
    if allowed.all():
        return None
    sub = restrict(pattern, need, need, ~allowed, np.zeros(m, bool), chosen)
    limit = int(chosen.sum()) if cap is None else min(int(chosen.sum()), int(cap))
    model = _cover_model("target_lp_support", sub, sense="min", count=limit, need_at_least=target)
    now = time.perf_counter()
    ends = now + 10.0 if deadline is None else now + HEURISTIC_SHARE * max(deadline - now, 0.0)
    solution, _ = _solve_residual(model, _start(sub, chosen), solver, ends, stage="heuristic")
    if solution is None or solution.values is None:
        return None
    plan = _opened(m, sub, solution.values)
    return plan if _value(pattern, need, plan) >= target else None


def _cover_model(name: str, residual: Residual, *, sense: str, count: int, need_at_least: float | None = None) -> MipModel:
    """The residual as a model: ``x`` per column first, then ``z`` per merged row.

    ``sense="max"``: the most weight within ``count`` sites (and the need
    reaching ``need_at_least``); ``"min"``: the fewest sites for that need.
    """
    a = residual.pattern.by_row
    n, m = a.shape
    build = ModelBuilder()
    x = build.cols(m, "x", c=1.0 if sense == "min" else 0.0, integer=True)
    z = build.cols(n, "z", c=residual.weight if sense == "max" else 0.0)
    coo = a.tocoo()
    build.rows(np.r_[coo.row, np.arange(n)], np.r_[x[coo.col], z], np.r_[-np.ones(coo.nnz), np.ones(n)], n, hi=0.0)
    build.rows(np.zeros(m), x, 1.0, 1, hi=max(count, 0))
    if need_at_least is not None:
        build.rows(np.zeros(n), z, residual.need, 1, lo=need_at_least)
    return build.model(name, sense)


def _start(residual: Residual, chosen: np.ndarray) -> dict[int, float] | None:
    """The best plan as a start for the residual model: its ``x`` columns (the plan is always in the residual)."""
    return {int(j): float(v) for j, v in enumerate(chosen[residual.cols].astype(float))} or None


def _opened(m: int, residual: Residual, values: np.ndarray) -> np.ndarray:
    """The block's candidates a residual solution opens, with the fixed-in ones."""
    opened = np.zeros(m, bool)
    opened[residual.fixed_in] = True
    opened[residual.cols[values[: residual.n_cols] > 0.5]] = True
    return opened


def _solve_residual(model: MipModel, start, solver: SolverOptions, deadline: float | None, *,
                    stage: str = "main") -> tuple[Solution | None, str]:
    """The residual model solved so that the solve, its build and read-back end by ``deadline``; or None and why not."""
    budget = solver_budget(model, deadline)
    if budget is not None:
        if budget < MIN_SOLVE_S:
            log.info("optimize: no time left for the %s residual model", stage)
            return None, NO_TIME
        solver = dataclasses.replace(solver, time_limit_s=budget)
    model = dataclasses.replace(model, start=start or None)
    try:
        return solve_model(model, solver, stage=stage), ""
    except SolverError as exc:  # no solution in time: the caller keeps its best plan
        log.info("optimize: the residual model was not solved (%s)", exc)
        return None, NO_PLAN


def _full_values(mip: MipModel, block: Block, pattern: Pattern, opened: np.ndarray) -> np.ndarray:
    values = np.zeros(mip.n_cols)
    values[block.x_cols] = opened.astype(float)
    values[block.second_c[0]] = pattern.covered(np.flatnonzero(opened)).astype(float)
    return values


TOO_LARGE = "not run: the model left is too large for the time left"
NO_TIME = "not run: no time left"
NO_PLAN = "stopped: no plan better than the best found in time"


def _too_large(residual: Residual) -> bool:
    return residual.pattern.by_row.nnz > RESIDUAL_NONZEROS


def _skipped(solver: SolverOptions, status: str, objective: float, bound: float, note: str) -> SolverStats:
    name = "HiGHS" if solver.solver == "highs" else "CBC"
    return SolverStats(solver=f"{name} ({note})", status=status, objective=objective, bound=bound, gap=None, solve_s=0.0,
                       build_s=0.0, n_variables=0, n_integer=0, n_constraints=0, n_nonzeros=0,
                       time_limit_s=solver.time_limit_s, mip_gap=solver.mip_gap)


def _result(mip, block, pattern, opened, stats: SolverStats | None, bound: float, solver, t0, *, status: str,
            note: str = "not needed") -> Solution | None:
    """The plan on the whole model, checked against it, with the bound (the block's terms) and the residual's solve."""
    values = _full_values(mip, block, pattern, opened)
    objective = float(mip.c @ values) + mip.constant
    problems = check_solution(mip, values, objective)
    if problems:  # never expected: the plan is rebuilt on the whole model
        log.warning("optimize: the plan from the residual fails its checks on the whole model (%s); solving the whole model", "; ".join(problems))
        return None
    bound = max(objective, bound + mip.constant) if mip.sense == "max" else min(objective, bound)
    if status == "optimal" and solver.mip_gap == 0:
        bound = objective
    if stats is None:  # the bounds left nothing to solve, or too much
        stats = _skipped(solver, status, objective, bound, note)
    return Solution(values, _stats_for(mip, stats, objective, bound, solver, t0, status))


def _stats_for(model: MipModel, residual: SolverStats, objective: float, bound: float | None, solver: SolverOptions, t0: float,
               status: str, *, stage: str = "main") -> SolverStats:
    gap = None
    if bound is not None:
        gap = abs(objective - bound) / max(abs(objective), 1e-9)
        if gap < 1e-12:
            gap = 0.0
    return SolverStats(
        solver=f"{residual.solver} after Lagrangian bounds and fixing",
        status=status,
        objective=objective,
        bound=bound,
        gap=gap,
        solve_s=time.perf_counter() - t0,
        build_s=residual.build_s,
        n_variables=model.n_cols,
        n_integer=int(model.integer.sum()),
        n_constraints=model.n_rows,
        n_nonzeros=int(model.A.nnz),
        time_limit_s=solver.time_limit_s,
        mip_gap=solver.mip_gap,
        stage=stage,
        check=residual.check,
    )
