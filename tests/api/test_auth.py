"""Keys, roles and teams: 401 without a good key, 403 for a role without the right, 404 for another team's.

Each role is tried on each resource: regions and coverage, scenarios (and their
facilities, maps, runs, comparisons), recommendations and jobs, targets, keys
and the audit log.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import SAMPLE_FACILITIES, assert_error, bearer, wait_for_job

NEW_SCENARIO = {"region": "wuchang", "name": "auth"}
TARGETS_TOML = b'[plan]\nname = "t"\n[[targets]]\nid = "canteens"\nindicator = "facility_count"\ntier = "canteen"\nmin = 1\nclause = "at least one canteen"\n'


@pytest.fixture(scope="module")
def as_role(client, api_keys):
    """Send a request with the key of ``who`` (a role of team-a, other_planner/other_viewer of team-b, revoked, or none)."""

    def send(who: str | None, method: str, path: str, **kwargs):
        headers = {"Authorization": ""} if who is None else bearer(api_keys[who])
        return client.request(method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    return send


@pytest.fixture(scope="module")
def team_a(client) -> dict:
    """A scenario of team-a with a finished run, and a recommendation job of team-a."""
    scenario = client.post("/scenarios", json={**NEW_SCENARIO, "added": [{"lon": 114.307, "lat": 30.5607}]}).json()
    run = client.post(f"/scenarios/{scenario['id']}/run").json()
    wait_for_job(client, run["id"])
    recommendation = client.post("/recommendations", json={"region": "wuchang", "kinds": [{"p": 1}]}).json()
    wait_for_job(client, recommendation["id"])
    return {"scenario": scenario["id"], "job": run["id"], "recommendation": recommendation["id"]}


READS = [
    ("GET", "/regions"),
    ("GET", "/regions/wuchang"),
    ("GET", "/regions/wuchang/coverage"),
    ("GET", "/regions/wuchang/coverage/gaps?limit=1"),
    ("GET", "/regions/wuchang/facilities"),
    ("GET", "/regions/wuchang/targets"),
    ("GET", "/targets/presets"),
    ("GET", "/scenarios"),
    ("GET", "/jobs"),
    ("GET", "/recommendations"),
]


@pytest.mark.parametrize("method,path", [*READS, ("POST", "/scenarios"), ("GET", "/keys"), ("POST", "/keys"), ("GET", "/audit"),
                                         ("DELETE", "/scenarios/x"), ("GET", "/regions/wuchang/map")])
@pytest.mark.parametrize("who", [None, "revoked"])
def test_no_key_or_a_revoked_key_is_401(as_role, who, method, path):
    response = as_role(who, method, path, json=NEW_SCENARIO if method == "POST" else None)
    body = assert_error(response, 401, "key")
    assert response.headers["www-authenticate"] == "Bearer" and body["error"] == "unauthorized"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer gpk_nothing_here", "gpk_abc"])
def test_a_malformed_or_unknown_key_is_401(client, header):
    assert_error(client.get("/scenarios", headers={"Authorization": header}), 401)


@pytest.mark.parametrize("path", ["/health", "/docs", "/openapi.json"])
def test_health_and_docs_stay_open(client, path):
    assert client.get(path, headers={"Authorization": ""}).status_code == 200


@pytest.mark.parametrize("who", ["viewer", "planner", "admin"])
@pytest.mark.parametrize("method,path", READS)
def test_every_role_reads(as_role, who, method, path):
    assert as_role(who, method, path).status_code == 200


@pytest.mark.parametrize("who,allowed", [("viewer", False), ("planner", True), ("admin", True)])
def test_only_planners_and_admins_change_scenarios(as_role, team_a, who, allowed):
    scenario = team_a["scenario"]
    writes = [
        ("POST", "/scenarios", {"json": NEW_SCENARIO}, 201),
        ("PATCH", f"/scenarios/{scenario}", {"json": {"description": f"edited by {who}"}}, 200),
        ("POST", f"/scenarios/{scenario}/facilities",
         {"files": {"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())}, "data": {"coord_system": "gcj02", "mode": "replace", "status": "candidate"}}, 200),
        ("POST", "/recommendations", {"json": {"region": "wuchang", "kinds": [{"p": 1}]}}, 202),
    ]
    for method, path, kwargs, ok in writes:
        response = as_role(who, method, path, **kwargs)
        if allowed:
            assert response.status_code == ok, (method, path, response.text)
        else:
            assert_error(response, 403, "viewer", "planner")
    deleted = as_role(who, "POST", "/scenarios", json=NEW_SCENARIO) if allowed else None
    target = deleted.json()["id"] if deleted is not None else scenario
    response = as_role(who, "DELETE", f"/scenarios/{target}")
    assert response.status_code == (204 if allowed else 403)


def test_a_viewer_may_review_against_a_targets_file_but_not_run(as_role, team_a):
    review = as_role("viewer", "POST", "/regions/wuchang/targets", files={"file": ("t.toml", TARGETS_TOML)})
    assert review.status_code == 200, review.text
    assert_error(as_role("viewer", "POST", f"/scenarios/{team_a['scenario']}/run"), 403)


@pytest.mark.parametrize("who", ["other_planner", "other_viewer"])
def test_another_teams_scenarios_and_jobs_are_404(as_role, team_a, who):
    scenario, job, recommendation = team_a["scenario"], team_a["job"], team_a["recommendation"]
    reads = [
        f"/scenarios/{scenario}",
        f"/scenarios/{scenario}/facilities",
        f"/scenarios/{scenario}/map",
        f"/regions/wuchang/coverage?scenario_id={scenario}",
        f"/regions/wuchang/coverage/gaps?scenario_id={scenario}",
        f"/regions/wuchang/targets?scenario_id={scenario}",
        f"/scenarios/compare?ids={scenario}&ids={scenario}x",
        f"/jobs/{job}",
        f"/recommendations/{recommendation}",
    ]
    for path in reads:
        assert_error(as_role(who, "GET", path), 404)
    assert scenario not in {s["id"] for s in as_role(who, "GET", "/scenarios").json()["scenarios"]}
    assert not {job, recommendation} & {j["id"] for j in as_role(who, "GET", "/jobs").json()["jobs"]}
    if who == "other_planner":  # the writes too: a planner, but of another team
        for method, path, kwargs in [
            ("PATCH", f"/scenarios/{scenario}", {"json": {"name": "taken over"}}),
            ("DELETE", f"/scenarios/{scenario}", {}),
            ("POST", f"/scenarios/{scenario}/run", {}),
            ("POST", f"/scenarios/{scenario}/facilities", {"files": {"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())}}),
            ("POST", "/recommendations", {"json": {"region": "wuchang", "scenario_id": scenario, "kinds": [{"p": 1}]}}),
        ]:
            assert_error(as_role(who, method, path, **kwargs), 404)
    assert as_role("planner", "GET", f"/scenarios/{scenario}").json()["name"] == "auth"  # untouched


@pytest.mark.parametrize("who", ["viewer", "planner"])
def test_only_admins_manage_keys_and_read_the_audit_log(as_role, who):
    for method, path in [("GET", "/keys"), ("POST", "/keys"), ("DELETE", "/keys/abc"), ("GET", "/audit")]:
        assert_error(as_role(who, method, path, json={"role": "viewer", "team": "x"} if method == "POST" else None), 403, "admin")


def test_an_admin_creates_a_key_that_works_and_revokes_it(as_role, client, api_keys):
    created = as_role("admin", "POST", "/keys", json={"role": "viewer", "team": "team-c", "name": "street office"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("gpk_") and key["team"] == "team-c"
    assert key["key"] not in as_role("admin", "GET", "/keys").text  # listed without its secret
    assert client.get("/scenarios", headers=bearer(key["key"])).json() == {"scenarios": []}  # team-c has none
    assert as_role("admin", "DELETE", f"/keys/{key['id']}").status_code == 204
    assert_error(client.get("/scenarios", headers=bearer(key["key"])), 401)
    assert_error(as_role("admin", "DELETE", f"/keys/{key['id']}"), 404)
    own = client.app.state.services.store.key_for(api_keys["admin"]).id
    assert_error(as_role("admin", "DELETE", f"/keys/{own}"), 409, "keys revoke")


def test_every_write_is_in_the_audit_log_with_who_did_it(as_role, api_keys, client):
    created = as_role("planner", "POST", "/scenarios", json={**NEW_SCENARIO, "name": "audited"})
    refused = as_role("viewer", "DELETE", f"/scenarios/{created.json()['id']}")
    entries = as_role("admin", "GET", "/audit?limit=20").json()["entries"]
    planner_id, viewer_id = (client.app.state.services.store.key_for(api_keys[r]).id for r in ("planner", "viewer"))
    assert {"key_id": planner_id, "role": "planner", "team": "team-a", "method": "POST", "path": "/scenarios", "status": 201}.items() \
        <= next(e for e in entries if e["key_id"] == planner_id and e["path"] == "/scenarios").items()
    assert any(e["key_id"] == viewer_id and e["method"] == "DELETE" and e["status"] == refused.status_code == 403 for e in entries)


def test_a_write_from_a_foreign_web_origin_is_refused(client):
    body = assert_error(client.post("/scenarios", json=NEW_SCENARIO, headers={"Origin": "https://elsewhere.example"}), 403,
                        "GEOPLAN_CORS_ORIGINS")
    assert body["error"] == "forbidden"
    files = {"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())}
    assert_error(client.post("/scenarios/x/facilities", files=files, headers={"Origin": "null"}), 403)
    assert client.post("/scenarios", json=NEW_SCENARIO, headers={"Origin": "http://testserver"}).status_code == 201  # its own origin
    assert client.get("/scenarios", headers={"Origin": "https://elsewhere.example"}).status_code == 200  # reads are not writes


def test_no_cross_origin_access_unless_allowed(api_settings, api_keys, wuchang, tmp_path):
    preflight = {"Origin": "https://plan.example.gov.cn", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    for allowed, expect in [((), None), (("https://plan.example.gov.cn",), "https://plan.example.gov.cn")]:
        settings = api_settings.model_copy(update={"cors_origins": allowed, "job_threads": 0})
        with TestClient(create_app(settings, preloaded={"wuchang": wuchang}), headers=bearer(api_keys["planner"])) as other:
            answer = other.options("/scenarios", headers=preflight)
            assert answer.headers.get("access-control-allow-origin") == expect
            write = other.post("/scenarios", json=NEW_SCENARIO, headers={"Origin": "https://plan.example.gov.cn"})
            assert write.status_code == (201 if allowed else 403)


def test_auth_off_is_for_local_development(api_settings, wuchang, tmp_path):
    settings = api_settings.model_copy(update={"auth": False, "db_path": str(tmp_path / "dev.sqlite3"), "job_threads": 0})
    with TestClient(create_app(settings, preloaded={"wuchang": wuchang})) as dev:
        assert dev.post("/scenarios", json=NEW_SCENARIO).status_code == 201
        assert dev.get("/keys").status_code == 200
        assert "off" in dev.get("/health").json()["auth"]


@pytest.mark.parametrize("who", ["viewer", "planner", "admin", "other_viewer"])
def test_a_key_learns_its_own_role_and_team(as_role, who):
    me = as_role(who, "GET", "/me").json()
    assert me["role"] == who.removeprefix("other_") and me["team"] == ("team-b" if who.startswith("other") else "team-a")
    assert_error(as_role(None, "GET", "/me"), 401)
