"""Load test of the planning service on loopback: warm gap queries, then gaps and care circles while a heavy job runs.

Starts the service as a bureau runs it (``geoplan-api serve``: two web
workers, one job worker, API keys on, a temporary database, the region
preloaded) on 127.0.0.1, and sends every request with a planner's key.

1. Idle: ``--concurrency`` clients in a closed loop (each sends its next
   request as soon as the last one is answered, over its own keep-alive
   connection) send map-viewport gap queries: a seeded random bounding box of
   1-3 km, a group (60+ or 80+), a threshold (5, 10 or 15 min), at most
   ``--limit`` cells each. The top-level figures are this phase's.
2. With a job running: heavy p-median recommendations are queued (the job
   worker solves them one after the other), and once one is running, half the
   clients send the same gap queries and the other half care-circle queries for
   seeded random points of the region (``--points`` distinct ones, each snapped
   to the streets), all at once. ``with_job_running`` (the gap queries) and
   ``care_circles`` hold their figures, and whether a job ran from start to end.

Reports p50/p95/p99 latency, requests per second and errors (any answer that
is not 200, or no answer). Goals: idle gap p95 < 50 ms; with a job running,
gap p95 < 100 ms and care-circle p95 < 150 ms; no errors anywhere. There is
no baseline here; the latencies are percentiles over every answered request.
The script exits 0 whether or not the goals pass (or the server starts): the
JSON says which.

    python bench/api.py                      # 50 clients, 6000 requests at most, 60 s at most
    python bench/api.py --quick              # smoke run: 1000 requests at most, 10 s at most
    python bench/api.py --url http://127.0.0.1:8000 --key gpk_...   # a running server (loopback only)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, goal, machine, write_result  # noqa: E402

GOAL_P95_MS = 50.0
GOAL_GAPS_WITH_JOB_P95_MS = 100.0
GOAL_CIRCLES_P95_MS = 150.0
SERVER_COMMAND = ["-m", "api.cli", "serve", "--host", "127.0.0.1", "--log-level", "warning"]
HEAVY_JOBS = [{"model": "pmedian", "kinds": [{"p": p}], "time_limit_s": 120} for p in (30, 29, 28)]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent clients (one connection each)")
    parser.add_argument("--requests", type=int, default=6000, help="stop after this many requests")
    parser.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds")
    parser.add_argument("--region", default="wuchang")
    parser.add_argument("--limit", type=int, default=500, help="cells per answer at most")
    parser.add_argument("--queries", type=int, default=2000, help="distinct viewport queries to draw from")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s); a timeout counts as an error")
    parser.add_argument("--web-workers", type=int, default=2, help="GEOPLAN_WEB_WORKERS of the service started")
    parser.add_argument("--circle-processes", type=int, default=1, help="GEOPLAN_CIRCLE_PROCESSES of the service started")
    parser.add_argument("--points", type=int, default=100, help="distinct care-circle points to draw from (a map session's clicks)")
    parser.add_argument("--url", help="a running server on loopback (default: start one)")
    parser.add_argument("--key", help="an API key for --url (default: one made in the bench's own database)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1000 requests at most, 10 s at most")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.duration = min(args.requests, 1000), min(args.duration, 10.0)
    return args


class ServerError(RuntimeError):
    """The service could not be started or warmed up: recorded in the result, not raised out of main()."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(region: str, workdir: Path, web_workers: int, circle_processes: int) -> tuple[subprocess.Popen, str, float, str]:
    """``geoplan-api serve`` on a free port with a fresh database; (process, url, startup seconds, a planner's key)."""
    port = free_port()
    env = {**os.environ, "GEOPLAN_DB": str(workdir / "bench.sqlite3"), "GEOPLAN_PRELOAD": region, "GEOPLAN_REGIONS": region,
           "GEOPLAN_WEB_WORKERS": str(web_workers), "GEOPLAN_JOB_WORKERS": "1", "GEOPLAN_CIRCLE_PROCESSES": str(circle_processes)}
    created = subprocess.run([sys.executable, "-m", "api.cli", "keys", "create", "--role", "planner", "--team", "bench"],
                             cwd=REPO, env=env, capture_output=True, text=True)
    if created.returncode != 0:
        raise ServerError(f"could not create a key: {created.stderr[-2000:]}")
    key = created.stdout.strip().splitlines()[-1]
    log = (workdir / "server.log").open("wb")
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, *SERVER_COMMAND, "--port", str(port)], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    ready_in_a_row = 0  # each poll is a new connection, answered by any web worker: every one must be ready
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerError(f"the server exited:\n{(workdir / 'server.log').read_text()[-4000:]}")
        try:
            health = httpx.get(f"{url}/health", timeout=1).json()
            circles = health.get("circle_process_regions")
            ready = (region in health.get("regions_loaded", []) and health.get("job_workers", 0) >= 1
                     and (circles is None or region in circles))
            ready_in_a_row = ready_in_a_row + 1 if ready else 0
            if ready_in_a_row >= 6 * web_workers:
                return server, url, time.perf_counter() - started, key
        except (httpx.HTTPError, ValueError):
            ready_in_a_row = 0
        time.sleep(0.2)
    server.kill()
    raise ServerError("the server did not start within 300 s")


