from geoplan.coverage import coverage_summary
from geoplan.optimize import planning_sites
from tests.api.conftest import assert_error, wait_for_job


def test_recommendation_job(client, scenario):
    response = client.post("/recommendations", json={"region": "wuchang", "scenario_id": scenario["id"], "kinds": [{"kind": "station", "p": 3}]})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/recommendations/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded") and job["kind"] == "recommendation"
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    plan = client.get(f"/recommendations/{job['id']}").json()["result"]["plan"]
    assert plan["model"] == "mclp" and plan["optimal"] is True and len(plan["new_sites"]) == 3
    assert all(114 < s["lon"] < 115 for s in plan["new_sites"])
    gains = [c for c in plan["coverage"] if c["group"] == "pop_60" and c["threshold_min"] == 15]
    assert gains and gains[0]["after"] > gains[0]["before"]
    listed = client.get("/recommendations").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed] and all(j["result"] is None for j in listed)
    assert job["id"] in [j["id"] for j in client.get("/jobs", params={"kind": "recommendation"}).json()["jobs"]]


def test_two_kinds(client):
    body = {"region": "wuchang", "kinds": [{"kind": "station", "p": 2}, {"kind": "canteen", "p": 1, "threshold_min": 10}], "one_per_site": True}
    job = wait_for_job(client, client.post("/recommendations", json=body).json()["id"])
    assert job["status"] == "succeeded", job
    assert sorted(s["kind"] for s in job["result"]["plan"]["new_sites"]) == ["canteen", "station", "station"]


def test_infeasible_target_answers_422_with_the_best_figure(client, wuchang):
    response = client.post("/recommendations", json={"region": "wuchang", "model": "target", "kinds": [{"target_pct": 95}]})
    body = assert_error(response, 422, "cannot be reached", "lower target_pct")
    assert body["error"] == "infeasible"
    # the best share, computed apart from the optimiser: coverage with every site of the region open
    every_site = wuchang.reach(planning_sites(wuchang).sites, cutoff_min=15)
    best = coverage_summary(wuchang.demand, every_site, thresholds_min=(15,)).loc[("pop_60", 15), "covered_pct"]
    assert body["best_achievable"]["best_pct"] == round(best, 3)  # the answer gives three decimals


def test_infeasible_in_the_job_fails_it_with_the_reason(client):
    # a target the candidates can reach, but not within p: infeasible only once solved
    response = client.post("/recommendations", json={"region": "wuchang", "model": "target", "kinds": [{"target_pct": 60, "p": 1}]})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "failed" and job["error"]["type"] == "infeasible"
    assert "raise p" in job["error"]["message"]


def test_bad_recommendations(client):
    cases = [
        ({"region": "atlantis"}, 404, ["atlantis"]),
        ({"region": "wuchang", "model": "magic"}, 422, ["model"]),
        ({"region": "wuchang", "model": "target", "kinds": [{"kind": "station"}]}, 422, ["target_pct"]),
        ({"region": "wuchang", "kinds": [{"p": 500}]}, 422, ["only 124 candidate"]),
        ({"region": "wuchang", "model": "target", "kinds": [{"target_pct": 50, "target_group": "pop_99"}]}, 422, ["pop_99"]),
        ({"region": "wuchang", "kinds": [{"p": 2, "target_group": "pop_80"}]}, 422, ["target_group", "not used by the mclp model"]),
        ({"region": "wuchang", "kinds": [{"p": 2}], "minimize": "cost"}, 422, ["minimize", "mclp"]),
        ({"region": "wuchang", "kinds": [{"p": 1}, {"p": 2}]}, 422, ["each kind at most once"]),
        ({"region": "wuchang", "scenario_id": "nope"}, 404, ["nope"]),
        ({"region": "wuchang", "time_limit_s": 0}, 422, ["time_limit_s"]),
    ]
    for body, status, words in cases:
        assert_error(client.post("/recommendations", json=body), status, *words)
    assert_error(client.get("/recommendations/nope"), 404, "nope")
    assert_error(client.get("/jobs/nope"), 404, "nope")
