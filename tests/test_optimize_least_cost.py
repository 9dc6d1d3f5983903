"""Least cost to pass: the exact plan equals brute-force enumeration; unreachable and met requirements; the greedy baseline.

The reference computation here is independent of geoplan: plain numpy on the
raw walking-time matrix, Python sets for units, sums for attributes, and
itertools over every subset of (kind, candidate) columns.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from geoplan.errors import InfeasibleError, InputError
from geoplan.optimize import (
    CoverageShare,
    KindSpec,
    LeastCostOptions,
    Problem,
    Quantity,
    Ratio,
    RequirementsUnreachable,
    UnitShare,
    greedy_least_cost,
    least_cost,
)

CUTOFF = 1200.0
TAU_MIN = 10.0
SHORT_MIN = 4.0  # a walk short enough that some people are beyond every site
STREETS = {"c0": "s0", "c1": "s0", "c2": "s1", "c3": "s1"}
UNIT_CODES = {"street": ["s0", "s1"], "community": ["c0", "c1", "c2", "c3"]}
NEW_ATTRIBUTES = {
    "station": {"floor_area_m2": 200.0, "beds": 0.0, "nursing_beds": 0.0},
    "centre": {"floor_area_m2": 800.0, "beds": 20.0, "nursing_beds": 14.0},
}
BUILD = ("station", "centre")


# --------------------------------------------------------------------------- random instances


def instance(seed: int, *, n: int = 14, n_existing: int = 2, n_candidates: int = 5):
    """Walking times (inf beyond the cutoff), people, sites with attributes, unit codes of sites and demand."""
    rng = np.random.default_rng(seed)
    m = n_existing + n_candidates
    times = rng.uniform(0, 1500, (n, m))
    times[times > CUTOFF] = np.inf
    times[rng.random((n, m)) < 0.05] = 0.0
    pop60 = rng.uniform(1, 40, n).round(1)
    people = pd.DataFrame(
        {"pop_total": (pop60 * 4).round(1), "pop_60": pop60, "pop_80": (pop60 * rng.uniform(0, 0.4, n)).round(1)},
        index=pd.Index([f"d{i}" for i in range(n)], name="demand_id"),
    )
    communities = list(STREETS)
    site_comm = [communities[i] for i in rng.integers(0, 4, m)]
    site_comm[rng.integers(0, m)] = None  # one site outside every unit
    demand_comm = [communities[i] if rng.random() > 0.1 else None for i in rng.integers(0, 4, n)]
    kinds = [["station", "centre", "canteen"][i] for i in rng.integers(0, 3, n_existing)] + ["station"] * n_candidates
    floor = rng.uniform(50, 500, m).round()
    beds = rng.integers(0, 40, m).astype(float)
    nursing = np.floor(beds * rng.uniform(0, 1, m))
    own = rng.random(m) < 0.5  # half the candidates have their own attributes; the rest take the kind's default
    own[:n_existing] = True
    sites = pd.DataFrame(
        {
            "status": ["existing"] * n_existing + ["candidate"] * n_candidates,
            "kind": kinds,
            "cost": rng.integers(1, 5, m).astype(float),
            "floor_area_m2": np.where(own, floor, np.nan),
            "beds": np.where(own, beds, np.nan),
            "nursing_beds": np.where(own, nursing, np.nan),
        },
        index=pd.Index([f"s{j}" for j in range(m)], name="site_id"),
    )
    site_units = {"community": site_comm, "street": [STREETS.get(c) for c in site_comm]}
    demand_units = {"community": demand_comm, "street": [STREETS.get(c) for c in demand_comm]}
    return times, people, sites, site_units, demand_units


def make_problem(times, people, sites) -> Problem:
    return Problem.from_matrix(times, people, sites, specs=KindSpec("station", threshold_min=TAU_MIN), cutoff_s=CUTOFF)


def random_requirements(seed: int) -> list:
    rng = np.random.default_rng(1000 + seed)
    reqs = [
        UnitShare("streets", ("centre",), "street", float(rng.choice([50, 100]))),
        UnitShare("communities", ("station", "centre"), "community", float(rng.choice([25, 50, 75]))),
        CoverageShare("circle", ("station", "centre"), "pop_60", TAU_MIN, float(rng.uniform(30, 85))),
        Quantity("floor", ("station", "centre"), "floor_area_m2", float(rng.uniform(300, 1600))),
    ]
    if seed % 3 == 0:
        reqs.append(Quantity("floor_per_community", ("station", "centre"), "floor_area_m2", 2.0, level="community",
                             per_group="pop_total", per_people=100.0))
    if seed % 2 == 0:
        reqs.append(Ratio("nursing", ("centre",), "nursing_beds", "beds", 60.0))
    if seed % 4 == 1:
        reqs.append(CoverageShare("circle_80", ("centre",), "pop_80", TAU_MIN, float(rng.uniform(10, 40))))
    return reqs


# --------------------------------------------------------------------------- the independent reference


def attribute(sites, name, kind, j, existing):
    own = sites[name].iloc[j]
    if existing or not np.isnan(own):
        return float(own)
    return NEW_ATTRIBUTES[kind][name]


def holds(req, facilities, times, people, sites, site_units, demand_units, existing_set) -> bool:
    """Does ``req`` hold with these (kind, site position) facilities? Plain Python and numpy."""
    mine = [(k, j) for k, j in facilities if k in req.kinds]
    if isinstance(req, UnitShare):
        units = UNIT_CODES[req.level]
        held = {site_units[req.level][j] for _, j in mine} & set(units)
        return len(held) >= math.ceil(req.share_pct * len(units) / 100 - 1e-9)
    if isinstance(req, CoverageShare):
        g = people[req.group].to_numpy()
        cols = [j for _, j in mine]
        covered = (times[:, cols] <= req.threshold_min * 60 + 1e-9).any(axis=1) if cols else np.zeros(len(g), bool)
        return g[covered].sum() >= req.pct / 100 * g.sum() - 1e-9 * max(1, g.sum())
    if isinstance(req, Quantity):
        values = [(j, attribute(sites, req.attribute, k, j, j in existing_set)) for k, j in mine]
        if req.level is None:
            need = req.amount if req.per_group is None else req.amount * people[req.per_group].sum() / req.per_people
            return sum(v for _, v in values) >= need - 1e-9 * max(1, need)
        codes = np.array(demand_units[req.level], dtype=object)
        for unit in UNIT_CODES[req.level]:
            need = req.amount * people[req.per_group].to_numpy()[codes == unit].sum() / req.per_people
            have = sum(v for j, v in values if site_units[req.level][j] == unit)
            if have < need - 1e-9 * max(1, need):
                return False
        return True
    num = sum(attribute(sites, req.numerator, k, j, j in existing_set) for k, j in mine)
    den = sum(attribute(sites, req.denominator, k, j, j in existing_set) for k, j in mine)
    return num - req.share_pct / 100 * den >= -1e-9 * max(1, den)


def value(req, facilities, times, people, sites, site_units, demand_units, existing_set) -> float:
    """The requirement's value in its own terms (% of units, % of people, sum or rate, % of units meeting, % share)."""
    mine = [(k, j) for k, j in facilities if k in req.kinds]
    if isinstance(req, UnitShare):
        return 100 * len({site_units[req.level][j] for _, j in mine} & set(UNIT_CODES[req.level])) / len(UNIT_CODES[req.level])
    if isinstance(req, CoverageShare):
        g = people[req.group].to_numpy()
        cols = [j for _, j in mine]
        covered = (times[:, cols] <= req.threshold_min * 60 + 1e-9).any(axis=1) if cols else np.zeros(len(g), bool)
        return 100 * g[covered].sum() / g.sum()
    if isinstance(req, Quantity):
        values = [(j, attribute(sites, req.attribute, k, j, j in existing_set)) for k, j in mine]
        if req.level is None:
            total = sum(v for _, v in values)
            return total if req.per_group is None else total / (people[req.per_group].sum() / req.per_people)
        codes = np.array(demand_units[req.level], dtype=object)
        meeting = 0
        for unit in UNIT_CODES[req.level]:
            need = req.amount * people[req.per_group].to_numpy()[codes == unit].sum() / req.per_people
            meeting += sum(v for j, v in values if site_units[req.level][j] == unit) >= need - 1e-9 * max(1, need)
        return 100 * meeting / len(UNIT_CODES[req.level])
    num = sum(attribute(sites, req.numerator, k, j, j in existing_set) for k, j in mine)
    den = sum(attribute(sites, req.denominator, k, j, j in existing_set) for k, j in mine)
    return 100 * num / den if den else math.nan


