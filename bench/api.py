"""Load test of the planning service: warm coverage-gap queries, many concurrent clients, on loopback.

Starts the service with uvicorn on 127.0.0.1 (a free port, a temporary
database, the region preloaded so every query is warm), sends one query per
(group, threshold) to warm it up, then runs ``--concurrency`` clients in a
closed loop (each sends its next request as soon as the last one is answered,
over its own keep-alive connection) until ``--requests`` requests are done or
``--duration`` seconds have passed. Queries are map viewports: a seeded random
bounding box of 1-3 km inside the region, a group (60+ or 80+) and a threshold
(5, 10 or 15 min), at most ``--limit`` cells each.

Reports p50/p95/p99 latency, requests per second and errors (any answer that
is not 200, or no answer), and writes them to ``bench/results/api.json``.
Goals: p95 below 50 ms with no errors. There is no baseline here; the
latencies are percentiles over every answered request. The script exits 0
whether or not the goals pass (or the server starts): the JSON says which.

    python bench/api.py                      # 50 clients, 6000 requests at most, 60 s at most
    python bench/api.py --quick              # smoke run: 1000 requests at most, 10 s at most
    python bench/api.py --url http://127.0.0.1:8000   # against a running server (loopback only)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
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
SERVER_COMMAND = ["-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]


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
    parser.add_argument("--url", help="a running server on loopback (default: start one)")
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


def start_server(region: str, workdir: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {**os.environ, "GEOPLAN_DB": str(workdir / "bench.sqlite3"), "GEOPLAN_PRELOAD": region, "GEOPLAN_REGIONS": region}
    log = (workdir / "server.log").open("wb")
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, *SERVER_COMMAND, "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerError(f"the server exited:\n{(workdir / 'server.log').read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url, time.perf_counter() - started
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise ServerError("the server did not start within 300 s")


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

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: application/json\r\n\r\n".encode())
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
                   timeout_s: float) -> dict:
    latencies: list[float] = []
    sizes: list[int] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + duration_s
    parts = urlsplit(url)

    async def client(worker: int) -> None:
        nonlocal issued
        connection = Connection(parts.hostname, parts.port)
        i = worker
        try:
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                query = queries[i % len(queries)]
                i += concurrency
                t0 = time.perf_counter()
                try:
                    status, size = await asyncio.wait_for(connection.get(f"{path}?{query}"), timeout_s)
                    elapsed = time.perf_counter() - t0
                    if status == 200:
                        latencies.append(elapsed)
                        sizes.append(size)
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
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    record = machine("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "pydantic")
    server = None
    startup_s = warm_s = None
    stats, error = None, None
    with tempfile.TemporaryDirectory(prefix="geoplan-bench-") as tmp:
        if args.url:
            host = urlsplit(args.url).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit(f"--url must be on loopback (127.0.0.1), got {host!r}")
            url = args.url.rstrip("/")
        try:
            if not args.url:
                server, url, startup_s = start_server(args.region, Path(tmp))
            detail = httpx.get(f"{url}/regions/{args.region}", timeout=120).json()
            path = f"/regions/{args.region}/coverage/gaps"
            t0 = time.perf_counter()
            for group in ("pop_60", "pop_80"):
                for threshold in (5, 10, 15):
                    httpx.get(f"{url}{path}", params={"group": group, "threshold_min": threshold, "limit": 1}, timeout=120).raise_for_status()
            warm_s = time.perf_counter() - t0
            queries = viewport_queries(detail["bbox"], n=args.queries, limit=args.limit, seed=args.seed)
            print(f"warm-up {warm_s:.2f} s; {args.concurrency} clients, up to {args.requests} requests or {args.duration:g} s ...")
            stats = asyncio.run(run_load(url, path, queries, concurrency=args.concurrency, max_requests=args.requests,
                                         duration_s=args.duration, timeout_s=args.timeout))
        except (ServerError, httpx.HTTPError, KeyError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            print(f"the load test did not run: {error}", file=sys.stderr)
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)

    stats = stats or {}
    p95, errors = stats.get("p95_ms"), stats.get("errors")
    payload = {
        "benchmark": "warm coverage-gap queries (GET /regions/{region}/coverage/gaps) over loopback, closed loop",
        "goals": [
            goal("p95_ms", p95, GOAL_P95_MS, op="<", note="95th percentile latency of answered requests"),
            goal("errors", errors, 0, op="==", note="answers that are not 200, and requests with no answer"),
        ],
        "error": error,
        "p95_ms": p95,
        "concurrency": args.concurrency,
        "errors": errors,
        **{k: v for k, v in stats.items() if k not in ("errors", "p95_ms")},
        "statistic": "latency percentiles (p50, p95, p99) over every answered request of the run",
        "warmup_s": round(warm_s, 3) if warm_s is not None else None,
        "region": args.region,
        "query_mix": f"{args.queries} seeded viewports (1-3 km bbox), group pop_60/pop_80, threshold 5/10/15 min, limit {args.limit}",
        "max_requests": args.requests,
        "max_duration_s": args.duration,
        "seed": args.seed,
        "server": "external " + url if args.url else "python " + " ".join(SERVER_COMMAND) + " (one worker, region preloaded)",
        "server_startup_s": round(startup_s, 2) if startup_s is not None else None,
        "client": "asyncio streams, HTTP/1.1 keep-alive, one connection per client, same machine (bench/api.py Connection)",
        "machine": record,
    }
    write_result("api", payload)
    if stats:
        print(
            f"{stats['ok']} ok, {stats['errors']} errors in {stats['wall_s']} s: {stats['requests_per_s']} req/s; "
            f"p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms, p99 {stats['p99_ms']} ms "
            f"({args.concurrency} clients, {stats['mean_response_kb']} kB per answer)"
        )
    return payload


if __name__ == "__main__":
    main()
