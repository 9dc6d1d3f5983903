"""A coverage report prepared for fast queries: gap cells per group, threshold and bounding box.

A region's cells are serialised once (:class:`CellTable`: WGS84 GeoJSON with
their people); the index of a coverage report, the region's or a scenario's,
then only writes each cell's walk to the nearest site into it (some 10 ms for
Wuchang's 7,909 cells). A query is a few numpy masks over the cells and a join
of ready-made feature strings, with no pandas, no shapely and no JSON encoding
on the request path.

:class:`PointCircles` keeps the care circles of points the same way: a point's
circles depend only on where it meets the streets (the edge, the position along
it and the walk to it, as :func:`geoplan.snapping.snap_to_network` finds them),
so they are computed once per such place and thresholds, and a repeated query
only places the point (a few tens of microseconds) and finds the kept answer.
A new place is computed from the region's prepared router and a prepared
:class:`~geoplan.isochrones.CircleMaker` (no tree or snapping rebuilt per
request): the steps of ``RegionService.circles``, on the same data.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import threading
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyproj
import shapely

from geoplan.analysis import CoverageReport
from geoplan.coords import normalize_coord_system, to_wgs84
from geoplan.errors import InputError
from geoplan.isochrones import CircleMaker
from geoplan.reach import within_time
from geoplan.snapping import snap_to_network

from api.services.geojson import feature_collection, geometry_json, plain
from api.services.memo import Memo

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GapQuery:
    group: str
    threshold_min: float
    bbox: tuple[float, float, float, float] | None
    limit: int
    min_people: float = 0.0


@dataclasses.dataclass(frozen=True)
class CellTable:
    """A region's demand cells ready to send: what does not depend on its facilities, built once per region.

    Each cell's feature is kept as the bytes before and after its walk to the
    nearest site, so the coverage of a scenario only writes that number.
    """

    demand: pd.DataFrame
    groups: tuple[str, ...]
    people: dict[str, np.ndarray]
    order: dict[str, np.ndarray]
    bounds: np.ndarray
    heads: list[bytes]
    tails: list[bytes]

    @classmethod
    def of(cls, demand: pd.DataFrame, groups) -> "CellTable":
        groups = tuple(groups)
        cells = demand["cell"] if "cell" in demand else demand.geometry
        cells = cells.set_crs(demand.crs, allow_override=True).to_crs(4326) if hasattr(cells, "to_crs") else cells
        geoms = cells.to_numpy()
        geometry = geometry_json(geoms)
        on_foot = demand["edge_id"].to_numpy() >= 0 if "edge_id" in demand else np.ones(len(demand), bool)
        unit = demand["unit_id"].to_numpy() if "unit_id" in demand else np.full(len(demand), -1)
        people = {g: demand[g].to_numpy(dtype=float) for g in groups}
        heads, tails = [], []
        for i, demand_id in enumerate(demand.index):
            props = {"demand_id": plain(demand_id), "unit_id": plain(unit[i]) if unit[i] >= 0 else None}
            props.update({g: round(float(people[g][i]), 2) for g in groups})
            # the properties as json.dumps writes them, up to the walk: "nearest_time_min" then "on_foot" follow
            heads.append(f'{{"type":"Feature","geometry":{geometry[i]},"properties":{json.dumps(props, ensure_ascii=False)[:-1]}, '
                         f'"nearest_time_min": '.encode())
            tails.append(f', "on_foot": {"true" if on_foot[i] else "false"}}}}}'.encode())
        return cls(
            demand=demand, groups=groups, people=people, order={g: np.argsort(-people[g], kind="stable") for g in groups},
            bounds=shapely.bounds(geoms), heads=heads, tails=tails,
        )

    def serves(self, demand: pd.DataFrame, groups) -> bool:
        """Whether this table was built from ``demand`` itself (not a copy that may differ) and ``groups``."""
        return self.demand is demand and self.groups == tuple(groups)

    def features(self, nearest_s: np.ndarray) -> np.ndarray:
        """Every cell's GeoJSON feature, with its walk to the nearest site (minutes, 2 decimals; null if none)."""
        finite = np.isfinite(nearest_s).tolist()
        out = np.empty(len(nearest_s), dtype=object)
        out[:] = [h + (repr(round(s / 60, 2)).encode() if ok else b"null") + t  # as json.dumps writes it
                  for h, s, ok, t in zip(self.heads, nearest_s.tolist(), finite, self.tails)]
        return out


