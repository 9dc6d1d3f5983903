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
    assert "2 of 4 facilities in list.csv lie outside the region: hankou (江岸站) 5.0 km, beijing (北京站) 1,046 km from it" in message
    assert "far outside the region" in message and "swapped" in message
    assert "gcj02" not in message  # 5 km and 1,000 km are no coordinate-system mix-up
    assert "outside='drop'" in message and "in1" not in message

    kept = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, outside="drop")
    assert kept.index.tolist() == ["in1", "in2"]
    with pytest.raises(InputError, match="outside must be 'error' or 'drop'"):
        load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, outside="keep")


def test_coordinate_system_hint_only_for_offsets_a_mix_up_causes(tmp_path, wuchang):
    """Points just inside the boundary, given in BD-09 but read as WGS84, land ~1 km outside: that gets the hint."""
    region = shapely.union_all(wuchang.boundary.geometry.to_numpy())
    edge = gpd.GeoSeries([region.exterior if region.geom_type == "Polygon" else region.boundary], crs=wuchang.crs)
    rim = gpd.GeoSeries(shapely.line_interpolate_point(edge.iloc[0], np.linspace(0, edge.iloc[0].length, 40, endpoint=False)), crs=wuchang.crs)
    near = rim.buffer(30).intersection(region).representative_point().set_crs(wuchang.crs).to_crs(4326)
    lon, lat = from_wgs84(near.x.to_numpy(), near.y.to_numpy(), "bd09")
    path = write_csv(tmp_path / "baidu.csv", {"lon": lon, "lat": lat})
    with pytest.raises(InputError) as info:
        load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary)
    message = str(info.value)
    assert "far outside" not in message
    assert "just outside the region" in message and "coordinate system" in message
    assert "they were read as wgs84 (GPS, OSM), but read as bd09 (Baidu) all 40 lie inside: pass coord_system='bd09'" in message
    assert len(load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="bd09")) == 40


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


# --------------------------------------------------------------------------- Excel lists


