"""Care circles of points are kept per place on the streets: kept answers are the fresh ones, byte for byte.

A point's circles depend only on where it meets the streets (edge, position
along it, walk to it) and the thresholds, so PointCircles computes them once
per such place; these tests hold it to today's answers (point_site, then
RegionService.circles, with no cache), count the computations rather than time
them, and check the bound, the errors and concurrent first requests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geoplan.coords import to_wgs84
from geoplan.errors import InputError

from api.services.coverage import DEFAULT_POINT_CIRCLE_CACHE_SIZE, PointCircles
from api.services.coverage_service import CoverageService
from api.services.regions import RegionService, point_site

from tests.api.conftest import assert_error

URL = "/regions/wuchang/care-circles"
#: In Wuchang, on its streets (the first is the point of tests/api/test_coverage.py).
POINTS = [(114.307, 30.5607), (114.32, 30.55), (114.30, 30.54), (114.33, 30.57)]
#: Inside the region but more than max_access_m (500 m) from any walkable street.
OFF_NETWORK = (114.271533, 30.524296)
#: A GCJ-02 point (Amap's coordinates) and the same point as WGS84 floats: one place on the streets.
GCJ = (114.3125, 30.5583)


@pytest.fixture
def coverage(client):
    """The app's coverage service, with a fresh point-circle cache for this test (the app's own is put back after)."""
    service = client.app.state.services.coverage
    kept = service.point_circles
    service.point_circles = PointCircles()
    yield service
    service.point_circles = kept


@pytest.fixture
def standalone(api_settings, wuchang):
    """A coverage service of its own on the session's Wuchang (no app), to build with other cache sizes."""
    regions = RegionService(api_settings)
    regions.put(wuchang, "wuchang")

    def make(size: int = DEFAULT_POINT_CIRCLE_CACHE_SIZE) -> CoverageService:
        return CoverageService(regions, scenarios=None, point_circle_cache_size=size)

    return make


def fresh_bytes(client, coverage, params) -> tuple[int, bytes]:
    """Today's answer over HTTP: no point-circle cache at all (maxsize 0: every request computed)."""
    kept = coverage.point_circles
    coverage.point_circles = PointCircles(maxsize=0)
    try:
        response = client.get(URL, params=params)
    finally:
        coverage.point_circles = kept
    return response.status_code, response.content


def fresh_answer(service: CoverageService, lon, lat, thresholds=(5.0, 10.0, 15.0)) -> dict:
    """Today's code path, called directly: point_site, then RegionService.circles (which keeps nothing for a point)."""
    region = service.regions.get("wuchang")
    return service.regions.circles(region, point_site(region, lon=lon, lat=lat, coord_system="wgs84"), thresholds_min=thresholds)


def as_json(answer: dict) -> str:
    """Type-sensitive: 5 and 5.0 differ here, as they do in the answer's bytes."""
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


def wgs84_near(region, lon: float, lat: float, dx_m: float, dy_m: float) -> tuple[float, float]:
    """The WGS84 point ``dx_m`` east and ``dy_m`` north of (lon, lat), shifted in the region's metric CRS."""
    point = gpd.GeoSeries(gpd.points_from_xy([lon], [lat]), crs=4326).to_crs(region.crs).translate(dx_m, dy_m).to_crs(4326)
    return float(point.x.iloc[0]), float(point.y.iloc[0])


def test_cached_answers_are_the_fresh_answers(client, coverage):
    queries = [{"lon": lon, "lat": lat} for lon, lat in POINTS]
    queries += [
        {"lon": 114.307, "lat": 30.5607, "thresholds_min": [5, 10]},
        {"lon": 114.32, "lat": 30.55, "thresholds_min": [15, 7.5]},
        {"lon": GCJ[0], "lat": GCJ[1], "coord_system": "gcj02"},
        {"lon": 114.3189, "lat": 30.5642, "coord_system": "bd09"},
    ]
    for params in queries:
        status, expected = fresh_bytes(client, coverage, params)
        assert status == 200, expected
        first = client.get(URL, params=params)  # computed and kept
        second = client.get(URL, params=params)  # from the cache
        assert first.status_code == second.status_code == 200
        assert first.content == expected, params
        assert second.content == expected, params
    info = coverage.point_circles.info()
    assert info["builds"] == len(queries) and info["hits"] == len(queries) and info["size"] == len(queries)