@dataclasses.dataclass(frozen=True)
class CoverageIndex:
    """One coverage report with its cells ready to be filtered and sent."""

    report: CoverageReport
    groups: tuple[str, ...]
    thresholds_min: tuple[float, ...]
    cutoff_min: float
    nearest_s: np.ndarray
    people: dict[str, np.ndarray]
    order: dict[str, np.ndarray]
    bounds: np.ndarray
    features: np.ndarray
    summary_rows: tuple[dict, ...]
    _uncovered: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, report: CoverageReport, cells: CellTable | None = None) -> "CoverageIndex":
        """The index of ``report``; ``cells``, the region's :class:`CellTable`, is used when it was built from the same demand."""
        region = report.region
        demand = region.demand
        groups = tuple(region.groups)
        if cells is None or not cells.serves(demand, groups):
            cells = CellTable.of(demand, groups)
        nearest = report.nearest_time_s.reindex(demand.index).to_numpy(dtype=float)
        summary = report.summary.reset_index()
        rows = tuple({k: plain(v) for k, v in r.items()} for r in summary.to_dict(orient="records"))
        return cls(
            report=report,
            groups=groups,
            thresholds_min=tuple(float(t) for t in report.summary.index.get_level_values("threshold_min").unique()),
            cutoff_min=float(report.reach.cutoff_s) / 60,
            nearest_s=nearest,
            people=cells.people,
            order=cells.order,
            bounds=cells.bounds,
            features=cells.features(nearest),
            summary_rows=rows,
        )

    def check(self, *, group: str | None = None, threshold_min: float | None = None) -> None:
        """An InputError that says what to ask instead, for a group or threshold this index cannot answer."""
        if group is not None and group not in self.groups:
            raise InputError(f"Unknown population group {group!r}; use one of {', '.join(self.groups)}.")
        if threshold_min is not None and not (threshold_min > 0 and within_time(threshold_min * 60, self.cutoff_min * 60)):
            raise InputError(
                f"threshold_min must be more than 0 and at most {self.cutoff_min:g} minutes "
                f"(walks are computed up to {self.cutoff_min:g}); got {threshold_min:g}."
            )

    def summary(self, *, group: str | None = None, threshold_min: float | None = None) -> list[dict]:
        self.check(group=group, threshold_min=threshold_min)
        rows = self.summary_rows
        if group is not None:
            rows = tuple(r for r in rows if r["group"] == group)
        if threshold_min is not None:
            if threshold_min in self.thresholds_min:
                rows = tuple(r for r in rows if r["threshold_min"] == threshold_min)
            else:
                rows = tuple(self._summary_at(g, threshold_min) for g in ([group] if group else self.groups))
        return list(rows)

    def _summary_at(self, group: str, threshold_min: float) -> dict:
        people = self.people[group]
        total = float(people.sum())
        covered = float(people[within_time(self.nearest_s, threshold_min * 60)].sum())
        unreachable = next((r["not_reachable_on_foot"] for r in self.summary_rows if r["group"] == group), None)
        label = next((r["label"] for r in self.summary_rows if r["group"] == group), group)
        return {
            "group": group, "threshold_min": threshold_min, "label": label, "population": round(total, 4),
            "covered": round(covered, 4), "not_covered": round(total - covered, 4),
            "covered_pct": round(100 * covered / total, 4) if total else None, "not_reachable_on_foot": unreachable,
        }

    def uncovered(self, group: str, threshold_min: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the cells with people of ``group`` beyond ``threshold_min``, most people first, and their bounds.

        Kept per (group, threshold), so a query only filters these by bbox.
        """
        key = (group, float(threshold_min))
        found = self._uncovered.get(key)
        if found is None:
            people = self.people[group]
            order = self.order[group]
            mask = ~within_time(self.nearest_s, threshold_min * 60) & (people > 0)
            chosen = order[mask[order]]
            found = (chosen, np.ascontiguousarray(self.bounds[chosen]))
            if len(self._uncovered) < 64:
                self._uncovered[key] = found
        return found

    def gaps(self, query: GapQuery) -> tuple[bytes, int, int, float]:
        """GeoJSON features of the uncovered cells (most people of ``group`` first).

        Returns the joined features, how many cells match, how many were
        returned (at most ``limit``) and the ``group`` people in all matching cells.
        """
        self.check(group=query.group, threshold_min=query.threshold_min)
        people = self.people[query.group]
        chosen, bounds = self.uncovered(query.group, query.threshold_min)
        keep = None
        if query.min_people > 0:
            keep = people[chosen] > query.min_people
        if query.bbox is not None:
            minx, miny, maxx, maxy = query.bbox
            inside = (bounds[:, 2] >= minx) & (bounds[:, 0] <= maxx) & (bounds[:, 3] >= miny) & (bounds[:, 1] <= maxy)
            keep = inside if keep is None else keep & inside
        if keep is not None:
            chosen = chosen[keep]
        total = len(chosen)
        uncovered = float(people[chosen].sum())
        chosen = chosen[: query.limit]
        return b",".join(self.features[chosen]), total, len(chosen), uncovered


# care circles of points ------------------------------------------------------------------------------

#: Point care circles kept by default (``PointCircles(maxsize=...)``). An answer is kept as its
#: compressed JSON: about 3 kB at Wuchang's 5/10/15 minutes (11 kB of JSON; at most 24 kB seen,
#: 44 kB with six thresholds), so the default holds some 12 MB, and under 50 MB at worst.
DEFAULT_POINT_CIRCLE_CACHE_SIZE = 4096
#: The placing of a point is checked against point_site and snap_to_network for the first
#: computed answers of each loaded region, then for one in CONFIRM_EVERY.
CONFIRM_FIRST, CONFIRM_EVERY = 32, 64
#: Of those, the most recently used answers also kept decoded, and shared by their callers: a
#: request then allocates no answer of its own (1.5 times the requests per second of decoding each
#: time, at 50 clients). About 70 kB each (a decoded answer takes some 6 times its JSON).
DEFAULT_POINT_CIRCLE_HOT_SIZE = 256


@dataclasses.dataclass(frozen=True)
class PointPlace:
    """Where a point meets a loaded region's streets.

    ``key`` is all the point's care circles depend on: ``(generation, edge_id,
    position_m, access_m)``, or ``(generation, -1)`` with no street within the
    region's ``max_access_m``. Not a network node: the position along the edge
    and the walk to it shape the circle (two points near the same junction
    have different circles). ``generation`` names the loaded region, so a
    region loaded anew never shares answers with the old one. ``xy`` is the
    point in the region's CRS (only to confirm the placing, never in the key).
    """

    key: tuple
    xy: tuple[float, float]
    on_street: tuple[float, float] | None = None  # the snapped position (snap_x, snap_y)

    @property
    def spot(self) -> tuple:
        """The place without the loaded region's generation: what another process placing the point finds as well."""
        return self.key[1:], self.xy, self.on_street


