"""Join points (homes, facilities, candidate sites) to the nearest walkable street."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan.errors import CRSMismatchError
from geoplan.network import WalkNetwork, require_projected

#: Points farther than this from any walkable street are "not reachable on foot".
DEFAULT_MAX_ACCESS_M = 500.0

SNAP_COLUMNS = ["edge_id", "position_m", "access_m", "snap_x", "snap_y"]


def snap_to_network(
    network: WalkNetwork,
    points: gpd.GeoSeries | gpd.GeoDataFrame,
    *,
    max_access_m: float = DEFAULT_MAX_ACCESS_M,
) -> pd.DataFrame:
    """Where each point meets the network: the nearest edge and the walk to it.

    Returns
    -------
    DataFrame on the points' index with ``edge_id`` (-1 when no street lies
    within ``max_access_m``), ``position_m`` (distance along the edge from its
    ``u`` end), ``access_m`` (straight walk from the point to the street; NaN
    when unreachable) and the snapped position ``snap_x``, ``snap_y``.
    """
    geometry = _in_network_crs(network, points.geometry if isinstance(points, gpd.GeoDataFrame) else points, "points")
    edge_lines = network.edges.geometry.to_numpy()
    tree = shapely.STRtree(edge_lines)
    point_idx, edge_idx = tree.query_nearest(
        geometry.to_numpy(), max_distance=max_access_m, all_matches=False
    )
    n = len(geometry)
    snapped = pd.DataFrame(
        {
            "edge_id": np.full(n, -1, dtype=np.int64),
            "position_m": np.nan,
            "access_m": np.nan,
            "snap_x": np.nan,
            "snap_y": np.nan,
        },
        index=geometry.index,
    )
    if len(point_idx):
        lines = edge_lines[edge_idx]
        pts = geometry.to_numpy()[point_idx]
        position = shapely.line_locate_point(lines, pts)
        on_line = shapely.get_coordinates(shapely.line_interpolate_point(lines, position))
        snapped.iloc[point_idx, 0] = network.edges.index.to_numpy()[edge_idx]
        snapped.iloc[point_idx, 1] = position
        snapped.iloc[point_idx, 2] = shapely.distance(pts, shapely.points(on_line))
        snapped.iloc[point_idx, 3] = on_line[:, 0]
        snapped.iloc[point_idx, 4] = on_line[:, 1]
    return snapped


def point_on_streets_within(network: WalkNetwork, areas: gpd.GeoSeries) -> gpd.GeoSeries:
    """For each area, the point on a walkable street inside it nearest its centre.

    Areas with no street inside fall back to the street point nearest their
    representative point (which then lies just outside the area).
    """
    areas = _in_network_crs(network, areas, "areas")
    centres = areas.representative_point()
    edges = network.edges.geometry
    area_idx, edge_idx = shapely.STRtree(edges.to_numpy()).query(areas.to_numpy(), predicate="intersects")
    pieces = shapely.intersection(edges.to_numpy()[edge_idx], areas.to_numpy()[area_idx])
    distance = shapely.distance(pieces, centres.to_numpy()[area_idx])
    best = pd.DataFrame({"area": area_idx, "piece": np.arange(len(pieces)), "d": distance})
    best = best[np.isfinite(best["d"])].sort_values("d").drop_duplicates("area")
    result = np.empty(len(areas), dtype=object)
    if len(best):
        chosen = pieces[best["piece"].to_numpy()]
        centre = centres.to_numpy()[best["area"].to_numpy()]
        # the first point of the shortest line lies on the street piece
        result[best["area"].to_numpy()] = shapely.get_point(shapely.shortest_line(chosen, centre), 0)
    missing = np.flatnonzero(pd.isna(result))
    if len(missing):
        snapped = snap_to_network(network, centres.iloc[missing], max_access_m=np.inf)
        result[missing] = shapely.points(snapped["snap_x"].to_numpy(), snapped["snap_y"].to_numpy())
    return gpd.GeoSeries(result, index=areas.index, crs=network.crs)


def _in_network_crs(network: WalkNetwork, geometry: gpd.GeoSeries, what: str) -> gpd.GeoSeries:
    """``geometry`` in the network's CRS, which must be projected: every distance here is in metres."""
    require_projected(network.crs, "The network's CRS")
    if geometry.crs is None:
        raise CRSMismatchError(
            f"The {what} have no CRS, so they cannot be placed on the network ({network.crs.to_string()}). "
            f"Set their true CRS first, e.g. `gdf.set_crs('EPSG:4326')` for lon/lat."
        )
    return geometry if geometry.crs == network.crs else geometry.to_crs(network.crs)