def test_a_second_query_is_served_from_the_cache(client, coverage):
    params = {"lon": 114.307, "lat": 30.5607}
    first = client.get(URL, params=params)
    assert first.status_code == 200
    assert coverage.point_circles.info()["builds"] == 1
    again = client.get(URL, params={"lon": "114.3070", "lat": "30.56070"})  # the same floats, spelt otherwise
    assert again.content == first.content
    assert coverage.point_circles.info()["builds"] == 1 and coverage.point_circles.info()["hits"] == 1
    other_thresholds = client.get(URL, params={**params, "thresholds_min": [10]})
    assert other_thresholds.status_code == 200 and other_thresholds.content != first.content
    assert coverage.point_circles.info()["builds"] == 2


def test_two_points_at_the_same_place_share_one_answer(client, coverage, wuchang):
    # a GCJ-02 point and the same point given as its WGS84 floats: two queries, one place on the streets
    x, y = to_wgs84(np.array([GCJ[0]]), np.array([GCJ[1]]), "gcj02")
    as_gcj = {"lon": GCJ[0], "lat": GCJ[1], "coord_system": "gcj02"}
    as_wgs = {"lon": repr(float(x[0])), "lat": repr(float(y[0]))}
    places = [coverage.point_circles.place("wuchang", wuchang, lon=float(p["lon"]), lat=float(p["lat"]),
                                           coord_system=p.get("coord_system", "wgs84")) for p in (as_gcj, as_wgs)]
    assert places[0].key == places[1].key and places[0].key[1] >= 0
    expected = {name: fresh_bytes(client, coverage, p) for name, p in (("gcj", as_gcj), ("wgs", as_wgs))}
    gcj = client.get(URL, params=as_gcj)
    wgs = client.get(URL, params=as_wgs)
    assert (gcj.status_code, gcj.content) == expected["gcj"]
    assert (wgs.status_code, wgs.content) == expected["wgs"]
    assert gcj.content == wgs.content
    assert coverage.point_circles.info()["builds"] == 1 and coverage.point_circles.info()["hits"] == 1


def test_points_near_one_junction_keep_their_own_circles(client, coverage, wuchang):
    # the circle is not a junction's: the position along the street and the walk to it shape it,
    # so nearby points (same nearest junction) get different answers, each the fresh one
    lon, lat = POINTS[0]
    near = [(lon, lat), wgs84_near(wuchang, lon, lat, 3.0, 0.0), wgs84_near(wuchang, lon, lat, 0.0, 2.0)]
    bodies = []
    for x, y in near:
        params = {"lon": repr(x), "lat": repr(y)}
        status, expected = fresh_bytes(client, coverage, params)
        response = client.get(URL, params=params)
        assert status == response.status_code == 200
        assert response.content == expected
        bodies.append(response.content)
    keys = {coverage.point_circles.place("wuchang", wuchang, lon=x, lat=y, coord_system="wgs84").key for x, y in near}
    assert len(keys) == 3 and len(set(bodies)) == 3
    assert coverage.point_circles.info()["builds"] == 3


def test_points_off_the_streets_and_beyond_the_edge_answer_as_before(client, coverage, wuchang):
    boundary = shapely.union_all(wuchang.boundary.geometry.to_numpy())
    centre = boundary.centroid
    corner = shapely.Point(boundary.exterior.coords[0])
    away = np.array([corner.x - centre.x, corner.y - centre.y]) / corner.distance(centre)

    def beyond(metres: float) -> dict:
        point = gpd.GeoSeries([shapely.Point(corner.x + away[0] * metres, corner.y + away[1] * metres)], crs=wuchang.crs).to_crs(4326)
        return {"lon": repr(float(point.x.iloc[0])), "lat": repr(float(point.y.iloc[0]))}

    cases = [
        ({"lon": OFF_NETWORK[0], "lat": OFF_NETWORK[1]}, 422, ("no walkable street", "500 m")),
        ({"lon": OFF_NETWORK[0], "lat": OFF_NETWORK[1], "thresholds_min": [5]}, 422, ("no walkable street",)),
        ({"lon": 116.40, "lat": 39.90}, 422, ("outside wuchang",)),
        (beyond(900.0), 422, ("outside wuchang",)),
        (beyond(100.0), 200, ()),  # just outside, within max_access_m: a point of the region, with circles
        (beyond(400.0), 200, ()),
        ({"lon": 114.31, "lat": 30.55, "thresholds_min": [30]}, 422, ("at most 15",)),
        ({"lon": 114.31, "lat": 30.55, "coord_system": "gcj2"}, 422, ("gcj2", "gcj02")),
        ({"lon": OFF_NETWORK[0], "lat": OFF_NETWORK[1], "coord_system": "gcj2"}, 422, ("gcj2",)),
        ({"lon": 116.40, "lat": 39.90, "thresholds_min": [30]}, 422, ("outside wuchang",)),  # the point is refused first
    ]
    for params, status, words in cases:
        expected = fresh_bytes(client, coverage, params)
        for _ in range(2):  # computed, then kept (or refused again as before)
            response = client.get(URL, params=params)
            assert (response.status_code, response.content) == expected, params
            if status == 200:
                assert response.json()["features"]
            else:
                assert_error(response, status, *words)
    # the refusals of placed points (no street within reach, a threshold out of range) are kept as well
    assert coverage.point_circles.info()["hits"] >= 3


