"""Tests for geoplan.isochrones: the people inside a care circle are the people counted as covered.

Quality is judged against measures the module does not compute itself: a
networkx Dijkstra on :func:`geoplan.reach.reference_graph` (times of cells and
street points), and the coverage counts of the reach matrix.
"""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from geoplan.coverage import catchments
from geoplan.errors import InputError
from geoplan.isochrones import DEFAULT_STREET_BUFFER_M, POINT_MARGIN_M, care_circles, fill_small_holes
from geoplan.reach import reference_graph, travel_times
from geoplan.snapping import snap_to_network
from tests.conftest import UTM50, X0, Y0, node_at, points_frame, tiny_network

THRESHOLDS_MIN = (5, 10, 15)
#: A street point counts as reached "much later" when the walk gets there more than this late.
LATE_S = 60.0
STEP_M = 10.0


# --------------------------------------------------------------------------- independent measures


def networkx_times(network, demand, sites, *, cutoff_s: float) -> dict:
    """Per site: networkx walking times to the network nodes and to the demand cells (inf beyond ``cutoff_s``)."""
    site_snap = snap_to_network(network, sites)
    demand_snap = demand if "edge_id" in demand else demand.join(snap_to_network(network, demand))
    graph = reference_graph(network, {"d": demand_snap, "s": site_snap[site_snap["edge_id"] >= 0]})
    out = {}
    for site_id in site_snap.index[site_snap["edge_id"] >= 0]:
        lengths = nx.single_source_dijkstra_path_length(graph, ("s", site_id), cutoff=cutoff_s, weight="travel_time_s")
        nodes = np.array([lengths.get(n, np.inf) for n in network.nodes.index])
        cells = np.array([lengths.get(("d", d), np.inf) for d in demand.index])
        out[site_id] = {"nodes": nodes, "cells": cells, "snap": site_snap.loc[site_id]}
    return out


def street_points(network, step_m: float = STEP_M):
    """Points every ``step_m`` along every edge: coordinates, and a function giving their times from node times."""
    edges = network.edges
    length = edges["length_m"].to_numpy()
    count = np.maximum(1, np.ceil(length / step_m)).astype(int)
    edge = np.repeat(np.arange(len(edges)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    position = (k + 0.5) * length[edge] / count[edge]
    xy = shapely.get_coordinates(shapely.line_interpolate_point(edges.geometry.to_numpy()[edge], position))
    end_u, end_v = network.edge_ends
    speed = network.walk_speed_mps
    edge_ids = edges.index.to_numpy()[edge]

    def times(node_time: np.ndarray, snap) -> np.ndarray:
        t = np.minimum(node_time[end_u[edge]] + position / speed, node_time[end_v[edge]] + (length[edge] - position) / speed)
        direct = (np.abs(position - snap["position_m"]) + snap["access_m"]) / speed  # along the site's own street
        return np.where(edge_ids == int(snap["edge_id"]), np.minimum(t, direct), t)

    return xy, times


def inside(polygon, xy: np.ndarray) -> np.ndarray:
    return shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])


def circle_of(circles, site_id, threshold_min):
    row = circles[(circles["site_id"] == site_id) & (circles["threshold_min"] == threshold_min)]
    assert len(row) == 1
    return row.geometry.iloc[0]


def nested(inner, outer) -> bool:
    """``inner`` lies in ``outer`` but for slivers under 1 m wide (round ends drawn as polygons differ by ~0.3 m)."""
    return inner.difference(outer).buffer(-0.5).is_empty


def cells_frame(centres: list[tuple[float, float]], people: list[float], *, size_m: float = 100.0) -> gpd.GeoDataFrame:
    """Population cells (squares around local centres) as load_demand gives them."""
    x = np.array([X0 + c[0] for c in centres])
    y = np.array([Y0 + c[1] for c in centres])
    half = size_m / 2
    demand = gpd.GeoDataFrame(
        {"pop_total": np.asarray(people) * 3, "pop_60": people},
        geometry=gpd.points_from_xy(x, y), crs=UTM50, index=np.arange(len(centres)),
    )
    demand.index.name = "demand_id"
    demand["cell"] = gpd.GeoSeries(shapely.box(x - half, y - half, x + half, y + half), index=demand.index, crs=UTM50)
    return demand


