"""City-size path of the coverage models (geoplan.optimize.exact): every step keeps the brute-force optimum.

Seeded random instances small enough to enumerate every plan: the MCLP (every
p-subset) and the target model (the fewest sites, and among them the most
weighted people) are solved with the Lagrangian path on, with each of its
steps turned off in turn, with all of them off, and with the plain solver
path; every optimum must equal brute force. The bounds and the fixing rules
are also checked against enumeration without a solver.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from geoplan.errors import InputError
from geoplan.optimize import KindSpec, ModelOptions, Problem, build_model, optimize
from geoplan.optimize import exact
from geoplan.optimize import _kernels
from geoplan.optimize.lagrange import (
    Pattern,
    column_scaled_duals,
    mclp_bound,
    mclp_fixing,
    mclp_value,
    target_duals,
    target_fixing,
    target_value,
)
from geoplan.optimize.phasing import greedy_cover

SEEDS = range(32)
THRESHOLD_S = 600.0

#: Every step on, each one off in turn, and all off.
STEP_NAMES = [f.name for f in dataclasses.fields(exact.Steps)]
CONFIGS = {"all_on": exact.Steps(), **{f"no_{name}": exact.Steps(**{name: False}) for name in STEP_NAMES},
           "all_off": exact.Steps(**{name: False for name in STEP_NAMES})}


def instance(seed: int, *, n: int = 36, m: int = 11):
    """Demand and sites scattered over a 2 km square, walks 1.25 x the straight line; 0-2 existing sites."""
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 2000, (n, 2))
    places = rng.uniform(0, 2000, (m, 2))
    times = 1.25 * np.hypot(*(demand[:, None, :] - places[None, :, :]).transpose(2, 0, 1))
    times[times > 900] = np.inf
    pop60 = rng.uniform(1, 40, n).round(1)
    people = pd.DataFrame({"pop_60": pop60, "pop_80": (pop60 * rng.uniform(0, 0.4, n)).round(1)})
    n_existing = seed % 3
    sites = pd.DataFrame({"status": ["existing"] * n_existing + ["candidate"] * (m - n_existing)}, index=[f"s{j}" for j in range(m)])
    return times, people, sites


def covered_by(times, columns) -> np.ndarray:
    columns = list(columns)
    return (times[:, columns] <= THRESHOLD_S).any(axis=1) if columns else np.zeros(len(times), bool)


@functools.lru_cache(maxsize=None)
def brute_mclp(seed: int, p: int) -> float:
    times, people, sites = instance(seed)
    w = people["pop_60"].to_numpy() + people["pop_80"].to_numpy()
    existing = list(np.flatnonzero(sites["status"].to_numpy() == "existing"))
    candidates = np.flatnonzero(sites["status"].to_numpy() == "candidate")
    return max(w[covered_by(times, existing + list(s))].sum() for s in itertools.combinations(candidates, min(p, len(candidates))))


@functools.lru_cache(maxsize=None)
def brute_target(seed: int, pct: float, cap: int | None) -> tuple[int, float] | None:
    """The fewest candidates reaching pct % of pop_60 (at most cap), and the most weighted people among those plans."""
    times, people, sites = instance(seed)
    g = people["pop_60"].to_numpy()
    w = g + people["pop_80"].to_numpy()
    need = pct / 100 * g.sum()
    existing = list(np.flatnonzero(sites["status"].to_numpy() == "existing"))
    candidates = np.flatnonzero(sites["status"].to_numpy() == "candidate")
    for k in range(len(candidates) + 1 if cap is None else min(cap, len(candidates)) + 1):
        values = [w[c].sum() for s in itertools.combinations(candidates, k)
                  if g[(c := covered_by(times, existing + list(s)))].sum() >= need - 1e-9 * max(1.0, need)]
        if values:
            return k, max(values)
    return None


def target_case(seed: int) -> tuple[float, int | None]:
    times, people, sites = instance(seed)
    g = people["pop_60"].to_numpy()
    best = 100 * g[covered_by(times, range(times.shape[1]))].sum() / g.sum()
    pct = round(best * (0.55 + 0.4 * ((seed * 7) % 10) / 10), 3)
    if seed % 4 == 3:  # a cap of exactly the fewest sites needed: the count row binds
        return pct, brute_target(seed, pct, None)[0]
    return pct, None


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def steps(request, monkeypatch):
    monkeypatch.setattr(exact, "STEPS", CONFIGS[request.param])
    return CONFIGS[request.param]


def test_mclp_equals_brute_force_with_every_step_on_and_off(steps):
    for seed in SEEDS:
        times, people, sites = instance(seed)
        p = 1 + seed % 4
        problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=p, threshold_min=THRESHOLD_S / 60), cutoff_s=900)
        out = optimize(problem, ModelOptions("mclp"))
        assert out.main.status == "optimal", seed
        assert "after Lagrangian bounds" in out.main.solver
        assert out.main.objective == pytest.approx(brute_mclp(seed, p), rel=1e-9), seed
        assert out.main.bound == pytest.approx(out.main.objective, rel=1e-9)


def test_target_and_its_refining_equal_brute_force_with_every_step_on_and_off(steps):
    for seed in SEEDS:
        times, people, sites = instance(seed)
        pct, cap = target_case(seed)
        expected = brute_target(seed, pct, cap)
        assert expected is not None
        problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=pct, p=cap, threshold_min=THRESHOLD_S / 60), cutoff_s=900)
        out = optimize(problem, ModelOptions("target"))
        assert [s.status for s in out.stats] == ["optimal", "optimal"], seed
        assert out.main.objective == expected[0] == len(out.opened["station"]), seed
        assert out.stats[1].objective == pytest.approx(expected[1], rel=1e-9), seed


@pytest.mark.parametrize("options", [{"lagrangian": False}, {"reduce": False}, {"reduce": False, "lagrangian": True}],
                         ids=["plain", "no_reductions", "no_reductions_with_lagrangian"])
def test_the_plain_path_and_the_reductions_on_and_off_equal_brute_force(options):
    for seed in SEEDS:
        times, people, sites = instance(seed)
        p = 1 + seed % 4
        problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=p, threshold_min=THRESHOLD_S / 60), cutoff_s=900)
        out = optimize(problem, ModelOptions("mclp", **options))
        assert out.main.objective == pytest.approx(brute_mclp(seed, p), rel=1e-9)
        assert ("after Lagrangian bounds" in out.main.solver) == ModelOptions("mclp", **options).uses_lagrangian
        pct, cap = target_case(seed)
        problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=pct, p=cap, threshold_min=THRESHOLD_S / 60), cutoff_s=900)
        out = optimize(problem, ModelOptions("target", **options))
        assert (out.main.objective, out.stats[1].objective) == pytest.approx(brute_target(seed, pct, cap), rel=1e-9)


# --------------------------------------------------------------------------- the bounds and fixing, without a solver


def cover_of(seed: int):
    """The candidates' 0/1 pattern over the demand no existing site covers, and the weights and 60+ of those rows."""
    times, people, sites = instance(seed)
    existing = np.flatnonzero(sites["status"].to_numpy() == "existing")
    candidates = np.flatnonzero(sites["status"].to_numpy() == "candidate")
    rows = ~covered_by(times, existing)
    a = (times[np.ix_(rows, candidates)] <= THRESHOLD_S).astype(float)
    g = people["pop_60"].to_numpy()[rows]
    return Pattern.of(sparse.csr_matrix(a)), g + people["pop_80"].to_numpy()[rows], g


