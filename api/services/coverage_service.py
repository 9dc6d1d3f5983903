"""Coverage answers: the coverage index of a region or a scenario's end state, and care circles of a site or a point."""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import pandas as pd

from geoplan.errors import InputError

from api.auth import Principal
from api.errors import NotFound
from api.services import scenarios as sc
from api.services.circle_process import CircleProcess
from api.services.coverage import DEFAULT_POINT_CIRCLE_CACHE_SIZE, CoverageIndex, PlaceMismatch, PointCircles, PointPlace, answer_json
from api.services.regions import RegionService, point_site
from api.services.scenario_service import ScenarioService

log = logging.getLogger(__name__)

#: How much nicer than the web worker's other threads the thread drawing new care circles runs (Linux).
NEW_CIRCLE_NICE = 5


def lower_thread_priority(increment: int) -> None:
    """Make the calling thread ``increment`` nicer (Linux keeps a nice value per thread); elsewhere nothing."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + increment, 19))
    except OSError as exc:
        log.info("new care circles keep the web worker's priority: %s", exc)


class CoverageService:
    """Coverage and care circles over the shared regions, for the region's own facilities or a scenario's."""

    def __init__(self, regions: RegionService, scenarios: ScenarioService, *,
                 point_circle_cache_size: int = DEFAULT_POINT_CIRCLE_CACHE_SIZE, new_circle_nice: int = NEW_CIRCLE_NICE,
                 drawer: CircleProcess | None = None):
        self.regions = regions
        self.scenarios = scenarios
        #: care circles of points by where they meet the streets (bounded, thread-safe)
        self.point_circles = PointCircles(maxsize=point_circle_cache_size)
        #: new care circles of points of the regions it loaded are drawn by child processes (see CircleProcess)
        self.drawer = drawer
        self._drawn_here: set[str] = set()  # regions whose child placed a point elsewhere
        #: otherwise one at a time per process, in a thread of lower priority: a burst of new points then
        #: shares the interpreter with one computation, not dozens, and the cores go to the quick answers first
        self._new_circles = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoplan-new-circles",
                                               initializer=lower_thread_priority, initargs=(new_circle_nice,))

    def index(self, key: str, scenario_id: str | None = None, *, who: Principal) -> CoverageIndex:
        """The coverage of the region's own facilities, or of a scenario's end state (its plan folded in)."""
        if scenario_id is None:
            return self.regions.coverage(key)
        record = self.scenarios.get_in(key, scenario_id, who)
        return self.regions.scenario_coverage(key, record.spec_hash, lambda: self.scenarios.end_state_report(record, with_circles=False))

    def close(self) -> None:
        """Stop the care-circle processes and the thread drawing new circles."""
        if self.drawer is not None:
            self.drawer.close()
        self._new_circles.shutdown(wait=False, cancel_futures=True)

    def prepare_circles(self, key: str) -> None:
        """Build now what the region's first care circle of a point would (the placer, the walk kernels), answering nothing.

        Called for preloaded regions before the service takes requests: otherwise the first circle
        asked of each web worker pays it, and the quick requests beside it wait.
        """
        region = self.regions.get(key)
        if not len(region.network.edges):
            return
        middle = region.network.edges.geometry.iloc[[0]].interpolate(0.5, normalized=True)
        lonlat = gpd.GeoSeries(middle, crs=region.crs).to_crs(4326).iloc[0]
        place = self.point_circles.place(key, region, lon=lonlat.x, lat=lonlat.y, coord_system="wgs84")
        if place is not None:
            try:
                self.point_circles.compute(place, tuple(float(t) for t in region.thresholds_min))
            except InputError as exc:  # the street's own point refused: the first real request says why
                log.info("care circles of %s not prepared: %s", key, exc)

    def circles_for_site(self, key: str, site_id: str, *, scenario_id: str | None, thresholds_min: tuple[float, ...],
                         who: Principal) -> dict:
        base = self.regions.get(key)
        region, fingerprint = base, "base"
        if scenario_id is not None:
            record = self.scenarios.get_in(key, scenario_id, who)
            region, fingerprint = sc.check(base, record.spec), record.spec_hash
        pool = pd.concat([region.facilities, region.candidates.assign(status="candidate")])
        pool = pool[~pool.index.duplicated()]
        if site_id not in pool.index:
            where = f"scenario {scenario_id!r}" if scenario_id else key
            raise NotFound(f"No facility or candidate site {site_id!r} in {where}. List them with GET /regions/{key}/facilities.")
        site = gpd.GeoDataFrame(pool.loc[[site_id]], geometry="geometry", crs=region.crs)
        return self.regions.circles(region, site, thresholds_min=thresholds_min, cache_key=(key, fingerprint, site_id, thresholds_min))

    def circles_for_point(self, key: str, *, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...]) -> dict:
        """Care circles of a point, computed once per place on the streets and thresholds (see PointCircles).

        A point too far outside the region is answered as before (point_site says why). A new place is
        computed from the prepared router and circle maker, as RegionService.circles computes it; the
        place is confirmed against point_site and snap_to_network for the first answers of each loaded
        region, then for one in 64. Refusals (no street near, thresholds out of range) come from
        RegionService.circles itself.
        """
        return self._point_circles(key, lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds_min, as_json=False)

    def circles_for_point_json(self, key: str, *, lon: float, lat: float, coord_system: str,
                               thresholds_min: tuple[float, ...]) -> bytes | None:
        """:meth:`circles_for_point` as the JSON the service sends (:func:`~api.services.coverage.answer_json`), a kept
        answer never decoded; None for an answer JSON cannot hold (then ask :meth:`circles_for_point`)."""
        return self._point_circles(key, lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds_min, as_json=True)

    def kept_circles_json(self, key: str, *, lon: float, lat: float, coord_system: str,
                          thresholds_min: tuple[float, ...]) -> bytes | None:
        """The kept JSON answer of a point of a loaded region, computing nothing (quick enough for the event loop); None
        when there is none yet. A kept refusal raises its InputError."""
        region = self.regions.loaded(key)
        if region is None:
            return None
        place = self.point_circles.place(key, region, lon=lon, lat=lat, coord_system=coord_system, prepare=False)
        return None if place is None else self.point_circles.kept_json(place, thresholds_min)

    def _drawn_by_child(self, key: str, place: PointPlace, *, lon: float, lat: float, coord_system: str,
                        thresholds_min: tuple[float, ...]) -> bytes | None:
        """The child's JSON answer for a point it placed where this process did (its refusal raised); None: draw it here.

        A child that places a point elsewhere is not asked for that region again.
        """
        if self.drawer is None or key in self._drawn_here or not self.regions.loads_itself(key):
            return None
        drawn = self.drawer.draw(key, lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds_min)
        if drawn is None:
            return None
        if drawn.place != place.spot:
            self._drawn_here.add(key)
            log.warning("the care-circle process placed a point of %s at %s, this process at %s: its new circles are "
                        "drawn here from now on", key, drawn.place and drawn.place[0], place.key[1:])
            return None
        if drawn.refusal is not None:
            raise drawn.refusal
        return drawn.body

    def _point_circles(self, key: str, *, lon: float, lat: float, coord_system: str, thresholds_min: tuple[float, ...],
                       as_json: bool) -> dict | bytes | None:
        region = self.regions.get(key)

        def fresh() -> dict | bytes:
            site = point_site(region, lon=lon, lat=lat, coord_system=coord_system)
            answer = self.regions.circles(region, site, thresholds_min=thresholds_min)
            return answer_json(answer) if as_json else answer

        place = self.point_circles.place(key, region, lon=lon, lat=lat, coord_system=coord_system)
        if place is None:
            return fresh()

        def build() -> dict | bytes:
            drawn = self._drawn_by_child(key, place, lon=lon, lat=lat, coord_system=coord_system, thresholds_min=thresholds_min)
            return drawn if drawn is not None else self._new_circles.submit(compute).result()

        def compute() -> dict:
            answer = None
            if place.key[1] >= 0 and not self.point_circles.should_confirm(place):
                answer = self.point_circles.compute(place, thresholds_min)
            if answer is None:
                try:
                    site = point_site(region, lon=lon, lat=lat, coord_system=coord_system)
                except InputError:  # placed, so point_site should take it: a mismatch, answered fresh (point_site says why)
                    site = None
                self.point_circles.confirm(place, site)
                answer = self.point_circles.compute(place, thresholds_min)
                if answer is None:  # no street within reach, thresholds out of range: refused as before
                    answer = self.regions.circles(region, site, thresholds_min=thresholds_min)
            return answer

        try:
            if as_json:
                return self.point_circles.answer_json(place, thresholds_min, build)
            return self.point_circles.answer(place, thresholds_min, build)
        except PlaceMismatch:  # never seen: the placing is point_site's and snap_to_network's own arithmetic
            return fresh()
