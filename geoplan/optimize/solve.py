"""Solving: a model held in arrays, turned into a PuLP problem in bulk and solved by HiGHS (or CBC).

A :class:`MipModel` is the whole model as arrays: objective, a CSR constraint
matrix with row bounds, column bounds and integrality. :func:`to_pulp` makes
one PuLP variable per column and one ``LpAffineExpression`` per row straight
from the CSR slices (no per-coefficient Python arithmetic), and
:func:`solve_model` solves it with HiGHS through PuLP (``pulp.HiGHS``, the
``highspy`` API) or, as a fallback, CBC. Every solve returns
:class:`SolverStats`: solver, status, objective, best bound, relative gap and
times. A time limit that stops the search returns the best solution found so
far with ``status="time_limit"``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import sparse

from geoplan.optimize.errors import SolverError
from geoplan.optimize.options import SolverOptions

log = logging.getLogger(__name__)

#: Feasibility tolerance when a returned solution is checked (absolute, scaled by the row's size).
CHECK_TOLERANCE = 1e-6
#: What a solve takes besides the solver's own run, to keep within a time limit: a fixed part, and per nonzero
#: (building the PuLP model, handing it to HiGHS, reading the answer back, checking it; measured about 4 us per
#: nonzero on a 2-core machine under load, padded to 6).
OVERHEAD_S, OVERHEAD_PER_NONZERO_S = 0.1, 6e-6
#: What follows a stage on the whole model (its plan checked, the refining model built, decoding): see :func:`finish_s`.
FINISH_S, FINISH_PER_NONZERO_S = 0.05, 3e-7
#: Below this many seconds for the solver itself a solve is not started.
MIN_SOLVE_S = 0.05


@dataclasses.dataclass(frozen=True)
class MipModel:
    """A mixed-integer linear model in arrays: ``sense c'x + constant`` s.t. ``row_lo <= A x <= row_hi``.

    ``blocks`` names column ranges (``(prefix, start, stop)``) so that PuLP
    variables get readable names; ``start`` is an optional partial starting
    solution (column index -> value) for the integer columns;
    ``highs_options`` are HiGHS options that suit the model.
    """

    name: str
    sense: str
    c: np.ndarray
    A: sparse.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integer: np.ndarray
    constant: float = 0.0
    blocks: tuple[tuple[str, int, int], ...] = ()
    start: dict[int, float] | None = None
    highs_options: tuple[tuple[str, object], ...] = ()

    @property
    def n_cols(self) -> int:
        return len(self.c)

    @property
    def n_rows(self) -> int:
        return self.A.shape[0]


@dataclasses.dataclass(frozen=True)
class SolverStats:
    """How a model was solved.

    ``objective`` and ``bound`` include the model's constant (e.g. people
    already covered by existing facilities); ``gap`` is relative,
    ``|objective - bound| / |objective|`` on the solver's own objective.
    ``status`` is ``optimal`` (proven within ``mip_gap``), ``time_limit`` (the
    best solution found when the time ran out, not proven optimal) or
    ``infeasible``. ``check`` says how the returned solution fared against
    the model (:func:`check_solution`): ``passed``, or which re-solve it took
    to get one that passes.
    """

    solver: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    solve_s: float
    build_s: float
    n_variables: int
    n_integer: int
    n_constraints: int
    n_nonzeros: int
    time_limit_s: float | None
    mip_gap: float
    stage: str = "main"
    check: str = "passed"

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Solution:
    values: np.ndarray | None
    stats: SolverStats


class SolvedBy:
    """The solver's answer as properties of a result that holds its :class:`SolverStats` as ``solver``."""

    solver: SolverStats

    @property
    def status(self) -> str:
        return self.solver.status

    @property
    def optimal(self) -> bool:
        return self.solver.optimal

    @property
    def objective(self) -> float | None:
        return self.solver.objective


