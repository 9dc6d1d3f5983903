"""Tests for geoplan.units: planning units from layers, tables, OSM boundaries and approximate zones.

The hand-made layout (local metres, UTM 50N at the tests' origin)::

    y=200  +------+------+ - - - +------+
           |  c1  |  c2  |  gap  |  c4  |      c5 (island) at x 1000..1100
    y=100  +------+------+ - - - +------+
           |  c3  |
    y=0    +------+
           0     100    200     300    400

Communities c1, c2, c3 form street S1 (c1-c2 share an edge, c1-c3 an edge);
c4 and the island c5 form street S2. The strip 200..300 is in no community.
"""

from __future__ import annotations

import dataclasses
import textwrap

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse import csgraph, csr_matrix

from geoplan.config import load_config
from geoplan.errors import ConfigError, EmptyDataError, InputError
from geoplan.units import (
    OUTSIDE,
    STREET_LABEL,
    ZONE_LABEL,
    PlanningUnits,
    communities_from_layer,
    community_graph,
    osm_admin_boundaries,
    people_per_unit,
    region_units,
    street_count,
    streets_from_layer,
    streets_from_osm,
    units_from_layers,
    units_from_table,
    zones_from_communities,
)
from tests.conftest import OSM_XML, UTM50, WUCHANG_TOML, X0, Y0, points_frame

SQUARES = {"c1": (0, 100), "c2": (100, 100), "c3": (0, 0), "c4": (300, 100), "c5": (1000, 100)}


def square(x: float, y: float, size: float = 100.0) -> shapely.Polygon:
    return shapely.box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


def hand_communities(**streets: str) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {"name": [f"社区{c[1:]}" for c in SQUARES], "street_code": [streets.get(c, OUTSIDE) for c in SQUARES]},
        geometry=[square(*xy) for xy in SQUARES.values()],
        crs=UTM50,
        index=pd.Index(list(SQUARES), name="community_code"),
    )
    return frame


def hand_units() -> PlanningUnits:
    streets = gpd.GeoDataFrame(
        {"name": ["一街道", "二街道"]},
        geometry=[shapely.union_all([square(0, 100), square(100, 100), square(0, 0)]), shapely.union_all([square(300, 100), square(1000, 100)])],
        crs=UTM50,
        index=pd.Index(["S1", "S2"], name="street_code"),
    )
    communities = hand_communities(c1="S1", c2="S1", c3="S1", c4="S2", c5="S2")
    return PlanningUnits(streets=streets, communities=communities, approximate=False, source="hand-made")


def connected(codes: list[str], graph: dict[str, list[str]]) -> bool:
    """The communities ``codes`` form one connected piece of ``graph``."""
    index = {c: i for i, c in enumerate(codes)}
    rows = [(index[a], index[b]) for a in codes for b in graph[a] if b in index]
    if not rows:
        return len(codes) == 1
    r, c = np.array(rows).T
    matrix = csr_matrix((np.ones(len(r)), (r, c)), shape=(len(codes), len(codes)))
    return csgraph.connected_components(matrix, directed=False)[0] == 1


# ------------------------------------------------------------------ locate and people per unit


def test_locate_inside_and_outside():
    units = hand_units()
    points = points_frame(
        {"in_c1": (50, 150), "in_c3": (50, 50), "in_c4": (350, 150), "gap": (250, 150), "far": (5000, 5000), "in_c5": (1050, 150)},
        index_name="demand_id",
    )
    located = units.locate(points)
    assert list(located.index) == list(points.index)
    assert located.loc["in_c1"].tolist() == ["S1", "c1"]
    assert located.loc["in_c3"].tolist() == ["S1", "c3"]
    assert located.loc["in_c4"].tolist() == ["S2", "c4"]
    assert located.loc["in_c5"].tolist() == ["S2", "c5"]
    assert located.loc["gap"].tolist() == [OUTSIDE, OUTSIDE]
    assert located.loc["far"].tolist() == [OUTSIDE, OUTSIDE]
    assert units.locate(points.geometry).equals(located)  # a GeoSeries too
    assert units.locate(points.iloc[:0]).empty