def plans(m: int, k: int | None = None):
    sizes = range(m + 1) if k is None else [k]
    for size in sizes:
        yield from (np.array(s, dtype=np.int64) for s in itertools.combinations(range(m), size))


@pytest.mark.parametrize("seed", SEEDS)
def test_mclp_lagrangian_bounds_and_fixing_hold_for_every_plan(seed):
    pattern, w, _ = cover_of(seed)
    n, m = pattern.shape
    p = min(1 + seed % 4, m)
    values = {tuple(s): float(w[pattern.covered(s)].sum()) for s in plans(m, p)}
    optimum = max(values.values())
    rng = np.random.default_rng(seed)
    for lam in (rng.uniform(0, 1, n) * w, np.zeros(n), w.copy()):  # any multipliers in [0, w] bound every plan
        assert mclp_value(pattern, w, lam, p)[0] >= optimum - 1e-9
    greedy_plan, gains = greedy_cover(pattern.by_col, w, k=p)
    incumbent = float(sum(gains))
    found = mclp_bound(pattern, w, p, incumbent, iterations=300)
    assert found.bound >= optimum - 1e-9 * max(1.0, optimum)
    assert found.plan_value <= optimum + 1e-9
    out, fixed_in, _ = mclp_fixing(pattern, w, found.lam, p, incumbent)
    for plan, value in values.items():
        if value > incumbent + 1e-9 * max(1.0, incumbent):  # every strictly better plan: none left out, every fixed-in one in
            assert not out[list(plan)].any() and set(np.flatnonzero(fixed_in)) <= set(plan)


