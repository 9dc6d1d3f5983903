"""Benchmark: the planner's web workspace in headless Chromium, against a real service on loopback.

Run from the repository root::

    python bench/workspace.py                 # 20 loads, 20 edits, screenshots into docs/screenshots/
    python bench/workspace.py --quick         # smoke run: 3 loads, 3 edits, no screenshots

Starts the service with API keys on (uvicorn, one process, one job thread,
Wuchang preloaded, a fresh database) and a planner's key, creates a scenario
with the sample facility list (GCJ-02), warms the service's caches once
(the region's coverage, streets and gaps: what a first visitor of the day
pays is reported apart), then measures in Chromium:

* ``load_ms``: from navigation start to the coverage figures shown, the page
  opened on the region (HTTP cache cleared before each load, the key already
  in the tab's storage);
* ``load_scenario_ms`` (no goal): the same, opened on the scenario;
* ``edit_ms``: from the click that adds a station (the click event's time) to
  the updated figures shown, at the most populated gap cells, one station
  each.

Each is the median of ``--repeat`` runs, with min and max. Where an edit's
time goes is read from the page's Resource Timing (the PATCH, the scenario's
coverage, the page's own work) and, in this process, from the library calls
behind ``GET /regions/{region}/coverage?scenario_id=...``
(``api.services.scenarios.end_state_report`` and ``CoverageIndex.build`` over
the region's prepared ``CellTable``, each also profiled with cProfile). Goals: ``load_ms`` < 2,000 and ``edit_ms`` < 500.
Writes ``bench/results/workspace.json``; exits 0 whether or not the goals pass.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import REPO, Timing, goal, machine, measure, write_result  # noqa: E402

GOAL_LOAD_MS = 2000.0
GOAL_EDIT_MS = 500.0
REGION = "wuchang"
SCREENSHOTS = REPO / "docs" / "screenshots"
WIDTH, HEIGHT = 1440, 900


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="loads and edits measured (median)")
    parser.add_argument("--quick", action="store_true", help="3 loads and 3 edits, no screenshots")
    parser.add_argument("--screenshots", type=Path, default=SCREENSHOTS, help="where the screenshots of the main views go")
    parser.add_argument("--no-screenshots", action="store_true")
    return parser.parse_args(argv)


def ms(timing: Timing) -> dict:
    return {"median_ms": round(timing.median_s * 1000, 1), "min_ms": round(timing.min_s * 1000, 1),
            "max_ms": round(timing.max_s * 1000, 1), **timing.as_dict()}


# --------------------------------------------------------------------------- page measurements

RESOURCES_JS = """
const since = arguments[0];
return performance.getEntriesByType('resource').filter(e => e.startTime >= since).map(e => ({
    path: new URL(e.name).pathname + new URL(e.name).search, start: e.startTime, end: e.responseEnd,
    duration: e.duration, waiting: e.responseStart - e.requestStart, bytes: e.encodedBodySize}));