def test_locate_street_without_community_and_other_crs():
    """A point in a street polygon but in no community belongs to the street; points in lon/lat are projected."""
    units = hand_units()
    units = dataclasses.replace(units, communities=units.communities.drop(index="c3"))
    points = points_frame({"in_c3_area": (50, 50), "in_c2": (150, 150)}, index_name="demand_id").to_crs(4326)
    located = units.locate(points)
    assert located.loc["in_c3_area"].tolist() == ["S1", OUTSIDE]
    assert located.loc["in_c2"].tolist() == ["S1", "c2"]


def test_people_per_unit_counts_the_outside_row():
    units = hand_units()
    demand = points_frame(
        {"a": (50, 150), "b": (150, 150), "c": (350, 150), "d": (250, 150), "e": (5000, 0)},
        index_name="demand_id",
        pop_60=[10.0, 20.0, 30.0, 40.0, 50.0],
    )
    streets = people_per_unit(units, demand)
    assert streets.index.tolist() == ["S1", "S2", OUTSIDE]
    assert streets["pop_60"].tolist() == [30.0, 30.0, 90.0]
    assert streets["name"].tolist()[:2] == ["一街道", "二街道"]
    communities = people_per_unit(units, demand, level="community")
    assert communities.index.tolist() == ["c1", "c2", "c3", "c4", "c5", OUTSIDE]
    assert communities["pop_60"].tolist() == [10.0, 20.0, 0.0, 30.0, 0.0, 90.0]
    assert communities["pop_60"].sum() == demand["pop_60"].sum()


def test_street_label():
    units = hand_units()
    assert units.street_label == STREET_LABEL == "街道 street"
    assert dataclasses.replace(units, approximate=True).street_label == ZONE_LABEL == "近似片区(非街道) approximate zone, not a street"


# ------------------------------------------------------------------ user layers and tables


def test_streets_from_layer_with_chinese_columns(tmp_path):
    frame = gpd.GeoDataFrame(
        {"代码": [420106001, 420106002], "名称": ["积玉桥街道", "杨园街道"], "其他": [1, 2]},
        geometry=[square(0, 0, 200), square(200, 0, 200)],
        crs=UTM50,
    ).to_crs(4326)
    for name in ("streets.gpkg", "streets.geojson", "streets.shp"):
        path = tmp_path / name
        frame.to_file(path, **({"encoding": "utf-8"} if name.endswith(".shp") else {}))
        streets = streets_from_layer(path, crs=UTM50)
        assert streets.index.name == "street_code"
        assert streets.index.tolist() == ["420106001", "420106002"]
        assert streets["name"].tolist() == ["积玉桥街道", "杨园街道"]
        assert streets.crs == UTM50 and streets.area.round().tolist() == [40_000, 40_000]


def test_streets_from_layer_named_columns_and_errors(tmp_path):
    frame = gpd.GeoDataFrame({"jd_dm": ["A", "B"], "jd_mc": ["甲", "乙"]}, geometry=[square(0, 0), square(100, 0)], crs=UTM50)
    streets = streets_from_layer(frame, code_column="jd_dm", name_column="jd_mc")
    assert streets["name"].to_dict() == {"A": "甲", "B": "乙"}
    with pytest.raises(InputError, match=r"needs a code or a name column .*\['jd_dm', 'jd_mc'\]"):
        streets_from_layer(frame)
    with pytest.raises(InputError, match="has no column 'code_x'"):
        streets_from_layer(frame, code_column="code_x")
    repeated = frame.assign(jd_dm=["A", "A"])
    with pytest.raises(InputError, match=r"codes repeat: \['A'\]"):
        streets_from_layer(repeated, code_column="jd_dm")


