"""Each model's optimum equals brute-force enumeration on small seeded random instances."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from geoplan.optimize import KindSpec, ModelOptions, Problem, optimize, plan_problem, priority_weights

CUTOFF = 1200.0
TAU = 600.0


def instance(seed: int, *, n: int = 30, m: int = 8, n_existing: int = 2, kinds=("station",), cost: bool = False):
    """Random walking times (inf beyond the cutoff), people per group, and sites (the first ``n_existing`` existing)."""
    rng = np.random.default_rng(seed)
    times = rng.uniform(0, 1600, (n, m))
    times[times > CUTOFF] = np.inf
    times[rng.random((n, m)) < 0.05] = 0.0  # a few explicit zeros: a site on the cell's own street
    pop60 = rng.uniform(0, 40, n).round(1)
    people = pd.DataFrame(
        {"pop_total": pop60 * 4, "pop_60": pop60, "pop_65": pop60 * 0.7, "pop_80": (pop60 * rng.uniform(0, 0.4, n)).round(1)},
        index=pd.Index([f"d{i}" for i in range(n)], name="demand_id"),
    )
    sites = pd.DataFrame(
        {
            "status": ["existing"] * n_existing + ["candidate"] * (m - n_existing),
            "kind": [kinds[i % len(kinds)] for i in range(n_existing)] + ["station"] * (m - n_existing),
            "cost": rng.integers(1, 5, m).astype(float) if cost else 1.0,
        },
        index=pd.Index([f"s{j}" for j in range(m)], name="site_id"),
    )
    return times, people, sites


def covered(times, columns, tau=TAU):
    columns = list(columns)
    if not columns:
        return np.zeros(times.shape[0], bool)
    return (times[:, columns] <= tau).any(axis=1)


def subsets(items, max_size, min_size=0):
    for k in range(min_size, max_size + 1):
        yield from itertools.combinations(items, k)


SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [1, 2, 3])
def test_mclp_equals_brute_force(seed, p):
    times, people, sites = instance(seed)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=p, threshold_min=TAU / 60), cutoff_s=CUTOFF)
    w = priority_weights(people).to_numpy()
    existing, candidates = [0, 1], range(2, 8)
    best = max(w[covered(times, existing + list(s))].sum() for s in itertools.combinations(candidates, p))
    out = optimize(problem, ModelOptions("mclp"))
    assert out.main.status == "optimal"
    assert out.main.objective == pytest.approx(best, rel=1e-9)
    chosen = out.opened["station"]
    assert len(chosen) <= p
    assert w[covered(times, existing + list(chosen))].sum() == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_mclp_with_costs_and_budget_equals_brute_force(seed):
    times, people, sites = instance(seed, cost=True)
    budget = 6.0
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=4, budget=budget, threshold_min=10), cutoff_s=CUTOFF)
    w = priority_weights(people).to_numpy()
    cost = sites["cost"].to_numpy()
    best = max(
        w[covered(times, [0, 1, *s])].sum() for s in subsets(range(2, 8), 4) if cost[list(s)].sum() <= budget
    )
    out = optimize(problem, ModelOptions("mclp"))
    assert out.main.objective == pytest.approx(best, rel=1e-9)
    assert cost[out.opened["station"]].sum() <= budget


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("minimize", ["count", "cost"])
def test_target_equals_brute_force(seed, minimize):
    times, people, sites = instance(seed, cost=True)
    g = people["pop_60"].to_numpy()
    reachable = g[covered(times, range(8))].sum() / g.sum() * 100
    target_pct = round(0.9 * reachable, 3)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=target_pct, threshold_min=10), cutoff_s=CUTOFF)
    cost = sites["cost"].to_numpy() if minimize == "cost" else np.ones(8)
    need = target_pct / 100 * g.sum()
    best = min(cost[list(s)].sum() for s in subsets(range(2, 8), 6) if g[covered(times, [0, 1, *s])].sum() >= need - 1e-9)
    out = optimize(problem, ModelOptions("target", minimize=minimize))
    assert out.main.objective == pytest.approx(best)
    chosen = out.opened["station"]
    assert g[covered(times, [0, 1, *chosen])].sum() >= need - 1e-6
    assert cost[chosen].sum() == pytest.approx(best)
    # the refining stage keeps the count/cost and reaches the most weighted people among such plans
    w = priority_weights(people).to_numpy()
    best_w = max(
        w[covered(times, [0, 1, *s])].sum()
        for s in subsets(range(2, 8), 6)
        if g[covered(times, [0, 1, *s])].sum() >= need - 1e-9 and abs(cost[list(s)].sum() - best) < 1e-9
    )
    assert w[covered(times, [0, 1, *chosen])].sum() == pytest.approx(best_w, rel=1e-9)


def median_cost(times, w, columns, *, limit=CUTOFF, penalty=CUTOFF):
    t = np.where(times <= limit, times, np.inf)[:, list(columns)] if len(columns) else np.full((times.shape[0], 1), np.inf)
    return float((w * np.minimum(t.min(axis=1), penalty)).sum())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("within_threshold", [False, True])
def test_pmedian_equals_brute_force(seed, within_threshold):
    times, people, sites = instance(seed)
    p = 3
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=p, threshold_min=TAU / 60), cutoff_s=CUTOFF)
    w = priority_weights(people).to_numpy()
    limit = TAU if within_threshold else CUTOFF
    best = min(median_cost(times, w, [0, 1, *s], limit=limit) for s in itertools.combinations(range(2, 8), p))
    out = optimize(problem, ModelOptions("pmedian", within_threshold=within_threshold))
    assert out.main.status == "optimal"
    assert out.main.objective == pytest.approx(best, rel=1e-9)


def capacitated_value(times, objective, need, capacity, columns, tau=TAU, sense="max"):
    """The transport LP: serve demand within ``tau`` by the open ``columns`` without exceeding capacity."""
    pairs = [(i, j) for j in columns for i in range(times.shape[0]) if times[i, j] <= tau]
    if not pairs:
        return 0.0
    i = np.array([a for a, _ in pairs])
    j = np.array([b for _, b in pairs])
    rows = []
    for r in range(times.shape[0]):
        rows.append((i == r).astype(float))
    for c in columns:
        rows.append(np.where(j == c, need[i], 0.0))
    b = np.r_[np.ones(times.shape[0]), [capacity[c] for c in columns]]
    res = linprog(-objective[i] if sense == "max" else objective[i], A_ub=np.array(rows), b_ub=b, bounds=(0, 1), method="highs")
    return -res.fun if sense == "max" else res.fun


@pytest.mark.parametrize("seed", SEEDS)
def test_capacitated_mclp_equals_brute_force(seed):
    times, people, sites = instance(seed)
    sites = sites.assign(capacity=[30.0, np.nan, 50.0, np.nan, 20.0, np.nan, np.nan, 70.0])
    spec = KindSpec(p=2, threshold_min=TAU / 60, capacity=40.0, use_rate=0.5)
    problem = Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=CUTOFF)
    w = priority_weights(people).to_numpy()
    need = people["pop_60"].to_numpy() * 0.5
    capacity = np.where(np.isnan(sites["capacity"]), 40.0, sites["capacity"])
    best = max(capacitated_value(times, w, need, capacity, [0, 1, *s]) for s in subsets(range(2, 8), 2))
    out = optimize(problem, ModelOptions("mclp"))
    assert out.main.objective == pytest.approx(best, rel=1e-7)
    # the assignment respects every capacity
    d, s, share = out.assignment["station"]
    load = pd.Series(need[d] * share).groupby(s).sum()
    assert (load.to_numpy() <= capacity[load.index.to_numpy()] + 1e-6).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_capacitated_target_equals_brute_force(seed):
    times, people, sites = instance(seed)
    spec = KindSpec(threshold_min=TAU / 60, capacity=60.0, target_pct=30.0)
    problem = Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=CUTOFF)
    g = people["pop_60"].to_numpy()
    capacity = np.full(8, 60.0)
    need = 0.30 * g.sum()
    feasible = [s for s in subsets(range(2, 8), 6) if capacitated_value(times, g, g, capacity, [0, 1, *s]) >= need - 1e-6]
    if not feasible:
        pytest.skip("target out of reach for this seed")
    best = min(len(s) for s in feasible)
    out = optimize(problem, ModelOptions("target", refine=False))
    assert out.main.objective == pytest.approx(best)


@pytest.mark.parametrize("seed", SEEDS)
def test_capacitated_pmedian_equals_brute_force(seed):
    times, people, sites = instance(seed)
    spec = KindSpec(p=2, threshold_min=TAU / 60, capacity=250.0)
    problem = Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=CUTOFF)
    w = priority_weights(people).to_numpy()
    need = people["pop_60"].to_numpy()
    capacity = np.full(8, 250.0)
    tmat = np.where(np.isfinite(times), times, CUTOFF)
    # cost = sum w * penalty + sum w (t - penalty) a  (a person served nowhere counts the cutoff)
    best = min(float((w * CUTOFF).sum()) + _median_lp(tmat, times, w, need, capacity, [0, 1, *s]) for s in subsets(range(2, 8), 2))
    out = optimize(problem, ModelOptions("pmedian"))
    assert out.main.objective == pytest.approx(best, rel=1e-7)


def _median_lp(tmat, times, w, need, capacity, columns):
    pairs = [(i, j) for j in columns for i in range(times.shape[0]) if times[i, j] < CUTOFF]
    if not pairs:
        return 0.0
    i = np.array([a for a, _ in pairs])
    j = np.array([b for _, b in pairs])
    rows = [(i == r).astype(float) for r in range(times.shape[0])] + [np.where(j == c, need[i], 0.0) for c in columns]
    b = np.r_[np.ones(times.shape[0]), [capacity[c] for c in columns]]
    res = linprog(w[i] * (tmat[i, j] - CUTOFF), A_ub=np.array(rows), b_ub=b, bounds=(0, 1), method="highs")
    return res.fun


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("one_per_site", [False, True])
def test_two_kinds_equal_brute_force(seed, one_per_site):
    times, people, sites = instance(seed, m=7, kinds=("station", "canteen"), cost=True)
    specs = [KindSpec("station", p=2, threshold_min=10), KindSpec("canteen", p=2, threshold_min=7)]
    problem = Problem.from_matrix(times, people, sites, specs=specs, cutoff_s=CUTOFF)
    w = priority_weights(people).to_numpy()
    cost = sites["cost"].to_numpy()
    total_budget = 7.0
    best = -1.0
    for a in subsets(range(2, 7), 2):
        for b in subsets(range(2, 7), 2):
            if one_per_site and set(a) & set(b):
                continue
            if cost[list(a)].sum() + cost[list(b)].sum() > total_budget:
                continue
            value = w[covered(times, [0, *a], 600)].sum() + w[covered(times, [1, *b], 420)].sum()
            best = max(best, value)
    out = optimize(problem, ModelOptions("mclp", one_per_site=one_per_site, total_budget=total_budget))
    assert out.main.objective == pytest.approx(best, rel=1e-9)
    if one_per_site:
        assert not set(out.opened["station"]) & set(out.opened["canteen"])


@pytest.mark.parametrize("seed", SEEDS)
def test_consolidation_equals_brute_force(seed):
    times, people, sites = instance(seed, n=30, m=8, n_existing=5)
    g60, g80 = people["pop_60"].to_numpy(), people["pop_80"].to_numpy()
    existing = list(range(5))
    catchment = np.array([g60[times[:, j] <= TAU].sum() for j in existing])
    min_catchment = float(np.sort(catchment)[3])  # the 3 smallest may close
    closable = [j for j in existing if catchment[j] < min_catchment]
    fixed = [j for j in existing if j not in closable]
    spec = KindSpec(p=1, threshold_min=TAU / 60, min_catchment=min_catchment)
    problem = Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=CUTOFF)
    today = covered(times, existing)
    best = None
    for keep in subsets(closable, len(closable)):
        for new in subsets(range(5, 8), 1):
            after = covered(times, [*fixed, *keep, *new])
            if g60[after].sum() >= g60[today].sum() - 1e-9 and g80[after].sum() >= g80[today].sum() - 1e-9:
                value = len(keep) + len(new)
                best = value if best is None else min(best, value)
    out = optimize(problem, ModelOptions("consolidate"))
    assert out.main.objective == pytest.approx(best)
    assert len(out.closed["station"]) == len(closable) - (best - len(out.opened["station"]))
    after = covered(times, [*out.kept["station"], *out.opened["station"]])
    assert g60[after].sum() >= g60[today].sum() - 1e-6


def test_weights_change_the_choice():
    """80+ counting more can move a site: with weight on pop_80 only, the optimum follows the 80+."""
    times = np.array([[100.0, np.inf], [np.inf, 100.0]])
    people = pd.DataFrame({"pop_60": [10.0, 8.0], "pop_80": [1.0, 5.0]})
    sites = pd.DataFrame({"status": ["candidate", "candidate"]}, index=["a", "b"])
    plain = Problem.from_matrix(times, people, sites, specs=KindSpec(p=1), weights={"pop_60": 1.0}, cutoff_s=900)
    old_first = Problem.from_matrix(times, people, sites, specs=KindSpec(p=1), cutoff_s=900)
    assert list(optimize(plain).opened["station"]) == [0]
    assert list(optimize(old_first).opened["station"]) == [1]  # 8 + 5 * 1 extra = 13 > 10 + 1 = 11


def test_plan_from_problem_reports_coverage_and_phasing():
    times, people, sites = instance(3, n=40, m=9)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=3, threshold_min=10), cutoff_s=CUTOFF)
    plan = plan_problem(problem, ModelOptions("mclp"), thresholds_min=(5, 10, 15))
    new = plan.new_sites
    assert list(new["phase"]) == [1, 2, 3]
    # marginal gains add up to the plan's gain in covered people, and decrease (greedy order)
    after = plan.coverage.loc[("station", "pop_60", 10.0)]
    assert new["gain_pop_60"].sum() == pytest.approx(after["after"] - after["before"])
    assert (np.diff(new["gain_weighted"].to_numpy()) <= 1e-9).all()
    w = priority_weights(people).to_numpy()
    assert plan.solver.objective == pytest.approx(w[covered(times, [0, 1, *problem.sites.index.get_indexer(new.index)])].sum())