def write_xlsx(path, sheets: dict[str, dict | pd.DataFrame], *, title: str | None = None):
    """An .xlsx workbook written with pandas/openpyxl; ``title`` puts a title line above the first sheet's header."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, table in sheets.items():
            start = 2 if title and name == next(iter(sheets)) else 0
            pd.DataFrame(table).to_excel(writer, sheet_name=name, index=False, startrow=start)
            if start:
                writer.sheets[name].cell(row=1, column=1, value=title)
    return path


def test_xlsx_list_as_planners_hand_it_in(tmp_path, wuchang, true_points):
    """名称/经度/纬度 in GCJ-02, the list in the first sheet: read with the same rules as a CSV."""
    lon, lat = from_wgs84(true_points.geometry.x.to_numpy(), true_points.geometry.y.to_numpy(), "gcj02")
    path = write_xlsx(tmp_path / "list.xlsx", {"养老机构": {"名称": list("ABCDEF"), "经度": lon, "纬度": lat}})
    sites = load_facilities(path, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")
    truth = true_points.to_crs(wuchang.crs).geometry.to_numpy()
    assert shapely.distance(sites.geometry.to_numpy(), truth).max() < 1.0
    assert sites["name"].tolist() == list("ABCDEF")
    assert sites.index.tolist() == [f"f{i:03d}" for i in range(1, 7)] and sites.index.name == "site_id"
    assert (sites["kind"] == "station").all() and sites.crs == wuchang.crs

    # a title line above the header, and the same list in BD-09 on a second sheet chosen by name or number
    bd_lon, bd_lat = from_wgs84(true_points.geometry.x.to_numpy(), true_points.geometry.y.to_numpy(), "bd09")
    book = write_xlsx(
        tmp_path / "book.xlsx",
        {"说明": {"note": ["see the next sheet"]}, "百度": {"编号": [f"b{i}" for i in range(6)], "名称": list("UVWXYZ"), "经度": bd_lon, "纬度": bd_lat}},
    )
    for sheet in ("百度", 2):
        baidu = load_facilities(book, crs=wuchang.crs, coord_system="bd09", sheet=sheet)
        assert baidu.index.tolist() == [f"b{i}" for i in range(6)]
        assert shapely.distance(baidu.geometry.to_numpy(), truth).max() < 1.0
    titled = write_xlsx(tmp_path / "titled.xlsx", {"Sheet1": {"名称": list("ABCDEF"), "经度": lon, "纬度": lat}}, title="武昌区养老服务设施名单")
    assert load_facilities(titled, crs=wuchang.crs, coord_system="gcj02")["name"].tolist() == list("ABCDEF")


def test_xls_list(tmp_path, wuchang, true_points):
    xlwt = pytest.importorskip("xlwt")  # writes the legacy .xls format that xlrd reads
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for col, header in enumerate(("名称", "经度", "纬度")):
        sheet.write(0, col, header)
    for row, (name, point) in enumerate(zip("ABCDEF", true_points.geometry), start=1):
        sheet.write(row, 0, name)
        sheet.write(row, 1, float(point.x))
        sheet.write(row, 2, float(point.y))
    book.save(str(tmp_path / "list.xls"))
    sites = load_facilities(tmp_path / "list.xls", crs=wuchang.crs, boundary=wuchang.boundary)
    truth = true_points.to_crs(wuchang.crs).geometry.to_numpy()
    assert sites["name"].tolist() == list("ABCDEF")
    assert shapely.distance(sites.geometry.to_numpy(), truth).max() < 1.0


def test_bad_excel_files_say_what_is_wrong(tmp_path):
    not_excel = tmp_path / "list.xlsx"
    not_excel.write_text("名称,经度,纬度\nA,114.3,30.5\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"list\.xlsx is not an Excel workbook: it is plain text.*rename it to \.csv"):
        load_facilities(not_excel, crs=UTM50)
    html = tmp_path / "export.xls"  # many web systems export an HTML table named .xls
    html.write_text("<html><body><table><tr><td>名称</td></tr></table></body></html>", encoding="utf-8")
    with pytest.raises(InputError, match=r"export\.xls is not an Excel workbook: it is a web page \(HTML\).*Save As"):
        load_facilities(html, crs=UTM50)
    zipped = tmp_path / "docs.xlsx"
    import zipfile

    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(InputError, match=r"Cannot read .*docs\.xlsx as an Excel workbook"):
        load_facilities(zipped, crs=UTM50)

    empty = write_xlsx(tmp_path / "empty.xlsx", {"Sheet1": pd.DataFrame(), "list": {"名称": ["A"], "经度": [114.3], "纬度": [30.5]}})
    with pytest.raises(EmptyDataError, match=r"Sheet 'Sheet1' of .*empty\.xlsx is empty\. .*sheets: Sheet1, list.*sheet="):
        load_facilities(empty, crs=UTM50)
    assert len(load_facilities(empty, crs=UTM50, sheet="list")) == 1
    with pytest.raises(InputError, match=r"empty\.xlsx has no sheet 'Liste'; its sheets are Sheet1, list"):
        load_facilities(empty, crs=UTM50, sheet="Liste")
    with pytest.raises(InputError, match=r"empty\.xlsx has no sheet 3; its sheets are Sheet1, list"):
        load_facilities(empty, crs=UTM50, sheet=3)
    header_only = write_xlsx(tmp_path / "header.xlsx", {"Sheet1": {"名称": [], "经度": [], "纬度": []}})
    with pytest.raises(EmptyDataError, match=r"header\.xlsx \(sheet 'Sheet1'\) has a header but no rows"):
        load_facilities(header_only, crs=UTM50)

    addresses = write_xlsx(tmp_path / "addresses.xlsx", {"Sheet1": {"名称": ["A"], "地址": ["武昌区中山路1号"]}})
    with pytest.raises(InputError, match=r"needs longitude and latitude columns \(e\.g\. 'lon' and 'lat', or '经度' and '纬度'\); it has \['名称', '地址'\]"):
        load_facilities(addresses, crs=UTM50)

    text = write_xlsx(tmp_path / "text.xlsx", {"Sheet1": {"名称": ["A", "B", "C"], "经度": [114.3, "114°18′20″", 114.31], "纬度": [30.5, 30.51, "北纬30度"]}})
    with pytest.raises(InputError) as info:
        load_facilities(text, crs=UTM50)
    message = str(info.value)
    assert "text.xlsx (sheet 'Sheet1'): rows 3, 4 hold text where numbers belong" in message  # rows as Excel numbers them
    assert "'114°18′20″'" in message and "'北纬30度'" in message
    assert "decimal degrees" in message


def test_text_or_blanks_in_csv_coordinates(tmp_path):
    path = write_csv(tmp_path / "text.csv", {"name": ["A", "B"], "lon": ["114.3", "见备注"], "lat": [30.5, 30.6]})
    with pytest.raises(InputError, match=r"text\.csv: rows 2 hold text where numbers belong \(lon '见备注'\).*decimal degrees"):
        load_facilities(path, crs=UTM50)
    full_width = write_csv(tmp_path / "wide.csv", {"name": ["A"], "lon": ["１１４．３"], "lat": [" 30.5 "]})
    site = load_facilities(full_width, crs=4326)  # full-width digits and stray spaces, as typed in Chinese input methods
    assert site.geometry.x.iloc[0] == pytest.approx(114.3) and site.geometry.y.iloc[0] == pytest.approx(30.5)


def test_table_without_geometry_read_as_a_layer(tmp_path):
    path = tmp_path / "table.gpkg"
    pyogrio = pytest.importorskip("pyogrio")
    pyogrio.write_dataframe(pd.DataFrame({"name": ["A"], "addr": ["x"]}), path, driver="GPKG")
    with pytest.raises(InputError, match=r"table\.gpkg has no geometry.*lon/lat columns"):
        load_facilities(path, crs=UTM50)


def test_candidate_frames_say_where_they_come_from(tmp_path, wuchang):
    assert wuchang.candidates.attrs["source"] == "communities"
    network = tiny_network([[(x, 0), (x + 100, 0)] for x in range(0, 1000, 100)])
    boundary = gpd.GeoDataFrame(geometry=[shapely.box(X0 - 10, Y0 - 10, X0 + 1010, Y0 + 10)], crs=UTM50)
    junctions = candidates_from_network(network, boundary, spacing_m=250)
    assert junctions.attrs["source"] == "network" and junctions.attrs["spacing_m"] == 250
    assert junctions.iloc[:2].to_crs(4326).attrs["source"] == "network"  # survives selection and reprojection
    path = write_csv(tmp_path / "mine.csv", {"lon": [114.3], "lat": [30.5]})
    listed = load_facilities(path, crs=UTM50, status="candidate")
    assert listed.attrs["source"] == "file" and listed.attrs["path"] == str(path)


def test_layer_features_without_geometry_are_refused(tmp_path):
    """Never fewer sites than features, silently (issue 10: a null geometry answered count 0)."""
    import json

    point = {"type": "Point", "coordinates": [114.307, 30.5607]}
    features = [{"type": "Feature", "geometry": point, "properties": {"id": "A1"}},
                {"type": "Feature", "geometry": None, "properties": {"id": "A2"}}]
    path = tmp_path / "sites.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(InputError, match=r"sites\.geojson: feature 2 \(id A2\) has no usable geometry"):
        load_facilities(path, crs=UTM50)


def test_undecodable_csv_says_how_to_save_it(tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("名称,经度,纬度\n武昌站点,114.307,30.5607\n".encode("gbk"))
    assert load_facilities(gbk, crs=4326)["name"].tolist() == ["武昌站点"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,lng,lat\n1,114.3,30.5\n\xff\xff\x80\n")
    with pytest.raises(InputError, match=r"bad\.csv is not UTF-8 or GBK text; save it as a UTF-8 CSV"):
        load_facilities(bad, crs=UTM50)


def test_messages_list_at_most_ten_columns(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(150)) + "\n" + ",".join("1" * 150) + "\n")
    with pytest.raises(InputError, match=r"it has \['c0', .*'c9'\] and 140 more\.$"):
        load_facilities(path, crs=UTM50)


def test_a_file_no_reader_knows_says_which_formats_work(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# not a layer\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"Cannot read the .*notes\.md .*Give a GeoJSON, GeoPackage, Shapefile or GeoParquet layer"):
        load_facilities(path, crs="EPSG:32650")


def test_ids_are_kept_as_the_list_writes_them(tmp_path):
    """"007" stays "007" (not 7), and a blank id is named by its row, not turned into "nan"."""
    path = write_csv(tmp_path / "ids.csv", {"id": ["007", "010", "3"], "lon": [114.3, 114.31, 114.32], "lat": [30.5, 30.51, 30.52],
                                            "community_code": ["001", "002", "003"]})
    sites = load_facilities(path, crs=UTM50)
    assert sites.index.tolist() == ["007", "010", "3"]
    assert sites["community_code"].tolist() == ["001", "002", "003"]
    blank = write_csv(tmp_path / "blank.csv", {"id": [1, None, 3], "lon": [114.3, 114.31, 114.32], "lat": [30.5, 30.51, 30.52]})
    with pytest.raises(InputError, match=r"rows 2 have no id \(column 'id'\)\. Fill them in"):
        load_facilities(blank, crs=UTM50)
    repeated = write_csv(tmp_path / "rep.csv", {"id": ["a", "b", "a"], "lon": [114.3, 114.31, 114.32], "lat": [30.5, 30.51, 30.52]})
    with pytest.raises(InputError, match=r"site ids repeat: \['a'\] \(rows 1, 3\)"):
        load_facilities(repeated, crs=UTM50)


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_shapefile_without_cpg_keeps_its_chinese_columns(tmp_path, encoding):
    """GDAL reads a .dbf that declares no encoding as Latin-1: names, kinds and headers would turn to junk."""
    frame = gpd.GeoDataFrame({"编号": ["S1", "S2"], "名称": ["江汉站", "长者饭堂"], "类型": ["社区养老服务站", "老年食堂"]},
                             geometry=gpd.points_from_xy([114.27, 114.28], [30.58, 30.59]), crs=4326)
    path = tmp_path / "list.shp"
    frame.to_file(path, driver="ESRI Shapefile", encoding=encoding)
    path.with_suffix(".cpg").unlink(missing_ok=True)
    sites = load_facilities(path, crs=UTM50)
    assert sites.index.tolist() == ["S1", "S2"]
    assert sites["name"].tolist() == ["江汉站", "长者饭堂"]
    assert sites["kind"].tolist() == ["station", "canteen"]


def test_lists_as_other_systems_export_them(tmp_path):
    """Tab- or semicolon-separated text, blank rows left at the end, and coordinate headers with a unit or a note."""
    rows = ["S1", "S2"], [114.30, 114.31], [30.50, 30.51]
    (tmp_path / "tabs.txt").write_text("id\tlon\tlat\n" + "".join(f"{i}\t{x}\t{y}\n" for i, x, y in zip(*rows)), encoding="utf-8")
    (tmp_path / "semi.csv").write_text("id;lon;lat\n" + "".join(f"{i};{x};{y}\n" for i, x, y in zip(*rows)), encoding="utf-8")
    (tmp_path / "blank_end.csv").write_text("id,lon,lat\n" + "".join(f"{i},{x},{y}\n" for i, x, y in zip(*rows)) + ",,\n,,\n",
                                            encoding="utf-8")
    (tmp_path / "units.csv").write_text("编号,经度(GCJ02),纬度（°）\n" + "".join(f"{i},{x},{y}\n" for i, x, y in zip(*rows)),
                                        encoding="utf-8")
    for name in ("tabs.txt", "semi.csv", "blank_end.csv", "units.csv"):
        sites = load_facilities(tmp_path / name, crs=UTM50)
        assert sites.index.tolist() == ["S1", "S2"], name
        np.testing.assert_allclose(shapely.get_coordinates(sites.to_crs(4326).geometry.to_numpy()), np.c_[rows[1], rows[2]])


def test_capacity_and_cost_beyond_any_real_site_are_refused(tmp_path):
    """A cost of 1e308 (or inf) is a typo or a unit mix-up, and would make every budgeted plan "infeasible"."""
    base = {"lon": [114.3, 114.31], "lat": [30.5, 30.51]}
    for column, value, message in (("cost", 1e308, r"column 'cost' holds more than 1e\+12 in rows 2"),
                                   ("capacity", 2e7, r"column 'capacity' holds more than 1e\+07 in rows 2"),
                                   ("cost", float("inf"), r"column 'cost' must hold numbers >= 0; rows 2 do not")):
        path = write_csv(tmp_path / f"{column}.csv", {**base, column: [10.0, value]})
        with pytest.raises(InputError, match=message):
            load_facilities(path, crs=UTM50)
