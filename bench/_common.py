"""Shared harness for the benchmarks in ``bench/``: timing, goals, the machine record, Wuchang inputs.

Every bench times geoplan and its baselines with :func:`measure` (same
repeats on both sides; median, min and max), compares medians with
:func:`speedup`, states its goals with :func:`goal`, starts its record with
:func:`machine` (load average at start) and writes it with
:func:`write_result`. Benches exit 0 and say in the JSON whether each goal
passed.

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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of ``repeats`` calls of one function, and what the last call returned.

    Every bench reports the same statistic for geoplan and for each baseline:
    the median, with the min and max beside it; ratios are taken between medians.
    """

    times_s: tuple[float, ...]
    warmup_times_s: tuple[float, ...] = ()
    result: Any = field(default=None, repr=False, compare=False)

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def min_s(self) -> float:
        return float(min(self.times_s))

    @property
    def max_s(self) -> float:
        return float(max(self.times_s))

    @property
    def repeats(self) -> int:
        return len(self.times_s)

    def as_dict(self) -> dict[str, Any]:
        """The JSON record: median, min, max, repeats, the raw times and the warm-up calls' times (seconds)."""
        return {
            "statistic": "median",
            "median_s": self.median_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "repeats": self.repeats,
            "times_s": list(self.times_s),
            "warmup_times_s": list(self.warmup_times_s),
        }


def measure(fn: Callable[[], Any], repeats: int, *, warmup: int = 0) -> Timing:
    """Call ``fn`` ``warmup`` times, then ``repeats`` times (``gc.collect()`` before each), timing each call.

    The warm-up calls (first-call costs: compilation, caches) are timed apart
    and left out of the statistic. Returns a :class:`Timing` (median, min, max,
    raw times) holding the last call's result.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")

    def once():
        gc.collect()
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    result = None
    warm, times = [], []
    for _ in range(warmup):
        seconds, result = once()
        warm.append(seconds)
    for _ in range(repeats):
        seconds, result = once()
        times.append(seconds)
    return Timing(times_s=tuple(times), warmup_times_s=tuple(warm), result=result)


def speedup(baseline: Timing, ours: Timing) -> float:
    """How many times faster ``ours`` is than ``baseline``: the ratio of their medians."""
    return baseline.median_s / ours.median_s


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


def machine(*packages: str) -> dict[str, Any]:
    """The machine at the start of a bench: load average, CPUs, platform and package versions.

    Call it first thing in ``main()``: ``loadavg_start`` is the 1/5/15-minute
    load before the bench adds its own; :func:`write_result` adds ``loadavg_end``.
    On a machine whose 1-minute load per usable CPU is above 0.5, timings are
    noisy and ratios less trustworthy; ``loaded_at_start`` says so.
    """
    load = os.getloadavg()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "loadavg_start": list(load),
        "load_per_cpu_start": load[0] / max(1, usable or 1),
        "loaded_at_start": load[0] / max(1, usable or 1) > 0.5,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python_implementation": platform.python_implementation(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions("geoplan", "numpy", *packages),
    }


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda v, t: v >= t,
    ">": lambda v, t: v > t,
    "<=": lambda v, t: v <= t,
    "<": lambda v, t: v < t,
    "==": lambda v, t: v == t,
}


def goal(name: str, value: Any, target: Any, *, op: str = ">=", note: str | None = None) -> dict[str, Any]:
    """One goal of a bench: ``{"name", "target", "op", "value", "passed"}``.

    ``passed`` is ``value op target``; a value that was not measured (None) does not pass.
    """
    passed = False if value is None else bool(_OPS[op](value, target))
    record = {"name": name, "target": target, "op": op, "value": value, "passed": passed}
    if note:
        record["note"] = note
    return record


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` and print the goals; return the path.

    ``data`` must hold ``goals`` (a list of :func:`goal` records) and ``machine``
    (from :func:`machine`); ``goals_passed`` (all of them) and the load average
    at the end are added. Benches exit 0 whether or not their goals pass: the
    pass/fail is in the file, so ``make bench`` completes on a loaded machine.
    """
    goals = data.get("goals")
    if not isinstance(goals, list) or "machine" not in data:
        raise ValueError("write_result needs data['goals'] (a list of goal() records) and data['machine'] (machine())")
    data = {"bench": name, "goals_passed": all(g["passed"] for g in goals), **data}
    data["machine"] = {**data["machine"], "loadavg_end": list(os.getloadavg())}
    path = RESULTS / f"{name}.json"
    write_json(path, data)
    for g in goals:
        print(f"goal {g['name']}: {g['value']!r} {g['op']} {g['target']!r} -> {'passed' if g['passed'] else 'MISSED'}")
    load = data["machine"]["loadavg_start"]
    print(f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {data['machine']['cpus_usable']} CPUs; wrote {path}")
    return path


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, Timing):
        return value.as_dict()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
