"""A planner's session in the workspace, in headless Chromium against a real service on 127.0.0.1.

Every figure the page shows after an edit must be the service's own for the
same edit (read back through the API); nothing may be requested from anywhere
but the service, and the console must stay clean (the page learns the key's
role from GET /me).
"""

from __future__ import annotations

import json

import pytest
from openpyxl import load_workbook

from tests.browser import console_errors, requests
from tests.browser_workspace.driver import SAMPLE_FACILITIES, api_coverage, sent_elsewhere, unexpected_console, wait_for

pytestmark = pytest.mark.slow

REGION = "wuchang"
NEW_STATION = (114.3408, 30.59)  # among many older people beyond 15 min of the sample list, away from any candidate site


def downloaded(folder, suffix: str, timeout_s: float = 60):
    return wait_for(lambda: next((p for p in folder.glob(f"*{suffix}") if p.stat().st_size > 0), None), timeout_s=timeout_s,
                    what=f"no {suffix} downloaded")


def people_text(value: float) -> str:
    return f"{round(value):,}"


def test_a_planner_plans_a_station_and_downloads_the_review(server, page, downloads):
    http = server.http("planner")
    page.open()
    page.sign_in(server.keys["planner"])
    page.wait_ready()
    assert page.text("#role-badge") == "规划员"
    # today's coverage of the region, as the service counts it
    base = http.get(f"/regions/{REGION}/coverage").json()
    for row in (r for r in base["rows"] if r["group"] in ("pop_60", "pop_80")):
        assert page.covered_text(row["group"], row["threshold_min"]) == people_text(row["covered"])
        assert f"{row['covered_pct']:.1f}%" in page.text(f"[data-cell='{row['group']}:{row['threshold_min']:g}']")
    assert page.layer_size("streets") == 2 and page.layer_size("boundary") >= 1
    gaps = http.get(f"/regions/{REGION}/coverage/gaps", params={"limit": 10000}).json()
    assert page.js("return window.geoplanWorkspace.map.gapCount") == gaps["returned"] > 0

    # a scenario with the sample facility list (Amap coordinates)
    page.find("#create-name").send_keys("样本设施 sample list")
    page.find("#create-form button").click()
    scenario_id = wait_for(lambda: page.state("state.scenario.id"), timeout_s=30, what="the new scenario")
    assert f"scenario={scenario_id}" in page.driver.current_url
    page.find("#upload-file").send_keys(str(SAMPLE_FACILITIES))
    page.find("#upload-coord").send_keys("GCJ")  # the default already; chosen as a planner would
    page.find("#upload-form button[type=submit]").click()
    assert "19" in wait_for(lambda: page.text("#upload-result"), timeout_s=60, what="the upload's answer")
    page.idle()
    listed = http.get(f"/scenarios/{scenario_id}/facilities", params={"status": "existing"}).json()
    assert listed["counts"] == {"existing": 19} and page.layer_size("sites") == 19
    assert page.covered("pop_60", 15) == pytest.approx(api_coverage(http, REGION, scenario_id))

    # a station added by a click: the gain shown is the service's difference for that edit
    before = {g: api_coverage(http, REGION, scenario_id, g) for g in ("pop_60", "pop_80")}
    page.add_site(*NEW_STATION)
    after = {g: api_coverage(http, REGION, scenario_id, g) for g in ("pop_60", "pop_80")}
    assert page.gain("pop_60", 15) == round(after["pop_60"] - before["pop_60"]) > 0
    assert page.gain("pop_80", 15) == round(after["pop_80"] - before["pop_80"]) > 0
    assert page.covered_text("pop_60", 15) == people_text(after["pop_60"])
    added = http.get(f"/scenarios/{scenario_id}").json()["added"]
    assert len(added) == 1 and added[0]["kind"] == "station"
    assert added[0]["lon"] == pytest.approx(NEW_STATION[0], abs=2e-4) and added[0]["lat"] == pytest.approx(NEW_STATION[1], abs=2e-4)
    page.idle()
    assert page.layer_size("sites") == 20

    # a facility closed by clicking it: people lost, again the service's figure
    s05 = next(f for f in listed["features"] if f["properties"]["site_id"] == "S05")
    before = api_coverage(http, REGION, scenario_id)
    page.edit(lambda: page.click_map(*s05["geometry"]["coordinates"]), mode="close")
    assert http.get(f"/scenarios/{scenario_id}").json()["closed"] == ["S05"]
    assert page.gain("pop_60", 15) == round(api_coverage(http, REGION, scenario_id) - before) <= 0
    page.idle()

    # two more stations recommended on top of the scenario, shown in build order, accepted
    page.mode("inspect")
    page.tab("recommend")
    page.find("#recommend-stations").clear()
    page.find("#recommend-stations").send_keys("2")
    page.find("#recommend-form button[type=submit]").click()
    wait_for(lambda: page.js("return !document.getElementById('recommend-result').hidden"), timeout_s=180, what="the recommendation")
    job = http.get("/recommendations", params={"status": "succeeded"}).json()["jobs"][0]
    plan = http.get(f"/recommendations/{job['id']}").json()["result"]["plan"]
    in_order = sorted(plan["new_sites"], key=lambda s: s["phase"])
    assert job["scenario_id"] == scenario_id and len(in_order) == 2
    assert [li.text.split("\n")[0].strip() for li in page.find_all("#proposal-list li")] == [s["name"] for s in in_order]
    assert page.layer_size("proposals") == 2
    before = api_coverage(http, REGION, scenario_id)
    page.edit(lambda: page.find("#accept-proposals").click())
    scenario = http.get(f"/scenarios/{scenario_id}").json()
    assert [(s["name"], s["lon"], s["lat"]) for s in scenario["added"][1:]] == [(s["name"], s["lon"], s["lat"]) for s in in_order]
    assert page.gain("pop_60", 15) == round(api_coverage(http, REGION, scenario_id) - before)
    page.idle()

    # nothing is lost on reload: the scenario comes back from the address, its figures from the service
    http.post("/scenarios", json={"region": REGION, "name": "空白 empty"}).raise_for_status()
    page.driver.refresh()
    page.wait_ready()
    assert page.state("state.scenario.id") == scenario_id and page.find("#scenario").get_attribute("value") == scenario_id
    assert page.covered("pop_60", 15) == pytest.approx(api_coverage(http, REGION, scenario_id))
    assert len(page.find_all("#added-list li")) == 3 and len(page.find_all("#closed-list li")) == 1

    # side by side with the empty scenario
    page.tab("compare")
    for box in page.find_all("#compare-choices input"):
        if not box.is_selected():
            box.click()
    page.find("#compare-run").click()
    wait_for(lambda: page.find_all("#compare-result tbody tr"), timeout_s=120, what="the comparison")
    ids = [row.get_attribute("data-scenario") for row in page.find_all("#compare-result tbody tr")]
    compared = http.get("/scenarios/compare", params={"ids": ids}).json()["scenarios"]
    shown = page.find_all("#compare-result tbody tr")[1].text
    assert people_text(compared[1]["covered"]["pop_60"]) in shown

    # downloads: the review workbook, the facility layer and the embeddable map
    page.tab("downloads")
    page.find("[data-download='workbook']").click()
    book = load_workbook(downloaded(downloads, ".xlsx"), read_only=True)
    assert "summary 摘要" in book.sheetnames and "station 社区养老服务站" in book.sheetnames
    stations = list(book["station 社区养老服务站"].iter_rows(values_only=True))[1:]
    review = http.get(f"/regions/{REGION}/targets", params={"scenario_id": scenario_id}).json()
    assert len(stations) == review["facilities_by_kind"]["station"]
    page.find("[data-download='layers']").click()
    layer = json.loads(downloaded(downloads, ".geojson").read_text(encoding="utf-8"))
    assert layer["features"] == http.get(f"/scenarios/{scenario_id}/facilities").json()["features"]
    page.find("[data-download='map']").click()
    embedded = downloaded(downloads, ".html").read_text(encoding="utf-8")
    assert "leaflet" in embedded.lower() and "<script src=" not in embedded

    assert unexpected_console(console_errors(page.driver)) == []
    assert sent_elsewhere(requests(page.driver), server.url) == []


