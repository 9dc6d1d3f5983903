"""Benchmark: the rural canteen network of Huangpi south (``huangpi_south``), per travel mode, and its least-cost plan.

Run from the repository root::

    python bench/rural.py            # 5 timed runs per mode, 3 of the plan
    python bench/rural.py --quick    # 1 run each (a smoke run)

For the shipped region ``huangpi_south`` (the part of Huangpi the street file
covers), with every candidate site of the canteen plan (a meal point at
each derived village unit, town canteen/kitchen sites at street junctions
about 1.5 km apart):

* **reach per mode** -- ``region.reach(candidates, cutoff_min=..., mode=...)``
  from every candidate to every populated cell, walk at 15 min, e-bike at
  20 min (the delivery rule), car at 60 min (the kitchen's supply drive); the
  mode's router prepared once (timed apart as ``prepare_s``), then median,
  min and max of ``--repeat`` runs after one warm-up;
* **checked** -- for ``--check-sites`` seeded candidates per mode, every
  time equals a plain networkx Dijkstra on the mode's network with the
  snapped points inserted (segment times by each edge's own speed, access legs
  at the mode's access speed) to 1e-6 s;
* **plan** -- :meth:`geoplan.rural.RuralReview.plan` (service matrix,
  :func:`geoplan.optimize.least_cost`, HiGHS): solve time, status, cost and
  the greedy cost beside it, median of ``--plan-repeat`` runs.

Writes ``bench/results/rural.json``; exits 0 whether or not goals pass.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, goal, machine, measure, write_result  # noqa: E402

REGION = "huangpi_south"
CUTOFF_MIN = {"walk": 15.0, "ebike": 20.0, "car": 60.0}
GOALS = {"reach_all_candidates_s": 1.0, "plan_solve_s": 60.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed reach runs per mode (median)")
    parser.add_argument("--plan-repeat", type=int, default=3, help="timed plans (median)")
    parser.add_argument("--check-sites", type=int, default=5, help="candidates per mode checked against networkx")
    parser.add_argument("--seed", type=int, default=20240612, help="RNG seed of the checked candidates")
    parser.add_argument("--quick", action="store_true", help="one run of each, two checked candidates")
    return parser.parse_args(argv)


def mode_reference_graph(network, points: dict) -> nx.Graph:
    """The mode's network with snapped points inserted as nodes: each piece of an edge at that edge's own speed."""
    graph = nx.Graph()
    edges = network.edges
    quickest = edges.sort_values("travel_time_s", ascending=False)
    graph.add_weighted_edges_from(zip(quickest["u"], quickest["v"], quickest["travel_time_s"]), weight="t")
    access_speed = network.walk_speed_mps
    by_edge: dict[int, list] = {}
    for kind, snap in points.items():
        for point_id, row in snap[snap["edge_id"] >= 0].iterrows():
            on_street = (kind, "on", point_id)
            by_edge.setdefault(int(row["edge_id"]), []).append((row["position_m"], on_street))
            graph.add_edge((kind, point_id), on_street, t=row["access_m"] / access_speed)
    for edge_id, stops in by_edge.items():
        u, v, length, time_s = edges.loc[edge_id, ["u", "v", "length_m", "travel_time_s"]]
        speed = length / time_s
        chain = [(0.0, u), *sorted(stops, key=lambda s: s[0]), (length, v)]
        for (p0, a), (p1, b) in zip(chain[:-1], chain[1:]):
            t = (p1 - p0) / speed
            if not graph.has_edge(a, b) or graph[a][b]["t"] > t:
                graph.add_edge(a, b, t=t)
    return graph


def check_against_networkx(region, mode: str, candidates, reach, n_sites: int, seed: int) -> dict:
    """Worst difference between the engine and networkx over ``n_sites`` seeded candidates (pairs must match too)."""
    from geoplan.snapping import snap_to_network

    network = region.network_for(mode)
    max_access = region.config.analysis.max_access_m
    demand = region.demand[["geometry"]]
    rng = np.random.default_rng(seed)
    chosen = candidates.iloc[np.sort(rng.choice(len(candidates), size=min(n_sites, len(candidates)), replace=False))]
    site_snap = snap_to_network(network, chosen, max_access_m=max_access)
    graph = mode_reference_graph(network, {"d": snap_to_network(network, demand, max_access_m=max_access), "s": site_snap})
    frame = reach.to_frame()
    worst, mismatched, pairs = 0.0, 0, 0
    cutoff_s = reach.cutoff_s
    for site_id in chosen.index:
        ours = frame[frame["site_id"] == site_id].set_index("demand_id")["time_s"]
        lengths = nx.single_source_dijkstra_path_length(graph, ("s", site_id), cutoff=cutoff_s + 1e-9, weight="t") if ("s", site_id) in graph else {}
        theirs = {node[1]: t for node, t in lengths.items() if isinstance(node, tuple) and len(node) == 2 and node[0] == "d" and t <= cutoff_s + 1e-9}
        mismatched += len(set(ours.index) ^ set(theirs))
        common = sorted(set(ours.index) & set(theirs))
        pairs += len(common)
        if common:
            worst = max(worst, float(np.max(np.abs(ours.loc[common].to_numpy() - np.array([theirs[d] for d in common])))))
    return {"sites_checked": len(chosen), "pairs_compared": pairs, "pairs_in_one_only": mismatched, "max_abs_diff_s": worst}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.repeat, args.plan_repeat, args.check_sites = 1, 1, 2
    record = machine("shapely", "networkx", "numba", "highspy", "pulp")
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)

    import geopandas as gpd

    from geoplan.modes import get_mode
    from geoplan.region import load_region
    from geoplan.rural import rural_review
    from geoplan.rural.canteens import canteen_candidates

    t0 = time.perf_counter()
    region = load_region(REGION, cache_dir=REPO / ".cache")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    review = rural_review(region)
    review_s = time.perf_counter() - t0
    candidates = canteen_candidates(review.model, gpd.GeoDataFrame({"kind": []}, geometry=gpd.GeoSeries([], crs=region.crs)))
    sites = candidates[["geometry"]]

    modes = {}
    for name, cutoff in CUTOFF_MIN.items():
        t0 = time.perf_counter()
        network = region.network_for(name)
        router = region.router_for(name)
        prepare_s = time.perf_counter() - t0
        timing = measure(lambda: region.reach(sites, cutoff_min=cutoff, mode=name), args.repeat, warmup=1)
        reach = timing.result
        modes[name] = {
            "label": get_mode(name, region.config).label,
            "cutoff_min": cutoff,
            "candidates": len(sites),
            "demand_cells": int(reach.shape[0]),
            "pairs_within_cutoff": int(reach.times_s.nnz),
            "demand_off_network": int(len(reach.off_network)),
            "network": {"edges": int(len(network.edges)), "nodes": int(len(network.nodes)), "junctions": int(router.graph.shape[0]),
                        "street_km": round(float(network.edges["length_m"].sum()) / 1000, 1)},
            "prepare_s": prepare_s,
            "reach_all_candidates": timing.as_dict(),
            "check_vs_networkx": check_against_networkx(region, name, candidates, reach, args.check_sites, args.seed),
        }

    plan_timing = measure(lambda: review.plan(), args.plan_repeat, warmup=0)
    plan = plan_timing.result
    stats = plan.plan.solver
    after = plan.after.summary
    extent = review.extent
    villages = review.figures.villages
    payload = {
        "benchmark": "rural canteen network of Huangpi south: reach of every candidate per travel mode, and the least-cost plan",
        "command": "python bench/rural.py" + (" --quick" if args.quick else ""),
        "region": REGION,
        "goals": [
            *[goal(f"reach_all_candidates_s_{name}", m["reach_all_candidates"]["median_s"], GOALS["reach_all_candidates_s"], op="<",
                   note=f"{m['candidates']} candidates x {m['demand_cells']:,} cells, {m['cutoff_min']:g} min by {name}, median of {args.repeat}")
              for name, m in modes.items()],
            *[goal(f"equals_networkx_{name}", m["check_vs_networkx"]["pairs_in_one_only"] == 0 and m["check_vs_networkx"]["max_abs_diff_s"] < 1e-6, True,
                   op="==", note=f"{m['check_vs_networkx']['sites_checked']} seeded candidates, {m['check_vs_networkx']['pairs_compared']:,} pairs")
              for name, m in modes.items()],
            goal("plan_status_optimal", stats.status, "optimal", op="=="),
            goal("plan_meets_every_requirement", bool(plan.plan.passed), True, op="=="),
            goal("plan_solve_s", plan_timing.median_s, GOALS["plan_solve_s"], op="<", note="service matrix + least_cost, median"),
        ],
        "modes": modes,
        "plan": {
            "status": stats.status, "gap": stats.gap, "cost": plan.plan.cost, "greedy_cost": plan.plan.greedy_cost,
            "candidates": plan.n_candidates, "new_sites": int(len(plan.new_sites)),
            "new_by_tier": {k: int(v) for k, v in plan.new_sites["tier"].value_counts().items()},
            "service_matrix_s": plan.matrix_s, "least_cost_s": plan.solve_s, "solver_s": stats.solve_s,
            "timing": plan_timing.as_dict(),
            "targets_after": {i: {"value": None if r["value"] is None else round(float(r["value"]), 2), "pass": r["pass"]} for i, r in after.iterrows()},
            "supply_drive_min": {str(k): round(float(v), 1) for k, v in plan.supply["supply_drive_min"].items()},
        },
        "review_before": {i: {"value": None if r["value"] is None else round(float(r["value"]), 2), "pass": r["pass"]}
                          for i, r in review.summary.iterrows()},
        "coverage_of_the_data": {
            "district": extent.district, "area_inside_pct": round(extent.inside_area_pct, 2),
            "pop_60_district": round(float(extent.people.at["pop_60", "district"])),
            "pop_60_inside_extent": round(float(extent.people.at["pop_60", "inside_extent"])),
            "pop_60_inside_pct": round(extent.share_pct("pop_60"), 2),
            "pop_60_within_access_of_a_street_pct": round(float(extent.people.at["pop_60", "near_street_pct"]), 2),
            "method": extent.method,
        },
        "units": {
            "towns": int(len(review.units.towns)), "towns_derived": review.units.towns_derived,
            "villages": int(len(villages)), "villages_derived": review.units.villages_derived,
            "villages_without_a_road_within_reach": int((~villages["road_within_reach"].astype(bool)).sum()),
            "rural_share_census": round(review.units.rural_share, 4),
            "rural_60_of_region": round(float(region.demand.loc[review.units.rural.to_numpy(), "pop_60"].sum())),
        },
        "setup_s": {"load_region": load_s, "rural_review": review_s},
        "wall_s": time.perf_counter() - started,
        "machine": record,
    }
    write_result("rural", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