def test_service_answers_equal_todays_code_path(standalone, wuchang):
    service = standalone()
    for lon, lat in POINTS[:2]:
        for thresholds in ((5.0, 10.0, 15.0), (5, 10), (5.0, 10.0), (7.5,)):
            expected = as_json(fresh_answer(service, lon, lat, thresholds))
            for _ in range(2):
                answer = service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=thresholds)
                assert as_json(answer) == expected, (lon, lat, thresholds)
    # ints and floats are kept apart: (5, 10) answers 5 and 10, (5.0, 10.0) answers 5.0 and 10.0
    assert service.point_circles.info()["builds"] == 8 and service.point_circles.info()["hits"] == 8
    with pytest.raises(InputError, match="No walkable street"):
        service.circles_for_point("wuchang", lon=OFF_NETWORK[0], lat=OFF_NETWORK[1], coord_system="wgs84", thresholds_min=(5.0,))
    with pytest.raises(InputError, match="No walkable street"):  # the kept refusal, raised anew
        service.circles_for_point("wuchang", lon=OFF_NETWORK[0], lat=OFF_NETWORK[1], coord_system="wgs84", thresholds_min=(5.0,))
    assert service.point_circles.info()["builds"] == 9


def test_the_most_recent_answers_are_kept_decoded(standalone):
    service = standalone()
    service.point_circles = PointCircles(maxsize=10, hot_size=2)

    def ask(lon, lat):
        return service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0,))

    first = [ask(lon, lat) for lon, lat in POINTS[:3]]
    info = service.point_circles.info()
    assert info["hot"] == 2 and info["size"] == 3 and info["builds"] == 3
    assert ask(*POINTS[2]) is first[2]  # hot: the same (shared) answer
    again = ask(*POINTS[0])  # compressed only: decoded anew, the same answer
    assert again is not first[0] and as_json(again) == as_json(first[0])
    assert service.point_circles.info()["builds"] == 3 and service.point_circles.info()["hot"] == 2
    assert PointCircles(maxsize=1).hot_size == 1


def test_the_cache_is_bounded(standalone):
    service = standalone(size=3)
    points = POINTS + [(114.31, 30.55)]
    for lon, lat in points:
        service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0,))
    assert len(service.point_circles) == 3 and service.point_circles.info()["builds"] == 5
    assert service.point_circles.info()["hot"] <= 3
    # the least recently used (the first point) is gone: asked again, it is computed again; the last one is kept
    service.circles_for_point("wuchang", lon=points[-1][0], lat=points[-1][1], coord_system="wgs84", thresholds_min=(5.0,))
    assert service.point_circles.info()["builds"] == 5
    service.circles_for_point("wuchang", lon=points[0][0], lat=points[0][1], coord_system="wgs84", thresholds_min=(5.0,))
    assert service.point_circles.info()["builds"] == 6 and len(service.point_circles) == 3

    nothing_kept = standalone(size=0)
    for _ in range(2):
        nothing_kept.circles_for_point("wuchang", lon=114.307, lat=30.5607, coord_system="wgs84", thresholds_min=(5.0,))
    assert len(nothing_kept.point_circles) == 0
    assert CoverageService(None, None).point_circles.maxsize == DEFAULT_POINT_CIRCLE_CACHE_SIZE == 4096
    with pytest.raises(ValueError, match="maxsize"):
        PointCircles(maxsize=-1)
    with pytest.raises(ValueError, match="hot_size"):
        PointCircles(hot_size=1.5)