def point_queries(region: str, *, n: int, seed: int) -> list[str]:
    """Care-circle queries for ``n`` seeded random points of the region a planner could click: inside its boundary and
    within 80 % of the region's access distance of a street (farther points are refused with 422, by design)."""
    import geopandas as gpd
    from shapely import STRtree
    from shapely.geometry import Point

    from geoplan.config import load_config

    config = load_config(region)
    boundary = gpd.read_file(config.boundary.path, layer=config.boundary.layer)
    for column, value in config.boundary.where.items():
        boundary = boundary[boundary[column].astype(str) == str(value)]
    shape = boundary.to_crs(4326).union_all()
    crs = boundary.estimate_utm_crs()
    streets = gpd.read_parquet(config.network.path, columns=["geometry"])
    streets = streets.to_crs(crs).clip(boundary.to_crs(crs).buffer(500).total_bounds)
    tree = STRtree(streets.geometry.values)
    reach_m = 0.8 * config.analysis.max_access_m
    rng = random.Random(seed + 1)
    minx, miny, maxx, maxy = shape.bounds
    points: list[str] = []
    while len(points) < n:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if not shape.contains(Point(lon, lat)):
            continue
        here = gpd.GeoSeries([Point(lon, lat)], crs=4326).to_crs(crs).iloc[0]
        if len(tree.query(here, predicate="dwithin", distance=reach_m)):
            points.append(urlencode({"lon": f"{lon:.5f}", "lat": f"{lat:.5f}"}))
    return points


