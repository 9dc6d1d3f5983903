"""Walkable street networks: load, clip, project, time and cache.

A network comes from a street-centreline layer (GeoParquet, GeoPackage,
Shapefile, GeoJSON: what planning institutes hold, and the form of geoplan's
default data), from an OSM XML extract, or from an osmnx GraphML file. Whatever
the source, the result is one :class:`WalkNetwork`: undirected, in a metric CRS,
clipped to the region plus a buffer, with ``travel_time_s`` on every edge and
every node labelled with its connected component.
"""

from __future__ import annotations

import bz2
import hashlib
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from geoplan import _files
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError

log = logging.getLogger(__name__)

#: Highway classes left out by default: ways where pedestrians are not allowed.
#: The same rule as osmnx's ``network_type="walk"`` (no motorways, nothing
#: under construction or abandoned). Elevated urban expressways tagged
#: ``trunk`` cannot be told from ground-level trunk boulevards without
#: bridge/foot tags, so add ``"trunk"`` and ``"trunk_link"`` here when a
#: city's trunk roads are mostly elevated.
DEFAULT_EXCLUDED_HIGHWAYS: tuple[str, ...] = (
    "motorway",
    "motorway_link",
    "construction",
    "proposed",
    "planned",
    "abandoned",
    "raceway",
    "bus_guideway",
    "platform",
    "razed",
    "no",
)

#: Default walking speed for older pedestrians: 15 minutes is then 900 m, in
#: line with the 800-1,000 m of the 15-minute life circle in GB 50180-2018.
DEFAULT_WALK_SPEED_MPS = 1.0

CENTRELINE_SUFFIXES = (".parquet", ".geoparquet", ".gpkg", ".shp", ".geojson", ".json", ".fgb")
OSM_XML_SUFFIXES = (".osm", ".xml", ".osm.bz2")
_CACHE_VERSION = "network-v2"  # v2: loops are kept

#: The OSM way tags that decide whether people may walk on a way (see ``_foot_allowed_tags``).
WALK_TAGS: tuple[str, ...] = ("highway", "foot", "access", "area")


@dataclass(frozen=True)
class EdgeSpeeds:
    """Travel speed per OSM ``highway`` class, for networks of modes other than walking (:mod:`geoplan.modes`).

    ``by_highway`` maps a class to metres per second; ``other_mps`` is the
    speed on any class not listed. With these, an edge's ``travel_time_s`` is
    its length over the speed of its class instead of over one walking speed.
    """

    by_highway: Mapping[str, float]
    other_mps: float

    def __post_init__(self):
        bad = {k: v for k, v in {**self.by_highway, "(other classes)": self.other_mps}.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0}
        if bad:
            raise InputError(f"Edge speeds must be positive numbers of metres per second; got {bad}.")

    def speeds_mps(self, highway) -> np.ndarray:
        """The speed of each edge, from its ``highway`` class (an array or Series of text)."""
        classes = pd.Series(np.asarray(highway, dtype=object)).astype(str)
        return classes.map(dict(self.by_highway)).fillna(self.other_mps).to_numpy(dtype=float)

    def cache_key(self) -> tuple:
        return tuple(sorted((str(k), float(v)) for k, v in self.by_highway.items())), float(self.other_mps)


def require_projected(crs, what: str) -> pyproj.CRS:
    """``crs`` as a :class:`pyproj.CRS` if it is projected in metres; else raise :class:`CRSMismatchError`.

    ``what`` names the CRS in the message (e.g. ``"crs"``, ``"The network's CRS"``).
    Call it before any distance, buffer or area.
    """
    fix = (
        "geoplan measures walks in metres, so it needs a projected CRS in metres: give one such as "
        "the region's UTM zone (e.g. EPSG:32650 for Wuhan; `gdf.estimate_utm_crs()` finds it), or pass "
        "crs=None to load_network / build_walk_network to let geoplan pick the local UTM zone."
    )
    if crs is None:
        raise CRSMismatchError(f"{what} is not set. {fix}")
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CRSMismatchError(f"{what} is {crs!r}, which is not a CRS pyproj knows ({exc}). {fix}") from exc
    unit = parsed.axis_info[0].unit_name if parsed.axis_info else "metre"
    if parsed.is_projected and unit in ("metre", "meter"):
        return parsed
    if parsed.is_geographic:
        kind = "a geographic CRS in degrees"
    else:
        kind = f"a projected CRS in {unit} units" if parsed.is_projected else "not a projected CRS"
    raise CRSMismatchError(f"{what} is {parsed.to_string()} ({parsed.name}), {kind}. {fix}")