def test_concurrent_first_requests_compute_once(standalone, wuchang):
    service = standalone()
    lon, lat = POINTS[1]
    expected = as_json(fresh_answer(service, lon, lat))

    def ask(_):
        return as_json(service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0, 10.0, 15.0)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert set(answers) == {expected}
    assert service.point_circles.info()["builds"] == 1 and service.point_circles.info()["hits"] == 15


def test_a_region_loaded_anew_gets_answers_of_its_own(standalone, wuchang):
    service = standalone()
    ask = lambda: service.circles_for_point("wuchang", lon=114.307, lat=30.5607, coord_system="wgs84", thresholds_min=(5.0,))  # noqa: E731
    before = as_json(ask())
    service.regions.put(dataclasses.replace(wuchang), "wuchang")  # another Region object under the same key
    assert as_json(ask()) == before
    assert service.point_circles.info()["builds"] == 2 and len(service.point_circles) == 1
    assert service.point_circles.info()["hot"] == 1


def test_the_placing_is_point_sites_and_snap_to_networks(standalone, wuchang):
    # the cache key comes from a fast placing; it must be what point_site and snap_to_network give, to the bit
    from geoplan.snapping import snap_to_network

    service = standalone()
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = wuchang.boundary.to_crs(4326).total_bounds
    placed = 0
    for lon, lat in zip(rng.uniform(minx, maxx, 40), rng.uniform(miny, maxy, 40)):
        for system in ("wgs84", "gcj02"):
            place = service.point_circles.place("wuchang", wuchang, lon=float(lon), lat=float(lat), coord_system=system)
            try:
                site = point_site(wuchang, lon=float(lon), lat=float(lat), coord_system=system)
            except InputError:
                assert place is None
                continue
            snap = snap_to_network(wuchang.network, site, max_access_m=wuchang.config.analysis.max_access_m).iloc[0]
            assert place.xy == (site.geometry.iloc[0].x, site.geometry.iloc[0].y)
            if snap["edge_id"] < 0:
                assert place.key[1:] == (-1,)
            else:
                assert place.key[1:] == (int(snap["edge_id"]), float(snap["position_m"]), float(snap["access_m"]))
                placed += 1
    assert placed >= 10


def test_new_places_are_computed_without_point_site_or_region_circles(standalone, monkeypatch):
    # past the confirmed first answers, a new place is computed from the prepared router and circle maker alone
    import api.services.coverage as coverage_module
    import api.services.coverage_service as service_module

    monkeypatch.setattr(coverage_module, "CONFIRM_FIRST", 0)
    monkeypatch.setattr(coverage_module, "CONFIRM_EVERY", 10**9)
    service = standalone()
    asked = [(lon, lat, thresholds) for lon, lat in POINTS for thresholds in ((5.0, 10.0, 15.0), (5, 12.5), (2.0, 4.0, 6.0, 8.0))]
    expected = {q: as_json(fresh_answer(service, *q)) for q in asked}
    calls = {"point_site": 0, "snap_to_network": 0, "circles": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(service_module, "point_site", counted("point_site", service_module.point_site))
    monkeypatch.setattr(coverage_module, "snap_to_network", counted("snap_to_network", coverage_module.snap_to_network))
    monkeypatch.setattr(service.regions, "circles", counted("circles", service.regions.circles))
    for lon, lat, thresholds in asked:
        answer = service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=thresholds)
        assert as_json(answer) == expected[(lon, lat, thresholds)], (lon, lat, thresholds)
    assert calls == {"point_site": 0, "snap_to_network": 0, "circles": 0}
    assert service.point_circles.info()["builds"] == len(asked)
    # refusals still come from RegionService.circles, in its words
    with pytest.raises(InputError, match="No walkable street"):
        service.circles_for_point("wuchang", lon=OFF_NETWORK[0], lat=OFF_NETWORK[1], coord_system="wgs84", thresholds_min=(5.0,))
    assert calls["circles"] == 1


