"""Bounded work: jobs per key (429), a job's time budget and the size of a request's walks (422/413), each naming its setting."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import SAMPLE_FACILITIES, assert_error, bearer

ONE_STATION = {"region": "wuchang", "kinds": [{"p": 1}]}


def app_with(api_settings, wuchang, tmp_path, key: str | None = None, **settings) -> TestClient:
    """An app with ``settings`` on its own database and no job workers (jobs stay queued), as a planner."""
    from api.store import Store

    db = tmp_path / "limits.sqlite3"
    if key is None:
        store = Store(db)
        key = store.create_key(role="planner", team="t")[1]
        store.close()
    changed = api_settings.model_copy(update={"db_path": str(db), "job_threads": 0, **settings})
    return TestClient(create_app(changed, preloaded={"wuchang": wuchang}), headers=bearer(key))


def test_jobs_queued_or_running_per_key_are_limited(api_settings, api_keys, wuchang, tmp_path):
    from api.store import Store

    store = Store(tmp_path / "limits.sqlite3")
    _, key = store.create_key(role="planner", team="t")
    _, other = store.create_key(role="planner", team="t")
    store.close()
    with app_with(api_settings, wuchang, tmp_path, key, max_jobs_per_key=2) as client:  # no job workers: the jobs stay queued
        for _ in range(2):
            assert client.post("/recommendations", json=ONE_STATION).status_code == 202
        refused = client.post("/recommendations", json=ONE_STATION)
        assert_error(refused, 429, "GEOPLAN_MAX_JOBS_PER_KEY=2", "2 job(s)")
        assert refused.headers["retry-after"]
        scenario = client.post("/scenarios", json={"region": "wuchang", "name": "n"}).json()["id"]
        assert_error(client.post(f"/scenarios/{scenario}/run"), 429, "GEOPLAN_MAX_JOBS_PER_KEY")
        assert client.post("/recommendations", json=ONE_STATION, headers=bearer(other)).status_code == 202  # per key


def test_a_solver_time_limit_beyond_the_job_budget_is_refused_at_submission(api_settings, api_keys, wuchang, tmp_path):
    with app_with(api_settings, wuchang, tmp_path, max_job_seconds=30) as client:
        assert_error(client.post("/recommendations", json={**ONE_STATION, "time_limit_s": 60}), 422, "GEOPLAN_MAX_JOB_SECONDS", "time_limit_s")
        assert client.get("/jobs").json()["jobs"] == []  # nothing was queued
        assert client.post("/recommendations", json={**ONE_STATION, "time_limit_s": 20}).status_code == 202


def test_too_many_walks_for_one_request_are_refused_naming_the_setting(api_settings, api_keys, wuchang, tmp_path):
    demand = len(wuchang.demand)
    sites = len(wuchang.facilities) + len(wuchang.candidates)
    with app_with(api_settings, wuchang, tmp_path, max_reach_pairs=demand * (sites - 1)) as client:
        body = assert_error(client.post("/recommendations", json=ONE_STATION), 413, "GEOPLAN_MAX_REACH_PAIRS", f"{demand:,} demand cells")
        assert f"at most {sites - 1:,} sites" in body["detail"]
    with app_with(api_settings, wuchang, tmp_path / "upload", max_reach_pairs=demand * (sites + 5)) as client:
        scenario = client.post("/scenarios", json={"region": "wuchang", "name": "big list"}).json()["id"]
        files = {"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())}  # 19 more facilities: past the limit
        assert_error(client.post(f"/scenarios/{scenario}/facilities", files=files, data={"coord_system": "gcj02"}), 413, "GEOPLAN_MAX_REACH_PAIRS")
        assert client.get(f"/scenarios/{scenario}").json()["facilities_source"] == "region"  # the refused list changed nothing