def viewport_queries(bbox: list[float], *, n: int, limit: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    minx, miny, maxx, maxy = bbox
    queries = []
    for _ in range(n):
        width = rng.uniform(0.01, 0.03)  # about 1-3 km
        height = width * 0.8
        x0 = rng.uniform(minx, maxx - width)
        y0 = rng.uniform(miny, maxy - height)
        params = {
            "group": rng.choice(["pop_60", "pop_80"]),
            "threshold_min": rng.choice([5, 10, 15]),
            "bbox": f"{x0:.5f},{y0:.5f},{x0 + width:.5f},{y0 + height:.5f}",
            "limit": limit,
        }
        queries.append(urlencode(params))
    return queries


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: GET, read the status and Content-Length body.

    The load generator shares the machine with the server; a full client
    library (httpx) spends more CPU per request than the server does, and the
    measurement would be of the client. This one parses only what it needs.
    """

    def __init__(self, host: str, port: int, key: str):
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.auth}Accept: application/json\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ConnectionError("answer without Content-Length")
        await self.reader.readexactly(length)
        return status, length

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.reader = self.writer = None


async def run_load(url: str, path: str, queries: list[str], *, concurrency: int, max_requests: int, duration_s: float,
                   timeout_s: float, key: str) -> dict:
    latencies: list[float] = []
    first_time: list[float] = []  # latencies of queries the bench had not sent before (a cache miss, at least once)
    sent: set[str] = set()
    sizes: list[int] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + duration_s
    parts = urlsplit(url)

    async def client(worker: int) -> None:
        nonlocal issued
        connection = Connection(parts.hostname, parts.port, key)
        i = worker
        try:
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                query = queries[i % len(queries)]
                fresh = query not in sent
                sent.add(query)
                i += concurrency
                t0 = time.perf_counter()
                try:
                    status, size = await asyncio.wait_for(connection.get(f"{path}?{query}"), timeout_s)
                    elapsed = time.perf_counter() - t0
                    if status == 200:
                        latencies.append(elapsed)
                        sizes.append(size)
                        if fresh:
                            first_time.append(elapsed)
                    else:
                        errors[str(status)] = errors.get(str(status), 0) + 1
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    await connection.close()
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(concurrency)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "wall_s": round(wall, 3),
        "requests_per_s": round((len(latencies) + sum(errors.values())) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "max_ms": round(float(ms.max()), 2) if len(ms) else None,
        "mean_ms": round(float(ms.mean()), 2) if len(ms) else None,
        "mean_response_kb": round(float(np.mean(sizes)) / 1024, 1) if sizes else None,
        "first_time_requests": len(first_time),
        "first_time_p50_ms": round(float(np.percentile(np.array(first_time) * 1000, 50)), 2) if first_time else None,
        "first_time_p95_ms": round(float(np.percentile(np.array(first_time) * 1000, 95)), 2) if first_time else None,
    }


async def load_with_job(url: str, gaps: tuple[str, list[str]], circles: tuple[str, list[str]], *, concurrency: int,
                        max_requests: int, duration_s: float, timeout_s: float, key: str) -> tuple[dict, dict]:
    """Gap and care-circle queries at once, half the clients each (``concurrency`` in all)."""
    half = concurrency // 2
    common = {"duration_s": duration_s, "timeout_s": timeout_s, "key": key}
    return await asyncio.gather(
        run_load(url, gaps[0], gaps[1], concurrency=half, max_requests=max_requests // 2, **common),
        run_load(url, circles[0], circles[1], concurrency=concurrency - half, max_requests=max_requests // 2, **common),
    )


def queue_heavy_jobs(http: httpx.Client, region: str) -> list[str]:
    """Queue the heavy recommendations and wait until the first one runs; their ids."""
    ids = []
    for body in HEAVY_JOBS:
        answer = http.post("/recommendations", json={"region": region, **body})
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if http.get(f"/jobs/{ids[0]}").json()["status"] == "running":
            return ids
        time.sleep(0.2)
    raise ServerError("the heavy job did not start within 120 s")


def job_running(http: httpx.Client, ids: list[str]) -> bool:
    return any(http.get(f"/jobs/{job_id}").json()["status"] == "running" for job_id in ids)


def main(argv=None) -> dict:
    args = parse_args(argv)
    record = machine("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "pydantic")
    server = None
    startup_s = warm_s = None
    stats, gaps_job, circles, error = None, None, None, None
    running_at = {"start": None, "end": None}
    with tempfile.TemporaryDirectory(prefix="geoplan-bench-") as tmp:
        key = args.key
        if args.url:
            host = urlsplit(args.url).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit(f"--url must be on loopback (127.0.0.1), got {host!r}")
            if not key:
                raise SystemExit("--url needs --key (a planner's API key)")
            url = args.url.rstrip("/")
        try:
            if not args.url:
                server, url, startup_s, key = start_server(args.region, Path(tmp), args.web_workers, args.circle_processes)
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            detail = http.get(f"/regions/{args.region}").json()
            path = f"/regions/{args.region}/coverage/gaps"
            circle_path = f"/regions/{args.region}/care-circles"
            t0 = time.perf_counter()
            for _ in range(4):  # each web worker answers some of these: warm them all
                for group in ("pop_60", "pop_80"):
                    for threshold in (5, 10, 15):
                        http.get(path, params={"group": group, "threshold_min": threshold, "limit": 1}).raise_for_status()
            warm_s = time.perf_counter() - t0
            queries = viewport_queries(detail["bbox"], n=args.queries, limit=args.limit, seed=args.seed)
            points = point_queries(args.region, n=args.points, seed=args.seed)
            print(f"warm-up {warm_s:.2f} s; idle: {args.concurrency} clients, up to {args.requests} requests or {args.duration:g} s ...")
            stats = asyncio.run(run_load(url, path, queries, concurrency=args.concurrency, max_requests=args.requests,
                                         duration_s=args.duration, timeout_s=args.timeout, key=key))
            jobs = queue_heavy_jobs(http, args.region)
            running_at["start"] = job_running(http, jobs)
            print(f"with a job running: {args.concurrency} clients (gaps and care circles) ...")
            gaps_job, circles = asyncio.run(load_with_job(
                url, (path, queries), (circle_path, points), concurrency=args.concurrency, max_requests=args.requests,
                duration_s=args.duration, timeout_s=args.timeout, key=key))
            running_at["end"] = job_running(http, jobs)
        except (ServerError, httpx.HTTPError, KeyError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            print(f"the load test did not run: {error}", file=sys.stderr)
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)

    stats = stats or {}
    p95, errors = stats.get("p95_ms"), stats.get("errors")
    under_job = {"concurrency": args.concurrency, "job_running_at_start": running_at["start"], "job_running_at_end": running_at["end"],
                 "heavy_jobs": HEAVY_JOBS}
    with_job = {**under_job, "clients_of_this_kind": args.concurrency // 2, "query_mix": "the idle phase's viewports", **(gaps_job or {})}
    circle_figures = {**under_job, "clients_of_this_kind": args.concurrency - args.concurrency // 2,
                      "query_mix": f"{args.points} seeded random points inside the region's boundary, the region's thresholds", **(circles or {})}
    payload = {
        "benchmark": "gap queries (GET /regions/{region}/coverage/gaps) idle, then gaps and care circles "
                     "(GET /regions/{region}/care-circles) while a heavy job runs; loopback, closed loop, API keys on",
        "goals": [
            goal("p95_ms", p95, GOAL_P95_MS, op="<", note="idle: 95th percentile latency of answered gap queries"),
            goal("errors", errors, 0, op="==", note="idle: answers that are not 200, and requests with no answer"),
            goal("with_job_running.p95_ms", (gaps_job or {}).get("p95_ms"), GOAL_GAPS_WITH_JOB_P95_MS, op="<",
                 note="gap queries while a p-median job is solved by the job worker"),
            goal("care_circles.p95_ms", (circles or {}).get("p95_ms"), GOAL_CIRCLES_P95_MS, op="<",
                 note="care-circle queries in the same run"),
            goal("with_job_running.errors", (gaps_job or {}).get("errors"), 0, op="=="),
            goal("care_circles.errors", (circles or {}).get("errors"), 0, op="=="),
            goal("job_running_throughout", bool(running_at["start"] and running_at["end"]), True, op="==",
                 note="a heavy job was running when the loaded phase began and when it ended"),
        ],
        "error": error,
        "p95_ms": p95,
        "concurrency": args.concurrency,
        "errors": errors,
        **{k: v for k, v in stats.items() if k not in ("errors", "p95_ms")},
        "with_job_running": with_job,
        "care_circles": circle_figures,
        "statistic": "latency percentiles (p50, p95, p99) over every answered request of each phase",
        "warmup_s": round(warm_s, 3) if warm_s is not None else None,
        "region": args.region,
        "query_mix": f"{args.queries} seeded viewports (1-3 km bbox), group pop_60/pop_80, threshold 5/10/15 min, limit {args.limit}",
        "max_requests": args.requests,
        "max_duration_s": args.duration,
        "seed": args.seed,
        "server": "external " + url if args.url else "python " + " ".join(SERVER_COMMAND) +
                  f" (GEOPLAN_WEB_WORKERS={args.web_workers}, GEOPLAN_JOB_WORKERS=1, GEOPLAN_CIRCLE_PROCESSES={args.circle_processes},"
                  " keys on, region preloaded)",
        "server_startup_s": round(startup_s, 2) if startup_s is not None else None,
        "client": "asyncio streams, HTTP/1.1 keep-alive, one connection per client, same machine (bench/api.py Connection)",
        "machine": record,
    }
    write_result("api", payload)
    for name, figures in (("idle gaps", stats), ("gaps, job running", gaps_job or {}), ("care circles, job running", circles or {})):
        if figures:
            print(f"{name}: {figures['ok']} ok, {figures['errors']} errors in {figures['wall_s']} s: {figures['requests_per_s']} req/s; "
                  f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms")
    return payload


if __name__ == "__main__":
    main()
