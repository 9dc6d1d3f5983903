"""Site recommendations: exact optimisation of care-facility locations over the sparse reach matrix.

One entry point, :func:`recommend`, turns a region into a :class:`Plan`:
maximum coverage (MCLP), target coverage (fewest sites for T %), p-median,
capacities, costs and budgets, two kinds at once (stations and canteens),
consolidation of under-used facilities, priority weights by age group, and
phasing by marginal gain. Models are built with PuLP from arrays in bulk and
solved by HiGHS (CBC as fallback), after reductions that keep the optimum.

    >>> import geoplan
    >>> from geoplan.optimize import recommend, KindSpec
    >>> region = geoplan.load_region("wuchang")                          # doctest: +SKIP
    >>> plan = recommend(region, kinds=[KindSpec("station", p=5),
    ...                                 KindSpec("canteen", p=3, threshold_min=10)])  # doctest: +SKIP
    >>> plan.to_xlsx("out/wuchang_plan.xlsx")                            # doctest: +SKIP

Modules: :mod:`~geoplan.optimize.problem` (inputs), :mod:`~geoplan.optimize.reduce`
(reductions), :mod:`~geoplan.optimize.models` (formulations),
:mod:`~geoplan.optimize.solve` (solvers), :mod:`~geoplan.optimize.plan`
(the result and its files), :mod:`~geoplan.optimize.phasing` (build order).
PuLP and HiGHS are imported only when a model is solved.
"""

from geoplan.optimize.models import MODELS, TargetUnreachable, build_model, optimize
from geoplan.optimize.phasing import phase_sites
from geoplan.optimize.plan import Plan
from geoplan.optimize.problem import DEFAULT_WEIGHTS, KINDS, SERVED_BY, KindSpec, Problem, build_problem, priority_weights
from geoplan.optimize.recommend import plan_problem, recommend
from geoplan.optimize.solve import MipModel, SolverError, SolverStats, solve_model

__all__ = [
    "DEFAULT_WEIGHTS",
    "KINDS",
    "MODELS",
    "SERVED_BY",
    "KindSpec",
    "MipModel",
    "Plan",
    "Problem",
    "SolverError",
    "SolverStats",
    "TargetUnreachable",
    "build_model",
    "build_problem",
    "optimize",
    "phase_sites",
    "plan_problem",
    "priority_weights",
    "recommend",
    "solve_model",
]