@dataclass(frozen=True)
class WalkNetwork:
    """An undirected walking network in a projected (metric) CRS.

    Attributes
    ----------
    nodes
        GeoDataFrame indexed by ``node_id`` with ``x``, ``y`` (metres) and
        ``component`` (0 is the largest connected piece).
    edges
        GeoDataFrame with ``u``, ``v`` (node ids), ``highway``, ``length_m``,
        ``travel_time_s`` and a LineString running from ``u`` to ``v``. A loop
        (a street back to where it starts) has ``u == v`` and a closed line.
    walk_speed_mps
        The speed that turned lengths into ``travel_time_s``; on the network of
        another travel mode (:mod:`geoplan.modes`), whose edge times follow the
        road class, the speed of the access leg from a point to its road.
    mode
        The travel mode whose rules made the network (``"walk"`` unless
        :mod:`geoplan.modes` built it).
    """

    nodes: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    walk_speed_mps: float
    mode: str = "walk"

    @property
    def crs(self):
        return self.edges.crs

    @cached_property
    def routing(self) -> tuple[sparse.csr_matrix, pd.Index]:
        """Symmetric CSR matrix of edge travel times (seconds) and the node ids of its rows, built once."""
        node_index = self.nodes.index
        return symmetric_csr(*self.edge_ends, self.edges["travel_time_s"].to_numpy(), len(node_index)), node_index

    @cached_property
    def edge_ends(self) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (in ``nodes``) of every edge's ``u`` and ``v``."""
        node_index = self.nodes.index
        return node_index.get_indexer(self.edges["u"]), node_index.get_indexer(self.edges["v"])

    def components(self) -> pd.DataFrame:
        """One row per connected component: node count and street length."""
        node_component = self.nodes["component"]
        edge_component = node_component.loc[self.edges["u"]].to_numpy()
        length_km = pd.Series(self.edges["length_m"].to_numpy() / 1000, index=edge_component)
        table = pd.DataFrame(
            {
                "nodes": node_component.value_counts(),
                "street_km": length_km.groupby(level=0).sum(),
            }
        ).fillna(0.0)
        table.index.name = "component"
        return table.sort_index()

    def to_networkx(self) -> nx.Graph:
        """The network as an undirected ``networkx.Graph`` weighted by ``travel_time_s``.

        Parallel edges keep the quickest one, which is all routing needs.
        """
        graph = nx.Graph(crs=self.crs)
        graph.add_nodes_from(
            (node, {"x": x, "y": y})
            for node, x, y in zip(self.nodes.index, self.nodes["x"], self.nodes["y"])
        )
        quickest = self.edges.sort_values("travel_time_s", ascending=False)
        graph.add_weighted_edges_from(
            zip(quickest["u"], quickest["v"], quickest["travel_time_s"]), weight="travel_time_s"
        )
        return graph