def test_units_from_layers_with_chinese_community_columns(tmp_path):
    streets = gpd.GeoDataFrame({"区划代码": ["S1", "S2"], "名称": ["一街道", "二街道"]},
                               geometry=[square(0, 0, 200), square(300, 0, 800)], crs=UTM50)
    communities = gpd.GeoDataFrame(
        {"社区代码": [11, 12, 13, 14], "社区名称": ["甲社区", "乙社区", "丙社区", "丁社区"]},
        geometry=[square(0, 100), square(100, 100), square(0, 0), square(300, 100)],
        crs=UTM50,
    )
    streets_path, communities_path = tmp_path / "streets.geojson", tmp_path / "communities.gpkg"
    streets.to_crs(4326).to_file(streets_path)
    communities.to_crs(4326).to_file(communities_path)
    units = units_from_layers(streets_path, communities_path, crs=UTM50)
    assert not units.approximate and units.street_label == STREET_LABEL
    assert units.streets.index.tolist() == ["S1", "S2"]
    assert units.communities.index.tolist() == ["11", "12", "13", "14"]
    assert units.communities["name"].tolist() == ["甲社区", "乙社区", "丙社区", "丁社区"]
    assert units.communities["street_code"].tolist() == ["S1", "S1", "S1", "S2"]  # by largest overlap
    assert units.source == "2 streets from streets.geojson"
    assert units_from_layers(streets_path, communities_path).crs.is_projected  # lon/lat layers are projected
    layer = communities_from_layer(communities.assign(街道代码=["S1", "S1", "S2", "S2"]), crs=UTM50)
    assert layer["street_code"].tolist() == ["S1", "S1", "S2", "S2"]  # the layer's own column wins
    unnamed = communities_from_layer(communities[["社区代码", "geometry"]])
    assert unnamed["name"].tolist()[0] == "社区单元 11 community unit 11"


def test_units_from_table_by_name_with_official_codes(tmp_path):
    table = tmp_path / "community_streets.csv"
    table.write_text("社区名称,街道\n社区1,积玉桥街道\n社区2,积玉桥街道\n社区3,杨园街道\n社区4,杨园街道\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"1 of 5 communities are not in .*\['c5'\]"):
        units = units_from_table(table, hand_communities(), district_code="420106")
    assert units.streets.index.tolist() == ["420106001", "420106002"]  # codes from the NBS list, by name
    assert units.streets["name"].tolist() == ["积玉桥街道", "杨园街道"]
    assert units.communities["street_code"].tolist() == ["420106001", "420106001", "420106002", "420106002", OUTSIDE]
    assert units.streets.area.round().tolist() == [20_000, 20_000]  # each street the union of its communities
    points = points_frame({"in_c5": (1050, 150), "in_c3": (50, 50)}, index_name="demand_id")
    assert units.locate(points).loc["in_c5"].tolist() == [OUTSIDE, "c5"]  # in a community, in no street
    assert units.locate(points).loc["in_c3"].tolist() == ["420106002", "c3"]


def test_units_from_table_lists_unmatched_rows(tmp_path):
    table = tmp_path / "community_streets.csv"
    table.write_text("community_code,street_code\nc1,S1\nc9,S1\nc4,S2\n合计,S2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"2 row\(s\) match no community by code .*row 2: 'c9', row 4: '合计'"):
        units_from_table(table, hand_communities())


# ------------------------------------------------------------------ OSM boundaries


def test_shipped_osm_extract_holds_two_street_relations():
    table = osm_admin_boundaries(OSM_XML)
    streets = table[table["admin_level"] == 8]
    assert sorted(streets["name"]) == ["九峰街道", "豹澥街道"]
    assert streets["ways"].tolist() == [7, 7] and streets["ways_present"].tolist() == [1, 1]
    assert not streets["complete"].any()  # a bounding-box export: only the shared edge is in the file
    assert set(table["admin_level"]) == {5, 6, 7, 8}


def test_streets_from_shipped_osm_extract_says_why_not():
    with pytest.raises(EmptyDataError) as caught:
        streets_from_osm(OSM_XML, admin_level=8)
    message = str(caught.value)
    assert "九峰街道 (relation 3160551: 1 of 7 member ways in the file)" in message
    assert "豹澥街道 (relation 3160557: 1 of 7 member ways in the file)" in message
    assert "Overpass" in message and "[units] streets_path" in message
    with pytest.raises(EmptyDataError, match=r"no boundary=administrative relation with admin_level=9\. Levels present: 5: 武汉市; 6: "):
        streets_from_osm(OSM_XML, admin_level=9)


def whole_osm(path) -> None:
    """Two streets (the shipped extract's names) as whole relations: squares of 0.01° sharing the way x=114.51."""
    nodes = {1: (114.50, 30.48), 2: (114.51, 30.48), 3: (114.51, 30.49), 4: (114.50, 30.49), 5: (114.52, 30.48), 6: (114.52, 30.49)}
    ways = {10: [2, 3], 11: [3, 4, 1, 2], 12: [3, 6, 5, 2]}
    relations = {3160551: ("九峰街道", [10, 11]), 3160557: ("豹澥街道", [12, 10]), 99: ("洪山区", [11, 12])}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6">']
    lines += [f'  <node id="{i}" lat="{lat}" lon="{lon}"/>' for i, (lon, lat) in nodes.items()]
    for i, refs in ways.items():
        lines += [f'  <way id="{i}">'] + [f'    <nd ref="{r}"/>' for r in refs] + ['    <tag k="boundary" v="administrative"/>', "  </way>"]
    for i, (name, members) in relations.items():
        level = "6" if i == 99 else "8"
        lines += [f'  <relation id="{i}">'] + [f'    <member type="way" ref="{m}" role="outer"/>' for m in members]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in (("admin_level", level), ("boundary", "administrative"), ("name", name), ("type", "boundary"))]
        lines += ["  </relation>"]
    path.write_text("\n".join(lines + ["</osm>"]), encoding="utf-8")


def test_streets_from_whole_osm_relations(tmp_path):
    path = tmp_path / "two_streets.osm"
    whole_osm(path)
    streets = streets_from_osm(path, admin_level=8, crs=UTM50)
    assert streets.index.tolist() == ["420111083", "420115087"]  # NBS codes found by name in the shipped list
    assert streets["name"].tolist() == ["九峰街道", "豹澥街道"]
    assert streets["osm_id"].tolist() == [3160551, 3160557]
    area = streets.area.to_numpy()
    assert np.allclose(area, area[0], rtol=1e-3) and 0.9e6 < area[0] < 1.2e6  # 0.01° x 0.01° at 30.5° N: ~1.07 km²
    units = units_from_layers(streets)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy([114.505, 114.515, 114.53], [30.485, 30.485, 30.485]), crs=4326)
    assert units.locate(points)["street_code"].tolist() == ["420111083", "420115087", OUTSIDE]
    assert osm_admin_boundaries(path)["complete"].all()