@pytest.mark.parametrize("seed", SEEDS)
def test_target_bounds_and_fixing_hold_for_every_plan(seed):
    pattern, _, g = cover_of(seed)
    n, m = pattern.shape
    need = 0.6 * g[pattern.covered(np.arange(m))].sum()
    counts = {tuple(s): len(s) for s in plans(m) if g[pattern.covered(s)].sum() >= need}
    if not counts:
        pytest.skip("the target is out of reach")
    fewest = min(counts.values())
    lam, x = target_duals(pattern, g, need)
    assert lam is not None
    for multipliers in (lam, column_scaled_duals(pattern, g), np.random.default_rng(seed).uniform(0, 1, n)):
        value, reduced = target_value(pattern, multipliers, g, need)
        assert value <= fewest + 1e-9
        out, fixed_in = target_fixing(value, reduced, fewest)
        for plan, count in counts.items():
            if count <= fewest:
                assert not out[list(plan)].any() and set(np.flatnonzero(fixed_in)) <= set(plan)
    assert x.sum() <= fewest + 1e-9  # the LP is a relaxation


@pytest.mark.parametrize("seed", range(8))
def test_kernels_agree_with_the_reference_greedy_and_swaps_only_improve(seed):
    rng = np.random.default_rng(seed)
    a = sparse.csr_matrix((rng.random((200, 40)) < 0.08).astype(float))
    pattern = Pattern.of(a)
    w = rng.uniform(0, 10, 200)
    picked, gains = greedy_cover(pattern.by_col, w, k=6)
    chosen = np.zeros(40, bool)
    total, _ = _kernels.greedy(*pattern.kernel_args(), w, np.ones(40, bool), chosen, 6, np.zeros(200), np.inf)
    assert total == pytest.approx(sum(gains)) and sorted(np.flatnonzero(chosen)) == sorted(picked)
    before = w[pattern.covered(np.flatnonzero(chosen))].sum()
    need = rng.uniform(0, 5, 200)
    floor = need[pattern.covered(np.flatnonzero(chosen))].sum()
    after, reached, _ = _kernels.swap_search(*pattern.kernel_args(), w, np.ones(40, bool), chosen, need, floor, 50)
    assert chosen.sum() == 6 and after >= before - 1e-9 and reached >= floor - 1e-9
    assert after == pytest.approx(w[pattern.covered(np.flatnonzero(chosen))].sum())


