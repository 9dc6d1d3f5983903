r"""Least cost to pass: the cheapest new facilities, per tier, that make every planning requirement hold.

:func:`least_cost` takes a :class:`~geoplan.optimize.problem.Problem` (demand,
existing facilities, candidates, walking times) and a set of requirements
(:mod:`geoplan.optimize.requirements`: :class:`UnitShare`,
:class:`CoverageShare`, :class:`Quantity`, :class:`Ratio`) and returns the
plan of least total cost that meets all of them, exactly (PuLP + HiGHS through
:func:`~geoplan.optimize.solve.solve_model`, which checks every solution), as a
:class:`LeastCostPlan`: the new sites per kind in build order, the cost, each
requirement before and after, the solver's status, bound and gap, and the cost
of the greedy plan beside it (:func:`greedy_least_cost`, also the solver's
starting solution). A requirement that no plan can meet is refused before any
solve with :class:`RequirementsUnreachable`, which names it and the best
achievable value.

Formulation
-----------
A *column* :math:`c` is a new facility of kind :math:`k` at a candidate
:math:`j` that may take it (one per pair), or an existing facility that may
close (``closable``); it costs :math:`c_c` (the site's ``cost`` times the
kind's ``kind_costs``; 1 each by default, so the cost is the count) and
:math:`x_c \in \{0, 1\}` opens (or keeps) it. For requirement :math:`r` with
kinds :math:`K_r`, :math:`C_r` are the columns of those kinds and
:math:`F_r` the existing facilities of those kinds that stay (constants).

.. math::

   \min \sum_c c_c x_c

subject to, for every requirement:

* **UnitShare** (units :math:`U` of a level, share :math:`s`): with
  :math:`T_r = \lceil s |U| / 100 \rceil` and :math:`H_r` the units already
  holding a facility of :math:`F_r`, a :math:`h_u \in [0, 1]` per other unit
  that holds a column of :math:`C_r`:

  .. math::

     h_u \le \sum_{c \in C_r : u(c) = u} x_c, \qquad \sum_u h_u \ge T_r - |H_r|.

* **CoverageShare** (group :math:`g`, walk :math:`\tau`, share :math:`p`):
  for each demand row :math:`i` not within :math:`\tau` of :math:`F_r`, with
  :math:`N_{ri}` the columns of :math:`C_r` within :math:`\tau` (asked of the
  problem's :class:`~geoplan.reach.ReachMatrix`) and :math:`G^0_r` the people
  :math:`F_r` already reach:

  .. math::

     z_{ri} \le \sum_{c \in N_{ri}} x_c, \qquad
     \sum_i g_i z_{ri} \ge \tfrac{p}{100} \sum_i g_i - G^0_r, \qquad 0 \le z_{ri} \le 1.

  When the target needs every such row (the set-covering case, e.g. a
  UnitShare of 100 %), the rows are :math:`\sum_{c \in N_{ri}} x_c \ge 1`
  instead. For integer :math:`x` the best :math:`z` and :math:`h` are
  :math:`\min(1, \sum x) \in \{0, 1\}`, so they may be continuous.

* **Quantity** (attribute :math:`a`, amount :math:`A_r`, or
  :math:`A_r = \text{amount} \cdot P / \text{per}` with :math:`P` the people
  of ``per_group``):

  .. math::

     \sum_{c \in C_r} a_c x_c \ge A_r - \sum_{f \in F_r} a_f,

  in the whole district, or one such row per unit :math:`u` of the level
  (columns, facilities and people of that unit only).

* **Ratio** (numerator :math:`n`, denominator :math:`d`, share :math:`s`),
  linear:

  .. math::

     \sum_{c \in C_r} (n_c - s\, d_c) x_c \ge s \sum_{f \in F_r} d_f - \sum_{f \in F_r} n_f.

* with ``one_per_site``: :math:`\sum_k x_{kj} \le 1` for each candidate
  :math:`j` that may take several kinds.

New facilities take an attribute from the candidate's own column where it
has one, else from ``new_attributes[kind]``; existing facilities from their
own columns (a missing value is an error, never guessed).

Reductions (each keeps the optimum):

1. A requirement the existing facilities already meet has no rows; a Ratio
   keeps its row when some column would lower it (it is the one requirement
   that adding facilities can break).
2. Demand already within the walk of a facility that stays, and units
   already held, are constants; demand rows with no people of the group or
   no column within reach are dropped.
3. Demand rows with the same set of columns within reach are merged, people
   summed (:func:`~geoplan.optimize.reduce.merge_identical_rows`).
4. Dominated columns (without ``one_per_site``): a new column :math:`j` of a
   kind is left out when another column :math:`k` of the same kind is within
   reach of every row (demand and unit rows of every covering requirement)
   that :math:`j` is, costs no more, :math:`j` adds nothing to any
   additive (Quantity, Ratio) row and :math:`k` takes nothing from one; ties
   go to the larger covered set, then the lower index (a strict order). In an
   optimal plan that opens :math:`j`, replace it by :math:`k` (or, if
   :math:`k` is open, drop it): every row still holds and the cost does not
   rise, so some optimal plan opens no dominated column (the argument of
   :func:`~geoplan.optimize.reduce.dominated_columns`, row by row).

Greedy, start and build order
-----------------------------
Each requirement's shortfall counts 1 in all (split equally over its rows:
one per unit of a per-unit Quantity). A site's *gain* is the part of the
remaining shortfalls it removes (people, units or amounts, capped at what is
still missing, over each shortfall); :func:`greedy_least_cost` adds the
column of the best gain per cost until every requirement holds, then drops,
most expensive first, every column the others make redundant. Its plan is
HiGHS's starting solution. The exact plan's sites are put in *build order* by
the same rule on the opened sites alone (what each adds to the requirements
still unmet, per cost), so the first phases close the largest shortfalls
for their money; :attr:`LeastCostPlan.phases` gives, per site, what it adds to
each requirement and how many hold after it.

Consolidation
-------------
``closable`` names existing facilities that may close (e.g. those of
:func:`~geoplan.optimize.formulations.closable_sites`): they become columns
that cost their own ``cost`` to keep, so the objective is the cost of new
sites plus the cost of the closable ones kept -- the consolidation model's
objective (facilities kept plus opened) with the requirements in place of its
keep-coverage rows. To keep its rule that no group loses coverage, add a
CoverageShare per group at today's share (of every facility, closable ones
included: ``problem.reach.covered``). Closable facilities count as open in
``before``; the phases start from the facilities the plan keeps.

Example: two demand cells, one existing station, three candidates; at least
half of the two communities hold a station and all 60+ live within 10 minutes
of one:

>>> import numpy as np, pandas as pd
>>> from geoplan.optimize import CoverageShare, KindSpec, LeastCostOptions, Problem, UnitShare, least_cost
>>> times = np.array([[100.0, np.inf, 700.0, np.inf], [np.inf, 300.0, 200.0, 900.0]])
>>> people = pd.DataFrame({"pop_60": [10.0, 5.0], "pop_80": [2.0, 1.0]}, index=pd.Index(["d1", "d2"], name="demand_id"))
>>> sites = pd.DataFrame({"status": ["existing", "candidate", "candidate", "candidate"], "cost": [1.0, 2.0, 1.0, 1.0]},
...                      index=pd.Index(["s0", "c1", "c2", "c3"], name="site_id"))
>>> problem = Problem.from_matrix(times, people, sites, specs=KindSpec(threshold_min=10), cutoff_s=900.0)
>>> plan = least_cost(problem, [UnitShare("communities", ("station",), "community", 50),
...                             CoverageShare("circle", ("station",), "pop_60", 10, 100)],
...                   options=LeastCostOptions(site_units={"community": ["A", "A", "B", "B"]}))
>>> dict(plan.opened), plan.cost, plan.status
({'station': Index(['c2'], dtype='object', name='site_id')}, 1.0, 'optimal')
>>> plan.requirements[["before", "after", "passed"]]
             before  after  passed
id
communities    50.0  100.0    True
circle         66.7  100.0    True
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.errors import InfeasibleError, InputError
from geoplan.optimize.builder import ModelBuilder
from geoplan.optimize.errors import RequirementsUnreachable, SolverError
from geoplan.optimize.formulations import PEOPLE_TOLERANCE
from geoplan.optimize.options import SolverOptions
from geoplan.optimize.problem import Problem
from geoplan.optimize.reduce import merge_identical_rows
from geoplan.optimize.requirements import CoverageShare, Quantity, Ratio, Requirement, UnitShare, check_requirements
from geoplan.optimize.solve import SolvedBy, SolverStats, solve_model
from geoplan.tiers import KINDS

log = logging.getLogger(__name__)

__all__ = ["LeastCostOptions", "LeastCostPlan", "RequirementsUnreachable", "greedy_least_cost", "least_cost"]

UnitCodes = Mapping[str, Sequence | pd.Series]

#: Slack on a count of units (floating-point noise only: counts are whole).
UNIT_TOLERANCE = 1e-9

#: Unit codes that mean "in no unit" (besides None, NaN and ""): the code
#: ``PlanningUnits.locate`` gives points outside every unit (``geoplan.units.OUTSIDE``).
NO_UNIT_CODES = frozenset({"outside"})


@dataclasses.dataclass(frozen=True)
class LeastCostOptions:
    """What :func:`least_cost` and :func:`greedy_least_cost` may build, where, and at what cost.

    Parameters
    ----------
    site_units
        Per level (``"street"``, ``"community"``, ``"zone"``...), the unit
        code of each site: a sequence following ``problem.sites`` or a Series
        indexed by ``site_id`` (None, NaN or ``"outside"``: outside every
        unit), e.g. the columns of ``PlanningUnits.locate``. Codes are compared
        as text (462, 462.0 and "462" are one code). Default: the sites'
        ``<level>_code`` column.
    demand_units
        Per level, the unit code of each demand row (needed by a per-unit
        Quantity per people).
    unit_codes
        Per level, every unit (the denominator of a UnitShare). Default: the
        codes found in ``site_units`` and ``demand_units``.
    new_attributes
        Per kind, the attributes of a new facility (``{"station":
        {"floor_area_m2": 300}}``), used where the candidate has no value of its own.
    build
        The kinds that may be built (default: every kind a requirement
        names). A candidate may take a kind when ``problem.eligible`` says so
        (kinds the problem plans) and otherwise always.
    kind_costs
        Per kind, a factor on the site cost of a new facility of that kind
        (default 1: the site's ``cost``).
    closable
        Ids of existing facilities that may close (see "Consolidation").
    one_per_site
        A candidate takes at most one new facility.
    reduce, warm_start
        Apply the exact reductions; start HiGHS from the greedy plan
        (:func:`least_cost` only).
    """

    site_units: UnitCodes | None = None
    demand_units: UnitCodes | None = None
    unit_codes: Mapping[str, Sequence[str]] | None = None
    new_attributes: Mapping[str, Mapping[str, float]] | None = None
    build: Sequence[str] | None = None
    kind_costs: Mapping[str, float] | None = None
    closable: Sequence | None = None
    one_per_site: bool = False
    reduce: bool = True
    warm_start: bool = True


@dataclasses.dataclass(frozen=True)
class LeastCostPlan(SolvedBy):
    """The cheapest new facilities that meet every requirement: what to build, in what order, and how it was solved.

    A value: its tables are handed out as copies.

    Attributes
    ----------
    opened
        Per buildable kind, the ids of the new sites, in build order.
    closed
        Closable existing facilities (``closable``) that the plan closes.
    cost
        The plan's cost: new sites, plus the closable facilities it keeps.
    greedy_cost
        The cost of the greedy plan (:func:`greedy_least_cost`) for the same
        requirements (None when the greedy rule got stuck).
    method
        ``"exact"`` (:func:`least_cost`) or ``"greedy"``.
    solver
        :class:`~geoplan.optimize.solve.SolverStats`: status (``optimal``,
        ``time_limit``), objective, bound, gap, times and model size.
    reductions
        Model sizes before and after each reduction, per requirement.
    requirements
        One row per requirement (indexed by ``id``): ``type``, ``description``,
        ``kinds``, ``target``, ``value_unit``, ``before``, ``after``, ``best``
        (every candidate open), ``passed_before``, ``passed``.
    phases
        One row per new site in build order: ``phase``, ``site_id``, ``kind``,
        ``cost``, ``cumulative_cost``, ``gain_<id>`` (what it adds to each
        requirement's value) and ``met`` (requirements holding after it).
    """

    opened: Mapping[str, pd.Index]
    closed: pd.Index
    cost: float
    greedy_cost: float | None
    method: str
    solver: SolverStats
    reductions: Mapping[str, Any] = dataclasses.field(repr=False)
    requirement_table: pd.DataFrame = dataclasses.field(repr=False)
    phase_table: pd.DataFrame = dataclasses.field(repr=False)

    @property
    def requirements(self) -> pd.DataFrame:
        return self.requirement_table.copy()

    @property
    def phases(self) -> pd.DataFrame:
        return self.phase_table.copy()

    @property
    def bound(self) -> float | None:
        return self.solver.bound

    @property
    def gap(self) -> float | None:
        return self.solver.gap

    @property
    def passed(self) -> bool:
        """Every requirement holds after the plan."""
        return bool(self.requirement_table["passed"].all())

    @property
    def n_new(self) -> int:
        return sum(len(ids) for ids in self.opened.values())


# --------------------------------------------------------------------------- the prepared instance


@dataclasses.dataclass(frozen=True)
class _Rows:
    """One requirement's part of the model, over all columns.

    ``cover``: rows :math:`z_i \\le A_i x`, :math:`\\sum_i g_i z_i \\ge need - tol`;
    ``add``: rows :math:`Q x \\ge need - tol`; ``none``: met, nothing to add.
    """

    family: str
    matrix: sparse.csr_matrix
    weight: np.ndarray
    need: np.ndarray
    tol: np.ndarray
    sizes: dict


@dataclasses.dataclass(frozen=True)
class _Instance:
    problem: Problem
    requirements: tuple[Requirement, ...]
    build: tuple[str, ...]
    col_site: np.ndarray
    col_kind: np.ndarray
    col_new: np.ndarray
    col_cost: np.ndarray
    fixed: np.ndarray
    site_kind: np.ndarray
    site_codes: Mapping[str, np.ndarray]
    demand_codes: Mapping[str, np.ndarray]
    universe: Mapping[str, tuple[str, ...]]
    attr_site: Mapping[str, np.ndarray]
    attr_col: Mapping[str, np.ndarray]
    tol: tuple[Any, ...]
    rows: tuple[_Rows, ...]
    active: np.ndarray
    one_per_site: bool
    sizes: dict

    @property
    def n_cols(self) -> int:
        return len(self.col_site)

    def relevant(self, r: Requirement) -> np.ndarray:
        return np.isin(self.col_kind, r.kinds)

    def fixed_of(self, r: Requirement) -> np.ndarray:
        return self.fixed[np.isin(self.site_kind[self.fixed], r.kinds)]


def _code(value) -> str | None:
    """A unit code as text (None: outside every unit); 462, 462.0 and "462" are the same code."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return None if not text or text in NO_UNIT_CODES else text


def _codes(values, index: pd.Index, what: str, level: str) -> np.ndarray:
    if isinstance(values, pd.Series):
        if not values.index.equals(index):
            missing = index.difference(values.index)
            if len(missing):
                raise InputError(
                    f"{what}[{level!r}] is a Series without codes for {sorted(map(str, missing))[:10]}; "
                    "give a code (or None: outside every unit) for each of them."
                )
            values = values.reindex(index)
        raw = values.to_numpy(dtype=object)
    elif isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray, pd.Index)):
        raise InputError(f"{what}[{level!r}] must be a sequence of unit codes (one per row) or a Series indexed by id, got {type(values).__name__}.")
    else:
        raw = np.asarray(list(values), dtype=object)
        if len(raw) != len(index):
            raise InputError(
                f"{what}[{level!r}] has {len(raw)} codes but there are {len(index)} rows; give one code per row, "
                "in the problem's order, or a Series indexed by id."
            )
    return np.array([_code(v) for v in raw], dtype=object)


