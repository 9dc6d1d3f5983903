"""Benchmark: geoplan's reach engine against networkx and pandana on Wuchang (Wuhan).

Run from the repository root::

    python bench/reach.py                 # default: 124 community sites + 2,000 sampled network nodes, 10 repeats
    python bench/reach.py --quick         # smoke run: 3 repeats, 300 sampled nodes
    python bench/reach.py --repeat 20 --sites 5000
    python bench/reach.py --cold-numba    # measure numba's compile on the first call (empty cache)

The three engines answer the same question on the same graph: for every site,
the walking time to every demand point (WorldPop 100 m cell centre) within
``--cutoff`` seconds, where points hang off their nearest street by a straight
access walk (see :func:`geoplan.reach.reference_graph`).

* geoplan: ``Router(network, demand)`` once, then ``router.travel_times(sites)``.
* networkx: per site ``single_source_dijkstra_path_length(G, site, cutoff)`` on
  the reference graph ``G`` (sites and demand inserted as nodes), keeping the
  demand nodes, the way an osmnx user would do it.
* pandana: ``pandana.Network`` (contraction hierarchy) built from ``G``, then
  ``Network.nodes_in_range(site_nodes, cutoff)``, keeping the demand nodes.

Every engine gets one warm-up call and then the same ``--repeat`` timed calls
on each site set; the figures are the median (with min and max) and the
speedups are ratios of medians. Goals (community sites): 50x networkx, 10x
pandana, and the same pairs and times as networkx (pandana within its
rounding). Writes ``bench/results/reach.json`` and prints a table; exits 0
whether or not the goals pass.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import build_wuchang, goal, machine, max_rss_mib, measure, speedup, traced_peak_mib, write_result  # noqa: E402

EXACT_TOL_S = 1e-6
GOALS = {"speedup_vs_networkx": 50.0, "speedup_vs_pandana": 10.0}
QUICK = {"repeat": 3, "sites": 300}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="timed calls per engine and site set, after one warm-up call (the median is reported)")
    parser.add_argument("--sites", type=int, default=2000, help="size of the large site set (network nodes inside Wuchang; 0 to skip)")
    parser.add_argument("--seed", type=int, default=20240601, help="RNG seed for the large site set")
    parser.add_argument("--cutoff", type=float, default=900.0, help="walking-time cutoff in seconds")
    parser.add_argument(
        "--pandana-tol", type=float, default=0.5,
        help="tolerance (s) for pandana, which rounds every edge weight down to whole milliseconds and returns float32",
    )
    parser.add_argument("--cold-numba", action="store_true", help="use an empty numba cache so the first call includes compilation")
    parser.add_argument("--no-pandana", action="store_true", help="skip pandana")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK['repeat']} repeats, {QUICK['sites']} sampled nodes")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.sites = QUICK["repeat"], min(args.sites, QUICK["sites"])
    return args


# --------------------------------------------------------------------------- engines


def geoplan_frame(matrix) -> pd.DataFrame:
    return matrix.to_frame()[["site_id", "demand_id", "time_s"]]


def networkx_reach(G, site_ids, cutoff: float):
    """The osmnx/networkx recipe: one bounded Dijkstra per site, keep the demand nodes."""
    import networkx as nx

    out_site, out_demand, out_time = [], [], []
    for site in site_ids:
        lengths = nx.single_source_dijkstra_path_length(G, ("s", site), cutoff=cutoff, weight="travel_time_s")
        for node, t in lengths.items():
            if type(node) is tuple and len(node) == 2 and node[0] == "d":
                out_site.append(site)
                out_demand.append(node[1])
                out_time.append(t)
    return out_site, out_demand, out_time


def networkx_frame(raw) -> pd.DataFrame:
    site, demand, t = raw
    return pd.DataFrame({"site_id": np.asarray(site, dtype=np.int64), "demand_id": np.asarray(demand, dtype=np.int64), "time_s": np.asarray(t, dtype=float)})


class PandanaTables:
    """G's nodes as integers 0..n-1 with coordinates, and its edges with travel_time_s."""

    def __init__(self, G, demand, demand_snap, sites, site_snap):
        nodes = list(G.nodes)
        position = {node: i for i, node in enumerate(nodes)}
        x = np.empty(len(nodes))
        y = np.empty(len(nodes))
        self.demand_of = np.full(len(nodes), -1, dtype=np.int64)  # node -> demand id, -1 when not a demand point
        self.site_node = {}
        demand_xy = (demand.geometry.x, demand.geometry.y)
        site_xy = (sites.geometry.x, sites.geometry.y)
        for i, node in enumerate(nodes):
            if type(node) is not tuple:  # a street node
                x[i], y[i] = G.nodes[node]["x"], G.nodes[node]["y"]
            elif len(node) == 2:  # a demand point (cell centre) or a site
                kind, pid = node
                xs, ys = demand_xy if kind == "d" else site_xy
                x[i], y[i] = xs.loc[pid], ys.loc[pid]
                if kind == "d":
                    self.demand_of[i] = pid
                else:
                    self.site_node[pid] = i
            else:  # (kind, "on-street", id): where the point meets its street
                kind, _, pid = node
                snap = demand_snap if kind == "d" else site_snap
                x[i], y[i] = snap.at[pid, "snap_x"], snap.at[pid, "snap_y"]
        edges = [(position[u], position[v], w) for u, v, w in G.edges(data="travel_time_s")]
        u, v, w = (np.asarray(c) for c in zip(*edges))
        self.node_x, self.node_y = pd.Series(x), pd.Series(y)
        self.edge_from, self.edge_to = pd.Series(u.astype(np.int64)), pd.Series(v.astype(np.int64))
        self.edge_weights = pd.DataFrame({"travel_time_s": w.astype(float)})

    def build(self):
        import pandana

        return pandana.Network(self.node_x, self.node_y, self.edge_from, self.edge_to, self.edge_weights, twoway=True)


