"""The Plan: immutable, complete, and written atomically to GeoJSON, GeoPackage and Excel."""

from __future__ import annotations

import dataclasses
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geoplan.optimize import KindSpec, ModelOptions, Plan, Problem, plan_problem

CRS = "EPSG:32650"  # UTM 50N (Wuhan)


def planned(model="mclp", **options) -> Plan:
    rng = np.random.default_rng(11)
    n, m = 40, 8
    xy = rng.uniform(0, 2000, (n, 2))
    site_xy = rng.uniform(0, 2000, (m, 2))
    times = np.hypot(*(xy[:, None, :] - site_xy[None, :, :]).transpose(2, 0, 1)) * 1.3
    times[times > 1200] = np.inf
    origin = np.array([230000.0, 3385000.0])  # in Wuhan
    people = pd.DataFrame(
        {"pop_total": rng.uniform(50, 90, n), "pop_60": rng.uniform(5, 20, n), "pop_65": rng.uniform(3, 12, n), "pop_80": rng.uniform(0, 5, n)},
        index=pd.Index(range(n), name="demand_id"),
    )
    sites = pd.DataFrame(
        {
            "status": ["existing", "existing"] + ["candidate"] * (m - 2),
            "kind": ["station", "canteen"] + ["station"] * (m - 2),
            "name": ["养老服务站 A", "助餐点 B"] + [f"候选 {j}" for j in range(m - 2)],
            "geometry": shapely.points(site_xy + origin),
        },
        index=pd.Index([f"s{j}" for j in range(m)], name="site_id"),
    )
    cells = gpd.GeoSeries(shapely.points(xy + origin), index=people.index, crs=CRS).buffer(50, cap_style="square")
    specs = options.pop("specs", [KindSpec("station", p=2, threshold_min=10), KindSpec("canteen", p=1, threshold_min=5)])
    problem = Problem.from_matrix(times, people, sites, specs=specs, cutoff_s=1200)
    return plan_problem(problem, ModelOptions(model, **options), region_key="test", crs=CRS, demand_cells=cells, thresholds_min=(5, 10, 15))


def test_plan_is_frozen_and_complete():
    plan = planned()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.model = "other"
    # a value object: what it hands out are copies, so changing them never changes the plan
    plan.parameters["options"]["model"] = "other"
    plan.parameters["kinds"][0]["p"] = 99
    assert plan.parameters["options"]["model"] == "mclp" and plan.parameters["kinds"][0]["p"] == 2
    before = plan.sites.copy()
    plan.sites["status"] = "closed"
    plan.sites.drop(plan.sites.index, inplace=True)
    plan.new_sites["phase"] = 0
    plan.coverage["after"] = 0.0
    plan.newly_covered.drop(plan.newly_covered.index, inplace=True)
    pd.testing.assert_frame_equal(pd.DataFrame(plan.sites.drop(columns="geometry")), pd.DataFrame(before.drop(columns="geometry")))
    assert (plan.coverage["after"] > 0).any() and len(plan.newly_covered) > 0
    assert plan.region == "test" and plan.model == "mclp" and plan.optimal
    sites = plan.sites
    assert sites.index.name == "site_id"
    assert set(sites["status"]) == {"new", "existing"}
    assert (sites.loc[sites["status"] == "new", "kind"].value_counts().to_dict()) == {"station": 2, "canteen": 1}
    for column in ("lon", "lat", "lon_gcj02", "lat_gcj02", "phase", "gain_weighted", "gain_pop_60", "gain_pop_80", "catchment_pop_60", "catchment_pop_80"):
        assert column in sites
    assert sites["lon"].between(113, 116).all() and sites["lat"].between(29, 32).all()
    assert list(plan.new_sites["phase"]) == [1, 2, 3]
    # coverage before/after per kind, group and threshold (people and %)
    cov = plan.coverage
    assert cov.index.names == ["kind", "group", "threshold_min"]
    assert {"population", "before", "after", "gain", "before_pct", "after_pct"} <= set(cov.columns)
    assert (cov["after"] >= cov["before"] - 1e-9).all()
    # the newly covered cells are the cells behind the gains
    station_new = plan.newly_covered[plan.newly_covered["kind"] == "station"]
    assert station_new["pop_60"].sum() == pytest.approx(cov.loc[("station", "pop_60", 10.0), "gain"])
    for stats in plan.stages:
        assert stats.solver.startswith("HiGHS") and stats.status == "optimal" and stats.gap == 0.0
    json.dumps(plan.to_dict(), ensure_ascii=False)


@pytest.mark.parametrize("spec", [KindSpec("station", p=0, threshold_min=10), KindSpec("station", budget=0, threshold_min=10)])
def test_a_plan_that_opens_nothing_is_a_valid_empty_plan(tmp_path, spec):
    """p = 0 or budget = 0: no new sites, coverage unchanged (issue 10: it raised KeyError 'phase')."""
    plan = planned(specs=[spec])
    assert len(plan.new_sites) == 0 and "phase" in plan.new_sites
    assert set(plan.sites["status"]) == {"existing"}
    assert (plan.coverage["after"] == plan.coverage["before"]).all() and len(plan.newly_covered) == 0
    json.dumps(plan.to_dict(), ensure_ascii=False)
    plan.to_geojson(tmp_path / "plan.geojson")
    plan.to_xlsx(tmp_path / "plan.xlsx")