def load_network(
    source: str | Path,
    *,
    boundary: gpd.GeoDataFrame | None = None,
    buffer_m: float = 1000.0,
    crs=None,
    walk_speed_mps: float = DEFAULT_WALK_SPEED_MPS,
    excluded_highways: tuple[str, ...] = DEFAULT_EXCLUDED_HIGHWAYS,
    cache_dir: str | Path | None = None,
    edge_speeds: EdgeSpeeds | None = None,
) -> WalkNetwork:
    """Load a walkable network from a centreline layer, an OSM XML extract or GraphML.

    Parameters
    ----------
    source
        Path of a street-centreline layer (``.parquet``, ``.gpkg``, ``.shp``,
        ``.geojson``, ``.fgb``), an OSM XML extract (``.osm``) or an osmnx
        GraphML file (``.graphml``).
    boundary
        The region; edges are kept when they touch the region grown by
        ``buffer_m``, so walks that leave the region briefly stay possible.
    buffer_m
        How far beyond the boundary to keep streets, in metres.
    crs
        The metric CRS to work in; by default the UTM zone of the boundary
        (or of the network when there is no boundary).
    walk_speed_mps
        Walking speed in metres per second.
    excluded_highways
        OSM ``highway`` values that pedestrians cannot use.
    cache_dir
        Where to keep the prepared network; a second call with the same inputs
        reads it from there instead of rebuilding it. ``None`` turns caching off.
    edge_speeds
        Speeds per road class (:class:`EdgeSpeeds`, from :mod:`geoplan.modes`)
        for the edge times; ``None`` (walking): every edge at ``walk_speed_mps``.
    """
    if walk_speed_mps <= 0:
        raise InputError(f"walk_speed_mps must be positive, got {walk_speed_mps}.")
    if buffer_m < 0:
        raise InputError(f"buffer_m must be zero or positive, got {buffer_m}.")
    if crs is not None:
        require_projected(crs, "crs")
    path = _files.existing_file(source, what="street network")

    cache_path = None
    if cache_dir is not None:
        key = _cache_key(path, boundary, buffer_m, crs, walk_speed_mps, excluded_highways, edge_speeds)
        cache_path = Path(cache_dir) / f"{path.stem}-{key}"
        if (cache_path / "edges.parquet").exists():
            log.info("network: read from cache %s", cache_path)
            return _read_cache(cache_path, walk_speed_mps)

    edges = read_street_edges(path)
    network = build_walk_network(
        edges,
        boundary=boundary,
        buffer_m=buffer_m,
        crs=crs,
        walk_speed_mps=walk_speed_mps,
        excluded_highways=excluded_highways,
        edge_speeds=edge_speeds,
    )
    if cache_path is not None:
        _write_cache(network, cache_path)
    return network


def read_street_edges(path: str | Path) -> gpd.GeoDataFrame:
    """Read street edges (``geometry`` and, where known, ``u``, ``v``, ``highway``) from a file."""
    path = _files.existing_file(path, what="street network")
    name = path.name.lower()
    if name.endswith(".graphml"):
        return _edges_from_graphml(path)
    if name.endswith(OSM_XML_SUFFIXES):
        return _edges_from_osm_xml(path)
    if name.endswith(".pbf"):
        raise InputError(
            f"{path} is an OSM PBF file; geoplan reads OSM XML. Convert it first, e.g. "
            f"`osmium cat {path.name} -o {path.stem}.osm`, and pass the .osm file."
        )
    if name.endswith(CENTRELINE_SUFFIXES):
        return _files.read_vector(path, what="street network")
    raise InputError(
        f"Cannot read a street network from {path.name}: use a centreline layer "
        f"({', '.join(CENTRELINE_SUFFIXES)}), an OSM XML extract (.osm) or an osmnx .graphml file."
    )


