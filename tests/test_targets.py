"""Plan targets: presets that cite their clauses, indicators equal to a hand computation, files, map, CLI, least cost.

The hand computations use only geopandas and numpy on the raw demand cells,
the facility points and the unit polygons (and the region's reach matrix for
"within 15 minutes", the one coverage path), never geoplan.targets.
"""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.cluster.vq import kmeans2
from typer.testing import CliRunner

from geoplan.errors import ConfigError, InputError
from geoplan.sites import load_facilities, missing_attributes
from geoplan.targets import ConsolidationOptions, available_presets, load_targets, loads_targets, targets
from geoplan.targets.indicators import OUTSIDE
from geoplan.units import PlanningUnits
from geoplan.tiers import ATTRIBUTES

from tests.conftest import DATA

SAMPLE = DATA / "facilities" / "wuchang_sample_gcj02.csv"
PRESETS = ("shuimogou", "yunfu", "baodi", "xinjiang", "chaoyang")
STATION_SERVED_BY = ("station", "centre", "district_centre")


# --- units made by hand (k-means zones: the tests do not depend on how geoplan.units builds zones) ----------


def fixture_units(region, n_zones: int = 14, seed: int = 0) -> PlanningUnits:
    units = region.communities
    codes = pd.Index(units.index.astype(str), name="community_code")
    points = units.geometry.representative_point()
    _, labels = kmeans2(np.c_[points.x, points.y], n_zones, minit="++", seed=seed)
    street = np.array([f"Z{label + 1:02d}" for label in labels], dtype=object)
    communities = gpd.GeoDataFrame({"name": [f"社区单元 {c} community unit {c}" for c in codes], "street_code": street},
                                   geometry=units.geometry.to_numpy(), crs=units.crs, index=codes)
    dissolved = communities.dissolve("street_code")
    streets = gpd.GeoDataFrame({"name": [f"片区{c[1:]} zone {c[1:]}" for c in dissolved.index]}, geometry=dissolved.geometry.to_numpy(),
                               crs=units.crs, index=pd.Index(dissolved.index.astype(str), name="street_code"))
    return PlanningUnits(streets=streets, communities=communities, approximate=True, source=f"test fixture: {n_zones} k-means zones")


@pytest.fixture(scope="module")
def units(wuchang):
    return fixture_units(wuchang)


