"""The whole service on a real PostgreSQL server: keys, a scenario, an upload, a job taken by a worker, the audit log."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from api.store import Store
from tests.api.conftest import SAMPLE_FACILITIES, bearer, wait_for_job


def test_the_service_runs_on_postgresql(api_settings, wuchang, postgres_db):
    store = Store(postgres_db)
    _, planner = store.create_key(role="planner", team="bureau")
    _, admin = store.create_key(role="admin", team="bureau")
    store.close()
    settings = api_settings.model_copy(update={"db_path": postgres_db, "job_threads": 1})
    with TestClient(create_app(settings, preloaded={"wuchang": wuchang}), headers=bearer(planner)) as client:
        scenario = client.post("/scenarios", json={"region": "wuchang", "name": "在 PostgreSQL 上", "recommend": {"kinds": [{"p": 2}]}})
        assert scenario.status_code == 201, scenario.text
        scenario_id = scenario.json()["id"]
        uploaded = client.post(f"/scenarios/{scenario_id}/facilities", files={"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())},
                               data={"coord_system": "gcj02"})
        assert uploaded.status_code == 200, uploaded.text
        job = wait_for_job(client, client.post(f"/scenarios/{scenario_id}/run").json()["id"])
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        assert client.get(f"/scenarios/{scenario_id}").json()["result"]["plan"]["model"] == "mclp"
        entries = client.get("/audit", headers=bearer(admin)).json()["entries"]
        assert {(e["method"], e["status"]) for e in entries} >= {("POST", 201), ("POST", 200), ("POST", 202)}
