"""Benchmark: do care circles say who is covered? Wuchang's candidate sites against a networkx ground truth.

Run from the repository root::

    python bench/isochrones.py                     # all 124 candidate sites, 5/10/15 min, goals at 15 min
    python bench/isochrones.py --sites 40 --seed 7 # a seeded subset of the candidates
    python bench/isochrones.py --before-ref none   # skip the circles of the earlier version

Ground truth, independent of geoplan's numba engine: for every site, a plain
networkx Dijkstra (``single_source_dijkstra_path_length``) on
:func:`geoplan.reach.reference_graph`, the network with every demand point
(100 m cell centre) and site inserted as nodes hanging off their street by the
straight walk to it. A cell is truly covered by a site at ``t`` minutes when
its time is at most ``t * 60 + 1e-9`` s. Street points every
``--street-step-m`` metres along every edge get their true time from the
networkx times of the edge's two ends (and, on the site's own street, the
walk along it).

Each circle is judged on the 60+ (``pop_60``), summed over the sites:

* ``people_missed_pct``: truly covered but outside the circle / truly covered;
* ``people_overclaimed_pct``: inside the circle but not truly covered / truly covered;
* ``street_recall``: share of the truly reached street points inside the circle;
* ``later_street_points_inside_pct`` (no goal): of the street points within
  200 m of a reached one that the walk reaches only more than a minute late
  (or not within ``t + 10`` min), the share inside the circle.

A cell counts as inside when its population point (the cell centre: the demand
point that coverage snaps to the street) lies in the polygon; the figures by
the centroid of the reprojected cell square, and by the share of the cell's
area inside (people spread evenly over the cell), are given beside.

Three kinds of circle are judged: ``demand`` (``care_circles(..., demand=,
reach=)``, what ``geoplan coverage`` and the API draw), ``network_only``
(``care_circles(network, sites)``) and ``before`` (the module at
``--before-ref``, the version before circles were built from the demand).
Writes ``bench/results/isochrones.json``; exits 0 whether or not goals pass.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np
import shapely
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, goal, machine, measure, write_result  # noqa: E402

GROUP = "pop_60"
TOLERANCE_S = 1e-9
NEAR_REACHED_M = 200.0
LATE_S = 60.0
EXTRA_CUTOFF_S = 600.0
GOALS = {"people_missed_pct": 2.0, "people_overclaimed_pct": 2.0, "street_recall": 0.98}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=0, help="judge a seeded subset of this many candidate sites (0: all)")
    parser.add_argument("--seed", type=int, default=20240601, help="RNG seed of the subset")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[5, 10, 15], help="minutes; the goals are judged at the largest")
    parser.add_argument("--street-step-m", type=float, default=10.0, help="spacing of the street points")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of care_circles for all candidates (median)")
    parser.add_argument("--before-ref", default="91577e9", help="git ref of the earlier isochrones module ('none' to skip)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- ground truth


def true_times(graph: nx.Graph, site_id, cutoff_s: float) -> dict:
    return nx.single_source_dijkstra_path_length(graph, ("s", site_id), cutoff=cutoff_s, weight="travel_time_s")


class StreetPoints:
    """Points every ``step_m`` metres along every edge (segment midpoints), with their edge and position."""

    def __init__(self, network, step_m: float):
        edges = network.edges
        length = edges["length_m"].to_numpy()
        count = np.maximum(1, np.ceil(length / step_m)).astype(np.int64)
        self.edge = np.repeat(np.arange(len(edges)), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        self.position_m = (k + 0.5) * length[self.edge] / count[self.edge]
        xy = shapely.get_coordinates(shapely.line_interpolate_point(edges.geometry.to_numpy()[self.edge], self.position_m))
        self.x, self.y = xy[:, 0], xy[:, 1]
        self.length_m = length[self.edge]
        end_u, end_v = network.edge_ends
        self.u, self.v = end_u[self.edge], end_v[self.edge]
        self.speed = network.walk_speed_mps
        self.edge_ids = edges.index.to_numpy()

    def times(self, node_time: np.ndarray, site_snap, rows: np.ndarray) -> np.ndarray:
        """True walking time to the points at ``rows``: via either end of their edge, or along the site's own edge."""
        along = self.position_m[rows] / self.speed
        t = np.minimum(node_time[self.u[rows]] + along, node_time[self.v[rows]] + self.length_m[rows] / self.speed - along)
        own = self.edge_ids[self.edge[rows]] == int(site_snap["edge_id"])
        direct = np.abs(self.position_m[rows] - site_snap["position_m"]) / self.speed + site_snap["access_m"] / self.speed
        return np.where(own, np.minimum(t, direct), t)