@pytest.fixture(scope="module")
def sample(wuchang):
    return load_facilities(SAMPLE, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")


@pytest.fixture(scope="module")
def review(wuchang, sample, units):
    return targets(wuchang, "shuimogou", facilities=sample, units=units, consolidation=ConsolidationOptions(min_catchment=3000))


# --- presets -----------------------------------------------------------------------------------------------


def test_every_preset_loads_and_every_target_names_its_plan_and_clause():
    assert set(PRESETS) <= set(available_presets())
    for name in PRESETS:
        preset = load_targets(name)
        assert preset.key == name and preset.name.endswith("plan") and len(preset) >= 2
        for target in preset:
            assert target.plan == preset.name, (name, target.id)
            assert target.clause.strip() and target.section.strip(), (name, target.id)
            assert target.clause in target.source_text and target.plan in target.source_text
            assert not re.search(r"(§|article|第.+条)\s*\d", target.section, re.I), "no invented clause numbers"


def test_presets_hold_the_figures_the_issue_quotes():
    figures = {name: {t.id: t.min for t in load_targets(name)} for name in PRESETS}
    assert figures["shuimogou"] == {"district_centre": 1, "street_centres_80pct": 80, "community_facility_60pct": 60,
                                    "street_centres_15": 15, "community_daycare_80pct": 80}
    assert figures["yunfu"]["town_street_centres_80pct"] == 80
    assert (figures["yunfu"]["floor_space_new_areas"], figures["yunfu"]["floor_space_old_areas"]) == (20, 15)
    assert figures["yunfu"]["nursing_beds_60pct"] == 60
    assert figures["baodi"]["street_town_institutions_70pct"] == 70 and figures["baodi"]["land_per_resident_new_areas"] == 0.1
    assert figures["baodi"]["nursing_beds_60pct"] == 60
    assert figures["xinjiang"]["space_per_resident"] == 0.1
    assert all(v is None for v in figures["chaoyang"].values())  # named aims, no figures: reported, not judged
    assert load_targets("yunfu").get("town_street_centres_80pct").quote_zh == "乡镇（街道）综合养老服务中心覆盖率达80%"


PLAN = '[plan]\nname = "My plan"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PLAN + '[[targets]]\nid = "a"\nindicator = "unit_share"\ntier = "centre"\nlevel = "street"\nclause = "x"\nminimum = 80\n',
         r"unknown key\(s\) \['minimum'\].*did you mean 'min'"),
        ('[plans]\nname = "x"\n', r"unknown key\(s\) \['plans'\]"),
        (PLAN + '[[targets]]\nid = "a"\nindicator = "unit_shares"\ntier = "centre"\nclause = "x"\n', r"did you mean 'unit_share'"),
        (PLAN + '[[targets]]\nid = "a"\nindicator = "unit_share"\ntier = "centre"\nlevel = "street"\nmin = 80\n', r"needs clause"),
        (PLAN + '[[targets]]\nid = "a"\nindicator = "unit_share"\ntier = "centre"\nlevel = "town"\nclause = "x"\n', r"level = \"street\" or \"community\""),
        (PLAN + '[[targets]]\nid = "a"\nindicator = "land_per_resident"\nlevel = "street"\nclause = "x"\n', r"does not use \['level'\]"),
        (PLAN + '[[targets]]\nid = "a"\nindicator = "reach"\ntier = "station"\nclause = "x"\nmin = 120\n', r"percentage between 0 and 100"),
        (PLAN + '[[targets]]\nid = "a"\nindicator = "reach"\ntier = "hospital"\nclause = "x"\n', r"tier 'hospital'"),
        ("[plan\nname = 1", r"not valid TOML"),
    ],
)
def test_bad_targets_files_are_refused_saying_what_to_fix(text, message):
    with pytest.raises(ConfigError, match=message):
        loads_targets(text, name="t.toml")


