"""New care circles of points drawn by a child process: the same bytes as drawn in the web worker, refusals kept, and a
killed child replaced without a lost answer."""

from __future__ import annotations

import os
import signal
import time

import pytest

from geoplan.errors import InputError

from api.services.circle_process import CircleProcess
from api.services.coverage_service import CoverageService
from api.services.regions import RegionService

from tests.api.test_care_circles_cache import OFF_NETWORK, POINTS

THRESHOLDS = (5.0, 10.0, 15.0)


def wait_ready(drawer: CircleProcess, key: str = "wuchang", timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not drawer.ready(key):
        assert time.monotonic() < deadline, "the care-circle process did not load the region"
        time.sleep(0.2)


def children(drawer: CircleProcess) -> list:
    return [p for p in drawer._pool._processes.values() if p.is_alive()]


@pytest.fixture(scope="module")
def settings(api_settings, wuchang):  # wuchang: the session's network cache is built before the child reads it
    return api_settings.model_copy(update={"preload": ("wuchang",), "circle_processes": 1})


@pytest.fixture(scope="module")
def here(settings):
    """Circles drawn in this process, over the region loaded from its config as a web worker loads it."""
    regions = RegionService(settings)
    regions.get("wuchang")
    return CoverageService(regions, scenarios=None)


@pytest.fixture
def drawn(settings):
    regions = RegionService(settings)
    regions.get("wuchang")
    drawer = CircleProcess(settings, ("wuchang",))
    drawer.start()
    wait_ready(drawer)
    assert drawer.prepared() == ["wuchang"]
    service = CoverageService(regions, scenarios=None, drawer=drawer)
    yield service
    service.close()
    assert drawer.prepared() == [] and not drawer.ready("wuchang")  # closed: not started again


def point_json(service: CoverageService, lon: float, lat: float) -> bytes:
    return service.circles_for_point_json("wuchang", lon=lon, lat=lat, coord_system="wgs84", thresholds_min=THRESHOLDS)


def test_the_child_draws_the_bytes_this_process_draws(drawn, here):
    for lon, lat in POINTS:
        assert point_json(drawn, lon, lat) == point_json(here, lon, lat)
    assert drawn.drawer.drawn == len(POINTS) and drawn.point_circles.info()["builds"] == len(POINTS)
    before = drawn.drawer.drawn
    assert point_json(drawn, *POINTS[0]) == point_json(here, *POINTS[0])  # kept here: the child is not asked again
    assert drawn.drawer.drawn == before
    # the decoded answer is the same as well
    answer = drawn.circles_for_point("wuchang", lon=POINTS[1][0], lat=POINTS[1][1], coord_system="wgs84", thresholds_min=THRESHOLDS)
    assert answer == here.circles_for_point("wuchang", lon=POINTS[1][0], lat=POINTS[1][1], coord_system="wgs84", thresholds_min=THRESHOLDS)


def test_a_refusal_from_the_child_is_the_same_refusal(drawn, here):
    with pytest.raises(InputError) as mine:
        point_json(here, *OFF_NETWORK)
    for _ in range(2):  # drawn by the child, then kept
        with pytest.raises(InputError) as child:
            point_json(drawn, *OFF_NETWORK)
        assert str(child.value) == str(mine.value) and "No walkable street" in str(child.value)
    assert drawn.drawer.drawn == 1


def test_a_killed_child_costs_no_answer(drawn, here):
    lon, lat = POINTS[2]
    (child,) = children(drawn.drawer)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert point_json(drawn, lon, lat) == point_json(here, lon, lat)  # drawn here meanwhile
    assert drawn.drawer.restarts == 1
    wait_ready(drawn.drawer)  # started again
    (again,) = children(drawn.drawer)
    assert again.pid != child.pid
    lon, lat = POINTS[3]
    assert point_json(drawn, lon, lat) == point_json(here, lon, lat)
    assert drawn.drawer.drawn == 1


def test_regions_handed_in_are_drawn_here(settings, wuchang):
    regions = RegionService(settings)
    regions.put(wuchang, "wuchang")
    drawer = CircleProcess(settings, ("wuchang",))
    try:
        service = CoverageService(regions, scenarios=None, drawer=drawer)
        point_json(service, *POINTS[0])
        assert drawer.drawn == 0 and drawer._pool is None  # not even started
    finally:
        drawer.close()


def test_a_child_that_cannot_load_its_region_is_replaced_and_the_web_worker_draws(settings, caplog):
    drawer = CircleProcess(settings, ("nowhere",))
    try:
        with caplog.at_level("WARNING", logger="api.services.circle_process"):
            drawer.start()
            deadline = time.monotonic() + 120
            while drawer.restarts == 0:  # the child fails while loading, and is replaced
                assert not drawer.ready("nowhere") and time.monotonic() < deadline
                time.sleep(0.1)
        assert drawer.draw("nowhere", lon=114.3, lat=30.5, coord_system="wgs84", thresholds_min=THRESHOLDS) is None
        told = [r.getMessage() for r in caplog.records]
        assert "could not start" in told[0] and "Unknown region" in told[0] and "starting it again" in told[0]
        assert drawer.drawn == 0 and drawer.prepared() == []
    finally:
        drawer.close()


def test_a_hung_child_is_replaced(drawn, here, monkeypatch):
    from api.services import circle_process

    monkeypatch.setattr(circle_process, "DRAW_TIMEOUT_S", 1e-4)  # every answer comes too late
    (child,) = children(drawn.drawer)
    lon, lat = POINTS[2]
    assert point_json(drawn, lon, lat) == point_json(here, lon, lat)  # drawn here
    assert drawn.drawer.restarts == 1 and drawn.drawer.drawn == 0
    child.join(10)
    assert not child.is_alive()  # stopped, not left running
    monkeypatch.setattr(circle_process, "DRAW_TIMEOUT_S", 60.0)
    wait_ready(drawn.drawer)
    assert point_json(drawn, *POINTS[3]) == point_json(here, *POINTS[3]) and drawn.drawer.drawn == 1


def test_the_child_ends_with_its_web_worker(settings, tmp_path):
    """A web worker killed with SIGKILL leaves no care-circle process behind."""
    import subprocess
    import sys

    import psutil

    script = tmp_path / "worker.py"
    script.write_text(
        "import sys, time\n"
        "from api.settings import Settings\n"
        "from api.services.circle_process import CircleProcess\n"
        "if __name__ == '__main__':\n"
        "    drawer = CircleProcess(Settings.model_validate_json(sys.argv[1]), ('wuchang',))\n"
        "    while not drawer.ready('wuchang'):\n"
        "        time.sleep(0.1)\n"
        "    print(list(drawer._pool._processes)[0], flush=True)\n"
        "    time.sleep(600)\n"
    )
    worker = subprocess.Popen([sys.executable, str(script), settings.model_dump_json()], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    try:
        child = psutil.Process(int(worker.stdout.readline()))
        assert child.is_running()
        worker.kill()
        worker.wait(10)
        child.wait(timeout=30)  # raises psutil.TimeoutExpired if the child stays
    finally:
        worker.kill()


def test_no_process_to_start_leaves_the_drawing_to_the_web_worker(settings, monkeypatch, caplog):
    from api.services import circle_process

    def no_processes(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(circle_process, "ProcessPoolExecutor", no_processes)
    drawer = CircleProcess(settings, ("wuchang",))
    with caplog.at_level("WARNING", logger="api.services.circle_process"):
        drawer.start()
        assert not drawer.ready("wuchang")
        assert drawer.draw("wuchang", lon=114.3, lat=30.5, coord_system="wgs84", thresholds_min=THRESHOLDS) is None
    assert drawer.restarts == 3 and drawer.prepared() == []
    assert "could not be started" in caplog.records[0].getMessage()
    for _ in range(circle_process.MAX_RESTARTS):  # then it stops trying
        drawer.ready("wuchang")
    assert drawer.restarts == circle_process.MAX_RESTARTS + 1
