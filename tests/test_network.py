"""Tests for geoplan.network: the loaders (OSM XML, centreline layers, GraphML), topology and cache."""

from __future__ import annotations

import logging
import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

import geoplan.network
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from geoplan.network import DEFAULT_EXCLUDED_HIGHWAYS, build_walk_network, load_network
from tests.conftest import BOUNDARIES, OSM_XML, STREETS, TEST_DATA, UTM50, X0, Y0, lines_frame, node_at, tiny_network

#: A hand-made extract: see the comment at the top of the file for what each way is.
PARALLEL_OSM = TEST_DATA / "parallel_ways.osm"
#: A closed way on a street, an isolated closed way and a ring in two halves: see the file's comment.
LOOPS_OSM = TEST_DATA / "loops.osm"
SPEED = 1.2


@pytest.fixture(scope="module")
def optics_valley():
    """The shipped OSM XML extract (Optics Valley east), walked at 1.2 m/s."""
    return load_network(OSM_XML, walk_speed_mps=SPEED)


@pytest.fixture(scope="module")
def parallel():
    return load_network(PARALLEL_OSM, walk_speed_mps=1.0)


@pytest.fixture(scope="module")
def loops():
    return load_network(LOOPS_OSM, walk_speed_mps=1.0)


# --------------------------------------------------------------------------- OSM XML


@pytest.mark.slow  # loads a real network (a few seconds)
def test_osm_xml_loads(optics_valley):
    network = optics_valley
    assert len(network.nodes) > 100 and len(network.edges) > 100
    assert network.crs.is_projected and network.crs.to_epsg() == 32650  # UTM 50N, Wuhan's zone
    assert network.walk_speed_mps == SPEED
    edges = network.edges
    np.testing.assert_allclose(edges["length_m"], edges.geometry.length, rtol=1e-12)
    np.testing.assert_allclose(edges["travel_time_s"], edges["length_m"] / SPEED, rtol=1e-12)
    assert (edges["length_m"] > 0).all()
    loop = edges["u"] == edges["v"]  # two closed residential ways, kept as loops
    assert loop.sum() == 2 and (loop == edges.geometry.is_closed).all()
    assert set(edges["u"]) | set(edges["v"]) == set(network.nodes.index)
    # the extract (bounds about 3.6 km x 1.7 km) in metres of UTM 50N, east of Wuhan's centre;
    # ways crossing its edge are kept whole, so the streets reach a few km beyond it
    minx, miny, maxx, maxy = edges.total_bounds
    assert 240_000 < minx < maxx < 290_000 and 3_360_000 < miny < maxy < 3_390_000
    assert network.nodes["component"].min() == 0
    assert network.components().loc[0, "nodes"] == network.nodes["component"].eq(0).sum()


@pytest.mark.slow  # loads a real network (a few seconds)
def test_osm_xml_real_extract_holds_only_streets(optics_valley):
    highway = optics_valley.edges["highway"]
    not_streets = optics_valley.edges[highway.isna() | highway.astype(str).isin(["nan", "None", ""])]
    assert not_streets.empty, f"{len(not_streets)} edges, {not_streets['length_m'].sum() / 1000:.0f} km, have no highway tag"


def test_osm_xml_leaves_out_motorways_and_private_ways(parallel):
    nodes = set(parallel.nodes.index)
    assert {1, 2, 3}.issubset(nodes)
    assert not {9, 10} & nodes  # way 106, highway=motorway
    assert 16 not in nodes  # way 108, access=private
    assert "motorway" not in set(parallel.edges["highway"])


def test_osm_xml_leaves_out_railways(parallel):
    assert not {7, 8} & set(parallel.nodes.index)  # way 104, railway=tram
    assert parallel.edges["highway"].notna().all()


def test_osm_xml_follows_foot_tags(parallel):
    nodes = set(parallel.nodes.index)
    assert 15 not in nodes  # way 107, footway with foot=no
    assert 17 in nodes  # way 109, access=private but foot=yes
    graph = parallel.to_networkx()
    assert nx.shortest_path_length(graph, 3, 4, weight="travel_time_s") == pytest.approx(96, rel=0.01)


def _osmnx_settings() -> dict:
    import copy

    import osmnx as ox

    plain = (bool, int, float, str, list, dict, type(None))
    values = {name: getattr(ox.settings, name) for name in dir(ox.settings) if not name.startswith("_")}
    return {name: copy.deepcopy(value) for name, value in values.items() if isinstance(value, plain)}


