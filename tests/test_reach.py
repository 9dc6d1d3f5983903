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
        assert within.dtype == bool and within.shape == street_reach.shape
        rows, cols = within.nonzero()
        assert set(cols) <= {0}
        return {street_reach.demand_ids[r] for r in rows}

    assert reached(39.9) == set()
    assert reached(40) == {"same_edge_behind"}  # a threshold includes its end point
    assert reached(60) == {"same_edge_behind", "same_edge_ahead"}
    assert reached(200) == {"same_edge_behind", "same_edge_ahead", "past_junction"}
    assert reached(300) == set(EXPECTED_S)


def test_within_beyond_the_cutoff_raises(street_reach):
    with pytest.raises(InputError, match=r"computed up to 300 s.*Recompute it with cutoff_s >= 301"):
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
