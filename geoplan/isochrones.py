"""Care circles: who a walk of 5, 10 and 15 minutes from a site reaches, and along which streets.

Given the demand (the region's population cells), a care circle means what the
coverage figures count. A populated cell lies inside the circle of a site and
threshold (its population point, the cell centre, is inside the polygon) if and
only if it is covered: its walking time from the site, taken from the same
:class:`~geoplan.reach.ReachMatrix` coverage uses (the walk along the streets
plus the walk from the home to its street), is within the threshold. So the
people inside a circle are the people counted as covered by that site. The
circle is

1. the squares of the covered cells, with the blocks they enclose filled when
   smaller than ``max_hole_m2`` (unpopulated yards, parks, ponds; uncovered
   cells in such a block stay out),
2. less a ``street_buffer_m`` strip along every street the walk does not reach
   in time (elevated roads, ramps, parallel roads reached only minutes later),
3. together with the streets the walk does reach in time (whole edges, and the
   partial edges at the frontier, with flat ends where the walk stops), each
   widened by ``street_buffer_m`` to either side. The street part is drawn from
   the streets, not from a hull of the reached nodes, which would paint over
   rivers, rail lines and walls; where a reached street runs beside an
   unreached one, the reached one wins.

Where a cut would take the centre of a covered cell, or a reached street passes
the centre of an uncovered cell, a disc of :data:`POINT_MARGIN_M` around that
centre keeps the rule exact (and survives the maps' 5 m simplification).

Without demand (network-only mode) a circle is an approximation: the reached
streets widened by ``home_buffer_m`` (homes that far from a reached street)
take the place of the covered cells in 1, and 2 and 3 follow. It cannot say
which people are covered, because coverage counts homes up to ``max_access_m``
from their street (on Wuchang's network a third of the 60+ live more than 60 m
from theirs); pass ``demand`` for circles that agree with the counts.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import ops

from geoplan.errors import InputError
from geoplan.network import WalkNetwork, routing_matrix
from geoplan.reach import ReachMatrix, travel_times
from geoplan.snapping import DEFAULT_MAX_ACCESS_M, snap_to_network

#: How far a street's strip extends to each side, in metres: reached streets are
#: painted this wide, unreached ones are cut this wide out of the circle. Thin, so
#: that the far carriageway of a dual road or an elevated road beside a reached
#: street is not painted with it; wide enough to survive the maps' 5 m simplification.
DEFAULT_STREET_BUFFER_M = 8.0
#: Network-only mode: how far from a reached street homes count as reached, in metres.
DEFAULT_HOME_BUFFER_M = 60.0
#: Enclosed blocks up to this size (m²) are filled; larger holes (lakes, parks) stay open.
DEFAULT_MAX_HOLE_M2 = 60_000.0
#: Radius (m) of the disc that keeps a covered cell's centre inside its circle and an
#: uncovered one's outside, where a street strip would decide otherwise.
POINT_MARGIN_M = 10.0

#: Cell squares and circles are snapped to this grid (m): neighbouring squares share
#: their edges exactly, and no sliver of a circle is thin enough to turn invalid in WGS84.
GRID_M = 0.01

_COLUMNS = ["site_id", "threshold_min", "area_km2", "geometry"]


def care_circles(
    network: WalkNetwork,
    sites: gpd.GeoDataFrame,
    *,
    demand: gpd.GeoDataFrame | None = None,
    reach: ReachMatrix | None = None,
    thresholds_min: tuple[float, ...] = (5, 10, 15),
    street_buffer_m: float = DEFAULT_STREET_BUFFER_M,
    home_buffer_m: float = DEFAULT_HOME_BUFFER_M,
    max_hole_m2: float = DEFAULT_MAX_HOLE_M2,
    max_access_m: float = DEFAULT_MAX_ACCESS_M,
) -> gpd.GeoDataFrame:
    """Care-circle polygons for every site and threshold (see the module docstring).

    Parameters
    ----------
    network
        The walk network.
    sites
        Site points indexed by ``site_id``.
    demand
        Population cells indexed by ``demand_id`` with the cell square in a
        ``cell`` column (as :func:`geoplan.demand.load_demand` and
        ``region.demand`` give). Without it, circles are network-only.
    reach
        The walking times coverage was computed from (``region.reach(sites)``),
        for ``demand`` and at least ``sites``, up to the largest threshold.
        Computed here from ``demand`` when not given.
    thresholds_min
        Walking times in minutes.
    street_buffer_m
        Half-width of a street's strip: painted along reached streets, cut
        along unreached ones.
    home_buffer_m
        Network-only mode: the reached streets are widened this far.
    max_hole_m2
        Enclosed blocks up to this area are filled.
    max_access_m
        Sites farther than this from a street get no circle (give the value
        ``reach`` was computed with).

    Returns
    -------
    GeoDataFrame with ``site_id``, ``threshold_min``, ``area_km2`` and the
    polygon, in the network's CRS, largest threshold first (so smaller circles
    draw on top).
    """
    if not thresholds_min or min(thresholds_min) <= 0:
        raise InputError(f"thresholds_min must be positive minutes, got {list(thresholds_min)}.")
    if not street_buffer_m > 0:
        raise InputError(f"street_buffer_m must be positive metres, got {street_buffer_m}.")
    thresholds = sorted(thresholds_min, reverse=True)
    if demand is None and reach is not None:
        raise InputError(
            "A reach matrix needs the demand it was computed for: "
            "care_circles(network, sites, demand=region.demand, reach=reach)."
        )
    snap = snap_to_network(network, sites, max_access_m=max_access_m)
    placed = snap[snap["edge_id"] >= 0]
    if demand is not None and reach is None:
        reach = travel_times(network, demand, sites, cutoff_s=thresholds[0] * 60, max_access_m=max_access_m)
    maker = CircleMaker(network, demand, street_buffer_m=street_buffer_m, home_buffer_m=home_buffer_m, max_hole_m2=max_hole_m2)
    return maker.circles(placed, reach, thresholds)


class CircleMaker:
    """A network, and its demand, prepared for the care circles of many sites: :func:`care_circles` without its set-up.

    Holds the tree of the streets and, with demand, the cell squares and
    population points in the network's CRS, their trees and the squares on the
    1 cm grid, so that each call costs only the walks and the polygons.
    ``care_circles(network, sites, demand=demand, reach=reach, thresholds_min=t,
    max_access_m=m)`` is ``CircleMaker(network, demand).circles(placed, reach, t)``
    with ``placed`` the rows of ``snap_to_network(network, sites,
    max_access_m=m)`` that found a street (the same polygons, to the bit). The
    network and demand must not change afterwards. Safe to share between threads.
    """

    def __init__(
        self,
        network: WalkNetwork,
        demand: gpd.GeoDataFrame | None = None,
        *,
        street_buffer_m: float = DEFAULT_STREET_BUFFER_M,
        home_buffer_m: float = DEFAULT_HOME_BUFFER_M,
        max_hole_m2: float = DEFAULT_MAX_HOLE_M2,
    ):
        if not street_buffer_m > 0:
            raise InputError(f"street_buffer_m must be positive metres, got {street_buffer_m}.")
        self.network = network
        self.street_buffer_m = street_buffer_m
        self.home_buffer_m = home_buffer_m
        self.max_hole_m2 = max_hole_m2
        self.homes = _HomeCells.build(network, demand) if demand is not None else None
        self.lines = network.edges.geometry.to_numpy()
        self.streets = shapely.STRtree(self.lines)

    def circles(self, placed: pd.DataFrame, reach: ReachMatrix | None, thresholds_min: tuple[float, ...]) -> gpd.GeoDataFrame:
        """Care-circle polygons of snapped sites, as :func:`care_circles` returns them.

        ``placed`` holds rows of :func:`~geoplan.snapping.snap_to_network`
        (each with a street) indexed by ``site_id``; ``reach`` their walking
        times (``None`` only without demand); ``thresholds_min`` positive minutes.
        """
        network = self.network
        street_buffer_m, home_buffer_m, max_hole_m2 = self.street_buffer_m, self.home_buffer_m, self.max_hole_m2
        thresholds = sorted(thresholds_min, reverse=True)
        homes = None
        if self.homes is not None:
            if reach is None:
                raise InputError("Care circles from demand need the sites' walking times: circles(placed, region.reach(sites), thresholds).")
            homes = self.homes.for_sites(reach, placed.index, thresholds)
        lines, streets = self.lines, self.streets

        def circle(site_id, place: pd.Series, times: np.ndarray, threshold: float) -> shapely.Geometry:
            whole, pieces = _reached(network, place, times, threshold_s=threshold * 60)
            if homes is not None:
                covered = homes.covered(site_id, threshold)
                body, holes = _filled(homes.cells_union(covered), max_hole_m2)
            else:
                body, holes = _filled(_widened(lines[whole], pieces, home_buffer_m), max_hole_m2)
            # the cut: every street within reach of the body not reached whole in time, widened like the strip (the strip
            # is drawn again on top, so a reached street wins where the two meet), and uncovered cells in filled blocks
            near = streets.query(body, predicate="dwithin", distance=street_buffer_m)
            unreached = shapely.line_merge(shapely.multilinestrings(lines[near[~whole[near]]]))
            cut = shapely.buffer(unreached, street_buffer_m, quad_segs=4)
            if homes is not None and len(holes):
                cut = shapely.union_all([cut, *homes.uncovered_cells(holes, covered)])
            drawn = lines[whole]
            if homes is None and home_buffer_m >= street_buffer_m:  # the body holds the strip: redraw it only where cut
                shapely.prepare(cut)
                drawn = drawn[shapely.dwithin(drawn, cut, street_buffer_m)]
            parts = [shapely.difference(body, cut), _widened(drawn, pieces, street_buffer_m)]
            if homes is not None:  # keep the rule exact: covered centres in, uncovered ones out
                parts.extend(homes.kept(covered, cut))
            area = shapely.union_all(parts)
            if homes is not None:
                area = homes.without_uncovered(area, covered)
            # on a 1 cm grid, slivers thinner than that are gone: the polygon stays valid once reprojected to WGS84
            area = shapely.set_precision(area, GRID_M)
            return shapely.Polygon() if area.is_empty else area

        def circles_of(site_id, place: pd.Series) -> list[dict]:
            times = node_times_from(network, place, cutoff_s=thresholds[0] * 60)
            rows = []
            for threshold in thresholds:
                polygon = circle(site_id, place, times, threshold)
                rows.append({"site_id": site_id, "threshold_min": threshold, "area_km2": polygon.area / 1e6, "geometry": polygon})
            return rows

        network.routing  # build the shared routing matrix before the threads need it
        if len(placed) == 1:  # one site: no threads to start
            rows = circles_of(placed.index[0], placed.iloc[0])
        else:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # GEOS and the kernel release the GIL
                rows = [row for site_rows in pool.map(circles_of, placed.index, (row for _, row in placed.iterrows())) for row in site_rows]
        if not rows:
            return gpd.GeoDataFrame(columns=_COLUMNS, geometry="geometry", crs=network.crs)
        return gpd.GeoDataFrame(rows, columns=_COLUMNS, geometry="geometry", crs=network.crs)


@dataclass(frozen=True)
class _HomeCells:
    """The demand cells in the network's CRS, prepared once: the squares as given and on the 1 cm grid, the centres, their trees."""

    given: np.ndarray  # cell squares, network CRS
    gridded: np.ndarray  # the same squares with their corners on the GRID_M grid
    points: np.ndarray  # population points (cell centres)
    tree: shapely.STRtree  # of the squares as given
    point_tree: shapely.STRtree  # of the points
    index: pd.Index  # demand ids, in the order of the arrays

    @classmethod
    def build(cls, network: WalkNetwork, demand: gpd.GeoDataFrame) -> "_HomeCells":
        if "cell" not in demand:
            raise InputError(
                "Care circles from demand need each cell's square in a 'cell' column, as load_demand "
                "and region.demand give; pass demand=region.demand, or no demand for network-only circles."
            )
        cells = gpd.GeoSeries(demand["cell"], crs=getattr(demand["cell"], "crs", None) or demand.crs)
        points = demand.geometry
        if cells.crs != network.crs:
            cells = cells.to_crs(network.crs)
        if points.crs != network.crs:
            points = points.to_crs(network.crs)
        given = cells.to_numpy()
        # neighbours' shared corners differ by rounding after reprojection: the squares a circle holds go on one grid
        gridded = shapely.transform(given, lambda xy: np.round(xy / GRID_M) * GRID_M)
        points = points.to_numpy()
        return cls(given, gridded, points, shapely.STRtree(given), shapely.STRtree(points), pd.Index(demand.index))

    def for_sites(self, reach: ReachMatrix, site_ids: pd.Index, thresholds) -> "_Homes":
        """Which cells the sites cover, per threshold, and the squares with those a circle may hold on the grid."""
        column_of = pd.Series(reach.site_ids.get_indexer(site_ids), index=site_ids)
        if (column_of < 0).any():
            missing = sorted(map(str, column_of.index[column_of < 0]))[:10]
            raise InputError(f"The reach matrix has no walking times for sites {missing}; compute it for these sites (region.reach(sites)).")
        row_of = self.index.get_indexer(reach.demand_ids)
        within = {t: reach.within(t * 60).tocsc() for t in set(thresholds)}
        used = row_of[np.unique(within[max(thresholds)][:, column_of.to_numpy()].indices)]
        used = used[used >= 0]
        cells = self.given.copy()
        cells[used] = self.gridded[used]  # the grid only for the cells a circle may hold (others keep their corners)
        return _Homes(cells, self.points, self.tree, self.point_tree, within, row_of, column_of)


