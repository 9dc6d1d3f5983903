from tests.api.conftest import assert_error


def test_region_map_is_embeddable_html(client):
    response = client.get("/regions/wuchang/map")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors *" in response.headers["content-security-policy"]
    assert "x-frame-options" not in response.headers
    page = response.text
    assert page.startswith("<!DOCTYPE html>") and "武昌区" in page and "L.map" in page
    assert "tile.openstreetmap.org" not in page  # basemap=none works offline
    assert "tile.openstreetmap.org" in client.get("/regions/wuchang/map", params={"basemap": "osm"}).text


def test_scenario_map_shows_added_and_closed_sites(client, scenario):
    client.patch(f"/scenarios/{scenario['id']}", json={"added": [{"lon": 114.307, "lat": 30.5607}], "closed": ["S05"]})
    page = client.get(f"/scenarios/{scenario['id']}/map").text
    assert "Added sites" in page and "Facilities to close" in page  # geoplan.maps._STATUS_LAYERS


def test_map_errors(client):
    assert_error(client.get("/regions/wuchang/map", params={"basemap": "amap"}), 422, "basemap")
    assert_error(client.get("/scenarios/nope/map"), 404, "nope")