# --------------------------------------------------------------------------- judging


def judge(circles, truth: dict, demand, points: StreetPoints, thresholds) -> dict:
    """The figures of one kind of circle, per threshold, summed over the sites."""
    people = demand[GROUP].to_numpy(dtype=float)
    pop_xy = shapely.get_coordinates(demand.geometry.to_numpy())
    cells = demand["cell"].to_numpy()
    centroid_xy = shapely.get_coordinates(shapely.centroid(cells))
    cell_area = shapely.area(cells)
    by_threshold = {}
    for threshold in thresholds:
        sums = dict.fromkeys(
            ["covered", "missed", "overclaimed", "missed_centroid", "overclaimed_centroid", "missed_area", "overclaimed_area",
             "reached_points", "reached_inside", "late_points", "late_inside", "unreached_points", "unreached_inside"], 0.0)
        worst = []
        for site_id, site in truth.items():
            match = circles[(circles["site_id"] == site_id) & np.isclose(circles["threshold_min"].astype(float), threshold)]
            polygon = match.geometry.iloc[0] if len(match) else shapely.Polygon()
            shapely.prepare(polygon)
            covered = site["cell_time"] <= threshold * 60 + TOLERANCE_S
            inside = shapely.contains_xy(polygon, pop_xy[:, 0], pop_xy[:, 1])
            inside_centroid = shapely.contains_xy(polygon, centroid_xy[:, 0], centroid_xy[:, 1])
            near = np.flatnonzero(site["near_cells"])
            share = np.zeros(len(people))
            share[near] = shapely.area(shapely.intersection(cells[near], polygon)) / cell_area[near]
            sums["covered"] += people[covered].sum()
            sums["missed"] += people[covered & ~inside].sum()
            sums["overclaimed"] += people[~covered & inside].sum()
            sums["missed_centroid"] += people[covered & ~inside_centroid].sum()
            sums["overclaimed_centroid"] += people[~covered & inside_centroid].sum()
            sums["missed_area"] += (people * (1 - share))[covered].sum()
            sums["overclaimed_area"] += (people * share)[~covered].sum()

            rows, t = site["street_rows"], site["street_time"]
            reached = t <= threshold * 60 + TOLERANCE_S
            in_circle = shapely.contains_xy(polygon, points.x[rows], points.y[rows])
            if reached.any():
                tree = cKDTree(np.column_stack([points.x[rows][reached], points.y[rows][reached]]))
                d, _ = tree.query(np.column_stack([points.x[rows], points.y[rows]]), distance_upper_bound=NEAR_REACHED_M)
                nearby = np.isfinite(d)
            else:
                nearby = np.zeros(len(rows), dtype=bool)
            late = nearby & (t > threshold * 60 + LATE_S)
            unreached = nearby & ~reached
            sums["reached_points"] += reached.sum()
            sums["reached_inside"] += (reached & in_circle).sum()
            sums["late_points"] += late.sum()
            sums["late_inside"] += (late & in_circle).sum()
            sums["unreached_points"] += unreached.sum()
            sums["unreached_inside"] += (unreached & in_circle).sum()
            worst.append((float((late & in_circle).sum() / max(1, late.sum())), str(site_id)))
        covered_total = max(sums["covered"], 1e-12)
        by_threshold[f"{threshold:g}"] = {
            "people_covered_60": round(sums["covered"], 1),
            "people_missed_pct": 100 * sums["missed"] / covered_total,
            "people_overclaimed_pct": 100 * sums["overclaimed"] / covered_total,
            "by_cell_centroid": {
                "people_missed_pct": 100 * sums["missed_centroid"] / covered_total,
                "people_overclaimed_pct": 100 * sums["overclaimed_centroid"] / covered_total,
            },
            "by_cell_area_share": {
                "people_missed_pct": 100 * sums["missed_area"] / covered_total,
                "people_overclaimed_pct": 100 * sums["overclaimed_area"] / covered_total,
            },
            "street_recall": sums["reached_inside"] / max(1, sums["reached_points"]),
            "reached_street_points": int(sums["reached_points"]),
            "later_street_points_inside_pct": 100 * sums["late_inside"] / max(1, sums["late_points"]),
            "unreached_street_points_inside_pct": 100 * sums["unreached_inside"] / max(1, sums["unreached_points"]),
            "nearby_later_street_points": int(sums["late_points"]),
            "worst_sites_later_inside_pct": [{"site_id": s, "pct": round(100 * v, 2)} for v, s in sorted(worst, reverse=True)[:3]],
        }
    return by_threshold


