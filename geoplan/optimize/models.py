r"""The models: maximum coverage, target coverage, p-median, capacities, two kinds, consolidation.

Every model is built from a :class:`~geoplan.optimize.problem.Problem` as one
:class:`~geoplan.optimize.solve.MipModel` (arrays), one block of variables and
constraints per planned kind, plus the rules that tie kinds together. Notation
for one kind: demand rows :math:`i` with weight :math:`w_i` (priority-weighted
older people), target people :math:`g_i`, capacity need :math:`d_i`;
candidate sites :math:`j` with cost :math:`c_j`, capacity :math:`C_j`, and
:math:`N_i` the candidates within the kind's threshold of :math:`i`;
:math:`x_j \in \{0, 1\}` opens :math:`j`.

**MCLP** (maximum coverage, Church & ReVelle 1974), uncapacitated:

.. math::

   \max \sum_i w_i z_i \quad\text{s.t.}\quad z_i \le \sum_{j \in N_i} x_j,\;
   \sum_j x_j \le p,\; \sum_j c_j x_j \le B,\; 0 \le z_i \le 1.

:math:`z_i` may be continuous: for integer :math:`x` the best :math:`z_i` is
:math:`\min(1, \sum_{j \in N_i} x_j) \in \{0, 1\}`. Demand within the
threshold of an existing facility is already covered: it is a constant of the
objective and is not in the model.

**Target coverage** (LSCP-style): the fewest new sites (or the least cost)
such that at least :math:`T` people of a group are within the threshold:

.. math::

   \min \sum_j c_j x_j \quad\text{s.t.}\quad z_i \le \sum_{j \in N_i} x_j,\;
   \sum_i g_i z_i \ge T - G_0,\; 0 \le z_i \le 1,

with :math:`G_0` the people the existing facilities already cover. With
:math:`T` = every coverable person this is the location set covering problem
(Toregas et al. 1971). A second stage (``refine``) keeps that count or cost and
maximises :math:`\sum_i w_i z_i`, so among the cheapest plans the one reaching
the most weighted people is returned.

**p-median** (Hakimi 1964): the least total weighted walk,

.. math::

   \min \sum_i \sum_j w_i (t_{ij} - f_i) a_{ij} + \sum_i w_i f_i
   \quad\text{s.t.}\quad \sum_j a_{ij} \le 1,\; a_{ij} \le x_j,\;
   \sum_j x_j \le p,\; a_{ij} \ge 0,

where :math:`f_i` is the walk to the nearest existing facility, capped at the
reach cutoff (a person with nothing within the cutoff counts the cutoff), and
only pairs with :math:`t_{ij} < f_i` within the cutoff (or, with
``within_threshold``, within the threshold) are variables.

**Capacities**: a site serves at most :math:`C_j` units of need
(:math:`d_i` = people of the capacity group times a use rate); demand is
assigned, in part if need be, only within the threshold:

.. math::

   \max \sum_i \sum_{j} w_i a_{ij} \quad\text{s.t.}\quad \sum_j a_{ij} \le 1,\;
   a_{ij} \le x_j,\; \sum_i d_i a_{ij} \le C_j x_j,

with existing facilities as sites that are always open (their own capacity).
The target model then asks :math:`\sum_{ij} g_i a_{ij} \ge T`, and the
p-median adds the capacity rows to its assignment.

**Two kinds** (stations and canteens): one block per kind, each with its own
threshold, count, budget and capacity; a ``total_budget`` row over all new
sites, and with ``one_per_site`` a row :math:`\sum_k x_{kj} \le 1` per shared
candidate.

**Consolidation**: existing facilities whose catchment (target-group people
within the threshold) is below ``min_catchment`` become variables
(:math:`x_j = 1` keeps them); the model minimises the facilities kept plus
new ones opened (or their cost) such that every group in ``keep_groups`` has
no fewer people within the threshold than today.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from geoplan.errors import InfeasibleError, InputError
from geoplan.optimize.phasing import _limited, _row_min, greedy_cover, greedy_median
from geoplan.optimize.problem import KindSpec, Problem
from geoplan.optimize.reduce import dominated_columns, merge_identical_rows
from geoplan.optimize.solve import MipModel, SolverStats, solve_model

log = logging.getLogger(__name__)

MODELS = ("mclp", "target", "pmedian", "consolidate")


@dataclasses.dataclass(frozen=True)
class Block:
    """One kind's part of a model: which columns are its sites, rows, pairs; and what was reduced."""

    kind: str
    family: str  # "cover" (z per demand row), "assign" (a per demand-site pair) or "median" (radius levels)
    x_cols: np.ndarray
    x_sites: np.ndarray
    x_new: np.ndarray
    fixed: np.ndarray
    closable: np.ndarray
    row_of: np.ndarray  # demand position -> model row (-1: not in the model)
    pair_row: np.ndarray | None = None
    pair_site: np.ndarray | None = None
    pair_cols: np.ndarray | None = None
    objective_x: np.ndarray | None = None  # stage-1 cost coefficients of x (target, consolidate)
    second_c: tuple[np.ndarray, np.ndarray] | None = None  # (columns, coefficients) of the refine objective
    limit_s: float | None = None  # p-median: the longest walk a person is assigned
    sizes: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a solve decided: per kind, new sites opened, existing kept and closed; assignments; solver stats."""

    model: str
    opened: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    closed: dict[str, np.ndarray]
    assignment: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    stats: tuple[SolverStats, ...]
    reductions: dict[str, dict]
    build_s: float

    @property
    def main(self) -> SolverStats:
        return self.stats[0]


class _Builder:
    """Columns and COO row parts of a model, gathered block by block."""

    def __init__(self):
        self.c, self.lo, self.hi, self.integer, self.blocks = [], [], [], [], []
        self.n = 0
        self.parts, self.row_lo, self.row_hi = [], [], []
        self.m = 0
        self.constant = 0.0

    def cols(self, n: int, prefix: str, *, c=0.0, lo=0.0, hi=1.0, integer=False) -> np.ndarray:
        self.c.append(np.broadcast_to(np.asarray(c, dtype=float), (n,)))
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.integer.append(np.full(n, integer))
        self.blocks.append((prefix, self.n, self.n + n))
        self.n += n
        return np.arange(self.n - n, self.n)

    def rows(self, r: np.ndarray, c: np.ndarray, v, n: int, *, lo=-np.inf, hi=np.inf) -> None:
        r = np.asarray(r, dtype=np.int64)
        self.parts.append((r + self.m, np.asarray(c, dtype=np.int64), np.broadcast_to(np.asarray(v, dtype=float), r.shape)))
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.m += n

    def model(self, name: str, sense: str, start=None) -> MipModel:
        r = np.concatenate([p[0] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        c = np.concatenate([p[1] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        v = np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0)
        A = sparse.csr_matrix((v, (r, c)), shape=(self.m, self.n))
        A.sum_duplicates()
        cat = lambda parts, dtype=float: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        return MipModel(
            name=name, sense=sense, c=cat(self.c), A=A, row_lo=cat(self.row_lo), row_hi=cat(self.row_hi),
            col_lo=cat(self.lo), col_hi=cat(self.hi), integer=cat(self.integer, bool), constant=self.constant,
            blocks=tuple(self.blocks), start=start,
        )


def check_request(problem: Problem, *, model: str, one_per_site: bool = False) -> None:
    """Clear errors for requests that cannot be solved: unknown model, p beyond the candidates, missing options."""
    if model not in MODELS:
        raise InputError(f"Unknown model {model!r}; use one of {', '.join(MODELS)}.")
    for spec in problem.specs:
        n_candidates = len(problem.candidates_for(spec.kind))
        if spec.p is not None and spec.p > n_candidates:
            raise InputError(
                f"p = {spec.p} new {spec.kind} sites asked for, but there are only {n_candidates} candidate sites. "
                "Lower p, or add candidates (e.g. geoplan.candidates_from_network(region.network, region.boundary, spacing_m=200))."
            )
        if model in ("mclp", "pmedian") and spec.p is None and spec.budget is None:
            raise InputError(f"The {model} model needs p (how many new {spec.kind} sites) or a budget for {spec.kind}.")
        if model == "target" and spec.target_pct is None:
            raise InputError(f"The target model needs target_pct for {spec.kind} (e.g. 80 for 80 % of {spec.target_group}).")
        if model == "consolidate":
            if spec.min_catchment is None:
                raise InputError(
                    f"Consolidation needs min_catchment for {spec.kind}: existing sites with fewer "
                    f"{spec.target_group} people within {spec.threshold_min:g} min may close."
                )
            if spec.capacitated:
                raise InputError("Consolidation is uncapacitated; leave capacity unset.")
    if one_per_site and len(problem.specs) < 2:
        log.info("optimize: one_per_site has no effect with a single kind")


def closable_sites(problem: Problem, spec: KindSpec) -> tuple[np.ndarray, np.ndarray]:
    """Existing sites of ``spec.kind`` whose catchment is below ``spec.min_catchment``; and every catchment."""
    sites = problem.sites
    own = np.flatnonzero((sites["status"].to_numpy() == "existing") & (sites["kind"].to_numpy() == spec.kind))
    within = problem.within(spec.threshold_s, own)
    catchment = np.asarray(within.T @ problem.people[spec.target_group].to_numpy(dtype=float)).ravel()
    if spec.min_catchment is None:
        return own[:0], catchment
    return own[catchment < spec.min_catchment], catchment


def max_achievable(problem: Problem, spec: KindSpec) -> float:
    """People of ``spec.target_group`` within the threshold with every candidate and facility open."""
    sites = np.concatenate([problem.existing_for(spec.kind), problem.candidates_for(spec.kind)])
    covered = problem.within(spec.threshold_s, sites).getnnz(axis=1) > 0
    return float(problem.people[spec.target_group].to_numpy(dtype=float)[covered].sum())


def build_model(
    problem: Problem,
    *,
    model: str = "mclp",
    reduce: bool = True,
    one_per_site: bool = False,
    total_budget: float | None = None,
    within_threshold: bool = False,
    minimize: str = "count",
    keep_groups: Sequence[str] = ("pop_60", "pop_80"),
    warm_start: bool = True,
) -> tuple[MipModel, list[Block]]:
    """The model for ``problem`` as arrays, and its blocks (one per kind) for reading the solution back."""
    check_request(problem, model=model, one_per_site=one_per_site)
    if minimize not in ("count", "cost"):
        raise InputError(f"minimize must be 'count' or 'cost', got {minimize!r}.")
    unknown = [g for g in keep_groups if g not in problem.people.columns]
    if unknown:
        raise InputError(f"Unknown population group(s) {unknown} in keep_groups; the demand has {list(problem.people.columns)}.")
    build = _Builder()
    blocks: list[Block] = []
    start: dict[int, float] = {}
    taken: set[int] = set()
    coupled = one_per_site and len(problem.specs) > 1
    sense = "max" if model == "mclp" else "min"
    for spec in problem.specs:
        if model == "pmedian":
            block = _assign_block(build, problem, spec, model=model, reduce=reduce, within_threshold=within_threshold, start=start if warm_start else None, taken=taken if coupled else set())
        elif spec.capacitated:
            block = _assign_block(build, problem, spec, model=model, reduce=reduce, within_threshold=True, minimize=minimize, start=None, taken=set())
        else:
            block = _cover_block(
                build, problem, spec, model=model, reduce=reduce, dominance=not coupled, minimize=minimize,
                keep_groups=keep_groups, start=start if warm_start else None, taken=taken if coupled else set(),
                any_budget=total_budget is not None,
            )
        blocks.append(block)
    if coupled:
        _one_per_site_rows(build, blocks)
    if total_budget is not None:
        if not total_budget >= 0:
            raise InputError(f"total_budget must be >= 0, got {total_budget!r}.")
        cols = np.concatenate([b.x_cols[b.x_new] for b in blocks])
        cost = np.concatenate([problem.sites["cost"].to_numpy(dtype=float)[b.x_sites[b.x_new]] for b in blocks])
        build.rows(np.zeros(len(cols)), cols, cost, 1, hi=total_budget)
    name = f"{model}_" + "_".join(problem.kinds)
    mip = build.model(name, sense, start=start or None)
    if any(b.family == "median" for b in blocks):
        # the radius LP is large and degenerate: interior point solves its root about twice as fast as simplex
        mip = dataclasses.replace(mip, highs_options=(("mip_lp_solver", "ipm"),))
    return mip, blocks


def _cover_block(build, problem, spec, *, model, reduce, dominance, minimize, keep_groups, start, taken, any_budget) -> Block:
    kind, tau = spec.kind, spec.threshold_s
    n = problem.n_demand
    if model == "consolidate":
        closable, _ = closable_sites(problem, spec)
    else:
        closable = np.zeros(0, dtype=np.int64)
    existing = problem.existing_for(kind)
    fixed = np.setdiff1d(existing, closable)
    new = problem.candidates_for(kind)
    var_sites = np.concatenate([closable, new]).astype(np.int64)
    is_new = np.r_[np.zeros(len(closable), bool), np.ones(len(new), bool)]
    site_cost = problem.sites["cost"].to_numpy(dtype=float)[var_sites]

    if model == "target":
        groups = [spec.target_group]
    elif model == "consolidate":
        groups = list(dict.fromkeys([spec.target_group, *keep_groups]))
    else:
        groups = []
    people = problem.people
    need = people[groups].to_numpy(dtype=float) if groups else np.zeros((n, 0))
    weight = problem.weight
    covered_fixed = (problem.within(tau, fixed).getnnz(axis=1) > 0) if len(fixed) else np.zeros(n, bool)
    A = problem.within(tau, var_sites)
    useful = (weight > 0) | (need > 0).any(axis=1)
    keep = ~covered_fixed & (A.getnnz(axis=1) > 0) & useful
    const_w = float(weight[covered_fixed].sum())
    const_need = need[covered_fixed].sum(axis=0)
    sizes = {"demand": n, "candidates": int(is_new.sum()), "closable": len(closable), "existing_fixed": len(fixed),
             "demand_covered_by_existing": int(covered_fixed.sum()), "demand_in_model": int(keep.sum())}
    rows = np.flatnonzero(keep)
    A, w, g = A[rows], weight[rows], need[rows]
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    if reduce and len(rows):
        A, (w, g), group = merge_identical_rows(A, w, g)
        row_of[rows] = group
    sizes["demand_after_merge"] = A.shape[0]
    col_keep = np.ones(len(var_sites), bool)
    if reduce and dominance and len(var_sites):
        budgeted = spec.budget is not None or any_budget or minimize == "cost"
        dom_cost = site_cost if budgeted else np.ones(len(var_sites))
        for klass in (is_new, ~is_new):  # never swap an existing site for a new one (the count of new sites is capped)
            idx = np.flatnonzero(klass)
            if len(idx):
                col_keep[idx[dominated_columns(A[:, idx], dom_cost[idx])]] = False
    sizes["candidates_after_dominance"] = int((col_keep & is_new).sum())
    sizes["closable_after_dominance"] = int((col_keep & ~is_new).sum())
    A = A[:, col_keep].tocsr()
    var_sites, is_new, site_cost = var_sites[col_keep], is_new[col_keep], site_cost[col_keep]
    n_rows, n_x = A.shape

    objective_x = None
    if model == "mclp":
        x = build.cols(n_x, f"x_{kind}", integer=True)
        z = build.cols(n_rows, f"z_{kind}", c=w)
        build.constant += const_w
    else:
        objective_x = site_cost if minimize == "cost" else np.ones(n_x)
        x = build.cols(n_x, f"x_{kind}", c=objective_x, integer=True)
        z = build.cols(n_rows, f"z_{kind}")
    coo = A.tocoo()
    build.rows(np.r_[coo.row, np.arange(n_rows)], np.r_[x[coo.col], z], np.r_[-np.ones(coo.nnz), np.ones(n_rows)], n_rows, hi=0.0)
    if model == "consolidate":
        p_new = spec.p if spec.p is not None else 0
        build.rows(np.zeros(int(is_new.sum())), x[is_new], 1.0, 1, hi=p_new)
    elif spec.p is not None:
        build.rows(np.zeros(int(is_new.sum())), x[is_new], 1.0, 1, hi=spec.p)
    if spec.budget is not None:
        build.rows(np.zeros(int(is_new.sum())), x[is_new], site_cost[is_new], 1, hi=spec.budget)
    total_need = people[groups].to_numpy(dtype=float).sum(axis=0) if groups else np.zeros(0)
    target_rhs = None
    if model == "target":
        target = spec.target_pct / 100.0 * total_need[0]
        best = max_achievable(problem, spec)
        if target > best + 1e-9 * max(1.0, total_need[0]):
            raise TargetUnreachable(spec, target=target, best=best, total=total_need[0])
        rhs = target - const_need[0] - 1e-9 * max(1.0, total_need[0])
        build.rows(np.zeros(n_rows), z, g[:, 0], 1, lo=rhs)
        sizes["target_people"] = target
        target_rhs = rhs
    elif model == "consolidate":
        today_sites = existing
        today = (problem.within(tau, today_sites).getnnz(axis=1) > 0) if len(today_sites) else np.zeros(n, bool)
        for k, group in enumerate(groups):
            today_people = float(people[group].to_numpy(dtype=float)[today].sum())
            rhs = today_people - const_need[k] - 1e-9 * max(1.0, total_need[k])
            build.rows(np.zeros(n_rows), z, g[:, k], 1, lo=rhs)
    if start is not None:
        _cover_start(start, model, spec, A, w, g, x, is_new, site_cost, var_sites, taken, target_rhs if model == "target" else None)
    return Block(
        kind=kind, family="cover", x_cols=x, x_sites=var_sites, x_new=is_new, fixed=fixed, closable=closable,
        row_of=row_of, objective_x=objective_x, second_c=(z, w), sizes=sizes,
    )


def _cover_start(start, model, spec, A, w, g, x, is_new, cost, var_sites, taken, target_rhs) -> None:
    allowed = ~np.isin(var_sites, list(taken)) if taken else np.ones(len(var_sites), bool)
    if model == "consolidate":
        picked = list(np.flatnonzero(~is_new))
    elif model == "mclp":
        picked, _ = greedy_cover(A, w, allowed=allowed & is_new, k=spec.p, cost=cost, budget=spec.budget)
    else:  # target: greedy until the target is met; no start if it is not met within p and the budget
        picked, _ = greedy_cover(A, g[:, 0], allowed=allowed & is_new, k=spec.p, cost=cost, budget=spec.budget, need=g[:, 0], target=target_rhs)
        if g[:, 0][np.asarray(A[:, picked].sum(axis=1)).ravel() > 0].sum() < target_rhs:
            return
    chosen = set(picked)
    for j, col in enumerate(x):
        start[int(col)] = 1.0 if j in chosen else 0.0
    taken.update(int(var_sites[j]) for j in picked if is_new[j])


def _assign_block(build, problem, spec, *, model, reduce, within_threshold, start, taken, minimize="count") -> Block:
    kind, tau = spec.kind, spec.threshold_s
    n = problem.n_demand
    existing = problem.existing_for(kind)
    new = problem.candidates_for(kind).astype(np.int64)
    weight = problem.weight
    capacitated = spec.capacitated
    penalty = float(problem.cutoff_s)
    limit = tau if (within_threshold or model != "pmedian") else penalty
    sizes = {"demand": n, "candidates": len(new), "existing_fixed": len(existing)}
    if capacitated:
        sites = np.r_[new, existing].astype(np.int64)
        is_var = np.r_[np.ones(len(new), bool), np.zeros(len(existing), bool)]
        fallback = np.full(n, penalty)
    else:  # uncapacitated p-median: the nearest existing facility caps every walk
        sites = new
        is_var = np.ones(len(new), bool)
        fallback = np.full(n, penalty)
        if len(existing):
            fallback = np.minimum(fallback, _row_min(_limited(problem.times_s[:, existing], limit)))
    times = _limited(problem.times_s[:, sites], limit)
    if not capacitated:
        coo = times.tocoo()
        keep_pair = coo.data < fallback[coo.row] - 1e-9
        times = sparse.csr_matrix((coo.data[keep_pair], (coo.row[keep_pair], coo.col[keep_pair])), shape=times.shape)
    values = [weight]
    need_group = None
    if capacitated:
        values.append(problem.capacity_demand(kind))
    if model == "target":
        need_group = problem.people[spec.target_group].to_numpy(dtype=float)
        values.append(need_group)
    V = np.column_stack(values)
    useful = (V > 0).any(axis=1) & (times.getnnz(axis=1) > 0)
    if model == "pmedian":
        build.constant += float((weight * fallback).sum())
    rows = np.flatnonzero(useful)
    T, V_rows, f_rows = times[rows], V[rows], fallback[rows]
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    sizes["demand_in_model"] = len(rows)
    if reduce and len(rows):
        total = V_rows.sum(axis=1, keepdims=True)
        shape = np.round(V_rows / np.where(total > 0, total, 1.0), 9)
        extra = np.column_stack([shape, f_rows]) if model == "pmedian" else shape
        T, (V_rows,), group = merge_identical_rows(T, V_rows, with_data=model == "pmedian", extra=extra)
        f_rows = f_rows[np.unique(group, return_index=True)[1]]  # equal within a group (part of the key)
        row_of[rows] = group
    sizes["demand_after_merge"] = T.shape[0]
    if model == "pmedian" and not capacitated:
        return _median_block(build, problem, spec, T, V_rows[:, 0], f_rows, sites, existing, row_of, limit, sizes, start, taken)
    T = T.tocoo()
    n_rows, n_pairs = T.shape[0], T.nnz
    pair_row, pair_pos = T.row.astype(np.int64), T.col.astype(np.int64)
    w_rows = V_rows[:, 0]
    n_x = int(is_var.sum())
    var_pos = np.flatnonzero(is_var)
    x_of_pos = np.full(len(sites), -1, dtype=np.int64)
    if model == "target":
        objective_x = problem.sites["cost"].to_numpy(dtype=float)[sites[var_pos]] if minimize == "cost" else np.ones(n_x)
        x = build.cols(n_x, f"x_{kind}", c=objective_x, integer=True)
    else:
        objective_x = None
        x = build.cols(n_x, f"x_{kind}", integer=True)
    x_of_pos[var_pos] = x
    if model == "pmedian":
        a_cost = w_rows[pair_row] * (T.data - f_rows[pair_row])
        a = build.cols(n_pairs, f"a_{kind}", c=a_cost)
    elif model == "mclp":
        a = build.cols(n_pairs, f"a_{kind}", c=w_rows[pair_row])
    else:
        a = build.cols(n_pairs, f"a_{kind}")
    # each demand row assigned at most once
    build.rows(pair_row, a, 1.0, n_rows, hi=1.0)
    # a_ij <= x_j for sites that may stay closed
    on_var = np.flatnonzero(is_var[pair_pos])
    k = np.arange(len(on_var))
    build.rows(np.r_[k, k], np.r_[a[on_var], x_of_pos[pair_pos[on_var]]], np.r_[np.ones(len(k)), -np.ones(len(k))], len(k), hi=0.0)
    if capacitated:
        capacity = problem.capacity_of(kind, sites)
        need = V_rows[:, 1]
        finite = np.flatnonzero(np.isfinite(capacity))
        slot = np.full(len(sites), -1)
        slot[finite] = np.arange(len(finite))
        on = slot[pair_pos] >= 0
        r = np.r_[slot[pair_pos[on]], slot[var_pos[np.isin(var_pos, finite)]]]
        c = np.r_[a[on], x_of_pos[var_pos[np.isin(var_pos, finite)]]]
        v = np.r_[need[pair_row[on]], -capacity[var_pos[np.isin(var_pos, finite)]]]
        hi = np.where(is_var[finite], 0.0, capacity[finite])
        build.rows(r, c, v, len(finite), hi=hi)
    new_x = np.ones(n_x, bool)
    if spec.p is not None:
        build.rows(np.zeros(n_x), x, 1.0, 1, hi=spec.p)
    site_cost = problem.sites["cost"].to_numpy(dtype=float)[sites[var_pos]]
    if spec.budget is not None:
        build.rows(np.zeros(n_x), x, site_cost, 1, hi=spec.budget)
    if model == "target":
        total = float(need_group.sum())
        target = spec.target_pct / 100.0 * total
        build.rows(np.zeros(n_pairs), a, V_rows[pair_row, -1], 1, lo=target - 1e-9 * max(1.0, total))
        sizes["target_people"] = target
    if start is not None and model == "pmedian" and not capacitated:
        median_times = sparse.csr_matrix((T.data, (pair_row, pair_pos)), shape=(n_rows, len(sites)))
        allowed = ~np.isin(sites, list(taken)) if taken else None
        picked, _ = greedy_median(median_times, w_rows, f_rows, allowed=allowed, k=spec.p)
        if spec.budget is not None and site_cost[picked].sum() > spec.budget:
            picked = []  # over budget: leave the start to the solver
        chosen = set(picked)
        for j, col in enumerate(x):
            start[int(col)] = 1.0 if j in chosen else 0.0
        taken.update(int(sites[j]) for j in picked)
    return Block(
        kind=kind, family="assign", x_cols=x, x_sites=sites[var_pos], x_new=new_x, fixed=existing, closable=np.zeros(0, np.int64),
        row_of=row_of, pair_row=pair_row, pair_site=sites[pair_pos], pair_cols=a, objective_x=objective_x,
        second_c=(a, w_rows[pair_row]), sizes=sizes,
    )


def _median_block(build, problem, spec, T, w_rows, f_rows, sites, existing, row_of, limit, sizes, start, taken) -> Block:
    r"""The uncapacitated p-median in the radius formulation (Elloumi 2010), chained.

    For demand row :math:`i` with distinct walks :math:`D_{i1} < \dots < D_{iK}`
    to candidates (all shorter than its fallback :math:`D_{i,K+1} = f_i`), the
    walk is :math:`D_{i1} + \sum_k (D_{i,k+1} - D_{ik}) u_{ik}`, where
    :math:`u_{ik} \ge 0` is 1 when no site within :math:`D_{ik}` is open:
    :math:`u_{i1} + \sum_{j: t_{ij} = D_{i1}} x_j \ge 1` and
    :math:`u_{ik} - u_{i,k-1} + \sum_{j: t_{ij} = D_{ik}} x_j \ge 0`. Its LP
    bound equals that of the classical assignment model, with one variable and
    three nonzeros per (demand, distinct walk) instead of a dense assignment,
    and simplex solves it far faster.
    """
    kind = spec.kind
    coo = sparse.coo_matrix(T)
    order = np.lexsort((coo.data, coo.row))
    r, j, t = coo.row[order].astype(np.int64), coo.col[order].astype(np.int64), coo.data[order]
    n_rows = T.shape[0]
    first = np.r_[True, (r[1:] != r[:-1])] if len(r) else np.zeros(0, bool)
    new_level = first | np.r_[True, t[1:] > t[:-1] + 1e-9] if len(r) else np.zeros(0, bool)
    level = np.cumsum(new_level) - 1
    n_levels = int(level[-1]) + 1 if len(level) else 0
    level_row = r[new_level]
    level_time = t[new_level]
    level_first = first[new_level]
    last = np.r_[level_row[1:] != level_row[:-1], True] if n_levels else np.zeros(0, bool)
    next_time = np.where(last, f_rows[level_row], np.r_[level_time[1:], 0.0] if n_levels else level_time)
    x = build.cols(len(sites), f"x_{kind}", integer=True)
    u = build.cols(n_levels, f"u_{kind}", c=w_rows[level_row] * (next_time - level_time), hi=np.inf)
    # rows with candidates start from their nearest candidate's walk; the rest of the constant was added before
    build.constant += float((w_rows[level_row[level_first]] * (level_time[level_first] - f_rows[level_row[level_first]])).sum())
    k = np.arange(n_levels)
    chain = np.flatnonzero(~level_first)
    build.rows(
        np.r_[level, k, chain], np.r_[x[j], u, u[chain - 1]],
        np.r_[np.ones(len(j)), np.ones(n_levels), -np.ones(len(chain))],
        n_levels, lo=np.where(level_first, 1.0, 0.0),
    )
    if spec.p is not None:
        build.rows(np.zeros(len(sites)), x, 1.0, 1, hi=spec.p)
    site_cost = problem.sites["cost"].to_numpy(dtype=float)[sites]
    if spec.budget is not None:
        build.rows(np.zeros(len(sites)), x, site_cost, 1, hi=spec.budget)
    sizes["levels"] = n_levels
    if start is not None:
        allowed = ~np.isin(sites, list(taken)) if taken else None
        median_times = sparse.csr_matrix((t, (r, j)), shape=(n_rows, len(sites)))
        picked, _ = greedy_median(median_times, w_rows, f_rows, allowed=allowed, k=spec.p)
        if spec.budget is None or site_cost[picked].sum() <= spec.budget:
            chosen = set(picked)
            for jj, col in enumerate(x):
                start[int(col)] = 1.0 if jj in chosen else 0.0
            taken.update(int(sites[jj]) for jj in picked)
    return Block(
        kind=kind, family="median", x_cols=x, x_sites=sites, x_new=np.ones(len(sites), bool), fixed=existing,
        closable=np.zeros(0, np.int64), row_of=row_of, limit_s=limit, sizes=sizes,
    )


def _one_per_site_rows(build, blocks: list[Block]) -> None:
    cols = np.concatenate([b.x_cols[b.x_new] for b in blocks])
    sites = np.concatenate([b.x_sites[b.x_new] for b in blocks])
    shared, slot, counts = np.unique(sites, return_inverse=True, return_counts=True)
    multi = counts[slot] > 1
    if not multi.any():
        return
    _, row = np.unique(slot[multi], return_inverse=True)
    build.rows(row, cols[multi], 1.0, int(row.max()) + 1, hi=1.0)


class TargetUnreachable(InfeasibleError):
    """A coverage target beyond what every candidate together reaches; ``best_pct`` says what can be reached."""

    def __init__(self, spec: KindSpec, *, target: float, best: float, total: float):
        self.spec = spec
        self.target_people = target
        self.best_people = best
        self.total = total
        self.best_pct = 100.0 * best / total if total else 0.0
        self.plan = None
        super().__init__(self._message())

    def _message(self, sites: Sequence[str] | None = None) -> str:
        spec = self.spec
        text = (
            f"The target of {spec.target_pct:g} % of {spec.target_group} within {spec.threshold_min:g} min for "
            f"{spec.kind}s cannot be reached: with every candidate and existing site open, at most "
            f"{self.best_pct:.1f} % ({self.best_people:,.0f} of {self.total:,.0f}) are within reach."
        )
        if sites is not None:
            shown = ", ".join(map(str, list(sites)[:15])) + (f" and {len(sites) - 15} more" if len(sites) > 15 else "")
            text += f" The fewest new sites that reach {self.best_pct:.1f} % are {len(sites)}: {shown} (the plan is in .plan)."
        return text + " Lower target_pct, add candidate sites, or raise the threshold."

    def with_plan(self, plan, sites: Sequence[str]) -> "TargetUnreachable":
        self.plan = plan
        self.args = (self._message(sites),)
        return self


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
            times = _limited(problem.times_s[:, open_sites], b.limit_s).tocoo()
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


def optimize(
    problem: Problem,
    *,
    model: str = "mclp",
    solver: str = "highs",
    time_limit_s: float | None = 60.0,
    mip_gap: float = 0.0,
    reduce: bool = True,
    one_per_site: bool = False,
    total_budget: float | None = None,
    within_threshold: bool = False,
    minimize: str = "count",
    keep_groups: Sequence[str] = ("pop_60", "pop_80"),
    refine: bool = True,
    threads: int | None = None,
) -> Outcome:
    """Build and solve one model; for the target and consolidation models, then refine (see module docs).

    Raises
    ------
    InputError
        A request that cannot be solved as given (p beyond the candidates, missing p or target...).
    TargetUnreachable
        (an :class:`~geoplan.errors.InfeasibleError`) a target beyond every candidate's reach.
    InfeasibleError
        The model has no solution (e.g. a budget too small for a target, capacities too small).
    """
    t0 = time.perf_counter()
    mip, blocks = build_model(
        problem, model=model, reduce=reduce, one_per_site=one_per_site, total_budget=total_budget,
        within_threshold=within_threshold, minimize=minimize, keep_groups=keep_groups,
    )
    if mip.start and one_per_site:
        mip = dataclasses.replace(mip, start=None)  # greedy starts are per kind
    build_s = time.perf_counter() - t0
    log.info("optimize: %s model, %d variables, %d constraints, %d nonzeros", model, mip.n_cols, mip.n_rows, mip.A.nnz)
    first = solve_model(mip, solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap, threads=threads)
    stats = [first.stats]
    if first.values is None:
        raise InfeasibleError(_infeasible_message(problem, model, total_budget))
    values = first.values
    if refine and model in ("target", "consolidate") and first.stats.objective is not None:
        # the refining stage gets what is left of the time limit (at least a tenth of it)
        left = None if time_limit_s is None else max(time_limit_s - (time.perf_counter() - t0), 0.1 * time_limit_s)
        values, second = _refine(mip, blocks, values, first.stats, solver=solver, time_limit_s=left, mip_gap=mip_gap, threads=threads)
        if second is not None:
            stats.append(second)
    opened, kept, closed, assignment = decode(problem, model, blocks, values)
    if first.stats.status == "time_limit":
        log.warning(
            "optimize: time limit of %s s reached; returning the best plan found, not proven optimal (gap %s)",
            time_limit_s, "unknown" if first.stats.gap is None else f"{100 * first.stats.gap:.2f} %",
        )
    return Outcome(
        model=model, opened=opened, kept=kept, closed=closed, assignment=assignment, stats=tuple(stats),
        reductions={b.kind: b.sizes for b in blocks}, build_s=build_s,
    )


def _refine(mip: MipModel, blocks, values, first: SolverStats, **solve_options):
    """Keep the optimal count/cost and maximise the weighted people reached."""
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
    second_model = dataclasses.replace(
        mip, name=mip.name + "_refine", sense="max", c=c, A=A, row_lo=np.r_[mip.row_lo, -np.inf],
        row_hi=np.r_[mip.row_hi, limit], constant=0.0, start=start,
    )
    second = solve_model(second_model, stage="refine", **solve_options)
    if second.values is None:
        return values, None
    return second.values, second.stats


def _infeasible_message(problem: Problem, model: str, total_budget) -> str:
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
