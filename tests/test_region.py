"""Tests for geoplan.region and the coverage report: shipped regions, bad boundaries, safe writing."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

from geoplan.analysis import CoverageReport, analyse_coverage
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from geoplan.region import load_region
from tests.conftest import BOUNDARIES, DATA, WUCHANG_TOML

# --------------------------------------------------------------------------- shipped regions


def test_wuchang_loads(wuchang):
    assert wuchang.key == "wuchang"
    assert wuchang.crs.to_epsg() == 32650
    assert wuchang.boundary.crs == wuchang.network.crs == wuchang.demand.crs == wuchang.candidates.crs
    assert wuchang.boundary.area.sum() / 1e6 == pytest.approx(95.9, abs=0.5)  # km²
    assert 7_500 < len(wuchang.demand) < 8_500
    assert len(wuchang.candidates) == len(wuchang.communities) == 124
    assert len(wuchang.facilities) == 0  # no open list of existing facilities ships
    assert wuchang.groups == ["pop_total", "pop_60", "pop_65", "pop_80"]
    assert wuchang.thresholds_min == (5, 10, 15)
    assert wuchang.network.components().loc[0, "street_km"] > 500


def test_jiangan_is_another_district(wuchang, jiangan):
    assert jiangan.key == "jiangan"
    j, w = shapely.union_all(jiangan.boundary.geometry.to_numpy()), shapely.union_all(wuchang.boundary.geometry.to_numpy())
    assert j.intersection(w).area < 1e-3 * j.area  # neighbours across the river, no overlap
    assert jiangan.boundary.area.sum() / 1e6 == pytest.approx(81.1, abs=0.5)
    assert 7_500 < len(jiangan.demand) < 8_500  # ~8k populated 100 m cells
    assert len(jiangan.candidates) == 135
    assert jiangan.demand["pop_60"].sum() == pytest.approx(217_494, rel=1e-6)  # the 2020 census row 420102
    assert jiangan.demand["pop_80"].sum() == pytest.approx(29_208, rel=1e-6)
    assert not set(jiangan.candidates.index) & set(wuchang.candidates.index)
    assert jiangan.network.crs == wuchang.network.crs


def test_region_reach_uses_the_largest_threshold(wuchang):
    sites = wuchang.candidates.iloc[:3]
    reach = wuchang.reach(sites)
    assert reach.cutoff_s == 900 and reach.shape == (len(wuchang.demand), 3)
    assert reach.times_s.nnz > 0 and reach.times_s.data.max() <= 900
    assert wuchang.reach(sites, cutoff_min=5).times_s.data.max() <= 300


# --------------------------------------------------------------------------- bad boundaries


def region_toml(tmp_path, boundary, where: str):
    text = WUCHANG_TOML.read_text(encoding="utf-8").replace('"../', f'"{DATA}/')
    text = text.replace(f'path = "{DATA}/boundaries/wuhan_districts.geojson"', f'path = "{boundary}"')
    text = text.replace('where = { adcode = "420106" }', f'where = {{ adcode = "{where}" }}')
    path = tmp_path / "region.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wuchang_4326():
    districts = gpd.read_file(BOUNDARIES)
    return districts[districts["adcode"].astype(str) == "420106"][["adcode", "geometry"]]


def test_boundary_without_crs(tmp_path, wuchang_4326):
    path = tmp_path / "no_crs.gpkg"
    wuchang_4326.set_crs(None, allow_override=True).to_file(path, driver="GPKG")
    assert gpd.read_file(path).crs is None
    with pytest.raises(CRSMismatchError, match=r"boundary file .*no_crs\.gpkg has no CRS\. Save it with one \(EPSG:4326 for lon/lat\)"):
        load_region(region_toml(tmp_path, path, "420106"), cache_dir=tmp_path / "cache")


def test_boundary_labelled_degrees_holding_metres(tmp_path, wuchang_4326):
    path = tmp_path / "metres.geojson"  # GeoJSON is lon/lat by definition: UTM numbers in it are mislabelled
    wuchang_4326.to_crs(32650).set_crs(4326, allow_override=True).to_file(path, driver="GeoJSON")
    with pytest.raises(CRSMismatchError) as info:
        load_region(region_toml(tmp_path, path, "420106"), cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "says its CRS is EPSG:4326 (degrees)" in message and "look like metres" in message
    assert "Save the file with its true projected CRS" in message


def test_boundary_that_misses_the_network(tmp_path):
    path = tmp_path / "beijing.geojson"
    gpd.GeoDataFrame({"adcode": ["110101"]}, geometry=[shapely.box(116.38, 39.90, 116.42, 39.93)], crs=4326).to_file(path)
    with pytest.raises(InputError) as info:
        load_region(region_toml(tmp_path, path, "110101"), cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "The region boundary does not overlap the street network" in message
    assert "boundary bounds" in message and "network bounds" in message
    assert "each file declares its true CRS" in message
    assert not list((tmp_path / "cache").glob("*/edges.parquet"))  # nothing was cached for it


def test_boundary_filter_that_matches_nothing(tmp_path):
    with pytest.raises(EmptyDataError, match=r"No feature of .*wuhan_districts\.geojson has adcode = '420199'\. Check the value"):
        load_region(region_toml(tmp_path, BOUNDARIES, "420199"), cache_dir=tmp_path / "cache")


def test_unknown_region_name(tmp_path):
    with pytest.raises(InputError, match=r"Unknown region 'wuhan'\. Shipped regions: huangpi_south, jiangan, wuchang"):
        load_region("wuhan", cache_dir=tmp_path)


# --------------------------------------------------------------------------- writing the report


@pytest.fixture(scope="module")
def report(wuchang) -> CoverageReport:
    return analyse_coverage(wuchang, wuchang.candidates.iloc[:4], thresholds_min=(5, 15))


def test_report_writes_every_file(tmp_path, report):
    written = report.write(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(p.name for p in written.values())
    assert set(written) == {"gpkg", "sites", "gaps", "boundary", "care_circles", "units", "summary", "summary_json"}
    layers = set(pyogrio.list_layers(written["gpkg"])[:, 0])
    assert layers == {"sites", "gaps", "boundary", "care_circles", "units"}
    gaps = gpd.read_file(written["gaps"])
    assert gaps.crs.to_epsg() == 4326 and len(gaps) == len(report.gaps)
    summary = pd.read_csv(written["summary"], encoding="utf-8-sig").set_index(["group", "threshold_min"])
    assert summary.loc[("pop_60", 15), "covered"] == pytest.approx(report.summary.loc[("pop_60", 15), "covered"])


def test_a_failed_write_leaves_nothing_half_written(tmp_path, report, monkeypatch):
    real_to_file = gpd.GeoDataFrame.to_file
    calls = []

    def fail_on_second_layer(self, *args, **kwargs):
        calls.append(kwargs.get("layer"))
        if len(calls) == 2:
            raise OSError("disk full")
        return real_to_file(self, *args, **kwargs)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", fail_on_second_layer)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        report.write(out)
    assert calls == ["sites", "gaps"]  # it failed inside the GeoPackage, after one layer was in
    assert list(out.iterdir()) == []  # no GeoPackage with one layer, no temporary file


def test_a_failure_after_some_files_leaves_only_whole_files(tmp_path, report, monkeypatch):
    real_to_file = gpd.GeoDataFrame.to_file

    def fail_on_gaps_geojson(self, path, *args, **kwargs):
        if kwargs.get("driver") == "GeoJSON" and len(self) == len(report.gaps):
            raise OSError("disk full")
        return real_to_file(self, path, *args, **kwargs)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", fail_on_gaps_geojson)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        report.write(out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["wuchang_coverage.gpkg", "wuchang_sites.geojson"]  # finished before the failure
    assert len(gpd.read_file(out / "wuchang_sites.geojson")) == len(report.sites)
    assert len(pyogrio.list_layers(out / "wuchang_coverage.gpkg")) == 5


def test_out_dir_that_is_a_file(tmp_path, report):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    with pytest.raises((OSError, InputError)):
        report.write(blocker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and blocker.read_text() == "not a folder"


# --------------------------------------------------------------------------- census totals and missing files


def small_region_toml(tmp_path, extra_census: str = "") -> tuple:
    """Wuchang's config for a 5 km² square in its centre, still scaled to the whole district's census row."""
    square = tmp_path / "square.geojson"
    box = gpd.GeoDataFrame({"adcode": ["420106"]}, geometry=[shapely.box(114.300, 30.540, 114.3233, 30.5602)], crs=4326)
    box.to_file(square)
    text = region_toml(tmp_path, square, "420106").read_text(encoding="utf-8")
    text = text.replace("rescale = true", "rescale = true\n" + extra_census)
    text = text[: text.index("[communities]")] + text[text.index("# No open list"):]  # junction candidates
    path = tmp_path / "square.toml"
    path.write_text(text, encoding="utf-8")
    return path, box.to_crs(box.estimate_utm_crs()).area.sum() / 1e6


def test_census_totals_of_a_larger_area_are_refused(tmp_path):
    path, area_km2 = small_region_toml(tmp_path)
    assert area_km2 == pytest.approx(5.0, abs=0.1)
    with pytest.raises(InputError) as info:
        load_region(path, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "The census row '420106' ([census] of square.toml) would scale the raster's counts pop_total ×" in message
    assert "for a larger area than the boundary" in message and "max_factor" in message
    factor = float(message.split("pop_total ×")[1].split(" ")[0])
    assert factor > 10  # far beyond MAX_CENSUS_FACTOR

    accepted, _ = small_region_toml(tmp_path, "max_factor = inf")
    with pytest.warns(UserWarning, match=r"pop_total ×"):
        region = load_region(accepted, cache_dir=tmp_path / "cache")
    assert region.census_factors["pop_total"] == pytest.approx(factor, rel=1e-3)
    assert region.candidates.attrs["source"] == "network"


def test_a_missing_file_is_named_with_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    text = WUCHANG_TOML.read_text(encoding="utf-8").replace('"../population/', '"../popul/')
    text = text.replace('"../', f'"{DATA}/').replace(f'"{DATA}/popul/', '"../popul/')
    path = tmp_path / "regions" / "typo.toml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(InputError) as info:
        load_region(path, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert f"[population] path -> {tmp_path / 'popul' / 'wuhan_worldpop2020_agegroups_100m.tif'}" in message
    assert f"the config file's folder, {tmp_path / 'regions'}" in message and str(tmp_path / "here") not in message


def test_another_facility_list_shares_the_prepared_router(wuchang):
    router = wuchang.router
    other = wuchang.with_facilities(wuchang.candidates.head(3))
    assert other.router is router and len(other.facilities) == 3


def test_coverage_of_one_kind_of_care_counts_only_the_sites_that_give_it(wuchang):
    """Day care is given by stations and centres (as the targets review counts it); a canteen or a home is not day care."""
    sites = wuchang.candidates.iloc[:5].copy()
    sites["kind"] = ["station", "canteen", "centre", "home", "station"]
    day_care = analyse_coverage(wuchang, sites, serving="station", with_circles=False)
    by_hand = analyse_coverage(wuchang, sites[sites["kind"].isin(["station", "centre"])], with_circles=False)
    assert day_care.sites.index.tolist() == by_hand.sites.index.tolist() == [sites.index[0], sites.index[2], sites.index[4]]
    pd.testing.assert_frame_equal(day_care.summary, by_hand.summary)
    every = analyse_coverage(wuchang, sites, with_circles=False)
    assert len(every.sites) == 5
    assert (every.summary["covered"] >= day_care.summary["covered"]).all()
    with pytest.raises(InputError, match=r"None of the 1 sites serves station care \(they are home 1; station care is given by station, centre"):
        analyse_coverage(wuchang, sites.iloc[[3]], serving="station", with_circles=False)


def test_a_boundary_of_points_or_lines_is_refused(tmp_path):
    from tests.test_config import wuchang_toml

    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame({"adcode": ["420106"]}, geometry=gpd.points_from_xy([114.31], [30.55]), crs=4326).to_file(points, driver="GeoJSON")
    config = wuchang_toml(tmp_path, lambda t: t.replace(t[t.index('path = "', t.index("[boundary]")):].split("\n")[0], f'path = "{points}"', 1))
    with pytest.raises(InputError, match=r"holds Point geometry; a region's boundary must be polygons"):
        load_region(config, cache_dir=tmp_path)