def best_value(times, people, sites, site_units, demand_units, req, *, build=BUILD) -> float:
    """The highest value of ``req`` over every subset of the columns (nothing closes)."""
    existing = [j for j in range(len(sites)) if sites["status"].iloc[j] == "existing"]
    candidates = [j for j in range(len(sites)) if sites["status"].iloc[j] == "candidate"]
    fixed = [(sites["kind"].iloc[j], j) for j in existing]
    columns = [(k, j) for k in build for j in candidates]
    found = [value(req, fixed + [c for c, on in zip(columns, mask) if on], times, people, sites, site_units, demand_units, set(existing))
             for mask in itertools.product([False, True], repeat=len(columns))]
    return max(v for v in found if not math.isnan(v))


def brute_force(times, people, sites, site_units, demand_units, reqs, *, closable=(), one_per_site=False, kind_costs=None, build=BUILD):
    """The least cost over every subset of columns (None when no subset meets every requirement), and one cheapest subset."""
    kind_costs = kind_costs or {}
    existing = [j for j in range(len(sites)) if sites["status"].iloc[j] == "existing"]
    candidates = [j for j in range(len(sites)) if sites["status"].iloc[j] == "candidate"]
    closable = [sites.index.get_loc(c) for c in closable]
    fixed = [(sites["kind"].iloc[j], j) for j in existing if j not in closable]
    columns = [(k, j, sites["cost"].iloc[j] * kind_costs.get(k, 1.0)) for k in build for j in candidates]
    columns += [(sites["kind"].iloc[j], j, sites["cost"].iloc[j]) for j in closable]
    best, best_set = None, None
    for mask in itertools.product([False, True], repeat=len(columns)):
        chosen = [c for c, on in zip(columns, mask) if on]
        if one_per_site:
            new_sites = [j for _, j, _ in chosen if j in candidates]
            if len(new_sites) != len(set(new_sites)):
                continue
        cost = sum(c for _, _, c in chosen)
        if best is not None and cost >= best - 1e-12:
            continue
        facilities = fixed + [(k, j) for k, j, _ in chosen]
        if all(holds(r, facilities, times, people, sites, site_units, demand_units, set(existing)) for r in reqs):
            best, best_set = cost, chosen
    return best, best_set