def earlier_module(ref: str):
    """The isochrones module as it was at git ``ref`` (None when it cannot be had)."""
    try:
        source = subprocess.run(["git", "show", f"{ref}:geoplan/isochrones.py"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "isochrones_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("isochrones_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    args = parse_args(argv)
    record = machine("shapely", "networkx", "numba")
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)

    import geoplan
    from geoplan.isochrones import care_circles
    from geoplan.reach import reference_graph
    from geoplan.snapping import snap_to_network

    region = geoplan.load_region("wuchang")
    network, demand, candidates = region.network, region.demand, region.candidates
    thresholds = tuple(sorted(args.thresholds))
    top = max(thresholds)
    max_access_m = region.config.analysis.max_access_m
    if args.sites and args.sites < len(candidates):
        rng = np.random.default_rng(args.seed)
        judged = candidates.iloc[np.sort(rng.choice(len(candidates), size=args.sites, replace=False))]
        site_set = f"{args.sites} of {len(candidates)} candidate sites, seeded (numpy default_rng({args.seed}).choice without replacement)"
    else:
        judged = candidates
        site_set = f"all {len(candidates)} candidate sites"

    # ground truth ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    site_snap = snap_to_network(network, judged, max_access_m=max_access_m)
    site_snap = site_snap[site_snap["edge_id"] >= 0]
    graph = reference_graph(network, {"d": demand, "s": site_snap})
    points = StreetPoints(network, args.street_step_m)
    node_position = {node: i for i, node in enumerate(network.nodes.index)}
    demand_position = {d: i for i, d in enumerate(demand.index)}
    truth = {}
    radius = top * 60 * network.walk_speed_mps + NEAR_REACHED_M + 50
    cell_xy = shapely.get_coordinates(demand.geometry.to_numpy())
    for site_id, snap in site_snap.iterrows():
        lengths = true_times(graph, site_id, top * 60 + EXTRA_CUTOFF_S)
        node_time = np.full(len(node_position), np.inf)
        cell_time = np.full(len(demand), np.inf)
        for node, t in lengths.items():
            if type(node) is tuple:
                if len(node) == 2 and node[0] == "d":
                    cell_time[demand_position[node[1]]] = t
            else:
                node_time[node_position[node]] = t
        sx, sy = snap["snap_x"], snap["snap_y"]
        rows = np.flatnonzero(np.hypot(points.x - sx, points.y - sy) <= radius)
        truth[site_id] = {
            "cell_time": cell_time,
            "near_cells": np.hypot(cell_xy[:, 0] - sx, cell_xy[:, 1] - sy) <= radius + max_access_m + 100,
            "street_rows": rows,
            "street_time": points.times(node_time, snap, rows),
        }
    truth_s = time.perf_counter() - t0

    # circles --------------------------------------------------------------------------------
    reach = region.reach(candidates, cutoff_min=top)
    engine_pairs = reach.to_frame()
    engine = engine_pairs[engine_pairs["site_id"].isin(list(truth))]
    disagree = 0
    demand_ids = demand.index.to_numpy()
    for site_id, site in truth.items():
        truly = set(demand_ids[site["cell_time"] <= top * 60 + TOLERANCE_S])
        fast = set(engine.loc[(engine["site_id"] == site_id) & (engine["time_s"] <= top * 60 + TOLERANCE_S), "demand_id"])
        disagree += len(truly ^ fast)

    kinds = {
        "demand": lambda: care_circles(network, candidates, demand=demand, reach=reach, thresholds_min=thresholds, max_access_m=max_access_m),
        "network_only": lambda: care_circles(network, candidates, thresholds_min=thresholds, max_access_m=max_access_m),
    }
    before = None if args.before_ref.lower() == "none" else earlier_module(args.before_ref)
    if before is not None:
        kinds["before"] = lambda: before.care_circles(network, candidates, thresholds_min=thresholds, max_access_m=max_access_m)
    kinds["demand_with_reach_computed"] = lambda: care_circles(
        network, candidates, demand=demand, thresholds_min=thresholds, max_access_m=max_access_m
    )

    results, timings = {}, {}
    for name, build in kinds.items():
        timing = measure(build, args.repeat, warmup=1)
        timings[name] = timing.as_dict()
        if name != "demand_with_reach_computed":
            results[name] = judge(timing.result, truth, demand, points, thresholds)
    reach_timing = measure(lambda: region.reach(candidates, cutoff_min=top), args.repeat, warmup=1)

    headline = {k: float(v) for k, v in results["demand"][f"{top:g}"].items() if k in GOALS}
    payload = {
        "benchmark": "care circles vs a networkx ground truth: are the people inside a circle the people counted as covered?",
        "command": "python bench/isochrones.py" + (f" --sites {args.sites} --seed {args.seed}" if args.sites else ""),
        "goals": [
            goal("people_missed_pct", headline["people_missed_pct"], GOALS["people_missed_pct"], op="<",
                 note=f"{GROUP}, {top:g} min, summed over {site_set}; a cell is inside when its population point is"),
            goal("people_overclaimed_pct", headline["people_overclaimed_pct"], GOALS["people_overclaimed_pct"], op="<",
                 note=f"{GROUP}, {top:g} min, as above"),
            goal("street_recall", headline["street_recall"], GOALS["street_recall"], op=">=",
                 note=f"share of truly reached street points (every {args.street_step_m:g} m) inside the circle, {top:g} min"),
        ],
        "people_missed_pct": headline["people_missed_pct"],
        "people_overclaimed_pct": headline["people_overclaimed_pct"],
        "street_recall": headline["street_recall"],
        "threshold_min": top,
        "group": GROUP,
        "sites": {"set": site_set, "judged": len(truth), "ids": [str(s) for s in truth] if args.sites else None},
        "inside_rule": (
            "a populated cell is inside a circle when its population point (the cell centre, the demand point coverage snaps "
            "to the street) lies in the polygon; by_cell_centroid uses the centroid of the reprojected cell square, "
            "by_cell_area_share spreads each cell's people evenly over its square"
        ),
        "ground_truth": {
            "engine": f"networkx {nx.__version__} single_source_dijkstra_path_length on geoplan.reach.reference_graph",
            "covered": f"time <= t*60 + {TOLERANCE_S:g} s",
            "street_points": f"every {args.street_step_m:g} m along every edge (segment midpoints); time via either end or along the site's own edge",
            "later_street_points": f"within {NEAR_REACHED_M:g} m of a truly reached street point and reached more than {LATE_S:g} s late "
                                   f"(or not within t + {EXTRA_CUTOFF_S / 60:g} min)",
            "engine_vs_networkx_covered_pairs_differing": disagree,
            "build_s": truth_s,
        },
        "by_kind": results,
        "kinds": {
            "demand": "care_circles(network, sites, demand=region.demand, reach=region.reach(sites)): what geoplan coverage and the API draw",
            "network_only": "care_circles(network, sites): no demand given",
            "before": f"geoplan/isochrones.py at {args.before_ref}: reached streets widened by 60 m, small blocks filled"
            if before is not None else "skipped",
        },
        "timings": {
            "what": f"care_circles for all {len(candidates)} candidate sites at {'/'.join(f'{t:g}' for t in thresholds)} min, "
                    f"{args.repeat} runs after one warm-up, median",
            **timings,
            "reach_matrix_for_the_candidates": reach_timing.as_dict(),
        },
        "machine": record,
        "args": vars(args),
        "total_runtime_s": time.perf_counter() - started,
    }
    write_result("isochrones", payload)
    for name, figures in results.items():
        f = figures[f"{top:g}"]
        print(f"{name:>13}: missed {f['people_missed_pct']:6.2f} %  overclaimed {f['people_overclaimed_pct']:6.2f} %  "
              f"street recall {f['street_recall']:.4f}  later street points inside {f['later_street_points_inside_pct']:5.2f} %  "
              f"time {timings[name]['median_s']:.2f} s")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a bench reports; it never fails the build
        logging.exception("bench/isochrones.py failed")
    sys.exit(0)