# ------------------------------------------------------------------ approximate zones


def grid_communities(n: int = 6, *, island: bool = True) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """An n x n grid of 100 m communities (60+ rising to the east), plus an island 2 km away."""
    cells = [(i, j) for j in range(n) for i in range(n)]
    codes = [f"g{i}{j}" for i, j in cells]
    geometry = [square(100 * i, 100 * j) for i, j in cells]
    people = [10.0 + 5 * i + j for i, j in cells]
    if island:
        codes.append("island")
        geometry.append(square(2000, 2000))
        people.append(30.0)
    frame = gpd.GeoDataFrame({"name": codes, "street_code": OUTSIDE}, geometry=geometry, crs=UTM50, index=pd.Index(codes, name="community_code"))
    return frame, pd.Series(people, index=codes)


def test_community_graph_bridges_islands():
    communities, _ = grid_communities(3)
    graph = community_graph(communities)
    assert sorted(graph["g00"]) == ["g01", "g10", "g11"]  # queen contiguity: edges and the corner
    assert len(graph["g11"]) == 8
    assert graph["island"] == ["g22"]  # joined to its nearest community
    assert "island" in graph["g22"]
    assert connected(list(communities.index), graph)


def test_zones_on_a_grid_are_contiguous_balanced_and_repeatable():
    communities, people = grid_communities(6)
    units = zones_from_communities(communities, people, n_zones=4)
    again = zones_from_communities(communities, people, n_zones=4)
    assert units.approximate and units.street_label == ZONE_LABEL
    assert units.streets.index.tolist() == ["Z01", "Z02", "Z03", "Z04"]
    assert units.streets["name"].tolist() == ["片区01 zone 01", "片区02 zone 02", "片区03 zone 03", "片区04 zone 04"]
    assert units.communities["street_code"].equals(again.communities["street_code"])
    assert units.communities.index.equals(communities.index)  # every community in exactly one zone
    graph = community_graph(communities)
    members = units.communities.groupby("street_code").groups
    assert all(connected(list(codes), graph) for codes in members.values())
    totals = people.groupby(units.communities["street_code"]).sum()
    assert totals.sum() == people.sum()
    assert totals.max() / totals.min() < 1.15, totals.to_dict()
    assert f"60+ per zone {totals.min():,.0f} to {totals.max():,.0f}" in units.source
    ys = units.streets.geometry.centroid.y
    assert ys.iloc[0] >= ys.iloc[-1]  # numbered north to south


