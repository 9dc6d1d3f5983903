"""End-to-end time of `geoplan coverage` on the default region, cold and warm.

Cold: an empty network cache (the street network is clipped, oriented and
prepared from the GeoParquet). Warm: the same command again, reading the cached
network. Each run is a fresh process, as a planner would start it, so both
include Python's start-up and imports. Writes bench/results/cli.json.

    python bench/cli.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(cache_dir: Path, out_dir: Path) -> dict:
    command = [
        sys.executable, "-m", "geoplan.cli", "coverage", "--region", "wuchang",
        "--out", str(out_dir / "layers"), "--map", str(out_dir / "map.html"), "--cache-dir", str(cache_dir),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"geoplan coverage failed:\n{done.stderr}")
    return {"seconds": seconds, "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak_rss_mb_children": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (the best is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, warm = [], []
        for _ in range(args.repeat):
            cache = tmp / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(run_once(cache, tmp))
            warm.append(run_once(cache, tmp))
    best_cold = min(r["seconds"] for r in cold)
    best_warm = min(r["seconds"] for r in warm)
    result = {
        "command": "geoplan coverage --region wuchang",
        "cold_seconds": best_cold,
        "warm_seconds": best_warm,
        "warm_vs_cold": best_cold / best_warm,
        "runs": {"cold": cold, "warm": warm},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
    }
    out = REPO / "bench" / "results" / "cli.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"geoplan coverage (Wuchang): cold {best_cold:.1f} s, warm {best_warm:.1f} s (best of {args.repeat}); wrote {out}")


if __name__ == "__main__":
    main()
