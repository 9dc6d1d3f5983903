"""Benchmark: ``geoplan batch`` over every Wuhan district on 1 and 2 Dask workers, and a national run extrapolated from it.

Run from the repository root, after a batch has filled the prepared-network
cache (``$GEOPLAN_CACHE_DIR``, else ``~/.cache/geoplan``; the record says
how many networks each run had to prepare)::

    python bench/batch.py                       # 13 districts, existing + recommend p=5, 10 and 15 min, 1 and 2 workers
    python bench/batch.py --quick               # 3 districts, existing only
    python bench/batch.py --workers 1 2 4 --counties 2898 --national-workers 1 8 32 128

Each run is the command a planner types, in a fresh process with a fresh
batch folder (``out/bench/batch-w<N>``, so nothing is resumed), timed end to
end (Python start, the local cluster, every task, the files across regions).
Per task, the run log gives the worker's wall time and its peak resident
memory (sampled every 20 ms by the task). A last run on the 2-worker folder
times a resume (every task done before); the 1- and 2-worker folders must
hold the same bytes.

National extrapolation (1-worker run): per scenario, the seconds of the
tasks a warm worker ran are fitted as ``a + b * population`` (least squares,
population of the analysed part); a worker's first task pays a start-up cost
beside (imports, first reads), the mean excess of first tasks over the fit.
``--counties`` county sizes are drawn without replacement from the 2020
census table's county populations (seeded); each county's predicted seconds
(its scenarios summed) are scheduled longest first on N workers, each worker
paying the start-up once, and the makespan is reported in hours, ideal and
at the parallel efficiency measured here from 1 to 2 workers.
``--reanalyse`` recomputes every figure from the last run's folders and the
timings in ``bench/results/batch.json``, without running a batch. Writes
``bench/results/batch.json``; exits 0 whether or not goals pass.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, goal, machine, measure, write_result  # noqa: E402

CENSUS = REPO / "data" / "census" / "china_census2020_county_age.csv"
GOAL_SPEEDUP = 1.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--districts", default="all", help="districts of wuchang.toml's boundary file ('all', or keys/codes)")
    parser.add_argument("--scenario", action="append", help='scenarios (default: "existing" and "recommend p=5")')
    parser.add_argument("--thresholds", default="10,15", help="minutes, comma-separated")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Dask worker counts to time")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per worker count (each a fresh batch folder)")
    parser.add_argument("--counties", type=int, default=2898, help="counties in the simulated national run")
    parser.add_argument("--national-workers", type=int, nargs="+", default=[1, 2, 8, 32, 128])
    parser.add_argument("--seed", type=int, default=20201101, help="RNG seed of the county sample")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the batch processes (others share this machine)")
    parser.add_argument("--quick", action="store_true", help="3 districts, existing only")
    parser.add_argument("--reanalyse", action="store_true", help="recompute the figures from the last run (no batch is run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.districts, args.scenario = "jianghan,qingshan,hannan", ["existing"]
    args.scenario = args.scenario or ["existing", "recommend p=5"]
    return args


def command(args, workers: int, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "geoplan.cli", "batch", "--districts", args.districts, "--thresholds", args.thresholds,
           "--workers", str(workers), "--out", str(out)]
    for scenario in args.scenario:
        cmd += ["--scenario", scenario]
    return cmd


def run_once(args, workers: int, out: Path) -> dict:
    """One batch in a fresh process and folder; its return code, the end of its output and its run log."""
    shutil.rmtree(out, ignore_errors=True)
    before = cache_entries()
    done = subprocess.run(command(args, workers, out), cwd=REPO, capture_output=True, text=True,
                          preexec_fn=(lambda: os.nice(args.nice)) if args.nice else None)
    logs = sorted((out / "_log").glob("run-*.json"))
    return {
        "returncode": done.returncode, "stdout_tail": done.stdout[-3000:], "stderr_tail": done.stderr[-2000:],
        "log": json.loads(logs[-1].read_text()) if logs else None, "networks_prepared": cache_entries() - before,
    }


def cache_entries() -> int:
    from geoplan.region import default_cache_dir

    folder = default_cache_dir()
    return sum(1 for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else 0


def folder_hashes(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and "_log" not in p.relative_to(out).parts}


def per_task(log: dict, out: Path) -> pd.DataFrame:
    """One row per task of a run log: status, seconds, memory, whether the worker was warm, and the region's size (its marker)."""
    rows = []
    for position, task in enumerate(log["tasks"]):
        marker = out / "_done" / task["region"] / f"{task['scenario']}.json"
        size = json.loads(marker.read_text()).get("size", {}) if marker.exists() else {}
        before = task.get("worker_tasks_before")
        if before is None and log.get("workers") == 1:  # logs before the field: one worker runs the tasks in grid order
            before = position
        rows.append({"region": task["region"], "scenario": task["scenario"], "status": task["status"], "seconds": task["seconds"],
                     "peak_rss_mb": task["peak_rss_mb"], "rss_start_mb": task["rss_start_mb"], "warm": bool(before), **size})
    return pd.DataFrame(rows)


