import numpy as np
import pytest

from api.routers.coverage import parse_bbox
from geoplan.errors import InputError
from tests.api.conftest import assert_error


def test_summary_by_group_and_threshold(client):
    body = client.get("/regions/wuchang/coverage").json()
    assert body["site_source"] == "candidates"  # Wuchang ships no facility list
    rows = {(r["group"], r["threshold_min"]): r for r in body["rows"]}
    assert len(rows) == 4 * 3
    for group in ("pop_total", "pop_60", "pop_65", "pop_80"):
        five, fifteen = rows[(group, 5.0)], rows[(group, 15.0)]
        assert five["covered"] <= rows[(group, 10.0)]["covered"] <= fifteen["covered"] <= fifteen["population"]
        assert fifteen["covered"] + fifteen["not_covered"] == pytest.approx(fifteen["population"], abs=0.01)

    one = client.get("/regions/wuchang/coverage", params={"group": "pop_80", "threshold_min": 15}).json()["rows"]
    assert len(one) == 1 and one[0] == rows[("pop_80", 15.0)]
    between = client.get("/regions/wuchang/coverage", params={"group": "pop_80", "threshold_min": 12}).json()["rows"][0]
    assert rows[("pop_80", 10.0)]["covered"] <= between["covered"] <= rows[("pop_80", 15.0)]["covered"]


def test_gaps_are_geojson_most_people_first(client):
    body = client.get("/regions/wuchang/coverage/gaps", params={"group": "pop_60", "limit": 50}).json()
    assert body["type"] == "FeatureCollection" and body["returned"] == 50 <= body["total"]
    people = [f["properties"]["pop_60"] for f in body["features"]]
    assert people == sorted(people, reverse=True)
    feature = body["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    lon, lat = feature["geometry"]["coordinates"][0][0]
    assert 114 < lon < 115 and 30 < lat < 31
    assert feature["properties"]["nearest_time_min"] is None or feature["properties"]["nearest_time_min"] > 15


def test_gaps_match_the_summary(client):
    summary = client.get("/regions/wuchang/coverage", params={"group": "pop_80", "threshold_min": 10}).json()["rows"][0]
    gaps = client.get("/regions/wuchang/coverage/gaps", params={"group": "pop_80", "threshold_min": 10, "limit": 1}).json()
    assert gaps["uncovered_people"] == pytest.approx(summary["not_covered"], abs=1.0)


def test_gaps_filtered_by_bbox_threshold_and_group(client):
    everything = client.get("/regions/wuchang/coverage/gaps", params={"limit": 10000}).json()
    box = [114.30, 30.53, 114.33, 30.56]
    inside = client.get("/regions/wuchang/coverage/gaps", params={"bbox": ",".join(map(str, box)), "limit": 10000}).json()
    assert 0 < inside["total"] < everything["total"]
    for feature in inside["features"]:
        xs, ys = np.array(feature["geometry"]["coordinates"][0]).T
        assert xs.max() >= box[0] and xs.min() <= box[2] and ys.max() >= box[1] and ys.min() <= box[3]
    five = client.get("/regions/wuchang/coverage/gaps", params={"threshold_min": 5, "limit": 1}).json()
    assert five["total"] > everything["total"]
    eighty = client.get("/regions/wuchang/coverage/gaps", params={"group": "pop_80", "min_people": 20, "limit": 10000}).json()
    assert all(f["properties"]["pop_80"] > 20 for f in eighty["features"])


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"bbox": "114.3,30.5,114.4"}, ["four numbers"]),
        ({"bbox": "30.5,114.3,30.6,114.4"}, ["latitude"]),
        ({"bbox": "a,b,c,d"}, ["four numbers"]),
        ({"group": "pop_99"}, ["pop_99", "pop_60"]),
        ({"threshold_min": 20}, ["at most 15"]),
    ],
)
def test_bad_gap_queries_say_what_to_fix(client, params, words):
    assert_error(client.get("/regions/wuchang/coverage/gaps", params=params), 422, *words)


def test_parse_bbox():
    assert parse_bbox("114.3,30.5,114.4,30.6") == (114.3, 30.5, 114.4, 30.6)
    with pytest.raises(InputError):
        parse_bbox("114.4,30.5,114.3,30.6")
    with pytest.raises(InputError):
        parse_bbox("nan,30.5,114.3,30.6")


