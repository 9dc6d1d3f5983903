"""Durability: real processes on 127.0.0.1, killed with SIGKILL mid-job.

Two web workers (uvicorn) and two job workers (``geoplan-api worker``) share
one database. A job worker is killed while it runs a job and a web worker is
killed at the same time: every scenario must come back as it was, the killed
job must be taken by the other job worker once its lease runs out and finish,
the queued jobs must run, and the reads must go on being answered meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from api.store import Store
from tests.api.conftest import SAMPLE_FACILITIES

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout_s: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout_s} s" + (f":\n{log.read_text()[-4000:]}" if log else ""))


def start_web(env: dict, port: int, log: Path, workers: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--log-level", "warning"]
    web = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200, timeout_s=90,
               what="the web workers did not start", log=log)
    return web


def start_job_worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "api.cli", "worker", "--log-level", "info"], cwd=REPO, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def web_workers(web: subprocess.Popen) -> set[int]:
    """The live worker processes of a uvicorn master (not its multiprocessing resource tracker, not zombies)."""
    found = set()
    for child in psutil.Process(web.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def job(http: httpx.Client, job_id: str) -> dict:
    return http.get(f"/jobs/{job_id}").json()


@pytest.mark.slow
def test_killing_a_job_worker_and_a_web_worker_mid_job_loses_nothing(tmp_path, wuchang, cache_dir):
    db = tmp_path / "geoplan.sqlite3"
    store = Store(db)
    _, key = store.create_key(role="planner", team="bureau")
    store.close()
    env = {**os.environ, "GEOPLAN_DB": str(db), "GEOPLAN_CACHE_DIR": str(cache_dir), "GEOPLAN_REGIONS": "wuchang",
           "GEOPLAN_JOB_THREADS": "0", "GEOPLAN_JOB_LEASE_SECONDS": "3", "GEOPLAN_PRELOAD": "wuchang"}
    log = tmp_path / "service.log"
    port = free_port()
    web = start_web(env, port, log)
    job_workers = [start_job_worker(env, log) for _ in range(2)]
    processes = [web, *job_workers]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
            wait_until(lambda: http.get("/health").json()["job_workers"] == 2, timeout_s=120, what="two job workers", log=log)
            first = http.post("/scenarios", json={"region": "wuchang", "name": "样本设施 sample"}).json()
            uploaded = http.post(f"/scenarios/{first['id']}/facilities", files={"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())},
                                 data={"coord_system": "gcj02"})
            assert uploaded.status_code == 200, uploaded.text
            http.patch(f"/scenarios/{first['id']}", json={"closed": ["S05"], "added": [{"lon": 114.307, "lat": 30.5607}]})
            second = http.post("/scenarios", json={"region": "wuchang", "name": "planned", "recommend": {"kinds": [{"p": 3}]}}).json()
            before = {s["id"]: s for s in http.get("/scenarios").json()["scenarios"]}

            heavy = http.post("/recommendations", json={"region": "wuchang", "model": "pmedian", "kinds": [{"p": 25}], "time_limit_s": 20})
            assert heavy.status_code == 202, heavy.text
            heavy_id = heavy.json()["id"]
            queued = [http.post("/recommendations", json={"region": "wuchang", "kinds": [{"p": 2}]}).json()["id"],
                      http.post(f"/scenarios/{second['id']}/run").json()["id"]]
            wait_until(lambda: job(http, heavy_id)["status"] == "running", timeout_s=60, what="the heavy job running")

            owner = Store(db).get_job(heavy_id).lease_owner  # host:pid:tag/thread
            victim = next(p for p in job_workers if f":{p.pid}:" in owner)
            serving = web_workers(web)
            assert len(serving) == 2, serving
            killed_web = min(serving)
            victim.send_signal(signal.SIGKILL)
            os.kill(killed_web, signal.SIGKILL)
            victim.wait(10)

            # the other web worker answers at once (on a new connection: the kept-alive one may have been the
            # killed worker's); the killed one is replaced by uvicorn
            with httpx.Client(base_url=str(http.base_url), timeout=60, headers=http.headers) as fresh:
                assert fresh.get("/scenarios").status_code == 200
            http.close()
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"Authorization": f"Bearer {key}"})
            wait_until(lambda: len(web_workers(web)) == 2 and killed_web not in web_workers(web), timeout_s=60,
                       what="uvicorn replacing its web worker", log=log)

            retried = wait_until(lambda: (j := job(http, heavy_id))["status"] in ("succeeded", "failed") and j, timeout_s=180,
                                 what="the killed job retried by the other worker", log=log)
            assert retried["status"] == "succeeded", retried
            assert retried["attempts"] == 2 and retried["result"]["plan"]["model"] == "pmedian"
            for job_id in queued:
                done = wait_until(lambda: (j := job(http, job_id))["status"] in ("succeeded", "failed") and j, timeout_s=180,
                                  what=f"queued job {job_id}")
                assert done["status"] == "succeeded", done
            after = {s["id"]: s for s in http.get("/scenarios").json()["scenarios"]}
            assert set(after) == set(before)
            for scenario_id, old in before.items():
                for field in ("name", "region", "spec_hash", "added", "closed", "recommend", "facilities_source", "existing", "created_at"):
                    assert after[scenario_id][field] == old[field], (scenario_id, field)
            assert after[second["id"]]["result"]["plan"]["model"] == "mclp"
            survivor = Store(db).get_job(queued[0]).lease_owner
            assert survivor is None  # finished jobs hold no lease
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
