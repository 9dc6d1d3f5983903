"""Rural districts: the shipped Huangpi south region, derived units labelled, the canteen network and its least-cost plan, home merges."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from geoplan.errors import ConfigError, InputError
from geoplan.extent import extent_report, raw_district_demand
from geoplan.modes import get_mode, mode_router
from geoplan.reach import travel_times
from geoplan.region import load_region
from geoplan.rural import (
    HomeMergeOptions, ServiceModel, canteen_figures, check_capacity, load_rural_targets, merge_homes, rural_review, rural_units,
)
from geoplan.rural.canteens import canteen_candidates
from geoplan.rural.units import DERIVED_VILLAGE_LABEL, TOWN_ZONE_LABEL, VILLAGE_LABEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def huangpi(cache_dir):
    return load_region("huangpi_south", cache_dir=cache_dir)


@pytest.fixture(scope="module")
def units(huangpi):
    return rural_units(huangpi)


@pytest.fixture(scope="module")
def targets():
    return load_rural_targets("rural_canteens")


@pytest.fixture(scope="module")
def model(huangpi, units, targets):
    return ServiceModel(huangpi, units, targets.rules)


@pytest.fixture(scope="module")
def hubs(model):
    candidates = canteen_candidates(model, gpd.GeoDataFrame({"kind": []}, geometry=gpd.GeoSeries([], crs=model.region.crs)))
    return candidates[candidates["kind"] == "centre"]


# --- the shipped region ------------------------------------------------------------------------------------


def test_the_shipped_region_is_the_part_of_huangpi_the_network_covers(huangpi):
    assert huangpi.boundary.attrs["share_of_area"] == pytest.approx(0.122, abs=0.002)  # "about 12 % of Huangpi's area"
    whole = raw_district_demand(huangpi.config)
    # the district's own census factor: Huangpi's 233,593 people 60+ over the raster's count for the whole district
    assert huangpi.census_factors["pop_60"] == pytest.approx(233_593 / whole["pop_60"].sum(), rel=1e-9)
    report = extent_report(huangpi)
    assert report.clipped and report.code == "420116" and report.district == "黄陂区"
    assert 25 < report.share_pct("pop_60") < 40
    assert report.people.at["pop_60", "district"] == pytest.approx(233_593)
    assert huangpi.demand["pop_60"].sum() == pytest.approx(report.people.at["pop_60", "inside_extent"], rel=0.01)


def test_derived_units_say_they_are_derived(huangpi, units):
    assert units.towns_derived and units.villages_derived and units.rural_derived
    assert (units.towns["unit_type"] == TOWN_ZONE_LABEL).all() and (units.villages["unit_type"] == DERIVED_VILLAGE_LABEL).all()
    assert units.villages["name"].str.contains("derived village unit").all()
    assert "46.8 %" in units.rural_source and "乡村人口" in units.rural_source
    assert units.rural_share == pytest.approx(538_712 / 1_151_644)
    assert set(units.villages["town_code"]) <= set(units.towns.index)
    rural_60 = huangpi.demand.loc[units.rural.to_numpy(), "pop_60"].sum()
    assert 0 < units.villages["pop_60"].sum() <= rural_60 + 1e-6
    held = units.village_of[units.village_of != "outside"]
    assert units.rural[held.index].all()  # a village holds rural cells only
    assert units.villages["pop_60"].sum() == pytest.approx(huangpi.demand.loc[held.index, "pop_60"].sum())


def test_a_users_village_table_places_rural_people_by_the_raster(huangpi, units, tmp_path):
    picked = units.villages.iloc[[0, 5, 9]].to_crs(4326)
    table = pd.DataFrame({"村代码": ["420116001201", "420116001202", "420116001203"], "名称": ["甲村", "乙村", "丙村"],
                          "乡镇代码": [units.villages.iloc[0]["town_code"], "nowhere", None],
                          "lon": picked.geometry.x.round(6), "lat": picked.geometry.y.round(6)})
    outside = pd.DataFrame({"村代码": ["999"], "名称": ["远村"], "乡镇代码": [None], "lon": [115.5], "lat": [31.2]})
    path = tmp_path / "villages.csv"
    pd.concat([table, outside]).to_csv(path, index=False)
    mine = rural_units(huangpi, villages=path)
    assert not mine.villages_derived and mine.rural_derived and (mine.villages["unit_type"] == VILLAGE_LABEL).all()
    assert list(mine.villages.index) == ["420116001201", "420116001202", "420116001203"]  # the village outside is left out
    assert mine.villages.at["420116001201", "town_code"] == units.villages.iloc[0]["town_code"]
    assert mine.villages.at["420116001202", "town_code"] in set(mine.towns.index)  # an unknown town code: placed by location
    assert (mine.villages["pop_60"] > 0).all()
    near = mine.village_of[mine.village_of != "outside"]
    assert mine.rural[near.index].all()
    with pytest.raises(InputError, match="None of the 1 villages"):
        outside.to_csv(tmp_path / "far.csv", index=False)
        rural_units(huangpi, villages=tmp_path / "far.csv")


# --- the canteen network -----------------------------------------------------------------------------------


def test_served_villages_follow_the_rules_by_mode(huangpi, units, model, targets, hubs):
    villages = units.villages
    nearest = hubs.geometry.distance(villages.geometry.iloc[20]).idxmin()  # a junction among villages
    centre = hubs.loc[[nearest]].assign(kind="centre")
    meal = gpd.GeoDataFrame({"kind": ["canteen"], "name": ["meal point"]}, geometry=[villages.geometry.iloc[3]], crs=villages.crs,
                            index=pd.Index(["meal1"], name="site_id"))
    facilities = gpd.GeoDataFrame(pd.concat([centre[["kind", "geometry"]], meal[["kind", "geometry"]]]), geometry="geometry", crs=villages.crs)
    figures = canteen_figures(model, facilities, targets)
    result = figures.villages
    points = villages[["geometry"]]
    by_ebike = travel_times(huangpi.network_for("ebike"), points, centre[["geometry"]], cutoff_s=20 * 60).nearest_time_s()
    on_foot = travel_times(huangpi.network, points, meal[["geometry"]], cutoff_s=15 * 60).nearest_time_s()
    expected = (by_ebike <= 20 * 60) | (on_foot <= 15 * 60)
    expected[villages.index[3]] = True  # its own meal point
    assert result["served"].astype(bool).equals(expected.reindex(result.index))
    assert result.at[villages.index[3], "served_by"].startswith("own meal point")
    delivered = result[result["served_by"].str.startswith("delivery")]
    assert len(delivered) and (delivered["mode"] == "ebike").all() and (delivered["delivery_min"] <= 20).all()
    summary = figures.summary
    assert summary.at["villages_served", "value"] == pytest.approx(100 * expected.mean())
    assert "ebike" in summary.at["villages_served", "mode"] and "walk" in summary.at["villages_served", "mode"]
    assert summary.at["county_kitchen", "pass"] is False and summary.at["rural_older_served", "pass"] is None
    gaps = figures.gaps
    assert not gaps["served"].any() and gaps["priority"].is_monotonic_decreasing  # rural gaps, most older people first
    assert (result["priority"] == result["pop_60"] + result["pop_80"]).all()


def test_the_least_cost_plan_meets_every_target(huangpi, units, targets):
    review = rural_review(huangpi, targets, units=units)
    assert review.passed is False
    plan = review.plan()
    assert plan.status == "optimal" and plan.plan.passed
    assert plan.plan.greedy_cost is None or plan.plan.greedy_cost >= plan.plan.cost - 1e-9
    after = plan.after.summary
    assert after.loc[["county_kitchen", "every_town_canteen", "villages_served"], "pass"].tolist() == [True, True, True]
    assert after.at["villages_served", "value"] >= 80
    new = plan.new_sites
    assert (new["kind"] == "district_centre").sum() >= 1
    towns_held = set(new.loc[new["kind"].isin(["centre", "district_centre"]), "town_code"])
    assert towns_held == set(units.towns.index)  # every town a canteen (or the kitchen)
    assert set(new["mode"]) <= {"walk", "ebike"} and (new.loc[new["kind"] == "canteen", "mode"] == "walk").all()
    assert new["phase"].tolist() == list(range(1, len(new) + 1))
    table = plan.requirement_table()
    assert table.at["county_kitchen", "value_unit"] == "facilities" and table.at["county_kitchen", "after"] >= 1
    assert "served" in table.at["villages_served", "description"] and "ebike" in table.at["villages_served", "description"]
    assert set(plan.supply["supply_mode"]) == {"car"}
    costs = targets.rules.costs
    assert plan.plan.cost == pytest.approx(sum(costs[k] for k in new["kind"]))


# --- rural homes -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_road(huangpi, units):
    """The villages with a car road within reach (homes stand on a road)."""
    from geoplan.snapping import snap_to_network

    snap = snap_to_network(huangpi.network_for("car"), units.villages[["geometry"]], max_access_m=huangpi.config.analysis.max_access_m)
    return units.villages[snap["edge_id"].to_numpy() >= 0]


def _homes(villages, rng, n=14) -> gpd.GeoDataFrame:
    picked = villages.sample(n, random_state=int(rng.integers(1_000_000)))
    beds = rng.integers(10, 160, size=n).astype(float)
    residents = np.floor(beds * rng.uniform(0.05, 1.0, size=n))
    return gpd.GeoDataFrame({"name": [f"敬老院{i}" for i in range(n)], "kind": "home", "beds": beds, "residents": residents},
                            geometry=picked.geometry.to_numpy(), crs=villages.crs, index=pd.Index([f"h{i}" for i in range(n)], name="site_id"))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_merge_proposals_never_lose_capacity(huangpi, on_road, seed):
    rng = np.random.default_rng(seed)
    homes = _homes(on_road, rng)
    merges = merge_homes(huangpi, homes, options=HomeMergeOptions(max_residents=40, max_use_pct=60, max_drive_min=40))
    table = merges.table
    assert check_capacity(table) and merges.summary()["capacity_kept"]
    moved = table[table["can_merge"]]
    assert len(moved) >= 3  # the property is tested on real proposals
    arriving = moved.groupby("merge_into")["residents"].sum()
    for target, incoming in arriving.items():  # recounted from the homes, not from the table's running columns
        assert homes.at[target, "residents"] + incoming <= homes.at[target, "beds"]
        assert not table.at[target, "can_merge"]  # a receiving home stays open
    for home, row in moved.iterrows():
        assert homes.at[row["merge_into"], "beds"] > homes.at[home, "beds"]  # into a larger home
        assert row["drive_min"] <= 40 and row["mode"] == "car"
        assert row["gain_min"] == pytest.approx(row["remote_min"] - row["remote_after_min"])
    assert table["residents"].sum() == homes["residents"].sum()
    assert (table["rank"].to_numpy() == np.arange(1, len(table) + 1)).all()


def test_a_merge_needs_spare_beds_not_just_a_larger_home(huangpi, on_road):
    village = on_road.geometry.iloc[10]
    near, far = on_road.geometry.distance(village).sort_values().index[[1, 4]]
    homes = gpd.GeoDataFrame(
        {"name": ["small", "full", "roomy"], "kind": "home", "beds": [20.0, 100.0, 60.0], "residents": [8.0, 96.0, 20.0]},
        geometry=[village, on_road.geometry[near], on_road.geometry[far]], crs=on_road.crs,
        index=pd.Index(["small", "full", "roomy"], name="site_id"))
    table = merge_homes(huangpi, homes, options=HomeMergeOptions(max_drive_min=60)).table
    assert table.at["small", "can_merge"] and table.at["small", "merge_into"] == "roomy"  # "full" is nearer and larger, but has 4 spare beds
    assert table.at["small", "into_residents_after"] == 28 and table.at["small", "into_spare_before"] == 40
    assert table.at["small", "drive_min"] > 0 and np.isfinite(table.at["small", "visit_extra_min"])
    assert not table.at["full", "merge_candidate"] and table.at["small", "hub_source"].startswith("derived")
    assert (table["time_source"] == "network").all()
    full_only = homes.drop(index="roomy")
    alone = merge_homes(huangpi, full_only, options=HomeMergeOptions(max_drive_min=60)).table
    assert not alone.at["small", "can_merge"] and "spare beds" in alone.at["small", "reason"]


def test_homes_need_beds_and_residents(huangpi, on_road, units):
    homes = _homes(on_road, np.random.default_rng(0), n=3)
    with pytest.raises(InputError, match=r"lack residents.*在院人数"):
        merge_homes(huangpi, homes.drop(columns="residents"))
    bad = homes.copy()
    bad.loc["h1", "residents"] = bad.loc["h1", "beds"] + 1
    with pytest.raises(InputError, match=r"Homes \['h1'\] have more residents than beds"):
        merge_homes(huangpi, bad)


# --- the review, its files and the command line ------------------------------------------------------------


def test_the_review_shows_the_merges_and_labels_modes_and_derived_units(huangpi, units, on_road, targets, tmp_path):
    homes = _homes(on_road, np.random.default_rng(3))
    review = rural_review(huangpi, targets, facilities=homes, units=units)
    assert review.homes is not None and review.homes.summary()["capacity_kept"]
    written = review.write(tmp_path)
    sheets = pd.read_excel(written["xlsx"], sheet_name=None)
    assert "homes 敬老院撤并" in sheets and "extent 路网覆盖" in sheets and "modes 出行方式" in sheets
    assert any("派生村单元" in name for name in sheets)
    village_sheet = next(frame for name, frame in sheets.items() if name.startswith("villages"))
    assert any("出行方式" in str(c) for c in village_sheet.columns) and any("覆盖方式" in str(c) for c in village_sheet.columns)
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert data["villages_derived"] and data["extent"]["clipped"] and data["homes"]["capacity_kept"]
    assert any(m.startswith("ebike") for m in data["modes"]) and any(m.startswith("car") for m in data["modes"])
    villages = gpd.read_file(written["villages"])
    assert {"mode", "served_by", "village_source", "time_source"} <= set(villages.columns)
    page = written["map"].read_text(encoding="utf-8")
    assert "ebike" in page and "derived village unit" in page and "unpkg.com" not in page


def test_the_command_line_runs_the_review_and_the_plan(cache_dir, tmp_path):
    from geoplan.cli import app

    result = CliRunner().invoke(app, ["rural", "--region", "huangpi_south", "--least-cost", "--out", str(tmp_path), "--cache-dir", str(cache_dir)])
    assert result.exit_code == 0, result.output
    assert "Least-cost plan" in result.output and "optimal" in result.output and "ebike" in result.output
    assert "covers 12.2 %" in result.output and "approximate town zone" in result.output
    bad = CliRunner().invoke(app, ["rural", "--region", "huangpi_south", "--whole-district", "--cache-dir", str(cache_dir)])
    assert bad.exit_code == 2 and "--fallback detour" in bad.output


def test_rural_targets_files_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="Unknown rural targets preset 'x'; the presets are rural_canteens"):
        load_rural_targets("x")
    path = tmp_path / "t.toml"
    path.write_text('[plan]\nname = "p"\n[rules]\ndelivery_minutes = 20\n[[targets]]\nid = "a"\nindicator = "villages_served"\nclause = "c"\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['delivery_minutes'\] in \[rules\] \(did you mean 'delivery_min'\?\)"):
        load_rural_targets(path)
    path.write_text('[plan]\nname = "p"\n[[targets]]\nid = "a"\nindicator = "villages_servd"\nclause = "c"\n')
    with pytest.raises(ConfigError, match="did you mean 'villages_served'"):
        load_rural_targets(path)
    assert load_rural_targets("rural_canteens").with_rules(delivery_min=30).rules.delivery_min == 30
    assert get_mode(load_rural_targets().rules.delivery_mode).name == "ebike"
    assert callable(mode_router)


def test_a_home_off_the_roads_is_said_so_and_the_fallback_is_labelled(huangpi, units, on_road):
    from geoplan.modes import FALLBACK_LABEL

    off = units.villages.drop(index=on_road.index)
    assert len(off), "Huangpi's derived villages include some with no mapped road within 500 m"
    homes = gpd.GeoDataFrame({"name": ["remote", "big"], "kind": "home", "beds": [15.0, 120.0], "residents": [6.0, 40.0]},
                             geometry=[off.geometry.iloc[0], on_road.geometry.iloc[0]], crs=units.villages.crs,
                             index=pd.Index(["remote", "big"], name="site_id"))
    plain = merge_homes(huangpi, homes, options=HomeMergeOptions(max_drive_min=120)).table
    assert not plain.at["remote", "can_merge"] and "no car road within 500 m" in plain.at["remote", "reason"]
    assert plain.at["remote", "time_source"] == "no road within reach"
    asked = merge_homes(huangpi, homes, options=HomeMergeOptions(max_drive_min=120), fallback="detour").table
    assert asked.at["remote", "time_source"] == FALLBACK_LABEL
    if asked.at["remote", "can_merge"]:
        assert asked.at["remote", "merge_into"] == "big" and check_capacity(asked)


def test_the_canteen_fallback_is_asked_for_and_labelled(huangpi, units, targets, hubs):
    from geoplan.modes import FALLBACK_LABEL

    plain, asked = ServiceModel(huangpi, units, targets.rules), ServiceModel(huangpi, units, targets.rules, fallback="detour")
    off = plain.off_road
    assert len(off)
    facilities = hubs.assign(kind="centre")[["kind", "geometry"]]
    without = canteen_figures(plain, facilities, targets).villages
    with_line = canteen_figures(asked, facilities, targets).villages
    assert not without.loc[off, "served"].any()  # no road: no delivery on the network
    assert (without.loc[off, "time_source"] == "no road within reach").all()
    assert (with_line.loc[off, "time_source"] == FALLBACK_LABEL).all() and with_line.loc[off, "served"].any()
    assert (with_line.drop(index=off)["time_source"] == "network").all()
    summary = canteen_figures(asked, facilities, targets).summary
    assert FALLBACK_LABEL in summary.at["villages_served", "detail"]
