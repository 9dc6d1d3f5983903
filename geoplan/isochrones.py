"""Care circles: network isochrones of 5, 10 and 15 minutes around a site.

A circle is drawn from the streets a walk can reach, not from a hull of the
nodes it reaches (a hull paints over rivers, rail lines and walls). The reached
part of every street (whole edges, and the partial edges at the frontier) is
widened by ``street_buffer_m`` on each side, the walk from a home to its street,
and the blocks enclosed by reached streets are filled when smaller than
``max_hole_m2``: people inside such a block live on reached streets too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import ops

from geoplan.errors import InputError
from geoplan.network import WalkNetwork, routing_matrix
from geoplan.snapping import DEFAULT_MAX_ACCESS_M, snap_to_network

#: How far a reached street's care circle extends to each side, in metres.
DEFAULT_STREET_BUFFER_M = 60.0
#: Enclosed blocks up to this size (m²) count as reached; larger holes (lakes, parks) stay open.
DEFAULT_MAX_HOLE_M2 = 60_000.0


def care_circles(
    network: WalkNetwork,
    sites: gpd.GeoDataFrame,
    *,
    thresholds_min: tuple[float, ...] = (5, 10, 15),
    street_buffer_m: float = DEFAULT_STREET_BUFFER_M,
    max_hole_m2: float = DEFAULT_MAX_HOLE_M2,
    max_access_m: float = DEFAULT_MAX_ACCESS_M,
) -> gpd.GeoDataFrame:
    """Isochrone polygons for every site and threshold.

    Returns a GeoDataFrame with ``site_id``, ``threshold_min``, ``area_km2`` and
    the polygon, in the network's CRS, largest threshold first (so smaller
    circles draw on top). Sites farther than ``max_access_m`` from a street get
    no circle.
    """
    if not thresholds_min or min(thresholds_min) <= 0:
        raise InputError(f"thresholds_min must be positive minutes, got {list(thresholds_min)}.")
    snap = snap_to_network(network, sites, max_access_m=max_access_m)

    def circles_of(item: tuple) -> list[dict]:
        site_id, place = item
        times = node_times_from(network, place, cutoff_s=max(thresholds_min) * 60)
        rows = []
        for threshold in sorted(thresholds_min, reverse=True):
            polygon = isochrone_polygon(
                network, place, times, threshold_s=threshold * 60,
                street_buffer_m=street_buffer_m, max_hole_m2=max_hole_m2,
            )
            rows.append({"site_id": site_id, "threshold_min": threshold, "area_km2": polygon.area / 1e6, "geometry": polygon})
        return rows

    network.routing  # build the shared routing matrix before the threads need it
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # GEOS and the kernel release the GIL
        rows = [row for site_rows in pool.map(circles_of, snap[snap["edge_id"] >= 0].iterrows()) for row in site_rows]
    if not rows:
        return gpd.GeoDataFrame(columns=["site_id", "threshold_min", "area_km2", "geometry"], geometry="geometry", crs=network.crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=network.crs)


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
    edges = network.edges
    end_u, end_v = network.edge_ends
    time_u, time_v = times[end_u], times[end_v]
    edge_time = np.maximum(edges["travel_time_s"].to_numpy(), 1e-12)
    from_u = np.clip((threshold_s - time_u) / edge_time, 0, 1)
    from_v = np.clip((threshold_s - time_v) / edge_time, 0, 1)
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
    if left > 0:
        reach_m = left * network.walk_speed_mps
        start = max(0.0, place["position_m"] - reach_m)
        end = min(edges["length_m"].iloc[own], place["position_m"] + reach_m)
        pieces.append(ops.substring(lines[own], start, end))
    return lines[whole], np.asarray(pieces, dtype=object)


def isochrone_polygon(
    network: WalkNetwork,
    place: pd.Series,
    times: np.ndarray,
    *,
    threshold_s: float,
    street_buffer_m: float = DEFAULT_STREET_BUFFER_M,
    max_hole_m2: float = DEFAULT_MAX_HOLE_M2,
) -> shapely.Geometry:
    """The care circle of one place and threshold (see the module docstring)."""
    whole, partial = reached_streets(network, place, times, threshold_s=threshold_s)
    if len(whole) + len(partial) == 0:
        return shapely.Polygon()
    # a partial street gets flat ends, so the circle stops where the walk does
    area = shapely.union_all(
        [
            *shapely.buffer(whole, street_buffer_m, quad_segs=4),
            *shapely.buffer(partial, street_buffer_m, quad_segs=4, cap_style="flat"),
        ]
    )
    return fill_small_holes(area, max_hole_m2)


def fill_small_holes(area: shapely.Geometry, max_hole_m2: float) -> shapely.Geometry:
    """``area`` with every interior ring smaller than ``max_hole_m2`` filled in."""
    def fill(polygon: shapely.Polygon) -> shapely.Polygon:
        kept = [ring for ring in polygon.interiors if shapely.Polygon(ring).area > max_hole_m2]
        return shapely.Polygon(polygon.exterior, kept)

    parts = shapely.get_parts(area)
    return shapely.union_all([fill(p) for p in parts if isinstance(p, shapely.Polygon)])


def isochrone_quality(
    network: WalkNetwork,
    polygon: shapely.Geometry,
    times: np.ndarray,
    *,
    threshold_s: float,
    slack_s: float = 0.0,
) -> dict[str, float]:
    """How well a circle matches the nodes its walk truly reaches.

    ``reached_inside`` is the share of nodes reached within the threshold that
    lie inside the polygon (1.0: nothing reached is left out).
    ``inside_reached`` is the share of nodes inside the polygon that the walk
    truly reaches within the threshold plus ``slack_s`` (1.0: the polygon
    claims no street corner the walk cannot reach). A slack of the street
    buffer's walking time matches what the polygon means: homes up to that far
    from a reached street.
    """
    inside = shapely.contains_xy(polygon, network.nodes["x"].to_numpy(), network.nodes["y"].to_numpy())
    reached = times <= threshold_s
    reached_with_slack = times <= threshold_s + slack_s
    return {
        "reached_nodes": int(reached.sum()),
        "nodes_inside": int(inside.sum()),
        "reached_inside": float((reached & inside).sum() / reached.sum()) if reached.any() else 1.0,
        "inside_reached": float((reached_with_slack & inside).sum() / inside.sum()) if inside.any() else 1.0,
    }
