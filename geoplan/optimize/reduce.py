r"""Reductions that make a model smaller without changing its optimum.

Each function works on the sparse demand x site structure and returns what to
keep or how rows group; :mod:`geoplan.optimize.formulations` applies them. The tests
(``tests/test_optimize_reduce.py``) solve random instances with and without
each reduction and check that the optimal values are equal.

1. :func:`merge_identical_rows` -- demand points covered by exactly the same
   set of sites (or, for the p-median, with exactly the same walking times to
   every site and the same fallback) become one point whose weights are the
   sums. Their coverage variables (or assignment rows) take the same value in
   some optimal solution, because their constraints are identical; the
   objective and every side constraint are linear in them, so summing the
   coefficients gives the same value for every choice of sites.
2. Demand already covered by a facility that stays open is a constant of the
   coverage objective (and of a target): it is counted once, outside the
   model (:func:`geoplan.optimize.formulations.cover_block`). For the p-median the
   nearest such facility caps every walk (the fallback): a new site no closer
   than that is never used, so the pair is dropped.
3. :func:`dominated_columns` -- a candidate whose covered set is a subset of
   another's at no lower cost can be left out (see its proof), in the
   coverage models (MCLP, target, consolidation) when sites are not coupled
   (no one-kind-per-site rule) and not capacitated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse


def row_groups(matrix: sparse.csr_matrix, *, with_data: bool = False, extra: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Group the rows of ``matrix`` with the same stored pattern (and data, and ``extra`` key).

    Returns ``(group, n_groups)``: ``group[i]`` is the group of row ``i``,
    numbered by first appearance.
    """
    matrix = sparse.csr_matrix(matrix)
    matrix.sort_indices()
    indptr, indices = matrix.indptr, matrix.indices.astype(np.int32, copy=False)
    data = np.round(matrix.data.astype(np.float64), 6) if with_data else None
    keys = np.empty(matrix.shape[0], dtype=object)
    for i in range(matrix.shape[0]):
        s, e = indptr[i], indptr[i + 1]
        key = indices[s:e].tobytes()
        if data is not None:
            key += b"|" + data[s:e].tobytes()
        if extra is not None:
            key += b"#" + np.asarray(extra[i], dtype=np.float64).tobytes()
        keys[i] = key
    group, uniques = pd.factorize(keys)
    return group.astype(np.int64), len(uniques)


def merge_identical_rows(
    matrix: sparse.csr_matrix, *values: np.ndarray, with_data: bool = False, extra: np.ndarray | None = None
) -> tuple[sparse.csr_matrix, tuple[np.ndarray, ...], np.ndarray]:
    r"""Merge rows with the same covering set (or, ``with_data``, the same times): sum their values.

    Parameters
    ----------
    matrix
        Demand x site, CSR: the covering pattern (or the walking times).
    values
        Per-row arrays (1-D, or 2-D with one row per demand row) to add up
        within each group: weights, people per group.
    with_data
        Rows must also have equal stored values (times, to 1e-6 s).
    extra
        A further per-row key that must be equal (e.g. the p-median fallback).

    Returns
    -------
    merged, summed values, group
        The merged matrix (one row per group, in order of first appearance),
        the summed values and each original row's group.

    Notes
    -----
    Proof that the optimum is kept: rows :math:`i, i'` with :math:`N_i = N_{i'}`
    have identical constraints :math:`z_i \le \sum_{j \in N_i} x_j`. For any
    choice of sites :math:`x`, the best :math:`z_i` and :math:`z_{i'}` are both
    :math:`\min(1, \sum_{j \in N_i} x_j)`, so :math:`w_i z_i + w_{i'} z_{i'} =
    (w_i + w_{i'}) z` with one variable :math:`z`; every other linear term
    (target people) is summed the same way. With identical time rows the same
    holds for the assignment variables of the p-median: an optimal assignment
    of the merged row split in the weight ratio is optimal for both rows.
    """
    matrix = sparse.csr_matrix(matrix)
    group, n = row_groups(matrix, with_data=with_data, extra=extra)
    first = np.unique(group, return_index=True)[1]  # groups are numbered by first appearance
    merged = matrix[first]
    summed = []
    for v in values:
        v = np.asarray(v, dtype=float)
        out = np.zeros((n,) + v.shape[1:])
        np.add.at(out, group, v)
        summed.append(out)
    return merged, tuple(summed), group


def dominated_columns(cover: sparse.csr_matrix, cost: np.ndarray) -> np.ndarray:
    r"""Columns (candidates) that another candidate dominates: covers a superset at no higher cost.

    Returns a boolean mask over the columns, True where the column can be left out.

    Notes
    -----
    Candidate :math:`k` beats candidate :math:`j` when :math:`N_j \subseteq
    N_k` (the demand rows each covers), :math:`c_k \le c_j` and, if both are
    equal, :math:`k < j`. This is a strict partial order (transitive,
    irreflexive), so every beaten candidate is beaten by one that nothing
    beats and is kept. A candidate that covers nothing is beaten by leaving
    it out.

    *Claim.* In a coverage model whose constraints on the sites are a count
    :math:`\sum_j x_j \le p`, a budget :math:`\sum_j c_j x_j \le B` and
    coverage :math:`z_i \le \sum_{j \in N_i} x_j` (MCLP; the target model,
    which minimises count or cost subject to :math:`\sum_i g_i z_i \ge T`;
    consolidation), some optimal solution opens no beaten candidate, so
    removing them keeps the optimal value.

    *Proof.* Let :math:`S` be optimal with :math:`j \in S` beaten by :math:`k`.
    If :math:`k \notin S`, take :math:`S' = S - j + k`: the same count, a cost
    no higher (:math:`c_k \le c_j`) and a covered set no smaller (:math:`N_j
    \subseteq N_k`), so :math:`S'` is feasible and its coverage (MCLP) is at
    least, its cost (target) at most that of :math:`S`. If :math:`k \in S`,
    take :math:`S' = S - j`: one site fewer, cost lower, and the same covered
    set, because :math:`N_j \subseteq N_k` is already covered. Repeat: each step
    removes a beaten candidate from the solution or replaces it with one higher
    in the finite order, so it ends with an optimal solution free of beaten
    candidates. The count constraint is :math:`\le p`, so no replacement is
    ever needed when fewer than :math:`p` candidates remain; a model with
    :math:`= p` (as spopt's) keeps the same optimum as long as at least
    :math:`p` candidates remain, since adding any site never lowers coverage.

    The argument needs the sites to be interchangeable: it fails when a site
    may take only one kind of facility (the replacement :math:`k` may be taken
    by the other kind) or with capacities (dropping :math:`j` loses its
    capacity), so the models do not apply it there.
    """
    cover = sparse.csr_matrix(cover, dtype=np.int32)
    cover.data[:] = 1
    cost = np.asarray(cost, dtype=float)
    size = np.asarray(cover.sum(axis=0)).ravel()
    beaten = size == 0
    overlap = (cover.T @ cover).tocoo()
    j, k, shared = overlap.row, overlap.col, overlap.data
    subset = (shared == size[j]) & (j != k) & (size[j] > 0)
    j, k = j[subset], k[subset]
    wins = (cost[k] <= cost[j]) & ((size[k] > size[j]) | (cost[k] < cost[j]) | (k < j))
    beaten[j[wins]] = True
    return beaten