@dataclass(frozen=True)
class _Homes:
    """The demand cells and, per site and threshold, which of them are covered."""

    cells: np.ndarray  # cell squares, network CRS (on the grid where a circle may hold them)
    points: np.ndarray  # population points (cell centres)
    tree: shapely.STRtree  # of the cells as given
    point_tree: shapely.STRtree  # of the points
    within: dict  # threshold_min -> CSC 0/1 matrix, demand row x reach column
    row_of: np.ndarray  # reach row -> demand position (-1: not in the demand)
    column_of: pd.Series  # site_id -> reach column

    def covered(self, site_id, threshold_min: float) -> np.ndarray:
        """Demand positions of the cells ``site_id`` covers within ``threshold_min``."""
        matrix, column = self.within[threshold_min], self.column_of[site_id]
        rows = self.row_of[matrix.indices[matrix.indptr[column]:matrix.indptr[column + 1]]]
        return rows[rows >= 0]

    def cells_union(self, rows: np.ndarray) -> shapely.Geometry:
        """The union of the squares of the cells at ``rows``."""
        if not len(rows):
            return shapely.Polygon()
        union = shapely.coverage_union_all(self.cells[rows])  # squares on a 1 cm grid share their edges exactly
        return union if union.is_valid else shapely.union_all(self.cells[rows])

    def uncovered_cells(self, areas: np.ndarray, covered: np.ndarray) -> np.ndarray:
        """The squares of the cells that meet ``areas`` and are not ``covered``."""
        near = np.unique(self.tree.query(areas, predicate="intersects")[1])
        return self.cells[near[~np.isin(near, covered)]]

    def kept(self, covered: np.ndarray, cut: shapely.Geometry) -> np.ndarray:
        """Discs of :data:`POINT_MARGIN_M` around the covered centres that ``cut`` comes near.

        Only a cut can take a covered centre: its own square is in the circle otherwise.
        """
        shapely.prepare(cut)
        hit = covered[shapely.dwithin(cut, self.points[covered], POINT_MARGIN_M)]
        return shapely.buffer(self.points[hit], POINT_MARGIN_M, quad_segs=4)

    def without_uncovered(self, area: shapely.Geometry, covered: np.ndarray) -> shapely.Geometry:
        """``area`` less a disc of :data:`POINT_MARGIN_M` around every uncovered centre it comes near."""
        near = self.point_tree.query(area, predicate="dwithin", distance=POINT_MARGIN_M)
        near = near[~np.isin(near, covered)]
        if not len(near):
            return area
        return shapely.difference(area, shapely.union_all(shapely.buffer(self.points[near], POINT_MARGIN_M, quad_segs=4)))


