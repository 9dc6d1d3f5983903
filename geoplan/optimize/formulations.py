r"""The formulations: maximum coverage, target coverage, p-median, capacities, two kinds, consolidation.

One block of variables and rows per planned kind:

* :func:`cover_block` -- maximum coverage, target coverage and consolidation,
  uncapacitated (a ``z`` per demand row);
* :func:`assign_block` -- capacitated models and the capacitated p-median (an
  ``a`` per demand-site pair);
* :func:`median_block` -- the uncapacitated p-median, radius formulation;
* :func:`one_per_site_rows` -- at most one new facility per shared candidate.

Every "within the threshold" is asked of the problem's
:class:`~geoplan.reach.ReachMatrix`.

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

import numpy as np
from scipy import sparse

from geoplan.optimize.builder import Block, ModelBuilder
from geoplan.optimize.errors import TargetUnreachable
from geoplan.optimize.options import KindSpec
from geoplan.optimize.phasing import greedy_cover, greedy_median
from geoplan.optimize.problem import Problem
from geoplan.optimize.reduce import dominated_columns, merge_identical_rows
from geoplan.reach import TIME_TOLERANCE_S, within_time

#: Relative slack on people totals in target and keep-coverage rows (floating-point noise only).
PEOPLE_TOLERANCE = 1e-9


def closable_sites(problem: Problem, spec: KindSpec) -> tuple[np.ndarray, np.ndarray]:
    """Existing sites of ``spec.kind`` whose catchment is below ``spec.min_catchment``; and every catchment."""
    own = problem.own_existing(spec.kind)
    within = problem.reach.within(spec.threshold_s, own)
    catchment = np.asarray(within.T @ problem.people[spec.target_group].to_numpy(dtype=float)).ravel()
    if spec.min_catchment is None:
        return own[:0], catchment
    return own[catchment < spec.min_catchment], catchment


def max_achievable(problem: Problem, spec: KindSpec) -> float:
    """People of ``spec.target_group`` within the threshold with every candidate and facility open."""
    sites = np.concatenate([problem.existing_for(spec.kind), problem.candidates_for(spec.kind)])
    covered = problem.reach.covered(spec.threshold_s, sites)
    return float(problem.people[spec.target_group].to_numpy(dtype=float)[covered].sum())


def cover_block(build: ModelBuilder, problem: Problem, spec: KindSpec, *, model: str, reduce: bool, dominance: bool, minimize: str,
                keep_groups, start: dict | None, taken: set, any_budget: bool) -> Block:
    """MCLP, target or consolidation rows for one uncapacitated kind (a ``z`` per merged demand row)."""
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
    covered_fixed = problem.reach.covered(tau, fixed) if len(fixed) else np.zeros(n, bool)
    A = problem.reach.within(tau, var_sites)
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
        if target > best + PEOPLE_TOLERANCE * max(1.0, total_need[0]):
            raise TargetUnreachable(spec, target=target, best=best, total=total_need[0])
        rhs = target - const_need[0] - PEOPLE_TOLERANCE * max(1.0, total_need[0])
        build.rows(np.zeros(n_rows), z, g[:, 0], 1, lo=rhs)
        sizes["target_people"] = target
        target_rhs = rhs
    elif model == "consolidate":
        today_sites = existing
        today = problem.reach.covered(tau, today_sites) if len(today_sites) else np.zeros(n, bool)
        for k, group in enumerate(groups):
            today_people = float(people[group].to_numpy(dtype=float)[today].sum())
            rhs = today_people - const_need[k] - PEOPLE_TOLERANCE * max(1.0, total_need[k])
            build.rows(np.zeros(n_rows), z, g[:, k], 1, lo=rhs)
    if start is not None:
        cover_start(start, model, spec, A, w, g, x, is_new, site_cost, var_sites, taken, target_rhs if model == "target" else None)
    return Block(
        kind=kind, family="cover", x_cols=x, x_sites=var_sites, x_new=is_new, fixed=fixed, closable=closable,
        row_of=row_of, objective_x=objective_x, second_c=(z, w), covered_weight=const_w, sizes=sizes,
        cover=A, need=g[:, 0].copy() if model == "target" else None, target_rhs=target_rhs,
    )


def cover_start(start, model, spec, A, w, g, x, is_new, cost, var_sites, taken, target_rhs) -> None:
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


def assign_block(build: ModelBuilder, problem: Problem, spec: KindSpec, *, model: str, reduce: bool, within_threshold: bool,
                 start: dict | None, taken: set, minimize: str = "count") -> Block:
    """Assignment rows (an ``a`` per demand-site pair): capacitated models and the capacitated p-median."""
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
            nearest = problem.reach.nearest_time_s(existing).to_numpy()
            fallback = np.minimum(fallback, np.where(within_time(nearest, limit), nearest, np.inf))
    times = problem.reach.limited(limit, sites)
    if not capacitated:
        coo = times.tocoo()
        keep_pair = coo.data < fallback[coo.row] - TIME_TOLERANCE_S
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
        return median_block(build, problem, spec, T, V_rows[:, 0], f_rows, sites, existing, row_of, limit, sizes, start, taken)
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
        build.rows(np.zeros(n_pairs), a, V_rows[pair_row, -1], 1, lo=target - PEOPLE_TOLERANCE * max(1.0, total))
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


def median_block(build, problem, spec, T, w_rows, f_rows, sites, existing, row_of, limit, sizes, start, taken) -> Block:
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
    new_level = first | np.r_[True, t[1:] > t[:-1] + TIME_TOLERANCE_S] if len(r) else np.zeros(0, bool)
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


def one_per_site_rows(build: ModelBuilder, blocks: list[Block]) -> None:
    """At most one new facility (of any kind) per shared candidate."""
    cols = np.concatenate([b.x_cols[b.x_new] for b in blocks])
    sites = np.concatenate([b.x_sites[b.x_new] for b in blocks])
    shared, slot, counts = np.unique(sites, return_inverse=True, return_counts=True)
    multi = counts[slot] > 1
    if not multi.any():
        return
    _, row = np.unique(slot[multi], return_inverse=True)
    build.rows(row, cols[multi], 1.0, int(row.max()) + 1, hi=1.0)