def test_zone_counts_at_the_limits():
    communities, people = grid_communities(2, island=False)
    one = zones_from_communities(communities, people, n_zones=1)
    assert one.streets.index.tolist() == ["Z01"] and set(one.communities["street_code"]) == {"Z01"}
    each = zones_from_communities(communities, people, n_zones=4)
    assert each.communities["street_code"].nunique() == 4
    with pytest.raises(InputError, match=r"n_zones must be a whole number from 1 to the number of communities \(4\), got 5"):
        zones_from_communities(communities, people, n_zones=5)
    with pytest.raises(EmptyDataError, match="no older people"):
        zones_from_communities(communities, people * 0, n_zones=2)


def test_street_count_of_wuchang_is_14():
    assert street_count("420106") == 14  # 东湖风景区街道（武昌） (420106490) is a scenic-area unit, not a street
    assert street_count("420102") == 16
    with pytest.raises(InputError, match="no streets of district '999999'"):
        street_count("999999")


# ------------------------------------------------------------------ config


def units_toml(tmp_path, section: str):
    text = WUCHANG_TOML.read_text(encoding="utf-8").replace('path = "../', f'path = "{WUCHANG_TOML.parent.parent}/')
    path = tmp_path / "mine.toml"
    path.write_text(text + "\n" + textwrap.dedent(section), encoding="utf-8")
    return path


def test_units_section_is_checked(tmp_path):
    config = load_config(units_toml(tmp_path, '[units]\nstreets_path = "streets.gpkg"\ncode_column = "代码"\nname_column = "名称"\n'))
    assert config.units.streets_path == (tmp_path / "streets.gpkg").resolve()  # relative to the config file
    assert config.units.code_column == "代码"
    assert load_config(units_toml(tmp_path, "[units]\nn_zones = 10\ndistrict_code = 420106\n")).units.district_code == "420106"
    with pytest.raises(ConfigError, match=r"Unknown key 'n_zone' in \[units\] .*Did you mean 'n_zones'\? Allowed: admin_level, code_column"):
        load_config(units_toml(tmp_path, "[units]\nn_zone = 3\n"))
    with pytest.raises(ConfigError, match="gives streets_path and osm_path; give one source of streets"):
        load_config(units_toml(tmp_path, '[units]\nstreets_path = "a.gpkg"\nosm_path = "b.osm"\n'))
    with pytest.raises(ConfigError, match=r"\[units\] n_zones .* goes with no streets_path, table_path or osm_path; it has streets_path"):
        load_config(units_toml(tmp_path, '[units]\nstreets_path = "a.gpkg"\nn_zones = 3\n'))
    with pytest.raises(ConfigError, match=r"\[units\] n_zones .* must be a whole number >= 1, got 0"):
        load_config(units_toml(tmp_path, "[units]\nn_zones = 0\n"))


# ------------------------------------------------------------------ Wuchang (slow: loads the region)