class PlaceMismatch(Exception):
    """The fast placing of a point disagrees with ``point_site`` and ``snap_to_network`` (answer it uncached)."""


class _Placer:
    """One loaded region, prepared for the care circles of points.

    :meth:`place` is ``point_site`` and ``snap_to_network`` for one point with
    their set-up done once: the same calls on the same data (the WGS84 point
    reprojected as geopandas does, its distance to the region, the nearest
    street within ``max_access_m`` from a tree of the same lines), so the same
    floats; :meth:`confirm` checks that against the real functions (for the
    first computed answers, then one in ``CONFIRM_EVERY``). :meth:`circles` is
    ``RegionService.circles`` for a placed point, from the snap already found
    and a prepared :class:`~geoplan.isochrones.CircleMaker`.
    """

    def __init__(self, region, generation: int):
        network = region.network
        self.region = region
        self.generation = generation
        self.max_access_m = region.config.analysis.max_access_m
        self.area = shapely.union_all(region.boundary.geometry.to_numpy())
        self.transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(4326), pyproj.CRS.from_user_input(region.crs),
                                                       always_xy=True)
        self.lines = network.edges.geometry.to_numpy()
        self.edge_ids = network.edges.index.to_numpy()
        self.tree = shapely.STRtree(self.lines)
        if len(self.lines):  # the tree is complete before threads share it
            self.tree.query_nearest(shapely.get_point(self.lines[:1], 0))
        self.disabled = False
        self.computed = 0
        self.maker = CircleMaker(network, region.demand)  # care_circles' defaults, as RegionService.circles uses them
        self._people_of: tuple | None = None

    def place(self, lon: float, lat: float, coord_system: str) -> PointPlace | None:
        """The point's place, or None when it lies too far outside the region (``point_site`` says so, and why)."""
        system = normalize_coord_system(coord_system)  # an unknown system: the same InputError as point_site's
        x, y = to_wgs84(np.array([lon]), np.array([lat]), system)
        px, py = self.transformer.transform(x, y)
        point = shapely.points(np.asarray(px, dtype=float), np.asarray(py, dtype=float))
        if self.disabled or not float(shapely.distance(point[0], self.area)) <= self.max_access_m:
            return None
        xy = (float(shapely.get_x(point[0])), float(shapely.get_y(point[0])))
        found, edge = self.tree.query_nearest(point, max_distance=self.max_access_m, all_matches=False)
        if not len(found):
            return PointPlace((self.generation, -1), xy)
        lines = self.lines[edge]
        position = shapely.line_locate_point(lines, point)
        on_line = shapely.get_coordinates(shapely.line_interpolate_point(lines, position))
        access = shapely.distance(point, shapely.points(on_line))
        return PointPlace((self.generation, int(self.edge_ids[edge[0]]), float(position[0]), float(access[0])), xy,
                          (float(on_line[0, 0]), float(on_line[0, 1])))

    def circles(self, place: PointPlace, thresholds_min: tuple[float, ...]) -> dict | None:
        """``RegionService.circles(region, point_site(...), thresholds_min=...)`` for a point on a street, from the
        snap already found; None where that path is to be taken instead (no street near, thresholds out of range)."""
        region = self.region
        top = max(region.thresholds_min)
        if place.key[1] < 0 or place.on_street is None or not all(0 < t <= top for t in thresholds_min):
            return None  # RegionService.circles refuses these, in its own words
        _, edge_id, position, access = place.key
        # snap_to_network's frame for point_site's one-row site frame
        snap = pd.DataFrame(
            {"edge_id": np.array([edge_id], dtype=np.int64), "position_m": [position], "access_m": [access],
             "snap_x": [place.on_street[0]], "snap_y": [place.on_street[1]]},
            index=pd.Index(["point"], name="site_id"),
        )
        reach = region.reach(snap, cutoff_min=max(thresholds_min))  # the router takes a snapped frame as it is
        circles = self.maker.circles(snap, reach, sorted(tuple(sorted(set(thresholds_min))), reverse=True))
        if circles.empty:
            return None
        # catchments(region.demand, reach, threshold_min=t).loc[site_id, group], from the people matrix made once
        groups = region.groups
        matrix = self._people(reach.demand_ids, groups)
        within = {t: reach.within(t * 60).T @ matrix for t in set(circles["threshold_min"])}
        column = {g: j for j, g in enumerate(groups)}
        row_of = reach.site_ids.get_indexer(circles["site_id"])
        people = [
            {g: round(float(within[row.threshold_min][row_of[i], column[g]]), 2) for g in groups}
            for i, row in enumerate(circles.itertuples())
        ]
        circles = circles.assign(people=people)
        return feature_collection(circles, properties=["site_id", "threshold_min", "area_km2", "people"], extra={"region": region.key})

    def _people(self, demand_ids: pd.Index, groups: list[str]) -> np.ndarray:
        """``demand.loc[demand_ids, groups].to_numpy()`` as catchments makes it, kept for the router's demand ids."""
        kept = self._people_of
        if kept is not None and kept[0] is demand_ids and kept[1] == groups:
            return kept[2]
        people = self.region.demand.loc[demand_ids, groups].to_numpy()
        self._people_of = (demand_ids, list(groups), people)
        return people

    def should_confirm(self) -> bool:
        self.computed += 1
        return self.computed <= CONFIRM_FIRST or self.computed % CONFIRM_EVERY == 0

    def confirm(self, place: PointPlace, site) -> None:
        """Raise :class:`PlaceMismatch` (and place no more points) unless ``site``, ``point_site``'s (None: it
        refused the point), is at ``place``."""
        found, xy, on_street = None, None, None
        if site is not None:
            row = snap_to_network(self.region.network, site, max_access_m=self.max_access_m).iloc[0]
            found = (self.generation, -1) if row["edge_id"] < 0 else (
                self.generation, int(row["edge_id"]), float(row["position_m"]), float(row["access_m"]))
            on_street = None if row["edge_id"] < 0 else (float(row["snap_x"]), float(row["snap_y"]))
            xy = (float(site.geometry.iloc[0].x), float(site.geometry.iloc[0].y))
        if found != place.key or xy != place.xy or on_street != place.on_street:
            self.disabled = True
            log.warning("care circles of points in %s are no longer cached: a point placed at %s is at %s", self.region.key,
                        place.key[1:], found and found[1:])
            raise PlaceMismatch(place.key)


