"""Tests for geoplan.reach: the compiled walking-time engine against hand counts and networkx."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from geoplan.errors import InputError
from geoplan.reach import ReachMatrix, Router, reference_graph, travel_times
from geoplan.snapping import SNAP_COLUMNS, snap_to_network
from tests.conftest import points_frame, tiny_network

# ---------------------------------------------------------------------------
# A straight street A(0,0) - B(100,0) - C(500,0) with a side street B - D(100,200),
# walked at 1 m/s, so every time below is a distance in metres counted by hand.
#
#   D (100,200)
#   |
#   A ---- S ---- B ------------------------- C
#  (0,0)  (50,10) (100,0)                     (500,0)
#
# The site S stands 10 m off the street above position 50 of edge A-B, so it
# reaches A after 10 + 50 = 60 s and B after 10 + 50 = 60 s.
# ---------------------------------------------------------------------------
STREET = [[(0, 0), (100, 0)], [(100, 0), (500, 0)], [(100, 0), (100, 200)]]
SITES = {"S": (50, 10), "S_far": (-2000, 0)}  # S_far: no street within 500 m
DEMAND = {
    "same_edge_ahead": (80, -5),  # edge A-B, 30 m along from S, 5 m off: 10 + 30 + 5 = 45
    "same_edge_behind": (20, 0),  # edge A-B on the other side of S:       10 + 30 + 0 = 40
    "past_junction": (200, 20),  # the same straight street beyond junction B: 60 + 100 + 20 = 180
    "side_street": (95, 150),  # side street, 150 m up from B, 5 m off:  60 + 150 + 5 = 215
    "beyond_cutoff": (450, 0),  # 60 + 350 = 410 > 300
    "no_street": (0, 1000),  # 806 m from the nearest street (D): not reachable on foot
}
EXPECTED_S = {"same_edge_ahead": 45.0, "same_edge_behind": 40.0, "past_junction": 180.0, "side_street": 215.0}


@pytest.fixture(scope="module")
def street():
    return tiny_network(STREET)


@pytest.fixture(scope="module")
def street_reach(street) -> ReachMatrix:
    demand = points_frame(DEMAND, index_name="demand_id")
    sites = points_frame(SITES, index_name="site_id")
    return Router(street, demand, max_access_m=500).travel_times(sites, cutoff_s=300)


def test_hand_counted_times_on_a_straight_street(street_reach):
    assert list(street_reach.demand_ids) == list(DEMAND)
    assert list(street_reach.site_ids) == list(SITES)
    assert street_reach.shape == (len(DEMAND), len(SITES))
    frame = street_reach.to_frame()
    # only S reaches anything, and only the four points within 300 s
    assert set(frame["site_id"]) == {"S"}
    got = dict(zip(frame["demand_id"], frame["time_s"]))
    assert got.keys() == EXPECTED_S.keys()
    for demand_id, expected in EXPECTED_S.items():
        assert got[demand_id] == pytest.approx(expected, abs=1e-9), demand_id


def test_point_with_no_street_within_reach_reaches_nothing(street, street_reach):
    snap = snap_to_network(street, points_frame({**SITES, **DEMAND}, index_name="id"), max_access_m=500)
    assert snap.loc["S_far", "edge_id"] == -1 and snap.loc["no_street", "edge_id"] == -1
    assert np.isnan(snap.loc["no_street", "access_m"])
    column = street_reach.times_s[:, list(street_reach.site_ids).index("S_far")]
    assert column.nnz == 0
    row = street_reach.times_s[list(street_reach.demand_ids).index("no_street"), :]
    assert row.nnz == 0
    # even a huge cutoff does not make them reachable
    far = travel_times(street, points_frame(DEMAND, index_name="demand_id"), points_frame(SITES, index_name="site_id"), cutoff_s=1e6)
    assert far.times_s[:, 1].nnz == 0
    assert far.times_s[list(far.demand_ids).index("no_street"), :].nnz == 0
    assert far.to_frame().set_index("demand_id").loc["beyond_cutoff", "time_s"] == pytest.approx(410.0)


def test_within_thresholds(street_reach):
    def reached(threshold_s):
        within = street_reach.within(threshold_s)
        assert within.dtype == np.int8 and set(np.unique(within.data)) <= {1} and within.shape == street_reach.shape
        rows, cols = within.nonzero()
        assert set(cols) <= {0}
        return {street_reach.demand_ids[r] for r in rows}

    assert reached(39.9) == set()
    assert reached(40) == {"same_edge_behind"}  # a threshold includes its end point
    assert reached(60) == {"same_edge_behind", "same_edge_ahead"}
    assert reached(200) == {"same_edge_behind", "same_edge_ahead", "past_junction"}
    assert reached(300) == set(EXPECTED_S)


def test_within_beyond_the_cutoff_raises(street_reach):
    with pytest.raises(InputError, match=r"holds walks up to 5 min \(300 s\); it cannot answer for 5.017 min \(301 s\)"):
        street_reach.within(301)


def test_nearest_time(street_reach):
    nearest = street_reach.nearest_time_s()
    assert list(nearest.index) == list(DEMAND)
    expected = pd.Series({**EXPECTED_S, "beyond_cutoff": np.inf, "no_street": np.inf})
    pd.testing.assert_series_equal(nearest, expected.reindex(nearest.index), check_names=False, atol=1e-9, rtol=0)


def test_nearest_time_takes_the_quicker_site():
    street = tiny_network(STREET)
    demand = points_frame(DEMAND, index_name="demand_id")
    sites = points_frame({"S": (50, 10), "C_end": (500, 0)}, index_name="site_id")
    reach = travel_times(street, demand, sites, cutoff_s=900)
    nearest = reach.nearest_time_s()
    # beyond_cutoff is 50 m from C; past_junction is 300 m from C but 180 s from S
    assert nearest["beyond_cutoff"] == pytest.approx(50.0)
    assert nearest["past_junction"] == pytest.approx(180.0)
    assert reach.to_frame().set_index(["demand_id", "site_id"]).loc[("past_junction", "C_end"), "time_s"] == pytest.approx(320.0)


def test_same_edge_point_takes_the_shortcut_round_a_loop():
    """Both ends of a 300 m bent edge are joined by a 100 m straight one: a point
    on the bent edge far from the site along it is quicker to reach round the loop."""
    bent = [(0, 0), (0, 100), (100, 100), (100, 0)]  # 300 m from (0,0) to (100,0)
    network = tiny_network([bent, [(0, 0), (100, 0)]])
    assert sorted(network.edges["length_m"].round(6)) == [100.0, 300.0]
    sites = points_frame({"s": (-5, 20)}, index_name="site_id")  # bent edge at 20 m, 5 m off
    demand = points_frame({"near": (-3, 60), "far": (105, 20)}, index_name="demand_id")  # at 60 m and 280 m
    times = travel_times(network, demand, sites, cutoff_s=900).to_frame().set_index("demand_id")["time_s"]
    assert times["near"] == pytest.approx(5 + 40 + 3)  # straight along the bent edge
    assert times["far"] == pytest.approx(5 + 20 + 100 + 20 + 5)  # back to (0,0), across, up: not 5 + 260 + 5


def test_cutoff_must_be_positive(street):
    router = Router(street, points_frame(DEMAND, index_name="demand_id"))
    with pytest.raises(InputError, match="cutoff_s must be positive"):
        router.travel_times(points_frame(SITES, index_name="site_id"), cutoff_s=0)


# ---------------------------------------------------------------------------
# Loops: streets that come back to where they start, walked at 1 m/s.
#
#   P(-100,100) ____ (0,100)        (100,100) ____ (200,100)       (0,600) ____ (100,600)
#      |    ring        |              |    loop      |               |   isolated   |
#      |   (2 lines)    |              |  (1 closed   |               |    ring      |
#      |                |              |    line)     |               |  (1 closed   |
#   (-100,0) ______ J0(0,0) ____S____ J(100,0) ____ (200,0)           |    line)     |
#                                                                  (0,500) __R_ (100,500)
#
# The east loop is one closed line from J round to J (400 m); the west ring is two
# lines J0 -> (-100,0) -> P and P -> (0,100) -> J0, so P only joins them (a
# pass-through node); the isolated ring is one closed line from (0,500) round to
# itself, with no junction at all.
# ---------------------------------------------------------------------------
LOOP_STREETS = [
    [(0, 0), (100, 0)],
    [(100, 0), (200, 0), (200, 100), (100, 100), (100, 0)],
    [(0, 500), (100, 500), (100, 600), (0, 600), (0, 500)],
    [(0, 0), (-100, 0), (-100, 100)],
    [(-100, 100), (0, 100), (0, 0)],
]
LOOP_SITES = {
    "S": (50, 5),  # street, 50 m from J0 and J, 5 m off
    "T": (205, 50),  # east loop, 150 m from J one way round and 250 m the other
    "R": (50, 495),  # isolated ring, 50 m from its seam at (0,500)
    "W": (-100, 103),  # west ring, at its pass-through node P
}
LOOP_DEMAND = {
    "street_mid": (20, -5),
    "at_junction": (100, -3),  # 3 m from J, where the loop meets the street
    "loop_east": (200, 30),  # east loop, 130 m from J forwards, 270 m backwards
    "loop_back": (105, 80),  # east loop, 320 m from J forwards, 80 m backwards
    "loop_far": (150, 105),  # east loop, 250 m from J forwards, 150 m backwards
    "ring_west": (-105, 50),  # west ring, 150 m from J0 by (-100,0), 250 m by P
    "ring_pass": (-100, 105),  # west ring at P, 200 m from J0 both ways
    "ring_east_side": (-5, 70),  # west ring, 70 m up from J0, 130 m from P
    "isolated_seam": (-5, 580),  # isolated ring, 320 m round from the seam: 80 m the other way
    "isolated_direct": (105, 520),  # isolated ring, 120 m round from the seam
}
EXPECTED_LOOPS = {
    ("street_mid", "S"): 5 + 30 + 5,
    ("at_junction", "S"): 5 + 50 + 3,
    ("loop_east", "S"): 5 + 50 + 130,
    ("loop_back", "S"): 5 + 50 + 80 + 5,  # the other way round the loop
    ("loop_far", "S"): 5 + 50 + 150 + 5,
    ("ring_west", "S"): 5 + 50 + 150 + 5,
    ("ring_pass", "S"): 5 + 50 + 200 + 5,
    ("ring_east_side", "S"): 5 + 50 + 70 + 5,
    ("loop_east", "T"): 5 + 20,  # straight along the loop
    ("loop_far", "T"): 5 + 100 + 5,
    ("loop_back", "T"): 5 + 170 + 5,  # on along the loop: not back through J (5 + 150 + 80 + 5)
    ("at_junction", "T"): 5 + 150 + 3,  # back to J: not on round (250 m)
    ("street_mid", "T"): 5 + 150 + 80 + 5,
    ("isolated_direct", "R"): 5 + 70 + 5,
    ("isolated_seam", "R"): 5 + 50 + 80 + 5,  # across the seam: not 5 + 270 + 5
    ("ring_west", "W"): 3 + 50 + 5,
    ("ring_east_side", "W"): 3 + 130 + 5,  # through P onto the other line
    ("ring_pass", "W"): 3 + 5,
}


def _networkx_pairs(network, demand_snap: pd.DataFrame, site_snap: pd.DataFrame, cutoff_s: float) -> dict[tuple, float]:
    """(demand_id, site_id) -> seconds by plain Dijkstra on the reference graph."""
    graph = reference_graph(network, {"d": demand_snap, "s": site_snap})
    times = {}
    for site_id in site_snap.index[site_snap["edge_id"] >= 0]:
        lengths = nx.single_source_dijkstra_path_length(graph, ("s", site_id), cutoff=cutoff_s, weight="travel_time_s")
        times.update({(n[1], site_id): t for n, t in lengths.items() if isinstance(n, tuple) and len(n) == 2 and n[0] == "d"})
    return times


def _router_pairs(network, demand, sites, cutoff_s: float) -> dict[tuple, float]:
    frame = Router(network, demand).travel_times(sites, cutoff_s=cutoff_s).to_frame()
    assert not frame.duplicated(["demand_id", "site_id"]).any()
    return dict(zip(zip(frame["demand_id"], frame["site_id"]), frame["time_s"]))


def _assert_same_times(got: dict, expected: dict) -> None:
    only_router, only_networkx = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
    assert not only_router and not only_networkx, f"only in Router: {only_router}, only in networkx: {only_networkx}"
    for pair, seconds in expected.items():
        assert got[pair] == pytest.approx(seconds, abs=1e-6), pair


@pytest.fixture(scope="module")
def loop_network():
    return tiny_network(LOOP_STREETS)


def test_loops_are_streets_of_the_network(loop_network):
    edges = loop_network.edges
    assert len(edges) == 5
    assert (edges["u"] == edges["v"]).sum() == 2  # the east loop and the isolated ring
    assert edges["length_m"].sum() == pytest.approx(100 + 400 + 400 + 200 + 200)


def test_points_on_loops_snap_to_the_loops(loop_network):
    snap = snap_to_network(loop_network, points_frame({**LOOP_SITES, **LOOP_DEMAND}, index_name="id"))
    expected_access = dict.fromkeys([*LOOP_SITES, *LOOP_DEMAND], 5) | {"W": 3, "at_junction": 3, "loop_east": 0}
    assert snap["access_m"].to_dict() == pytest.approx(expected_access, abs=1e-9)


def test_hand_counted_times_round_loops(loop_network):
    demand = points_frame(LOOP_DEMAND, index_name="demand_id")
    sites = points_frame(LOOP_SITES, index_name="site_id")
    got = _router_pairs(loop_network, demand, sites, cutoff_s=300)
    assert {pair: got.get(pair) for pair in EXPECTED_LOOPS} == pytest.approx(EXPECTED_LOOPS, abs=1e-9)
    # the isolated ring reaches only itself, and nothing else reaches it
    assert {d for d, s in got if s == "R"} == {"isolated_seam", "isolated_direct"}
    assert {s for d, s in got if d.startswith("isolated")} == {"R"}


@pytest.mark.parametrize("cutoff_s", [60, 150, 300, 1000])
def test_router_equals_networkx_round_loops(loop_network, cutoff_s):
    demand = points_frame(LOOP_DEMAND, index_name="demand_id")
    sites = points_frame(LOOP_SITES, index_name="site_id")
    demand_snap, site_snap = snap_to_network(loop_network, demand), snap_to_network(loop_network, sites)
    expected = _networkx_pairs(loop_network, demand_snap, site_snap, cutoff_s)
    assert len(expected) >= 4
    _assert_same_times(_router_pairs(loop_network, demand, sites, cutoff_s), expected)


def test_router_equals_networkx_on_osm_loops():
    """tests/data/loops.osm: a closed way on a street, an isolated closed way and a ring of two equal halves."""
    from geoplan.network import load_network
    from tests.conftest import TEST_DATA

    network = load_network(TEST_DATA / "loops.osm", walk_speed_mps=1.0)

    def lon_lat(points: dict, name: str) -> gpd.GeoDataFrame:
        frame = gpd.GeoDataFrame(geometry=gpd.points_from_xy(*zip(*points.values())), index=list(points), crs=4326)
        frame.index.name = name
        return frame

    demand = lon_lat(
        {
            "street": (114.3005, 30.49998),
            "loop_east_side": (114.30205, 30.5003),
            "loop_west_side": (114.30103, 30.5008),
            "loop_far_corner": (114.3019, 30.50102),
            "loop_by_junction": (114.30102, 30.50002),
            "ring_south": (114.3045, 30.50297),
            "ring_west": (114.30398, 30.5038),
            "half_west": (114.2997, 30.5003),
            "half_east": (114.3002, 30.50081),
            "halves_meet": (114.3000, 30.50103),
        },
        "demand_id",
    )
    sites = lon_lat(
        {"street": (114.3004, 30.50003), "loop": (114.30202, 30.5009), "ring": (114.30495, 30.5035), "halves": (114.30001, 30.50098)},
        "site_id",
    )
    demand_snap, site_snap = snap_to_network(network, demand), snap_to_network(network, sites)
    assert demand_snap["access_m"].max() < 5 and site_snap["access_m"].max() < 5  # every point is on its loop
    for cutoff_s in (100, 300, 1200):
        expected = _networkx_pairs(network, demand_snap, site_snap, cutoff_s)
        _assert_same_times(_router_pairs(network, demand_snap, site_snap, cutoff_s), expected)
    assert len(expected) == 8 * 3 + 2  # the main piece reaches all of itself; the ring only itself


# ---------------------------------------------------------------------------
# CRS checks before any distance
# ---------------------------------------------------------------------------


def test_snapping_refuses_a_network_in_degrees(street):
    from geoplan.errors import CRSMismatchError
    from geoplan.network import WalkNetwork
    from geoplan.snapping import point_on_streets_within

    in_degrees = WalkNetwork(nodes=street.nodes.to_crs(4326), edges=street.edges.to_crs(4326), walk_speed_mps=1.0)
    points = points_frame(SITES, index_name="site_id")
    with pytest.raises(CRSMismatchError, match=r"network.*EPSG:4326.*geographic.*EPSG:32650"):
        snap_to_network(in_degrees, points)
    with pytest.raises(CRSMismatchError, match=r"network.*EPSG:4326.*geographic"):
        point_on_streets_within(in_degrees, points.buffer(50))


def test_snapping_refuses_points_without_crs(street):
    from geoplan.errors import CRSMismatchError
    from geoplan.snapping import point_on_streets_within

    naive = points_frame(SITES, index_name="site_id").set_crs(None, allow_override=True)
    with pytest.raises(CRSMismatchError, match=r"points have no CRS.*set_crs"):
        snap_to_network(street, naive)
    with pytest.raises(CRSMismatchError, match=r"areas have no CRS.*set_crs"):
        point_on_streets_within(street, naive.buffer(50))


def test_snapping_projects_lon_lat_points(street):
    points = points_frame(DEMAND, index_name="demand_id")
    pd.testing.assert_frame_equal(snap_to_network(street, points.to_crs(4326)), snap_to_network(street, points), atol=1e-6)


# ---------------------------------------------------------------------------
# The real Wuchang network: the fast path against networkx on the reference graph.
# ---------------------------------------------------------------------------
N_RANDOM = 25


@pytest.fixture(scope="module")
def random_sites(wuchang) -> gpd.GeoDataFrame:
    """25 candidate sites, 25 random points on streets and 25 points 15-150 m off a street."""
    rng = np.random.default_rng(20240501)
    network = wuchang.network
    candidates = wuchang.candidates.iloc[rng.choice(len(wuchang.candidates), N_RANDOM, replace=False)]
    edges = network.edges.geometry.to_numpy()[rng.choice(len(network.edges), 2 * N_RANDOM, replace=False)]
    on_street = shapely.line_interpolate_point(edges, rng.uniform(0, 1, 2 * N_RANDOM), normalized=True)
    angle = rng.uniform(0, 2 * np.pi, N_RANDOM)
    shift = rng.uniform(15, 150, N_RANDOM)[:, None] * np.c_[np.cos(angle), np.sin(angle)]
    off_xy = shapely.get_coordinates(on_street[N_RANDOM:]) + shift
    parts = [
        candidates[["geometry"]],
        gpd.GeoDataFrame(geometry=on_street[:N_RANDOM], crs=network.crs, index=[f"on{i}" for i in range(N_RANDOM)]),
        gpd.GeoDataFrame(geometry=gpd.points_from_xy(*off_xy.T), crs=network.crs, index=[f"off{i}" for i in range(N_RANDOM)]),
    ]
    sites = pd.concat(parts)
    sites.index.name = "site_id"
    return sites


@pytest.fixture(scope="module")
def networkx_times(wuchang, random_sites) -> dict[tuple, float]:
    """(demand_id, site_id) -> seconds, by plain Dijkstra on the graph with every point as a node."""
    max_access_m = wuchang.config.analysis.max_access_m
    site_snap = snap_to_network(wuchang.network, random_sites, max_access_m=max_access_m)
    graph = reference_graph(wuchang.network, {"site": site_snap, "demand": wuchang.demand[SNAP_COLUMNS]})
    times = {}
    for site_id in random_sites.index:
        lengths = nx.single_source_dijkstra_path_length(graph, ("site", site_id), cutoff=900, weight="travel_time_s")
        for node, seconds in lengths.items():
            if isinstance(node, tuple) and len(node) == 2 and node[0] == "demand":
                times[(node[1], site_id)] = seconds
    return times


@pytest.mark.slow
def test_random_sites_are_varied(wuchang, random_sites):
    snap = snap_to_network(wuchang.network, random_sites, max_access_m=wuchang.config.analysis.max_access_m)
    assert (snap["edge_id"] >= 0).all()
    off_access = snap.loc[[f"off{i}" for i in range(N_RANDOM)], "access_m"]
    # streets are dense, so some shifted points land near another street; most still walk to it
    assert (off_access > 10).sum() >= 15 and off_access.max() > 50
    assert snap.loc[[f"on{i}" for i in range(N_RANDOM)], "access_m"].max() < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("cutoff_s", [300, 600, 900])
def test_router_equals_networkx_on_wuchang(wuchang, random_sites, networkx_times, cutoff_s):
    reach = Router(wuchang.network, wuchang.demand, max_access_m=wuchang.config.analysis.max_access_m).travel_times(
        random_sites, cutoff_s=cutoff_s
    )
    assert list(reach.site_ids) == list(random_sites.index)
    assert list(reach.demand_ids) == list(wuchang.demand.index)
    frame = reach.to_frame()
    got = dict(zip(zip(frame["demand_id"], frame["site_id"]), frame["time_s"]))
    expected = {pair: t for pair, t in networkx_times.items() if t <= cutoff_s}
    assert len(expected) > 100 * cutoff_s / 300  # the comparison is not vacuous
    assert len(got) == len(frame)  # no pair stored twice
    assert set(got) == set(expected), (
        f"only in Router: {sorted(set(got) - set(expected))[:5]}, only in networkx: {sorted(set(expected) - set(got))[:5]}"
    )
    diff = max(abs(got[pair] - t) for pair, t in expected.items())
    assert diff <= 1e-6
    assert frame["time_s"].max() <= cutoff_s