"""


def measure_loads(ws, repeat: int, place: str) -> tuple[Timing, list[dict]]:
    """Loads with an empty HTTP cache; the time to the figures and the requests of each."""
    from tests.browser_workspace.driver import wait_for

    times, requests = [], []
    for _ in range(repeat):
        ws.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        ws.driver.get("about:blank")
        ws.open(place)
        wait_for(lambda: ws.js("return window.geoplanWorkspace && window.geoplanWorkspace.timings.load"), timeout_s=60,
                 what="the coverage figures")
        times.append(ws.js("return window.geoplanWorkspace.timings.load") / 1000)
        requests.append(ws.js(RESOURCES_JS, 0))
        ws.wait_ready()
    return Timing(times_s=tuple(times)), requests


def edit_points(http, scenario_id: str, n: int) -> list[tuple[float, float]]:
    """The centres of the ``n`` most populated gap cells of the scenario (60+ beyond 15 min), far enough apart."""
    cells = http.get(f"/regions/{REGION}/coverage/gaps", params={"scenario_id": scenario_id, "limit": 2000}).json()["features"]
    points: list[tuple[float, float]] = []
    for cell in cells:
        ring = cell["geometry"]["coordinates"][0]
        lon, lat = sum(p[0] for p in ring[:-1]) / 4, sum(p[1] for p in ring[:-1]) / 4
        if all(abs(lon - a) > 0.004 or abs(lat - b) > 0.004 for a, b in points):
            points.append((round(lon, 6), round(lat, 6)))
        if len(points) == n:
            break
    return points


def measure_edits(ws, points) -> tuple[Timing, list[dict]]:
    """A station added at each point by a click; the page's click-to-figures time and the requests behind it."""
    times, parts = [], []
    for lon, lat in points:
        clicked = ws.js("return performance.now()")
        total = ws.add_site(lon, lat)
        ws.wait_ready()
        ws.idle()
        sent = ws.js(RESOURCES_JS, clicked)
        patch = next(r for r in sent if r["path"].startswith("/scenarios/") and "/facilities" not in r["path"] and "compare" not in r["path"])
        coverage = next(r for r in sent if r["path"].startswith(f"/regions/{REGION}/coverage?"))
        times.append(total / 1000)
        parts.append({"total_ms": round(total, 1), "patch_ms": round(patch["duration"], 1), "coverage_ms": round(coverage["duration"], 1),
                      "coverage_waiting_ms": round(coverage["waiting"], 1),
                      "page_ms": round(total - patch["duration"] - coverage["duration"], 1)})
    return Timing(times_s=tuple(times)), parts


def median_parts(parts: list[dict]) -> dict:
    import numpy as np

    return {k: round(float(np.median([p[k] for p in parts])), 1) for k in parts[0]} if parts else {}


def request_table(loads: list[list[dict]]) -> list[dict]:
    """Per request of a load: its median duration and time to first byte over the loads."""
    import numpy as np

    by_path: dict[str, list[dict]] = {}
    for load in loads:
        for r in load:
            by_path.setdefault(r["path"].split("?")[0] + ("?…" if "?" in r["path"] else ""), []).append(r)
    rows = [{"path": p, "median_start_ms": round(float(np.median([r["start"] for r in rs])), 1),
             "median_ms": round(float(np.median([r["duration"] for r in rs])), 1),
             "median_waiting_ms": round(float(np.median([r["waiting"] for r in rs])), 1),
             "bytes": int(np.median([r["bytes"] for r in rs]))} for p, rs in by_path.items()]
    return sorted(rows, key=lambda r: r["median_start_ms"])


# --------------------------------------------------------------------------- the library behind an edit


def library_breakdown(db: Path, scenario_id: str, repeat: int) -> dict:
    """The calls behind GET /regions/{region}/coverage?scenario_id=... for the bench's scenario, timed in this process."""
    from geoplan import load_region
    from geoplan.analysis import analyse_coverage
    from geoplan import scenario as gs

    from api.services import scenarios as sc
    from api.services.coverage import CellTable, CoverageIndex
    from api.store import Store

    store = Store(db)
    spec = store.get_scenario(scenario_id).spec
    store.close()
    region = load_region(REGION)
    scenario = sc.to_scenario(region, spec)
    report = sc.end_state_report(region, spec, None, with_circles=False)
    cells = CellTable.of(region.demand, region.groups)
    timings = {
        "end_state_report": measure(lambda: sc.end_state_report(region, spec, None, with_circles=False), repeat, warmup=1),
        # per scenario: the region's cells are prepared once (cell_table, paid when the region's coverage is first asked)
        "coverage_index_build": measure(lambda: CoverageIndex.build(report, cells), repeat, warmup=1),
        "cell_table": measure(lambda: CellTable.of(region.demand, region.groups), repeat, warmup=1),
        "apply": measure(lambda: gs.apply(region, scenario), repeat, warmup=1),
        # the edited region is a new Region (dataclasses.replace): its walk router is built again
        "router_of_edited_region": measure(lambda: gs.apply(region, scenario).router, repeat, warmup=1),
        "analyse_coverage_after": measure(lambda: analyse_coverage(gs.apply(region, scenario), with_circles=False), repeat, warmup=1),
    }
    return {
        "sites": int(len(report.sites)),
        "demand_cells": int(len(region.demand)),
        "timings": {name: ms(t) for name, t in timings.items()},
        "profile_end_state_report": profiled(lambda: sc.end_state_report(region, spec, None, with_circles=False)),
        "profile_coverage_index_build": profiled(lambda: CoverageIndex.build(report, cells)),
    }


