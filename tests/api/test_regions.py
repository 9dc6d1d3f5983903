from tests.api.conftest import assert_error


def test_list_regions(client):
    body = client.get("/regions").json()
    assert [r["key"] for r in body["regions"]] == ["wuchang"]
    assert body["regions"][0]["name_zh"] == "武昌区"
    assert body["regions"][0]["loaded"] is True


def test_region_detail(client, wuchang):
    body = client.get("/regions/wuchang").json()
    assert body["groups"] == ["pop_total", "pop_60", "pop_65", "pop_80"]
    assert body["thresholds_min"] == [5.0, 10.0, 15.0]
    assert abs(body["population"]["pop_60"] - wuchang.demand["pop_60"].sum()) < 1
    assert body["facilities"]["candidates"] == len(wuchang.candidates)
    minx, miny, maxx, maxy = body["bbox"]
    assert 114 < minx < maxx < 115 and 30 < miny < maxy < 31
    assert body["boundary"]["type"] == "FeatureCollection"
    assert body["boundary"]["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_unknown_region_is_404_and_names_the_known_ones(client):
    for path in ("/regions/beijing", "/regions/beijing/coverage", "/regions/beijing/coverage/gaps", "/regions/beijing/map"):
        assert_error(client.get(path), 404, "beijing", "wuchang")


def test_health(client):
    assert client.get("/health", headers={"Authorization": ""}).json() == {"status": "ok", "regions_loaded": ["wuchang"], "auth": "on", "job_workers": 1,
                                                                                "circle_process_regions": None}