def to_pulp(model: MipModel):
    """The model as a ``pulp.LpProblem``, built row by row from CSR slices; returns ``(problem, variables)``."""
    import pulp

    sense = pulp.LpMaximize if model.sense == "max" else pulp.LpMinimize
    problem = pulp.LpProblem(_safe(model.name), sense)
    names = np.empty(model.n_cols, dtype=object)
    for prefix, start, stop in model.blocks:
        names[start:stop] = [f"{prefix}_{i}" for i in range(stop - start)]
    unnamed = np.flatnonzero(names == None)  # noqa: E711 (object array)
    names[unnamed] = [f"v_{i}" for i in unnamed]
    lo = [None if not np.isfinite(v) else float(v) for v in model.col_lo]
    hi = [None if not np.isfinite(v) else float(v) for v in model.col_hi]
    cats = np.where(model.integer, pulp.LpInteger, pulp.LpContinuous)
    new_variable = getattr(problem, "add_variable", None) or pulp.LpVariable  # PuLP >= 3.3 has add_variable
    variables = [new_variable(n, l, h, c) for n, l, h, c in zip(names.tolist(), lo, hi, cats.tolist())]
    var_array = np.empty(len(variables), dtype=object)
    var_array[:] = variables

    nz = np.flatnonzero(model.c)
    problem.setObjective(pulp.LpAffineExpression(zip(var_array[nz].tolist(), model.c[nz].tolist())))
    A = model.A
    row_vars = np.split(var_array[A.indices], A.indptr[1:-1])
    row_coef = np.split(A.data.astype(float), A.indptr[1:-1])
    constraints = {}
    EQ, GE, LE = pulp.LpConstraintEQ, pulp.LpConstraintGE, pulp.LpConstraintLE
    for r, (vs, cs, l, h) in enumerate(zip(row_vars, row_coef, model.row_lo.tolist(), model.row_hi.tolist())):
        expr = pulp.LpAffineExpression(zip(vs.tolist(), cs.tolist()))
        if l == h:
            constraints[f"r{r}"] = pulp.LpConstraint(expr, EQ, rhs=l)
            continue
        if np.isfinite(l):
            constraints[f"r{r}"] = pulp.LpConstraint(expr, GE, rhs=l)
        if np.isfinite(h):
            constraints[f"r{r}u" if np.isfinite(l) else f"r{r}"] = pulp.LpConstraint(expr, LE, rhs=h)
    problem.extend(constraints)
    return problem, variables


def solve_model(model: MipModel, options: SolverOptions = SolverOptions(), *, stage: str = "main") -> Solution:
    """Solve ``model`` with HiGHS (default) or CBC through PuLP, and check what comes back.

    HiGHS falls back to CBC when ``highspy`` is missing or HiGHS fails. A time
    limit returns the incumbent with ``status="time_limit"``; a model proven
    infeasible returns ``status="infeasible"`` and no values. No solution at
    all within the time limit raises :class:`SolverError`.

    A solver is a dependency to verify, not to trust: every returned solution
    is checked against the model (bounds, integrality, every row, and the
    objective recomputed). When the check fails the model is solved again
    without the starting solution, then with the other solver; if no answer
    passes, :class:`SolverError` says what failed.
    """
    attempts = [(options.solver, model)]
    if model.start:
        attempts.append((options.solver, dataclasses.replace(model, start=None)))
    other = "cbc" if options.solver == "highs" else "highs"
    attempts.append((other, dataclasses.replace(model, start=None)))
    failures = []
    for solver, attempt in attempts:
        solution = _solve_once(attempt, dataclasses.replace(options, solver=solver), stage)
        if solution.values is None:
            return solution
        problems = check_solution(attempt, solution.values, solution.stats.objective)
        if not problems:
            if failures:
                note = f"{'; '.join(failures)}; re-solved with {solution.stats.solver}{'' if attempt.start else ' without the start'}"
                solution = Solution(solution.values, dataclasses.replace(solution.stats, check=note))
            return solution
        log.warning("optimize: %s returned a solution that fails its checks (%s); solving again", solution.stats.solver, "; ".join(problems))
        failures.append(f"{solution.stats.solver}{' with start' if attempt.start else ''}: {problems[0]}")
    raise SolverError(
        f"No solver returned a solution that satisfies the {model.name} model ({'; '.join(failures)}). "
        "Check the installed solver versions (geoplan is tested with highspy 1.12 to 1.15) or report the model."
    )