def test_osm_xml_loading_leaves_osmnx_settings_alone(monkeypatch):
    # API jobs load networks in threads: a global changed for one load is seen by every other thread
    import osmnx as ox

    before = _osmnx_settings()
    seen = []
    read_xml = ox.graph_from_xml

    def watched(*args, **kwargs):
        seen.append(_osmnx_settings())
        return read_xml(*args, **kwargs)

    monkeypatch.setattr(ox, "graph_from_xml", watched)
    network = load_network(PARALLEL_OSM)
    assert seen == [before]  # not even changed while osmnx reads the file
    assert _osmnx_settings() == before
    assert 15 not in network.nodes.index  # way 107, foot=no: the foot tag was still read


def test_osm_xml_loading_does_not_depend_on_osmnx_settings(monkeypatch):
    import osmnx as ox

    monkeypatch.setattr(ox.settings, "useful_tags_way", ["name"])  # a user's own setting, without highway or access
    network = load_network(PARALLEL_OSM)
    assert ox.settings.useful_tags_way == ["name"]
    nodes = set(network.nodes.index)
    assert {1, 2, 3, 17}.issubset(nodes) and not {7, 8, 9, 10, 15, 16} & nodes
    assert "motorway" not in set(network.edges["highway"]) and network.edges["highway"].notna().all()


def test_osm_xml_keeps_two_streets_between_the_same_junctions(parallel):
    # way 100 (a 636 m detour, listed first) and way 101 (192 m straight) both join nodes 2 and 3
    inner = parallel.edges[parallel.edges["u"].isin([2, 3, 5, 6]) & parallel.edges["v"].isin([2, 3, 5, 6])]
    assert inner["length_m"].sum() == pytest.approx(192 + 636, rel=0.01)
    graph = parallel.to_networkx()
    assert nx.shortest_path_length(graph, 2, 3, weight="travel_time_s") == pytest.approx(192, rel=0.01)


# --------------------------------------------------------------------------- loops


def test_osm_xml_keeps_a_closed_way_as_a_loop(loops):
    # way 201 (2-3-4-5-2, about 2 x 96 m + 2 x 111 m) starts and ends at junction 2
    loop = loops.edges[(loops.edges["u"] == 2) & (loops.edges["v"] == 2)]
    assert len(loop) == 1  # one street, not one copy per walking direction
    assert loop["length_m"].iloc[0] == pytest.approx(2 * 96 + 2 * 111, rel=0.01)
    assert loop.geometry.iloc[0].is_closed
    assert {3, 4, 5}.isdisjoint(loops.nodes.index)  # its corners are bends, not nodes
    assert loops.nodes.loc[2, "component"] == loops.nodes.loc[1, "component"]


def test_osm_xml_keeps_an_isolated_ring(loops):
    # way 202 (10-11-12-13-10) meets no other street: osmnx's simplification would drop it
    ring_nodes = {10, 11, 12, 13}
    ring = loops.edges[loops.edges["u"].isin(ring_nodes) | loops.edges["v"].isin(ring_nodes)]
    assert ring["length_m"].sum() == pytest.approx(2 * 96 + 2 * 111, rel=0.01)
    assert loops.nodes.loc[loops.nodes.index.isin(ring_nodes), "component"].nunique() == 1
    assert loops.nodes.loc[10, "component"] != loops.nodes.loc[1, "component"]


def test_osm_xml_keeps_both_halves_of_a_ring_of_equal_length(loops):
    # ways 203 and 204 both join 1 and 21 with the same length: two streets, not one street twice
    halves = loops.edges[loops.edges["u"].isin([1, 21]) & loops.edges["v"].isin([1, 21])]
    assert sorted(halves["highway"]) == ["footway", "residential"]
    assert halves["length_m"].iloc[0] == pytest.approx(halves["length_m"].iloc[1], abs=0.01)
    assert not shapely.equals(halves.geometry.iloc[0], halves.geometry.iloc[1])


def test_osm_xml_loop_total_street_length(loops):
    # street 96 m + loop 414 m + ring halves 2 x 147 m (main piece); isolated ring 414 m
    street_km = loops.components()["street_km"]
    assert len(street_km) == 2
    assert street_km[loops.nodes.loc[1, "component"]] == pytest.approx(0.804, abs=0.003)
    assert street_km[loops.nodes.loc[10, "component"]] == pytest.approx(0.414, abs=0.003)


