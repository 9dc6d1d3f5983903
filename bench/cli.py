"""End-to-end time of `geoplan coverage` on the default region, cold and warm.

Cold: an empty network cache (the street network is clipped, oriented and
prepared from the GeoParquet). Warm: the same command again, reading the cached
network. Each run is a fresh process, as a planner would start it, so both
include Python's start-up and imports. Cold and warm runs alternate, the same
number of each; the figures are the median (with min and max) of the process
wall times, and ``warm_vs_cold`` is the ratio of the medians.

Goals: every run succeeds, and the warm run is faster than the cold one (the
cache pays for itself). Writes ``bench/results/cli.json``; exits 0 whether or
not the goals pass.

    python bench/cli.py [--repeat 3]
    python bench/cli.py --quick          # one run of each
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, Timing, goal, machine, speedup, write_result  # noqa: E402

COMMAND = ["-m", "geoplan.cli", "coverage", "--region", "wuchang"]


def run_once(cache_dir: Path, out_dir: Path) -> dict:
    command = [sys.executable, *COMMAND, "--out", str(out_dir / "layers"), "--map", str(out_dir / "map.html"), "--cache-dir", str(cache_dir)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": seconds,
        "returncode": done.returncode,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "peak_rss_mib_children": after.ru_maxrss / 1024,
        **({"stderr_tail": done.stderr[-6000:]} if done.returncode else {}),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind, alternating cold and warm (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one run of each kind")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    record = machine("numba", "pandas", "geopandas", "shapely", "pyogrio", "folium")

    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="geoplan-bench-cli-") as tmp:
        tmp = Path(tmp)
        for i in range(repeat):
            cache = tmp / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            print(f"run {i + 1}/{repeat}: cold ...", flush=True)
            cold.append(run_once(cache, tmp))
            print(f"run {i + 1}/{repeat}: warm ...", flush=True)
            warm.append(run_once(cache, tmp))
            if cold[-1]["returncode"] or warm[-1]["returncode"]:
                print(f"geoplan coverage failed:\n{(cold[-1].get('stderr_tail') or warm[-1].get('stderr_tail'))}", file=sys.stderr)
                break

    ok = all(r["returncode"] == 0 for r in cold + warm)
    cold_t = Timing(times_s=tuple(r["seconds"] for r in cold))
    warm_t = Timing(times_s=tuple(r["seconds"] for r in warm))
    ratio = speedup(cold_t, warm_t) if ok else None
    result = {
        "benchmark": "geoplan coverage --region wuchang, end to end in a fresh process, cold and warm network cache",
        "goals": [
            goal("all_runs_succeeded", ok, True, op="=="),
            goal("warm_vs_cold", ratio, 1.0, op=">", note="median cold / median warm: the cached network makes the run faster"),
        ],
        "command": "python " + " ".join(COMMAND),
        "statistic": f"median (min, max) of {cold_t.repeats} process wall times per kind, cold and warm alternating",
        "cold": cold_t.as_dict(),
        "warm": warm_t.as_dict(),
        "cold_median_s": cold_t.median_s,
        "warm_median_s": warm_t.median_s,
        "warm_vs_cold": ratio,
        "runs": {"cold": cold, "warm": warm},
        "machine": record,
    }
    write_result("cli", result)
    print(
        f"geoplan coverage (Wuchang), median [min-max] of {cold_t.repeats}: cold {cold_t.median_s:.1f} s [{cold_t.min_s:.1f}-{cold_t.max_s:.1f}], "
        f"warm {warm_t.median_s:.1f} s [{warm_t.min_s:.1f}-{warm_t.max_s:.1f}]"
        + (f", cold / warm = {ratio:.2f}x" if ratio else "")
    )
    return result


if __name__ == "__main__":
    main()
