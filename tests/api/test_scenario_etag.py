"""A scenario's version in ETag, and If-Match on PATCH: two planners editing one scenario do not lose each other's edits."""

from __future__ import annotations

from tests.api.conftest import assert_error, bearer, wait_for_job

SITE_FIELDS = ("lon", "lat", "site_id", "name", "kind", "capacity", "cost")


def new_scenario(client) -> str:
    created = client.post("/scenarios", json={"region": "wuchang", "name": "two planners"})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def with_station(scenario: dict, site_id: str, lon: float) -> dict:
    """The PATCH a planner sends: the scenario's added list as read, plus one station."""
    added = [{k: s[k] for k in SITE_FIELDS} for s in scenario["added"]]
    return {"added": [*added, {"lon": lon, "lat": 30.55, "site_id": site_id}]}


def added_ids(client, scenario_id: str) -> list[str]:
    return sorted(s["site_id"] for s in client.get(f"/scenarios/{scenario_id}").json()["added"])


def test_the_second_of_two_planners_gets_412_instead_of_overwriting(client, api_keys):
    sid = new_scenario(client)
    other = {**client.headers, **bearer(api_keys["admin"])}  # a second member of the team
    first, second = client.get(f"/scenarios/{sid}"), client.get(f"/scenarios/{sid}", headers=other)
    assert first.headers["etag"] == second.headers["etag"]
    saved = client.patch(f"/scenarios/{sid}", json=with_station(first.json(), "planner1", 114.31), headers={"If-Match": first.headers["etag"]})
    assert saved.status_code == 200, saved.text
    stale = client.patch(f"/scenarios/{sid}", json=with_station(second.json(), "planner2", 114.32),
                         headers={**other, "If-Match": second.headers["etag"]})
    body = assert_error(stale, 412, "If-Match", f"GET /scenarios/{sid}", saved.headers["etag"].strip('"'))
    assert body["error"] == "precondition_failed"
    assert added_ids(client, sid) == ["planner1"]
    again = client.get(f"/scenarios/{sid}", headers=other)  # the second planner reads again and redoes the edit
    redone = client.patch(f"/scenarios/{sid}", json=with_station(again.json(), "planner2", 114.32), headers={**other, "If-Match": again.headers["etag"]})
    assert redone.status_code == 200, redone.text
    assert added_ids(client, sid) == ["planner1", "planner2"]


def test_etag_on_create_get_and_patch_names_the_stored_version(client):
    created = client.post("/scenarios", json={"region": "wuchang", "name": "versions"})
    sid = created.json()["id"]
    tag = created.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    assert client.get(f"/scenarios/{sid}").headers["etag"] == tag
    renamed = client.patch(f"/scenarios/{sid}", json={"name": "renamed"}, headers={"If-Match": tag})
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["etag"] != tag and client.get(f"/scenarios/{sid}").headers["etag"] == renamed.headers["etag"]
    described = client.patch(f"/scenarios/{sid}", json={"description": "only the text"}, headers={"If-Match": renamed.headers["etag"]})
    assert described.status_code == 200 and described.headers["etag"] != renamed.headers["etag"]
    assert_error(client.patch(f"/scenarios/{sid}", json={"name": "late"}, headers={"If-Match": tag}), 412, "If-Match")
    assert client.get(f"/scenarios/{sid}").json()["name"] == "renamed"


def test_if_match_forms_and_requests_without_it(client):
    sid = new_scenario(client)
    tag = client.get(f"/scenarios/{sid}").headers["etag"]
    assert_error(client.patch(f"/scenarios/{sid}", json={"name": "x"}, headers={"If-Match": '"nope", W/"other"'}), 412, "If-Match")
    assert_error(client.patch(f"/scenarios/{sid}", json={"name": "x"}, headers={"If-Match": "2026-01-01T00:00:00.000+00:00"}), 412)
    listed = client.patch(f"/scenarios/{sid}", json={"name": "a"}, headers={"If-Match": f'"nope", {tag}'})
    assert listed.status_code == 200, listed.text
    weak = client.patch(f"/scenarios/{sid}", json={"name": "b"}, headers={"If-Match": "W/" + listed.headers["etag"]})  # as a proxy may pass it
    assert weak.status_code == 200, weak.text
    assert client.patch(f"/scenarios/{sid}", json={"name": "c"}, headers={"If-Match": "*"}).status_code == 200
    plain = client.patch(f"/scenarios/{sid}", json={"name": "d"})  # the workspace sends no If-Match: as before
    assert plain.status_code == 200 and plain.json()["name"] == "d" and plain.headers["etag"]


def test_a_run_leaves_the_version_as_it_is(client):
    sid = new_scenario(client)
    tag = client.get(f"/scenarios/{sid}").headers["etag"]
    job = wait_for_job(client, client.post(f"/scenarios/{sid}/run").json()["id"])
    assert job["status"] == "succeeded", job
    read = client.get(f"/scenarios/{sid}")
    assert read.json()["result"] is not None and read.headers["etag"] == tag
    assert client.patch(f"/scenarios/{sid}", json={"name": "after the run"}, headers={"If-Match": tag}).status_code == 200


def test_openapi_documents_etag_and_if_match(client):
    paths = client.get("/openapi.json").json()["paths"]["/scenarios/{scenario_id}"]
    patch = paths["patch"]
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in patch["parameters"])
    assert "412" in patch["responses"] and "If-Match" in patch["description"]
    assert "ETag" in patch["responses"]["200"]["headers"] and "ETag" in paths["get"]["responses"]["200"]["headers"]


def test_the_body_carries_the_version_the_etag_names(client):
    """The workspace reads scenarios from lists as well, where there is no header per scenario: `version` is the ETag."""
    sid = new_scenario(client)
    one = client.get(f"/scenarios/{sid}")
    assert one.json()["version"] == one.headers["etag"]
    listed = next(s for s in client.get("/scenarios").json()["scenarios"] if s["id"] == sid)
    assert listed["version"] == one.headers["etag"]
    saved = client.patch(f"/scenarios/{sid}", json={"name": "versioned"}, headers={"If-Match": listed["version"]})
    assert saved.status_code == 200 and saved.json()["version"] == saved.headers["etag"] != listed["version"]
