"""Phasing: the chosen sites in the order that adds the most at each step, so a plan can be staged.

Given the sites a plan opens, :func:`phase_sites` ranks them greedily: first
the site that adds the most (weighted older people newly within the walk, on
top of the facilities that stay open), then the one that adds the most given
the first, and so on. Each site's *marginal gain* is what it adds given the
ones before it; the gains add up to the plan's total gain, so year 1 can build
the first few and still get the most of the plan. For the p-median the gain is
the weighted walking time saved; with capacities it is the weighted people
served more (a small transport LP per step).

The same greedy step (:func:`greedy_cover`, :func:`greedy_median`) gives the
solver a starting solution.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.reach import within_time

log = logging.getLogger(__name__)

#: With capacities, rank exactly (one LP per remaining site per step) up to this many sites.
EXACT_CAPACITY_PHASING = 12


def greedy_cover(
    cover: sparse.spmatrix,
    weight: np.ndarray,
    *,
    covered: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    k: int | None = None,
    cost: np.ndarray | None = None,
    budget: float | None = None,
    need: np.ndarray | None = None,
    target: float | None = None,
    stop_at_zero: bool = True,
) -> tuple[list[int], list[float]]:
    """Pick columns of ``cover`` one at a time, each the one adding the most uncovered ``weight``.

    Stops after ``k`` picks, when nothing affordable within ``budget`` is left,
    when ``need`` covered reaches ``target``, or (``stop_at_zero``) when no
    column adds anything. Returns the picked columns and their marginal gains.
    """
    cover = sparse.csc_matrix(cover)
    n_rows, n_cols = cover.shape
    weight = np.asarray(weight, dtype=float)
    uncovered = np.ones(n_rows, dtype=bool) if covered is None else ~np.asarray(covered, dtype=bool)
    available = np.ones(n_cols, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
    cost = np.zeros(n_cols) if cost is None else np.asarray(cost, dtype=float)
    spent = 0.0
    reached = 0.0 if need is None else float(np.asarray(need)[~uncovered].sum())
    picked, gains = [], []
    limit = n_cols if k is None else min(k, n_cols)
    while len(picked) < limit:
        if target is not None and reached >= target - 1e-9:
            break
        if budget is not None:
            available &= spent + cost <= budget + 1e-9
        if not available.any():
            break
        gain = cover.T @ (weight * uncovered)
        gain = np.where(available, gain, -np.inf)
        if target is not None and need is not None:
            score = np.where(available, cover.T @ (np.asarray(need) * uncovered), -np.inf)
            j = int(np.argmax(score))
        else:
            j = int(np.argmax(gain))
        if stop_at_zero and not gain[j] > 0 and (target is None):
            break
        rows = cover.indices[cover.indptr[j]:cover.indptr[j + 1]]
        if need is not None:
            reached += float(np.asarray(need)[rows][uncovered[rows]].sum())
        picked.append(j)
        gains.append(float(gain[j]))
        uncovered[rows] = False
        available[j] = False
        spent += cost[j]
    return picked, gains


def greedy_median(
    times: sparse.spmatrix,
    weight: np.ndarray,
    fallback: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    k: int | None = None,
) -> tuple[list[int], list[float]]:
    """Pick columns one at a time, each saving the most weighted time (walks capped at ``fallback``)."""
    times = sparse.csc_matrix(times)
    best = np.asarray(fallback, dtype=float).copy()
    weight = np.asarray(weight, dtype=float)
    n_cols = times.shape[1]
    available = np.ones(n_cols, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
    col = np.repeat(np.arange(n_cols), np.diff(times.indptr))
    picked, gains = [], []
    limit = n_cols if k is None else min(k, n_cols)
    while len(picked) < limit and available.any():
        saving = weight[times.indices] * np.maximum(best[times.indices] - times.data, 0.0)
        gain = np.bincount(col, weights=saving, minlength=n_cols)
        gain = np.where(available, gain, -np.inf)
        j = int(np.argmax(gain))
        rows = times.indices[times.indptr[j]:times.indptr[j + 1]]
        best[rows] = np.minimum(best[rows], times.data[times.indptr[j]:times.indptr[j + 1]])
        picked.append(j)
        gains.append(float(gain[j]))
        available[j] = False
    return picked, gains


def phase_sites(problem, opened: dict[str, np.ndarray], kept: dict[str, np.ndarray], *, model: str, within_threshold: bool = False) -> pd.DataFrame:
    """Rank the new sites of every kind by marginal gain, greedily across kinds.

    Parameters
    ----------
    problem
        The :class:`~geoplan.optimize.problem.Problem`.
    opened
        Per kind, the site positions of the new sites.
    kept
        Per kind, the site positions of the existing facilities that stay open.
    model
        ``mclp``, ``target``, ``consolidate`` (coverage gains), ``pmedian``
        (time saved) or a capacitated one (``capacitated=True`` kinds).

    Returns
    -------
    pandas.DataFrame
        One row per new site, in phase order: ``kind``, ``site_pos``,
        ``phase`` (1, 2, ...), ``gain_weighted`` and ``gain_<group>`` (people
        of each group newly within the kind's threshold).
    """
    groups = list(problem.people.columns)
    people = problem.people.to_numpy(dtype=float)
    weight = problem.weight
    states = {}
    for kind, sites in opened.items():
        spec = problem.spec(kind)
        if len(sites) == 0:
            continue
        within = problem.reach.within(spec.threshold_s, sites).tocsc()
        covered = problem.reach.covered(spec.threshold_s, kept[kind]) if len(kept[kind]) else np.zeros(problem.n_demand, bool)
        state = {"sites": np.asarray(sites), "within": within, "covered": covered.copy(), "left": np.ones(len(sites), bool)}
        if model == "pmedian":
            limit = spec.threshold_s if within_threshold else problem.cutoff_s
            times = problem.reach.limited(limit, sites).tocsc()
            best = np.full(problem.n_demand, float(problem.cutoff_s))
            if len(kept[kind]):
                nearest = problem.reach.nearest_time_s(kept[kind]).to_numpy()
                best = np.minimum(best, np.where(within_time(nearest, limit), nearest, np.inf))
            state.update(times=times, best=best)
        elif spec.capacitated:
            state.update(served=None)
        states[kind] = state

    rows = []
    capacitated = {k for k in states if problem.spec(k).capacitated and model != "pmedian"}
    exact_capacity = sum(len(opened[k]) for k in capacitated) <= EXACT_CAPACITY_PHASING
    if capacitated and not exact_capacity:
        log.info("phasing: more than %d capacitated sites, ordering by each site's own served people", EXACT_CAPACITY_PHASING)
    cap_open = {k: [] for k in capacitated}
    cap_value = {k: _served(problem, k, kept[k], [])[0] for k in capacitated}
    phase = 0
    while any(s["left"].any() for s in states.values()):
        best_choice = None
        for kind, s in states.items():
            left = np.flatnonzero(s["left"])
            if len(left) == 0:
                continue
            if model == "pmedian":
                t = s["times"]
                col = np.repeat(np.arange(t.shape[1]), np.diff(t.indptr))
                saving = weight[t.indices] * np.maximum(s["best"][t.indices] - t.data, 0.0)
                gain = np.bincount(col, weights=saving, minlength=t.shape[1])[left]
            elif kind in capacitated:
                if exact_capacity:
                    gain = np.array([
                        _served(problem, kind, kept[kind], cap_open[kind] + [s["sites"][j]])[0] - cap_value[kind]
                        for j in left
                    ])
                else:
                    own = np.array([_served(problem, kind, np.array([], int), [s["sites"][j]])[0] for j in left])
                    gain = own
            else:
                gain = s["within"][:, left].T @ (weight * ~s["covered"])
            j = int(np.argmax(gain))
            if best_choice is None or gain[j] > best_choice[2] + 1e-12:
                best_choice = (kind, left[j], float(gain[j]))
        kind, j, gain = best_choice
        s = states[kind]
        phase += 1
        site = int(s["sites"][j])
        col_rows = s["within"].indices[s["within"].indptr[j]:s["within"].indptr[j + 1]]
        new_rows = col_rows[~s["covered"][col_rows]]
        row = {"kind": kind, "site_pos": site, "phase": phase}
        if model == "pmedian":
            t = s["times"]
            r = t.indices[t.indptr[j]:t.indptr[j + 1]]
            s["best"][r] = np.minimum(s["best"][r], t.data[t.indptr[j]:t.indptr[j + 1]])
            row["gain_time_saved_s"] = gain
            row["gain_weighted"] = float(weight[new_rows].sum())
            group_gain = people[new_rows].sum(axis=0)
        elif kind in capacitated:
            before = _served(problem, kind, kept[kind], cap_open[kind])
            cap_open[kind] = cap_open[kind] + [site]
            after = _served(problem, kind, kept[kind], cap_open[kind])
            cap_value[kind] = after[0]
            row["gain_weighted"] = after[0] - before[0]
            group_gain = after[1] - before[1]
        else:
            row["gain_weighted"] = float(weight[new_rows].sum())
            group_gain = people[new_rows].sum(axis=0)
        s["covered"][new_rows] = True
        s["left"][j] = False
        row.update({f"gain_{g}": float(v) for g, v in zip(groups, group_gain)})
        rows.append(row)
    columns = ["kind", "site_pos", "phase", "gain_weighted"] + (["gain_time_saved_s"] if model == "pmedian" else []) + [f"gain_{g}" for g in groups]
    return pd.DataFrame(rows, columns=columns)


def _served(problem, kind: str, fixed: np.ndarray, opened) -> tuple[float, np.ndarray]:
    """Weighted people served (and people per group) with capacities, by the sites ``fixed`` + ``opened``."""
    from scipy.optimize import linprog

    sites = np.concatenate([np.asarray(fixed, dtype=np.int64), np.asarray(opened, dtype=np.int64)])
    groups = problem.people.shape[1]
    if len(sites) == 0:
        return 0.0, np.zeros(groups)
    spec = problem.spec(kind)
    within = problem.reach.within(spec.threshold_s, sites).tocoo()
    if within.nnz == 0:
        return 0.0, np.zeros(groups)
    i, j = within.row, within.col
    need = problem.capacity_demand(kind)
    capacity = problem.capacity_of(kind, sites)
    n_pairs = len(i)
    rows_used, row_of = np.unique(i, return_inverse=True)
    one = sparse.csr_matrix((np.ones(n_pairs), (row_of, np.arange(n_pairs))), shape=(len(rows_used), n_pairs))
    cap = sparse.csr_matrix((need[i], (j, np.arange(n_pairs))), shape=(len(sites), n_pairs))
    finite = np.isfinite(capacity)
    A = sparse.vstack([one, cap[finite]]).tocsr()
    b = np.concatenate([np.ones(len(rows_used)), capacity[finite]])
    result = linprog(-problem.weight[i], A_ub=A, b_ub=b, bounds=(0, 1), method="highs")
    a = result.x
    served_people = np.asarray(problem.people.to_numpy(dtype=float)[i].T @ a).ravel()
    return float(-result.fun), served_people
