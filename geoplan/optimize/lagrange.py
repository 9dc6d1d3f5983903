r"""Bounds on the coverage models from Lagrangian relaxation, and the candidates they rule out.

Notation as in :mod:`geoplan.optimize.formulations`: demand rows :math:`i`
(weight :math:`w_i`, target people :math:`g_i`), candidates :math:`j`,
:math:`a_{ij} = 1` when :math:`j` covers :math:`i`.

**MCLP.** Relaxing every coverage row :math:`z_i \le \sum_j a_{ij} x_j` with a
multiplier :math:`\lambda_i \ge 0` leaves

.. math::

   L(\lambda) = \sum_i \max(0, w_i - \lambda_i) + \max_{|S| \le p} \sum_{j \in S} s_j,
   \qquad s_j = \sum_i a_{ij} \lambda_i ,

the second term being the sum of the :math:`p` largest positive :math:`s_j`.
For every :math:`\lambda \ge 0` and every plan :math:`(x, z)`,
:math:`\sum_i w_i z_i \le \sum_i w_i z_i + \sum_i \lambda_i (\sum_j a_{ij} x_j - z_i)
\le L(\lambda)`, so :math:`L(\lambda)` bounds the optimum from above;
:func:`mclp_bound` lowers it by projected subgradient steps (Polyak's rule,
towards the best plan found). The subproblem has integral solutions, so the
best :math:`L` is the LP bound (Geoffrion 1974), reached without solving the LP.

*Fixing* (:func:`mclp_fixing`). Forcing :math:`x_j = 1` changes the
subproblem's best value to :math:`L_j^1 = L - q_p + \max(0, s_j)` (when
:math:`j` is not among the :math:`p` largest; :math:`q_p` is the
:math:`p`-th largest positive part) and forcing :math:`x_j = 0` to
:math:`L_j^0 = L - \max(0, s_j) + q_{p+1}` (when it is). These bound every
plan with that value of :math:`x_j`. If :math:`L_j^1 <` the value of a known
plan, no plan that opens :math:`j` is better than it: :math:`j` can be left
out; if :math:`L_j^0 <` that value, :math:`j` is in every better plan. Plans
at least as good as the known one all lie in what is left.

**Target.** Relaxing the same rows in :math:`\min \sum_j x_j` s.t.
:math:`\sum_i g_i z_i \ge T` gives the lower bound

.. math::

   L(\lambda) = \sum_j \min(0, 1 - s_j) + \min\{\textstyle\sum_i \lambda_i z_i :
   \sum_i g_i z_i \ge T,\ 0 \le z \le 1\},

the second term a fractional knapsack (rows by :math:`\lambda_i / g_i`). Any
:math:`\lambda \ge 0` gives a valid bound, however it was found:
:func:`target_duals` takes the LP's row duals, :func:`target_value` computes
the bound from them exactly, and the count being whole, no plan has fewer
than :math:`\lceil L \rceil` sites. Forcing :math:`x_j` against its
subproblem value raises :math:`L` by :math:`|1 - s_j|`: with
:math:`L + |1 - s_j| >` a count :math:`K`, no plan of at most :math:`K` sites
takes that value, and :func:`target_fixing` fixes :math:`x_j` the other way.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from scipy import sparse

#: Relative slack of every comparison with a bound (rounding of the sums only; in the safe direction).
BOUND_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A 0/1 demand x candidate pattern, by row and by column, for the kernels and the bounds."""

    by_row: sparse.csr_matrix
    by_col: sparse.csc_matrix
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # int64 column pointers, rows; row pointers, columns

    @classmethod
    def of(cls, matrix) -> "Pattern":
        a = sparse.csr_matrix(matrix, dtype=np.float64, copy=True)
        a.eliminate_zeros()
        a.data[:] = 1.0
        a.sum_duplicates()
        a.sort_indices()
        c = a.tocsc()
        c.sort_indices()
        arrays = tuple(np.ascontiguousarray(v, dtype=np.int64) for v in (c.indptr, c.indices, a.indptr, a.indices))
        return cls(a, c, arrays)

    @property
    def shape(self) -> tuple[int, int]:
        return self.by_row.shape

    def kernel_args(self):
        return self.arrays

    def rows_of(self, cols) -> np.ndarray:
        c = self.by_col
        cols = np.asarray(cols, dtype=np.int64)
        if len(cols) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([c.indices[c.indptr[j]:c.indptr[j + 1]] for j in cols]).astype(np.int64)

    def covered(self, cols) -> np.ndarray:
        out = np.zeros(self.shape[0], bool)
        out[self.rows_of(cols)] = True
        return out

    def scores(self, lam: np.ndarray) -> np.ndarray:
        r""":math:`s_j = \\sum_i a_{ij} \\lambda_i` for every candidate."""
        return np.asarray(self.by_col.T @ lam).ravel()