def plan_facilities(plan, sites):
    """The (kind, position) facilities after a plan: existing ones not closed, plus the new ones."""
    closed = set(plan.closed)
    out = [(sites["kind"].iloc[j], j) for j in range(len(sites)) if sites["status"].iloc[j] == "existing" and sites.index[j] not in closed]
    for kind, ids in plan.opened.items():
        out += [(kind, sites.index.get_loc(i)) for i in ids]
    return out


def assert_plan_passes(plan, reqs, times, people, sites, site_units, demand_units):
    existing = {j for j in range(len(sites)) if sites["status"].iloc[j] == "existing"}
    facilities = plan_facilities(plan, sites)
    today = [(sites["kind"].iloc[j], j) for j in existing]
    table = plan.requirements
    for r in reqs:
        assert holds(r, facilities, times, people, sites, site_units, demand_units, existing), r.id
        assert table.loc[r.id, "passed"]
        for column, where in (("after", facilities), ("before", today)):
            expected = value(r, where, times, people, sites, site_units, demand_units, existing)
            assert table.loc[r.id, column] == pytest.approx(round(expected, 1), nan_ok=True), (r.id, column)
        assert table.loc[r.id, "passed_before"] == holds(r, today, times, people, sites, site_units, demand_units, existing)


def solve(seed, reqs=None, **kw):
    times, people, sites, site_units, demand_units = instance(seed)
    reqs = random_requirements(seed) if reqs is None else reqs
    problem = make_problem(times, people, sites)
    args = LeastCostOptions(site_units=site_units, demand_units=demand_units, unit_codes=UNIT_CODES, new_attributes=NEW_ATTRIBUTES, build=BUILD)
    return problem, reqs, (times, people, sites, site_units, demand_units), args


# --------------------------------------------------------------------------- tests


SEEDS = range(24)