def test_care_circles_of_a_site(client, wuchang):
    site = wuchang.candidates.index[0]
    body = client.get("/regions/wuchang/care-circles", params={"site_id": site}).json()
    assert [f["properties"]["threshold_min"] for f in body["features"]] == [15.0, 10.0, 5.0]
    areas = [f["properties"]["area_km2"] for f in body["features"]]
    assert areas == sorted(areas, reverse=True) and areas[-1] > 0
    people = [f["properties"]["people"]["pop_60"] for f in body["features"]]
    assert people == sorted(people, reverse=True)


def test_care_circles_of_a_point_in_each_coordinate_system(client):
    wgs = client.get("/regions/wuchang/care-circles", params={"lon": 114.307, "lat": 30.5607, "thresholds_min": [5, 10]}).json()
    assert [f["properties"]["threshold_min"] for f in wgs["features"]] == [10.0, 5.0]
    gcj = client.get("/regions/wuchang/care-circles", params={"lon": 114.3125, "lat": 30.5583, "coord_system": "gcj02"})
    assert gcj.status_code == 200
    bd = client.get("/regions/wuchang/care-circles", params={"lon": 114.3189, "lat": 30.5642, "coord_system": "bd09"})
    assert bd.status_code == 200


def test_care_circle_errors(client):
    assert_error(client.get("/regions/wuchang/care-circles", params={"lon": 114.31, "lat": 30.55, "coord_system": "gcj2"}), 422, "gcj2", "gcj02")
    assert_error(client.get("/regions/wuchang/care-circles", params={"lon": 116.40, "lat": 39.90}), 422, "outside wuchang")
    assert_error(client.get("/regions/wuchang/care-circles"), 422, "site_id")
    assert_error(client.get("/regions/wuchang/care-circles", params={"site_id": "nope"}), 404, "nope")
    assert_error(client.get("/regions/wuchang/care-circles", params={"lon": 114.31, "lat": 30.55, "thresholds_min": [30]}), 422, "at most 15")


def test_cell_table_gives_the_features_the_report_alone_gives(wuchang):
    """A scenario's index reuses the region's prepared cells; its features are byte for byte those built from scratch."""
    import dataclasses
    import json

    from api.services.coverage import CellTable, CoverageIndex
    from geoplan.analysis import analyse_coverage

    sites = wuchang.candidates.iloc[::40]
    report = analyse_coverage(wuchang, sites, with_circles=False)
    cells = CellTable.of(wuchang.demand, wuchang.groups)
    shared = CoverageIndex.build(report, cells)
    assert shared.people is cells.people
    alone = CoverageIndex.build(report)
    assert list(shared.features) == list(alone.features)
    nearest = report.nearest_time_s.reindex(wuchang.demand.index)
    for position in (0, len(wuchang.demand) // 2, int(np.argmax(np.isfinite(nearest.to_numpy())))):
        properties = json.loads(shared.features[position])["properties"]
        walk = nearest.iloc[position]
        assert properties["nearest_time_min"] == (round(walk / 60, 2) if np.isfinite(walk) else None)
        assert properties["demand_id"] == int(wuchang.demand.index[position])
    # a table of other cells (a copy that may differ) is not used
    other = dataclasses.replace(wuchang, demand=wuchang.demand.assign(pop_60=wuchang.demand["pop_60"] * 2))
    doubled = CoverageIndex.build(dataclasses.replace(report, region=other), cells)
    assert doubled.people is not cells.people
    assert doubled.people["pop_60"].sum() == pytest.approx(2 * cells.people["pop_60"].sum())


def test_care_circle_people_are_the_catchments_to_a_hundredth(client, wuchang):
    """People in a circle come to 0.01, as the gap cells' do: a page rounding them to whole people agrees with the gains."""
    from geoplan.coverage import catchments

    sites = wuchang.candidates.index[:4]
    reach = wuchang.reach(wuchang.candidates.loc[sites], cutoff_min=15)
    for site in sites:
        body = client.get("/regions/wuchang/care-circles", params={"site_id": site}).json()
        for feature in body["features"]:
            threshold = feature["properties"]["threshold_min"]
            expected = catchments(wuchang.demand, reach, threshold_min=threshold).loc[site]
            for group, value in feature["properties"]["people"].items():
                assert value == round(float(expected[group]), 2), (site, threshold, group)
