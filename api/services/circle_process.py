"""New care circles of points drawn in a child process of lower priority, so a web worker's interpreter stays with its quick answers.

A new circle takes some 30-50 ms of CPU, most of it Python holding the
interpreter lock; drawn in a web worker's own thread it slows every gap query
and kept circle that worker answers meanwhile. :class:`CircleProcess` hands it
to a child process started with ``spawn`` that loads the region from the same
config and cache as the web worker (so the same data, to the bit) and runs at a
lower CPU priority. The child answers with the JSON the web worker would have
sent and the place it found for the point; the web worker keeps the answer only
when that place is its own.

Only regions the web worker loaded from their config are sent (a region handed
in with ``RegionService.put`` may differ from its config). While the child
starts, or after it died (it is started again), the web worker draws the circle
itself, so an answer never waits on the child. (Being spawned, the child
imports the main module of the web worker's process: a script that serves the
app itself keeps its start under ``if __name__ == "__main__":``, or sets
``GEOPLAN_CIRCLE_PROCESSES=0``.)
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool

from api.settings import Settings

log = logging.getLogger(__name__)

#: CPU priority given up by the child (nice), on top of the web worker's.
CIRCLE_PROCESS_NICE = 10
#: Longest wait for one circle from the child before the web worker draws it itself.
DRAW_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class Drawn:
    """A child's answer: the point's place (without the child's generation) and the answer's JSON, or its refusal."""

    place: tuple | None  # (edge_id, position_m, access_m), xy, on_street; None when the child did not place it
    body: bytes | None
    refusal: Exception | None = None


class CircleProcess:
    """Child processes (``processes`` of them) that draw new care circles of points for one web worker."""

    def __init__(self, settings: Settings, processes: int = 1):
        self.settings = settings
        self.processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: dict[str, Future] = {}
        self._told: set[str] = set()
        self.drawn = 0
        self.restarts = 0

    def start(self, keys: tuple[str, ...] = ()) -> None:
        """Start the children and have them load and prepare ``keys`` (without waiting for them)."""
        for key in keys:
            self.ready(key)

    def ready(self, key: str) -> bool:
        """Whether the children have loaded ``key`` (asking them to, if nobody did); a child that could not is logged once."""
        try:
            future = self._prepare(key)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:  # could not even be started
            self._failed(key, exc)
            return False
        if not future.done():
            return False
        error = future.exception()
        if error is not None:
            self._failed(key, error)
        return error is None

    def prepared(self) -> list[str]:
        """The regions the children have ready (asking nothing of them)."""
        with self._lock:
            futures = dict(self._ready)
        return sorted(k for k, f in futures.items() if f.done() and f.exception() is None)

    def _failed(self, key: str, error: BaseException) -> None:
        with self._lock:
            if key in self._told:
                return
            self._told.add(key)
        log.warning("the care-circle process could not prepare %s (%s: %s); new care circles are drawn in the web worker",
                    key, type(error).__name__, error)

    def draw(self, key: str, *, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> Drawn | None:
        """The child's answer for a point of ``key``, or None when the web worker is to draw it itself (child not
        ready, dead or too slow; it is started again)."""
        if not self.ready(key):
            return None
        pool = self._pool_now()
        try:
            drawn = pool.submit(_draw, key, lon, lat, coord_system, thresholds_min).result(timeout=DRAW_TIMEOUT_S)
        except (BrokenProcessPool, TimeoutError, OSError) as exc:
            log.warning("the care-circle process failed (%s: %s); starting it again", type(exc).__name__, exc)
            self._restart(pool)
            return None
        with self._lock:
            self.drawn += 1
        return drawn

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._ready.clear()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _prepare(self, key: str) -> Future:
        with self._lock:
            future = self._ready.get(key)
        if future is None:
            future = self._pool_now().submit(_prepare, key)
            with self._lock:
                future = self._ready.setdefault(key, future)
        return future

    def _pool_now(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_child, initargs=(self.settings,))
            return self._pool

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:
                return  # another request restarted it already
            self._pool = None
            self._ready.clear()
            self.restarts += 1
        running = _children(broken)
        broken.shutdown(wait=False, cancel_futures=True)
        for process in running:  # a child stuck in a circle would otherwise keep its CPU
            if process.is_alive():
                process.kill()


def _children(pool: ProcessPoolExecutor) -> list:
    return list((getattr(pool, "_processes", None) or {}).values())


# in the child ---------------------------------------------------------------------------------------

_service = None


def _start_child(settings: Settings) -> None:
    global _service
    from api.services.coverage_service import CoverageService
    from api.services.regions import RegionService

    try:
        os.nice(CIRCLE_PROCESS_NICE)
    except OSError:  # not allowed here: the child keeps the web worker's priority
        pass
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="geoplan-circles-parent", daemon=True).start()
    regions = RegionService(settings)
    _service = CoverageService(regions, scenarios=None, point_circle_cache_size=256, new_circle_nice=0)
    for key in settings.preload:  # every child has the preloaded regions ready before its first task
        _prepare(key)


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End the child once its web worker is gone (killed, it cannot say so): nothing else would stop it."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


def _prepare(key: str) -> None:
    _service.regions.get(key)
    _service.prepare_circles(key)


def _draw(key: str, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> Drawn:
    from geoplan.errors import InputError

    region = _service.regions.get(key)
    place = _service.point_circles.place(key, region, lon=lon, lat=lat, coord_system=coord_system)
    where = None if place is None else (place.key[1:], place.xy, place.on_street)
    try:
        body = _service.circles_for_point_json(key, lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds_min)
    except InputError as exc:
        return Drawn(where, None, exc.with_traceback(None))
    return Drawn(where, body)