@pytest.mark.parametrize("seed", SEEDS)
def test_least_cost_equals_brute_force(seed):
    problem, reqs, data, args = solve(seed)
    expected, _ = brute_force(*data, reqs)
    if expected is None:
        with pytest.raises(InfeasibleError) as caught:
            least_cost(problem, reqs, options=args)
        alone = {r.id: brute_force(*data, [r])[0] is not None for r in reqs}
        if isinstance(caught.value, RequirementsUnreachable):
            found = dict(caught.value.unreachable)
            assert set(found) == {i for i, ok in alone.items() if not ok}
            for r in reqs:
                if r.id in found:
                    assert found[r.id] == pytest.approx(best_value(*data, r)), r.id
        else:  # each one alone can be met, not all together
            assert all(alone.values())
        return
    plan = least_cost(problem, reqs, options=args)
    assert plan.status == "optimal"
    assert plan.cost == pytest.approx(expected)
    assert plan.objective == pytest.approx(expected)
    assert_plan_passes(plan, reqs, *data)


@pytest.mark.parametrize("seed", range(10))
def test_least_cost_with_kind_costs_and_one_per_site_equals_brute_force(seed):
    problem, reqs, data, args = solve(seed)
    kind_costs = {"centre": 2.5}
    expected, _ = brute_force(*data, reqs, one_per_site=True, kind_costs=kind_costs)
    if expected is None:
        with pytest.raises(InfeasibleError):
            least_cost(problem, reqs, options=dataclasses.replace(args, one_per_site=True, kind_costs=kind_costs))
        return
    plan = least_cost(problem, reqs, options=dataclasses.replace(args, one_per_site=True, kind_costs=kind_costs))
    assert plan.cost == pytest.approx(expected)
    new_sites = [i for ids in plan.opened.values() for i in ids]
    assert len(new_sites) == len(set(new_sites))
    assert_plan_passes(plan, reqs, *data)


@pytest.mark.parametrize("seed", range(10))
def test_least_cost_with_closures_equals_brute_force(seed):
    problem, reqs, data, args = solve(seed)
    closable = ["s0", "s1"]
    expected, best_set = brute_force(*data, reqs, closable=closable)
    if expected is None:
        with pytest.raises(InfeasibleError):
            least_cost(problem, reqs, options=dataclasses.replace(args, closable=closable))
        return
    plan = least_cost(problem, reqs, options=dataclasses.replace(args, closable=closable))
    assert plan.cost == pytest.approx(expected)
    kept = set(closable) - set(plan.closed)
    new_cost = sum(problem.sites.loc[i, "cost"] for ids in plan.opened.values() for i in ids)
    assert plan.cost == pytest.approx(new_cost + sum(problem.sites.loc[i, "cost"] for i in kept))
    assert_plan_passes(plan, reqs, *data)


@pytest.mark.parametrize("seed", range(12))
def test_reductions_keep_the_optimum(seed):
    problem, reqs, data, args = solve(seed)
    try:
        reduced = least_cost(problem, reqs, options=args)
    except InfeasibleError:
        with pytest.raises(InfeasibleError):
            least_cost(problem, reqs, options=dataclasses.replace(args, reduce=False, warm_start=False))
        return
    full = least_cost(problem, reqs, options=dataclasses.replace(args, reduce=False, warm_start=False))
    assert reduced.cost == pytest.approx(full.cost)
    assert reduced.reductions["columns_in_model"] <= full.reductions["columns_in_model"]


@pytest.mark.parametrize("seed", range(8))
def test_dominated_candidates_left_out_keep_the_optimum(seed):
    """Candidates 6-11 walk further than 0-5 (a subset of their people) at no lower cost: the reduction drops them."""
    times, people, sites, site_units, demand_units = instance(seed, n=40, n_existing=1, n_candidates=12)
    rng = np.random.default_rng(seed)
    times[:, 7:] = times[:, 1:7] + rng.choice([0.0, 300.0], size=(40, 6))
    sites = sites.assign(cost=np.r_[sites["cost"].iloc[:7], sites["cost"].iloc[1:7] + rng.integers(0, 2, 6)])
    site_units = {k: list(v[:7]) + list(v[1:7]) for k, v in site_units.items()}
    problem = make_problem(times, people, sites)
    g = people["pop_60"].to_numpy()
    reachable = 100 * g[(times <= TAU_MIN * 60).any(axis=1)].sum() / g.sum()
    reqs = [UnitShare("communities", ("station",), "community", 50),
            CoverageShare("circle", ("station",), "pop_60", TAU_MIN, float(rng.uniform(0.4, 0.95)) * reachable)]
    args = LeastCostOptions(site_units=site_units, unit_codes=UNIT_CODES, build=("station",))
    expected, _ = brute_force(times, people, sites, site_units, demand_units, reqs, build=("station",))
    if expected is None:
        with pytest.raises(InfeasibleError):
            least_cost(problem, reqs, options=args)
        return
    plan = least_cost(problem, reqs, options=args)
    full = least_cost(problem, reqs, options=dataclasses.replace(args, reduce=False, warm_start=False))
    assert plan.cost == pytest.approx(expected) and full.cost == pytest.approx(expected)
    assert plan.reductions["columns_in_model"] <= 6 < full.reductions["columns_in_model"]
    assert_plan_passes(plan, reqs, times, people, sites, site_units, demand_units)


