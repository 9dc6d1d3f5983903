"""Regressions of issue 10 ("Why"): bounded uploads and bodies, plans that open nothing, no silent data loss."""

import json
import sqlite3

import pytest

from api.settings import Settings
from tests.api.conftest import assert_error, upload, wait_for_job

POINT = {"type": "Point", "coordinates": [114.3070, 30.5607]}


def _feature(geometry, **properties) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _unchanged(client, scenario) -> None:
    assert client.get(f"/scenarios/{scenario['id']}").json()["spec_hash"] == scenario["spec_hash"]


# --- nesting depth ---------------------------------------------------------------------------------


def test_deeply_nested_geojson_upload_is_refused(client, scenario):
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("deep.geojson", b"[" * 2000)})
    assert_error(response, 413, "GEOPLAN_MAX_JSON_DEPTH", "64")
    _unchanged(client, scenario)


def test_deeply_nested_json_body_is_refused(client):
    response = client.post("/scenarios", content=b"[" * 2000 + b"]" * 2000, headers={"content-type": "application/json"})
    assert_error(response, 413, "GEOPLAN_MAX_JSON_DEPTH", "64")
    nested = {"region": "wuchang", "name": "x", "description": "[[[[" * 100}  # brackets inside strings do not count
    assert client.post("/scenarios", json=nested).status_code == 201


def test_json_depth_ignores_strings():
    from api.limits import json_depth

    assert json_depth(b'{"a": [1, {"b": "[[[[\\"{{"}]}') == 3
    assert json_depth(b"[" * 5) == 5 and json_depth(b"1") == 0


# --- a plan that opens nothing ---------------------------------------------------------------------


@pytest.mark.parametrize("kind_spec", [{"p": 0}, {"budget": 0}])
def test_scenario_whose_optimiser_opens_nothing_succeeds_with_an_empty_plan(client, scenario, kind_spec):
    client.patch(f"/scenarios/{scenario['id']}", json={"recommend": {"model": "mclp", "kinds": [{"kind": "station", **kind_spec}]}})
    job = wait_for_job(client, client.post(f"/scenarios/{scenario['id']}/run").json()["id"])
    assert job["status"] == "succeeded", job
    result = client.get(f"/scenarios/{scenario['id']}").json()["result"]
    assert result["plan"]["new_sites"] == [] and result["sites"]["total"] == 19 and result["sites"]["added"] == []
    for row in result["coverage"]:
        assert row["covered_after"] == pytest.approx(row["covered_before"])
    response = client.get("/regions/wuchang/coverage", params={"scenario_id": scenario["id"]})
    assert response.status_code == 200, response.text
    job = client.post("/recommendations", json={"region": "wuchang", "scenario_id": scenario["id"], "kinds": [{"kind": "station", **kind_spec}]})
    done = wait_for_job(client, job.json()["id"])
    assert done["status"] == "succeeded" and done["result"]["plan"]["new_sites"] == [], done


# --- features without geometry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "words"),
    [
        ([_feature(None, id="A1")], ["feature 1", "A1", "geometry"]),
        ([_feature(POINT, id="A1"), _feature(None, id="A2"), _feature({"type": "Point", "coordinates": []}, id="A3")],
         ["features 2, 3", "A2", "A3"]),
    ],
)
def test_geojson_features_without_geometry_are_refused(client, scenario, features, words):
    content = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("f.geojson", content)})
    assert_error(response, 422, *words)
    _unchanged(client, scenario)


def test_geopackage_with_a_malformed_geometry_is_refused(client, scenario, tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    path = tmp_path / "f.gpkg"
    gpd.GeoDataFrame({"site_id": ["G1", "G2"]}, geometry=[Point(114.307, 30.5607), Point(114.3419, 30.5553)], crs=4326).to_file(path, SPATIAL_INDEX="NO")
    with sqlite3.connect(path) as db:
        table = db.execute("SELECT table_name FROM gpkg_contents").fetchone()[0]
        db.execute(f'UPDATE "{table}" SET geom = X\'47500003E61000000000\' WHERE site_id = \'G2\'')
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("f.gpkg", path.read_bytes())})
    assert_error(response, 422, "feature 2", "geometry")
    _unchanged(client, scenario)


# --- minor: long messages, encodings, CRS members, OPTIONS -----------------------------------------