def build_walk_network(
    edges: gpd.GeoDataFrame,
    *,
    boundary: gpd.GeoDataFrame | None = None,
    buffer_m: float = 1000.0,
    crs=None,
    walk_speed_mps: float = DEFAULT_WALK_SPEED_MPS,
    excluded_highways: tuple[str, ...] = DEFAULT_EXCLUDED_HIGHWAYS,
    node_tolerance_m: float = 0.5,
    edge_speeds: EdgeSpeeds | None = None,
) -> WalkNetwork:
    """Turn street edges into a :class:`WalkNetwork` (see :func:`load_network`).

    Edges without ``u``/``v`` columns are joined where their end points lie
    within ``node_tolerance_m`` of each other; crossing lines are not joined
    (an overpass does not meet the street below it). A street that comes back
    to where it starts (a ring road, a loop in an estate) is kept as an edge
    from a node to itself: people live along it.
    """
    if crs is not None:
        require_projected(crs, "crs")
    if edges.crs is None:
        raise CRSMismatchError(
            "The street network has no CRS. Set it on the file (e.g. "
            "`gdf.set_crs('EPSG:4326')` for lon/lat) and load it again."
        )
    edges = edges[edges.geometry.notna() & ~edges.geometry.is_empty]
    edges = edges.explode(index_parts=False, ignore_index=True)
    edges = edges[edges.geom_type == "LineString"]
    if edges.empty:
        raise EmptyDataError("The street network holds no line geometry.")
    if crs is None:
        crs = (boundary if boundary is not None else edges).estimate_utm_crs()
    edges = edges.to_crs(crs)
    if "highway" in edges:
        walkable = ~edges["highway"].astype(str).isin(excluded_highways)
        edges = edges[walkable]
    else:
        _warn_unclassified()
    if boundary is not None:
        edges = _clip_to_boundary(edges, boundary.to_crs(crs), buffer_m)
    edges = edges.reset_index(drop=True)

    if {"u", "v"} <= set(edges.columns):
        edges, nodes_xy = _orient_to_node_ids(edges)
    else:
        edges, nodes_xy = _nodes_from_end_points(edges, node_tolerance_m)

    length = edges.geometry.length.to_numpy()
    # a "loop" no longer than the tolerance is a scrap whose two ends were joined, not a street
    keep = (edges["u"].to_numpy() != edges["v"].to_numpy()) | (length > node_tolerance_m)
    highway = edges["highway"].astype(str) if "highway" in edges else "unknown"
    speed = walk_speed_mps if edge_speeds is None else edge_speeds.speeds_mps(np.broadcast_to(np.asarray(highway, dtype=object), length.shape))
    edges = gpd.GeoDataFrame(
        {
            "u": edges["u"].to_numpy(),
            "v": edges["v"].to_numpy(),
            "highway": np.asarray(highway, dtype=object) if not isinstance(highway, str) else highway,
            "length_m": length,
            "travel_time_s": length / speed,
        },
        geometry=edges.geometry.to_numpy(),
        crs=crs,
    )[keep].reset_index(drop=True)
    edges.index.name = "edge_id"

    used = pd.Index(np.unique(np.concatenate([edges["u"], edges["v"]])))
    nodes_xy = nodes_xy.loc[used]
    nodes = gpd.GeoDataFrame(
        nodes_xy,
        geometry=gpd.points_from_xy(nodes_xy["x"], nodes_xy["y"]),
        crs=crs,
    )
    nodes.index.name = "node_id"
    nodes["component"] = _component_labels(nodes.index, edges)
    network = WalkNetwork(nodes=nodes, edges=edges, walk_speed_mps=walk_speed_mps)
    _log_components(network)
    return network


def routing_matrix(network: WalkNetwork) -> tuple[sparse.csr_matrix, pd.Index]:
    """Symmetric CSR matrix of edge travel times (seconds) and the node ids of its rows."""
    return network.routing