# --------------------------------------------------------------------------- small hand-built cases


def test_care_circles_reject_bad_thresholds():
    network = tiny_network([[(0, 0), (100, 0)]])
    sites = points_frame({"s": (50, 0)}, index_name="site_id")
    with pytest.raises(InputError, match="thresholds_min must be positive minutes"):
        care_circles(network, sites, thresholds_min=(0, 15))


def test_a_reach_matrix_needs_its_demand_and_demand_needs_cells():
    network = tiny_network([[(0, 0), (1000, 0)]])
    sites = points_frame({"s": (500, 0)}, index_name="site_id")
    demand = cells_frame([(450, 50)], [10.0])
    reach = travel_times(network, demand, sites, cutoff_s=900)
    with pytest.raises(InputError, match="needs the demand it was computed for"):
        care_circles(network, sites, reach=reach)
    with pytest.raises(InputError, match="'cell' column"):
        care_circles(network, sites, demand=demand.drop(columns="cell"), reach=reach)
    with pytest.raises(InputError, match="cannot answer for 20 min"):
        care_circles(network, sites, demand=demand, reach=reach, thresholds_min=(20,))


def test_site_with_no_street_nearby_gets_no_circle():
    network = tiny_network([[(0, 0), (100, 0)]])
    sites = points_frame({"near": (50, 5), "far": (50, 5000)}, index_name="site_id")
    circles = care_circles(network, sites, thresholds_min=(5,))
    assert circles["site_id"].tolist() == ["near"]
    with_demand = care_circles(network, sites, demand=cells_frame([(50, 50)], [1.0]), thresholds_min=(5,))
    assert with_demand["site_id"].tolist() == ["near"]


def test_network_only_circle_on_a_single_street_stops_where_the_walk_does():
    """A 1 km street, site at its middle: a 5-minute circle is the 600 m walked, widened by 60 m."""
    network = tiny_network([[(0, 0), (1000, 0)]])
    sites = points_frame({"s": (500, 0)}, index_name="site_id")
    circle = care_circles(network, sites, thresholds_min=(5,)).geometry.iloc[0]
    assert circle.area == pytest.approx(600 * 120, rel=1e-6)  # flat ends: the walk ends at 200 m and 800 m
    assert circle.covers(shapely.Point(X0 + 210, Y0 + 50))
    assert not circle.covers(shapely.Point(X0 + 190, Y0))


# A dual road: the street the site stands on (y = 0) and, 35 m south of it, a road that joins
# it only at x = +-1500 (an elevated road, a ramp, the far carriageway). The walk reaches a point
# of the far road at x after 3040 - |x| seconds, long after 15 minutes near the site.
#
#   y = 90    cells (centres)   .    .    .    .    .          covered along the street
#   y = 0   +----+----+----+----S----+----+----+----+----+     the site's street
#   y = -10   cells (centres)   .    .    .    .    .          nearest street: this one -> covered
#   y = -35 +----+----+----+----+----+----+----+----+----+     the far road, inside those cells
#   y = -110  cells (centres)   .    .    .    .    .          nearest street: the far road -> not covered
def dual_road():
    lines = []
    for y in (0, -35):
        lines += [[(x, y), (x + 100, y)] for x in range(-1500, 1500, 100)]
    lines += [[(-1500, 0), (-1500, -35)], [(1500, 0), (1500, -35)]]
    network = tiny_network(lines)
    centres = [(x, y) for y in (90, -10, -110) for x in range(-950, 1000, 100)]
    people = [1.0 + (i % 7) for i in range(len(centres))]
    return network, cells_frame(centres, people), points_frame({"s": (0, 5)}, index_name="site_id")