def test_wuchang_zones(wuchang):
    units = wuchang.units
    assert units is wuchang.units  # built once
    assert units.approximate and units.street_label == ZONE_LABEL
    assert len(units.streets) == 14 == street_count("420106")
    assert units.streets.index.tolist() == [f"Z{i:02d}" for i in range(1, 15)]
    assert units.streets.crs == wuchang.crs == units.communities.crs
    # every community unit in exactly one zone, each zone one connected piece of the contiguity graph
    assert sorted(units.communities.index) == sorted(wuchang.communities.index.astype(str))
    assert units.communities["street_code"].isin(units.streets.index).all()
    graph = community_graph(units.communities)
    for zone, codes in units.communities.groupby("street_code").groups.items():
        assert connected(list(codes), graph), zone
    assert units.communities["name"].iloc[0].startswith("社区单元 ")
    # 60+ balance: every person counted once, the outside row is the cells in no community unit
    table = people_per_unit(units, wuchang.demand)
    assert table["pop_60"].sum() == pytest.approx(wuchang.demand["pop_60"].sum())
    outside = wuchang.demand.loc[wuchang.demand["unit_id"] < 0, "pop_60"].sum()
    assert table.loc[OUTSIDE, "pop_60"] == pytest.approx(outside)
    zones = table.drop(index=OUTSIDE)["pop_60"]
    assert zones.max() / zones.min() < 1.25, zones.round().to_dict()
    assert f"60+ per zone {zones.min():,.0f} to {zones.max():,.0f}" in units.source
    located = units.locate(wuchang.demand)
    inside = wuchang.demand["unit_id"].to_numpy() >= 0
    assert (located["community_code"].to_numpy()[inside] == wuchang.demand["unit_id"].astype(str).to_numpy()[inside]).all()
    assert (located["community_code"].to_numpy()[~inside] == OUTSIDE).all()


def test_wuchang_other_zone_count_and_real_streets(wuchang, tmp_path):
    five = region_units(wuchang, n_zones=5)
    assert len(five.streets) == 5 and five.communities["street_code"].nunique() == 5
    # a street layer in the config: two halves of the district, north and south of its middle
    minx, miny, maxx, maxy = wuchang.boundary.total_bounds
    middle = (miny + maxy) / 2
    halves = gpd.GeoDataFrame(
        {"代码": ["N", "S"], "名称": ["北街道", "南街道"]},
        geometry=[shapely.box(minx - 5000, middle, maxx + 5000, maxy + 5000), shapely.box(minx - 5000, miny - 5000, maxx + 5000, middle)],
        crs=wuchang.crs,
    )
    halves.to_crs(4326).to_file(tmp_path / "halves.geojson")
    config = load_config(units_toml(tmp_path, '[units]\nstreets_path = "halves.geojson"\n'))
    region = dataclasses.replace(wuchang, config=config)
    units = region.units
    assert not units.approximate and units.streets["name"].tolist() == ["北街道", "南街道"]
    assert set(units.communities["street_code"]) == {"N", "S"}
    with pytest.raises(InputError, match="n_zones applies to approximate zones"):
        region_units(region, n_zones=3)
    # a community -> street table in the config: streets get their NBS codes by name (district from [census] code)
    codes = wuchang.communities.index.astype(str).tolist()
    rows = [f"{c},{'积玉桥街道' if i % 2 else '杨园街道'}" for i, c in enumerate(codes[:-1])]
    (tmp_path / "table.csv").write_text("社区代码,街道名称\n" + "\n".join(rows) + "\n", encoding="utf-8")
    region = dataclasses.replace(wuchang, config=load_config(units_toml(tmp_path, '[units]\ntable_path = "table.csv"\n')))
    with pytest.warns(UserWarning, match=r"1 of 124 communities are not in"):
        units = region.units
    assert units.streets.index.tolist() == ["420106001", "420106002"]
    assert units.communities.loc[codes[-1], "street_code"] == OUTSIDE
    # OSM boundaries in the config that do not reach the district
    whole_osm(tmp_path / "two_streets.osm")
    region = dataclasses.replace(wuchang, config=load_config(units_toml(tmp_path, '[units]\nosm_path = "two_streets.osm"\n')))
    with pytest.raises(EmptyDataError, match="None of the street polygons overlaps the region"):
        region_units(region)