# --------------------------------------------------------------------------- MCLP


@dataclasses.dataclass(frozen=True)
class MclpBound:
    """The best Lagrangian bound found, its multipliers, and the best plan seen on the way."""

    bound: float
    lam: np.ndarray
    mu: float  # the multiplier of the need row (0 without one)
    plan: np.ndarray  # candidate positions of the best plan seen (the subproblems' choices)
    plan_value: float
    iterations: int


def mclp_value(pattern: Pattern, weight: np.ndarray, lam: np.ndarray, p: int, offset: float = 0.0) -> tuple[float, np.ndarray, np.ndarray]:
    r""":math:`L(\lambda)` (plus ``offset``), the scores :math:`s` and the subproblem's chosen candidates (the ``p`` largest positive scores)."""
    s = pattern.scores(lam)
    top = _top(s, p)
    value = float(np.maximum(weight - lam, 0.0).sum() + s[top].sum()) + offset
    return value, s, top


def mclp_bound(pattern: Pattern, weight: np.ndarray, p: int, incumbent: float, *, lam: np.ndarray | None = None,
               iterations: int = 2000, deadline: float | None = None, patience: int = 20,
               need: np.ndarray | None = None, floor: float | None = None) -> MclpBound:
    r"""Projected subgradient on :math:`L(\lambda)` over :math:`0 \le \lambda \le w`, towards ``incumbent``.

    With ``need`` and ``floor`` the plans must also cover at least ``floor``
    of ``need``; that row is relaxed too, with a multiplier :math:`\mu \ge 0`:
    :math:`L(\lambda, \mu) = -\mu F + \sum_i \max(0, w_i + \mu g_i - \lambda_i) + \dots`,
    and only plans that meet it count as plans. Stops when the bound meets the
    best plan, the step has shrunk to nothing, after ``iterations`` or at
    ``deadline`` (``time.perf_counter()``).
    """
    weight = np.asarray(weight, dtype=float)
    constrained = need is not None and floor is not None
    need = np.zeros_like(weight) if need is None else np.asarray(need, dtype=float)
    scale = 1.0 / max(float(need.max()) if len(need) else 0.0, 1e-12)  # mu moves in units of the largest row's need
    mu = 0.0
    lam = np.clip(0.5 * weight if lam is None else np.asarray(lam, dtype=float).copy(), 0.0, weight)
    n = pattern.shape[0]
    best, best_lam, best_mu = np.inf, lam.copy(), mu
    plan, plan_value = np.zeros(0, np.int64), -np.inf
    step, since, it = 2.0, 0, 0
    for it in range(1, iterations + 1):
        effective = weight + mu * need
        value, s, top = mclp_value(pattern, effective, lam, p, -mu * floor if constrained else 0.0)
        if value < best - 1e-12 * max(1.0, abs(value)):
            best, best_lam, best_mu, since = value, lam.copy(), mu, 0
        else:
            since += 1
            if since >= patience:
                step, since = step / 2, 0
        count = np.bincount(pattern.rows_of(top), minlength=n)
        on = count > 0
        covered = float(weight[on].sum())
        if covered > plan_value and (not constrained or float(need[on].sum()) >= floor):
            plan, plan_value = top.copy(), covered
        target = max(incumbent, plan_value)
        if best - target <= BOUND_TOLERANCE * max(1.0, abs(target)) or step < 1e-6:
            break
        if deadline is not None and time.perf_counter() > deadline:
            break
        z = effective > lam
        direction = count - z  # a subgradient of L at lam: sum_j a_ij x_j - z_i
        norm = float(direction @ direction)
        d_mu = 0.0
        if constrained:  # dL/dmu = sum_i g_i z_i - F, in scaled units
            d_mu = (float(need[z].sum()) - floor) * scale
            norm += d_mu * d_mu
        if norm == 0:
            break
        t = step * (value - target) / norm
        if constrained:
            mu = max(0.0, mu - t * d_mu * scale)
        lam = np.clip(lam - t * direction, 0.0, weight + mu * need)
    return MclpBound(bound=best, lam=best_lam, mu=best_mu, plan=plan, plan_value=plan_value, iterations=it)