class _Kept:
    """A kept answer as its compressed JSON, in about 1/30 of the decoded answer's memory.

    JSON gives back exactly what it was given here (str keys; str, int, float, None and lists),
    floats to the bit; an answer it cannot hold (no such answer is known) is kept as it is.
    """

    __slots__ = ("blob", "answer")

    def __init__(self, answer: dict | bytes):
        """``answer``: the answer, or its JSON as :func:`answer_json` writes it."""
        try:
            self.blob, self.answer = zlib.compress(answer if isinstance(answer, bytes) else answer_json(answer)), None
        except (TypeError, ValueError):
            self.blob, self.answer = None, answer

    def value(self) -> dict:
        return self.answer if self.blob is None else json.loads(zlib.decompress(self.blob))

    def body(self) -> bytes | None:
        """The answer as JSON (:func:`answer_json`), or None for one JSON cannot hold."""
        return None if self.blob is None else zlib.decompress(self.blob)


def answer_json(answer: dict) -> bytes:
    """A care-circle answer as the service sends it: compact UTF-8 JSON (ValueError for NaN, TypeError for non-JSON values)."""
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class _Refused:
    """A kept refusal (InputError): raised anew, as a copy, for every caller."""

    __slots__ = ("error",)

    def __init__(self, error: InputError):
        self.error = error.with_traceback(None)
        self.error.__context__ = self.error.__cause__ = None

    def value(self) -> dict:
        raise copy.copy(self.error)

    def body(self) -> bytes:
        raise copy.copy(self.error)


