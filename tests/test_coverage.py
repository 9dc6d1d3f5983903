"""Tests for geoplan.coverage on a hand-built street network whose answers are counted by hand.

Streets (local metres, walked at 1 m/s, so seconds = metres)::

                (400,700)
                   |  L5
    (0,0) --L1-- (400,0) --L2-- (800,0) --L3-- (1200,0) ------L4------ (2000,0)

Sites: S1 at (100, 30) joins L1 at 100 m with a 30 m walk, so it reaches node
(400,0) after 330 s. S2 at (1700, -20) joins L4 at 500 m with a 20 m walk: node
(1200,0) after 520 s, node (2000,0) after 320 s.

Demand points, with where they join a street and the walks counted by hand
(both sites' times, when within the 900 s cutoff):

======  ===========  =====================  ===============================  ==========
point   at           joins                  quickest walk                    minutes
======  ===========  =====================  ===============================  ==========
p1      (150, 10)    L1 at 150, 10 m off    S1: 50 + 10 + 30 = 90            5
p2      (415, 240)   L5 at 240, 15 m off    S1: 330 + 240 + 15 = 585         10
p3      (700, -40)   L2 at 300, 40 m off    S1: 330 + 300 + 40 = 670         15
p4      (1000, 30)   L3 at 200, 30 m off    S2: 520 + 200 + 30 = 750         15
                                            (S1: 330 + 400 + 230 = 960)
p5      (1500, 50)   L4 at 300, 50 m off    S2: 200 + 50 + 20 = 270          5
p6      (1900, 10)   L4 at 700, 10 m off    S2: 200 + 10 + 20 = 230          5
p7      (410, 690)   L5 at 690, 10 m off    S1: 330 + 690 + 10 = 1030        none
p8      (3000, 3000) no street within 500   -                                not on foot
p9      (1250, 300)  L4 at 50, 300 m off    S2: 450 + 300 + 20 = 770         15
p10     (900, 20)    L3 at 100, 20 m off    S2: 520 + 300 + 20 = 840         15
                                            S1: 330 + 400 + 120 = 850        (both)
======  ===========  =====================  ===============================  ==========
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geoplan.coverage import assigned_catchments, by_unit, catchments, coverage_summary, gaps, nearest_time_s
from geoplan.errors import InputError
from geoplan.reach import Router
from geoplan.snapping import snap_to_network
from tests.conftest import X0, Y0, points_frame, tiny_network

STREETS = [
    [(0, 0), (400, 0)],  # L1
    [(400, 0), (800, 0)],  # L2
    [(800, 0), (1200, 0)],  # L3
    [(1200, 0), (2000, 0)],  # L4
    [(400, 0), (400, 700)],  # L5
]
SITES = {"S1": (100, 30), "S2": (1700, -20)}
POINTS = {
    "p1": (150, 10), "p2": (415, 240), "p3": (700, -40), "p4": (1000, 30), "p5": (1500, 50),
    "p6": (1900, 10), "p7": (410, 690), "p8": (3000, 3000), "p9": (1250, 300), "p10": (900, 20),
}
POP_60 = {"p1": 10, "p2": 20, "p3": 30, "p4": 40, "p5": 50, "p6": 60, "p7": 70, "p8": 80, "p9": 90, "p10": 100}
POP_80 = {"p1": 2, "p2": 5, "p3": 4, "p4": 8, "p5": 10, "p6": 1, "p7": 7, "p8": 3, "p9": 9, "p10": 6}
UNIT = {"p1": 1, "p2": 1, "p3": 1, "p4": 2, "p5": 2, "p6": 2, "p10": 2, "p8": 3, "p7": -1, "p9": -1}

# walk from each site, counted by hand (only those within 900 s)
TIMES = {
    ("p1", "S1"): 90, ("p2", "S1"): 585, ("p3", "S1"): 670, ("p10", "S1"): 850,
    ("p4", "S2"): 750, ("p5", "S2"): 270, ("p6", "S2"): 230, ("p9", "S2"): 770, ("p10", "S2"): 840,
}
WITHIN = {  # who is within 5, 10 and 15 minutes of any site
    5: {"p1", "p5", "p6"},
    10: {"p1", "p5", "p6", "p2"},
    15: {"p1", "p5", "p6", "p2", "p3", "p4", "p9", "p10"},
}


@pytest.fixture(scope="module")
def network():
    return tiny_network(STREETS)


@pytest.fixture(scope="module")
def demand(network) -> gpd.GeoDataFrame:
    frame = points_frame(
        POINTS,
        index_name="demand_id",
        pop_60=[float(POP_60[p]) for p in POINTS],
        pop_80=[float(POP_80[p]) for p in POINTS],
        unit_id=[UNIT[p] for p in POINTS],
    )
    return frame.join(snap_to_network(network, frame, max_access_m=500))


@pytest.fixture(scope="module")
def sites() -> gpd.GeoDataFrame:
    return points_frame(SITES, index_name="site_id", name=["one", "two"])


@pytest.fixture(scope="module")
def reach(network, demand, sites):
    return Router(network, demand, max_access_m=500).travel_times(sites, cutoff_s=900)


@pytest.fixture(scope="module")
def communities() -> gpd.GeoDataFrame:
    boxes = {
        1: (-100, -500, 800, 500),
        2: (800, -500, 2100, 250),
        3: (2500, 2500, 3500, 3500),
        4: (5000, 5000, 5100, 5100),  # a unit where nobody lives
    }
    frame = gpd.GeoDataFrame(
        geometry=[shapely.box(X0 + a, Y0 + b, X0 + c, Y0 + d) for a, b, c, d in boxes.values()],
        index=pd.Index(list(boxes), name="unit_id"),
        crs="EPSG:32650",
    )
    return frame


def people(ids, group="pop_60") -> float:
    table = POP_60 if group == "pop_60" else POP_80
    return float(sum(table[i] for i in ids))


def test_the_hand_network_is_what_the_docstring_draws(network, demand):
    assert len(network.edges) == 5 and len(network.nodes) == 6
    assert network.edges["length_m"].sum() == pytest.approx(2700)
    assert demand.loc["p8", "edge_id"] == -1
    assert demand.loc["p9", "access_m"] == pytest.approx(300)


def test_reach_matches_the_hand_count(reach):
    frame = reach.to_frame()
    got = {(d, s): t for d, s, t in frame.itertuples(index=False)}
    assert got.keys() == TIMES.keys()
    for pair, seconds in TIMES.items():
        assert got[pair] == pytest.approx(seconds, abs=1e-9), pair


def test_coverage_summary(demand, reach):
    summary = coverage_summary(demand, reach, thresholds_min=(5, 10, 15))
    assert list(summary.index) == [(g, t) for g in ("pop_60", "pop_80") for t in (5, 10, 15)]
    for group in ("pop_60", "pop_80"):
        total = people(POINTS, group)
        for minutes, ids in WITHIN.items():
            row = summary.loc[(group, minutes)]
            assert row["population"] == total
            assert row["covered"] == pytest.approx(people(ids, group))
            assert row["not_covered"] == pytest.approx(total - people(ids, group))
            assert row["covered_pct"] == pytest.approx(100 * people(ids, group) / total)
            assert row["not_reachable_on_foot"] == people(["p8"], group)
    # the same figures written out by hand
    assert summary.loc[("pop_60", 5), "covered"] == 120
    assert summary.loc[("pop_60", 10), "covered"] == 140
    assert summary.loc[("pop_60", 15), "covered"] == 400
    assert summary.loc[("pop_60", 15), "not_covered"] == 150
    assert summary.loc[("pop_80", 5), "covered"] == 13
    assert summary.loc[("pop_80", 15), "covered"] == 45


def test_nearest_time(demand, reach):
    nearest = nearest_time_s(reach, demand)
    expected = {p: min((t for (d, _), t in TIMES.items() if d == p), default=np.inf) for p in POINTS}
    assert nearest.to_dict() == pytest.approx(expected)
    assert nearest["p10"] == pytest.approx(840)  # S2, not S1's 850


@pytest.mark.parametrize(
    ("minutes", "s1", "s2"),
    [
        (5, {"p1"}, {"p5", "p6"}),
        (10, {"p1", "p2"}, {"p5", "p6"}),
        (15, {"p1", "p2", "p3", "p10"}, {"p4", "p5", "p6", "p9", "p10"}),  # p10 counts for both
    ],
)
def test_catchments_overlap(demand, reach, minutes, s1, s2):
    table = catchments(demand, reach, threshold_min=minutes)
    assert list(table.index) == ["S1", "S2"] and list(table.columns) == ["pop_60", "pop_80"]
    assert table.loc["S1"].to_dict() == {"pop_60": people(s1), "pop_80": people(s1, "pop_80")}
    assert table.loc["S2"].to_dict() == {"pop_60": people(s2), "pop_80": people(s2, "pop_80")}


def test_assigned_catchments_count_everyone_once(demand, reach):
    table = assigned_catchments(demand, reach, threshold_min=15)
    s1, s2 = {"p1", "p2", "p3"}, {"p4", "p5", "p6", "p9", "p10"}  # p10 goes to S2 (840 s < 850 s)
    assert table.loc["S1"].to_dict() == {"pop_60": people(s1), "pop_80": people(s1, "pop_80")}
    assert table.loc["S2"].to_dict() == {"pop_60": people(s2), "pop_80": people(s2, "pop_80")}
    assert table["pop_60"].sum() == people(WITHIN[15])
    five = assigned_catchments(demand, reach, threshold_min=5)
    assert five.loc["S1", "pop_60"] == 10 and five.loc["S2", "pop_60"] == 110


def test_assigned_catchments_keep_a_site_that_serves_nobody(demand, network):
    sites = points_frame({"S1": (100, 30), "lonely": (400, 400)}, index_name="site_id")
    reach = Router(network, demand).travel_times(sites, cutoff_s=300)
    table = assigned_catchments(demand, reach, threshold_min=2)  # p2 is 175 s from "lonely"
    assert list(table.index) == ["S1", "lonely"]
    assert table.loc["lonely"].tolist() == [0.0, 0.0]
    assert table.loc["S1", "pop_60"] == 10  # p1, 90 s


def test_by_unit(demand, reach, sites, communities):
    table = by_unit(demand, reach, threshold_min=15, sites=sites, communities=communities)
    assert sorted(table.index) == [-1, 1, 2, 3, 4]
    members = {u: [p for p in POINTS if UNIT[p] == u] for u in (-1, 1, 2, 3, 4)}
    for unit, ids in members.items():
        covered = [p for p in ids if p in WITHIN[15]]
        assert table.loc[unit, "pop_60"] == people(ids), unit
        assert table.loc[unit, "pop_60_covered"] == people(covered), unit
        assert table.loc[unit, "pop_80_covered"] == people(covered, "pop_80"), unit
    assert table.loc[1, "pop_60_covered_pct"] == pytest.approx(100.0)
    assert table.loc[3, "pop_60_covered_pct"] == pytest.approx(0.0)
    assert table.loc[-1, "pop_60_covered_pct"] == pytest.approx(100 * 90 / 160)
    assert np.isnan(table.loc[4, "pop_60_covered_pct"])  # nobody lives there: no percentage
    assert table["sites_inside"].to_dict() == {-1: 0, 1: 1, 2: 1, 3: 0, 4: 0}
    five = by_unit(demand, reach, threshold_min=5)
    assert five["pop_60_covered"].to_dict() == {-1: 0.0, 1: 10.0, 2: 110.0, 3: 0.0}


def test_gaps(demand, reach):
    result = gaps(demand, reach, threshold_min=15, group="pop_60")
    assert list(result.index) == ["p8", "p7"]  # most older people first
    assert result["pop_60"].tolist() == [80, 70]
    assert result["on_foot"].tolist() == [False, True]
    assert np.isinf(result["nearest_time_min"]).all()  # both beyond the 900 s cutoff
    assert result["unit_id"].tolist() == [3, -1]
    assert result.crs == demand.crs

    ten = gaps(demand, reach, threshold_min=10, group="pop_80")
    assert set(ten.index) == set(POINTS) - WITHIN[10]
    assert ten.loc["p3", "nearest_time_min"] == pytest.approx(670 / 60)
    assert ten.loc["p10", "nearest_time_min"] == pytest.approx(840 / 60)
    assert ten["pop_80"].is_monotonic_decreasing
    assert people(ten.index, "pop_80") == people(POINTS, "pop_80") - people(WITHIN[10], "pop_80")


def test_raw_points_still_report_who_cannot_walk(network, demand, sites):
    """Raw points (no snap columns) through travel_times used to give not_reachable_on_foot = 0."""
    from geoplan.reach import travel_times

    raw = demand[["pop_60", "pop_80", "geometry"]]
    reach = travel_times(network, raw, sites, cutoff_s=900, max_access_m=500)
    assert list(reach.off_network) == ["p8"]
    summary = coverage_summary(raw, reach, thresholds_min=(15,))
    assert summary.loc[("pop_60", 15), "not_reachable_on_foot"] == 80
    assert summary.loc[("pop_80", 15), "not_reachable_on_foot"] == 3
    assert not gaps(raw, reach, threshold_min=15).loc["p8", "on_foot"]


@pytest.mark.parametrize(
    "ask",
    [
        lambda demand, reach: coverage_summary(demand, reach, thresholds_min=(5, 20)),
        lambda demand, reach: by_unit(demand, reach, threshold_min=16),
        lambda demand, reach: gaps(demand, reach, threshold_min=30),
        lambda demand, reach: catchments(demand, reach, threshold_min=20),
        lambda demand, reach: assigned_catchments(demand, reach, threshold_min=20),
    ],
)
def test_a_threshold_beyond_the_cutoff_is_refused(demand, reach, ask):
    """The reach holds walks up to 15 min; a longer threshold used to count only what lay within 15 min."""
    with pytest.raises(InputError, match=r"holds walks up to 15 min \(900 s\); it cannot answer for"):
        ask(demand, reach)