def test_a_placing_that_disagrees_is_answered_fresh_and_caching_stops(standalone, wuchang, monkeypatch, caplog):
    import api.services.coverage as coverage_module

    service = standalone()
    lon, lat = POINTS[0]
    expected = as_json(fresh_answer(service, lon, lat, (5.0,)))
    real_place = coverage_module._Placer.place

    def off_by_a_millimetre(self, *args):
        place = real_place(self, *args)
        generation, edge_id, position, access = place.key
        return dataclasses.replace(place, key=(generation, edge_id, position + 0.001, access))

    monkeypatch.setattr(coverage_module._Placer, "place", off_by_a_millimetre)
    answer = service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0,))
    assert as_json(answer) == expected
    assert len(service.point_circles) == 0 and "no longer cached" in caplog.text
    monkeypatch.setattr(coverage_module._Placer, "place", real_place)
    assert service.point_circles.place("wuchang", wuchang, lon=lon, lat=lat, coord_system="wgs84") is None
    answer = service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0,))
    assert as_json(answer) == expected and len(service.point_circles) == 0


def test_concurrent_new_places_are_the_fresh_answers(standalone, wuchang):
    service = standalone()
    asked = POINTS + [wgs84_near(wuchang, *POINTS[0], 40.0, -25.0), wgs84_near(wuchang, *POINTS[1], -60.0, 30.0)]
    expected = [as_json(fresh_answer(service, lon, lat)) for lon, lat in asked]

    def ask(point):
        return as_json(service.circles_for_point("wuchang", lon=point[0], lat=point[1], coord_system="wgs84",
                                                 thresholds_min=(5.0, 10.0, 15.0)))

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(ask, asked * 2))
    assert answers == expected * 2
    assert service.point_circles.info()["builds"] == len(asked)


def test_circle_maker_draws_care_circles(wuchang):
    # the prepared maker is care_circles without its set-up: the same polygons, to the bit
    from geoplan.isochrones import CircleMaker, care_circles
    from geoplan.snapping import snap_to_network

    sites = wuchang.candidates.iloc[:6]
    reach = wuchang.reach(sites, cutoff_min=15)
    max_access_m = wuchang.config.analysis.max_access_m
    snap = snap_to_network(wuchang.network, sites, max_access_m=max_access_m)
    placed = snap[snap["edge_id"] >= 0]
    maker = CircleMaker(wuchang.network, wuchang.demand)
    for thresholds in ((5, 10, 15), (7.5,)):
        expected = care_circles(wuchang.network, sites, demand=wuchang.demand, reach=reach, thresholds_min=thresholds,
                                max_access_m=max_access_m)
        drawn = maker.circles(placed, reach, thresholds)
        assert drawn.drop(columns="geometry").equals(expected.drop(columns="geometry"))
        assert shapely.to_wkb(drawn.geometry.to_numpy()).tolist() == shapely.to_wkb(expected.geometry.to_numpy()).tolist()
    network_only = CircleMaker(wuchang.network).circles(placed.iloc[:2], None, (5,))
    expected = care_circles(wuchang.network, sites.iloc[:2], thresholds_min=(5,), max_access_m=max_access_m)
    assert shapely.to_wkb(network_only.geometry.to_numpy()).tolist() == shapely.to_wkb(expected.geometry.to_numpy()).tolist()
    with pytest.raises(InputError, match="walking times"):
        maker.circles(placed, None, (5,))
    with pytest.raises(InputError, match="street_buffer_m"):
        CircleMaker(wuchang.network, street_buffer_m=0)


def test_preparing_a_region_builds_its_placer_and_keeps_no_answer(standalone, wuchang):
    service = standalone()
    service.prepare_circles("wuchang")
    info = service.point_circles.info()
    assert service.point_circles._placers["wuchang"].region is wuchang
    assert info["builds"] == 0 and len(service.point_circles) == 0  # nothing answered, nothing kept
    lon, lat = POINTS[0]
    expected = as_json(fresh_answer(service, lon, lat, (5.0, 10.0, 15.0)))
    assert as_json(service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0, 10.0, 15.0))) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_new_circles_are_drawn_in_a_nicer_thread(standalone, wuchang):
    from api.services.coverage_service import NEW_CIRCLE_NICE

    service = standalone()
    seen = {}
    compute = service.point_circles.compute

    def spy(place, thresholds):
        tid = threading.get_native_id()
        seen.update(thread=threading.current_thread().name, nice=os.getpriority(os.PRIO_PROCESS, tid))
        return compute(place, thresholds)

    service.point_circles.compute = spy
    lon, lat = POINTS[1]
    service.circles_for_point("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=(5.0,))
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen["thread"].startswith("geoplan-new-circles")
    assert seen["nice"] == min(mine + NEW_CIRCLE_NICE, 19)