def overhead_s(model: MipModel) -> float:
    """The seconds a solve of ``model`` takes besides the solver's own run (an estimate from its size)."""
    return OVERHEAD_S + OVERHEAD_PER_NONZERO_S * (model.A.nnz + model.n_cols + model.n_rows)


def finish_s(model: MipModel) -> float:
    """Seconds to keep, within a time limit, for what follows a stage on the whole ``model``."""
    return FINISH_S + FINISH_PER_NONZERO_S * model.A.nnz


def solver_budget(model: MipModel, deadline: float | None) -> float | None:
    """The solver's time limit for ``model`` so that the whole solve ends by ``deadline`` (``time.perf_counter()``).

    ``None`` without a deadline; a value below :data:`MIN_SOLVE_S` means there is no time to start it.
    """
    if deadline is None:
        return None
    return deadline - time.perf_counter() - overhead_s(model)


def not_run(model: MipModel, values: np.ndarray, options: SolverOptions, note: str, *, stage: str = "main") -> SolverStats:
    """The stats of a stage the solver did not run (``note`` says why): ``values`` kept, no bound, status ``time_limit``."""
    name = "HiGHS" if options.solver == "highs" else "CBC"
    objective = float(model.c @ values) + model.constant
    return SolverStats(solver=f"{name} ({note})", status="time_limit", objective=objective, bound=None, gap=None, solve_s=0.0,
                       build_s=0.0, n_variables=model.n_cols, n_integer=int(model.integer.sum()), n_constraints=model.n_rows,
                       n_nonzeros=int(model.A.nnz), time_limit_s=options.time_limit_s, mip_gap=options.mip_gap, stage=stage)


def check_solution(model: MipModel, values: np.ndarray, objective: float | None, *, tol: float = CHECK_TOLERANCE) -> list[str]:
    """What is wrong with ``values`` as a solution of ``model`` (empty when nothing is).

    Checks column bounds, integrality, every row's bounds, and that the
    objective the solver reported (``objective``, the model's constant
    included) is ``c'x + constant`` of these values.

    >>> import numpy as np
    >>> from scipy import sparse
    >>> m = MipModel("m", "min", c=np.array([1.0, 1.0]), A=sparse.csr_matrix(np.array([[1.0, 1.0]])),
    ...              row_lo=np.array([1.0]), row_hi=np.array([np.inf]), col_lo=np.zeros(2), col_hi=np.ones(2),
    ...              integer=np.array([True, True]))
    >>> check_solution(m, np.array([1.0, 0.0]), 1.0)
    []
    >>> check_solution(m, np.array([1.0, 1.0]), 1.0)
    ['objective reported 1 but the solution costs 2']
    """
    values = np.asarray(values, dtype=float)
    found = []
    if values.shape != (model.n_cols,) or not np.isfinite(values).all():
        return [f"{values.shape} values, some not finite, for {model.n_cols} columns"]
    scale = np.maximum(1.0, np.abs(values))
    low = np.flatnonzero(values < model.col_lo - tol * scale)
    high = np.flatnonzero(values > model.col_hi + tol * scale)
    if len(low) or len(high):
        found.append(f"{len(low) + len(high)} columns outside their bounds")
    fractional = np.flatnonzero(model.integer & (np.abs(values - np.round(values)) > tol))
    if len(fractional):
        found.append(f"{len(fractional)} integer columns with fractional values")
    activity = model.A @ values
    row_scale = np.maximum(1.0, abs(model.A) @ np.abs(values))
    bad_rows = np.flatnonzero((activity < model.row_lo - tol * row_scale) | (activity > model.row_hi + tol * row_scale))
    if len(bad_rows):
        found.append(f"{len(bad_rows)} constraints violated (first: row {bad_rows[0]})")
    if objective is not None:
        actual = float(model.c @ values) + model.constant
        if abs(actual - objective) > tol * max(1.0, abs(actual)):
            found.append(f"objective reported {objective:.10g} but the solution costs {actual:.10g}")
    return found


