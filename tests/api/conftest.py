"""API fixtures: one app per session on a temporary database, with the session's Wuchang region preloaded.

The region comes from the ``wuchang`` fixture of ``tests/conftest.py`` (loaded
once per session), so no API test pays for loading it again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from api.store import ROLES, Store

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FACILITIES = REPO / "data" / "facilities" / "wuchang_sample_gcj02.csv"


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory, cache_dir) -> Settings:
    """Keys on (the default); one job thread in the app, standing in for a job worker process."""
    return Settings(db_path=tmp_path_factory.mktemp("api") / "geoplan.sqlite3", cache_dir=cache_dir, regions=("wuchang",), job_threads=1,
                    circle_processes=0)


@pytest.fixture(scope="session")
def api_keys(api_settings) -> dict[str, str]:
    """A key per role in team-a, a planner and a viewer of team-b, and one revoked key."""
    store = Store(api_settings.db_path)
    keys = {role: store.create_key(role=role, team="team-a", name=f"test {role}")[1] for role in ROLES}
    keys["other_planner"] = store.create_key(role="planner", team="team-b", name="another team")[1]
    keys["other_viewer"] = store.create_key(role="viewer", team="team-b", name="another team")[1]
    revoked, keys["revoked"] = store.create_key(role="admin", team="team-a", name="revoked")
    store.revoke_key(revoked.id)
    store.close()
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def client(api_settings, api_keys, wuchang):
    """The session's app, as a planner of team-a."""
    app = create_app(api_settings, preloaded={"wuchang": wuchang})
    with TestClient(app, raise_server_exceptions=False, headers=bearer(api_keys["planner"])) as test_client:
        yield test_client


@pytest.fixture
def scenario(client) -> dict:
    """A fresh scenario with the sample facility list (GCJ-02) uploaded as its existing facilities."""
    created = client.post("/scenarios", json={"region": "wuchang", "name": "sample facilities"})
    assert created.status_code == 201, created.text
    upload(client, created.json()["id"], SAMPLE_FACILITIES.read_bytes(), coord_system="gcj02")
    return client.get(f"/scenarios/{created.json()['id']}").json()


def upload(client, scenario_id: str, content: bytes, *, filename: str = "facilities.csv", expect: int = 200, **form):
    response = client.post(
        f"/scenarios/{scenario_id}/facilities", files={"file": (filename, content, "application/octet-stream")}, data=form
    )
    assert response.status_code == expect, response.text
    return response.json()


def wait_for_job(client, job_id: str, *, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout_s} s: {job}")


def assert_error(response, status: int, *words: str) -> dict:
    """A 4xx with the common error body, whose message names each of ``words``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"detail", "error"}
    assert "Traceback" not in body["detail"]
    for word in words:
        assert word.lower() in body["detail"].lower(), (word, body["detail"])
    return body
