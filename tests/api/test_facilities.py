import json

import pytest

from tests.api.conftest import SAMPLE_FACILITIES, assert_error, upload


def test_region_facilities_and_candidates(client, wuchang):
    body = client.get("/regions/wuchang/facilities").json()
    assert body["counts"] == {"candidate": len(wuchang.candidates)}
    candidate = client.get("/regions/wuchang/facilities", params={"status": "candidate", "kind": "station"}).json()
    assert len(candidate["features"]) == len(wuchang.candidates)
    assert candidate["features"][0]["geometry"]["type"] == "Point"
    assert client.get("/regions/wuchang/facilities", params={"status": "existing"}).json()["features"] == []


def test_upload_csv_in_gcj02(client, scenario):
    assert scenario["facilities_source"] == "upload" and scenario["existing"] == 19
    sites = client.get(f"/scenarios/{scenario['id']}/facilities", params={"status": "existing"}).json()
    assert sites["counts"] == {"existing": 19}
    s01 = next(f for f in sites["features"] if f["properties"]["site_id"] == "S01")
    from geoplan.coords import gcj02_to_wgs84

    # the file's GCJ-02 point 114.312453, 30.558317 is served at its WGS84 position, some 500 m away
    assert s01["geometry"]["coordinates"] == pytest.approx(gcj02_to_wgs84(114.312453, 30.558317), abs=1e-6)
    assert abs(s01["geometry"]["coordinates"][0] - 114.312453) > 0.004


def test_upload_geojson_in_wgs84_appended_as_candidates(client, scenario):
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.3070, 30.5607]}, "properties": {"id": "K1", "name": "候选 A"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.3419, 30.5553]}, "properties": {"id": "K2"}},
    ]}
    body = upload(client, scenario["id"], json.dumps(collection).encode(), filename="more.geojson", status="candidate", mode="append")
    assert body["count"] == 2 and body["total"] == 124 + 2
    candidates = client.get(f"/scenarios/{scenario['id']}/facilities", params={"status": "candidate"}).json()
    assert {"K1", "K2"} <= {f["properties"]["site_id"] for f in candidates["features"]}


def xlsx_bytes(rows: list[list], *, title: str | None = None) -> bytes:
    """An Excel workbook (openpyxl) with ``rows`` on its first sheet, under an optional title line."""
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    if title is not None:
        sheet.append([title])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_upload_xlsx_with_chinese_columns_in_gcj02(client, scenario):
    import pandas as pd

    table = pd.read_csv(SAMPLE_FACILITIES)
    rows = [["编号", "名称", "经度", "纬度"]] + [[r.id, r.name, r.lng, r.lat] for r in table.itertuples()]
    body = upload(client, scenario["id"], xlsx_bytes(rows, title="武昌区养老服务站名单"), filename="养老设施.xlsx", coord_system="gcj02")
    assert body["count"] == len(table) and body["coord_system"] == "gcj02" and body["site_ids"][:2] == ["S01", "S02"]
    sites = client.get(f"/scenarios/{scenario['id']}/facilities", params={"status": "existing"}).json()
    s01 = next(f for f in sites["features"] if f["properties"]["site_id"] == "S01")
    from geoplan.coords import gcj02_to_wgs84

    assert s01["properties"]["name"] == table.loc[0, "name"]
    assert s01["geometry"]["coordinates"] == pytest.approx(gcj02_to_wgs84(114.312453, 30.558317), abs=1e-6)


def test_upload_xlsx_names_the_upload_and_excel_rows(client, scenario):
    rows = [["名称", "经度", "纬度"], ["站 A", 114.3070, 30.5607], ["站 B", "abc", 30.5553]]
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("名单.xlsx", xlsx_bytes(rows))})
    body = assert_error(response, 422, "rows 3")
    assert "geoplan-upload" not in body["detail"] and "/tmp" not in body["detail"]
    assert client.get(f"/scenarios/{scenario['id']}").json()["spec_hash"] == scenario["spec_hash"]


def test_upload_bd09_list(client, scenario):
    from geoplan.coords import gcj02_to_bd09
    import pandas as pd

    table = pd.read_csv(SAMPLE_FACILITIES)
    table["lng"], table["lat"] = gcj02_to_bd09(table["lng"].to_numpy(), table["lat"].to_numpy())
    gcj = client.get(f"/scenarios/{scenario['id']}/facilities", params={"status": "existing"}).json()
    upload(client, scenario["id"], table.to_csv(index=False).encode(), coord_system="bd09")
    bd = client.get(f"/scenarios/{scenario['id']}/facilities", params={"status": "existing"}).json()
    for a, b in zip(gcj["features"], bd["features"]):
        assert a["geometry"]["coordinates"] == pytest.approx(b["geometry"]["coordinates"], abs=1e-5)


@pytest.mark.parametrize(
    ("content", "filename", "form", "status", "words"),
    [
        (b"", "empty.csv", {}, 422, ["empty"]),
        (b"name,x1,y1\na,1,2\n", "f.csv", {}, 422, ["longitude", "latitude"]),
        (b"id,lng,lat\n1,abc,30.5\n", "f.csv", {}, 422, ["rows 1"]),
        (b"id,lng,lat\n1,30.55,114.31\n", "f.csv", {}, 422, ["swapped"]),
        (b"{not json", "f.geojson", {}, 422, ["not valid json"]),
        (b'{"type": "Point", "coordinates": [1, 2]}', "f.geojson", {}, 422, ["featurecollection"]),
        (b"PK\x03\x04 binary", "f.xlsx", {}, 422, ["f.xlsx", "excel workbook"]),
        (b"id,lng,lat\n1,114.307,30.5607\n", "f.xlsx", {}, 422, ["f.xlsx", "not an excel workbook"]),
        (b"\xd0\xcf\x11\xe0 not a workbook", "f.doc", {}, 422, [".csv", ".xlsx"]),
        (SAMPLE_FACILITIES.read_bytes(), "f.csv", {"coord_system": "gcj-2"}, 422, ["gcj02"]),
        (SAMPLE_FACILITIES.read_bytes(), "f.csv", {"coord_system": "bd09"}, 422, ["outside the region", "gcj02"]),
        (SAMPLE_FACILITIES.read_bytes(), "f.csv", {"kind": "hospital"}, 422, ["kind"]),
        (b"id,lng,lat,capacity\n1,114.307,30.5607,-5\n", "f.csv", {}, 422, ["capacity"]),
    ],
)
def test_malformed_uploads_say_what_to_fix(client, scenario, content, filename, form, status, words):
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": (filename, content)}, data=form)
    assert_error(response, status, *words)
    assert client.get(f"/scenarios/{scenario['id']}").json()["spec_hash"] == scenario["spec_hash"]  # nothing changed


def test_wrong_flag_can_be_dropped_with_outside_drop(client, scenario):
    body = upload(client, scenario["id"], SAMPLE_FACILITIES.read_bytes(), coord_system="bd09", outside="drop")
    assert body["count"] == 18


def test_upload_too_large(client, scenario, api_settings):
    big = b"id,lng,lat\n" + b"1,114.3,30.5\n" * (api_settings.max_upload_bytes // 13 + 1)
    response = client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": ("big.csv", big)})
    assert_error(response, 413, "GEOPLAN_MAX_UPLOAD_BYTES")


def test_upload_to_unknown_scenario(client):
    response = client.post("/scenarios/nope/facilities", files={"file": ("f.csv", SAMPLE_FACILITIES.read_bytes())})
    assert_error(response, 404, "nope")