def test_a_road_reached_only_much_later_is_not_inside():
    network, demand, sites = dual_road()
    truth = networkx_times(network, demand, sites, cutoff_s=4000)["s"]
    xy, times_of = street_points(network, 5.0)
    point_time = times_of(truth["nodes"], truth["snap"])
    far_road = (np.abs(xy[:, 1] - (Y0 - 35)) < 1e-6) & (np.abs(xy[:, 0] - X0) < 1000)
    assert point_time[far_road].min() > 2000  # by hand: 1500 + 35 + 500 + 5 at |x| = 1000
    reach = travel_times(network, demand, sites, cutoff_s=900)
    with_demand = care_circles(network, sites, demand=demand, reach=reach)
    network_only = care_circles(network, sites)
    for threshold in THRESHOLDS_MIN:
        for circles in (with_demand, network_only):
            circle = circle_of(circles, "s", threshold)
            assert not inside(circle, xy[far_road]).any()  # the old 60 m street buffer took it all in
            reached = point_time <= threshold * 60
            assert inside(circle, xy[reached]).all()
        # the people inside are exactly the truly covered ones
        circle = circle_of(with_demand, "s", threshold)
        centres = shapely.get_coordinates(demand.geometry.to_numpy())
        covered = truth["cells"] <= threshold * 60 + 1e-9
        assert covered.any() and not covered.all()
        assert (inside(circle, centres) == covered).all()
        assert demand["pop_60"][inside(circle, centres)].sum() == pytest.approx(
            catchments(demand, reach, threshold_min=threshold).loc["s", "pop_60"]
        )
    # the covered cells south of the street reach past the far road, which is cut out of them
    circle = circle_of(with_demand, "s", 15)
    assert circle.covers(shapely.Point(X0 + 250, Y0 - 55))  # in a covered cell, beyond the far road's strip
    assert not circle.covers(shapely.Point(X0 + 250, Y0 - 35 + DEFAULT_STREET_BUFFER_M - 1))


def test_circles_with_demand_nest():
    network, demand, sites = dual_road()
    circles = care_circles(network, sites, demand=demand)
    small, middle, large = (circle_of(circles, "s", t) for t in THRESHOLDS_MIN)
    assert nested(small, middle) and nested(middle, large)
    assert 0 < small.area < middle.area < large.area


def test_a_reached_street_passing_an_uncovered_home_leaves_the_home_out():
    """An elevated road 12 m beside the site's street (in plan), joined to it 3 km away: homes next to it walk to it."""
    lines = []
    for y in (0, 12):
        lines += [[(x, y), (x + 100, y)] for x in range(-3000, 3000, 100)]
    lines += [[(-3000, 0), (-3000, 12)], [(3000, 0), (3000, 12)]]
    network = tiny_network(lines)
    sites = points_frame({"s": (500, -5)}, index_name="site_id")
    demand = cells_frame([(500, -30), (300, 8)], [4.0, 5.0])  # (300, 8): 4 m from the elevated road, 8 m from the street
    reach = travel_times(network, demand, sites, cutoff_s=900)
    assert reach.covered(300).tolist() == [True, False]
    circle = care_circles(network, sites, demand=demand, reach=reach, thresholds_min=(5,)).geometry.iloc[0]
    assert circle.covers(shapely.Point(X0 + 500, Y0 - 30))
    assert not circle.covers(shapely.Point(X0 + 300, Y0 + 8))
    assert circle.covers(shapely.Point(X0 + 300 - POINT_MARGIN_M - 1, Y0))  # the reached street beside it stays


def test_fill_small_holes():
    ring = shapely.box(0, 0, 1000, 1000).difference(shapely.box(100, 100, 200, 200)).difference(shapely.box(300, 300, 800, 800))
    filled = fill_small_holes(ring, 60_000)
    assert len(filled.interiors) == 1  # the 10,000 m² block is filled, the 250,000 m² lake is kept
    assert filled.area == pytest.approx(1_000_000 - 250_000)


