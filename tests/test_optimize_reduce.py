"""The reductions keep the optimum: reduced and unreduced optima are equal on seeded random instances."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from geoplan.optimize import KindSpec, ModelOptions, Problem, optimize, priority_weights
from geoplan.optimize.reduce import dominated_columns, merge_identical_rows


def clustered(seed: int, *, n: int = 300, m: int = 30, n_existing: int = 1, cost: bool = False):
    """Demand drawn from few covering patterns (many identical rows) and nested candidates (many dominated)."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 1300, (30, m))
    patterns[patterns > 1000] = np.inf
    # every third candidate covers a subset of the one before it: dominated
    for j in range(1, m, 3):
        patterns[:, j] = np.where(np.isfinite(patterns[:, j - 1]) & (rng.random(30) < 0.6), patterns[:, j - 1] + 30, np.inf)
    times = patterns[rng.integers(0, 30, n)]
    pop60 = rng.uniform(1, 40, n).round(1)
    people = pd.DataFrame({"pop_60": pop60, "pop_80": (pop60 * rng.uniform(0, 0.4, n)).round(1)})
    sites = pd.DataFrame(
        {"status": ["existing"] * n_existing + ["candidate"] * (m - n_existing), "cost": rng.integers(1, 4, m).astype(float) if cost else 1.0},
        index=[f"s{j}" for j in range(m)],
    )
    return times, people, sites


def both(problem, **options):
    reduced = optimize(problem, ModelOptions(reduce=True, **options))
    plain = optimize(problem, ModelOptions(reduce=False, **options))
    assert reduced.main.status == plain.main.status == "optimal"
    return reduced, plain


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p", [2, 5])
def test_mclp_reduced_equals_unreduced(seed, p):
    times, people, sites = clustered(seed)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=p, threshold_min=8), cutoff_s=1000)
    reduced, plain = both(problem, model="mclp")
    assert reduced.main.objective == pytest.approx(plain.main.objective, rel=1e-9)
    sizes = reduced.reductions["station"]
    assert sizes["demand_after_merge"] < sizes["demand_in_model"]  # rows were merged
    assert sizes["candidates_after_dominance"] < sizes["candidates"]  # candidates were dropped
    assert reduced.main.n_variables < plain.main.n_variables


@pytest.mark.parametrize("seed", range(4))
def test_mclp_with_budget_reduced_equals_unreduced(seed):
    times, people, sites = clustered(seed, cost=True)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=6, budget=7, threshold_min=8), cutoff_s=1000)
    reduced, plain = both(problem, model="mclp")
    assert reduced.main.objective == pytest.approx(plain.main.objective, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("minimize", ["count", "cost"])
def test_target_reduced_equals_unreduced(seed, minimize):
    times, people, sites = clustered(seed, cost=True)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=60, threshold_min=8), cutoff_s=1000)
    reduced, plain = both(problem, model="target", minimize=minimize, refine=False)
    assert reduced.main.objective == pytest.approx(plain.main.objective)


@pytest.mark.parametrize("seed", range(4))
def test_pmedian_reduced_equals_unreduced(seed):
    times, people, sites = clustered(seed)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=4, threshold_min=8), cutoff_s=1000)
    reduced, plain = both(problem, model="pmedian")
    assert reduced.main.objective == pytest.approx(plain.main.objective, rel=1e-9)
    assert reduced.reductions["station"]["demand_after_merge"] < reduced.reductions["station"]["demand_in_model"]


@pytest.mark.parametrize("seed", range(3))
def test_capacitated_and_consolidation_reduced_equal_unreduced(seed):
    times, people, sites = clustered(seed, n_existing=6)
    cap = Problem.from_matrix(times, people, sites, specs=KindSpec(p=3, threshold_min=8, capacity=400), cutoff_s=1000)
    reduced, plain = both(cap, model="mclp")
    assert reduced.main.objective == pytest.approx(plain.main.objective, rel=1e-7)
    spec = KindSpec(p=2, threshold_min=8, min_catchment=1e9)  # every existing site may close
    con = Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=1000)
    reduced, plain = both(con, model="consolidate", refine=False)
    assert reduced.main.objective == pytest.approx(plain.main.objective)


