"""Compiled kernels of the coverage heuristics: greedy selection and swap local search.

Both work on a 0/1 demand x candidate pattern held twice, by column
(``c_ptr``/``c_idx``: the rows each candidate covers) and by row
(``r_ptr``/``r_idx``: the candidates covering each row), and keep, for every
candidate, the weight it would add (``gain``) up to date as rows become
covered or uncovered, so each step costs the rows and candidates it touches,
not the whole matrix. They only find plans; what is proven about a plan is
proven elsewhere (:mod:`geoplan.optimize.lagrange`, the solver).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _counts(c_ptr, c_idx, n_rows, chosen):
    count = np.zeros(n_rows, np.int64)
    for j in range(len(c_ptr) - 1):
        if chosen[j]:
            for q in range(c_ptr[j], c_ptr[j + 1]):
                count[c_idx[q]] += 1
    return count


@njit(cache=True)
def _gains(c_ptr, c_idx, weight, count):
    m = len(c_ptr) - 1
    gain = np.zeros(m)
    for k in range(m):
        s = 0.0
        for q in range(c_ptr[k], c_ptr[k + 1]):
            if count[c_idx[q]] == 0:
                s += weight[c_idx[q]]
        gain[k] = s
    return gain


@njit(cache=True)
def _open(k, c_ptr, c_idx, r_ptr, r_idx, weight, count, gain, need, reached):
    """Open candidate ``k``: rows it newly covers stop adding to their other candidates' gains."""
    for q in range(c_ptr[k], c_ptr[k + 1]):
        i = c_idx[q]
        if count[i] == 0:
            reached += need[i]
            for r in range(r_ptr[i], r_ptr[i + 1]):
                gain[r_idx[r]] -= weight[i]
        count[i] += 1
    return reached


@njit(cache=True)
def greedy(c_ptr, c_idx, r_ptr, r_idx, weight, allowed, chosen, k, need, target):
    """Add candidates to ``chosen`` (in place) one at a time, each the one adding the most uncovered ``weight``.

    Stops after ``k`` additions (``k < 0``: no limit), once the ``need`` covered
    reaches ``target``, or when no allowed candidate adds anything. Returns
    the weight and the need covered.
    """
    n = len(r_ptr) - 1
    count = _counts(c_ptr, c_idx, n, chosen)
    gain = _gains(c_ptr, c_idx, weight, count)
    reached = 0.0
    total = 0.0
    for i in range(n):
        if count[i] > 0:
            reached += need[i]
            total += weight[i]
    added = 0
    m = len(c_ptr) - 1
    while (k < 0 or added < k) and reached < target:
        best, bk = 0.0, -1
        for j in range(m):
            if allowed[j] and not chosen[j] and gain[j] > best:
                best, bk = gain[j], j
        if bk < 0:
            break
        total += best
        reached = _open(bk, c_ptr, c_idx, r_ptr, r_idx, weight, count, gain, need, reached)
        chosen[bk] = True
        added += 1
    return total, reached


