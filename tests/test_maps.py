"""The coverage map of Wuchang, opened offline in headless Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser import chromium, console_errors, missing_browser, requests

REPO = Path(__file__).resolve().parents[1]
# The committed screenshot is refreshed only on request (GEOPLAN_UPDATE_SCREENSHOTS=1);
# otherwise each run saves its own beside the test's other output.
UPDATE_SCREENSHOTS = os.environ.get("GEOPLAN_UPDATE_SCREENSHOTS") == "1"
COMMITTED_SCREENSHOT = REPO / "maps" / "screenshots" / "wuchang_coverage.png"

CIRCLES = {t: f"{t}分钟养老服务圈 {t}-min care circles" for t in (5, 10, 15)}
BOUNDARY = "区域边界 Region boundary"
CANDIDATES = "候选站点 Candidate sites"
GAPS = "15分钟圈外老年人(60+) Elderly 60+ beyond 15 min"
UNITS = "社区覆盖率 Community coverage (60+ within 15 min)"

# Every overlay in the layer control, in its order (a list: webdriver sorts object keys):
# the label the planner sees, whether it is on, how many features it holds and how many are drawn.
_LAYERS_JS = """
const values = Object.keys(window).map(k => { try { return window[k]; } catch (e) { return null; } });
const map = values.find(v => v instanceof L.Map);
const groups = {};
values.forEach(v => {
    if (v instanceof L.FeatureGroup && !(v instanceof L.GeoJSON)) { groups[L.Util.stamp(v)] = v; }
});
const layers = [];
document.querySelectorAll('.leaflet-control-layers-overlays label').forEach(label => {
    const input = label.querySelector('input');
    const group = groups[input.layerId];
    let features = 0, drawn = 0;
    const walk = layer => {
        if (layer.feature) {
            features++;
            if (layer._map && layer._path && layer._path.isConnected) { drawn++; }
        } else if (layer.eachLayer) { layer.eachLayer(walk); }
    };
    if (group) { walk(group); }
    layers.push({name: label.textContent.trim(), on: input.checked, found: !!group, features: features, drawn: drawn});
});
return {leaflet: typeof L === 'undefined' ? null : L.version, map: !!map, layers: layers};
"""

_OPEN_POPUP_JS = """
const [featureId] = arguments;
let found = null;
Object.keys(window).forEach(k => {
    let v; try { v = window[k]; } catch (e) { return; }
    if (v instanceof L.GeoJSON) { v.eachLayer(l => { if (l.feature && String(l.feature.id) === featureId) { found = l; } }); }
});
if (!found) { return null; }
found.openPopup();
const text = found.getPopup().getElement().querySelector('.leaflet-popup-content').innerText;
found.closePopup();
return text;
"""


@pytest.fixture(scope="module")
def report(wuchang):
    """Wuchang's coverage by its candidate sites (it has no list of existing facilities)."""
    from geoplan.analysis import analyse_coverage

    return analyse_coverage(wuchang)


@pytest.mark.slow
def test_wuchang_map_renders_offline(report, tmp_path):
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from geoplan.maps import coverage_map, save_map

    path = save_map(coverage_map(report, basemap="none"), tmp_path / "maps" / "wuchang.html")
    assert path.exists() and path.stat().st_size < 2_500_000
    assert not list(path.parent.glob(".*")), "save_map left a temporary file behind"

    with chromium() as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        driver.get(path.as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".leaflet-overlay-pane path"))

        screenshot = COMMITTED_SCREENSHOT if UPDATE_SCREENSHOTS else path.with_suffix(".png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(screenshot))  # as the page opens, before any popup pans it

        state = driver.execute_script(_LAYERS_JS)
        assert state["leaflet"] == "1.9.4" and state["map"]
        assert [layer["name"] for layer in state["layers"]] == [CIRCLES[15], CIRCLES[10], CIRCLES[5], BOUNDARY, GAPS, UNITS, CANDIDATES]
        layers = {layer.pop("name"): layer for layer in state["layers"]}
        assert all(layer["found"] for layer in layers.values())

        circles = report.circles[~report.circles.geometry.is_empty]
        for threshold, name in CIRCLES.items():
            expected = int((circles["threshold_min"] == threshold).sum())
            assert expected > 0
            assert layers[name] == {"on": True, "found": True, "features": expected, "drawn": expected}
        assert layers[BOUNDARY]["drawn"] == len(report.region.boundary)
        assert report.site_source == "candidates"
        assert layers[CANDIDATES] == {"on": True, "found": True, "features": len(report.sites), "drawn": len(report.sites)}
        on_top = driver.find_elements(By.CSS_SELECTOR, ".leaflet-geoplanSites-pane path")  # sites above every other layer
        assert len(on_top) == len(report.sites) and {p.get_attribute("fill") for p in on_top} == {"#ffffff"}
        assert layers[GAPS] == {"on": True, "found": True, "features": len(report.gaps), "drawn": len(report.gaps)}
        units = report.units.index.intersection(report.region.communities.index)
        assert layers[UNITS] == {"on": False, "found": True, "features": len(units), "drawn": 0}

        title = driver.find_element(By.CSS_SELECTOR, ".geoplan-title").text
        row = report.summary.loc[("pop_60", 15)]
        assert "武昌区 Wuchang" in title
        assert "candidate sites" in title and "No list of existing facilities" in title
        assert f"{row['covered']:,.0f}" in title and f"{row['covered_pct']:.1f}%" in title

        site_id = report.sites["within_15min_pop_60"].idxmax()
        site = report.sites.loc[site_id]
        popup = driver.execute_script(_OPEN_POPUP_JS, str(site_id))
        assert site["name"] in popup
        assert f"{site['within_15min_pop_60']:,.0f}" in popup and f"{site['within_15min_pop_80']:,.0f}" in popup
        cell_id = report.gaps.index[0]
        popup = driver.execute_script(_OPEN_POPUP_JS, str(cell_id))
        assert f"{report.gaps.loc[cell_id, 'pop_60']:,.0f}" in popup and "beyond 15 min" in popup

        # The community layer and its legend come on together.
        units_legend = driver.find_element(By.CSS_SELECTOR, f".geoplan-legend [data-layer='{UNITS}']")
        assert not units_legend.is_displayed()
        label = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".leaflet-control-layers-overlays label") if e.text.strip() == UNITS)
        label.find_element(By.TAG_NAME, "input").click()
        assert next(x for x in driver.execute_script(_LAYERS_JS)["layers"] if x["name"] == UNITS)["drawn"] == len(units)
        assert units_legend.is_displayed()

        assert console_errors(driver) == []
        sent = requests(driver)
        ours = [url for url, document in sent if document == path.as_uri()]
        assert ours and all(url.startswith(("file://", "data:")) for url in ours)
        assert [url for url, _ in sent if url.startswith(("http:", "https:", "ws:", "wss:"))] == []


def test_unknown_basemap_is_refused_before_drawing():
    from geoplan.errors import InputError
    from geoplan.maps import coverage_map

    with pytest.raises(InputError, match="GCJ-02"):
        coverage_map(None, basemap="amap")


@pytest.mark.slow
def test_osm_tiles_are_the_only_remote_resource(report):
    from geoplan.maps import coverage_map

    page = coverage_map(report, basemap="osm").get_root().render()
    assert "tile.openstreetmap.org" in page
    assert re.findall(r"<(?:script|link)[^>]*(?:src|href)=", page) == []