def node_times_from(network: WalkNetwork, place: pd.Series, *, cutoff_s: float) -> np.ndarray:
    """Walking time from a snapped place (a row of :func:`snap_to_network`) to every node; inf beyond ``cutoff_s``."""
    from geoplan._dijkstra import node_times

    graph, node_index = routing_matrix(network)
    edge = network.edges.loc[int(place["edge_id"])]
    along = edge["travel_time_s"] * place["position_m"] / max(edge["length_m"], 1e-12)
    access = place["access_m"] / network.walk_speed_mps
    return node_times(
        graph.indptr, graph.indices, graph.data,
        node_index.get_loc(edge["u"]), along + access,
        node_index.get_loc(edge["v"]), edge["travel_time_s"] - along + access,
        float(cutoff_s),
    )


def reached_streets(
    network: WalkNetwork, place: pd.Series, times: np.ndarray, *, threshold_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """The streets a walk from ``place`` reaches within ``threshold_s``.

    Returns the LineStrings of whole reached edges, and those of the partial
    edges where the walk ends (at the frontier, or on the site's own street).
    """
    whole, pieces = _reached(network, place, times, threshold_s=threshold_s)
    return network.edges.geometry.to_numpy()[whole], pieces


def _reached(network: WalkNetwork, place: pd.Series, times: np.ndarray, *, threshold_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Which edges are reached whole (a mask), and the LineStrings of the reached parts of the others."""
    edges = network.edges
    end_u, end_v = network.edge_ends
    edge_time = np.maximum(edges["travel_time_s"].to_numpy(), 1e-12)
    from_u = np.clip((threshold_s - times[end_u]) / edge_time, 0, 1)
    from_v = np.clip((threshold_s - times[end_v]) / edge_time, 0, 1)
    lines = edges.geometry.to_numpy()
    whole = from_u + from_v >= 1
    pieces = []
    for i in np.flatnonzero(~whole & ((from_u > 0) | (from_v > 0))):
        if from_u[i] > 0:
            pieces.append(ops.substring(lines[i], 0.0, from_u[i], normalized=True))
        if from_v[i] > 0:
            pieces.append(ops.substring(lines[i], 1.0 - from_v[i], 1.0, normalized=True))
    # the site's own street: it can walk both ways from where it stands
    own = edges.index.get_loc(int(place["edge_id"]))
    left = threshold_s - place["access_m"] / network.walk_speed_mps
    if left > 0 and not whole[own]:
        reach_m = left * network.walk_speed_mps
        start = max(0.0, place["position_m"] - reach_m)
        end = min(edges["length_m"].iloc[own], place["position_m"] + reach_m)
        pieces.append(ops.substring(lines[own], start, end))
    return whole, np.asarray(pieces, dtype=object)


def _widened(whole: np.ndarray, partial: np.ndarray, width_m: float) -> shapely.Geometry:
    """Reached streets widened by ``width_m`` each side; a partial street gets flat ends, so it stops where the walk does."""
    runs = shapely.get_parts(shapely.line_merge(shapely.multilinestrings(whole))) if len(whole) else whole
    return shapely.union_all(
        [
            *shapely.buffer(runs, width_m, quad_segs=4),  # runs of whole streets: fewer, longer pieces to union
            *shapely.buffer(partial, width_m, quad_segs=4, cap_style="flat"),
        ]
    )


def fill_small_holes(area: shapely.Geometry, max_hole_m2: float) -> shapely.Geometry:
    """``area`` with every interior ring smaller than ``max_hole_m2`` filled in."""
    return _filled(area, max_hole_m2)[0]


def _filled(area: shapely.Geometry, max_hole_m2: float) -> tuple[shapely.Geometry, np.ndarray]:
    """``area`` with its interior rings up to ``max_hole_m2`` filled, and those holes as polygons."""
    parts, holes = [], []
    for polygon in shapely.get_parts(area):
        if not isinstance(polygon, shapely.Polygon):
            continue
        inner = [shapely.Polygon(ring) for ring in polygon.interiors]
        small = [hole.area <= max_hole_m2 for hole in inner]
        if any(small):
            polygon = shapely.Polygon(polygon.exterior, [hole.exterior for hole, fill in zip(inner, small) if not fill])
            holes.extend(hole for hole, fill in zip(inner, small) if fill)
        parts.append(polygon)
    if not holes:
        return area, np.empty(0, dtype=object)
    # a part may lie on an island in another's hole: once that hole is filled the two overlap
    return shapely.union_all(parts), np.asarray(holes, dtype=object)
