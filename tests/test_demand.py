"""Tests for geoplan.demand: raster cells to demand points, census rescaling, and bad rasters."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from geoplan.demand import census_totals_for, load_demand, rescale_to_totals
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from tests.conftest import BOUNDARIES, DATA, RASTER, UTM50, X0, Y0

CENSUS = DATA / "census" / "china_census2020_county_age.csv"
WUCHANG_60, WUCHANG_65, WUCHANG_80, WUCHANG_ALL = 231_028, 161_645, 35_962, 1_102_188
GROUPS = ["pop_total", "pop_60", "pop_65", "pop_80"]
NODATA = -99999.0


def write_raster(path, bands: dict[str, np.ndarray], *, crs=UTM50, transform=None, nodata=NODATA):
    """A small GeoTIFF with named bands; ``crs=None`` writes one without a CRS."""
    first = next(iter(bands.values()))
    transform = transform or from_origin(X0, Y0 + 100 * first.shape[0], 100, 100)
    profile = dict(driver="GTiff", height=first.shape[0], width=first.shape[1], count=len(bands), dtype="float32",
                   transform=transform, nodata=nodata)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        for i, (name, values) in enumerate(bands.items(), start=1):
            dst.write(values.astype("float32"), i)
            dst.set_band_description(i, name)
    return path


# 4 x 4 cells of 100 m; the region holds the centres of the top-left 2 x 2 cells only
TOTAL = np.array([[10, 20, 30, 40], [0, 60, 70, 80], [90, 100, 110, 120], [130, 140, 150, 160]])
AGE60 = np.array([[1, NODATA, 3, 4], [0, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
REGION = shapely.union_all([
    shapely.box(X0, Y0 + 200, X0 + 200, Y0 + 400),
    shapely.box(X0 + 200, Y0 + 200, X0 + 240, Y0 + 400),  # a sliver of the next cells, short of their centres
])


@pytest.fixture
def small_raster(tmp_path):
    return write_raster(tmp_path / "pop.tif", {"total_est": TOTAL, "age60plus": AGE60})


@pytest.fixture
def region_frame():
    return gpd.GeoDataFrame(geometry=[REGION], crs=UTM50)


def test_small_raster_by_hand(small_raster, region_frame):
    demand = load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_total": "total_est", "pop_60": 2})
    # row 1, col 0 has nobody and is left out; cells past the sliver are outside
    assert demand.index.name == "demand_id"
    assert demand.index.tolist() == [0, 1, 5]  # row * width + col
    assert demand["pop_total"].tolist() == [10, 20, 60]
    assert demand["pop_60"].tolist() == [1, 0, 6]  # nodata counts as nobody
    assert demand["raster_row"].tolist() == [0, 0, 1] and demand["raster_col"].tolist() == [0, 1, 1]
    assert demand.crs == UTM50
    np.testing.assert_allclose(shapely.get_coordinates(demand.geometry.to_numpy()), [[X0 + 50, Y0 + 350], [X0 + 150, Y0 + 350], [X0 + 150, Y0 + 250]])
    assert demand["cell"].iloc[2].equals(shapely.box(X0 + 100, Y0 + 200, X0 + 200, Y0 + 300))


def test_small_raster_rescaled(small_raster, region_frame):
    demand = load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_total": 1, "pop_60": 2}, census_totals={"pop_60": 14})
    assert demand["pop_60"].tolist() == pytest.approx([2, 0, 12])
    assert demand["pop_total"].tolist() == [10, 20, 60]  # a group without a census total is not scaled


def test_rescale_refuses_a_group_the_raster_lacks():
    frame = pd.DataFrame({"pop_60": [1.0, 2.0]})
    with pytest.raises(InputError, match=r"'pop_80'.*no such band.*\['pop_60'\]"):
        rescale_to_totals(frame, {"pop_80": 10})
    with pytest.raises(InputError, match="must be a number >= 0"):
        rescale_to_totals(frame, {"pop_60": -5})
    with pytest.raises(EmptyDataError, match="no pop_60 people"):
        rescale_to_totals(pd.DataFrame({"pop_60": [0.0]}), {"pop_60": 10})


def test_raster_without_crs(tmp_path, region_frame):
    path = write_raster(tmp_path / "nocrs.tif", {"total_est": TOTAL}, crs=None)
    with pytest.raises(CRSMismatchError, match=r"nocrs\.tif has no CRS\. Assign it \(e\.g\. `gdal_edit\.py -a_srs EPSG:4326"):
        load_demand(path, region_frame, crs=UTM50, bands={"pop_total": 1})


def test_raster_that_misses_the_region(small_raster):
    far = gpd.GeoDataFrame(geometry=[shapely.box(X0 + 10_000, Y0, X0 + 11_000, Y0 + 1000)], crs=UTM50)
    with pytest.raises(CRSMismatchError, match=r"does not overlap the population raster pop\.tif.*declare their true CRS"):
        load_demand(small_raster, far, crs=UTM50, bands={"pop_total": 1})


def test_raster_band_that_does_not_exist(small_raster, region_frame):
    with pytest.raises(InputError, match=r"no band called 'age80plus' \(for pop_80\)\. Its bands are \['total_est', 'age60plus'\]"):
        load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_80": "age80plus"})
    with pytest.raises(InputError, match=r"has bands 1\.\.2; band 3 for pop_80 does not exist"):
        load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_80": 3})


def test_missing_and_empty_raster(tmp_path, region_frame):
    with pytest.raises(InputError, match=r"population raster file .*nowhere\.tif does not exist"):
        load_demand(tmp_path / "nowhere.tif", region_frame, crs=UTM50)
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(EmptyDataError, match=r"population raster file .*empty\.tif is empty"):
        load_demand(tmp_path / "empty.tif", region_frame, crs=UTM50)
    (tmp_path / "junk.tif").write_text("not a raster")
    with pytest.raises(InputError, match=r"Cannot read the population raster .*junk\.tif"):
        load_demand(tmp_path / "junk.tif", region_frame, crs=UTM50)


def test_census_row():
    totals = census_totals_for(CENSUS, "420106", ["pop_60", "pop_80"])
    assert totals == {"pop_60": WUCHANG_60, "pop_80": WUCHANG_80}
    with pytest.raises(InputError, match=r"No row with code '999999'.*'420106' for Wuchang"):
        census_totals_for(CENSUS, "999999", ["pop_60"])


# --------------------------------------------------------------------------- the real Wuchang raster


@pytest.fixture(scope="module")
def wuchang_4326():
    districts = gpd.read_file(BOUNDARIES)
    return districts[districts["adcode"].astype(str) == "420106"]


@pytest.fixture(scope="module")
def raster_sums(wuchang_4326):
    """Per group, the raster's people in cells whose centre lies in Wuchang, counted straight from the file."""
    region = shapely.union_all(wuchang_4326.geometry.to_numpy())
    with rasterio.open(RASTER) as src:
        assert src.crs.to_epsg() == 4326
        names = {"pop_total": "total_est", "pop_60": "age60plus", "pop_65": "age65plus", "pop_80": "age80plus"}
        values = {g: src.read(src.descriptions.index(b) + 1) for g, b in names.items()}
        rows, cols = np.indices((src.height, src.width))
        x, y = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel(), offset="center")
        nodata = src.nodata
    inside = shapely.contains_xy(region, np.asarray(x), np.asarray(y))
    people = {g: np.where((v.ravel() == nodata) | (v.ravel() < 0), 0.0, v.ravel().astype(float)) for g, v in values.items()}
    populated = inside & (sum(people.values()) > 0)
    return {g: p[inside].sum() for g, p in people.items()}, int(populated.sum())