def pandana_reach(pnet, tables: PandanaTables, site_ids, cutoff: float) -> pd.DataFrame:
    """``Network.nodes_in_range`` from every site node, keeping the demand nodes."""
    nodes = np.array([tables.site_node[s] for s in site_ids], dtype=np.int64)
    found = pnet.nodes_in_range(nodes, cutoff)
    demand = tables.demand_of[found["destination"].to_numpy()]
    keep = demand >= 0
    site_of = pd.Series(np.asarray(site_ids, dtype=np.int64), index=nodes)
    return pd.DataFrame(
        {
            "site_id": site_of.loc[found["source"].to_numpy()[keep]].to_numpy(),
            "demand_id": demand[keep],
            "time_s": found["travel_time_s"].to_numpy()[keep].astype(float),
        }
    )


def pandana_core(pnet, tables: PandanaTables, site_ids, cutoff: float):
    """The C++ range queries alone, without pandana's Python post-processing (pd.concat per source)."""
    nodes = np.array([tables.site_node[s] for s in site_ids], dtype=np.int64)
    ext_ids = pnet.node_idx.index.to_numpy(dtype=np.int64, copy=False)
    return pnet.net.nodes_in_range(nodes, cutoff, 0, ext_ids)


@contextlib.contextmanager
def quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


# --------------------------------------------------------------------------- checks


