"""Bad input and hard stops give clear messages: p beyond the candidates, negative capacity, unknown group,
an infeasible target, a time limit."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from geoplan.errors import InfeasibleError, InputError
from geoplan.optimize import KindSpec, ModelOptions, Problem, SolverOptions, TargetUnreachable, optimize, plan_problem, priority_weights


def small(n_existing=1):
    rng = np.random.default_rng(7)
    times = rng.uniform(0, 1500, (20, 6))
    times[times > 900] = np.inf
    times[:3] = np.inf  # three cells beyond every site
    people = pd.DataFrame({"pop_total": rng.uniform(50, 90, 20), "pop_60": rng.uniform(5, 20, 20), "pop_80": rng.uniform(0, 5, 20)})
    sites = pd.DataFrame({"status": ["existing"] * n_existing + ["candidate"] * (6 - n_existing)}, index=[f"s{j}" for j in range(6)])
    return times, people, sites


def test_p_larger_than_the_candidates():
    times, people, sites = small()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=9), cutoff_s=900)
    with pytest.raises(InputError, match=r"p = 9 new station sites .* only 5 candidate sites"):
        optimize(problem, ModelOptions("mclp"))


def test_negative_capacity():
    times, people, sites = small()
    with pytest.raises(InputError, match="capacity must be >= 0"):
        Problem.from_matrix(times, people, sites, specs=KindSpec(p=2, capacity=-10), cutoff_s=900)
    with pytest.raises(InputError, match=r"Site capacity must be >= 0; negative for s2 \(-3\)"):
        Problem.from_matrix(times, people, sites.assign(capacity=[np.nan, np.nan, -3, 1, 1, 1]), specs=KindSpec(p=2), cutoff_s=900)


def test_unknown_group_lists_the_known_ones():
    times, people, sites = small()
    with pytest.raises(InputError, match=r"Unknown population group\(s\) \['pop_90'\].*\['pop_total', 'pop_60', 'pop_80'\]"):
        Problem.from_matrix(times, people, sites, specs=KindSpec(p=2), weights={"pop_90": 1.0}, cutoff_s=900)
    with pytest.raises(InputError, match="Unknown population group 'pop_alone' for target_group"):
        Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=50, target_group="pop_alone"), cutoff_s=900)
    with pytest.raises(InputError, match="must be finite numbers >= 0"):
        priority_weights(people, {"pop_60": -1.0})


def test_extra_groups_are_accepted_when_present():
    times, people, sites = small()
    people = people.assign(pop_alone=np.arange(20.0))
    w = priority_weights(people, {"pop_60": 1.0, "pop_alone": 2.0})
    assert w.to_numpy() == pytest.approx(people["pop_60"].to_numpy() + 2 * np.arange(20.0))
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=2), weights={"pop_alone": 1.0}, cutoff_s=900)
    assert optimize(problem).main.status == "optimal"


def test_infeasible_target_gives_the_best_percentage_and_its_sites():
    times, people, sites = small()
    g = people["pop_60"].to_numpy()
    best_pct = 100 * g[(times <= 900).any(axis=1)].sum() / g.sum()
    assert best_pct < 99
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=99, threshold_min=15), cutoff_s=900)
    with pytest.raises(TargetUnreachable) as caught:
        plan_problem(problem, ModelOptions("target"))
    error = caught.value
    assert isinstance(error, InfeasibleError)
    assert error.best_pct == pytest.approx(best_pct)
    assert f"at most {best_pct:.1f} %" in str(error)
    assert "The fewest new sites that reach" in str(error)
    plan = error.plan
    assert plan is not None and plan.solver.status == "optimal"
    reached = plan.coverage.loc[("station", "pop_60", 15.0), "after_pct"]
    assert reached == pytest.approx(best_pct)
    for site in plan.new_sites.index:
        assert site in str(error)


def test_target_beyond_the_count_is_infeasible():
    times, people, sites = small()
    g = people["pop_60"].to_numpy()
    one_site = max(g[(times[:, [0, j]] <= 300).any(axis=1)].sum() for j in range(1, 6)) / g.sum() * 100
    every_site = g[(times <= 300).any(axis=1)].sum() / g.sum() * 100
    assert one_site < every_site
    target = (one_site + every_site) / 2  # reachable with every site, not with one
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=target, p=1, threshold_min=5), cutoff_s=900)
    with pytest.raises(InfeasibleError, match="has no solution .* raise p"):
        optimize(problem, ModelOptions("target"))


def test_time_limit_returns_the_incumbent_labelled(caplog):
    rng = np.random.default_rng(0)
    n, m = 3000, 300
    times = sparse.random(n, m, density=0.03, random_state=1, format="csr")
    times.data = rng.uniform(0, 900, times.nnz)
    people = pd.DataFrame({"pop_60": rng.uniform(1, 50, n), "pop_80": rng.uniform(0, 10, n)})
    sites = pd.DataFrame({"status": "candidate"}, index=[f"k{j}" for j in range(m)])
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=15), cutoff_s=900)
    with caplog.at_level(logging.WARNING, logger="geoplan.optimize"):
        plan = plan_problem(problem, ModelOptions("mclp"), SolverOptions(time_limit_s=0.05))
    assert plan.status == "time_limit" and not plan.optimal
    assert plan.solver.objective > 0 and plan.solver.bound >= plan.solver.objective
    assert plan.solver.gap > 0
    assert len(plan.new_sites) == 15
    assert "time limit of 0.05 s reached" in caplog.text and "not proven optimal" in caplog.text
    assert "NOT proven optimal" in plan.summary().set_index("item").loc["status 状态", "value"]


def test_unknown_model_and_missing_options():
    times, people, sites = small()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(), cutoff_s=900)
    with pytest.raises(InputError, match="Unknown model 'lscp'"):
        optimize(problem, ModelOptions("lscp"))
    with pytest.raises(InputError, match="needs p"):
        optimize(problem, ModelOptions("mclp"))
    with pytest.raises(InputError, match="needs target_pct"):
        optimize(problem, ModelOptions("target"))
    with pytest.raises(InputError, match="needs min_catchment"):
        optimize(problem, ModelOptions("consolidate"))
    with pytest.raises(InputError, match="Unknown facility kind 'clinic'"):
        Problem.from_matrix(times, people, sites, specs=KindSpec("clinic", p=1), cutoff_s=900)
    with pytest.raises(InputError, match="holds walks up to 15 min .* cannot answer for 20 min"):
        Problem.from_matrix(times, people, sites, specs=KindSpec(p=1, threshold_min=20), cutoff_s=900)


def test_cbc_fallback_solver_gives_the_same_optimum():
    times, people, sites = small()
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=2), cutoff_s=900)
    highs = optimize(problem, ModelOptions(), SolverOptions(solver="highs"))
    cbc = optimize(problem, ModelOptions(), SolverOptions(solver="cbc"))
    assert cbc.main.solver.startswith("CBC") and highs.main.solver.startswith("HiGHS")
    assert cbc.main.status == "optimal"
    assert cbc.main.objective == pytest.approx(highs.main.objective, rel=1e-9)
    assert cbc.main.gap == 0.0