@pytest.mark.parametrize("seed", SEEDS)
def test_greedy_cost_is_at_least_the_exact_cost(seed):
    problem, reqs, data, args = solve(seed)
    try:
        exact = least_cost(problem, reqs, options=args)
    except InfeasibleError:
        return
    try:
        greedy = greedy_least_cost(problem, reqs, options=args)
    except InfeasibleError:
        assert exact.greedy_cost is None
        return
    assert greedy.cost >= exact.cost - 1e-9
    assert exact.greedy_cost == pytest.approx(greedy.cost)
    assert greedy.status == "heuristic" and greedy.method == "greedy"
    assert_plan_passes(greedy, reqs, *data)


def test_requirements_already_met_cost_nothing():
    times, people, sites, site_units, demand_units = instance(3)
    problem = make_problem(times, people, sites)
    existing = [j for j in range(len(sites)) if sites["status"].iloc[j] == "existing"]
    kinds = tuple(sorted(set(sites["kind"].iloc[existing])))
    g = people["pop_60"].to_numpy()
    today = 100 * g[(times[:, existing] <= TAU_MIN * 60).any(axis=1)].sum() / g.sum()
    floor = float(sites["floor_area_m2"].iloc[existing].sum())
    reqs = [
        CoverageShare("circle", kinds, "pop_60", TAU_MIN, math.floor(today)),
        UnitShare("communities", kinds, "community", 25),
        Quantity("floor", kinds, "floor_area_m2", floor),
    ]
    assert all(holds(r, [(sites["kind"].iloc[j], j) for j in existing], times, people, sites, site_units, demand_units, set(existing))
               for r in reqs)
    args = LeastCostOptions(site_units=site_units, unit_codes=UNIT_CODES, new_attributes=NEW_ATTRIBUTES, build=BUILD)
    plan = least_cost(problem, reqs, options=args)
    assert plan.cost == 0.0 and plan.n_new == 0 and len(plan.phases) == 0
    assert plan.status == "optimal"
    assert plan.requirements["passed_before"].all() and plan.requirements["passed"].all()
    assert all(plan.reductions["requirements"][r.id]["met_by_existing"] for r in reqs)
    assert greedy_least_cost(problem, reqs, options=args).cost == 0.0


def test_unreachable_requirements_name_the_best_achievable():
    times, people, sites, site_units, demand_units = instance(5)
    problem = make_problem(times, people, sites)
    site_units = {k: list(v) for k, v in site_units.items()}
    # community c3 has no site at all: at most 3 of 4 communities can hold a station
    site_units["community"] = [None if c == "c3" else c for c in site_units["community"]]
    everything = [(k, j) for k in BUILD for j in range(2, len(sites))] + [(sites["kind"].iloc[j], j) for j in range(2)]
    g = people["pop_60"].to_numpy()
    cols = [j for k, j in everything if k in ("station",)]
    best_circle = 100 * g[(times[:, cols] <= SHORT_MIN * 60).any(axis=1)].sum() / g.sum()
    held = {site_units["community"][j] for k, j in everything if k in ("station",)} - {None}
    best_units = 100 * len(held) / 4
    best_floor = sum(attribute(sites, "floor_area_m2", k, j, j < 2) for k, j in everything if k == "station")
    assert best_circle < 100
    reqs = [
        UnitShare("communities", ("station",), "community", 100),
        CoverageShare("circle", ("station",), "pop_60", SHORT_MIN, (best_circle + 100) / 2),
        Quantity("floor", ("station",), "floor_area_m2", best_floor + 1),
        CoverageShare("reachable", ("station",), "pop_60", SHORT_MIN, best_circle / 2),
    ]
    with pytest.raises(RequirementsUnreachable) as caught:
        least_cost(problem, reqs, options=LeastCostOptions(site_units=site_units, unit_codes=UNIT_CODES, new_attributes=NEW_ATTRIBUTES, build=BUILD))
    found = dict(caught.value.unreachable)
    assert set(found) == {"communities", "circle", "floor"}
    assert found["communities"] == pytest.approx(best_units) and best_units < 100
    assert found["floor"] == pytest.approx(best_floor)
    assert found["circle"] == pytest.approx(best_circle)
    message = str(caught.value)
    assert "'communities'" in message and "at most" in message and "lower the target" in message
    assert isinstance(caught.value, InfeasibleError)
    with pytest.raises(RequirementsUnreachable):
        greedy_least_cost(problem, reqs, options=LeastCostOptions(site_units=site_units, unit_codes=UNIT_CODES, new_attributes=NEW_ATTRIBUTES, build=BUILD))