def per_region(tasks: pd.DataFrame) -> pd.DataFrame:
    """Seconds, peak memory (and what the region adds to the worker's) and size per analysed region."""
    ok = tasks[tasks["status"] == "ok"].assign(added_mb=lambda t: t["peak_rss_mb"] - t["rss_start_mb"])
    return ok.groupby("region", sort=False).agg(
        seconds=("seconds", "sum"), tasks=("seconds", "size"), cold_tasks=("warm", lambda w: int((~w).sum())),
        peak_rss_mb=("peak_rss_mb", "max"), added_mb=("added_mb", "max"), pop_total=("pop_total", "first"),
        pop_60=("pop_60", "first"), demand_cells=("demand_cells", "first"), network_edges=("network_edges", "first"),
    )


def fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Least squares ``y = a + b x``, with R²."""
    b, a = np.polyfit(x, y, 1)
    predicted = a + b * x
    r2 = 1 - ((y - predicted) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    return {"intercept_s": float(a), "slope_s_per_unit": float(b), "r2": float(r2), "n": int(len(x))}


def makespan_s(durations: np.ndarray, workers: int) -> float:
    """Longest-first list scheduling of ``durations`` on ``workers``: when the last worker finishes."""
    loads = [0.0] * workers
    heapq.heapify(loads)
    for d in sorted(durations, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + d)
    return max(loads)


def national(tasks: pd.DataFrame, args, efficiency: float | None) -> dict:
    census = pd.read_csv(CENSUS, dtype={"code": str})
    counties = census[census["level"] == "county"]
    rng = np.random.default_rng(args.seed)
    n = min(args.counties, len(counties))
    drawn = counties["pop_total"].to_numpy(dtype=float)[rng.choice(len(counties), size=n, replace=False)]
    ok = tasks[tasks["status"] == "ok"]
    warm = ok[ok["warm"]]
    fits, by_cells, seconds = {}, {}, np.zeros(n)
    for scenario, rows in warm.groupby("scenario", sort=False):
        fits[scenario] = fit(rows["pop_total"].to_numpy(dtype=float), rows["seconds"].to_numpy(dtype=float))
        by_cells[scenario] = fit(rows["demand_cells"].to_numpy(dtype=float), rows["seconds"].to_numpy(dtype=float))
        floor = rows["seconds"].min()  # never below the cheapest district measured
        seconds += np.maximum(fits[scenario]["intercept_s"] + fits[scenario]["slope_s_per_unit"] * drawn, floor)
    cold = ok[~ok["warm"]]
    start_up = [row.seconds - (fits[row.scenario]["intercept_s"] + fits[row.scenario]["slope_s_per_unit"] * row.pop_total)
                for row in cold.itertuples() if row.scenario in fits]
    start_up_s = float(np.mean(start_up)) if start_up else 0.0
    by_workers = {}
    for workers in args.national_workers:
        ideal = (makespan_s(seconds, workers) + start_up_s) / 3600
        by_workers[str(workers)] = {
            "ideal_hours": round(ideal, 2),
            "at_measured_efficiency_hours": round(ideal / efficiency, 2) if efficiency else None,
        }
    measured = ok.drop_duplicates("region")["pop_total"]
    return {
        "counties": n,
        "county_sizes": f"{n} of the {len(counties)} county rows of {CENSUS.name} (pop_total), drawn without replacement, "
                        f"numpy default_rng({args.seed})",
        "population_drawn": {"total": float(drawn.sum()), "median": float(np.median(drawn)), "max": float(drawn.max())},
        "measured_population_range": [float(measured.min()), float(measured.max())],
        "counties_beyond_measured_range": int((drawn > measured.max()).sum()),
        "fit": {"model": "per scenario, seconds of a task on a warm worker = intercept + slope * population analysed (1-worker run)",
                **{s: {**f, "slope_s_per_100k_people": f["slope_s_per_unit"] * 1e5} for s, f in fits.items()}},
        "fit_by_demand_cells": {**by_cells, "note": "for reference: the census table has no populated area per county to use it"},
        "worker_start_up_s": start_up_s,
        "predicted_task_seconds_total": float(seconds.sum()),
        "cpu_hours": round(float(seconds.sum()) / 3600, 2),
        "scheduling": "longest first on N workers (a county's scenarios back to back on one worker), plus one worker start-up; makespan",
        "parallel_efficiency_used": efficiency,
        "by_workers": by_workers,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    record = machine("dask", "distributed", "psutil", "geopandas")  # replaced by the last run's with --reanalyse
    started = time.perf_counter()
    runs, timings = {}, {}
    if args.reanalyse:  # the last run's folders, and the timings the last record holds
        previous = json.loads((REPO / "bench" / "results" / "batch.json").read_text())
        record = previous["machine"]
        for workers in args.workers:
            out = REPO / "out" / "bench" / f"batch-w{workers}"
            logs = sorted((out / "_log").glob("run-*.json"), key=lambda p: json.loads(p.read_text())["wall_s"])
            log = json.loads(logs[-1].read_text()) if logs else None  # the full run, not the resume
            runs[workers] = {"returncode": 0 if log else None, "log": log, "stderr_tail": "",
                             "networks_prepared": previous["networks_prepared_per_run"].get(str(workers))}
            timings[str(workers)] = previous["timings"][str(workers)]
        resume_timing = previous["timings"]["resume"]
    else:
        for workers in args.workers:
            out = REPO / "out" / "bench" / f"batch-w{workers}"
            timing = measure(lambda: run_once(args, workers, out), args.repeat)
            runs[workers], timings[str(workers)] = timing.result, timing.as_dict()
        last = max(args.workers)
        resume = measure(lambda: subprocess.run(command(args, last, REPO / "out" / "bench" / f"batch-w{last}"), cwd=REPO,
                                                capture_output=True, text=True), 1)
        resume_timing = resume.as_dict()
    last = max(args.workers)
    last_out = REPO / "out" / "bench" / f"batch-w{last}"

    first = min(args.workers)
    first_out = REPO / "out" / "bench" / f"batch-w{first}"
    ok = {w: r["returncode"] == 0 and r["log"] is not None for w, r in runs.items()}
    log = runs[first]["log"]
    tasks = per_task(log, first_out) if log else pd.DataFrame()
    regions = per_region(tasks) if len(tasks) else pd.DataFrame()
    statuses = tasks.groupby("status").size().to_dict() if len(tasks) else {}
    analysed = list(regions.index)
    skipped = sorted(set(tasks.loc[tasks["status"] == "skipped", "region"])) if len(tasks) else []
    failed = sorted(set(tasks.loc[tasks["status"] == "failed", "region"])) if len(tasks) else []
    seconds_by_workers = {str(w): timings[str(w)]["median_s"] for w in args.workers}
    regions_total = len(set(tasks["region"])) if len(tasks) else 0
    speedup = seconds_by_workers["1"] / seconds_by_workers["2"] if {"1", "2"} <= set(seconds_by_workers) else None
    efficiency = speedup / 2 if speedup else None
    identical = folder_hashes(first_out) == folder_hashes(last_out) if all(ok.values()) else False
    summary = pd.read_csv(last_out / "summary.csv") if (last_out / "summary.csv").exists() else pd.DataFrame()
    top = summary["threshold_min"].max() if len(summary) else None
    coverage = []
    for row in summary.to_dict("records"):
        if row["status"] != "ok" and row["scenario"] == args.scenario[0].split()[0] or (row["status"] == "ok" and row["threshold_min"] == top):
            coverage.append({k: row.get(k) for k in ("region", "name_zh", "scenario", "status", "analysed_pct", "sites", "covered_60_pct",
                                                      "covered_60_pct_of_district", "covered_80_pct", "pop_60_outside_network",
                                                      "pop_80_outside_network", "review", "reason")})
    rss = regions["peak_rss_mb"] if len(regions) else pd.Series(dtype=float)
    added = regions["added_mb"] if len(regions) else pd.Series(dtype=float)
    payload = {
        "benchmark": "geoplan batch over Wuhan's districts on 1 and 2 local Dask workers; a national run extrapolated",
        "command": " ".join(command(args, 2, Path("out/batch"))[1:]).replace(sys.executable, "python"),
        "goals": [
            goal("all_runs_succeeded", all(ok.values()), True, op="=="),
            goal("regions_failed", len(failed), 0, op="==", note="skipped regions (no street network there) are not failures"),
            goal("outputs_identical_1_vs_2_workers", identical, True, op="==",
                 note="every file of the two batch folders but the run log, byte for byte"),
            goal("speedup_2_vs_1_workers", speedup, GOAL_SPEEDUP, op=">=",
                 note="wall time of the whole command, ratio of medians; a 2-core machine shared with other work"),
            goal("resume_s", resume_timing["median_s"], 0.1 * seconds_by_workers[str(first)], op="<",
                 note="a rerun of the finished batch (every task resumed) against a tenth of the 1-worker run"),
        ],
        "regions": len(analysed),
        "regions_total": regions_total,
        "regions_analysed": analysed,
        "regions_skipped": skipped,
        "regions_failed": failed,
        "tasks": statuses,
        "seconds_by_workers": seconds_by_workers,
        "regions_per_second": {w: (len(analysed) / s if s else None) for w, s in seconds_by_workers.items()},
        "speedup_2_vs_1_workers": speedup,
        "parallel_efficiency_2_workers": efficiency,
        "resume_s": resume_timing["median_s"],
        "peak_rss_mb_per_region": {
            "what": "the worker process's peak resident memory while the region's tasks ran (max over its tasks), 1-worker run; "
                    "it includes what the worker holds from earlier tasks (imports, caches); added_mb is the rise during the task",
            "max": float(rss.max()) if len(rss) else None, "median": float(rss.median()) if len(rss) else None,
            "added_mb_max": float(added.max()) if len(added) else None, "added_mb_median": float(added.median()) if len(added) else None,
            "by_region": {k: float(v) for k, v in rss.items()},
            "added_mb_by_region": {k: round(float(v), 1) for k, v in added.items()},
        },
        "per_region": regions.reset_index().to_dict("records") if len(regions) else [],
        "coverage": {"threshold_min": top, "rows": coverage},
        "national_extrapolated_hours": national(tasks, args, efficiency) if len(regions) >= 2 else None,
        "timings": {"what": "wall time of `python -m geoplan.cli batch ...` in a fresh process and batch folder", **timings,
                    "resume": resume_timing},
        "networks_prepared_per_run": {str(w): r["networks_prepared"] for w, r in runs.items()},
        "run_logs": {str(w): {"wall_s": r["log"]["wall_s"], "loadavg": r["log"]["loadavg"]} if r["log"] else None for w, r in runs.items()},
        "failures": {str(w): {"returncode": r["returncode"], "stderr_tail": r["stderr_tail"]} for w, r in runs.items() if not ok[w]},
        "machine": record,
        "args": vars(args),
        "reanalysed": bool(args.reanalyse),
        "total_runtime_s": time.perf_counter() - started,
    }
    write_result("batch", payload)
    print(f"seconds by workers {seconds_by_workers}; regions analysed {len(analysed)} of {regions_total}; skipped {skipped}; "
          f"peak RSS per region max {payload['peak_rss_mb_per_region']['max']} MB")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a bench reports; it never fails the build
        logging.exception("bench/batch.py failed")
    sys.exit(0)
