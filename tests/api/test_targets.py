"""The targets endpoints: the review's figures equal the library's; unknown presets 404; bad targets files 422."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoplan.sites import load_facilities
from geoplan.targets import available_presets, targets

from tests.api.conftest import SAMPLE_FACILITIES, assert_error

OWN_TARGETS = b"""
[plan]
name = "My district plan"

[[targets]]
id = "canteens_3"
indicator = "facility_count"
tier = "canteen"
min = 3
clause = "at least 3 canteens"
"""


@pytest.fixture(scope="module")
def library_review(wuchang):
    from geoplan.units import region_units

    sample = load_facilities(SAMPLE_FACILITIES, crs=wuchang.crs, boundary=wuchang.boundary, coord_system="gcj02")
    return targets(wuchang, "shuimogou", facilities=sample, units=region_units(wuchang))


def test_presets_list_every_target_with_its_plan_and_clause(client):
    response = client.get("/targets/presets")
    assert response.status_code == 200, response.text
    presets = {p["key"]: p for p in response.json()["presets"]}
    assert set(presets) == set(available_presets())
    for preset in presets.values():
        assert all(t["plan"] and t["clause"] and t["section"] for t in preset["targets"])
    assert {t["id"]: t["min"] for t in presets["shuimogou"]["targets"]}["street_centres_80pct"] == 80


def test_review_of_a_scenario_equals_the_library(client, scenario, library_review):
    response = client.get("/regions/wuchang/targets", params={"preset": "shuimogou", "scenario_id": scenario["id"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["preset"] == "shuimogou" and body["scenario_id"] == scenario["id"] and body["facilities"] == 19
    assert body["units"]["approximate"] is True and "approximate zone, not a street" in body["units"]["street_label"]
    assert body["missing_attributes"] == list(library_review.missing_attributes)
    rows = {r["id"]: r for r in body["summary"]}
    assert list(rows) == list(library_review.summary.index)
    for target_id, expected in library_review.summary.iterrows():
        row = rows[target_id]
        if isinstance(expected["value"], float) and math.isnan(expected["value"]):
            assert row["value"] is None, target_id
        else:
            assert row["value"] == pytest.approx(expected["value"], abs=1e-4), target_id
        summary = library_review.summary
        assert row["pass"] == summary.at[target_id, "pass"] and row["status"] == summary.at[target_id, "status"], target_id
    streets = {r["street_code"]: r for r in body["streets"]}
    assert streets["outside"]["passes"] is None and streets["outside"]["pop_60"] == pytest.approx(library_review.streets.loc["outside", "pop_60"], abs=1e-3)
    failing = {r["community_code"] for r in body["communities"] if r["passes"] is False}
    assert failing == set(library_review.failing_units("community").index)


def test_review_of_the_region_itself_without_facilities(client):
    body = client.get("/regions/wuchang/targets", params={"preset": "baodi"}).json()
    rows = {r["id"]: r for r in body["summary"]}
    assert body["facilities"] == 0 and rows["one_base_per_street"]["pass"] is False
    assert rows["nursing_beds_60pct"]["pass"] is None and rows["nursing_beds_60pct"]["status"].startswith("no data")


def test_unknown_preset_and_region_are_404(client):
    assert_error(client.get("/regions/wuchang/targets", params={"preset": "atlantis"}), 404, "Unknown targets preset", "shuimogou")
    assert_error(client.get("/regions/atlantis/targets"), 404, "Unknown region")


def test_own_targets_file_is_reviewed(client):
    response = client.post("/regions/wuchang/targets", files={"file": ("mine.toml", OWN_TARGETS, "application/toml")})
    assert response.status_code == 200, response.text
    body = response.json()
    row = next(r for r in body["summary"] if r["id"] == "canteens_3")
    assert body["preset"] is None and body["targets"]["name"] == "My district plan"
    assert row["value"] == 0 and row["pass"] is False and row["plan"] == "My district plan"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[plan\nname = 1", ("not valid TOML",)),
        (OWN_TARGETS.replace(b"min = 3", b"minimum = 3"), ("unknown key", "minimum")),
        (OWN_TARGETS.replace(b'tier = "canteen"', b'tier = "hospital"'), ("hospital",)),
        (b"   ", ("empty",)),
        (b"\xff\xfe\x00bad", ("UTF-8",)),
    ],
)
def test_bad_targets_files_are_422_saying_what_to_fix(client, content, words):
    response = client.post("/regions/wuchang/targets", files={"file": ("bad.toml", content, "application/toml")})
    assert_error(response, 422, *words)


def test_stored_sites_keep_their_tier_attributes(wuchang):
    """A scenario's stored facility records keep floor area, beds and the rest, so its review has the data."""
    from api.services import scenarios as sc
    from geoplan.scenario import sites_from_points

    sites = sites_from_points(
        [{"site_id": "A", "lon": 114.3125, "lat": 30.5583, "kind": "home", "floor_area_m2": 1200, "beds": 80, "nursing_beds": 50},
         {"site_id": "B", "lon": 114.33, "lat": 30.55, "kind": "station", "floor_area_m2": 300}],
        crs=wuchang.crs,
    )
    back = sc.frame(sc.records(sites), crs=wuchang.crs)
    assert back.loc["A", "floor_area_m2"] == 1200 and back.loc["A", "beds"] == 80 and back.loc["A", "nursing_beds"] == 50
    assert back.loc["B", "floor_area_m2"] == 300 and np.isnan(back.loc["B", "beds"])