def test_unreachable_per_unit_quantity_lists_the_short_units():
    times, people, sites, site_units, demand_units = instance(7)
    problem = make_problem(times, people, sites)
    req = Quantity("floor_each", ("station",), "floor_area_m2", 1e6, level="community")
    with pytest.raises(RequirementsUnreachable) as caught:
        least_cost(problem, [req], options=LeastCostOptions(site_units=site_units, unit_codes=UNIT_CODES, new_attributes=NEW_ATTRIBUTES))
    assert caught.value.unreachable == (("floor_each", 0.0),)
    assert "c0" in str(caught.value) and "short even with every candidate" in str(caught.value)


def test_a_ratio_met_today_still_binds_the_new_facilities():
    """Beds are needed; the cheap home has no nursing beds and would break the nursing share that holds today."""
    times = np.zeros((1, 3))
    people = pd.DataFrame({"pop_60": [1.0], "pop_80": [0.0]}, index=pd.Index(["d0"], name="demand_id"))
    sites = pd.DataFrame(
        {"status": ["existing", "candidate", "candidate"], "kind": ["home", "station", "station"], "cost": [1.0, 1.0, 3.0],
         "beds": [10.0, 20.0, 20.0], "nursing_beds": [10.0, 0.0, 20.0]},
        index=pd.Index(["h0", "cheap", "nursing"], name="site_id"),
    )
    problem = make_problem(times, people, sites)
    reqs = [Quantity("beds", ("home",), "beds", 30.0), Ratio("nursing", ("home",), "nursing_beds", "beds", 60.0)]
    plan = least_cost(problem, reqs)
    assert list(plan.opened["home"]) == ["nursing"] and plan.cost == 3.0
    assert plan.requirements.loc["nursing", "passed_before"]
    assert plan.requirements.loc["nursing", "after"] == pytest.approx(100 * 30 / 30)
    # with only the cheap home, each requirement can be met alone but not both
    with pytest.raises(InfeasibleError) as caught:
        least_cost(Problem.from_matrix(times[:, :2], people, sites.iloc[:2], specs=KindSpec(threshold_min=TAU_MIN), cutoff_s=CUTOFF), reqs)
    assert not isinstance(caught.value, RequirementsUnreachable)
    assert "together" in str(caught.value)


def test_phases_follow_the_plan():
    for seed in SEEDS:
        problem, reqs, data, args = solve(seed)
        try:
            plan = least_cost(problem, reqs, options=args)
        except InfeasibleError:
            continue
        phases = plan.phases
        assert list(phases["phase"]) == list(range(1, plan.n_new + 1))
        assert sorted(phases["site_id"] + phases["kind"]) == sorted(i + k for k, ids in plan.opened.items() for i in ids)
        if plan.n_new:
            assert phases["cumulative_cost"].iloc[-1] == pytest.approx(plan.cost)
            assert phases["met"].iloc[-1] == len(reqs)
            assert (phases[[f"gain_{r.id}" for r in reqs if not isinstance(r, Ratio)]].fillna(0) >= -1e-9).all().all()
        for kind, ids in plan.opened.items():  # opened lists each kind in build order
            assert list(ids) == list(phases.loc[phases["kind"] == kind, "site_id"])


