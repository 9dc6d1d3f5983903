"""Benchmark: geoplan's reach engine against networkx and pandana on Wuchang (Wuhan).

Run from the repository root::

    python bench/reach.py                 # default: 124 community sites + 2,000 sampled network nodes
    python bench/reach.py --repeat 50 --sites 5000
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

Writes ``bench/results/reach.json`` and prints a table.
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
from _common import RESULTS, best_of, build_wuchang, machine, max_rss_mib, traced_peak_mib, versions, write_json  # noqa: E402

EXACT_TOL_S = 1e-6
GOALS = {"speedup_vs_networkx": 50.0, "speedup_vs_pandana": 10.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="geoplan timed repeats after the warm-up call (best is kept)")
    parser.add_argument("--baseline-repeat", type=int, default=10, help="networkx/pandana query repeats on the community sites")
    parser.add_argument("--large-baseline-repeat", type=int, default=3, help="networkx/pandana query repeats on the large site set")
    parser.add_argument("--sites", type=int, default=2000, help="size of the large site set (network nodes inside Wuchang; 0 to skip)")
    parser.add_argument("--seed", type=int, default=20240601, help="RNG seed for the large site set")
    parser.add_argument("--cutoff", type=float, default=900.0, help="walking-time cutoff in seconds")
    parser.add_argument(
        "--pandana-tol", type=float, default=0.5,
        help="tolerance (s) for pandana, which rounds every edge weight down to whole milliseconds and returns float32",
    )
    parser.add_argument("--cold-numba", action="store_true", help="use an empty numba cache so the first call includes compilation")
    parser.add_argument("--no-pandana", action="store_true", help="skip pandana")
    parser.add_argument("--out", type=Path, default=RESULTS / "reach.json")
    return parser.parse_args(argv)


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
    """Where a query's time goes: cProfile, and the numba kernel timed alone on the same arguments."""
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

        steps["select_snap_columns_s"], _, snap = best_of(lambda: _snapped(router.network, site_snap, router.max_access_m), repeat)

        def prepare():
            site_ok = np.flatnonzero(snap["edge_id"].to_numpy() >= 0)
            edge, at, access = router._on_chains(snap, site_ok)
            a, b = router.chains.chain_start[edge], router.chains.chain_end[edge]
            return site_ok, (a, at + access, b, router.chains.chain_time_s[edge] - at + access, edge, at, access)

        steps["site_preparation_s"], _, (site_ok, args) = best_of(prepare, repeat)
        g = router.graph

        def kernel():
            return reach_batch(
                g.indptr, g.indices, g.data, *args,
                router._attach_indptr, router._attach_point, router._attach_time,
                router._chain_indptr, router._chain_point, router._point_at, router._point_access,
                len(router._demand_ok), float(cutoff),
            )

        steps["kernel_single_thread_s"], _, out = best_of(kernel, repeat)
        kernel_pairs = int(len(out[0]))

    except Exception as exc:  # the private layout changed: say so rather than fail the benchmark
        steps["error"] = repr(exc)
    return {
        "cprofile_total_s": total,
        "cprofile_top_by_tottime": top,
        "kernel_alone_single_thread_s": steps.get("kernel_single_thread_s"),
        "kernel_pairs": kernel_pairs,
        "steps_best_s": steps,
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.cold_numba:
        os.environ["NUMBA_CACHE_DIR"] = cold_cache = tempfile.mkdtemp(prefix="numba-cold-")
        atexit.register(shutil.rmtree, cold_cache, ignore_errors=True)
    started = time.perf_counter()
    rss = {"start_mib": max_rss_mib()}
    load_before = os.getloadavg()

    import geoplan._dijkstra  # noqa: F401  (import before timing; compiles lazily on first call)
    from geoplan.reach import Router, reference_graph

    try:
        import pandana  # noqa: F401

        have_pandana = not args.no_pandana
        pandana_error = None if have_pandana else "skipped (--no-pandana)"
    except ImportError as exc:
        have_pandana, pandana_error = False, repr(exc)

    numba_cache = None

    print("building Wuchang inputs ...", flush=True)
    inputs = build_wuchang(args.sites, args.seed)
    net, demand, ds = inputs.network, inputs.demand, inputs.demand_snap
    rss["after_inputs_mib"] = max_rss_mib()
    sets = {"community": inputs.site_sets["community"]}
    if args.sites > 0:
        sets["nodes_sample"] = inputs.site_sets["nodes_sample"]

    # ---- geoplan: preparation, first call (compile), best-of queries
    t = time.perf_counter()
    router = Router(net, ds)
    router_first = time.perf_counter() - t
    router_best, _, _ = best_of(lambda: Router(net, ds), args.repeat)
    cutoff = args.cutoff

    results: dict[str, dict] = {}
    frames: dict[str, dict[str, pd.DataFrame]] = {}
    first_call = None
    for name, (sites, ss) in sets.items():
        print(f"[{name}] geoplan ...", flush=True)
        t = time.perf_counter()
        router.travel_times(ss, cutoff_s=cutoff)  # warm-up (the very first one also compiles / loads the cache)
        warm = time.perf_counter() - t
        if first_call is None:
            first_call = warm
            stats = geoplan._dijkstra.reach_batch.stats
            numba_cache = {"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}
        best, times, matrix = best_of(lambda: router.travel_times(ss, cutoff_s=cutoff), args.repeat)
        frames[name] = {"geoplan": geoplan_frame(matrix)}
        results[name] = {
            "sites": len(sites),
            "sites_snapped": int((ss["edge_id"] >= 0).sum()),
            "geoplan": {
                "warmup_call_s": warm,
                "query_best_s": best,
                "query_median_s": float(np.median(times)),
                "repeats": len(times),
                "threads": max(1, min(os.cpu_count() or 1, int((ss["edge_id"] >= 0).sum()) // 256)),
                "pairs": int(matrix.times_s.nnz),
            },
        }
    rss["after_geoplan_mib"] = max_rss_mib()

    # ---- networkx and pandana on the reference graph of each site set
    for name, (sites, ss) in sets.items():
        res = results[name]
        site_ids = ss.index[ss["edge_id"] >= 0].to_numpy()
        repeat = args.baseline_repeat if name == "community" else args.large_baseline_repeat
        print(f"[{name}] reference graph ...", flush=True)
        t = time.perf_counter()
        G = reference_graph(net, {"d": ds, "s": ss})
        res["reference_graph"] = {"build_s": time.perf_counter() - t, "nodes": G.number_of_nodes(), "edges": G.number_of_edges()}

        print(f"[{name}] networkx ...", flush=True)
        best, times, raw = best_of(lambda: networkx_reach(G, site_ids, cutoff), repeat)
        frames[name]["networkx"] = networkx_frame(raw)
        res["networkx"] = {"query_best_s": best, "repeats": len(times), "threads": 1, "pairs": len(raw[0])}

        if have_pandana:
            print(f"[{name}] pandana ...", flush=True)
            t = time.perf_counter()
            tables = PandanaTables(G, demand, ds, sites, ss)
            tables_s = time.perf_counter() - t
            with quiet_stdout():  # the C++ side prints its progress to stdout
                t = time.perf_counter()
                pnet = tables.build()
                construct_s = time.perf_counter() - t
            pandana_reach(pnet, tables, site_ids[:5], cutoff)  # warm-up
            best, times, frame = best_of(lambda: pandana_reach(pnet, tables, site_ids, cutoff), repeat)
            core_best, _, _ = best_of(lambda: pandana_core(pnet, tables, site_ids, cutoff), repeat)
            frames[name]["pandana"] = frame
            res["pandana"] = {
                "tables_from_G_s": tables_s,
                "construction_s": construct_s,
                "query_best_s": best,
                "query_core_cpp_best_s": core_best,
                "repeats": len(times),
                "threads": "OpenMP (all cores)",
                "pairs": len(frame),
            }
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

        g = res["geoplan"]["query_best_s"]
        res["speedup_vs_networkx"] = res["networkx"]["query_best_s"] / g
        res["speedup_vs_pandana"] = res["pandana"]["query_best_s"] / g if have_pandana else None
        res["speedup_vs_pandana_core"] = res["pandana"]["query_core_cpp_best_s"] / g if have_pandana else None
        prof = res["profile_geoplan"] = profile_geoplan(router, ss, cutoff, args.repeat)
        kernel = prof["kernel_alone_single_thread_s"]
        if kernel is not None:
            prof["kernel_share_of_query"] = kernel / g if res["geoplan"]["threads"] == 1 else None
            prof["outside_kernel_s"] = g - kernel if res["geoplan"]["threads"] == 1 else None
            prof["speedup_vs_networkx_kernel_only"] = res["networkx"]["query_best_s"] / kernel
            if res["geoplan"]["threads"] > 1:
                prof["note"] = "the query ran on several threads; the kernel was timed on one, so shares are not given"
        del G
        if have_pandana:
            del pnet, tables

    default = results["community"]
    payload = {
        "benchmark": "reach: walking times sites -> demand points within the cutoff, Wuchang district (Wuhan)",
        "speedup_vs_networkx": default["speedup_vs_networkx"],
        "speedup_vs_pandana": default["speedup_vs_pandana"],
        "results_identical": bool(all(r["results_identical"] for r in results.values())),
        "goals": {k: {"target": v, "met": None if default[k] is None else bool(default[k] >= v)} for k, v in GOALS.items()},
        "cutoff_s": cutoff,
        "site_set_default": "community",
        "timings_note": (
            "query times are wall-clock best of N after a warm-up call; geoplan's Router preparation, the reference "
            "graph and pandana's construction (contraction hierarchy) are reported apart and not in the ratios. "
            "speedup_vs_pandana uses Network.nodes_in_range as documented (C++ range queries + its Python "
            "post-processing); speedup_vs_pandana_core uses the C++ call alone."
        ),
        "pandana_precision_note": (
            "pandana's C++ graph stores each edge weight as unsigned integer milliseconds (weight*1000 truncated) and "
            "returns float32 distances, so its times run slightly short of the exact ones and pairs within a few "
            "tenths of a second of the cutoff may differ; it is checked against --pandana-tol, not 1e-6."
        ),
        "geoplan": {
            "router_prepare_first_s": router_first,
            "router_prepare_best_s": router_best,
            "first_call_s": first_call,
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
        "versions": versions("numpy", "numba", "networkx", "pandana", "scipy", "pandas", "geopandas", "shapely", "osmnx"),
        "machine": {**machine(), "loadavg_1_5_15_before": load_before, "loadavg_1_5_15_after": os.getloadavg()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "total_runtime_s": None,
    }
    payload["total_runtime_s"] = time.perf_counter() - started
    write_json(args.out, payload)
    print_table(payload, results)
    print(f"\nwrote {args.out}")
    return payload


def print_table(payload: dict, results: dict) -> None:
    def ms(x):
        return "—" if x is None else f"{1000 * x:9.1f}"

    def ratio(x):
        return "—" if x is None else f"{x:8.1f}x"

    g = payload["geoplan"]
    print()
    print(f"geoplan Router prepare: {1000 * g['router_prepare_best_s']:.1f} ms   first call: {1000 * g['first_call_s']:.0f} ms ({g['first_call_includes']})")
    header = f"{'site set':<14}{'sites':>6}{'pairs':>9} | {'geoplan ms':>10}{'networkx ms':>12}{'pandana ms':>11}{'(core ms)':>10} | {'vs nx':>9}{'vs pandana':>11} | {'identical':>9}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        p = r.get("pandana") or {}
        print(
            f"{name:<14}{r['sites']:>6}{r['geoplan']['pairs']:>9} | {ms(r['geoplan']['query_best_s']):>10}{ms(r['networkx']['query_best_s']):>12}"
            f"{ms(p.get('query_best_s')):>11}{ms(p.get('query_core_cpp_best_s')):>10} | {ratio(r['speedup_vs_networkx']):>9}{ratio(r['speedup_vs_pandana']):>11} | {str(r['results_identical']):>9}"
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
        if prof.get("kernel_alone_single_thread_s") is not None:
            steps = ", ".join(f"{k.removesuffix('_s')} {1000 * v:.2f}" for k, v in prof["steps_best_s"].items() if isinstance(v, float))
            extra.append(
                f"geoplan query {1000 * r['geoplan']['query_best_s']:.2f} ms on {r['geoplan']['threads']} thread(s); steps (ms): {steps}; "
                f"networkx / kernel alone = {prof['speedup_vs_networkx_kernel_only']:.1f}x"
            )
        print(f"[{name}] " + "; ".join(extra[:2]))
        for line in extra[2:]:
            print(f"    {line}")
    goals = payload["goals"]
    print(
        "goals (community sites): "
        + ", ".join(f"{k} >= {v['target']:.0f}: {'n/a' if v['met'] is None else 'met' if v['met'] else 'MISSED'}" for k, v in goals.items())
        + f"; results_identical: {payload['results_identical']}; total {payload['total_runtime_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