def test_a_larger_instance_is_fixed_down_and_agrees_with_the_plain_solver():
    """3,000 demand points, 400 candidates: the bound leaves out most candidates and the optimum is the plain solver's."""
    rng = np.random.default_rng(5)
    demand = rng.uniform(0, 8000, (3000, 2))
    places = rng.uniform(0, 8000, (400, 2))
    d = np.hypot(*(demand[:, None, :] - places[None, :, :]).transpose(2, 0, 1)) * 1.25
    times = sparse.csr_matrix(np.where(d <= 900, d, 0.0))
    times.eliminate_zeros()
    pop60 = rng.gamma(2.0, 10.0, 3000)
    people = pd.DataFrame({"pop_60": pop60, "pop_80": 0.2 * pop60})
    sites = pd.DataFrame({"status": "candidate"}, index=[f"k{j}" for j in range(400)])
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=8), cutoff_s=900)
    ours = optimize(problem, ModelOptions("mclp"))
    plain = optimize(problem, ModelOptions("mclp", lagrangian=False))
    assert ours.main.status == plain.main.status == "optimal"
    assert ours.main.objective == pytest.approx(plain.main.objective, rel=1e-9)
    sizes = ours.reductions["station"]
    assert sizes["fixed_out"] > sizes["candidates_after_dominance"] / 2
    assert sizes["lagrangian_bound"] >= ours.main.objective - 1e-6


def test_lagrangian_option_is_checked():
    with pytest.raises(InputError, match="lagrangian is not used by the pmedian model"):
        ModelOptions("pmedian", lagrangian=True)
    with pytest.raises(InputError, match="lagrangian must be true or false"):
        ModelOptions("mclp", lagrangian="yes")
    assert ModelOptions("mclp").uses_lagrangian and not ModelOptions("mclp", reduce=False).uses_lagrangian
    assert not ModelOptions("consolidate").uses_lagrangian


def test_models_the_path_does_not_take_go_to_the_solver_whole():
    times, people, sites = instance(1)
    for spec, options in ((KindSpec(p=2, budget=2), ModelOptions("mclp")), (KindSpec(p=2, capacity=50), ModelOptions("mclp")),
                          (KindSpec(target_pct=50), ModelOptions("target", minimize="cost"))):
        problem = Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=900)
        _, blocks = build_model(problem, options)
        assert not exact.applies(problem, options, blocks)
        assert "after Lagrangian" not in optimize(problem, options).main.solver


# --------------------------------------------------------------------------- the target's perturbation search


def sparse_case(seed: int, n: int = 300, m: int = 18):
    rng = np.random.default_rng(seed)
    pattern = Pattern.of(sparse.csr_matrix((rng.random((n, m)) < 0.08).astype(float)))
    g = rng.uniform(1, 10, n)
    return pattern, g, 0.8 * g[pattern.covered(np.arange(m))].sum()


def fewest_sites(pattern: Pattern, g: np.ndarray, target: float) -> int:
    dense = pattern.by_col.toarray() > 0
    m = dense.shape[1]
    return next(k for k in range(m + 1) if any(g[dense[:, list(s)].any(axis=1)].sum() >= target for s in itertools.combinations(range(m), k)))


@pytest.mark.parametrize("seed", range(8))
def test_the_perturbation_search_returns_plans_that_reach_the_target(seed):
    pattern, g, target = sparse_case(seed)
    shrunk = exact._shrink(pattern, g, exact._greedy(pattern, g, -1, need=g, target=target), target, None)
    found = exact._perturb(pattern, g, shrunk, target, 0, None)
    assert exact._value(pattern, g, found) >= target
    assert fewest_sites(pattern, g, target) <= found.sum() <= shrunk.sum()
    assert exact._perturb(pattern, g, shrunk, target, int(shrunk.sum()), None).sum() == shrunk.sum()  # at the bound: nothing to do


def test_the_perturbation_search_finds_fewer_sites_than_taking_away_one_at_a_time():
    pattern, g, target = sparse_case(0)
    shrunk = exact._shrink(pattern, g, exact._greedy(pattern, g, -1, need=g, target=target), target, None)
    found = exact._perturb(pattern, g, shrunk, target, 0, None)
    assert found.sum() == fewest_sites(pattern, g, target) < shrunk.sum()


@pytest.mark.parametrize("seed", range(4))
def test_nearest_open_sites_share_the_most_rows(seed):
    rng = np.random.default_rng(seed)
    a = (rng.random((80, 25)) < 0.15).astype(float)
    pattern = Pattern.of(sparse.csr_matrix(a))
    chosen = rng.random(25) < 0.5
    j = int(np.flatnonzero(chosen)[0])
    found = _kernels.nearest_open(*pattern.kernel_args(), chosen, j, 4)
    shared = np.where(chosen, a[:, j] @ a, 0)
    assert chosen[found].all() and len(found) == min(4, int((shared > 0).sum()))
    assert shared[found].min() >= np.sort(shared)[::-1][len(found) - 1]  # no open site left out shares more rows


