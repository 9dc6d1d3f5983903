"""Numbers near the largest float: refused with a message where a client gives them, never a 500 where they are stored."""

from __future__ import annotations

import pytest

from api.services import scenarios as sc
from tests.api.conftest import assert_error, wait_for_job

TWO_SITES = [{"lon": 114.30, "lat": 30.55}, {"lon": 114.31, "lat": 30.55}]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kinds": [{"p": 3, "capacity": 1e308}]}, ["kinds.0.capacity", "1e+07", "really serve"]),
        ({"kinds": [{"p": 3, "capacity": 2e7}]}, ["kinds.0.capacity", "1e+07"]),
        ({"kinds": [{"p": 2, "budget": 1e308}]}, ["kinds.0.budget", "1e+15", "yuan"]),
        ({"kinds": [{"p": 2}], "total_budget": 1e308}, ["total_budget", "1e+15", "leave it out"]),
    ],
)
def test_recommendations_refuse_numbers_past_their_bounds(client, body, words):
    assert_error(client.post("/recommendations", json={"region": "wuchang", **body}), 422, *words)


def test_the_largest_capacity_and_budget_allowed_still_solve(client):
    body = {"region": "wuchang", "kinds": [{"p": 3, "capacity": 1e7, "budget": 1e15}], "total_budget": 1e15}
    response = client.post("/recommendations", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    assert len(job["result"]["plan"]["new_sites"]) == 3


@pytest.mark.parametrize(
    ("site", "words"),
    [({"cost": 1e308}, ["added.0.cost", "1e+12", "yuan"]), ({"capacity": 1e308}, ["added.0.capacity", "1e+07"])],
)
def test_added_sites_refuse_absurd_cost_or_capacity(client, site, words):
    assert_error(client.post("/scenarios", json={"region": "wuchang", "name": "x", "added": [{**TWO_SITES[0], **site}]}), 422, *words)
    sid = client.post("/scenarios", json={"region": "wuchang", "name": "x"}).json()["id"]
    assert_error(client.patch(f"/scenarios/{sid}", json={"added": [{**TWO_SITES[0], **site}]}), 422, *words)


def test_the_largest_cost_and_capacity_allowed_add_up(client):
    sites = [{**s, "cost": 1e12, "capacity": 1e7} for s in TWO_SITES]
    created = client.post("/scenarios", json={"region": "wuchang", "name": "dear", "added": sites})
    assert created.status_code == 201, created.text
    job = wait_for_job(client, client.post(f"/scenarios/{created.json()['id']}/run").json()["id"])
    assert job["status"] == "succeeded", job
    assert client.get(f"/scenarios/{created.json()['id']}").json()["result"]["sites"]["added_cost"] == 2e12


def stored_with_costs(client, cost: float) -> str:
    """A scenario whose added sites were stored with ``cost`` each (as before the bound), straight in the store."""
    created = client.post("/scenarios", json={"region": "wuchang", "name": "stored before the bound", "added": TWO_SITES}).json()
    store = client.app.state.services.store
    record = store.get_scenario(created["id"])
    spec = {**record.spec, "added": [{**s, "cost": cost} for s in record.spec["added"]]}
    store.update_scenario(record.id, name=record.name, spec=spec, spec_hash=sc.spec_hash(spec))
    return record.id


def test_stored_costs_that_add_up_past_the_largest_float_never_answer_500(client):
    sid = stored_with_costs(client, 1e308)
    ref = client.post("/scenarios", json={"region": "wuchang", "name": "reference"}).json()["id"]
    compared = client.get("/scenarios/compare", params={"ids": [ref, sid]})
    assert compared.status_code == 200, compared.text
    assert compared.json()["scenarios"][1]["added_cost"] is None
    job = wait_for_job(client, client.post(f"/scenarios/{sid}/run").json()["id"])
    assert job["status"] == "succeeded", job
    read = client.get(f"/scenarios/{sid}")
    assert read.status_code == 200, read.text
    assert read.json()["result"]["sites"]["added_cost"] is None
    listed = client.get("/scenarios")
    assert listed.status_code == 200, listed.text
    assert sid in [s["id"] for s in listed.json()["scenarios"]]
    assert client.get("/scenarios/compare", params={"ids": [ref, sid]}).status_code == 200
    assert client.delete(f"/scenarios/{sid}").status_code == 204  # the team's list is the session's: leave it as found


def test_stored_settings_past_todays_bounds_are_still_shown(client):
    store = client.app.state.services.store
    spec = {**sc.empty_spec("wuchang", "old settings"), "recommend": {"kinds": [{"p": 3, "capacity": 1e308}], "total_budget": 1e308}}
    record = store.create_scenario(region="wuchang", name="old settings", spec=spec, spec_hash=sc.spec_hash(spec), team="team-a")
    read = client.get(f"/scenarios/{record.id}")
    assert read.status_code == 200, read.text
    assert read.json()["recommend"]["kinds"][0]["capacity"] == 1e308
    assert client.get("/scenarios").status_code == 200
    assert client.delete(f"/scenarios/{record.id}").status_code == 204