@pytest.mark.slow
def test_unscaled_totals_equal_the_raster(wuchang, wuchang_4326, raster_sums):
    sums, n_cells = raster_sums
    raw = load_demand(RASTER, wuchang_4326, crs=wuchang.crs)
    assert len(raw) == n_cells == len(wuchang.demand)
    for group in GROUPS:
        assert raw[group].sum() == pytest.approx(sums[group], rel=1e-9), group
    # WorldPop holds fewer older people than the census: 68 % of 60+, 46 % of 80+
    assert sums["pop_60"] / WUCHANG_60 == pytest.approx(0.68, abs=0.01)
    assert sums["pop_80"] / WUCHANG_80 == pytest.approx(0.46, abs=0.01)


@pytest.mark.slow
def test_region_totals_equal_the_census(wuchang, raster_sums):
    demand = wuchang.demand
    census = {"pop_total": WUCHANG_ALL, "pop_60": WUCHANG_60, "pop_65": WUCHANG_65, "pop_80": WUCHANG_80}
    for group, total in census.items():
        assert demand[group].sum() == pytest.approx(total, rel=1e-6), group
    # every cell is scaled by the same factor per group
    sums, _ = raster_sums
    for group in GROUPS:
        assert wuchang.census_factors[group] == pytest.approx(census[group] / sums[group], rel=1e-9)