# --------------------------------------------------------------------------- no time left


@pytest.mark.parametrize("lagrangian", [True, False], ids=["geoplan", "plain"])
def test_no_time_left_keeps_stage_one_and_reports_the_refining_stage_as_not_run(monkeypatch, lagrangian):
    """With every solve's overhead above the limit, nothing waits for the solver past it: stage 1's plan is kept."""
    from geoplan.optimize import SolverOptions, solve

    times, people, sites = instance(5)
    pct, cap = target_case(5)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=pct, p=cap, threshold_min=THRESHOLD_S / 60), cutoff_s=900)
    reference = optimize(problem, ModelOptions("target", lagrangian=lagrangian))
    monkeypatch.setattr(solve, "OVERHEAD_S", 1e6)
    out = optimize(problem, ModelOptions("target", lagrangian=lagrangian), SolverOptions(time_limit_s=30))
    expected = brute_target(5, pct, cap)
    assert out.main.objective >= expected[0] and out.main.objective == len(out.opened["station"])
    second = out.stats[1]
    if second.status != "optimal":
        assert second.status == "time_limit" and "not run" in second.solver
    assert second.objective <= expected[1] + 1e-9
    if not lagrangian:  # the plain path's stage 1 still runs (there is no plan without it); its refining stage does not
        assert second.solver.startswith("HiGHS (not run: no time left)") and second.bound is None
        assert list(out.opened["station"]) == list(reference.opened["station"]) or out.main.objective == reference.main.objective


@pytest.mark.parametrize("limit_s", [1e-4, 1e-3, 0.02])
def test_a_tiny_time_limit_gives_a_plan_never_an_error(limit_s):
    """However little time is given, the target model answers with a plan that reaches the target (or says none can)."""
    from geoplan.optimize import SolverOptions

    for seed in range(8):
        times, people, sites = instance(seed)
        pct, cap = target_case(seed)
        expected = brute_target(seed, pct, cap)
        if expected is None:
            continue
        problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=pct, p=cap, threshold_min=THRESHOLD_S / 60),
                                      cutoff_s=900)
        out = optimize(problem, ModelOptions("target"), SolverOptions(time_limit_s=limit_s))
        assert out.main.objective >= expected[0] and out.main.objective == len(out.opened["station"]), seed
        assert out.main.bound is None or out.main.bound <= expected[0] + 1e-9, seed


def test_the_lp_support_heuristic_after_the_deadline_gives_no_error(monkeypatch):
    """Steps that run once the time is up (here the heuristic solve after a slow search) skip the solver, never fail."""
    import time as clock

    from geoplan.optimize import SolverOptions

    def slow_search(pattern, need, chosen, *args, **kwargs):
        clock.sleep(0.25)  # past the whole limit
        return chosen

    calls = []
    support = exact._lp_support_plan
    monkeypatch.setattr(exact, "_perturb", slow_search)
    monkeypatch.setattr(exact, "_lp_support_plan", lambda *a: calls.append(1) or support(*a))
    for seed in range(16):
        times, people, sites = instance(seed, n=400, m=60)
        g = people["pop_60"].to_numpy()
        reachable = 100 * g[covered_by(times, range(times.shape[1]))].sum() / g.sum()
        problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=0.9 * reachable, threshold_min=THRESHOLD_S / 60),
                                      cutoff_s=900)
        out = optimize(problem, ModelOptions("target"), SolverOptions(time_limit_s=0.2))
        opened = list(out.opened["station"]) + list(np.flatnonzero(sites["status"] == "existing"))
        assert g[covered_by(times, opened)].sum() >= 0.9 * reachable / 100 * g.sum() - 1e-6, seed  # a plan that passes
        if calls:
            break
    assert calls, "no instance reached the heuristic solve"