def test_the_review_shows_what_fails_in_both_languages(server, page):
    http = server.http("viewer")
    page.open("tab=review")
    page.sign_in(server.keys["viewer"])
    page.wait_ready()
    page.find("#review-form button[type=submit]").click()
    wait_for(lambda: page.find_all("#review-result table.review"), timeout_s=180, what="the review")
    review = http.get(f"/regions/{REGION}/targets", params={"preset": "shuimogou"}).json()
    rows = page.find_all("#review-result table.review tbody tr")
    assert len(rows) == len(review["summary"])
    failing = [r for r in review["summary"] if r["pass"] is False]
    assert len([r for r in rows if "fail" in r.get_attribute("class")]) == len(failing) > 0
    zones = [u for u in review["streets"] if u["passes"] is False]
    summary = page.find_all("#review-result details summary")[0].text
    assert f"{len(zones)} / {len(review['streets']) - 1}" in summary  # the last row holds the people outside every unit

    # English: every label translated, no string left as its key
    page.find("button[data-lang='en']").click()
    assert page.text("#coverage-title") == "Within a walk of care"
    assert page.text("[data-tab='review']") == "Review"
    assert "some targets fail" in page.text("#review-result .verdict")
    leftovers = page.js("""return [...document.querySelectorAll('body *')].filter(e => e.children.length === 0 && e.offsetParent !== null)
        .map(e => e.textContent.trim()).filter(t => /^[a-z]+(\\.[a-zA-Z]+)+$/.test(t));""")
    assert leftovers == []
    page.driver.refresh()  # the language is remembered
    page.wait_ready()
    assert page.text("[data-tab='review']") == "Review"
    page.find("button[data-lang='zh']").click()
    assert page.text("#coverage-title") == "步行可达覆盖"

    # sign out forgets the key
    page.find("#sign-out").click()
    wait_for(lambda: page.js("return !document.getElementById('sign-in').hidden"), timeout_s=20, what="the sign-in form again")
    assert page.js("return sessionStorage.getItem('geoplan.key') || localStorage.getItem('geoplan.key')") is None
    assert unexpected_console(console_errors(page.driver)) == []
    assert sent_elsewhere(requests(page.driver), server.url) == []