def test_writers_are_atomic_and_bilingual(tmp_path):
    plan = planned()
    geojson = plan.to_geojson(tmp_path / "plan.geojson")
    gpkg = plan.to_gpkg(tmp_path / "plan.gpkg")
    xlsx = plan.to_xlsx(tmp_path / "plan.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.geojson", "plan.gpkg", "plan.xlsx"]  # no temp files left
    layer = gpd.read_file(geojson)
    assert layer.crs.to_epsg() == 4326 and len(layer) == len(plan.sites)
    assert set(layer["site_id"]) == set(plan.sites.index)
    assert {row[0] for row in pyogrio.list_layers(gpkg)} == {"sites", "newly_covered", "coverage", "summary"}
    from openpyxl import load_workbook

    book = load_workbook(xlsx, read_only=True)
    assert book.sheetnames == ["summary 摘要", "sites 站点", "coverage 覆盖"]
    header = [c.value for c in next(book["sites 站点"].iter_rows(max_row=1))]
    assert "站点编号 site_id" in header and "状态 status" in header and "新增80岁以上 gain_pop_80" in header
    coverage_header = [c.value for c in next(book["coverage 覆盖"].iter_rows(max_row=1))]
    assert "规划后覆盖率% after_pct" in coverage_header


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    plan = planned()
    target = tmp_path / "plan.xlsx"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_excel", boom)
    with pytest.raises(Exception):  # noqa: B017 (the writer may re-raise while closing)
        plan.to_xlsx(target)
    assert list(tmp_path.iterdir()) == []


def test_pmedian_and_capacitated_plans_report_served_people():
    plan = planned("pmedian", specs=[KindSpec("station", p=2, threshold_min=10)])
    assert "gain_time_saved_s" in plan.sites and "served_pop_60" in plan.sites
    assert plan.assignment is not None and set(plan.assignment.columns) == {"demand_id", "site_id", "kind", "share"}
    cap = planned(specs=[KindSpec("station", p=2, threshold_min=10, capacity=60.0)])
    stations = cap.sites[cap.sites["kind"] == "station"]
    assert (stations["served_pop_60"] <= 60.0 + 1e-6).all()
    # the phased gains add up to what the new sites add to what the existing ones serve alone
    assert cap.new_sites["gain_weighted"].sum() == pytest.approx(cap.solver.objective - _existing_alone(), rel=1e-6)


def _existing_alone() -> float:
    from geoplan.optimize.phasing import _served

    rng = np.random.default_rng(11)  # the instance of planned(), rebuilt to ask the LP directly
    n, m = 40, 8
    xy = rng.uniform(0, 2000, (n, 2))
    site_xy = rng.uniform(0, 2000, (m, 2))
    times = np.hypot(*(xy[:, None, :] - site_xy[None, :, :]).transpose(2, 0, 1)) * 1.3
    times[times > 1200] = np.inf
    people = pd.DataFrame({"pop_total": rng.uniform(50, 90, n), "pop_60": rng.uniform(5, 20, n), "pop_65": rng.uniform(3, 12, n), "pop_80": rng.uniform(0, 5, n)})
    sites = pd.DataFrame({"status": ["existing", "existing"] + ["candidate"] * (m - 2), "kind": ["station", "canteen"] + ["station"] * (m - 2)}, index=[f"s{j}" for j in range(m)])
    problem = Problem.from_matrix(times, people, sites, specs=[KindSpec("station", p=2, threshold_min=10, capacity=60.0)], cutoff_s=1200)
    return _served(problem, "station", np.array([0]), [])[0]


def test_consolidation_plan_says_what_closes_and_why():
    rng = np.random.default_rng(5)
    n, m = 30, 7
    times = rng.uniform(0, 1500, (n, m))
    times[times > 900] = np.inf
    people = pd.DataFrame({"pop_60": rng.uniform(5, 20, n), "pop_80": rng.uniform(0, 5, n)})
    sites = pd.DataFrame({"status": ["existing"] * 5 + ["candidate"] * 2}, index=[f"s{j}" for j in range(m)])
    spec = KindSpec(p=1, threshold_min=10, min_catchment=1e9)
    plan = plan_problem(Problem.from_matrix(times, people, sites, specs=spec, cutoff_s=900), ModelOptions("consolidate"), thresholds_min=(10,))
    closed = plan.closed_sites
    assert len(closed) >= 1
    assert closed["reason"].str.contains("catchment").all() and closed["reason"].str.contains("服务人数少于").all()
    cov = plan.coverage
    for group in ("pop_60", "pop_80"):
        assert cov.loc[("station", group, 10.0), "after"] >= cov.loc[("station", group, 10.0), "before"] - 1e-6