def test_centreline_layer_keeps_closed_lines(tmp_path):
    # a street, a closed square loop on its east end and an isolated closed square, as a GeoParquet layer
    lines = lines_frame(
        [
            [(0, 0), (100, 0)],
            [(100, 0), (200, 0), (200, 100), (100, 100), (100, 0)],  # closed: first point == last point
            [(0, 500), (100, 500), (100, 600), (0, 600), (0, 500)],  # closed and alone
        ],
        highway=["residential"] * 3,
    )
    path = tmp_path / "centrelines.parquet"
    lines.to_parquet(path)
    network = load_network(path)
    edges = network.edges
    assert len(edges) == 3 and len(network.nodes) == 3  # (0,0), (100,0) and the isolated ring's (0,500)
    assert sorted(edges["length_m"].round(6)) == [100.0, 400.0, 400.0]
    loops = edges[edges["u"] == edges["v"]]
    assert len(loops) == 2 and loops.geometry.is_closed.all()
    assert loops["u"].iloc[0] == node_at(network, 100, 0)
    assert network.components()["street_km"].to_dict() == pytest.approx({0: 0.5, 1: 0.4})


def test_layer_with_node_ids_keeps_a_loop():
    lines = lines_frame(
        [[(0, 0), (100, 0)], [(100, 0), (200, 0), (200, 100), (100, 100), (100, 0)]],
        u=[1, 2], v=[2, 2], highway=["residential"] * 2,
    )
    network = build_walk_network(lines, crs=UTM50)
    assert list(zip(network.edges["u"], network.edges["v"])) == [(1, 2), (2, 2)]
    assert network.edges["length_m"].tolist() == pytest.approx([100.0, 400.0])


def test_a_stub_shorter_than_the_node_tolerance_is_not_a_loop():
    # a 0.3 m scrap whose two ends fall within the 0.5 m node tolerance of each other
    network = tiny_network([[(0, 0), (100, 0)], [(100, 0), (100.3, 0)]])
    assert len(network.edges) == 1


def test_pbf_gives_a_clear_error(tmp_path):
    pbf = tmp_path / "wuhan.osm.pbf"
    pbf.write_bytes(b"\x00\x00\x00\x0dOSMHeader not really")
    with pytest.raises(InputError, match=r"OSM PBF.*osmium cat wuhan\.osm\.pbf -o .*\.osm"):
        load_network(pbf)


def test_unknown_format_gives_a_clear_error(tmp_path):
    path = tmp_path / "streets.dwg"
    path.write_bytes(b"AC1032")
    with pytest.raises(InputError, match=r"Cannot read a street network from streets\.dwg.*\.graphml"):
        load_network(path)


# --------------------------------------------------------------------------- GraphML


@pytest.mark.slow  # loads a real network (a few seconds)
def test_graphml_round_trip(tmp_path, optics_valley):
    import osmnx as ox

    # saved as a user would from osmnx: unsimplified, with the foot tag kept
    tags = list(ox.settings.useful_tags_way)
    ox.settings.useful_tags_way = [*tags, "foot"]
    try:
        graph = ox.graph_from_xml(OSM_XML, bidirectional=True, simplify=False, retain_all=True)
    finally:
        ox.settings.useful_tags_way = tags
    path = tmp_path / "optics_valley.graphml"
    ox.save_graphml(graph, path)
    network = load_network(path, walk_speed_mps=SPEED)
    assert network.crs == optics_valley.crs
    assert set(network.nodes.index) == set(optics_valley.nodes.index)
    assert len(network.edges) == len(optics_valley.edges)

    def street_set(net):
        e = net.edges
        return sorted(zip(np.minimum(e["u"], e["v"]), np.maximum(e["u"], e["v"]), e["length_m"].round(3)))

    assert street_set(network) == street_set(optics_valley)
    np.testing.assert_allclose(network.edges["travel_time_s"].sum(), optics_valley.edges["travel_time_s"].sum())


def test_bad_graphml_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.graphml"
    path.write_text("<graphml><graph>not closed")
    with pytest.raises(InputError, match=r"Cannot read .*broken\.graphml as osmnx GraphML"):
        load_network(path)


# --------------------------------------------------------------------------- centreline layers