def _solve_once(model: MipModel, options: SolverOptions, stage: str) -> Solution:
    t0 = time.perf_counter()
    problem, variables = to_pulp(model)
    build_s = time.perf_counter() - t0
    args = (build_s, options.time_limit_s, options.mip_gap, options.threads, stage)
    if options.solver == "highs":
        try:
            return _solve_highs(model, problem, variables, *args)
        except _Unavailable as exc:
            log.warning("optimize: HiGHS unavailable (%s); solving with CBC instead", exc)
            problem, variables = to_pulp(model)
    return _solve_cbc(model, problem, variables, *args)


class _Unavailable(Exception):
    pass


def _stats(model, name, status, objective, bound, build_s, solve_s, time_limit_s, mip_gap, stage) -> SolverStats:
    gap = None
    if objective is not None and bound is not None:
        gap = abs(objective - bound) / max(abs(objective), 1e-9)
        if gap < 1e-12:
            gap = 0.0
    return SolverStats(
        solver=name,
        status=status,
        objective=None if objective is None else objective + model.constant,
        bound=None if bound is None else bound + model.constant,
        gap=gap,
        solve_s=solve_s,
        build_s=build_s,
        n_variables=model.n_cols,
        n_integer=int(model.integer.sum()),
        n_constraints=model.n_rows,
        n_nonzeros=int(model.A.nnz),
        time_limit_s=time_limit_s,
        mip_gap=mip_gap,
        stage=stage,
    )


def _solve_highs(model, problem, variables, build_s, time_limit_s, mip_gap, threads, stage) -> Solution:
    import pulp

    if not pulp.HiGHS().available():
        raise _Unavailable("highspy is not installed")
    import highspy

    start = model.start

    class _WarmHiGHS(pulp.HiGHS):
        def callSolver(self, lp):
            if start:
                cols = np.fromiter(start.keys(), dtype=np.int64)
                index = np.array([variables[c].index for c in cols], dtype=np.int32)
                values = np.fromiter(start.values(), dtype=np.float64)
                lp.solverModel.setSolution(len(index), index, values)
            super().callSolver(lp)

    options = {"mip_rel_gap": float(mip_gap), **dict(model.highs_options)}
    engine = _WarmHiGHS(msg=False, timeLimit=time_limit_s, threads=threads, **options)
    name = f"HiGHS {_highspy_version()} (PuLP {pulp.__version__})"
    t0 = time.perf_counter()
    try:
        problem.solve(engine)
    except Exception as exc:  # a solver crash: try CBC rather than fail
        raise _Unavailable(f"HiGHS failed: {exc}") from exc
    solve_s = time.perf_counter() - t0
    h = problem.solverModel
    status = h.getModelStatus()
    info = h.getInfo()
    S = highspy.HighsModelStatus
    flip = -1.0 if model.sense == "max" else 1.0  # PuLP hands HiGHS a minimisation
    has_solution = info.primal_solution_status >= 2  # kSolutionStatusFeasible
    objective = flip * info.objective_function_value if has_solution else None
    is_mip = bool(model.integer.any())
    bound = flip * info.mip_dual_bound if is_mip else objective
    if bound is not None and not np.isfinite(bound):
        bound = None
    if bound is None and has_solution:
        bound = _trivial_bound(model)
    if status == S.kOptimal:
        label = "optimal"
        if not is_mip:
            bound = objective
    elif status in (S.kInfeasible, S.kUnboundedOrInfeasible):
        return Solution(None, _stats(model, name, "infeasible", None, None, build_s, solve_s, time_limit_s, mip_gap, stage))
    elif status in (S.kTimeLimit, S.kIterationLimit, S.kInterrupt, S.kSolutionLimit):
        label = "time_limit"
    elif status == S.kModelEmpty:
        # nothing to decide: every column fixed by its bounds
        values = np.where(np.isfinite(model.col_lo), model.col_lo, 0.0)
        objective = float(model.c @ values)
        return Solution(values, _stats(model, name, "optimal", objective, objective, build_s, solve_s, time_limit_s, mip_gap, stage))
    else:
        raise _Unavailable(f"HiGHS returned {h.modelStatusToString(status)}")
    if not has_solution:
        raise SolverError(
            f"The solver found no solution within the time limit of {time_limit_s} s "
            f"({model.n_cols:,} variables, {model.n_rows:,} constraints). Raise time_limit_s."
        )
    values = np.array([v.varValue if v.varValue is not None else 0.0 for v in variables])
    return Solution(values, _stats(model, name, label, objective, bound, build_s, solve_s, time_limit_s, mip_gap, stage))