def symmetric_csr(u: np.ndarray, v: np.ndarray, weight: np.ndarray, n: int) -> sparse.csr_matrix:
    """An undirected weighted graph as a CSR matrix, keeping the lightest of parallel edges.

    Weights must be positive: a sparse matrix cannot hold a zero-weight edge.
    """
    rows = np.concatenate([u, v])
    cols = np.concatenate([v, u])
    weights = np.concatenate([weight, weight])
    order = np.lexsort((weights, cols, rows))
    rows, cols, weights = rows[order], cols[order], weights[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return sparse.csr_matrix((weights[first], (rows[first], cols[first])), shape=(n, n))


def _clip_to_boundary(edges: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame, buffer_m: float) -> gpd.GeoDataFrame:
    area = shapely.union_all(boundary.geometry.to_numpy())
    kept = edges[edges.intersects(area.buffer(buffer_m))]
    if kept.empty or not kept.intersects(area).any():
        net_bounds = np.round(edges.total_bounds, 1).tolist()
        region_bounds = np.round(area.bounds, 1).tolist()
        raise InputError(
            "The region boundary does not overlap the street network "
            f"(boundary bounds {region_bounds}, network bounds {net_bounds}, both in {edges.crs.to_string()}). "
            "Check that the boundary and the network cover the same place and that each file "
            "declares its true CRS."
        )
    return kept


def _orient_to_node_ids(edges: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Find node positions from the end points of the edges and orient every line from u to v.

    A node's true position is an end point of every edge that meets it, so it is
    the end point seen most often among its edges. A tie means every edge of the
    node leads to the same neighbour; the neighbour's position settles it.
    """
    geometry = edges.geometry.to_numpy()
    start = shapely.get_coordinates(shapely.get_point(geometry, 0))
    end = shapely.get_coordinates(shapely.get_point(geometry, -1))
    u = edges["u"].to_numpy()
    v = edges["v"].to_numpy()
    ends = pd.DataFrame(
        {
            "node": np.concatenate([u, u, v, v]),
            "x": np.round(np.concatenate([start[:, 0], end[:, 0], start[:, 0], end[:, 0]]), 3),
            "y": np.round(np.concatenate([start[:, 1], end[:, 1], start[:, 1], end[:, 1]]), 3),
        }
    )
    counts = ends.groupby(["node", "x", "y"]).size().rename("n").reset_index()
    counts = counts.sort_values(["node", "n"], ascending=[True, False])
    best = counts.drop_duplicates("node", keep="first").set_index("node")
    second = counts[counts.duplicated("node", keep="first")].drop_duplicates("node").set_index("node")
    tied = second.index[second["n"].to_numpy() == best.loc[second.index, "n"].to_numpy()]
    positions = best[["x", "y"]].copy()
    if len(tied):
        positions = _settle_ties(positions, counts, tied, u, v)

    ux = positions.loc[u, ["x", "y"]].to_numpy()
    reverse = np.hypot(*(start - ux).T) > np.hypot(*(end - ux).T)
    geometry = geometry.copy()
    geometry[reverse] = shapely.reverse(geometry[reverse])
    oriented = edges.copy()
    oriented.geometry = gpd.GeoSeries(geometry, index=edges.index, crs=edges.crs)
    log.debug("network: %d of %d edges reversed to run from u to v", reverse.sum(), len(edges))
    return oriented, positions


def _settle_ties(positions: pd.DataFrame, counts: pd.DataFrame, tied: pd.Index, u: np.ndarray, v: np.ndarray) -> pd.DataFrame:
    neighbour = pd.Series(np.concatenate([v, u]), index=np.concatenate([u, v]))
    positions = positions.copy()
    settled: set = set()
    for node in tied:
        other = neighbour.loc[[node]].iloc[0]
        candidates = counts.loc[counts["node"] == node, ["x", "y"]].to_numpy()[:2]
        if other in tied and other not in settled:
            # an isolated pair: give the two nodes the two different end points
            positions.loc[node] = candidates[0]
            other_candidates = counts.loc[counts["node"] == other, ["x", "y"]].to_numpy()[:2]
            positions.loc[other] = next(c for c in other_candidates if not np.array_equal(c, candidates[0]))
            settled.update((node, other))
        elif node not in settled:
            taken = positions.loc[other].to_numpy()
            positions.loc[node] = next((c for c in candidates if not np.array_equal(c, taken)), candidates[0])
            settled.add(node)
    return positions


def _nodes_from_end_points(edges: gpd.GeoDataFrame, tolerance_m: float) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Give line ends within ``tolerance_m`` of each other one shared node (chains of near ends join too)."""
    from scipy.spatial import cKDTree

    geometry = edges.geometry.to_numpy()
    start = shapely.get_coordinates(shapely.get_point(geometry, 0))
    end = shapely.get_coordinates(shapely.get_point(geometry, -1))
    xy = np.vstack([start, end])
    pairs = cKDTree(xy).query_pairs(tolerance_m, output_type="ndarray")
    near = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xy), len(xy)))
    _, codes = csgraph.connected_components(near, directed=False)
    n = len(edges)
    edges = edges.copy()
    edges["u"] = codes[:n]
    edges["v"] = codes[n:]
    positions = pd.DataFrame(xy, columns=["x", "y"]).groupby(codes).mean()
    # every line must start and end exactly at its nodes
    ends = positions.to_numpy()
    coords = shapely.get_coordinates(geometry)
    last = np.cumsum(shapely.get_num_coordinates(geometry)) - 1
    first = np.concatenate([[0], last[:-1] + 1])
    coords[first] = ends[codes[:n]]
    coords[last] = ends[codes[n:]]
    moved = shapely.set_coordinates(np.array(geometry, copy=True), coords)  # fills the copy, not the input
    edges.geometry = gpd.GeoSeries(moved, index=edges.index, crs=edges.crs)
    return edges, positions


