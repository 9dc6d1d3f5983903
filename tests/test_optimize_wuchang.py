"""Exactness on real data (Wuchang): brute force on a small real instance; spopt's MCLP, LSCP and PMedian
on the same matrices. spopt is a test/bench dependency only."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import geoplan
from geoplan.errors import InputError
from geoplan.coverage import coverage_summary
from geoplan.optimize import KindSpec, ModelOptions, Problem, TargetUnreachable, optimize, planning_sites, priority_weights, recommend

pytestmark = pytest.mark.slow  # loads the real district (a few seconds) and runs spopt

REPO = Path(__file__).resolve().parents[1]
GROUPS = ["pop_total", "pop_60", "pop_65", "pop_80"]


@pytest.fixture(scope="module")
def wuchang():
    return geoplan.load_region("wuchang")


@pytest.fixture(scope="module")
def reach(wuchang):
    return wuchang.reach(wuchang.candidates, cutoff_min=30)


def dense(times, cutoff_s, fill=np.inf):
    coo = times.tocoo()
    keep = coo.data <= cutoff_s
    out = np.full(times.shape, fill)
    out[coo.row[keep], coo.col[keep]] = coo.data[keep]
    return out


def candidate_sites(reach):
    return pd.DataFrame({"status": "candidate"}, index=reach.site_ids)


def test_small_real_instance_equals_brute_force(wuchang, reach):
    """Ten real candidates near the district's centre, the cells they reach, p = 3: every model equals enumeration."""
    xy = wuchang.candidates.geometry.get_coordinates().to_numpy()
    near = np.argsort(np.hypot(*(xy - xy.mean(axis=0)).T))[:10]
    times = reach.times_s.tocsr()[:, near]
    rows = np.flatnonzero(times.getnnz(axis=1) > 0)
    times = times[rows]
    people = wuchang.demand.iloc[rows][GROUPS]
    sites = candidate_sites(reach).iloc[near]
    w = priority_weights(people).to_numpy()
    T = dense(times, 1800.0)
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=3, threshold_min=15), cutoff_s=1800)
    combos = list(itertools.combinations(range(10), 3))
    best_cover = max(w[(T[:, list(c)] <= 900).any(axis=1)].sum() for c in combos)
    assert optimize(problem, ModelOptions("mclp")).main.objective == pytest.approx(best_cover, rel=1e-9)
    capped = np.minimum(T, 1800.0)
    best_median = min((w * capped[:, list(c)].min(axis=1)).sum() for c in combos)
    assert optimize(problem, ModelOptions("pmedian")).main.objective == pytest.approx(best_median, rel=1e-9)
    g = people["pop_60"].to_numpy()
    need = 0.6 * g[(T <= 900).any(axis=1)].sum()  # 60 % of what all ten reach
    fewest = min(k for k in range(11) for c in itertools.combinations(range(10), k) if g[(T[:, list(c)] <= 900).any(axis=1)].sum() >= need)
    target = Problem.from_matrix(times, people, sites, specs=KindSpec(target_pct=100 * need / g.sum(), threshold_min=15), cutoff_s=1800)
    assert optimize(target, ModelOptions("target")).main.objective == fewest


@pytest.mark.parametrize("p", [10])  # the bench compares p = 5, 10, 20
def test_mclp_equals_spopt(wuchang, reach, p):
    import pulp
    from spopt.locate import MCLP

    w = priority_weights(wuchang.demand).to_numpy()
    problem = Problem.from_matrix(reach.times_s, wuchang.demand[GROUPS], candidate_sites(reach), specs=KindSpec(p=p, threshold_min=15), cutoff_s=reach.cutoff_s)
    ours = optimize(problem, ModelOptions("mclp"))
    theirs = MCLP.from_cost_matrix(dense(reach.times_s, 900.0), w, service_radius=900.0, p_facilities=p)
    theirs.solve(pulp.HiGHS(msg=False), results=False)
    assert ours.main.status == "optimal"
    assert ours.main.objective == pytest.approx(pulp.value(theirs.problem.objective), rel=1e-9)


