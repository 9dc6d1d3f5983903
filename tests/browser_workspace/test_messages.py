"""What the workspace says when a key may not do something, or an input cannot be used: the service's own message,
next to the control that caused it."""

from __future__ import annotations

import pytest

from tests.browser import console_errors, requests
from tests.browser_workspace.driver import sent_elsewhere, unexpected_console, wait_for

pytestmark = pytest.mark.slow

REGION = "wuchang"
OUTSIDE_WUCHANG = (114.265, 30.625)  # inside the map's frame, outside the district (the Hanyang side)


def failed_loads(messages: list[str], *statuses: int) -> list[str]:
    """Console lines that are neither the role probe nor a failed load with one of ``statuses``."""
    return unexpected_console(messages, expected=tuple(f"status of {s} " for s in statuses))


def test_a_wrong_key_is_refused_with_the_services_message(server, page):
    page.open()
    page.sign_in("gpk_nobody_0000")
    message = page.wait_error("sign-in")
    assert message.startswith("Unknown or revoked API key") and "unauthorized" in message
    assert page.js("return sessionStorage.getItem('geoplan.key')") is None
    page.find("#sign-in-key").clear()
    page.sign_in(server.keys["planner"])
    page.wait_ready()
    assert failed_loads(console_errors(page.driver), 401) == []


def test_a_viewer_reads_but_cannot_edit(server, page):
    http = server.http("planner")
    scenario = http.post("/scenarios", json={"region": REGION, "name": "viewer's view"}).json()
    page.open(f"region={REGION}&scenario={scenario['id']}")
    page.sign_in(server.keys["viewer"])
    page.wait_ready()
    assert page.text("#role-badge") == "查看者 · 只读"
    assert page.state("state.scenario.id") == scenario["id"]
    for control in ("#create-form button", "#rename-form button", "#upload-form button[type=submit]", "#upload-file",
                    "button[data-mode='station']", "button[data-mode='canteen']", "button[data-mode='close']",
                    "#recommend-form button[type=submit]", "#accept-proposals"):
        assert not page.find(control).is_enabled(), control
    assert page.find("button[data-mode='inspect']").is_enabled()
    # forced anyway (the control enabled by hand): the service's 403 appears beside it, nothing is created
    page.js("document.querySelectorAll('#create-form input, #create-form button').forEach(c => { c.disabled = false; });")
    page.find("#create-name").send_keys("not allowed")
    page.find("#create-form button").click()
    message = page.wait_error("create")
    assert message.startswith("A viewer key may not POST /scenarios") and "forbidden" in message
    assert [s["name"] for s in http.get("/scenarios").json()["scenarios"]].count("not allowed") == 0
    # reading goes on: the care circles of a point
    page.click_map(114.33, 30.55)
    wait_for(lambda: page.layer_size("circles") == 3, timeout_s=60, what="the care circles of the point")
    assert failed_loads(console_errors(page.driver), 403) == []
    assert sent_elsewhere(requests(page.driver), server.url) == []


def test_bad_input_is_answered_next_to_its_control(server, page, tmp_path):
    http = server.http("planner")
    scenario = http.post("/scenarios", json={"region": REGION, "name": "bad input"}).json()
    page.open(f"region={REGION}&scenario={scenario['id']}")
    page.sign_in(server.keys["planner"])
    page.wait_ready()

    # a file without coordinates
    wrong = tmp_path / "stations.csv"
    wrong.write_text("name,address\n示例站,武昌区中南路\n", encoding="utf-8")
    page.find("#upload-file").send_keys(str(wrong))
    page.find("#upload-form button[type=submit]").click()
    expected = http.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("stations.csv", wrong.read_bytes())},
                         data={"coord_system": "gcj02"}).json()
    assert page.wait_error("upload") == f"{expected['detail']} {expected['error']}"

    # a station outside the district
    page.mode("station")
    page.click_map(*OUTSIDE_WUCHANG)
    message = page.wait_error("map")
    assert "lie outside the region" in message and "input_error" in message
    assert http.get(f"/scenarios/{scenario['id']}").json()["added"] == []
    page.idle()
    assert page.layer_size("sites") == 0  # the pending marker is gone with the refusal

    # a target out of reach: refused at once, with the best share reachable
    page.mode("inspect")
    page.tab("recommend")
    page.find("#recommend-model").send_keys("目标")
    page.find("#recommend-target").clear()
    page.find("#recommend-target").send_keys("99")
    page.find("#recommend-stations").clear()
    page.find("#recommend-stations").send_keys("1")
    page.find("#recommend-form button[type=submit]").click()
    message = page.wait_error("recommend")
    assert "cannot be reached" in message and "infeasible" in message

    # the page still works, and its state is the service's
    page.driver.refresh()
    page.wait_ready()
    assert page.state("state.scenario.id") == scenario["id"]
    assert failed_loads(console_errors(page.driver), 422) == []
    assert sent_elsewhere(requests(page.driver), server.url) == []