def _component_labels(node_index: pd.Index, edges: gpd.GeoDataFrame) -> np.ndarray:
    u = node_index.get_indexer(edges["u"])
    v = node_index.get_indexer(edges["v"])
    graph = symmetric_csr(u, v, np.ones(len(u)), len(node_index))
    _, labels = csgraph.connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    rank = np.empty_like(sizes)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
    return rank[labels]


def _log_components(network: WalkNetwork) -> None:
    table = network.components()
    if len(table) > 1:
        minor = table.iloc[1:]
        log.info(
            "network: %d detached pieces besides the main one (%d nodes, %.1f km of street)",
            len(minor),
            minor["nodes"].sum(),
            minor["street_km"].sum(),
        )


def _edges_from_graphml(path: Path) -> gpd.GeoDataFrame:
    import osmnx as ox

    try:
        graph = ox.load_graphml(path)
    except Exception as exc:  # osmnx raises many kinds on a bad file
        raise InputError(f"Cannot read {path} as osmnx GraphML: {exc}") from exc
    return _edges_from_osmnx_graph(_walkable_simplified(graph), path)


def _edges_from_osm_xml(path: Path) -> gpd.GeoDataFrame:
    import osmnx as ox

    # read every way unsimplified, drop what pedestrians cannot use, and only
    # then simplify, so that no walkable way is merged with an unwalkable one.
    # osmnx keeps only the way tags named in its global settings (and takes no
    # argument for them); geoplan reads the tags it needs itself, so it neither
    # changes those settings (seen by every thread) nor depends on them
    try:
        graph = ox.graph_from_xml(path, bidirectional=True, simplify=False, retain_all=True)
        tags = _way_tags(path, WALK_TAGS)
    except Exception as exc:
        raise InputError(f"Cannot read {path} as an OSM XML extract: {exc}") from exc
    _set_way_tags(graph, tags)
    return _edges_from_osmnx_graph(_walkable_simplified(graph), path)


def _way_tags(path: Path, keys: tuple[str, ...]) -> dict[int, dict[str, str]]:
    """The tags named in ``keys`` of every way in an OSM XML file (plain or ``.bz2``), by way id."""
    from xml.etree import ElementTree

    found: dict[int, dict[str, str]] = {}
    with (bz2.open if path.name.lower().endswith(".bz2") else open)(path, "rb") as file:
        for _, element in ElementTree.iterparse(file):
            if element.tag == "way":
                found[int(element.get("id"))] = {
                    tag.get("k"): tag.get("v") for tag in element.iter("tag") if tag.get("k") in keys
                }
            if element.tag in ("node", "way", "relation"):
                element.clear()  # keep memory flat on a large extract
    return found


def _set_way_tags(graph: nx.MultiDiGraph, tags: dict[int, dict[str, str]]) -> None:
    """Set, in place, the tags of each edge's way (by its ``osmid``) on the edges of an unsimplified osmnx graph."""
    for _, _, data in graph.edges(data=True):
        data.update(tags.get(data.get("osmid"), {}))


