"""Tests for geoplan.sites: facility lists in WGS84 / GCJ-02 / BD-09, bad files, candidate sites."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geoplan.coords import from_wgs84
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from geoplan.sites import candidates_from_communities, candidates_from_network, empty_sites, load_facilities
from tests.conftest import UTM50, X0, Y0, tiny_network


@pytest.fixture(scope="module")
def true_points(wuchang) -> gpd.GeoDataFrame:
    """Six Wuchang candidate sites more than 1.5 km inside the boundary: true positions in WGS84."""
    boundary = shapely.union_all(wuchang.boundary.geometry.to_numpy())
    depth = wuchang.candidates.distance(boundary.exterior if boundary.geom_type == "Polygon" else boundary.boundary)
    inner = wuchang.candidates[depth > 1500]
    chosen = inner.iloc[np.random.default_rng(7).choice(len(inner), 6, replace=False)]
    return chosen[["geometry"]].to_crs(4326)


def write_csv(path, table: dict, encoding="utf-8"):
    pd.DataFrame(table).to_csv(path, index=False, encoding=encoding)
    return path


def test_gcj02_list_read_as_gcj02_lands_on_the_true_points(tmp_path, wuchang, true_points):
    lon, lat = from_wgs84(true_points.geometry.x.to_numpy(), true_points.geometry.y.to_numpy(), "gcj02")
    path = write_csv(tmp_path / "amap.csv", {"id": [f"a{i}" for i in range(6)], "name": list("ABCDEF"), "lng": lon, "lat": lat})
    truth = true_points.to_crs(wuchang.crs).geometry.to_numpy()

    right = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")
    assert right.index.tolist() == [f"a{i}" for i in range(6)] and right.index.name == "site_id"
    assert right["name"].tolist() == list("ABCDEF")
    assert right.crs == wuchang.crs
    assert shapely.distance(right.geometry.to_numpy(), truth).max() < 1.0

    wrong = load_facilities(path, crs=wuchang.crs, coord_system="wgs84")
    offset = shapely.distance(wrong.geometry.to_numpy(), truth)
    # GCJ-02 shifts Wuhan by roughly half a kilometre: read as WGS84, every point is off by that much
    assert offset.min() > 300 and offset.max() < 800


def test_bd09_list_and_aliases(tmp_path, wuchang, true_points):
    lon, lat = from_wgs84(true_points.geometry.x.to_numpy(), true_points.geometry.y.to_numpy(), "bd09")
    path = write_csv(tmp_path / "baidu.csv", {"名称": list("ABCDEF"), "经度": lon, "纬度": lat}, encoding="gb18030")
    sites = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="Baidu")
    truth = true_points.to_crs(wuchang.crs).geometry.to_numpy()
    assert shapely.distance(sites.geometry.to_numpy(), truth).max() < 1.0
    assert sites["name"].tolist() == list("ABCDEF")
    assert sites.index.tolist() == [f"f{i:03d}" for i in range(1, 7)]  # ids made up when the file has none
    assert (sites["kind"] == "station").all() and (sites["status"] == "existing").all()


def test_facilities_outside_the_region_are_listed_or_dropped(tmp_path, wuchang, true_points):
    lon = [*true_points.geometry.x.iloc[:2], 114.2655, 116.397]  # Hankou across the river, and Beijing
    lat = [*true_points.geometry.y.iloc[:2], 30.6146, 39.909]
    path = write_csv(tmp_path / "list.csv", {"id": ["in1", "in2", "hankou", "beijing"], "name": ["a", "b", "江岸站", "北京站"], "lon": lon, "lat": lat})
    with pytest.raises(InputError) as info:
        load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary)
    message = str(info.value)
    assert "2 of 4 facilities in list.csv lie outside the region: hankou (江岸站), beijing (北京站)" in message
    assert "coord_system='gcj02'" in message and "outside='drop'" in message
    assert "in1" not in message

    kept = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, outside="drop")
    assert kept.index.tolist() == ["in1", "in2"]
    with pytest.raises(InputError, match="outside must be 'error' or 'drop'"):
        load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, outside="keep")


def test_missing_facility_file(tmp_path):
    with pytest.raises(InputError, match=r"facility file .*nowhere\.csv does not exist\. Check the path"):
        load_facilities(tmp_path / "nowhere.csv", crs=UTM50)


def test_empty_facility_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EmptyDataError, match=r"facility file .*empty\.csv is empty"):
        load_facilities(tmp_path / "empty.csv", crs=UTM50)
    (tmp_path / "header.csv").write_text("name,lon,lat\n")
    with pytest.raises(EmptyDataError, match=r"header\.csv has a header but no rows"):
        load_facilities(tmp_path / "header.csv", crs=UTM50)


def test_csv_without_lon_lat_columns(tmp_path):
    path = write_csv(tmp_path / "addresses.csv", {"name": ["a"], "address": ["武昌区中山路1号"]})
    with pytest.raises(InputError, match=r"needs longitude and latitude columns \(e\.g\. 'lon' and 'lat', or '经度' and '纬度'\); it has \['name', 'address'\]"):
        load_facilities(path, crs=UTM50)


def test_swapped_or_projected_coordinates(tmp_path):
    swapped = write_csv(tmp_path / "swapped.csv", {"lon": [30.55], "lat": [114.3]})
    with pytest.raises(CRSMismatchError, match=r"rows 1 are not valid lon/lat\. Longitude and latitude look swapped"):
        load_facilities(swapped, crs=UTM50)
    metres = write_csv(tmp_path / "metres.csv", {"lon": [240000.0], "lat": [3380000.0]})
    with pytest.raises(CRSMismatchError, match="look like projected metres"):
        load_facilities(metres, crs=UTM50)
    blank = write_csv(tmp_path / "blank.csv", {"lon": [114.3, None], "lat": [30.5, 30.6]})
    with pytest.raises(InputError, match=r"rows 2 have no usable longitude/latitude"):
        load_facilities(blank, crs=UTM50)


def test_projected_layer_with_an_offset_system(tmp_path, true_points):
    path = tmp_path / "sites.gpkg"
    true_points.to_crs(UTM50).to_file(path, driver="GPKG")
    with pytest.raises(CRSMismatchError, match=r"projected CRS, but coord_system='gcj02'"):
        load_facilities(path, crs=UTM50, coord_system="gcj02")
    sites = load_facilities(path, crs=UTM50)  # a projected layer in its true CRS is fine
    assert shapely.distance(sites.geometry.to_numpy(), true_points.to_crs(UTM50).geometry.to_numpy()).max() < 1e-6


def test_unknown_coord_system_kind_and_repeated_ids(tmp_path):
    path = write_csv(tmp_path / "a.csv", {"id": ["x", "x"], "lon": [114.3, 114.31], "lat": [30.5, 30.51]})
    with pytest.raises(InputError, match=r"Unknown coordinate system 'mars2000'.*'gcj02'"):
        load_facilities(path, crs=UTM50, coord_system="mars2000")
    with pytest.raises(InputError, match=r"site ids repeat: \['x'\]"):
        load_facilities(path, crs=UTM50)
    ok = write_csv(tmp_path / "b.csv", {"lon": [114.3], "lat": [30.5], "kind": ["hospital"]})
    with pytest.raises(InputError, match=r"unknown facility kinds \['hospital'\]; use station, canteen, centre"):
        load_facilities(ok, crs=UTM50)


def test_capacity_and_cost_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", {"lon": [114.3, 114.31], "lat": [30.5, 30.51], "capacity": [40, None], "cost": [2.5, None]})
    sites = load_facilities(path, crs=UTM50, kind="canteen", status="candidate")
    assert sites["capacity"].iloc[0] == 40 and np.isnan(sites["capacity"].iloc[1])
    assert sites["cost"].tolist() == [2.5, 1.0]  # a missing cost counts as one unit
    assert sites.index.tolist() == ["k001", "k002"] and (sites["kind"] == "canteen").all()
    bad = write_csv(tmp_path / "d.csv", {"lon": [114.3], "lat": [30.5], "capacity": ["many"]})
    with pytest.raises(InputError, match=r"column 'capacity' must hold numbers >= 0; rows 1 do not"):
        load_facilities(bad, crs=UTM50)


def test_empty_sites():
    sites = empty_sites(UTM50)
    assert len(sites) == 0 and sites.crs == UTM50 and sites.index.name == "site_id"


def test_candidates_from_network_thin_junctions():
    # junctions every 100 m along 1 km: with 300 m spacing about one per 300 m square
    network = tiny_network([[(x, 0), (x + 100, 0)] for x in range(0, 1000, 100)])
    boundary = gpd.GeoDataFrame(geometry=[shapely.box(X0 - 10, Y0 - 10, X0 + 1010, Y0 + 10)], crs=UTM50)
    candidates = candidates_from_network(network, boundary, spacing_m=300)
    assert len(candidates) == 4  # X0 is a multiple of 300: squares start at 0, 300, 600 and 900 m
    squares = np.floor(shapely.get_coordinates(candidates.geometry.to_numpy()) / 300)
    assert len(np.unique(squares, axis=0)) == len(candidates)  # at most one per square
    assert len(candidates) == len(np.unique(np.floor(network.nodes[["x", "y"]].to_numpy() / 300), axis=0))
    assert candidates.index.str.startswith("n").all() and (candidates["status"] == "candidate").all()
    with pytest.raises(InputError, match="spacing_m must be positive"):
        candidates_from_network(network, boundary, spacing_m=0)


def test_wuchang_candidates_stand_on_streets_in_their_units(wuchang):
    candidates, communities = wuchang.candidates, wuchang.communities
    assert len(candidates) == len(communities) == 124
    assert candidates.index.tolist() == [f"c{u}" for u in communities.index]
    on_street = candidates.distance(shapely.union_all(wuchang.network.edges.geometry.to_numpy()))
    assert on_street.max() < 1e-6
    units = communities.loc[candidates["unit_id"]].geometry.to_numpy()
    inside = shapely.distance(candidates.geometry.to_numpy(), units) < 1e-6
    assert inside.mean() > 0.95  # a unit with no street inside gets the nearest street point just outside
    again = candidates_from_communities(wuchang.network, communities)
    assert again.geometry.geom_equals_exact(candidates.geometry, tolerance=1e-9).all()