@njit(cache=True)
def swap_search(c_ptr, c_idx, r_ptr, r_idx, weight, allowed, chosen, need, floor, max_passes):
    """Improve ``chosen`` (in place) by swaps (close one, open another) while the covered weight grows.

    A swap is taken only if the ``need`` covered stays at least ``floor``
    (``-inf``: any). For each open candidate the best swap partner is found
    from the rows only it covers (the partners that share them) and the best
    gain elsewhere; the first improving swap is made. Stops at a swap-optimal
    plan or after ``max_passes`` passes. Returns the covered weight, the
    covered need and the number of swaps.
    """
    n = len(r_ptr) - 1
    m = len(c_ptr) - 1
    count = _counts(c_ptr, c_idx, n, chosen)
    gain = _gains(c_ptr, c_idx, weight, count)
    need_gain = _gains(c_ptr, c_idx, need, count)
    total, reached = 0.0, 0.0
    for i in range(n):
        if count[i] > 0:
            total += weight[i]
            reached += need[i]
    extra = np.zeros(m)
    extra_need = np.zeros(m)
    touched = np.empty(m, np.int64)
    flag = np.zeros(m, np.bool_)
    moves = 0
    for _ in range(max_passes):
        improved = False
        for j in range(m):
            if not chosen[j]:
                continue
            tol = 1e-12 * max(1.0, total)
            loss, loss_need, nt = 0.0, 0.0, 0
            for q in range(c_ptr[j], c_ptr[j + 1]):
                i = c_idx[q]
                if count[i] == 1:
                    loss += weight[i]
                    loss_need += need[i]
                    for r in range(r_ptr[i], r_ptr[i + 1]):
                        k = r_idx[r]
                        if chosen[k] or not allowed[k]:
                            continue
                        if not flag[k]:
                            flag[k] = True
                            touched[nt] = k
                            nt += 1
                        extra[k] += weight[i]
                        extra_need[k] += need[i]
            best, bk, best_reach = loss + tol, -1, reached
            for t in range(nt):
                k = touched[t]
                v = gain[k] + extra[k]
                after = reached - loss_need + need_gain[k] + extra_need[k]
                if v > best and after >= floor:
                    best, bk, best_reach = v, k, after
            for k in range(m):
                if chosen[k] or not allowed[k] or flag[k]:
                    continue
                after = reached - loss_need + need_gain[k]
                if gain[k] > best and after >= floor:
                    best, bk, best_reach = gain[k], k, after
            for t in range(nt):
                k = touched[t]
                flag[k] = False
                extra[k] = 0.0
                extra_need[k] = 0.0
            if bk < 0:
                continue
            chosen[j] = False
            _close_both(j, c_ptr, c_idx, r_ptr, r_idx, weight, need, count, gain, need_gain)
            chosen[bk] = True
            _open_both(bk, c_ptr, c_idx, r_ptr, r_idx, weight, need, count, gain, need_gain)
            total += best - loss
            reached = best_reach
            moves += 1
            improved = True
        if not improved:
            break
    return _covered(count, weight), _covered(count, need), moves


@njit(cache=True)
def _covered(count, values):
    s = 0.0
    for i in range(len(count)):
        if count[i] > 0:
            s += values[i]
    return s


@njit(cache=True)
def _open_both(k, c_ptr, c_idx, r_ptr, r_idx, weight, need, count, gain, need_gain):
    for q in range(c_ptr[k], c_ptr[k + 1]):
        i = c_idx[q]
        if count[i] == 0:
            for r in range(r_ptr[i], r_ptr[i + 1]):
                gain[r_idx[r]] -= weight[i]
                need_gain[r_idx[r]] -= need[i]
        count[i] += 1


@njit(cache=True)
def _close_both(j, c_ptr, c_idx, r_ptr, r_idx, weight, need, count, gain, need_gain):
    for q in range(c_ptr[j], c_ptr[j + 1]):
        i = c_idx[q]
        count[i] -= 1
        if count[i] == 0:
            for r in range(r_ptr[i], r_ptr[i + 1]):
                gain[r_idx[r]] += weight[i]
                need_gain[r_idx[r]] += need[i]


@njit(cache=True)
def least_loss(c_ptr, c_idx, weight, chosen, count):
    """The open candidate whose closing loses the least ``weight`` (the rows only it covers), and that loss."""
    best, bj = np.inf, -1
    for j in range(len(c_ptr) - 1):
        if not chosen[j]:
            continue
        loss = 0.0
        for q in range(c_ptr[j], c_ptr[j + 1]):
            if count[c_idx[q]] == 1:
                loss += weight[c_idx[q]]
        if loss < best:
            best, bj = loss, j
    return bj, best


@njit(cache=True)
def counts(c_ptr, c_idx, n_rows, chosen):
    """How many chosen candidates cover each row."""
    return _counts(c_ptr, c_idx, n_rows, chosen)


@njit(cache=True)
def nearest_open(c_ptr, c_idx, r_ptr, r_idx, chosen, j, k):
    """Up to ``k`` open candidates sharing the most rows with candidate ``j`` (``j`` itself among them when open)."""
    m = len(c_ptr) - 1
    shared = np.zeros(m, np.int64)
    touched = np.empty(m, np.int64)
    nt = 0
    for q in range(c_ptr[j], c_ptr[j + 1]):
        i = c_idx[q]
        for r in range(r_ptr[i], r_ptr[i + 1]):
            c = r_idx[r]
            if chosen[c]:
                if shared[c] == 0:
                    touched[nt] = c
                    nt += 1
                shared[c] += 1
    found = touched[:nt]
    order = np.argsort(-shared[found], kind="mergesort")
    return found[order][:k]