# ---------------------------------------------------------------------------
# A river: two street grids 150 m apart, joined by one bridge 350 m along from the site.
#
#   bank B   y=150 ....+----+----+----+----+....   with side streets north every 200 m
#                                     | bridge x=400
#   bank A   y=0   ....+----+----+----+----+....   with side streets south every 200 m
#                          site (50,-10)
# ---------------------------------------------------------------------------
def river_network():
    lines = []
    for y in (0, 150):
        lines += [[(x, y), (x + 100, y)] for x in range(-1000, 1000, 100)]
    for x in range(-1000, 1001, 200):
        lines += [[(x, y), (x, y - 100)] for y in range(0, -300, -100)]  # bank A, south
        lines += [[(x, y), (x, y + 100)] for y in range(150, 550, 100)]  # bank B, north
    lines.append([(400, 0), (400, 150)])  # the only bridge
    return tiny_network(lines)


def test_river_circle_does_not_jump_the_river_but_a_hull_would():
    network = river_network()
    assert network.nodes["component"].max() == 0  # one piece: the bridge joins the banks
    sites = points_frame({"s": (50, -10)}, index_name="site_id")
    circle = care_circles(network, sites, thresholds_min=(15,)).geometry.iloc[0]
    demand = cells_frame([(50, 40)], [1.0])  # a cell reaching into the river; its people walk to bank A
    truth = networkx_times(network, demand, sites, cutoff_s=2000)["s"]
    times = dict(zip(network.nodes.index, truth["nodes"]))

    # by hand: the bridge's far end after 10 + 350 + 150 = 510 s, then 390 s more on bank B
    assert times[node_at(network, 400, 150)] == pytest.approx(510)
    opposite = [node_at(network, x, 150) for x in (-200, -100, 0)]  # bank B, right across from the site
    assert [times[n] for n in opposite] == pytest.approx([1110, 1010, 910])  # beyond 15 minutes
    reached = [n for n, t in times.items() if t <= 900]
    assert node_at(network, 100, 150) in reached and node_at(network, 400, 450) in reached

    hull = shapely.MultiPoint(network.nodes.loc[reached, ["x", "y"]].to_numpy()).convex_hull
    bank_b_opposite = shapely.LineString([(X0 - 200, Y0 + 150), (X0, Y0 + 150)])
    # the hull paints over the river and takes in the unreached streets across it ...
    assert hull.covers(bank_b_opposite)
    # ... the care circle does not, with or without the demand
    with_demand = care_circles(network, sites, demand=demand, thresholds_min=(15,)).geometry.iloc[0]
    for polygon in (circle, with_demand):
        assert not polygon.intersects(bank_b_opposite)
        assert not polygon.covers(shapely.Point(X0, Y0 + 105))  # the river itself, 45 m off bank B
        # yet it covers every street point the walk reaches, on both banks
        xy, times_of = street_points(network, 5.0)
        assert inside(polygon, xy[times_of(truth["nodes"], truth["snap"]) <= 900]).all()
    assert with_demand.covers(shapely.Point(X0 + 50, Y0 + 40))  # the river cell's people are covered


# --------------------------------------------------------------------------- Wuchang


@pytest.fixture(scope="module")
def wuchang_circles(wuchang):
    """The care circles of every Wuchang candidate site from the coverage walking times, and those times."""
    reach = wuchang.reach(wuchang.candidates)
    circles = care_circles(
        wuchang.network, wuchang.candidates, demand=wuchang.demand, reach=reach,
        thresholds_min=THRESHOLDS_MIN, max_access_m=wuchang.config.analysis.max_access_m,
    )
    return reach, circles


