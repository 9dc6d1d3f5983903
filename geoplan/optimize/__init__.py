"""Site recommendations: exact optimisation of care-facility locations over the sparse reach matrix.

One entry point, :func:`recommend`, turns a region into a :class:`Plan`:
maximum coverage (MCLP), target coverage (fewest sites for T %), p-median,
capacities, costs and budgets, two kinds at once (stations and canteens),
consolidation of under-used facilities, priority weights by age group, and
phasing by marginal gain. Options travel as frozen objects: a
:class:`KindSpec` per kind, :class:`ModelOptions`, :class:`SolverOptions`.
Models are built with PuLP from arrays in bulk and solved by HiGHS (CBC as
fallback), after reductions that keep the optimum; every returned solution
is checked against its model.

Five stations and three canteens (within a 10-minute walk) for Wuchang
(``wuchang`` is ``geoplan.load_region("wuchang")``), in build order, written
as a workbook to a temporary folder:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> from geoplan.optimize import KindSpec, recommend
    >>> plan = recommend(wuchang, [KindSpec("station", p=5),
    ...                            KindSpec("canteen", p=3, threshold_min=10)])
    >>> plan.status, round(plan.objective)
    ('optimal', 45218)
    >>> plan.new_sites.groupby("kind", sort=False).size().to_dict()
    {'station': 5, 'canteen': 3}
    >>> round(plan.coverage.loc[("canteen", "pop_60", 10.0), "after"])
    8927
    >>> out = tempfile.TemporaryDirectory()
    >>> path = plan.to_xlsx(Path(out.name) / "wuchang_plan.xlsx")
    >>> list(pd.read_excel(path, sheet_name=None))
    ['summary 摘要', 'sites 站点', 'coverage 覆盖']
    >>> out.cleanup()

Modules: :mod:`~geoplan.optimize.options` (what to plan and how),
:mod:`~geoplan.optimize.problem` (inputs), :mod:`~geoplan.optimize.reduce`
(reductions), :mod:`~geoplan.optimize.builder` (models in arrays),
:mod:`~geoplan.optimize.formulations` (the models),
:mod:`~geoplan.optimize.orchestration` (build, solve, refine, decode),
:mod:`~geoplan.optimize.exact` (city size: plans, Lagrangian bounds and fixing
before the solver, for the MCLP and target models),
:mod:`~geoplan.optimize.lagrange` (the bounds and the fixing rules),
:mod:`~geoplan.optimize.solve` (solvers and the check of their answers),
:mod:`~geoplan.optimize.plan` (the result and its files),
:mod:`~geoplan.optimize.phasing` (build order), :mod:`~geoplan.optimize.errors`;
:mod:`~geoplan.optimize.requirements` (planning targets as values) and
:mod:`~geoplan.optimize.least_cost` (:func:`least_cost`: the cheapest new
facilities per tier that meet every requirement).
PuLP and HiGHS are imported only when a model is solved.
"""

from geoplan.optimize.errors import RequirementsUnreachable, SolverError, TargetUnreachable
from geoplan.optimize.least_cost import LeastCostOptions, LeastCostPlan, greedy_least_cost, least_cost
from geoplan.optimize.options import KINDS, MODELS, SOLVERS, KindSpec, ModelOptions, PlanRequest, SolverOptions, kind_specs
from geoplan.optimize.orchestration import build_model, check_request, optimize
from geoplan.optimize.phasing import phase_sites
from geoplan.optimize.plan import Plan
from geoplan.optimize.problem import (
    DEFAULT_WEIGHTS,
    SERVED_BY,
    PlanningSites,
    Problem,
    build_problem,
    planning_sites,
    priority_weights,
)
from geoplan.optimize.recommend import (
    plan_problem,
    planning_reach,
    prepare,
    prepare_request,
    recommend,
    recommend_request,
)
from geoplan.optimize.requirements import CoverageShare, Quantity, Ratio, Requirement, UnitShare, check_requirements
from geoplan.optimize.solve import MipModel, SolverStats, check_solution, solve_model

__all__ = [
    "DEFAULT_WEIGHTS",
    "KINDS",
    "MODELS",
    "SERVED_BY",
    "SOLVERS",
    "CoverageShare",
    "KindSpec",
    "LeastCostOptions",
    "LeastCostPlan",
    "MipModel",
    "ModelOptions",
    "Plan",
    "PlanRequest",
    "PlanningSites",
    "Problem",
    "Quantity",
    "Ratio",
    "Requirement",
    "RequirementsUnreachable",
    "SolverError",
    "SolverOptions",
    "SolverStats",
    "TargetUnreachable",
    "UnitShare",
    "build_model",
    "build_problem",
    "check_request",
    "check_requirements",
    "check_solution",
    "greedy_least_cost",
    "kind_specs",
    "least_cost",
    "optimize",
    "phase_sites",
    "plan_problem",
    "planning_reach",
    "planning_sites",
    "prepare",
    "prepare_request",
    "priority_weights",
    "recommend",
    "recommend_request",
    "solve_model",
]
