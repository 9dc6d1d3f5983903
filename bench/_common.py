"""Shared helpers for the benchmarks in ``bench/``: Wuchang inputs, timers, memory, environment.

Run the benchmarks from the repository root (``python bench/reach.py``); the
data paths below are relative to it.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

BOUNDARIES = "data/boundaries/wuhan_districts.geojson"
STREETS = "data/osm/wuhan_osm_streets_fua8989.parquet"
POPULATION = "data/population/wuhan_worldpop2020_agegroups_100m.tif"
COMMUNITIES = "data/communities/wuhan_community_units.gpkg"
WUCHANG_ADCODE = "420106"
WUCHANG_NAME = "武昌区"


@dataclass
class Inputs:
    """Everything a reach benchmark needs for one district."""

    boundary: Any  # GeoDataFrame, network CRS
    network: Any  # geoplan.network.WalkNetwork
    demand: Any  # GeoDataFrame of populated cells (cell-centre points)
    demand_snap: Any  # snap frame of the demand
    site_sets: dict  # name -> (GeoDataFrame of site points, snap frame)
    timings_s: dict  # how long each input took to build


def build_wuchang(n_large_sites: int, seed: int, cache_dir: str = ".cache") -> Inputs:
    """Wuchang's walk network, demand, the 124 community sites and a seeded sample of network nodes."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    from geoplan.demand import load_demand
    from geoplan.network import load_network
    from geoplan.snapping import point_on_streets_within, snap_to_network

    timings = {}
    t = time.perf_counter()
    boundary = gpd.read_file(REPO / BOUNDARIES)
    boundary = boundary[boundary.adcode == WUCHANG_ADCODE]
    network = load_network(REPO / STREETS, boundary=boundary, buffer_m=1000, cache_dir=REPO / cache_dir)
    timings["network_s"] = time.perf_counter() - t

    t = time.perf_counter()
    demand = load_demand(REPO / POPULATION, boundary, crs=network.crs)
    timings["demand_s"] = time.perf_counter() - t

    t = time.perf_counter()
    units = gpd.read_file(REPO / COMMUNITIES)
    units = units[units.district == WUCHANG_NAME]
    community = gpd.GeoDataFrame(geometry=point_on_streets_within(network, units.geometry))
    community.index.name = "site_id"

    # a larger set: network nodes inside the district, sampled with a seeded RNG
    region = shapely.union_all(boundary.to_crs(network.crs).geometry.to_numpy())
    nodes = network.nodes
    inside = nodes.index[shapely.contains_xy(region, nodes["x"].to_numpy(), nodes["y"].to_numpy())]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(inside), size=min(n_large_sites, len(inside)), replace=False))
    picked = nodes.loc[inside[chosen]]
    large = gpd.GeoDataFrame(
        index=pd.Index(picked.index.to_numpy(), name="site_id"),
        geometry=gpd.points_from_xy(picked["x"], picked["y"]),
        crs=network.crs,
    )
    timings["sites_s"] = time.perf_counter() - t

    t = time.perf_counter()
    demand_snap = snap_to_network(network, demand)
    site_sets = {
        "community": (community, snap_to_network(network, community)),
        "nodes_sample": (large, snap_to_network(network, large)),
    }
    timings["snap_s"] = time.perf_counter() - t
    return Inputs(
        boundary=boundary.to_crs(network.crs),
        network=network,
        demand=demand,
        demand_snap=demand_snap,
        site_sets=site_sets,
        timings_s=timings,
    )


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeat`` times; return the best wall time, all times and the last result."""
    times = []
    result = None
    for _ in range(max(1, repeat)):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), times, result


def traced_peak_mib(fn: Callable[[], Any]) -> float:
    """Peak of Python-heap allocations (tracemalloc, includes numpy buffers) while ``fn`` runs, in MiB.

    Native allocations made outside the Python allocator (numba's runtime
    inside a compiled kernel, C++ libraries such as pandana) are not seen.
    """
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - base) / 2**20


def max_rss_mib() -> float:
    """The process's peak resident set size so far (``ru_maxrss``), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def versions(*packages: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python_implementation": platform.python_implementation(),
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
