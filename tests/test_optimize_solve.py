"""The solver is a dependency to verify: every answer is checked, a wrong one is solved again, the library stays quiet."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from geoplan.optimize import KindSpec, ModelOptions, Problem, SolverError, build_model, optimize, solve as solve_module
from geoplan.optimize.solve import Solution, check_solution, solve_model


def instance(seed=3, n=40, m=9, existing=1):
    rng = np.random.default_rng(seed)
    times = rng.uniform(0, 1400, (n, m))
    times[times > 900] = np.inf
    people = pd.DataFrame({"pop_60": rng.uniform(5, 30, n).round(1), "pop_80": rng.uniform(0, 6, n).round(1)})
    sites = pd.DataFrame({"status": ["existing"] * existing + ["candidate"] * (m - existing)}, index=[f"s{j}" for j in range(m)])
    return times, people, sites


def fewest_sites_brute_force(times, people, sites, target_pct, threshold_s):
    """The fewest candidates that bring target_pct % of pop_60 within the threshold, by enumeration."""
    within = times <= threshold_s
    existing = np.flatnonzero(sites["status"].to_numpy() == "existing")
    candidates = np.flatnonzero(sites["status"].to_numpy() == "candidate")
    g = people["pop_60"].to_numpy()
    need = target_pct / 100 * g.sum()
    for k in range(len(candidates) + 1):
        for chosen in itertools.combinations(candidates, k):
            covered = within[:, list(existing) + list(chosen)].any(axis=1)
            if g[covered].sum() >= need - 1e-9:
                return k
    return None


@pytest.fixture
def start_returned_as_optimal(monkeypatch):
    """A solver with the fault seen with highspy 1.16: given a MIP start, it returns the start untouched, labelled
    optimal, with an objective that is not the start's."""
    real = solve_module._solve_highs
    calls = []

    def faulty(model, problem, variables, *args):
        solution = real(model, problem, variables, *args)
        calls.append(bool(model.start))
        if not model.start or solution.values is None:
            return solution
        values = solution.values.copy()
        for column, value in model.start.items():
            values[column] = value
        stats = solution.stats.__class__(**{**solution.stats.as_dict(), "objective": solution.stats.objective - 1, "gap": 0.0})
        return Solution(values, stats)

    monkeypatch.setattr(solve_module, "_solve_highs", faulty)
    return calls


@pytest.mark.parametrize("seed", range(3))
def test_a_wrong_answer_is_caught_and_solved_again(seed, start_returned_as_optimal):
    times, people, sites = instance(seed)
    target_pct = 85.0
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=target_pct, threshold_min=15), cutoff_s=900)
    best = fewest_sites_brute_force(times, people, sites, target_pct, 900)
    out = optimize(problem, ModelOptions("target", refine=False))
    assert start_returned_as_optimal[:2] == [True, False]  # the faulty answer, then a solve without the start
    assert out.main.status == "optimal"
    assert out.main.objective == best == len(out.opened["station"])
    assert "without the start" in out.main.check


def test_every_answer_that_passes_is_labelled_passed():
    times, people, sites = instance()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=3), cutoff_s=900)
    out = optimize(problem, ModelOptions("mclp"))
    assert out.main.check == "passed"


def test_no_solver_answer_passing_raises(monkeypatch):
    times, people, sites = instance()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=3), cutoff_s=900)
    mip, _ = build_model(problem, ModelOptions("mclp"))
    real = solve_module._solve_once

    def always_wrong(model, options, stage):
        solution = real(model, options, stage)
        return Solution(solution.values, solution.stats.__class__(**{**solution.stats.as_dict(), "objective": -5.0}))

    monkeypatch.setattr(solve_module, "_solve_once", always_wrong)
    with pytest.raises(SolverError, match="No solver returned a solution that satisfies"):
        solve_model(mip)


def test_check_solution_names_what_is_wrong():
    times, people, sites = instance()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=2), cutoff_s=900)
    mip, _ = build_model(problem, ModelOptions("mclp"))
    good = solve_model(mip)
    assert check_solution(mip, good.values, good.stats.objective) == []
    x = good.values.copy()
    x[mip.integer] = 1.0  # every site open: over p
    assert any("constraints violated" in p for p in check_solution(mip, x, None))
    x = good.values.copy()
    x[np.flatnonzero(mip.integer)[0]] = 0.5
    assert any("fractional" in p for p in check_solution(mip, x, None))


def test_refine_objective_counts_the_already_covered():
    """Both stages' objectives include the people the existing site already covers, as SolverStats says."""
    times, people, sites = instance(existing=2)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=80, threshold_min=15), cutoff_s=900)
    out = optimize(problem, ModelOptions("target"))
    refine = out.stats[1]
    assert refine.stage == "refine"
    open_sites = np.r_[out.kept["station"], out.opened["station"]]
    covered = (times[:, open_sites] <= 900).any(axis=1)
    assert refine.objective == pytest.approx(float(problem.weight[covered].sum()), rel=1e-9)


def test_solving_prints_nothing(capfd):
    times, people, sites = instance()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=2), cutoff_s=900)
    optimize(problem, ModelOptions("mclp"))
    optimize(problem, ModelOptions("pmedian"))
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