def compare(a: pd.DataFrame, b: pd.DataFrame, cutoff: float, tol: float) -> dict:
    """Pairs found by one engine and not the other, and time differences on the common pairs."""
    merged = a.merge(b, on=["site_id", "demand_id"], how="outer", suffixes=("_a", "_b"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    diff = (both["time_s_a"] - both["time_s_b"]).abs()
    only_a = merged[merged["_merge"] == "left_only"]
    only_b = merged[merged["_merge"] == "right_only"]
    unmatched = pd.concat([only_a["time_s_a"], only_b["time_s_b"]])
    worst = int(diff.to_numpy().argmax()) if len(diff) else None
    result = {
        "pairs_a": len(a),
        "pairs_b": len(b),
        "common_pairs": len(both),
        "only_in_a": len(only_a),
        "only_in_b": len(only_b),
        "pairs_equal": len(only_a) == 0 and len(only_b) == 0,
        "max_abs_diff_s": float(diff.max()) if len(diff) else 0.0,
        "mean_abs_diff_s": float(diff.mean()) if len(diff) else 0.0,
        "signed_mean_diff_s": float((both["time_s_b"] - both["time_s_a"]).mean()) if len(diff) else 0.0,
        "worst_pair": None
        if worst is None
        else {k: (float(v) if k.startswith("time") else int(v)) for k, v in both.iloc[worst][["site_id", "demand_id", "time_s_a", "time_s_b"]].items()},
        "unmatched_max_distance_from_cutoff_s": float((unmatched - cutoff).abs().max()) if len(unmatched) else 0.0,
        "tolerance_s": tol,
    }
    result["agree_within_tolerance"] = bool(
        result["max_abs_diff_s"] <= tol and result["unmatched_max_distance_from_cutoff_s"] <= tol
    )
    return result


# --------------------------------------------------------------------------- profile


def profile_geoplan(router, site_snap, cutoff: float, repeat: int) -> dict:
    """Where a query's time goes: cProfile, and the numba kernel timed alone on the same arguments (medians)."""
    from geoplan._dijkstra import reach_batch

    profiler = cProfile.Profile()
    profiler.enable()
    router.travel_times(site_snap, cutoff_s=cutoff)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(12)
    top = []
    for (filename, line, name), (cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]:
        top.append({"function": f"{Path(filename).name}:{line}({name})", "calls": nc, "tottime_s": tt, "cumtime_s": ct})
    total = sum(v[2] for v in stats.stats.values())

    # replicate Router.travel_times step by step (private attributes) to time its parts, kernel in one batch
    steps = {}
    kernel_pairs = None
    try:
        from geoplan.reach import _snapped

        timing = measure(lambda: _snapped(router.network, site_snap, router.max_access_m), repeat)
        steps["select_snap_columns"], snap = timing, timing.result

        def prepare():
            site_ok = np.flatnonzero(snap["edge_id"].to_numpy() >= 0)
            edge, at, access = router._on_chains(snap, site_ok)
            a, b = router.chains.chain_start[edge], router.chains.chain_end[edge]
            return site_ok, (a, at + access, b, router.chains.chain_time_s[edge] - at + access, edge, at, access)

        timing = measure(prepare, repeat)
        steps["site_preparation"], (site_ok, args) = timing, timing.result
        g = router.graph

        def kernel():
            return reach_batch(
                g.indptr, g.indices, g.data, *args,
                router._attach_indptr, router._attach_point, router._attach_time,
                router._chain_indptr, router._chain_point, router._point_at, router._point_access,
                len(router._demand_ok), float(cutoff),
            )

        steps["kernel_single_thread"] = timing = measure(kernel, repeat, warmup=1)
        kernel_pairs = int(len(timing.result[0]))

    except Exception as exc:  # the private layout changed: say so rather than fail the benchmark
        steps["error"] = repr(exc)
    kernel = steps.get("kernel_single_thread")
    return {
        "cprofile_total_s": total,
        "cprofile_top_by_tottime": top,
        "kernel_alone_single_thread_median_s": None if kernel is None else kernel.median_s,
        "kernel_pairs": kernel_pairs,
        "steps": {k: (v.as_dict() if hasattr(v, "as_dict") else v) for k, v in steps.items()},
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    args = parse_args(argv)
    record = machine("numba", "networkx", "pandana", "scipy", "pandas", "geopandas", "shapely", "osmnx")
    if args.cold_numba:
        os.environ["NUMBA_CACHE_DIR"] = cold_cache = tempfile.mkdtemp(prefix="numba-cold-")
        atexit.register(shutil.rmtree, cold_cache, ignore_errors=True)
    started = time.perf_counter()
    rss = {"start_mib": max_rss_mib()}

    import geoplan._dijkstra  # noqa: F401  (import before timing; compiles lazily on first call)
    from geoplan.reach import Router, reference_graph

    try:
        import pandana  # noqa: F401

        have_pandana = not args.no_pandana
        pandana_error = None if have_pandana else "skipped (--no-pandana)"
    except ImportError as exc:
        have_pandana, pandana_error = False, repr(exc)

    print("building Wuchang inputs ...", flush=True)
    inputs = build_wuchang(args.sites, args.seed)
    net, demand, ds = inputs.network, inputs.demand, inputs.demand_snap
    rss["after_inputs_mib"] = max_rss_mib()
    sets = {"community": inputs.site_sets["community"]}
    if args.sites > 0:
        sets["nodes_sample"] = inputs.site_sets["nodes_sample"]
    repeat, cutoff = args.repeat, args.cutoff

    # ---- geoplan: preparation (first call apart), then per site set one warm-up call and `repeat` timed calls
    t = time.perf_counter()
    router = Router(net, ds)
    router_first = time.perf_counter() - t
    router_prepare = measure(lambda: Router(net, ds), repeat)

    results: dict[str, dict] = {}
    frames: dict[str, dict[str, pd.DataFrame]] = {}
    numba_cache = None
    for name, (sites, ss) in sets.items():
        print(f"[{name}] geoplan ...", flush=True)
        timing = measure(lambda: router.travel_times(ss, cutoff_s=cutoff), repeat, warmup=1)
        if numba_cache is None:  # the very first warm-up call also compiled reach_batch or loaded it from the cache
            stats = geoplan._dijkstra.reach_batch.stats
            numba_cache = {"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}
        matrix = timing.result
        frames[name] = {"geoplan": geoplan_frame(matrix)}
        snapped = int((ss["edge_id"] >= 0).sum())
        results[name] = {
            "sites": len(sites),
            "sites_snapped": snapped,
            "geoplan": {**timing.as_dict(), "threads": max(1, min(os.cpu_count() or 1, snapped // 256)), "pairs": int(matrix.times_s.nnz)},
        }
        results[name]["_timing"] = {"geoplan": timing}
    rss["after_geoplan_mib"] = max_rss_mib()

    # ---- networkx and pandana on the reference graph of each site set, same warm-up and repeats
    for name, (sites, ss) in sets.items():
        res = results[name]
        timings = res.pop("_timing")
        site_ids = ss.index[ss["edge_id"] >= 0].to_numpy()
        print(f"[{name}] reference graph ...", flush=True)
        t = time.perf_counter()
        G = reference_graph(net, {"d": ds, "s": ss})
        res["reference_graph"] = {"build_s": time.perf_counter() - t, "nodes": G.number_of_nodes(), "edges": G.number_of_edges()}

        print(f"[{name}] networkx ...", flush=True)
        timings["networkx"] = timing = measure(lambda: networkx_reach(G, site_ids, cutoff), repeat, warmup=1)
        frames[name]["networkx"] = networkx_frame(timing.result)
        res["networkx"] = {**timing.as_dict(), "threads": 1, "pairs": len(timing.result[0])}

        if have_pandana:
            print(f"[{name}] pandana ...", flush=True)
            t = time.perf_counter()
            tables = PandanaTables(G, demand, ds, sites, ss)
            tables_s = time.perf_counter() - t
            with quiet_stdout():  # the C++ side prints its progress to stdout
                t = time.perf_counter()
                pnet = tables.build()
                construct_s = time.perf_counter() - t
            timings["pandana"] = timing = measure(lambda: pandana_reach(pnet, tables, site_ids, cutoff), repeat, warmup=1)
            timings["pandana_core"] = core = measure(lambda: pandana_core(pnet, tables, site_ids, cutoff), repeat, warmup=1)
            frames[name]["pandana"] = timing.result
            res["pandana"] = {
                **timing.as_dict(),
                "tables_from_G_s": tables_s,
                "construction_s": construct_s,
                "threads": "OpenMP (all cores)",
                "pairs": len(timing.result),
            }
            res["pandana_core_cpp"] = {**core.as_dict(), "threads": "OpenMP (all cores)"}
        rss[f"after_baselines_{name}_mib"] = max_rss_mib()

        # memory: one more call of each under tracemalloc (Python heap + numpy buffers only)
        ss_local = ss
        mem = {"geoplan_query_mib": traced_peak_mib(lambda: router.travel_times(ss_local, cutoff_s=cutoff))}
        mem["networkx_query_mib"] = traced_peak_mib(lambda: networkx_reach(G, site_ids, cutoff))
        if have_pandana:
            mem["pandana_query_mib"] = traced_peak_mib(lambda: pandana_reach(pnet, tables, site_ids, cutoff))
        res["tracemalloc_peak"] = mem

        # comparisons
        f = frames[name]
        checks = {"geoplan_vs_networkx": compare(f["geoplan"], f["networkx"], cutoff, EXACT_TOL_S)}
        checks["geoplan_vs_networkx"]["exact"] = bool(
            checks["geoplan_vs_networkx"]["pairs_equal"] and checks["geoplan_vs_networkx"]["max_abs_diff_s"] <= EXACT_TOL_S
        )
        if have_pandana:
            checks["geoplan_vs_pandana"] = compare(f["geoplan"], f["pandana"], cutoff, args.pandana_tol)
            checks["geoplan_vs_pandana"]["exact"] = bool(
                checks["geoplan_vs_pandana"]["pairs_equal"] and checks["geoplan_vs_pandana"]["max_abs_diff_s"] <= EXACT_TOL_S
            )
        res["checks"] = checks
        res["results_identical"] = bool(
            checks["geoplan_vs_networkx"]["exact"] and (not have_pandana or checks["geoplan_vs_pandana"]["agree_within_tolerance"])
        )

        ours = timings["geoplan"]
        res["speedup_vs_networkx"] = speedup(timings["networkx"], ours)
        res["speedup_vs_pandana"] = speedup(timings["pandana"], ours) if have_pandana else None
        res["speedup_vs_pandana_core"] = speedup(timings["pandana_core"], ours) if have_pandana else None
        prof = res["profile_geoplan"] = profile_geoplan(router, ss, cutoff, repeat)
        kernel = prof["kernel_alone_single_thread_median_s"]
        if kernel is not None:
            one_thread = res["geoplan"]["threads"] == 1
            prof["kernel_share_of_query"] = kernel / ours.median_s if one_thread else None
            prof["outside_kernel_s"] = ours.median_s - kernel if one_thread else None
            prof["speedup_vs_networkx_kernel_only"] = timings["networkx"].median_s / kernel
            if not one_thread:
                prof["note"] = "the query ran on several threads; the kernel was timed on one, so shares are not given"
        del G
        if have_pandana:
            del pnet, tables

    default = results["community"]
    goals = [
        goal("speedup_vs_networkx", default["speedup_vs_networkx"], GOALS["speedup_vs_networkx"],
             note="community sites; ratio of medians, networkx / geoplan"),
        goal("speedup_vs_pandana", default["speedup_vs_pandana"], GOALS["speedup_vs_pandana"],
             note="community sites; ratio of medians, pandana nodes_in_range / geoplan" + ("" if have_pandana else f"; pandana not run: {pandana_error}")),
        goal("results_identical", bool(all(r["results_identical"] for r in results.values())), True, op="==",
             note="every site set: the same pairs and times as networkx (1e-6 s), pandana within --pandana-tol"),
    ]
    payload = {
        "benchmark": "reach: walking times sites -> demand points within the cutoff, Wuchang district (Wuhan)",
        "goals": goals,
        "speedup_vs_networkx": default["speedup_vs_networkx"],
        "speedup_vs_pandana": default["speedup_vs_pandana"],
        "results_identical": goals[2]["value"],
        "statistic": (
            f"every engine: one warm-up call, then {repeat} timed calls per site set; median (min, max) reported, "
            "speedups are ratios of medians"
        ),
        "cutoff_s": cutoff,
        "site_set_default": "community",
        "timings_note": (
            "geoplan's Router preparation, the reference graph and pandana's construction (contraction hierarchy) "
            "are reported apart and not in the ratios. speedup_vs_pandana uses Network.nodes_in_range as documented "
            "(C++ range queries + its Python post-processing); speedup_vs_pandana_core uses the C++ call alone."
        ),
        "pandana_precision_note": (
            "pandana's C++ graph stores each edge weight as unsigned integer milliseconds (weight*1000 truncated) and "
            "returns float32 distances, so its times run slightly short of the exact ones and pairs within a few "
            "tenths of a second of the cutoff may differ; it is checked against --pandana-tol, not 1e-6."
        ),
        "geoplan": {
            "router_prepare_first_s": router_first,
            "router_prepare": router_prepare.as_dict(),
            "first_call_s": results["community"]["geoplan"]["warmup_times_s"][0],
            "first_call_includes": (
                "loading reach_batch from numba's on-disk cache" if numba_cache and numba_cache["hits"] and not numba_cache["misses"]
                else "numba compilation of reach_batch (no valid cache" + (", --cold-numba)" if args.cold_numba else ")")
            ),
            "numba_cache_first_call": numba_cache,
        },
        "pandana_available": have_pandana,
        "pandana_error": pandana_error,
        "default": default,
        "large": results.get("nodes_sample"),
        "speedup_large": None if "nodes_sample" not in results else {
            "speedup_vs_networkx": results["nodes_sample"]["speedup_vs_networkx"],
            "speedup_vs_pandana": results["nodes_sample"]["speedup_vs_pandana"],
        },
        "sizes": {
            "network_nodes": len(net.nodes),
            "network_edges": len(net.edges),
            "demand_points": len(demand),
            "demand_points_snapped": int((ds["edge_id"] >= 0).sum()),
            "walk_speed_mps": net.walk_speed_mps,
            "sites": {k: r["sites"] for k, r in results.items()},
            "pairs_found": {k: r["geoplan"]["pairs"] for k, r in results.items()},
        },
        "inputs_build_s": inputs.timings_s,
        "memory": {
            "ru_maxrss_mib": rss,
            "note": "ru_maxrss is the process peak so far (monotone), snapshotted after each phase; tracemalloc peaks "
            "(per site set) see Python/numpy allocations only, not numba-runtime or C++ (pandana) allocations.",
        },
        "machine": record,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "total_runtime_s": time.perf_counter() - started,
    }
    print_table(payload, results)
    write_result("reach", payload)
    return payload


def print_table(payload: dict, results: dict) -> None:
    def ms(t):
        return "—" if not t else f"{1000 * t['median_s']:.1f} [{1000 * t['min_s']:.1f}-{1000 * t['max_s']:.1f}]"

    def ratio(x):
        return "—" if x is None else f"{x:.1f}x"

    g = payload["geoplan"]
    print()
    print(
        f"geoplan Router prepare: median {1000 * g['router_prepare']['median_s']:.1f} ms   "
        f"first call: {1000 * g['first_call_s']:.0f} ms ({g['first_call_includes']})"
    )
    print(f"query ms, median [min-max] of {payload['args']['repeat']} after one warm-up; speedups from medians")
    header = (
        f"{'site set':<13}{'sites':>6}{'pairs':>8} | {'geoplan':>20}{'networkx':>24}{'pandana':>24}{'(core)':>22} | "
        f"{'vs nx':>8}{'vs pd':>8}{'vs core':>8} | identical"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<13}{r['sites']:>6}{r['geoplan']['pairs']:>8} | {ms(r['geoplan']):>20}{ms(r['networkx']):>24}"
            f"{ms(r.get('pandana')):>24}{ms(r.get('pandana_core_cpp')):>22} | {ratio(r['speedup_vs_networkx']):>8}"
            f"{ratio(r['speedup_vs_pandana']):>8}{ratio(r['speedup_vs_pandana_core']):>8} | {r['results_identical']}"
        )
    for name, r in results.items():
        extra = []
        if r.get("pandana"):
            extra.append(f"pandana construction {r['pandana']['construction_s']:.2f} s")
        extra.append(f"reference graph {r['reference_graph']['build_s']:.1f} s")
        for key, c in r["checks"].items():
            extra.append(
                f"{key}: pairs {c['pairs_a']}/{c['pairs_b']} (only-a {c['only_in_a']}, only-b {c['only_in_b']}), max |dt| {c['max_abs_diff_s']:.2e} s"
            )
        prof = r["profile_geoplan"]
        if prof.get("kernel_alone_single_thread_median_s") is not None:
            steps = ", ".join(f"{k} {1000 * v['median_s']:.2f}" for k, v in prof["steps"].items() if isinstance(v, dict))
            extra.append(
                f"geoplan query {1000 * r['geoplan']['median_s']:.2f} ms on {r['geoplan']['threads']} thread(s); step medians (ms): {steps}; "
                f"networkx / kernel alone = {prof['speedup_vs_networkx_kernel_only']:.1f}x"
            )
        print(f"[{name}] " + "; ".join(extra[:2]))
        for line in extra[2:]:
            print(f"    {line}")
    print(f"total {payload['total_runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