def _walkable_simplified(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """An osmnx graph without the ways that are not streets or forbid walking, then simplified.

    Simplifying after the filter keeps a walkable way from being merged with an
    unwalkable one; a graph saved already simplified is only filtered.
    """
    import osmnx as ox

    graph = _without_unwalkable(graph)
    if graph.number_of_edges() and not graph.graph.get("simplified", False):
        # rings kept: a closed way that meets no other street is still a street people live on
        graph = ox.simplify_graph(graph, edge_attrs_differ=["highway", "foot", "access"], remove_rings=False)
    return graph


def _without_unwalkable(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy of an osmnx graph without the ways that are not streets or forbid walking."""
    unwalkable = [
        (u, v, k)
        for u, v, k, data in graph.edges(keys=True, data=True)
        if not _foot_allowed_tags(data)
    ]
    graph = graph.copy()
    graph.remove_edges_from(unwalkable)
    graph.remove_nodes_from([n for n in list(graph.nodes) if graph.degree(n) == 0])
    return graph


def _edges_from_osmnx_graph(graph: nx.MultiDiGraph, path: Path) -> gpd.GeoDataFrame:
    import osmnx as ox

    if graph.number_of_edges() == 0:
        raise EmptyDataError(f"{path} holds no walkable streets.")
    edges = ox.convert.graph_to_gdfs(graph, nodes=False, fill_edge_geometry=True).reset_index()
    edges = edges[~_reversed_copies(edges.geometry.to_numpy())]
    highway = edges["highway"].map(lambda h: h[0] if isinstance(h, list) else h)
    return gpd.GeoDataFrame(
        {"u": edges["u"].to_numpy(), "v": edges["v"].to_numpy(), "highway": highway.to_numpy()},
        geometry=edges.geometry.to_numpy(),
        crs=edges.crs,
    )


def _reversed_copies(lines: np.ndarray) -> np.ndarray:
    """Which lines repeat an earlier one, as drawn or reversed.

    osmnx stores every street once per walking direction, the second copy
    drawn backwards; two different streets between the same junctions (even
    of the same length, like the two halves of a ring) differ in their points.
    """
    forward = shapely.to_wkb(lines)
    backward = shapely.to_wkb(shapely.reverse(lines))
    return pd.Series([min(f, b) for f, b in zip(forward, backward)], dtype=object).duplicated().to_numpy()


def _foot_allowed_tags(tags: dict) -> bool:
    """Whether an OSM way's tags let people walk on it: a street, not foot=no, not private, not an area."""
    def first(name: str) -> str:
        value = tags.get(name)
        value = value[0] if isinstance(value, list) else value
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

    if not first("highway"):
        return False  # rail lines, land-use outlines and other ways that are not streets
    foot = first("foot")
    if foot == "no" or first("area") == "yes":
        return False
    return not (first("access") in ("no", "private") and foot not in ("yes", "designated", "permissive"))


def _cache_key(path: Path, boundary, buffer_m, crs, walk_speed_mps, excluded, edge_speeds: EdgeSpeeds | None = None) -> str:
    digest = hashlib.sha256()
    digest.update(_CACHE_VERSION.encode())
    digest.update(_files.content_hash(path).encode())
    if boundary is not None:
        digest.update(shapely.to_wkb(shapely.union_all(boundary.to_crs(4326).geometry.to_numpy())))
    digest.update(repr((float(buffer_m), str(crs), float(walk_speed_mps), tuple(excluded))).encode())
    if edge_speeds is not None:  # walking networks keep the key they always had
        digest.update(repr(edge_speeds.cache_key()).encode())
    return digest.hexdigest()[:16]


def _write_cache(network: WalkNetwork, cache_path: Path) -> None:
    with _files.atomic_directory(cache_path) as tmp:
        network.edges.to_parquet(tmp / "edges.parquet")
        network.nodes.to_parquet(tmp / "nodes.parquet")
    log.info("network: cached at %s", cache_path)


def _warn_unclassified() -> None:
    warnings.warn(
        "The street network has no 'highway' column, so every line is taken as walkable, motorways and elevated "
        "roads included, and homes may be joined to them. Give each line its OSM class in a 'highway' column "
        "(motorway, trunk, primary, residential, footway, ...), or remove the lines pedestrians cannot use.",
        UserWarning, stacklevel=3,
    )


def _read_cache(cache_path: Path, walk_speed_mps: float) -> WalkNetwork:
    edges = gpd.read_parquet(cache_path / "edges.parquet")
    if len(edges) and (edges["highway"].astype(str) == "unknown").all():
        _warn_unclassified()
    nodes = gpd.read_parquet(cache_path / "nodes.parquet")
    return WalkNetwork(nodes=nodes, edges=edges, walk_speed_mps=walk_speed_mps)