def _number(name: str, value, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _prepare(problem: Problem, requirements, options: LeastCostOptions) -> _Instance:
    site_units, demand_units, unit_codes = options.site_units, options.demand_units, options.unit_codes
    new_attributes, build, kind_costs, closable = options.new_attributes, options.build, options.kind_costs, options.closable
    one_per_site, reduce = options.one_per_site, options.reduce
    reqs = check_requirements(requirements)
    sites = problem.sites
    people = problem.people
    for r in reqs:
        if isinstance(r, CoverageShare):
            if r.group not in people.columns:
                raise InputError(f"Requirement {r.id!r} counts {r.group!r}, which the demand does not have; it has {list(people.columns)}.")
            problem.reach.check_threshold(r.threshold_s)
        if isinstance(r, Quantity) and r.per_group is not None and r.per_group not in people.columns:
            raise InputError(f"Requirement {r.id!r} is per {r.per_group!r}, which the demand does not have; it has {list(people.columns)}.")

    # what may be built, and where
    if build is None:
        wanted = {k for r in reqs for k in r.kinds}
        build = tuple(k for k in KINDS if k in wanted)
    else:
        build = (build,) if isinstance(build, str) else tuple(build)
        unknown = [k for k in build if k not in KINDS]
        if unknown:
            raise InputError(f"build names unknown facility kind(s) {unknown}; use {', '.join(KINDS)}.")
        if len(set(build)) != len(build):
            raise InputError(f"build names a kind twice: {list(build)}.")
    kind_costs = dict(kind_costs or {})
    stray = sorted(set(kind_costs) - set(build))
    if stray:
        raise InputError(f"kind_costs names kinds that are not built ({stray}); built: {list(build)}.")
    for kind, value in kind_costs.items():
        _number(f"kind_costs[{kind!r}]", value)
    status = sites["status"].to_numpy()
    site_kind = sites["kind"].to_numpy().astype(object)
    site_cost = sites["cost"].to_numpy(dtype=float)
    candidate = status == "candidate"
    cols_site, cols_kind = [], []
    for kind in build:
        eligible = np.asarray(problem.eligible[kind], dtype=bool) & candidate if kind in problem.eligible else candidate
        positions = np.flatnonzero(eligible)
        cols_site.append(positions)
        cols_kind.append(np.full(len(positions), kind, dtype=object))
    new_site = np.concatenate(cols_site) if cols_site else np.zeros(0, np.int64)
    new_kind = np.concatenate(cols_kind) if cols_kind else np.zeros(0, object)
    new_cost = site_cost[new_site] * np.array([kind_costs.get(k, 1.0) for k in new_kind], dtype=float)
    closing = np.zeros(0, np.int64)
    if closable is not None:
        ids = pd.Index(list(closable))
        positions = sites.index.get_indexer(ids)
        if (positions < 0).any():
            raise InputError(f"closable names sites that do not exist: {sorted(map(str, ids[positions < 0]))[:10]}.")
        not_existing = ids[status[positions] != "existing"]
        if len(not_existing):
            raise InputError(f"closable must name existing facilities; {sorted(map(str, not_existing))[:10]} are candidates.")
        closing = np.unique(positions).astype(np.int64)
    col_site = np.r_[new_site, closing].astype(np.int64)
    col_kind = np.r_[new_kind, site_kind[closing]].astype(object)
    col_new = np.r_[np.ones(len(new_site), bool), np.zeros(len(closing), bool)]
    col_cost = np.r_[new_cost, site_cost[closing]]
    fixed = np.setdiff1d(np.flatnonzero(status == "existing"), closing).astype(np.int64)

    # unit codes, for the levels the requirements use
    site_units = dict(site_units or {})
    demand_units = dict(demand_units or {})
    unit_codes = dict(unit_codes or {})
    levels = list(dict.fromkeys(r.level for r in reqs if isinstance(r, (UnitShare, Quantity)) and r.level is not None))
    site_codes, demand_codes, universe = {}, {}, {}
    for level in levels:
        if level in site_units:
            site_codes[level] = _codes(site_units[level], sites.index, "site_units", level)
        elif f"{level}_code" in sites.columns:
            site_codes[level] = _codes(sites[f"{level}_code"], sites.index, "site column", f"{level}_code")
        else:
            users = [r.id for r in reqs if getattr(r, "level", None) == level]
            raise InputError(
                f"Requirement(s) {users} count {level!r} units, but no unit codes were given for the sites: pass "
                f"site_units={{{level!r}: codes per site}} (e.g. from PlanningUnits.locate) or give the sites a "
                f"{level}_code column. Levels given: {sorted(site_units)}."
            )
        if level in demand_units:
            demand_codes[level] = _codes(demand_units[level], people.index, "demand_units", level)
        if level in unit_codes:
            codes = tuple(c for c in (_code(v) for v in unit_codes[level]) if c is not None)
            if len(set(codes)) != len(codes):
                raise InputError(f"unit_codes[{level!r}] lists a code twice.")
            if not codes:
                raise InputError(f"unit_codes[{level!r}] is empty; list the {level} units (or leave it out to take the codes of the sites and demand).")
            universe[level] = codes
        else:
            seen = set(site_codes[level]) | (set(demand_codes[level]) if level in demand_codes else set())
            universe[level] = tuple(sorted(c for c in seen if c is not None))
        for r in reqs:
            if isinstance(r, Quantity) and r.level == level and r.per_group is not None and level not in demand_codes:
                raise InputError(
                    f"Requirement {r.id!r} is per {r.per_group} in every {level} unit, so the demand's units are needed: "
                    f"pass demand_units={{{level!r}: codes per demand row}}."
                )
            if isinstance(r, Quantity) and r.level == level and r.units is not None:
                unknown = sorted(set(r.units) - set(universe[level]))
                if unknown:
                    raise InputError(f"Requirement {r.id!r} names {level} units that do not exist: {unknown[:10]}.")

    # attributes of existing facilities and of new ones
    new_attributes = {k: dict(v) for k, v in (new_attributes or {}).items()}
    stray = sorted(set(new_attributes) - set(KINDS))
    if stray:
        raise InputError(f"new_attributes names unknown facility kind(s) {stray}; use {', '.join(KINDS)}.")
    for kind, values in new_attributes.items():
        for name, value in values.items():
            _number(f"new_attributes[{kind!r}][{name!r}]", value)
    attr_site, attr_col = {}, {}
    needs: dict[str, list[Requirement]] = {}
    for r in reqs:
        if isinstance(r, Quantity):
            needs.setdefault(r.attribute, []).append(r)
        elif isinstance(r, Ratio):
            needs.setdefault(r.numerator, []).append(r)
            needs.setdefault(r.denominator, []).append(r)
    for attr, users in needs.items():
        own = pd.to_numeric(sites[attr], errors="coerce").to_numpy(dtype=float) if attr in sites.columns else np.full(len(sites), np.nan)
        if (own < 0).any():
            bad = sites.index[own < 0][:10]
            raise InputError(f"Site {attr} must be >= 0; negative for {sorted(map(str, bad))}.")
        default = np.array([new_attributes.get(k, {}).get(attr, np.nan) for k in col_kind], dtype=float)
        values = own[col_site]
        values = np.where(np.isnan(values) & col_new, default, values)
        kinds_used = {k for r in users for k in r.kinds}
        for kind in build:
            missing = col_new & (col_kind == kind) & np.isnan(values)
            if kind in kinds_used and missing.any():
                ids = [r.id for r in users if kind in r.kinds]
                raise InputError(
                    f"Requirement(s) {ids} add up {attr} over new {kind}s, but {int(missing.sum())} {kind} candidate(s) have "
                    f"no {attr} (e.g. {sites.index[col_site[missing][0]]}): give new_attributes={{{kind!r}: {{{attr!r}: ...}}}} "
                    f"or a {attr} column on the candidates."
                )
        existing = np.flatnonzero((status == "existing") & np.isin(site_kind, list(kinds_used)) & np.isnan(own))
        if len(existing):
            listed = ", ".join(f"{sites.index[p]} ({site_kind[p]})" for p in existing[:10])
            raise InputError(
                f"Existing facilities {listed}{' ...' if len(existing) > 10 else ''} have no {attr}, which requirement(s) "
                f"{[r.id for r in users]} add up: add a {attr} column to the facility list (0 where they have none)."
            )
        attr_site[attr] = np.nan_to_num(own, nan=0.0)
        attr_col[attr] = np.nan_to_num(values, nan=0.0)

    base = _Instance(
        problem=problem, requirements=reqs, build=build, col_site=col_site, col_kind=col_kind, col_new=col_new, col_cost=col_cost,
        fixed=fixed, site_kind=site_kind, site_codes=MappingProxyType(site_codes), demand_codes=MappingProxyType(demand_codes),
        universe=MappingProxyType(universe), attr_site=MappingProxyType(attr_site), attr_col=MappingProxyType(attr_col),
        tol=(), rows=(), active=np.ones(len(col_site), bool), one_per_site=bool(one_per_site), sizes={},
    )
    tols, rows = zip(*(_requirement_rows(base, r, reduce=reduce) for r in reqs))
    inst = dataclasses.replace(base, tol=tuple(tols), rows=tuple(rows))
    active = np.ones(inst.n_cols, bool)
    if reduce and not one_per_site:
        active = _undominated(inst)
    else:
        active[~_useful(inst)] = False
    sizes = {
        "columns": int(inst.n_cols),
        "new_columns": int(col_new.sum()),
        "closable": int((~col_new).sum()),
        "columns_in_model": int(active.sum()),
        "requirements": {r.id: rows_.sizes for r, rows_ in zip(reqs, rows)},
    }
    return dataclasses.replace(inst, active=active, sizes=sizes)


def _unit_index(inst: _Instance, level: str) -> dict[str, int]:
    return {code: i for i, code in enumerate(inst.universe[level])}


def _unit_of(inst: _Instance, level: str, positions: np.ndarray) -> np.ndarray:
    """Unit number (in the level's universe) of each site position; -1 outside every listed unit."""
    index = _unit_index(inst, level)
    codes = inst.site_codes[level][positions]
    return np.array([index.get(c, -1) if c is not None else -1 for c in codes], dtype=np.int64)


def _required_per_unit(inst: _Instance, r: Quantity) -> tuple[np.ndarray, np.ndarray]:
    """The units a per-unit Quantity applies to (numbers in the universe) and each one's required amount."""
    index = _unit_index(inst, r.level)
    units = np.array([index[u] for u in r.units], dtype=np.int64) if r.units is not None else np.arange(len(inst.universe[r.level]))
    if r.per_group is None:
        return units, np.full(len(units), float(r.amount))
    codes = inst.demand_codes[r.level]
    unit = np.array([index.get(c, -1) if c is not None else -1 for c in codes], dtype=np.int64)
    people = inst.problem.people[r.per_group].to_numpy(dtype=float)
    inside = unit >= 0
    per_unit = np.bincount(unit[inside], weights=people[inside], minlength=len(inst.universe[r.level]))
    return units, float(r.amount) * per_unit[units] / float(r.per_people)


def _district_required(inst: _Instance, r: Quantity) -> float:
    if r.per_group is None:
        return float(r.amount)
    return float(r.amount) * float(inst.problem.people[r.per_group].sum()) / float(r.per_people)


def _requirement_rows(inst: _Instance, r: Requirement, *, reduce: bool) -> tuple[Any, _Rows]:
    """The requirement's tolerance and its rows over all columns (none when already met)."""
    n_cols = inst.n_cols
    rel = inst.relevant(r)
    fixed_r = inst.fixed_of(r)
    none = lambda sizes: _Rows("none", sparse.csr_matrix((0, n_cols)), np.zeros(0), np.zeros(0), np.zeros(0), sizes)  # noqa: E731

    if isinstance(r, UnitShare):
        n_units = len(inst.universe[r.level])
        target = math.ceil(r.share_pct / 100.0 * n_units - 1e-9)
        held = set(_unit_of(inst, r.level, fixed_r).tolist()) - {-1}
        need = target - len(held)
        sizes = {"units": n_units, "target_units": target, "held_by_existing": len(held)}
        if need <= 0:
            return UNIT_TOLERANCE, none({**sizes, "met_by_existing": True})
        cols = np.flatnonzero(rel)
        unit = _unit_of(inst, r.level, inst.col_site[cols])
        keep = (unit >= 0) & ~np.isin(unit, list(held))
        cols, unit = cols[keep], unit[keep]
        units, row = np.unique(unit, return_inverse=True)
        A = sparse.csr_matrix((np.ones(len(cols)), (row, cols)), shape=(len(units), n_cols))
        sizes.update(units_in_model=len(units))
        return UNIT_TOLERANCE, _Rows("cover", A, np.ones(len(units)), np.array([float(need)]), np.array([UNIT_TOLERANCE]), sizes)

    if isinstance(r, CoverageShare):
        g = inst.problem.people[r.group].to_numpy(dtype=float)
        total = float(g.sum())
        tol = PEOPLE_TOLERANCE * max(1.0, total)
        reach = inst.problem.reach
        covered = reach.covered(r.threshold_s, fixed_r) if len(fixed_r) else np.zeros(len(g), bool)
        need = r.pct / 100.0 * total - float(g[covered].sum())
        sizes = {"demand": len(g), "demand_covered_by_existing": int(covered.sum())}
        if need <= tol:
            return tol, none({**sizes, "met_by_existing": True})
        cols = np.flatnonzero(rel)
        sites, inverse = np.unique(inst.col_site[cols], return_inverse=True)
        within = reach.within(r.threshold_s, sites).tocsc()[:, inverse].tocsr()  # demand x relevant column
        keep = ~covered & (g > 0) & (within.getnnz(axis=1) > 0)
        rows = np.flatnonzero(keep)
        part = within[rows].tocoo()
        A = sparse.csr_matrix((np.ones(part.nnz), (part.row, cols[part.col])), shape=(len(rows), n_cols))
        weight = g[rows]
        sizes["demand_in_model"] = len(rows)
        if reduce and len(rows):
            A, (weight,), _ = merge_identical_rows(A, weight)
        sizes["demand_after_merge"] = A.shape[0]
        return tol, _Rows("cover", A, weight, np.array([need]), np.array([tol]), sizes)

    if isinstance(r, Quantity):
        values = inst.attr_col[r.attribute]
        fixed_values = inst.attr_site[r.attribute][fixed_r]
        if not r.per_unit:
            required = _district_required(inst, r)
            tol = PEOPLE_TOLERANCE * max(1.0, required)
            need = required - float(fixed_values.sum())
            sizes = {"required": required, "existing_amount": float(fixed_values.sum())}
            if need <= tol:
                return tol, none({**sizes, "met_by_existing": True})
            cols = np.flatnonzero(rel & (values > 0))
            Q = sparse.csr_matrix((values[cols], (np.zeros(len(cols), np.int64), cols)), shape=(1, n_cols))
            return tol, _Rows("add", Q, np.zeros(1), np.array([need]), np.array([tol]), sizes)
        units, required = _required_per_unit(inst, r)
        tol = PEOPLE_TOLERANCE * np.maximum(1.0, required)
        existing = np.zeros(len(inst.universe[r.level]))
        fixed_unit = _unit_of(inst, r.level, fixed_r)
        inside = fixed_unit >= 0
        np.add.at(existing, fixed_unit[inside], fixed_values[inside])
        need = required - existing[units]
        open_rows = need > tol
        sizes = {"units": len(units), "units_met_by_existing": int((~open_rows).sum())}
        if not open_rows.any():
            return tol, none({**sizes, "met_by_existing": True})
        row_of_unit = np.full(len(inst.universe[r.level]), -1, dtype=np.int64)
        row_of_unit[units[open_rows]] = np.arange(int(open_rows.sum()))
        cols = np.flatnonzero(rel & (values > 0))
        col_unit = _unit_of(inst, r.level, inst.col_site[cols])
        col_row = np.where(col_unit >= 0, row_of_unit[np.maximum(col_unit, 0)], -1)
        on = col_row >= 0
        Q = sparse.csr_matrix((values[cols[on]], (col_row[on], cols[on])), shape=(int(open_rows.sum()), n_cols))
        sizes["units_in_model"] = int(open_rows.sum())
        return tol, _Rows("add", Q, np.zeros(Q.shape[0]), need[open_rows], tol[open_rows], sizes)

    # Ratio: sum(n) >= s sum(d), as sum((n - s d) x) >= s D0 - N0
    share = r.share_pct / 100.0
    n_col, d_col = inst.attr_col[r.numerator], inst.attr_col[r.denominator]
    n0, d0 = float(inst.attr_site[r.numerator][fixed_r].sum()), float(inst.attr_site[r.denominator][fixed_r].sum())
    coef = np.where(rel, n_col - share * d_col, 0.0)
    tol = PEOPLE_TOLERANCE * max(1.0, share * (d0 + float(d_col[rel].sum())))
    need = share * d0 - n0
    sizes = {"existing_numerator": n0, "existing_denominator": d0}
    if need <= tol and not (coef < 0).any():  # met, and no facility could break it
        return tol, none({**sizes, "met_by_existing": True})
    cols = np.flatnonzero(coef != 0)
    Q = sparse.csr_matrix((coef[cols], (np.zeros(len(cols), np.int64), cols)), shape=(1, n_cols))
    sizes["met_by_existing"] = bool(need <= tol)
    return tol, _Rows("add", Q, np.zeros(1), np.array([need]), np.array([tol]), sizes)


def _useful(inst: _Instance) -> np.ndarray:
    """Columns that enter some row (the others are never worth opening: costs are >= 0)."""
    used = np.zeros(inst.n_cols, bool)
    for rows in inst.rows:
        if rows.family != "none":
            used[np.unique(rows.matrix.indices)] = True
    return used | ~inst.col_new  # closable columns stay: closing them is the decision


def _undominated(inst: _Instance) -> np.ndarray:
    """Columns kept after leaving out dominated ones, kind by kind (see the module docstring, reduction 4)."""
    active = np.ones(inst.n_cols, bool)
    covers = [rows.matrix for rows in inst.rows if rows.family == "cover"]
    adds = [rows.matrix for rows in inst.rows if rows.family == "add"]
    for kind in inst.build:
        cols = np.flatnonzero(inst.col_new & (inst.col_kind == kind))
        if len(cols) == 0:
            continue
        M = sparse.vstack([m[:, cols] for m in covers]).tocsc() if covers else sparse.csc_matrix((0, len(cols)))
        Q = sparse.vstack([m[:, cols] for m in adds]).tocsc() if adds else sparse.csc_matrix((0, len(cols)))
        Q.eliminate_zeros()
        q_zero = Q.getnnz(axis=0) == 0
        negative = Q.copy()
        negative.data = (negative.data < 0).astype(float)
        negative.eliminate_zeros()
        q_nonneg = negative.getnnz(axis=0) == 0
        active[cols[_dominated(M, inst.col_cost[cols], q_zero, q_nonneg)]] = False
    return active


def _dominated(M: sparse.spmatrix, cost: np.ndarray, q_zero: np.ndarray, q_nonneg: np.ndarray) -> np.ndarray:
    """Columns another column beats: covers a superset of its rows at no higher cost (it adds nothing elsewhere)."""
    M = sparse.csc_matrix(M, dtype=np.float64)
    M.eliminate_zeros()
    M.data[:] = 1.0
    size = M.getnnz(axis=0)
    beaten = (size == 0) & q_zero
    candidates = np.flatnonzero(q_zero & (size > 0))
    if len(candidates) == 0 or not q_nonneg.any():
        return beaten
    overlap = (M[:, candidates].T @ M[:, q_nonneg]).tocoo()
    j, k, shared = candidates[overlap.row], np.flatnonzero(q_nonneg)[overlap.col], overlap.data
    pick = (j != k) & (shared == size[j])
    j, k = j[pick], k[pick]
    wins = (cost[k] < cost[j]) | ((cost[k] == cost[j]) & ((size[k] > size[j]) | ((size[k] == size[j]) & (k < j))))
    beaten[j[wins]] = True
    return beaten


# --------------------------------------------------------------------------- values of the requirements


def _evaluate(inst: _Instance, open_cols: np.ndarray) -> list[tuple[float, bool]]:
    """Each requirement's value and whether it holds, with the fixed facilities and the open columns, from the raw data."""
    return [_evaluate_one(inst, i, open_cols) for i in range(len(inst.requirements))]


def _evaluate_one(inst: _Instance, i: int, open_cols: np.ndarray) -> tuple[float, bool]:
    r, tol = inst.requirements[i], inst.tol[i]
    open_cols = np.asarray(open_cols, dtype=bool)
    sites = np.r_[inst.fixed, inst.col_site[open_cols]].astype(np.int64)
    kinds = np.r_[inst.site_kind[inst.fixed], inst.col_kind[open_cols]]
    relevant = np.isin(kinds, r.kinds)
    if isinstance(r, UnitShare):
        n_units = len(inst.universe[r.level])
        held = set(_unit_of(inst, r.level, sites[relevant]).tolist()) - {-1}
        target = math.ceil(r.share_pct / 100.0 * n_units - 1e-9)
        return (100.0 * len(held) / n_units if n_units else 100.0), len(held) >= target
    if isinstance(r, CoverageShare):
        g = inst.problem.people[r.group].to_numpy(dtype=float)
        total = float(g.sum())
        reached = float(g[inst.problem.reach.covered(r.threshold_s, sites[relevant])].sum()) if relevant.any() else 0.0
        return (100.0 * reached / total if total else 100.0), reached >= r.pct / 100.0 * total - tol
    values = {a: np.r_[inst.attr_site[a][inst.fixed], inst.attr_col[a][open_cols]] for a in inst.attr_col}
    if isinstance(r, Quantity):
        amounts = values[r.attribute][relevant]
        if not r.per_unit:
            total = float(amounts.sum())
            required = _district_required(inst, r)
            if r.per_group is None:
                value = total
            else:
                people = float(inst.problem.people[r.per_group].sum()) / float(r.per_people)
                value = total / people if people else math.nan
            return value, total >= required - tol
        units, required = _required_per_unit(inst, r)
        unit = _unit_of(inst, r.level, sites[relevant])
        inside = unit >= 0
        per_unit = np.bincount(unit[inside], weights=amounts[inside], minlength=len(inst.universe[r.level]))[units]
        ok = per_unit >= required - tol
        return (100.0 * ok.mean() if len(ok) else 100.0), bool(ok.all())
    num, den = float(values[r.numerator][relevant].sum()), float(values[r.denominator][relevant].sum())
    return (100.0 * num / den if den else math.nan), num - r.share_pct / 100.0 * den >= -tol


def _pick_per_site(inst: _Instance, score: np.ndarray) -> np.ndarray:
    """Open the columns with a positive score; with one_per_site, only the best new one at each site."""
    pick = score > 0
    if inst.one_per_site:
        new = np.flatnonzero(pick & inst.col_new)
        if len(new):
            order = new[np.lexsort((-score[new], inst.col_site[new]))]
            first = np.r_[True, inst.col_site[order][1:] != inst.col_site[order][:-1]]
            pick[new] = False
            pick[order[first]] = True
    return pick


def _best(inst: _Instance, i: int) -> tuple[float, bool]:
    """Requirement ``i`` at its best: its value with the columns that favour it most open, and whether it can hold."""
    r = inst.requirements[i]
    rel = inst.relevant(r)
    if isinstance(r, (UnitShare, CoverageShare)):
        return _evaluate_one(inst, i, _pick_per_site(inst, rel.astype(float)))
    if isinstance(r, Quantity):
        return _evaluate_one(inst, i, _pick_per_site(inst, np.where(rel, inst.attr_col[r.attribute], 0.0)))
    share = r.share_pct / 100.0
    n_col, d_col = inst.attr_col[r.numerator], inst.attr_col[r.denominator]
    _, can = _evaluate_one(inst, i, _pick_per_site(inst, np.where(rel, n_col - share * d_col, 0.0)))
    # the best share itself (Dinkelbach): open what beats the current share, until it stops rising
    fixed_r = inst.fixed_of(r)
    n0, d0 = float(inst.attr_site[r.numerator][fixed_r].sum()), float(inst.attr_site[r.denominator][fixed_r].sum())
    ratio = n0 / d0 if d0 else 0.0
    best = math.nan if not d0 else 100.0 * ratio
    for _ in range(100):
        pick = _pick_per_site(inst, np.where(rel, n_col - ratio * d_col, 0.0))
        num, den = n0 + float(n_col[pick].sum()), d0 + float(d_col[pick].sum())
        if not den or num / den <= ratio + 1e-12:
            break
        ratio, best = num / den, 100.0 * num / den
    return best, can


def _unreachable_line(inst: _Instance, i: int, best: float) -> str:
    r = inst.requirements[i]
    text = f"{r.id!r} ({r.describe()}): at most {best:.4g}"
    if isinstance(r, UnitShare):
        n_units = len(inst.universe[r.level])
        return text + f" % ({round(best * n_units / 100)} of {n_units} {r.level} units can hold one)"
    if isinstance(r, CoverageShare):
        return text + f" % of {r.group} within {r.threshold_min:g} min"
    if isinstance(r, Quantity):
        if r.per_unit:
            units, required = _required_per_unit(inst, r)
            everything = _pick_per_site(inst, np.where(inst.relevant(r), inst.attr_col[r.attribute], 0.0))
            sites = np.r_[inst.fixed, inst.col_site[everything]].astype(np.int64)
            kinds = np.r_[inst.site_kind[inst.fixed], inst.col_kind[everything]]
            amounts = np.r_[inst.attr_site[r.attribute][inst.fixed], inst.attr_col[r.attribute][everything]]
            relevant = np.isin(kinds, r.kinds)
            unit = _unit_of(inst, r.level, sites[relevant])
            inside = unit >= 0
            got = np.bincount(unit[inside], weights=amounts[relevant][inside], minlength=len(inst.universe[r.level]))[units]
            short = [inst.universe[r.level][u] for u in units[got < required - inst.tol[i][np.arange(len(units))]]]
            return text + f" % of {r.level} units can meet it; short even with every candidate: {', '.join(short[:10])}" + (
                f" and {len(short) - 10} more" if len(short) > 10 else "")
        return text + f" {r.value_unit}"
    return text + " %"


def _check_reachable(inst: _Instance) -> list[tuple[float, bool]]:
    best = [_best(inst, i) for i in range(len(inst.requirements))]
    failing = [i for i, (_, can) in enumerate(best) if not can]
    if failing:
        raise RequirementsUnreachable(
            [(inst.requirements[i].id, best[i][0]) for i in failing],
            [_unreachable_line(inst, i, best[i][0]) for i in failing],
        )
    return best


# --------------------------------------------------------------------------- greedy


class _Progress:
    """How far the open columns take each row of the model, and what each column would add."""

    def __init__(self, inst: _Instance, cols: np.ndarray, open_cols: np.ndarray):
        self.inst = inst
        self.cols = cols
        self.covers, self.adds = [], []
        n_reqs = 0
        for rows in inst.rows:
            if rows.family == "none":
                continue
            n_reqs += 1
            if rows.family == "cover":
                A = rows.matrix.tocsc()
                count = np.asarray(A[:, np.flatnonzero(open_cols)].sum(axis=1)).ravel()
                self.covers.append({"A": A[:, cols], "g": rows.weight, "count": count, "need": float(rows.need[0]), "tol": float(rows.tol[0])})
            else:
                Q = rows.matrix.tocsc()
                level = np.asarray(Q[:, np.flatnonzero(open_cols)].sum(axis=1)).ravel()
                sub = Q[:, cols].tocsr()
                magnitude = np.asarray(abs(sub).sum(axis=1)).ravel() / np.maximum(1, sub.getnnz(axis=1))
                norm = np.maximum.reduce([rows.need, rows.tol, magnitude])
                self.adds.append({"Q": sub, "Qc": sub.tocsc(), "need": rows.need, "tol": rows.tol, "level": level,
                                  "norm": norm, "share": 1.0 / len(rows.need)})

    def met(self) -> bool:
        for c in self.covers:
            if float(c["g"][c["count"] > 0].sum()) < c["need"] - c["tol"]:
                return False
        return all((a["level"] >= a["need"] - a["tol"]).all() for a in self.adds)

    def gains(self, capped: bool = True) -> np.ndarray:
        """What each of ``cols`` adds to the shortfalls (each requirement's counts 1), capped at what is missing."""
        gain = np.zeros(len(self.cols))
        for c in self.covers:
            uncovered = c["count"] == 0
            have = float(c["g"][~uncovered].sum())
            new = c["A"].T @ (c["g"] * uncovered)
            if capped:
                gain += (np.minimum(have + new, c["need"]) - min(have, c["need"])) / c["need"]
            else:
                gain += new / c["need"]
        for a in self.adds:
            Q = a["Q"].tocoo()
            level = a["level"][Q.row]
            need = a["need"][Q.row]
            if capped:
                part = np.minimum(level + Q.data, need) - np.minimum(level, need)
            else:
                part = Q.data
            gain += np.bincount(Q.col, weights=part / a["norm"][Q.row] * a["share"], minlength=len(self.cols))
        return gain

    def open(self, k: int, sign: float = 1.0) -> None:
        """Open (``sign=1``) or close (``-1``) column ``k`` of ``cols``."""
        for c in self.covers:
            A = c["A"]
            c["count"][A.indices[A.indptr[k]:A.indptr[k + 1]]] += int(sign)
        for a in self.adds:
            Qc = a["Qc"]
            s, e = Qc.indptr[k], Qc.indptr[k + 1]
            a["level"][Qc.indices[s:e]] += sign * Qc.data[s:e]

    def redundant(self, k: int) -> bool:
        """Closing column ``k`` keeps every row holding."""
        for c in self.covers:
            A = c["A"]
            rows = A.indices[A.indptr[k]:A.indptr[k + 1]]
            lost = float(c["g"][rows[c["count"][rows] == 1]].sum())
            if float(c["g"][c["count"] > 0].sum()) - lost < c["need"] - c["tol"]:
                return False
        for a in self.adds:
            Qc = a["Qc"]
            s, e = Qc.indptr[k], Qc.indptr[k + 1]
            level = a["level"].copy()
            level[Qc.indices[s:e]] -= Qc.data[s:e]
            if ((level < a["need"] - a["tol"]) & (a["level"] >= a["need"] - a["tol"])).any():
                return False
        return True


def _greedy_order(inst: _Instance, cols: np.ndarray, open_cols: np.ndarray, *, until_met: bool) -> tuple[list[int], bool]:
    """Columns of ``cols`` in greedy order (best capped gain per cost); stops when all holds (``until_met``)."""
    state = _Progress(inst, cols, open_cols)
    cost = inst.col_cost[cols]
    available = np.ones(len(cols), bool)
    taken_sites: set[int] = set()
    order: list[int] = []
    while available.any():
        if until_met and state.met():
            return order, True
        gain = state.gains(capped=True)
        if not until_met and not (gain[available] > 1e-12).any():
            gain = state.gains(capped=False)
        score = np.where(available, gain / np.maximum(cost, 1e-9), -np.inf)
        k = int(np.argmax(score))
        if until_met and not gain[k] > 1e-12:
            return order, False
        order.append(k)
        available[k] = False
        state.open(k)
        if inst.one_per_site and inst.col_new[cols[k]]:
            taken_sites.add(int(inst.col_site[cols[k]]))
            available &= ~(inst.col_new[cols] & np.isin(inst.col_site[cols], list(taken_sites)))
    return order, (state.met() if until_met else True)


def _drop_redundant(inst: _Instance, open_cols: np.ndarray, *, only: np.ndarray | None = None) -> np.ndarray:
    """Close open columns (most expensive first) while every row still holds; ``only``: consider these columns alone."""
    open_cols = open_cols.copy()
    cols = np.flatnonzero(inst.active)
    state = _Progress(inst, cols, open_cols)
    where = {int(c): k for k, c in enumerate(cols)}
    trial = np.flatnonzero(open_cols & inst.active if only is None else open_cols & inst.active & only)
    for c in trial[np.lexsort((trial, -inst.col_cost[trial]))]:
        k = where[int(c)]
        if state.redundant(k):
            state.open(k, sign=-1.0)
            open_cols[c] = False
    return open_cols


def _greedy(inst: _Instance) -> np.ndarray | None:
    """The greedy plan (closable columns kept to start with), redundant columns dropped; None if it got stuck."""
    cols = np.flatnonzero(inst.active & inst.col_new)
    start = ~inst.col_new & inst.active
    order, met = _greedy_order(inst, cols, start, until_met=True)
    if not met:
        return None
    open_cols = start.copy()
    open_cols[cols[order]] = True
    return _drop_redundant(inst, open_cols)


# --------------------------------------------------------------------------- the exact model


def _model(inst: _Instance, start_cols: np.ndarray | None):
    """The MIP over the active columns; returns (model, active column indices)."""
    cols = np.flatnonzero(inst.active)
    position = np.full(inst.n_cols, -1, dtype=np.int64)
    position[cols] = np.arange(len(cols))
    build = ModelBuilder()
    for label in (*inst.build, None):
        members = cols[inst.col_new[cols] & (inst.col_kind[cols] == label)] if label else cols[~inst.col_new[cols]]
        if len(members):
            build.cols(len(members), f"x_{label}" if label else "keep", c=inst.col_cost[members], integer=True)
    for i, rows in enumerate(inst.rows):
        if rows.family == "none":
            continue
        M = rows.matrix[:, cols].tocsr()
        M.eliminate_zeros()
        live = M.getnnz(axis=1) > 0
        if rows.family == "cover":
            M, g = M[live], rows.weight[live]
            coo = M.tocoo()
            need, tol = float(rows.need[0]), float(rows.tol[0])
            if len(g) and need - tol > float(g.sum()) - float(g.min()):  # every row is needed: set-covering rows
                build.rows(coo.row, coo.col, 1.0, M.shape[0], lo=1.0)
            else:
                z = build.cols(M.shape[0], f"z{i}")
                n_rows = M.shape[0]
                build.rows(np.r_[coo.row, np.arange(n_rows)], np.r_[coo.col, z], np.r_[-np.ones(coo.nnz), np.ones(n_rows)], n_rows, hi=0.0)
                build.rows(np.zeros(n_rows), z, g, 1, lo=need - tol)
        else:
            coo = M.tocoo()
            build.rows(coo.row, coo.col, coo.data, M.shape[0], lo=rows.need - rows.tol)
    if inst.one_per_site:
        new = cols[inst.col_new[cols]]
        _, slot, counts = np.unique(inst.col_site[new], return_inverse=True, return_counts=True)
        shared = counts[slot] > 1
        if shared.any():
            _, row = np.unique(slot[shared], return_inverse=True)
            build.rows(row, position[new[shared]], 1.0, int(row.max()) + 1, hi=1.0)
    start = None
    if start_cols is not None:
        start = {int(k): float(start_cols[c]) for k, c in enumerate(cols)}
    return build.model("least_cost", "min", start=start), cols


def _no_model_stats(build_s: float, solver: SolverOptions, name: str) -> SolverStats:
    return SolverStats(solver=name, status="optimal", objective=0.0, bound=0.0, gap=0.0, solve_s=0.0, build_s=build_s,
                       n_variables=0, n_integer=0, n_constraints=0, n_nonzeros=0, time_limit_s=solver.time_limit_s,
                       mip_gap=solver.mip_gap)


def least_cost(
    problem: Problem,
    requirements: Requirement | Sequence[Requirement],
    *,
    options: LeastCostOptions = LeastCostOptions(),
    solver: SolverOptions = SolverOptions(),
) -> LeastCostPlan:
    """The cheapest new facilities (per kind) that make every requirement hold, exactly (see the module docstring).

    Parameters
    ----------
    problem
        Demand, sites (existing facilities and candidates) and walking times
        (:class:`~geoplan.optimize.problem.Problem`). Existing facilities
        count toward every requirement that lists their kind.
    requirements
        :class:`UnitShare`, :class:`CoverageShare`, :class:`Quantity`,
        :class:`Ratio` values (:mod:`geoplan.optimize.requirements`).
    options
        :class:`LeastCostOptions`: unit codes of sites and demand, the kinds
        to build and their costs, closable facilities, reductions.
    solver
        :class:`~geoplan.optimize.options.SolverOptions` (time limit, gap, solver).

    Raises
    ------
    RequirementsUnreachable
        (an :class:`~geoplan.errors.InfeasibleError`) a requirement beyond
        every candidate; ``.unreachable`` lists ``(id, best achievable)``.
    InfeasibleError
        Each requirement can be met, but not all together (a Ratio against a
        Quantity, or ``one_per_site``).
    InputError
        Missing unit codes or attributes, unknown groups or kinds, bad values.
    """
    t0 = time.perf_counter()
    inst = _prepare(problem, requirements, options)
    best = _check_reachable(inst)
    t_greedy = time.perf_counter()
    greedy = _greedy(inst)
    greedy_cost = None if greedy is None else float(inst.col_cost[greedy].sum())
    sizes = {**inst.sizes, "greedy_s": time.perf_counter() - t_greedy}
    if not any(rows.family != "none" for rows in inst.rows):
        open_cols = np.zeros(inst.n_cols, bool)  # every requirement already holds: nothing to build, every closable closes
        stats = _no_model_stats(time.perf_counter() - t0, solver, "none (every requirement already holds)")
    else:
        mip, cols = _model(inst, greedy if (options.warm_start and greedy is not None) else None)
        build_s = time.perf_counter() - t0
        log.info("least_cost: %d variables, %d constraints, %d nonzeros", mip.n_cols, mip.n_rows, mip.A.nnz)
        solution = solve_model(mip, solver)
        if solution.values is None:
            raise InfeasibleError(
                "No plan meets all the requirements together, though each one alone can be met ("
                + ", ".join(r.id for r in inst.requirements)
                + "): a Ratio that the facilities another requirement needs would break, or one_per_site keeping two "
                "kinds from the same candidates. Lower a target, give new facilities other attributes, or allow "
                "several kinds per site."
            )
        stats = dataclasses.replace(solution.stats, build_s=build_s)
        open_cols = np.zeros(inst.n_cols, bool)
        open_cols[cols] = solution.values[: len(cols)] > 0.5
        open_cols = _drop_redundant(inst, open_cols, only=inst.col_cost == 0)  # free sites that add nothing stay closed
        if stats.status == "time_limit":
            log.warning("least_cost: time limit of %s s reached; returning the best plan found (gap %s)", solver.time_limit_s,
                        "unknown" if stats.gap is None else f"{100 * stats.gap:.2f} %")
    return _plan(inst, open_cols, best, stats, greedy_cost, "exact", sizes)


def greedy_least_cost(
    problem: Problem,
    requirements: Requirement | Sequence[Requirement],
    *,
    options: LeastCostOptions = LeastCostOptions(),
) -> LeastCostPlan:
    """The greedy plan for the same requirements: the baseline beside :func:`least_cost` (and its starting solution).

    Adds, one at a time, the candidate of the best gain per cost (what it adds
    to the shortfalls still open, each requirement counting 1) until every
    requirement holds, then closes, most expensive first, every site the
    others make redundant. Same parameters as :func:`least_cost`; the plan's
    ``solver.status`` is ``"heuristic"`` (no bound). Raises
    :class:`RequirementsUnreachable` like it, and :class:`InfeasibleError`
    when no site adds anything while a requirement is still short (a Ratio
    against a Quantity: :func:`least_cost` decides those exactly).
    """
    t0 = time.perf_counter()
    inst = _prepare(problem, requirements, options)
    best = _check_reachable(inst)
    t1 = time.perf_counter()
    open_cols = _greedy(inst)
    if open_cols is None:
        raise InfeasibleError(
            "The greedy rule stopped with requirements still short and no site adding anything to them; "
            "solve it exactly with least_cost(...), which also says whether any plan meets them all."
        )
    cost = float(inst.col_cost[open_cols].sum())
    stats = SolverStats(solver="greedy", status="heuristic", objective=cost, bound=None, gap=None, solve_s=time.perf_counter() - t1,
                        build_s=t1 - t0, n_variables=int(inst.active.sum()), n_integer=int(inst.active.sum()), n_constraints=0,
                        n_nonzeros=0, time_limit_s=None, mip_gap=0.0)
    return _plan(inst, open_cols, best, stats, cost, "greedy", dict(inst.sizes))


# --------------------------------------------------------------------------- the result


def _plan(inst: _Instance, open_cols: np.ndarray, best, stats: SolverStats, greedy_cost, method: str, sizes: dict) -> LeastCostPlan:
    today = ~inst.col_new  # closable facilities are open today
    before = _evaluate(inst, today)
    after = _evaluate(inst, open_cols)
    failed = [r.id for r, (_, ok) in zip(inst.requirements, after) if not ok]
    if failed:
        raise SolverError(
            f"The {method} plan does not meet requirement(s) {failed} when checked against the data; this is a bug "
            "in geoplan (please report it with the requirements)."
        )
    reqs = inst.requirements
    table = pd.DataFrame(
        {
            "type": [type(r).__name__ for r in reqs],
            "description": [r.describe() for r in reqs],
            "kinds": [", ".join(r.kinds) for r in reqs],
            "target": [r.target for r in reqs],
            "value_unit": [r.value_unit for r in reqs],
            "before": [round(v, 1) if np.isfinite(v) else v for v, _ in before],
            "after": [round(v, 1) if np.isfinite(v) else v for v, _ in after],
            "best": [round(v, 1) if np.isfinite(v) else v for v, _ in best],
            "passed_before": [ok for _, ok in before],
            "passed": [ok for _, ok in after],
        },
        index=pd.Index([r.id for r in reqs], name="id"),
    )
    phases = _phases(inst, open_cols, before)
    ids = inst.problem.sites.index
    opened = {}
    for kind in inst.build:
        in_order = phases.loc[phases["kind"] == kind, "site_id"].tolist()
        opened[kind] = pd.Index(in_order, dtype=object, name="site_id")
    closed = pd.Index(ids[inst.col_site[~inst.col_new & ~open_cols]], name="site_id")
    return LeastCostPlan(
        opened=MappingProxyType(opened), closed=closed, cost=float(inst.col_cost[open_cols].sum()), greedy_cost=greedy_cost,
        method=method, solver=stats, reductions=MappingProxyType(sizes), requirement_table=table, phase_table=phases,
    )


def _phases(inst: _Instance, open_cols: np.ndarray, before) -> pd.DataFrame:
    """The new sites in build order (see the module docstring), with what each adds to every requirement."""
    new = np.flatnonzero(open_cols & inst.col_new)
    kept = open_cols & ~inst.col_new
    order, _ = _greedy_order(inst, new, kept, until_met=False) if len(new) else ([], True)
    reqs = inst.requirements
    columns = ["phase", "site_id", "kind", "cost", "cumulative_cost", *[f"gain_{r.id}" for r in reqs], "met"]
    rows = []
    now = kept.copy()
    previous = _evaluate(inst, now)
    spent = 0.0
    for phase, k in enumerate(order, start=1):
        c = new[k]
        now[c] = True
        values = _evaluate(inst, now)
        spent += float(inst.col_cost[c])
        row = {"phase": phase, "site_id": inst.problem.sites.index[inst.col_site[c]], "kind": inst.col_kind[c],
               "cost": float(inst.col_cost[c]), "cumulative_cost": spent}
        for r, (v1, _), (v0, _) in zip(reqs, values, previous):
            row[f"gain_{r.id}"] = (v1 - v0) if (np.isfinite(v1) and np.isfinite(v0)) else math.nan
        row["met"] = sum(ok for _, ok in values)
        rows.append(row)
        previous = values
    return pd.DataFrame(rows, columns=columns)