def _answer_key(place: PointPlace, thresholds_min: tuple[float, ...]) -> tuple:
    # the thresholds as given, types too: (5,) and (5.0,) answer 5 and 5.0
    return place.key, tuple((type(t), t) for t in thresholds_min)


class PointCircles:
    """Care circles of points, kept per place on the streets and thresholds: bounded (least recently used
    dropped beyond ``maxsize``; 0 keeps nothing) and thread-safe (each answer computed once, however many
    requests ask for it at the same time).

    A point's circles depend only on its :class:`PointPlace` (see there) and the thresholds as given, so a
    kept answer is exactly the one computed fresh; refusals (``InputError``: no street within reach, a
    threshold out of range) are kept the same way. Answers are kept compressed; the ``hot_size`` most
    recently used are also kept decoded and shared, like RegionService's site circles: a caller must not
    change an answer. ``builds`` and ``hits`` count computed and kept answers.
    """

    def __init__(self, maxsize: int = DEFAULT_POINT_CIRCLE_CACHE_SIZE, *, hot_size: int = DEFAULT_POINT_CIRCLE_HOT_SIZE):
        for name, value in (("maxsize", maxsize), ("hot_size", hot_size)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of answers, 0 or more; got {value!r}.")
        self.maxsize = maxsize
        self.hot_size = min(hot_size, maxsize)
        self._answers: Memo[_Kept | _Refused] = Memo(maxsize=maxsize)
        self._hot: Memo[dict] = Memo(maxsize=self.hot_size)
        self._placers: dict[str, _Placer] = {}
        self._generations = itertools.count()
        self._lock = threading.Lock()
        self.builds = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._answers)

    def info(self) -> dict:
        return {"size": len(self), "maxsize": self.maxsize, "hot": len(self._hot), "hot_size": self.hot_size,
                "builds": self.builds, "hits": self.hits}

    def place(self, key: str, region, *, lon: float, lat: float, coord_system: str, prepare: bool = True) -> PointPlace | None:
        """The point's place in ``region`` (loaded as ``key``); None when it is not to be cached (outside the region, or no
        cache), or, with ``prepare=False``, when the region's placer is not built yet (it is not built here then)."""
        if self.maxsize == 0:
            return None
        placer = self._placer(key, region) if prepare else self._built_placer(key, region)
        return None if placer is None else placer.place(lon, lat, coord_system)

    def _placer_of(self, place: PointPlace) -> _Placer | None:
        with self._lock:
            return next((p for p in self._placers.values() if p.generation == place.key[0]), None)

    def should_confirm(self, place: PointPlace) -> bool:
        """Whether to check this computed answer's place against point_site and snap_to_network (see CONFIRM_FIRST)."""
        placer = self._placer_of(place)
        return placer is not None and placer.should_confirm()

    def confirm(self, place: PointPlace, site) -> None:
        """Raise PlaceMismatch (and cache no more) unless ``site``, point_site's (None: it refused the point), is at ``place``."""
        placer = self._placer_of(place)
        if placer is not None:
            placer.confirm(place, site)

    def compute(self, place: PointPlace, thresholds_min: tuple[float, ...]) -> dict | None:
        """The answer from the prepared router and circle maker (see _Placer.circles); None: take RegionService.circles."""
        placer = self._placer_of(place)
        return None if placer is None else placer.circles(place, thresholds_min)

    def kept_json(self, place: PointPlace, thresholds_min: tuple[float, ...]) -> bytes | None:
        """The kept answer as JSON (:func:`answer_json`) without computing anything: None if there is none.

        A kept refusal is raised (a copy of its InputError).
        """
        kept = self._answers.peek(_answer_key(place, thresholds_min))
        if kept is None or (isinstance(kept, _Kept) and kept.blob is None):
            return None
        self._count_hit()
        return kept.body()

    def answer_json(self, place: PointPlace, thresholds_min: tuple[float, ...], build: Callable[[], dict | bytes]) -> bytes | None:
        """:meth:`answer` as JSON (:func:`answer_json`), as kept: never decoded. None for an answer JSON cannot hold."""
        return self._kept(_answer_key(place, thresholds_min), build).body()  # a refusal raises here

    def answer(self, place: PointPlace, thresholds_min: tuple[float, ...], build: Callable[[], dict | bytes]) -> dict:
        """The kept answer for ``place`` and ``thresholds_min``, or ``build()``'s (kept, unless it raises other than InputError).

        ``build`` gives the answer, or its JSON (:func:`answer_json`).
        """
        key = _answer_key(place, thresholds_min)
        hot = self._hot.peek(key)
        if hot is not None:
            self._count_hit()
            return hot
        answer = self._kept(key, build).value()  # a refusal raises here
        if self.hot_size:
            self._hot.put(key, answer)
        return answer

    def _kept(self, key: tuple, build: Callable[[], dict | bytes]) -> _Kept | _Refused:
        kept = self._answers.peek(key)
        if kept is not None:
            self._count_hit()
            return kept
        built = False

        def compute() -> _Kept | _Refused:
            nonlocal built
            built = True
            with self._lock:
                self.builds += 1
            try:
                return _Kept(build())
            except InputError as exc:
                return _Refused(exc)

        kept = self._answers.get(key, compute)
        if not built:  # another request computed it meanwhile
            self._count_hit()
        return kept

    def _count_hit(self) -> None:
        with self._lock:
            self.hits += 1

    def _built_placer(self, key: str, region) -> _Placer | None:
        with self._lock:
            placer = self._placers.get(key)
        return placer if placer is not None and placer.region is region else None

    def _placer(self, key: str, region) -> _Placer:
        placer = self._built_placer(key, region)
        if placer is not None:
            return placer
        fresh = _Placer(region, next(self._generations))  # some 60 ms (its circle maker), outside the lock
        with self._lock:
            placer = self._placers.get(key)
            if placer is not None and placer.region is region:
                return placer
            self._placers[key] = fresh
        if placer is not None:  # the region was loaded anew: the old one's answers can go
            for kept in (self._answers, self._hot):
                kept.discard(lambda k: k[0][0] == placer.generation)
        return fresh