def test_gpkg_without_node_ids_builds_the_right_topology(tmp_path):
    #   (0,100) ---d--- (100,100)
    #                      |
    #       (50,50)        b
    #          |           |
    #   (0,0) -c-a------ (100,0)      c crosses a at (50,0) with no shared end point
    #          |
    #       (50,-50)
    lines = lines_frame(
        [
            [(0, 0), (100, 0)],  # a
            [(100, 0), (100, 100)],  # b: starts where a ends
            [(50, -50), (50, 50)],  # c: an overpass over a
            [(100, 100), (0, 100)],  # d: starts where b ends
        ],
        highway=["residential", "residential", "primary", "residential"],
    )
    path = tmp_path / "centrelines.gpkg"
    lines.to_file(path, layer="streets", driver="GPKG")
    network = load_network(path)
    assert network.crs.to_epsg() == 32650
    assert len(network.edges) == 4 and len(network.nodes) == 6  # four ends joined in pairs twice, c's two alone
    a, b, c, d = (network.edges.iloc[i] for i in range(4))
    assert a["v"] == b["u"] == node_at(network, 100, 0)
    assert b["v"] == d["u"] == node_at(network, 100, 100)
    assert not {c["u"], c["v"]} & {a["u"], a["v"]}  # crossing is not meeting
    graph = network.to_networkx()
    assert nx.shortest_path_length(graph, a["u"], d["v"], weight="travel_time_s") == pytest.approx(300)
    assert not nx.has_path(graph, a["u"], c["u"])


def test_end_points_within_the_tolerance_are_joined():
    # 0.1 m gaps, as drawn by hand in CAD
    network = tiny_network([[(0, 0), (100, 0)], [(100.1, 0.05), (200, 0)], [(200, 0), (200, 300)]])
    assert len(network.nodes) == 4
    assert network.nodes["component"].max() == 0


def test_end_points_a_hair_apart_are_joined_wherever_they_lie():
    # 2 mm apart, straddling x = 0.25 (the half-way line of the 0.5 m grid)
    network = tiny_network([[(-100, 0), (0.249, 0)], [(0.251, 0), (100, 0)]])
    assert len(network.nodes) == 3


def test_detached_piece_gets_a_component_of_its_own():
    network = tiny_network(
        [
            [(0, 0), (100, 0)], [(100, 0), (200, 0)], [(200, 0), (200, 100)],  # main: 400 m, 4 nodes
            [(0, 500), (50, 500)],  # a detached 50 m path
        ]
    )
    component = network.nodes["component"]
    assert component.loc[node_at(network, 0, 500)] == component.loc[node_at(network, 50, 500)] == 1
    assert component.loc[node_at(network, 0, 0)] == 0  # 0 is the largest piece
    table = network.components()
    assert table["nodes"].to_dict() == {0: 4, 1: 2}
    assert table["street_km"].to_dict() == pytest.approx({0: 0.3, 1: 0.05})


def test_motorways_are_left_out():
    lines = lines_frame(
        [[(0, 0), (100, 0)], [(100, 0), (200, 0)], [(200, 0), (300, 0)], [(300, 0), (400, 0)], [(0, 0), (0, 100)]],
        highway=["residential", "motorway", "motorway_link", "trunk", "construction"],
    )
    network = build_walk_network(lines, crs=UTM50)
    assert sorted(network.edges["highway"]) == ["residential", "trunk"]
    assert network.nodes["component"].max() == 1  # without the motorway the street falls in two
    walk_all = build_walk_network(lines, crs=UTM50, excluded_highways=())
    assert len(walk_all.edges) == 5


@pytest.mark.slow  # loads a real network (a few seconds)
def test_real_network_has_no_motorway(wuchang):
    highways = set(wuchang.network.edges["highway"])
    assert not highways & set(DEFAULT_EXCLUDED_HIGHWAYS)
    assert {"residential", "primary", "trunk"} <= highways  # trunk roads stay walkable by default


def test_network_without_crs_is_refused():
    lines = lines_frame([[(0, 0), (100, 0)]]).set_crs(None, allow_override=True)
    with pytest.raises(CRSMismatchError, match=r"no CRS.*set_crs"):
        build_walk_network(lines)


def test_geographic_crs_is_refused_before_any_distance():
    lines = lines_frame([[(0, 0), (100, 0)], [(100, 0), (100, 100)]]).to_crs(4326)
    with pytest.raises(CRSMismatchError, match=r"EPSG:4326.*geographic.*degrees.*EPSG:32650.*crs=None"):
        build_walk_network(lines, crs="EPSG:4326")
    with pytest.raises(CRSMismatchError, match=r"EPSG:4326.*geographic"):
        load_network(PARALLEL_OSM, crs=4326)
    # lon/lat input is fine: it is projected to the local UTM zone, or to the projected CRS given
    assert len(build_walk_network(lines).edges) == 2
    assert len(build_walk_network(lines, crs=UTM50).edges) == 2


def test_projected_crs_in_feet_is_refused():
    lines = lines_frame([[(0, 0), (100, 0)]])
    with pytest.raises(CRSMismatchError, match=r"EPSG:2249.*foot.*metres"):
        build_walk_network(lines, crs="EPSG:2249")  # Massachusetts State Plane, US survey feet