def test_unit_codes_as_series_columns_and_default_universe():
    problem, reqs, data, args = solve(4)
    times, people, sites, site_units, demand_units = data
    reqs = [r for r in reqs if not (isinstance(r, UnitShare) and r.level == "street")]
    base = least_cost(problem, reqs, options=args)
    shuffled = {k: pd.Series(v, index=sites.index).iloc[::-1] for k, v in site_units.items()}
    again = least_cost(problem, reqs, options=dataclasses.replace(args, site_units=shuffled))
    assert again.cost == base.cost
    # the sites' own community_code column, and 462 / 462.0 / "462" as one code
    numbered = {"c0": 460, "c1": 461, "c2": 462, "c3": 463}
    with_column = sites.assign(community_code=[float(numbered[c]) if c else np.nan for c in site_units["community"]])
    problem2 = make_problem(times, people, with_column)
    demand = {"community": [numbered[c] if c else None for c in demand_units["community"]]}
    codes = {"community": [str(v) for v in numbered.values()]}
    args2 = dataclasses.replace(args, site_units=None, demand_units=demand, unit_codes=codes)
    assert least_cost(problem2, reqs, options=args2).cost == base.cost


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: UnitShare("u", ("station",), "street", 101), "between 0 and 100"),
        (lambda: UnitShare("u", ("school",), "street", 50), "unknown facility kind"),
        (lambda: Quantity("q", ("station",), "height_m", 5), "must be one of floor_area_m2"),
        (lambda: Quantity("q", ("station",), "beds", 5, units=("c0",)), "give level too"),
        (lambda: Quantity("q", ("station",), "beds", 5, per_people=100), "only applies with per_group"),
        (lambda: Ratio("r", ("home",), "beds", "beds", 60), "two attributes"),
        (lambda: CoverageShare("", ("station",), "pop_60", 15, 50), "non-empty string"),
    ],
)
def test_requirement_values_refuse_bad_input(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_least_cost_refuses_what_it_cannot_use():
    problem, reqs, data, args = solve(1)
    with pytest.raises(InputError, match="ids repeat"):
        least_cost(problem, [reqs[0], reqs[0]], options=args)
    with pytest.raises(InputError, match="site_units=.*'zone'"):
        least_cost(problem, [UnitShare("z", ("centre",), "zone", 50)], options=args)
    with pytest.raises(InputError, match="new_attributes="):
        least_cost(problem, [Quantity("land", ("centre",), "land_m2", 100)], options=args)
    with pytest.raises(InputError, match="demand_units="):
        least_cost(problem, [Quantity("f", ("centre",), "floor_area_m2", 1, level="community", per_group="pop_total")],
                   options=dataclasses.replace(args, demand_units=None))
    with pytest.raises(InputError, match="does not have"):
        least_cost(problem, [CoverageShare("c", ("station",), "pop_disabled", TAU_MIN, 10)], options=args)
    with pytest.raises(InputError, match="cannot answer for 30 min"):
        least_cost(problem, [CoverageShare("c", ("station",), "pop_60", 30, 10)], options=args)
    with pytest.raises(InputError, match="have no beds"):
        sites = data[2].assign(beds=np.nan)
        least_cost(make_problem(data[0], data[1], sites), [Quantity("b", ("station", "centre", "canteen"), "beds", 5)], options=args)
    with pytest.raises(InputError, match="codes but there are"):
        least_cost(problem, reqs, options=dataclasses.replace(args, site_units={"community": ["c0"], "street": ["s0"]}))


def test_the_no_unit_code_of_planning_units_counts_for_no_unit():
    units = pytest.importorskip("geoplan.units")
    from geoplan.optimize.least_cost import NO_UNIT_CODES

    assert units.OUTSIDE in NO_UNIT_CODES
    problem, reqs, data, args = solve(8)
    site_units = {k: [units.OUTSIDE if c is None else c for c in v] for k, v in data[3].items()}
    # without unit_codes the units are the codes found: "outside" is not one of them
    plain = least_cost(problem, reqs, options=dataclasses.replace(args, unit_codes=None))
    marked = least_cost(problem, reqs, options=dataclasses.replace(args, unit_codes=None, site_units=site_units))
    assert plain.cost == marked.cost
    assert plain.requirements["before"].equals(marked.requirements["before"])