def test_every_candidate_gets_nested_circles(wuchang, wuchang_circles):
    _, circles = wuchang_circles
    assert len(circles) == len(wuchang.candidates) * len(THRESHOLDS_MIN)
    assert set(circles["site_id"]) == set(wuchang.candidates.index)
    assert circles.crs == wuchang.crs
    assert list(circles["threshold_min"].iloc[:3]) == [15, 10, 5]  # largest first, smaller draw on top
    areas = circles.pivot(index="site_id", columns="threshold_min", values="area_km2")
    assert (areas[5] > 0).all()
    # a 900 m walk along streets and the homes that walk to them: well under the 2.5 km² of a 900 m disc
    assert 0.3 < areas[15].median() < 2.5
    by_site = circles.set_index(["site_id", "threshold_min"]).geometry
    for site_id in wuchang.candidates.index:
        small, middle, large = (by_site[(site_id, t)] for t in THRESHOLDS_MIN)
        assert nested(small, middle) and nested(middle, large), site_id


def test_people_inside_a_circle_are_the_people_counted_as_covered(wuchang, wuchang_circles):
    reach, circles = wuchang_circles
    demand = wuchang.demand.loc[reach.demand_ids]
    centres = shapely.get_coordinates(demand.geometry.to_numpy())
    for threshold in THRESHOLDS_MIN:
        counted = catchments(demand, reach, threshold_min=threshold)["pop_60"]
        for site_id in wuchang.candidates.index:
            inside_circle = inside(circle_of(circles, site_id, threshold), centres)
            covered = reach.covered(threshold * 60, sites=[site_id])
            assert (inside_circle == covered).all(), (site_id, threshold)
            assert demand["pop_60"].to_numpy()[inside_circle].sum() == pytest.approx(counted[site_id], rel=1e-9)


def test_circles_agree_with_networkx_on_wuchang_sites(wuchang, wuchang_circles):
    """On a seeded handful of sites: cells, reached streets and streets reached only later, judged by networkx."""
    _, circles = wuchang_circles
    network = wuchang.network
    rng = np.random.default_rng(7)
    sites = wuchang.candidates.iloc[np.sort(rng.choice(len(wuchang.candidates), size=3, replace=False))]
    centres_all = shapely.get_coordinates(wuchang.demand.geometry.to_numpy())
    site_xy = shapely.get_coordinates(sites.geometry.to_numpy())
    near = cKDTree(site_xy).query(centres_all, distance_upper_bound=2000)[0] < np.inf  # beyond 2 km no walk reaches
    demand = wuchang.demand[near]
    centres = centres_all[near]
    truth = networkx_times(network, demand, sites, cutoff_s=900 + 600)
    xy, times_of = street_points(network)
    homes = cKDTree(centres)
    for site_id, site in truth.items():
        point_time = times_of(site["nodes"], site["snap"])
        for threshold in (5, 15):
            circle = circle_of(circles, site_id, threshold)
            shapely.prepare(circle)
            covered = site["cells"] <= threshold * 60 + 1e-9
            assert (inside(circle, centres) == covered).all(), (site_id, threshold)

            reached = point_time <= threshold * 60
            missing = reached & ~inside(circle, xy)
            # a reached street point is left out only beside the centre of an uncovered cell
            d, i = homes.query(xy[missing])
            assert (d <= POINT_MARGIN_M + 0.01).all() and not covered[i].any(), (site_id, threshold)
            assert missing.sum() <= 0.01 * reached.sum()

            late = point_time > threshold * 60 + LATE_S
            painted = late & inside(circle, xy)
            # painted only where a reached street runs within its strip, or around a covered centre
            beside_reached = cKDTree(xy[reached]).query(xy[painted])[0] <= DEFAULT_STREET_BUFFER_M + STEP_M
            d, i = homes.query(xy[painted])
            around_covered = (d <= POINT_MARGIN_M + 0.01) & covered[i]
            assert (beside_reached | around_covered).all(), (site_id, threshold)
            if threshold == 15:  # (at 5 min a few crossings weigh too much in a share)
                nearby_late = late & (cKDTree(xy[reached]).query(xy, distance_upper_bound=200)[0] < np.inf)
                assert painted.sum() <= 0.10 * nearby_late.sum(), site_id