def mclp_fixing(pattern: Pattern, weight: np.ndarray, lam: np.ndarray, p: int, incumbent: float, *, mu: float = 0.0,
                need: np.ndarray | None = None, floor: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Candidates no plan better than ``incumbent`` opens (left out) and those every such plan opens (fixed in).

    Returns ``(out, in, bound)`` with the bound :math:`L(\lambda, \mu)` the fixing used.
    """
    if need is not None and floor is not None and mu > 0:
        value, s, top = mclp_value(pattern, np.asarray(weight, float) + mu * np.asarray(need, float), lam, p, -mu * floor)
    else:
        value, s, top = mclp_value(pattern, weight, lam, p)
    m = len(s)
    positive = np.maximum(s, 0.0)
    ordered = np.sort(positive)[::-1]
    q_p = ordered[p - 1] if 0 < p <= m else 0.0
    q_next = ordered[p] if p < m else 0.0
    in_top = np.zeros(m, bool)
    in_top[top] = True
    tol = BOUND_TOLERANCE * max(1.0, abs(incumbent))
    forced_in = np.where(in_top, value, value - q_p + positive)  # best with x_j = 1
    forced_out = np.where(in_top, value - positive + q_next, value)  # best with x_j = 0
    if p == 0:
        forced_in = np.full(m, -np.inf)
    return forced_in < incumbent - tol, forced_out < incumbent - tol, value


# --------------------------------------------------------------------------- target


def knapsack_value(lam: np.ndarray, need: np.ndarray, target: float) -> float:
    r""":math:`\\min \\sum_i \\lambda_i z_i` s.t. :math:`\\sum_i g_i z_i \\ge T`, :math:`0 \\le z \\le 1` (inf if out of reach)."""
    if target <= 0:
        return 0.0
    rows = np.flatnonzero(need > 0)
    if need[rows].sum() < target:
        return np.inf
    order = rows[np.argsort(lam[rows] / need[rows], kind="stable")]
    filled = np.cumsum(need[order])
    k = int(np.searchsorted(filled, target))
    before = float(filled[k - 1]) if k else 0.0
    return float(lam[order[:k]].sum() + lam[order[k]] * (target - before) / need[order[k]])


def target_value(pattern: Pattern, lam: np.ndarray, need: np.ndarray, target: float) -> tuple[float, np.ndarray]:
    r"""The lower bound :math:`L(\\lambda)` on the count of the target model, and the reduced costs :math:`1 - s_j`."""
    lam = np.maximum(np.asarray(lam, dtype=float), 0.0)
    reduced = 1.0 - pattern.scores(lam)
    return float(np.minimum(reduced, 0.0).sum() + knapsack_value(lam, need, target)), reduced


def whole_bound(value: float) -> int:
    """The least whole count at or above a lower bound (rounding noise allowed for)."""
    if not math.isfinite(value):
        return 0 if value < 0 else 2**62
    return max(0, math.ceil(value - 1e-6))


def target_fixing(value: float, reduced: np.ndarray, count: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates that no plan of at most ``count`` sites opens (out), and those that every one opens (in)."""
    limit = count + 1e-6
    return (reduced > 0) & (value + reduced > limit), (reduced < 0) & (value - reduced > limit)


def column_scaled_duals(pattern: Pattern, need: np.ndarray) -> np.ndarray:
    r"""Multipliers every candidate can afford: :math:`\lambda_i = g_i / \max_{j \ni i} G_j`, :math:`G_j = \sum_{i \in N_j} g_i`.

    Then :math:`s_j \le 1` for every candidate, so :math:`L(\lambda)` is the
    knapsack term alone: a bound at the cost of two sparse products, for when
    the LP cannot be solved in time.
    """
    need = np.asarray(need, dtype=float)
    totals = pattern.scores(need)
    by_row = pattern.by_row
    largest = np.zeros(pattern.shape[0])
    if by_row.nnz:
        rows = np.flatnonzero(np.diff(by_row.indptr))
        largest[rows] = np.maximum.reduceat(totals[by_row.indices], by_row.indptr[rows])
    return np.divide(need, largest, out=np.zeros_like(need), where=largest > 0)


def target_duals(pattern: Pattern, need: np.ndarray, target: float, *, time_limit_s: float | None = None,
                 threads: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    r"""Row duals (the multipliers :math:`\\lambda`) and the candidates' values of the target model's LP, by HiGHS.

    ``(None, None)`` when highspy is missing or the LP is not solved in time.
    The duals need not be exact: :func:`target_value` makes a valid bound of any.
    """
    try:
        import highspy
    except ImportError:  # pragma: no cover - highspy is a dependency
        return None, None
    n, m = pattern.shape
    a = pattern.by_col
    inf = highspy.kHighsInf
    # columns: x (m), then z (n); rows: z_i - sum_j a_ij x_j <= 0 (n), sum_i g_i z_i >= T (1)
    x_part = sparse.csc_matrix((-a.data, a.indices, a.indptr), shape=(n + 1, m))
    z_part = sparse.vstack([sparse.identity(n, format="csc"), sparse.csr_matrix(need.reshape(1, -1))]).tocsc()
    full = sparse.hstack([x_part, z_part]).tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = m + n, n + 1
    lp.col_cost_ = np.r_[np.ones(m), np.zeros(n)]
    lp.col_lower_ = np.zeros(m + n)
    lp.col_upper_ = np.ones(m + n)
    lp.row_lower_ = np.r_[np.full(n, -inf), target]
    lp.row_upper_ = np.r_[np.zeros(n), inf]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = full.indptr
    lp.a_matrix_.index_ = full.indices
    lp.a_matrix_.value_ = full.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    if time_limit_s is not None:
        h.setOptionValue("time_limit", max(float(time_limit_s), 0.01))
    if n + m > 20_000:  # simplex is slow on the large, degenerate covering LPs; an approximate interior point is enough
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "off")
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None, None
    solution = h.getSolution()
    duals = np.asarray(solution.row_dual, dtype=float)[:n]
    x = np.asarray(solution.col_value, dtype=float)[:m]
    return np.maximum(-duals, 0.0), x


def _top(s: np.ndarray, p: int) -> np.ndarray:
    """Positions of the ``p`` largest positive entries of ``s``."""
    if p <= 0 or len(s) == 0:
        return np.zeros(0, np.int64)
    if p < len(s):
        top = np.argpartition(-s, p - 1)[:p]
    else:
        top = np.arange(len(s))
    return np.sort(top[s[top] > 0]).astype(np.int64)