def test_error_messages_list_at_most_ten_columns(client, scenario):
    header = ",".join(f"c{i}" for i in range(150))
    content = (header + "\n" + ",".join("1" for _ in range(150)) + "\n").encode()
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("wide.csv", content)})
    body = assert_error(response, 422, "longitude", "140 more")
    assert "c9" in body["detail"] and "c10'" not in body["detail"] and len(response.content) < 1000


def test_a_very_wide_csv_gets_a_short_error(client, scenario):
    content = (",".join(f"c{i}" for i in range(200_000)) + "\n").encode()
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("wide.csv", content)})
    assert_error(response, 413, "GEOPLAN_MAX_UPLOAD_COLUMNS", "200,000")
    assert len(response.content) < 1000


def test_gbk_csv_is_read_and_undecodable_csv_says_so(client, scenario):
    gbk = "编号,名称,经度,纬度\nG1,武昌站点,114.3070,30.5607\n".encode("gbk")
    body = upload(client, scenario["id"], gbk, filename="gbk.csv", mode="append")
    assert body["count"] == 1
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("bad.csv", b"id,lng,lat\n1,114.3,30.5\n\xff\xff\x80\n")})
    body = assert_error(response, 422, "bad.csv", "not UTF-8 or GBK text", "save", "UTF-8 CSV")
    assert "codec" not in body["detail"]


@pytest.mark.parametrize("name", ["EPSG:3857", "urn:ogc:def:crs:EPSG::999999", "whatever"])
def test_geojson_with_a_legacy_crs_that_is_not_wgs84_is_refused(client, scenario, name):
    content = json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": name}},
                          "features": [_feature(POINT, id="C1")]}).encode()
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("f.geojson", content)})
    assert_error(response, 422, name, "crs", "EPSG:4326")
    _unchanged(client, scenario)


def test_geojson_with_a_crs84_member_is_read(client, scenario):
    content = json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
                          "features": [_feature(POINT, id="C1")]}).encode()
    assert upload(client, scenario["id"], content, filename="f.geojson")["count"] == 1


def test_options_answers_with_the_allowed_methods(client, scenario):
    response = client.options("/scenarios", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) - {"HEAD"} == {"GET", "POST", "OPTIONS"}
    assert "access-control-allow-origin" not in response.headers
    allowed = client.options(f"/scenarios/{scenario['id']}").headers["allow"]
    assert {"GET", "PATCH", "DELETE"} <= set(allowed.split(", "))
    assert client.options("/nowhere").status_code == 404


# --- rows and columns ------------------------------------------------------------------------------


def test_upload_rows_and_columns_are_limited(client, scenario, api_settings):
    rows = api_settings.max_upload_rows + 1
    content = b"id,lng,lat\n" + b"".join(b"r%d,114.307,30.5607\n" % i for i in range(rows))
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("many.csv", content)})
    assert_error(response, 413, f"{rows:,}", f"{api_settings.max_upload_rows:,}", "GEOPLAN_MAX_UPLOAD_ROWS")
    columns = api_settings.max_upload_columns + 1
    header = "id,lng,lat," + ",".join(f"c{i}" for i in range(columns - 3))
    content = (header + "\nr1,114.307,30.5607," + ",".join("1" for _ in range(columns - 3)) + "\n").encode()
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("wide.csv", content)})
    assert_error(response, 413, f"{columns}", "GEOPLAN_MAX_UPLOAD_COLUMNS")
    features = [_feature({"type": "Point", "coordinates": [114.307, 30.5607]}, id=f"g{i}") for i in range(rows)]
    content = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("many.geojson", content)})
    assert_error(response, 413, "GEOPLAN_MAX_UPLOAD_ROWS")
    from tests.api.test_facilities import xlsx_bytes

    content = xlsx_bytes([["id", "lng", "lat"]] + [[f"r{i}", 114.307, 30.5607] for i in range(rows + 10)])
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("many.xlsx", content)})
    assert_error(response, 413, "GEOPLAN_MAX_UPLOAD_ROWS")
    _unchanged(client, scenario)


def test_limit_settings_from_environment():
    settings = Settings.from_env({"GEOPLAN_MAX_JSON_DEPTH": "32", "GEOPLAN_MAX_UPLOAD_ROWS": "100", "GEOPLAN_MAX_UPLOAD_COLUMNS": "20"})
    assert (settings.max_json_depth, settings.max_upload_rows, settings.max_upload_columns) == (32, 100, 20)
    defaults = Settings()
    assert (defaults.max_json_depth, defaults.max_upload_rows, defaults.max_upload_columns) == (64, 20_000, 200)