def test_unknown_preset_lists_the_presets(tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown targets preset 'atlantis'; the presets are baodi, chaoyang"):
        load_targets("atlantis")
    own = tmp_path / "mine.toml"
    own.write_text(PLAN + '[[targets]]\nid = "c"\nindicator = "facility_count"\ntier = "canteen"\nmin = 3\nclause = "3 canteens"\n',
                   encoding="utf-8")
    mine = load_targets(own)
    assert mine.key == "mine" and mine.get("c").section == "section not given" and mine.get("c").counts == ("canteen",)


# --- facility attributes (geoplan.sites) ------------------------------------------------------------------


def test_attribute_columns_with_chinese_headers_are_kept_and_missing_ones_listed(tmp_path):
    path = tmp_path / "homes.csv"
    path.write_text(
        "编号,名称,层级,经度,纬度,建筑面积（平方米）,床位,护理型床位,街道代码\n"
        "H1,甲,养老院,114.312453,30.558317,1200,100,70,420106001\n"
        "H2,乙,station,114.317382,30.559396,300,,,\n",
        encoding="utf-8",
    )
    sites = load_facilities(path, crs="EPSG:32650", coord_system="gcj02")
    assert sites["kind"].tolist() == ["home", "station"]  # 养老院 is the home tier
    assert sites["floor_area_m2"].tolist() == [1200.0, 300.0] and sites.at["H1", "nursing_beds"] == 70.0
    assert np.isnan(sites.at["H2", "beds"]) and sites.at["H1", "street_code"] == "420106001"
    assert sites.attrs["missing_attributes"] == ["land_m2", "meals_per_day", "community_code"]
    assert missing_attributes(sites) == ["land_m2", "meals_per_day", "community_code"]


def test_the_sample_list_lacks_every_attribute_and_the_review_says_no_data(review, sample):
    assert sample.attrs["missing_attributes"] == list(ATTRIBUTES)
    assert review.missing_attributes == tuple(ATTRIBUTES)
    row = review.summary.loc["floor_area_per_100_households"]
    assert pd.isna(row["value"]) and row["pass"] is None and row["status"] == "no data (column floor_area_m2 missing)"
    assert review.summary.loc["beds_per_1000_older", "status"] == "no data (column beds missing)"


# --- indicators against a hand computation ----------------------------------------------------------------


def _hand_unit(wuchang, sample, polygon, reach_covered) -> dict:
    """People, facilities and 15-min coverage of one polygon, with plain geopandas and numpy."""
    demand = wuchang.demand
    inside = shapely.contains_xy(polygon, demand.geometry.x.to_numpy(), demand.geometry.y.to_numpy())
    people = {g: float(demand.loc[inside, g].sum()) for g in ("pop_total", "pop_60", "pop_80")}
    in_polygon = sample[shapely.contains_xy(polygon, sample.geometry.x.to_numpy(), sample.geometry.y.to_numpy())]
    within = float(demand.loc[inside & reach_covered, "pop_60"].sum())
    return {**people, "households": people["pop_total"] / 2.31, "n_station": int((in_polygon["kind"] == "station").sum()),
            "n_canteen": int((in_polygon["kind"] == "canteen").sum()), "within_60": within,
            "within_60_pct": 100 * within / people["pop_60"] if people["pop_60"] else np.nan}


def test_indicator_table_equals_a_hand_computation_on_units(wuchang, sample, units, review):
    stations = sample[sample["kind"].isin(STATION_SERVED_BY)]
    covered = wuchang.reach(stations, cutoff_min=15).nearest_time_s().reindex(wuchang.demand.index).to_numpy() <= 900 + 1e-9
    with_station = set(gpd.sjoin(stations[["geometry"]], units.communities[["geometry"]], predicate="within")["community_code"])
    community_ids = list(units.communities.index)
    chosen = sorted(with_station)[:2] + [c for c in community_ids if c not in with_station][:2]  # two with a station, two without
    for code in chosen:
        hand = _hand_unit(wuchang, sample, units.communities.geometry[code], covered)
        row = review.communities.loc[code]
        for column in ("pop_total", "pop_60", "pop_80", "households", "n_station", "n_canteen"):
            assert row[column] == pytest.approx(hand[column], rel=1e-9, abs=1e-6), (code, column)
        assert row["pop_60_within_15min_people"] == pytest.approx(hand["within_60"], abs=1e-6)
        assert row["pop_60_within_15min"] == pytest.approx(hand["within_60_pct"], rel=1e-9, nan_ok=True)
        assert row["community_daycare_80pct"] == (code in with_station)
        assert row["pass_community_daycare_80pct"] == (code in with_station)
    zones = list(units.streets.index)
    for code in zones[:3]:
        polygon = shapely.union_all(units.communities.geometry[units.communities["street_code"] == code].to_numpy())
        hand = _hand_unit(wuchang, sample, polygon, covered)
        row = review.streets.loc[code]
        for column in ("pop_total", "pop_60", "pop_80", "n_station", "n_canteen"):
            assert row[column] == pytest.approx(hand[column], rel=1e-9, abs=1e-6), (code, column)
        assert row["pop_60_within_15min"] == pytest.approx(hand["within_60_pct"], rel=1e-9)
        assert row["unit_type"] == "近似片区(非街道) approximate zone, not a street"
        assert row["pass_street_centres_80pct"] is False  # the sample list has no street centre
    # the district: shares of units, people within 15 min, the row of people outside every unit
    summary = review.summary
    assert summary.loc["community_daycare_80pct", "value"] == pytest.approx(100 * len(with_station) / len(community_ids))
    assert summary.loc["street_centres_80pct", "value"] == 0 and summary.loc["street_centres_80pct", "pass"] is False
    assert summary.loc["district_centre", "pass"] is False and summary.loc["street_centres_15", "value"] == 0
    total_60 = wuchang.demand["pop_60"].sum()
    assert summary.loc["pop_60_within_15min", "value"] == pytest.approx(100 * wuchang.demand.loc[covered, "pop_60"].sum() / total_60)
    in_any = shapely.contains_xy(shapely.union_all(units.communities.geometry.to_numpy()),
                                 wuchang.demand.geometry.x.to_numpy(), wuchang.demand.geometry.y.to_numpy())
    outside = wuchang.demand.loc[~in_any, "pop_60"].sum()
    assert outside > 0 and review.communities.loc[OUTSIDE, "pop_60"] == pytest.approx(outside)
    assert review.streets["pop_60"].sum() == pytest.approx(total_60) and review.communities["pop_60"].sum() == pytest.approx(total_60)
    assert review.communities.loc[OUTSIDE, "passes"] is None


def test_floor_space_land_beds_and_nursing_share_equal_plain_arithmetic(wuchang, units, tmp_path):
    rows = pd.read_csv(SAMPLE)
    rows["tier"] = ["home" if i % 4 == 0 else k for i, k in enumerate(rows.pop("kind"))]
    rows["建筑面积(平方米)"] = 100.0 + 10 * np.arange(len(rows))
    rows["用地面积"] = 50.0 + 5 * np.arange(len(rows))
    rows["床位"] = np.where(rows["tier"] == "home", 80.0, np.nan)
    rows["护理型床位"] = np.where(rows["tier"] == "home", 40.0 + np.arange(len(rows)), np.nan)
    path = tmp_path / "with_attributes.csv"
    rows.to_csv(path, index=False)
    sites = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")
    review = targets(wuchang, "yunfu", facilities=sites, units=units)
    pop_total = wuchang.demand["pop_total"].sum()
    floor = rows["建筑面积(平方米)"].sum() / (pop_total / 2.31 / 100)
    summary = review.summary
    assert summary.loc["floor_space_old_areas", "value"] == pytest.approx(floor)
    assert summary.loc["floor_space_old_areas", "pass"] == (floor >= 15) and summary.loc["floor_space_new_areas", "pass"] == (floor >= 20)
    assert summary.loc["land_per_resident", "value"] == pytest.approx(rows["用地面积"].sum() / pop_total)
    homes = rows[rows["tier"] == "home"]
    assert summary.loc["nursing_beds_60pct", "value"] == pytest.approx(100 * homes["护理型床位"].sum() / homes["床位"].sum())
    assert summary.loc["beds_per_1000_older", "value"] == pytest.approx(homes["床位"].sum() / wuchang.demand["pop_60"].sum() * 1000)
    assert review.household_size == 2.31 and "户规模" in review.household_source
    # one community's own floor space per 100 households, by hand
    code = review.facilities["community_code"][review.facilities["community_code"] != OUTSIDE].iloc[0]
    polygon = units.communities.geometry[code]
    mine = sites[shapely.contains_xy(polygon, sites.geometry.x.to_numpy(), sites.geometry.y.to_numpy())]
    inside = shapely.contains_xy(polygon, wuchang.demand.geometry.x.to_numpy(), wuchang.demand.geometry.y.to_numpy())
    households = wuchang.demand.loc[inside, "pop_total"].sum() / 2.31
    assert review.communities.loc[code, "floor_space_old_areas"] == pytest.approx(mine["floor_area_m2"].sum() / (households / 100))


def test_blank_attribute_cells_give_a_lower_bound_not_a_guess(wuchang, units, tmp_path):
    rows = pd.read_csv(SAMPLE)
    rows["floor_area_m2"] = [50000.0] + [np.nan] * (len(rows) - 1)
    path = tmp_path / "blank.csv"
    rows.to_csv(path, index=False)
    sites = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")
    row = targets(wuchang, "yunfu", facilities=sites, units=units).summary.loc["floor_space_old_areas"]
    assert row["status"].startswith("incomplete (floor_area_m2 blank for 18 of 19 facilities")
    assert row["value"] == pytest.approx(50000 / (wuchang.demand["pop_total"].sum() / 2.31 / 100))
    assert row["pass"] is None  # a lower bound below the figure says nothing


# --- consolidation ----------------------------------------------------------------------------------------


def test_consolidation_names_the_merge_and_the_people_who_would_lose_coverage(wuchang, sample, review):
    merges = review.consolidation
    assert len(merges) and (merges["catchment"] < 3000).all() and merges["catchment"].is_monotonic_increasing
    stations = sample[sample["kind"].isin(STATION_SERVED_BY)]
    reach = wuchang.reach(stations, cutoff_min=15)
    for site_id, row in merges[merges["kind"] == "station"].iterrows():
        others = [s for s in stations.index if s != site_id]
        own = reach.within(900, sites=pd.Index([site_id], dtype=object)).toarray().ravel() > 0
        still = reach.covered(900, sites=pd.Index(others, dtype=object))
        if merges.loc[:site_id, "can_merge"].iloc[:-1].any():
            continue  # a merger above this row changes who else is open
        lost = wuchang.demand["pop_60"].to_numpy()[own & ~still].sum()
        assert row["lose_pop_60"] == pytest.approx(lost)
        assert row["can_merge"] == (lost == 0 and isinstance(row["merge_into"], str))
        if isinstance(row["merge_into"], str):
            assert sample.at[row["merge_into"], "kind"] == "station" and row["merge_walk_min"] <= 30
    assert targets(wuchang, "shuimogou", facilities=sample, units=fixture_units(wuchang)).consolidation.empty  # no threshold: none


# --- files and map ----------------------------------------------------------------------------------------


def test_workbook_layers_and_json_are_bilingual_and_label_zones(review, tmp_path):
    written = review.write(tmp_path)
    sheets = pd.read_excel(written["xlsx"], sheet_name=None)
    assert list(sheets)[:4] == ["summary 摘要", "approximate zones 近似片区", "communities 社区", "consolidation 撤并"]
    assert {"station 社区养老服务站", "canteen 老年食堂、助餐点", "home 养老机构", "about 说明"} <= set(sheets)
    summary = sheets["summary 摘要"]
    assert {"数值 value", "目标 target", "是否达标 pass", "条款(引文) clause", "规划 plan"} <= set(summary.columns)
    assert summary.set_index("编号 id").loc["street_centres_80pct", "是否达标 pass"] == "未达标 fail"
    zones = sheets["approximate zones 近似片区"]
    assert zones.iloc[-1, 0] == OUTSIDE and "approximate zone, not a street" in " ".join(zones.columns)
    layer = json.loads(written["approximate_zones"].read_text(encoding="utf-8"))
    assert len(layer["features"]) == 14 and layer["features"][0]["properties"]["passes"] in ("未达标 fail", "达标 pass")
    assert gpd.list_layers(written["gpkg"])["name"].tolist()[:2] == ["approximate_zones", "communities"]
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert data["units"]["approximate"] is True and data["passed"] is False


def test_review_map_draws_the_street_network_and_unit_names_offline(review, tmp_path):
    from geoplan.targets.review_map import review_map, save_map

    page = save_map(review_map(review), tmp_path / "review.html").read_text(encoding="utf-8")
    assert re.findall(r"<(?:script|link) [^>]*(?:src|href)=", page) == []  # nothing loaded from the web
    text = json.dumps  # labels and layer names travel as JSON in the page (Chinese as \\u escapes)
    assert text("街道路网 Street network")[1:-1] in page and text("片区01 zone 01")[1:-1] in page and "geoplanLabel" in page
    assert "approximate, built from communities: not streets" in page
    assert "Shuimogou district plan" in page


@pytest.mark.slow
def test_review_map_opens_in_a_browser_without_errors_or_requests(review, tmp_path):
    from geoplan.targets.review_map import review_map, save_map
    from tests.browser import chromium, console_errors, missing_browser, requests

    if missing_browser():
        pytest.skip(missing_browser())
    path = save_map(review_map(review), tmp_path / "review.html")
    with chromium() as driver:
        driver.get(path.as_uri())
        labels = driver.execute_script("return document.querySelectorAll('.geoplan-label').length")
        assert console_errors(driver) == []
        assert [u for u, page in requests(driver) if page.startswith("file:") and not u.startswith(("file:", "data:"))] == []
    assert labels == 14  # one name per zone (community names start switched off)


# --- CLI and least cost -----------------------------------------------------------------------------------


def test_requirements_from_the_failing_targets(review):
    from geoplan.optimize.requirements import UnitShare
    from geoplan.targets.to_pass import requirements_for

    requirements, skipped, build = requirements_for(review)
    by_id = {r[1] if isinstance(r, tuple) else r.id: r for r in requirements}
    assert set(by_id) == {t.id for t in load_targets("shuimogou")}  # every Shuimogou target fails with the sample list
    street = by_id["street_centres_80pct"]
    assert isinstance(street, UnitShare) and (street.level, street.share_pct, street.kinds) == ("street", 80.0, ("centre", "district_centre"))
    assert by_id["street_centres_15"] == ("count", "street_centres_15", ("centre",), 15)
    assert build == ["station", "centre", "district_centre"] and skipped.empty


def test_least_cost_to_pass_meets_every_target(review):
    from geoplan.optimize import SolverOptions
    from geoplan.targets.to_pass import least_cost_to_pass

    passing = least_cost_to_pass(review, solver=SolverOptions(time_limit_s=60))
    table = passing.requirement_table
    assert table["passed"].all() and not table["passed_before"].any()
    assert table.loc["street_centres_15", "after"] >= 15 and table.loc["district_centre", "after"] >= 1
    assert passing.plan.optimal and passing.plan.cost <= passing.plan.greedy_cost + 1e-9
    kinds = passing.new_sites["kind"].value_counts()
    assert kinds["centre"] >= 15 and kinds["district_centre"] == 1  # the tier tie-break: no district centre where a station does
    assert passing.new_sites["phase"].tolist() == list(range(1, len(passing.new_sites) + 1))


@pytest.mark.slow
def test_cli_targets_prints_the_review_and_writes_its_files(tmp_path, cache_dir):
    from geoplan.cli import app

    result = CliRunner().invoke(app, [
        "targets", "--region", "wuchang", "--preset", "shuimogou", "--facilities", str(SAMPLE), "--coord-system", "gcj02",
        "--out", str(tmp_path / "out"), "--map", str(tmp_path / "review.html"), "--cache-dir", str(cache_dir),
    ])
    assert result.exit_code == 0, result.output
    assert "street_centres_80pct" in result.output and "fail" in result.output
    assert "approximate zone, not a street" in result.output
    data = json.loads((tmp_path / "out" / "wuchang_shuimogou_review.json").read_text(encoding="utf-8"))
    assert {r["id"]: r["pass"] for r in data["summary"]}["community_facility_60pct"] is False
    assert (tmp_path / "review.html").stat().st_size > 100_000


def test_cli_targets_refuses_an_unknown_preset_plainly(cache_dir):
    from geoplan.cli import app

    result = CliRunner().invoke(app, ["targets", "--preset", "atlantis", "--cache-dir", str(cache_dir)])
    assert result.exit_code == 2 and "Unknown targets preset 'atlantis'" in result.output and "Traceback" not in result.output


def test_a_region_without_facilities_or_units_is_told_what_to_give(wuchang):
    with pytest.raises(InputError, match="facilities must be a GeoDataFrame or a facility file"):
        targets(wuchang, "shuimogou", facilities=[1, 2], units=fixture_units(wuchang))


def _own(body: str):
    return loads_targets('[plan]\nname="own"\n' + body)


@pytest.mark.parametrize("bad_id", ["pop_60", "name", "households", "pass_x", "n_station", "9lives"])
def test_a_target_id_may_not_take_a_column_of_the_review(bad_id):
    """An id such as pop_60 or name used to overwrite the unit tables' own columns silently."""
    with pytest.raises(ConfigError, match="review's own columns"):
        _own(f'[[targets]]\nid="{bad_id}"\nindicator="reach"\ntier="station"\nmin=50\nclause="c"\n')


def test_a_share_over_part_of_the_homes_is_not_judged(wuchang, sample, units):
    """A nursing-bed share over the homes that have beds is no bound on the whole: it used to be judged a pass."""
    homes = sample.copy()
    homes.loc[homes.index[:3], "kind"] = "home"
    homes["beds"], homes["nursing_beds"] = np.nan, np.nan
    homes.loc[homes.index[0], ["beds", "nursing_beds"]] = [100, 90]
    homes.loc[homes.index[1], "beds"] = 1000
    review = targets(wuchang, _own('[[targets]]\nid="nb"\nindicator="nursing_bed_share"\ntier="home"\nmin=60\nclause="c"\n'),
                     facilities=homes, units=units)
    assert review.summary.at["nb", "pass"] is None and review.passed is None


def test_units_with_incomplete_data_are_not_failed_on_a_lower_bound(wuchang, sample, units):
    floor = sample.copy()
    floor["floor_area_m2"] = np.nan
    floor.loc[floor.index[0], "floor_area_m2"] = 1e6
    review = targets(wuchang, _own('[[targets]]\nid="fa"\nindicator="floor_area_per_100_households"\nmin=20\nclause="c"\n'),
                     facilities=floor, units=units)
    assert review.summary.at["fa", "pass"] is True  # the district's lower bound already passes
    assert not (review.streets["pass_fa"] == False).any()  # noqa: E712 (object column of True/False/None)


def test_the_plan_keeps_a_passing_share_that_new_homes_could_break(wuchang, sample, units):
    """Homes with beds but no nursing beds would raise beds per 1,000 and break the nursing share: no plan may do that."""
    from geoplan.errors import InfeasibleError
    from geoplan.optimize import SolverOptions
    from geoplan.targets.to_pass import least_cost_to_pass

    homes = sample.copy()
    homes.loc[homes.index[:2], "kind"] = "home"
    homes["beds"], homes["nursing_beds"] = np.nan, np.nan
    homes.loc[homes.index[:2], ["beds", "nursing_beds"]] = [[100, 70], [100, 70]]
    review = targets(wuchang, _own(
        '[[targets]]\nid="nb"\nindicator="nursing_bed_share"\ntier="home"\nmin=60\nclause="c"\n'
        '[[targets]]\nid="beds"\nindicator="beds_per_1000_older"\ncounts=["home"]\nmin=1.5\nclause="c"\n'), facilities=homes, units=units)
    assert review.summary.at["nb", "pass"] is True and review.summary.at["beds", "pass"] is False
    with pytest.raises(InfeasibleError, match="nb"):
        least_cost_to_pass(review, new_attributes={"home": {"beds": 100, "nursing_beds": 0}}, solver=SolverOptions(time_limit_s=30))
    plan = least_cost_to_pass(review, new_attributes={"home": {"beds": 100, "nursing_beds": 80}}, solver=SolverOptions(time_limit_s=30))
    table = plan.requirement_table
    assert bool(table.loc["nb", "passed"]) and bool(table.loc["beds", "passed"])


def test_a_list_without_a_kind_column_is_reported(wuchang, units, tmp_path):
    path = tmp_path / "no_kind.csv"
    path.write_text("名称,经度,纬度\n甲中心,114.3125,30.5583\n", encoding="utf-8")
    facilities = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")
    review = targets(wuchang, "shuimogou", facilities=facilities, units=units)
    assert review.missing_attributes[0].startswith("kind")