def test_target_equals_spopt_lscp(wuchang, reach):
    """Covering every coverable 60+ person: our target model's fewest sites = spopt's LSCP."""
    import pulp
    from spopt.locate import LSCP

    T = dense(reach.times_s, 900.0)
    coverable = (T <= 900).any(axis=1) & (wuchang.demand["pop_60"].to_numpy() > 0)
    g = wuchang.demand["pop_60"].to_numpy()
    best_pct = 100 * g[coverable].sum() / g.sum()
    problem = Problem.from_matrix(
        reach.times_s, wuchang.demand[GROUPS], candidate_sites(reach), specs=KindSpec(target_pct=best_pct, threshold_min=15), cutoff_s=reach.cutoff_s
    )
    ours = optimize(problem, ModelOptions("target", refine=False))
    theirs = LSCP.from_cost_matrix(T[coverable], service_radius=900.0)
    theirs.solve(pulp.HiGHS(msg=False), results=False)
    assert ours.main.status == "optimal"
    assert ours.main.objective == pytest.approx(pulp.value(theirs.problem.objective))


def test_pmedian_equals_spopt(wuchang, reach):
    """p-median on the cells within 20 min of 8 central candidates (spopt's dense model is slow on the whole district)."""
    import pulp
    from spopt.locate import PMedian

    xy = wuchang.candidates.geometry.get_coordinates().to_numpy()
    near = np.argsort(np.hypot(*(xy - xy.mean(axis=0)).T))[:8]
    T = dense(reach.times_s.tocsr()[:, near], 1200.0)  # inf beyond 20 min
    rows = np.flatnonzero(np.isfinite(T).any(axis=1))
    times = T[rows]
    people = wuchang.demand.iloc[rows][GROUPS]
    w = priority_weights(people).to_numpy()
    problem = Problem.from_matrix(times, people, candidate_sites(reach).iloc[near], specs=KindSpec(p=3, threshold_min=15), cutoff_s=1200)
    ours = optimize(problem, ModelOptions("pmedian"))
    theirs = PMedian.from_cost_matrix(np.where(np.isfinite(times), times, 1200.0), w, p_facilities=3)
    theirs.solve(pulp.HiGHS(msg=False), results=False)
    assert ours.main.objective == pytest.approx(pulp.value(theirs.problem.objective), rel=1e-9)


def test_recommend_with_existing_facilities(wuchang):
    """The sample facility list (GCJ-02) counts as covering: coverage starts above 0 and only grows."""
    region = geoplan.load_region("wuchang", facilities=REPO / "data/facilities/wuchang_sample_gcj02.csv", coord_system="gcj02")
    plan = recommend(region, [KindSpec("station", p=5), KindSpec("canteen", p=3, threshold_min=10)])
    assert plan.optimal
    cov = plan.coverage
    assert cov.loc[("station", "pop_60", 15.0), "before"] > 0
    assert (plan.new_sites["kind"].value_counts().to_dict()) == {"station": 5, "canteen": 3}
    new = plan.new_sites
    assert new.loc[new["kind"] == "station", "gain_pop_60"].sum() == pytest.approx(cov.loc[("station", "pop_60", 15.0), "gain"])
    assert new.loc[new["kind"] == "canteen", "gain_pop_60"].sum() == pytest.approx(cov.loc[("canteen", "pop_60", 10.0), "gain"])
    assert not set(new.index) & set(region.facilities.index)
    # the best achievable share, computed apart from the optimiser: coverage with every site open
    every_site = region.reach(planning_sites(region).sites, cutoff_min=15)
    best = coverage_summary(region.demand, every_site, thresholds_min=(15,)).loc[("pop_60", 15)]
    with pytest.raises(TargetUnreachable, match=rf"at most {best['covered_pct']:.1f} % \({best['covered']:,.0f} of") as caught:
        recommend(region, KindSpec(target_pct=80), ModelOptions("target"))
    assert caught.value.best_people == pytest.approx(best["covered"])
    # and it carries the plan with the fewest sites reaching that best share
    best_plan = caught.value.plan
    assert best_plan is not None
    assert best_plan.coverage.loc[("station", "pop_60", 15.0), "after"] == pytest.approx(best["covered"])


def test_pmedian_refuses_a_reach_shorter_than_its_cutoff(wuchang):
    # people beyond a 15-min reach would silently cost 15 min instead of the default 30-min penalty
    short = wuchang.reach(wuchang.candidates, cutoff_min=15)
    with pytest.raises(InputError, match=r"holds walks up to 15 min .* cannot answer for 30 min"):
        recommend(wuchang, KindSpec(p=3), ModelOptions("pmedian"), reach=short)