def test_an_edit_made_elsewhere_meanwhile_is_kept(server, page):
    """Another planner adds a canteen while the page shows the scenario; the page's next station is added to it, not over it."""
    http = server.http("planner")
    scenario = http.post("/scenarios", json={"region": REGION, "name": "两位规划员 two planners"}).json()
    page.open(f"region={REGION}&scenario={scenario['id']}")
    page.sign_in(server.keys["planner"])
    page.wait_ready()
    wait_for(lambda: page.state("state.scenario.id") == scenario["id"], timeout_s=30, what="the scenario")
    elsewhere = http.patch(f"/scenarios/{scenario['id']}", headers={"If-Match": scenario["version"]},
                           json={"added": [{"lon": 114.32, "lat": 30.55, "kind": "canteen", "site_id": "elsewhere"}]})
    assert elsewhere.status_code == 200, elsewhere.text
    page.add_site(*NEW_STATION)
    added = http.get(f"/scenarios/{scenario['id']}").json()["added"]
    assert [s["kind"] for s in added] == ["canteen", "station"] and added[0]["site_id"] == "elsewhere"
    assert page.state("state.scenario.version") == http.get(f"/scenarios/{scenario['id']}").headers["etag"]
    # Chromium logs the 412 that told the page to make its edit again; nothing else
    assert unexpected_console(console_errors(page.driver), expected=("status of 412",)) == []