@pytest.mark.parametrize("seed", range(3))
def test_two_kinds_reduced_equals_unreduced(seed):
    times, people, sites = clustered(seed, cost=True)
    specs = [KindSpec("station", p=3, threshold_min=8), KindSpec("canteen", p=2, threshold_min=8)]
    problem = Problem.from_matrix(times, people, sites, specs=specs, cutoff_s=1000)
    for one_per_site in (False, True):
        reduced, plain = both(problem, model="mclp", one_per_site=one_per_site, total_budget=8)
        assert reduced.main.objective == pytest.approx(plain.main.objective, rel=1e-9)


def test_merge_identical_rows_sums_values():
    cover = sparse.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0]]))
    merged, (w,), group = merge_identical_rows(cover, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert merged.toarray().tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert w.tolist() == [4.0, 7.0, 4.0]
    assert group.tolist() == [0, 1, 0, 2, 1]
    times = sparse.csr_matrix(np.array([[5.0, 0.0], [5.0, 0.0], [6.0, 0.0]]))
    _, (w,), _ = merge_identical_rows(times, np.ones(3), with_data=True)
    assert w.tolist() == [2.0, 1.0]  # same pattern, other times: not merged


def test_dominated_columns_by_hand():
    cover = sparse.csr_matrix(np.array([
        [1, 1, 0, 1, 0],
        [1, 0, 0, 1, 0],
        [0, 0, 1, 1, 0],
    ]))
    # column 1 ⊂ column 0 ⊂ column 3; 2 ⊂ 3; 4 covers nothing
    assert dominated_columns(cover, np.ones(5)).tolist() == [True, True, True, False, True]
    # a dearer superset does not dominate
    assert dominated_columns(cover, np.array([1.0, 1.0, 1.0, 5.0, 1.0])).tolist() == [False, True, False, False, True]
    # equal sets at equal cost: the first is kept
    twins = sparse.csr_matrix(np.array([[1, 1], [0, 0]]))
    assert dominated_columns(twins, np.ones(2)).tolist() == [False, True]


@pytest.mark.parametrize("seed", range(20))
def test_dominance_keeps_the_brute_force_optimum(seed):
    """Solver-free: the best p-subset of all candidates covers as much as the best of the undominated ones."""
    rng = np.random.default_rng(seed)
    cover = (rng.random((15, 9)) < 0.3).astype(int)
    cover[:, 1] = cover[:, 0] * (rng.random(15) < 0.5)  # a subset of column 0
    w = rng.uniform(0, 10, 15)
    cost = rng.integers(1, 3, 9).astype(float)
    keep = np.flatnonzero(~dominated_columns(sparse.csr_matrix(cover), cost))

    def best(columns, p, budget):
        values = [0.0]
        for k in range(1, p + 1):
            for s in itertools.combinations(columns, k):
                if cost[list(s)].sum() <= budget:
                    values.append(w[cover[:, list(s)].any(axis=1)].sum())
        return max(values)

    for p, budget in ((1, 9), (2, 3), (3, 9), (4, 5)):
        assert best(keep, p, budget) == pytest.approx(best(range(9), p, budget))


def test_dominance_with_fewer_candidates_left_than_p():
    """Everything dominated by one site: one candidate remains for p = 3, and the optimum is unchanged."""
    times = np.array([[100.0, 200.0, np.inf, 100.0], [np.inf, 300.0, 50.0, 100.0], [np.inf, np.inf, np.inf, 10.0]])
    people = pd.DataFrame({"pop_60": [5.0, 6.0, 7.0], "pop_80": [1.0, 0.0, 2.0]})
    sites = pd.DataFrame({"status": "candidate"}, index=list("abcd"))
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=3, threshold_min=10), cutoff_s=600)
    reduced, plain = both(problem, model="mclp")
    assert reduced.reductions["station"]["candidates_after_dominance"] == 1
    assert reduced.main.objective == pytest.approx(plain.main.objective)
    assert reduced.main.objective == pytest.approx(priority_weights(people).sum())