_CBC_LINES = {
    "objective": re.compile(r"^Objective value:\s*([-+0-9.eE]+)", re.M),
    "bound": re.compile(r"^(?:Lower|Upper) bound:\s*([-+0-9.eE]+)", re.M),
    "result": re.compile(r"^Result - (.*)$", re.M),
}


def _solve_cbc(model, problem, variables, build_s, time_limit_s, mip_gap, threads, stage) -> Solution:
    import pulp

    if model.start:
        for column, value in model.start.items():
            variables[column].setInitialValue(value)
    with tempfile.TemporaryDirectory(prefix="geoplan-cbc-") as tmp:
        log_path = Path(tmp) / "cbc.log"
        options = dict(msg=False, timeLimit=time_limit_s, gapRel=mip_gap, threads=threads, warmStart=bool(model.start), logPath=str(log_path))
        engine = pulp.COIN_CMD(**options)  # a CBC installed with pulp[cbc] or on the PATH
        if not engine.available():
            with warnings.catch_warnings():  # PuLP 3.3 deprecates its bundled CBC (still shipped)
                warnings.simplefilter("ignore", DeprecationWarning)
                engine = pulp.PULP_CBC_CMD(**options)
        t0 = time.perf_counter()
        problem.solve(engine)
        solve_s = time.perf_counter() - t0
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
    name = f"CBC (PuLP {pulp.__version__})"
    if problem.status == pulp.LpStatusInfeasible:
        return Solution(None, _stats(model, name, "infeasible", None, None, build_s, solve_s, time_limit_s, mip_gap, stage))
    if problem.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        raise SolverError(
            f"CBC found no solution within the time limit of {time_limit_s} s "
            f"({model.n_cols:,} variables, {model.n_rows:,} constraints). Raise time_limit_s."
        )
    values = np.array([v.varValue if v.varValue is not None else 0.0 for v in variables])
    objective = float(model.c @ values)
    result = _CBC_LINES["result"].search(text)
    stopped = problem.sol_status == pulp.LpSolutionIntegerFeasible or (result and "time" in result.group(1).lower())
    bound = objective
    match = _CBC_LINES["bound"].search(text)
    if stopped:
        bound = _trivial_bound(model)
        if match:  # CBC prints the bound in the model's own sense ("Upper bound" for a maximisation)
            bound = float(match.group(1))
    label = "time_limit" if stopped else "optimal"
    return Solution(values, _stats(model, name, label, objective, bound, build_s, solve_s, time_limit_s, mip_gap, stage))


def _highspy_version() -> str:
    """The installed highspy's version, read from its metadata (building a Highs object prints a banner)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("highspy")
    except PackageNotFoundError:
        return "unknown"


def _trivial_bound(model: MipModel) -> float | None:
    """A bound from the column bounds alone, for when the solver stopped before it had one."""
    low = model.c * np.where(np.isfinite(model.col_lo), model.col_lo, -np.inf)
    high = model.c * np.where(np.isfinite(model.col_hi), model.col_hi, np.inf)
    with np.errstate(invalid="ignore"):
        ends = np.nan_to_num(np.vstack([low, high]), nan=0.0)
    value = float(ends.max(axis=0).sum() if model.sense == "max" else ends.min(axis=0).sum())
    return value if np.isfinite(value) else None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "model"
