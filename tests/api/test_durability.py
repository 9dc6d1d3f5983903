"""Durability: a real server (uvicorn, 127.0.0.1) is killed with SIGKILL mid-job and restarted.

Every scenario must come back as it was, the job that was running must be
marked failed with a reason, and the jobs still queued must run to the end on
the new server: none lost.
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
import pytest

from tests.api.conftest import SAMPLE_FACILITIES

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"the server did not start:\n{log.read_text()}")


def wait_for(http: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


@pytest.mark.slow
def test_server_killed_mid_job_loses_nothing(tmp_path, wuchang, cache_dir):
    env = {**os.environ, "GEOPLAN_DB": str(tmp_path / "geoplan.sqlite3"), "GEOPLAN_CACHE_DIR": str(cache_dir),
           "GEOPLAN_REGIONS": "wuchang", "GEOPLAN_JOB_WORKERS": "1"}
    log = tmp_path / "server.log"
    port = free_port()
    server = start_server(env, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            first = http.post("/scenarios", json={"region": "wuchang", "name": "样本设施 sample"}).json()
            uploaded = http.post(f"/scenarios/{first['id']}/facilities", files={"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())},
                                 data={"coord_system": "gcj02"})
            assert uploaded.status_code == 200, uploaded.text
            http.patch(f"/scenarios/{first['id']}", json={"closed": ["S05"], "added": [{"lon": 114.307, "lat": 30.5607}]})
            second = http.post("/scenarios", json={"region": "wuchang", "name": "two new", "coord_system": "gcj02",
                                                   "added": [{"lon": 114.3125, "lat": 30.5583}, {"lon": 114.3474, "lat": 30.5530}]}).json()
            third = http.post("/scenarios", json={"region": "wuchang", "name": "planned", "recommend": {"kinds": [{"p": 3}]}}).json()
            before = {s["id"]: s for s in http.get("/scenarios").json()["scenarios"]}
            assert set(before) == {first["id"], second["id"], third["id"]}

            long_job = http.post("/recommendations", json={"region": "wuchang", "model": "pmedian", "kinds": [{"p": 30}], "time_limit_s": 300})
            assert long_job.status_code == 202, long_job.text
            queued = [
                http.post("/recommendations", json={"region": "wuchang", "kinds": [{"p": 2}]}).json()["id"],
                http.post(f"/scenarios/{third['id']}/run").json()["id"],
            ]
            wait_for(http, long_job.json()["id"], ("running",), timeout_s=60)
        server.send_signal(signal.SIGKILL)
        server.wait(10)

        port = free_port()
        server = start_server(env, port, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            after = {s["id"]: s for s in http.get("/scenarios").json()["scenarios"]}
            assert set(after) == set(before)
            for scenario_id, old in before.items():
                new = after[scenario_id]
                for field in ("name", "region", "spec_hash", "added", "closed", "recommend", "facilities_source", "existing", "created_at"):
                    assert new[field] == old[field], (scenario_id, field)

            interrupted = http.get(f"/jobs/{long_job.json()['id']}").json()
            assert interrupted["status"] == "failed"
            assert interrupted["error"]["type"] == "interrupted" and "server stopped" in interrupted["error"]["message"]
            for job_id in queued:  # never started: queued again and run by the new server
                assert wait_for(http, job_id, ("succeeded", "failed"))["status"] == "succeeded"
            assert http.get(f"/scenarios/{third['id']}").json()["result"]["plan"]["model"] == "mclp"
            listed = {j["id"] for j in http.get("/jobs").json()["jobs"]}
            assert {long_job.json()["id"], *queued} <= listed
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)
