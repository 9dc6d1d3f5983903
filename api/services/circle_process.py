"""New care circles of points drawn in a child process of lower priority, so a web worker's interpreter stays with its quick answers.

A new circle takes some 30-50 ms of CPU, most of it Python holding the
interpreter lock; drawn in a web worker's own thread it slows every gap query
and kept circle that worker answers meanwhile. :class:`CircleProcess` hands it
to a child process started with ``spawn`` that loads the preloaded regions from
the same config and cache files as the web worker (so the same data while those
files stay as they are) and runs at a lower CPU priority. The child answers with
the JSON the web worker would have sent and the place it found for the point;
the web worker keeps the answer only when that place is its own.

Only preloaded regions the web worker loaded from their config are sent (a
region handed in with ``RegionService.put`` may differ from its config). While
the child starts, or after it died, failed or hung (it is replaced, at most
:data:`MAX_RESTARTS` times), the web worker draws the circle itself. (Being spawned, the child
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
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, TimeoutError

from api.settings import Settings

log = logging.getLogger(__name__)

#: CPU priority given up by the child (nice), on top of the web worker's.
CIRCLE_PROCESS_NICE = 10
#: Longest wait for one circle from the children (queued behind others included) before they are replaced.
DRAW_TIMEOUT_S = 60.0
#: Replacements of the children after which the web worker draws every new circle itself.
MAX_RESTARTS = 5


@dataclasses.dataclass(frozen=True)
class Drawn:
    """A child's answer: the point's place (without the child's generation) and the answer's JSON, or its refusal."""

    place: tuple | None  # the child's PointPlace.spot; None when it did not place the point
    body: bytes | None
    refusal: Exception | None = None


class CircleProcess:
    """Child processes (``processes`` of them) that draw new care circles of points of ``regions`` for one web worker.

    Each child loads and prepares ``regions`` when it starts; circles of other regions are not sent.
    """

    def __init__(self, settings: Settings, regions: tuple[str, ...], processes: int = 1):
        self.settings = settings
        self.regions = tuple(regions)
        self.processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._started: Future | None = None  # the pool's first task: done once a child has loaded the regions
        self._closed = False
        self.drawn = 0
        self.restarts = 0

    def start(self) -> None:
        """Start the children (without waiting for them to load the regions)."""
        if self.regions:
            self.ready(self.regions[0])

    def ready(self, key: str) -> bool:
        """Whether a child has ``key`` loaded and prepared (starting the children, if they are not running)."""
        if key not in self.regions:
            return False
        with self._lock:
            if self._closed or self.restarts > MAX_RESTARTS:
                return False
            if self._pool is None:
                try:
                    self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_start_child, initargs=(self.settings, self.regions, os.getpid()))
                    self._started = self._pool.submit(_check_started)
                except (OSError, RuntimeError) as exc:  # no process could be started here (limits, an unguarded script)
                    self._pool, self._started = None, None
                    self.restarts += 1
                    log.warning("the care-circle process could not be started (%s: %s); new care circles are drawn in "
                                "the web worker meanwhile", type(exc).__name__, exc)
                    return False
            pool, started = self._pool, self._started
        if not started.done():
            return False
        if not _succeeded(started):  # the child died or failed while loading
            self._restart(pool, "could not start: " + ("cancelled" if started.cancelled() else str(started.exception())))
            return False
        return True

    def prepared(self) -> list[str]:
        """The regions a child has ready (asking nothing of the children)."""
        with self._lock:
            started = self._started
        return list(self.regions) if started is not None and started.done() and _succeeded(started) else []

    def draw(self, key: str, *, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> Drawn | None:
        """The child's answer for a point of ``key``, or None when the web worker is to draw it itself (no child ready,
        one that died, failed or took longer than :data:`DRAW_TIMEOUT_S`: it is replaced)."""
        if not self.ready(key):
            return None
        with self._lock:
            pool = self._pool
        if pool is None:
            return None
        try:
            drawn = pool.submit(_draw, key, lon, lat, coord_system, thresholds_min).result(timeout=DRAW_TIMEOUT_S)
        except TimeoutError:
            self._restart(pool, f"no answer within {DRAW_TIMEOUT_S:g} s")
            return None
        except CancelledError:  # another request replaced the children meanwhile
            return None
        except Exception as exc:  # a broken pool, or a failure of the child's own: the web worker draws instead
            self._restart(pool, f"{type(exc).__name__}: {exc}")
            return None
        with self._lock:
            self.drawn += 1
        return drawn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool, self._started = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _restart(self, broken: ProcessPoolExecutor, why: str) -> None:
        """Stop the children of ``broken`` (the next request starts new ones), at most MAX_RESTARTS times."""
        with self._lock:
            if self._pool is not broken:
                return  # replaced by another request already
            self._pool, self._started = None, None
            self.restarts += 1
            last = self.restarts > MAX_RESTARTS
        log.warning("the care-circle process %s; %s", why,
                    "new care circles are drawn in the web worker from now on" if last else "starting it again")
        running = _children(broken)
        broken.shutdown(wait=False, cancel_futures=True)
        for process in running:  # a child stuck in a circle would otherwise keep its CPU
            if process.is_alive():
                process.kill()


def _succeeded(done: Future) -> bool:
    return not done.cancelled() and done.exception() is None


def _children(pool: ProcessPoolExecutor) -> list:
    return list((getattr(pool, "_processes", None) or {}).values())


# in the child ---------------------------------------------------------------------------------------

_service = None
_failure: str | None = None  # why the child could not load its regions (the pool's first task raises it)


def _check_started() -> None:
    if _failure is not None:
        raise RuntimeError(_failure)  # a plain error: it unpickles in the web worker whatever the cause was


def _start_child(settings: Settings, regions: tuple[str, ...], parent: int) -> None:
    global _service, _failure
    from api.services.coverage_service import CoverageService
    from api.services.regions import RegionService

    try:
        os.nice(CIRCLE_PROCESS_NICE)
    except OSError:  # not allowed here: the child keeps the web worker's priority
        pass
    threading.Thread(target=_exit_with_parent, args=(parent,), name="geoplan-circles-parent", daemon=True).start()
    try:
        _service = CoverageService(RegionService(settings), scenarios=None, point_circle_cache_size=256, new_circle_nice=0)
        for key in regions:  # every child has the regions ready before its first task
            _service.regions.get(key)
            _service.prepare_circles(key)
    except Exception as exc:  # reported by _check_started, the pool's first task
        _failure = f"{type(exc).__name__}: {exc}"


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End the child once its web worker is gone (killed, it cannot say so): nothing else would stop it."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


def _draw(key: str, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> Drawn:
    from geoplan.errors import InputError

    _check_started()
    region = _service.regions.get(key)
    place = _service.point_circles.place(key, region, lon=lon, lat=lat, coord_system=coord_system)
    where = None if place is None else place.spot
    try:
        body = _service.circles_for_point_json(key, lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds_min)
    except InputError as exc:
        return Drawn(where, None, exc.with_traceback(None))
    return Drawn(where, body)