def test_age_groups_nest_in_every_cell(wuchang):
    d = wuchang.demand
    assert (d[GROUPS] >= 0).all().all()
    assert (d["pop_80"] <= d["pop_65"] + 1e-9).all()
    assert (d["pop_65"] <= d["pop_60"] + 1e-9).all()
    assert (d["pop_60"] <= d["pop_total"] + 1e-9).all()


def test_cells_far_from_streets_are_kept_and_flagged(wuchang):
    demand, network = wuchang.demand, wuchang.network
    max_access_m = wuchang.config.analysis.max_access_m
    tree = shapely.STRtree(network.edges.geometry.to_numpy())
    _, distance = tree.query_nearest(demand.geometry.to_numpy(), return_distance=True, all_matches=False)
    far = distance > max_access_m
    assert far.sum() > 10  # Wuchang has parks and lake shores out of reach
    flagged = demand["component"].to_numpy() == -1
    np.testing.assert_array_equal(flagged, far)
    assert (demand.loc[flagged, "edge_id"] == -1).all()
    assert demand.loc[flagged, "access_m"].isna().all()
    assert (demand.loc[flagged, "pop_60"] > 0).any()  # people live there, and are still counted
    on_street = demand.loc[~flagged]
    assert (on_street["access_m"] <= max_access_m).all()
    # every other cell takes the component of its street
    edge_u = network.edges.loc[on_street["edge_id"], "u"].to_numpy()
    np.testing.assert_array_equal(on_street["component"], network.nodes.loc[edge_u, "component"])


def test_rescale_refuses_an_implausible_factor():
    """A whole district's census totals for a small boundary would multiply its people ~80 times."""
    frame = pd.DataFrame({"pop_total": [6_000.0, 7_500.0], "pop_60": [1_000.0, 1_900.0]})
    with pytest.raises(InputError) as info:
        rescale_to_totals(frame, {"pop_total": WUCHANG_ALL, "pop_60": WUCHANG_60})
    message = str(info.value)
    assert "would scale the raster's counts pop_total ×81.6 (13,500 to 1,102,188) and pop_60 ×79.7 (2,900 to 231,028)" in message
    assert "for a larger area than the boundary" in message
    assert "totals for the boundary's own area" in message and "max_factor" in message and "rescale = false" in message

    with pytest.raises(InputError, match=r"pop_60 ×0\.10 .*for a smaller area than the boundary"):
        rescale_to_totals(frame, {"pop_60": 290})
    scaled = rescale_to_totals(frame, {"pop_total": WUCHANG_ALL}, max_factor=float("inf"))  # accepted when asked for
    assert scaled["pop_total"].sum() == pytest.approx(WUCHANG_ALL)
    with pytest.raises(InputError, match="max_factor must be a number >= 1"):
        rescale_to_totals(frame, {"pop_60": 2_900}, max_factor=0.5)