def profiled(fn, top: int = 20) -> list[str]:
    """cProfile of one call: the ``top`` functions by cumulative time, as pstats prints them."""
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(top)
    lines = [line.rstrip() for line in text.getvalue().splitlines() if line.strip()]
    return [line.replace(str(REPO) + "/", "") for line in lines[2:]]


# --------------------------------------------------------------------------- screenshots


def screenshots(ws, server, out: Path) -> list[str]:
    """The main views of a fresh scenario, in Chinese (and the scenario view in English), as PNGs in ``out``."""
    from tests.browser_workspace.driver import SAMPLE_FACILITIES, wait_for

    with server.http() as http:
        ids = []
        for name in ("示例方案 sample plan", "仅样本名录 sample list only"):
            ids.append(http.post("/scenarios", json={"region": REGION, "name": name}).json()["id"])
            http.post(f"/scenarios/{ids[-1]}/facilities", files={"file": (SAMPLE_FACILITIES.name, SAMPLE_FACILITIES.read_bytes())},
                      data={"coord_system": "gcj02"}).raise_for_status()
        s05 = next(f for f in http.get(f"/scenarios/{ids[0]}/facilities").json()["features"] if f["properties"]["site_id"] == "S05")
    out.mkdir(parents=True, exist_ok=True)
    saved = []

    def shot(name: str) -> None:
        time.sleep(0.6)  # let the canvas layers paint
        path = out / f"workspace_{name}.png"
        ws.driver.save_screenshot(str(path))
        saved.append(str(path.relative_to(REPO)))

    ws.js("sessionStorage.clear(); localStorage.clear();")
    ws.driver.get("about:blank")
    ws.open()
    wait_for(lambda: ws.js("return !document.getElementById('sign-in').hidden"), timeout_s=30, what="the sign-in form")
    ws.find("#sign-in-key").send_keys("gpk_")
    shot("sign_in")
    ws.find("#sign-in-key").clear()
    ws.sign_in(server.keys["planner"])
    ws.wait_ready()
    shot("region")

    ws.driver.get("about:blank")
    ws.open(f"region={REGION}&scenario={ids[0]}&tab=scenario")
    ws.wait_ready()
    ws.edit(lambda: ws.click_map(*s05["geometry"]["coordinates"]), mode="close")
    ws.idle()
    ws.add_site(114.3205, 30.5265)
    ws.idle()
    site = ws.js("return window.geoplanWorkspace.state.scenario.added.at(-1)")
    ws.mode("inspect")
    ws.click_map(site["lon"], site["lat"])
    wait_for(lambda: ws.layer_size("circles") > 0, timeout_s=30, what="the care circles")
    ws.idle()
    shot("scenario_edit")

    ws.js("window.geoplanWorkspace.map.map.closePopup()")
    ws.tab("recommend")
    for field, value in (("#recommend-stations", "5"), ("#recommend-canteens", "2")):
        ws.find(field).clear()
        ws.find(field).send_keys(value)
    ws.find("#recommend-form button[type=submit]").click()
    wait_for(lambda: ws.js("return !document.getElementById('recommend-result').hidden"), timeout_s=300, what="the recommendation")
    shot("recommend")

    ws.tab("review")
    ws.find("#review-form button[type=submit]").click()
    wait_for(lambda: ws.find_all("#review-result table.review"), timeout_s=180, what="the review")
    shot("review")
    ws.js("document.querySelectorAll('#review-result details').forEach(d => { d.open = true; });"
          "document.querySelector('#review-result details').scrollIntoView({block: 'start'});")
    shot("review_units")
    ws.js("document.querySelector('.panel').scrollTop = 0;")

    ws.tab("compare")
    for box in ws.find_all("#compare-choices input"):
        if (box.get_attribute("value") in ids) != box.is_selected():
            box.click()
    ws.find("#compare-run").click()
    wait_for(lambda: ws.find_all("#compare-result table"), timeout_s=180, what="the comparison")
    shot("compare")

    ws.tab("scenario")
    ws.find("button[data-lang='en']").click()
    shot("scenario_en")
    ws.find("button[data-lang='zh']").click()
    return saved


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    args = parse_args(argv)
    record = machine("selenium", "fastapi", "uvicorn")
    repeat = 3 if args.quick else args.repeat
    from tests.browser import chromium, missing_browser, requests
    from tests.browser_workspace.driver import SAMPLE_FACILITIES, Workspace, WorkspaceServer, sent_elsewhere

    missing = missing_browser()
    result: dict = {"machine": record, "repeat": repeat, "region": REGION}
    if missing:
        result.update(error=missing, goals=[goal("load_ms", None, GOAL_LOAD_MS, op="<"), goal("edit_ms", None, GOAL_EDIT_MS, op="<")])
        write_result("workspace", result)
        return result

    with tempfile.TemporaryDirectory(prefix="geoplan-bench-workspace-") as tmp:
        started = time.perf_counter()
        with WorkspaceServer(Path(tmp)) as server:
            result["server_start_s"] = round(time.perf_counter() - started, 2)
            with server.http() as http:
                scenario_id = http.post("/scenarios", json={"region": REGION, "name": "样本设施 sample list"}).json()["id"]
                http.post(f"/scenarios/{scenario_id}/facilities", files={"file": (SAMPLE_FACILITIES.name, SAMPLE_FACILITIES.read_bytes())},
                          data={"coord_system": "gcj02"}).raise_for_status()
                first = {}
                for name, path, query in (("coverage", f"/regions/{REGION}/coverage", {}), ("streets", f"/regions/{REGION}/streets", {}),
                                          ("gaps", f"/regions/{REGION}/coverage/gaps", {"limit": 10000}),
                                          ("scenario_coverage", f"/regions/{REGION}/coverage", {"scenario_id": scenario_id})):
                    t = time.perf_counter()
                    http.get(path, params=query).raise_for_status()
                    first[f"{name}_ms"] = round((time.perf_counter() - t) * 1000, 1)
                result["server_first_requests"] = first
                points = edit_points(http, scenario_id, repeat)

            with chromium(width=WIDTH, height=HEIGHT) as driver:
                driver.execute_cdp_cmd("Network.enable", {})
                ws = Workspace(driver, server.url).open()
                ws.sign_in(server.keys["planner"])
                ws.wait_ready()
                loads, load_requests = measure_loads(ws, repeat, f"region={REGION}")
                scenario_loads, _ = measure_loads(ws, repeat, f"region={REGION}&scenario={scenario_id}")
                edits, parts = measure_edits(ws, points)
                saved, failed = [], None
                if not (args.quick or args.no_screenshots):
                    try:
                        saved = screenshots(ws, server, args.screenshots)
                    except Exception as exc:  # the figures stand without the pictures
                        failed = f"{type(exc).__name__}: {exc}"
                elsewhere = sent_elsewhere(requests(driver), server.url)
            breakdown = library_breakdown(Path(tmp) / "workspace.sqlite3", scenario_id, repeat=3 if args.quick else 5)

    load_ms, edit_ms = loads.median_s * 1000, edits.median_s * 1000
    result.update({
        "load_ms": round(load_ms, 1),  # medians; their spread is in "load" and "edit"
        "edit_ms": round(edit_ms, 1),
        "load": ms(loads),
        "load_requests": request_table(load_requests),
        "load_scenario": ms(scenario_loads),
        "edit": ms(edits),
        "edit_parts_median": median_parts(parts),
        "edit_parts": parts,
        "edit_points": points,
        "library_behind_scenario_coverage": breakdown,
        "requests_off_loopback": elsewhere,
        "screenshots": saved,
        "screenshots_error": failed,
        "goals": [
            goal("load_ms", round(load_ms, 1), GOAL_LOAD_MS, op="<", note="navigation start to the coverage figures, median"),
            goal("edit_ms", round(edit_ms, 1), GOAL_EDIT_MS, op="<", note="click that adds a station to the updated figures, median"),
            goal("requests_off_loopback", len(elsewhere), 0, op="=="),
        ],
    })
    write_result("workspace", result)
    return result


if __name__ == "__main__":
    main()