def test_unknown_crs_is_refused_clearly():
    with pytest.raises(CRSMismatchError, match=r"not-a-crs.*not a CRS"):
        geoplan.network.require_projected("not-a-crs", "crs")


def test_require_projected_answers_for_a_projected_crs():
    assert geoplan.network.require_projected(UTM50, "crs").to_epsg() == 32650
    with pytest.raises(CRSMismatchError, match=r"The network's CRS is not set.*projected CRS in metres"):
        geoplan.network.require_projected(None, "The network's CRS")


def test_network_without_lines_is_refused():
    points = gpd.GeoDataFrame(geometry=[shapely.Point(X0, Y0)], crs=UTM50)
    with pytest.raises(EmptyDataError, match="no line geometry"):
        build_walk_network(points)


@pytest.mark.slow  # loads a real network (a few seconds)
def test_every_edge_runs_from_u_to_v(wuchang):
    network = wuchang.network
    lines = network.edges.geometry.to_numpy()
    start = shapely.get_coordinates(shapely.get_point(lines, 0))
    end = shapely.get_coordinates(shapely.get_point(lines, -1))
    u_xy = network.nodes.loc[network.edges["u"], ["x", "y"]].to_numpy()
    v_xy = network.nodes.loc[network.edges["v"], ["x", "y"]].to_numpy()
    # node positions are kept to the millimetre
    assert np.hypot(*(start - u_xy).T).max() < 1e-3
    assert np.hypot(*(end - v_xy).T).max() < 1e-3
    np.testing.assert_allclose(network.edges["length_m"], network.edges.geometry.length, rtol=1e-12)


# --------------------------------------------------------------------------- cache


def test_cache_gives_the_same_network_and_is_read_the_second_time(tmp_path, monkeypatch, caplog):
    # a 2 km square of central Wuchang, to keep the build quick
    districts = gpd.read_file(BOUNDARIES)
    wuchang = districts[districts["adcode"].astype(str) == "420106"].to_crs(UTM50)
    centre = wuchang.geometry.iloc[0].representative_point()
    area = gpd.GeoDataFrame(geometry=[centre.buffer(1000, cap_style="square")], crs=UTM50)
    cache = tmp_path / "cache"
    first = load_network(STREETS, boundary=area, buffer_m=200, cache_dir=cache)
    entries = list(cache.iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")
    assert {p.name for p in entries[0].iterdir()} == {"edges.parquet", "nodes.parquet"}

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached network was rebuilt")

    monkeypatch.setattr(geoplan.network, "read_street_edges", no_rebuild)
    with caplog.at_level(logging.INFO, logger="geoplan.network"):
        second = load_network(STREETS, boundary=area, buffer_m=200, cache_dir=cache)
    assert "read from cache" in caplog.text
    assert len(first.edges) > 100
    assert_geodataframe_equal(second.edges, first.edges)
    assert_geodataframe_equal(second.nodes, first.nodes)
    assert second.walk_speed_mps == first.walk_speed_mps

    # another setting is another network: not served from the same cache entry
    with pytest.raises(AssertionError, match="rebuilt"):
        load_network(STREETS, boundary=area, buffer_m=200, walk_speed_mps=0.8, cache_dir=cache)


def test_a_second_writer_of_a_cached_network_keeps_the_first_ones_folder(tmp_path):
    """Two processes preparing the same network: the one that finishes second must not remove the folder being read."""
    from geoplan import _files

    target = tmp_path / "net-abc"
    with _files.atomic_directory(target) as first:
        (first / "edges.parquet").write_text("first")
    reader = (target / "edges.parquet").open()
    with _files.atomic_directory(target) as second:
        (second / "edges.parquet").write_text("second")
    assert reader.read() == "first" and (target / "edges.parquet").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["net-abc"]  # the second build is gone, not left beside it


def test_streets_without_a_highway_class_are_told(tmp_path):
    """A county's own centreline layer often has no OSM class: every line, motorways too, is then walkable."""
    lines = [[(0, 0), (100, 0)], [(100, 0), (100, 100)]]
    with pytest.warns(UserWarning, match=r"no 'highway' column, so every line is taken as walkable, motorways"):
        build_walk_network(lines_frame(lines), crs=UTM50)
    path = tmp_path / "centrelines.geojson"
    lines_frame(lines).to_file(path, driver="GeoJSON")
    for _ in range(2):  # built, then read from the cache: told both times
        with pytest.warns(UserWarning, match=r"no 'highway' column"):
            load_network(path, crs=UTM50, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        build_walk_network(lines_frame(lines, highway=["residential", "footway"]), crs=UTM50)