def test_rescale_warns_about_a_large_factor_and_is_quiet_about_normal_ones():
    frame = pd.DataFrame({"pop_80": [100.0, 200.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for factor in (2.38, 0.65):  # the widest factors among Wuhan's 13 districts (Qingshan 80+, Dongxihu 60+)
            assert rescale_to_totals(frame, {"pop_80": 300 * factor})["pop_80"].sum() == pytest.approx(300 * factor)
    with pytest.warns(UserWarning, match=r"pop_80 ×3\.00 .*WorldPop and census counts of the same area differ by ×0\.4 to ×2\.5"):
        rescale_to_totals(frame, {"pop_80": 900})


def test_raster_that_covers_only_part_of_the_region(small_raster):
    """People beyond the raster's edge would be missing, or pushed by census totals into the rest: refused."""
    half_out = gpd.GeoDataFrame(geometry=[shapely.box(X0 + 200, Y0, X0 + 600, Y0 + 400)], crs=UTM50)
    with pytest.raises(InputError, match=r"50\.0% of the region lies outside the population raster pop\.tif.*covers the whole region"):
        load_demand(small_raster, half_out, crs=UTM50, bands={"pop_total": 1}, census_totals={"pop_total": 1000})
    edge = gpd.GeoDataFrame(geometry=[shapely.box(X0, Y0, X0 + 404, Y0 + 400)], crs=UTM50)  # 1 % beyond the edge
    with pytest.warns(UserWarning, match=r"1\.0% of the region lies outside .*missing from every figure"):
        demand = load_demand(small_raster, edge, crs=UTM50, bands={"pop_total": 1})
    assert demand["pop_total"].sum() == TOTAL.sum()


def test_a_band_mapping_that_cannot_be_right_is_told(small_raster, region_frame):
    with pytest.warns(UserWarning, match=r"more people in pop_60 \(90\) than in pop_total \(7\)"):
        load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_total": 2, "pop_60": 1})  # total and 60+ swapped
    with pytest.warns(UserWarning, match=r"\['pop_60', 'pop_80'\] are read from the same raster band"):
        load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_60": 2, "pop_80": 2})


def test_a_group_added_up_from_its_own_files_as_worldpop_ships_them(tmp_path, small_raster, region_frame):
    """pop_60 = f_60 + m_60 (single-band files on one grid) gives what one band of the sum gives."""
    women = np.where(AGE60 == NODATA, NODATA, AGE60 * 0.4)
    men = np.where(AGE60 == NODATA, NODATA, AGE60 * 0.6)
    f60 = write_raster(tmp_path / "f_60.tif", {"b": women})
    m60 = write_raster(tmp_path / "m_60.tif", {"b": men})
    total = write_raster(tmp_path / "total.tif", {"b": TOTAL})
    summed = load_demand(None, region_frame, crs=UTM50, bands={"pop_total": [total], "pop_60": [f60, m60]})
    banded = load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_total": 1, "pop_60": 2})
    pd.testing.assert_frame_equal(pd.DataFrame(summed.drop(columns="geometry")).drop(columns="cell"),
                                  pd.DataFrame(banded.drop(columns="geometry")).drop(columns="cell"), check_exact=False)
    mixed = load_demand(small_raster, region_frame, crs=UTM50, bands={"pop_total": 1, "pop_60": [f60, m60]})
    assert mixed["pop_60"].tolist() == pytest.approx(banded["pop_60"].tolist())
    shifted = write_raster(tmp_path / "shifted.tif", {"b": men}, transform=from_origin(X0 + 50, Y0 + 400, 100, 100))
    with pytest.raises(InputError, match=r"shifted\.tif \(for pop_60\) is not on the grid of f_60\.tif"):
        load_demand(None, region_frame, crs=UTM50, bands={"pop_60": [f60, shifted]})
    with pytest.raises(InputError, match=r"name bands, but no population raster"):
        load_demand(None, region_frame, crs=UTM50, bands={"pop_60": 2})
