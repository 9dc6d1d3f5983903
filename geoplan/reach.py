"""Reach: walking times from sites to demand points, up to a cutoff, as a sparse matrix.

This is the hot path of coverage and optimisation. The network is contracted
to its junctions (runs of pass-through nodes become one link, exactly), and a
compiled, bounded Dijkstra (:mod:`geoplan._dijkstra`) starts from both ends of
each site's chain and stops at the cutoff, so its cost grows with the junctions
a 15-minute walk reaches rather than with the whole graph. A demand point is
reached from either end of its own chain, plus the walk along it and its walk
to the street; a point on the same chain as the site may also walk straight
along it. Nothing beyond the cutoff is stored.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.errors import InputError
from geoplan.network import WalkNetwork, routing_matrix
from geoplan.snapping import DEFAULT_MAX_ACCESS_M, SNAP_COLUMNS, snap_to_network

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ReachMatrix:
    """Walking times (seconds) demand x site, kept only up to ``cutoff_s``.

    ``times_s`` is a sparse matrix (CSC: one column per site) whose rows follow
    ``demand_ids`` and whose columns follow ``site_ids``; a stored entry (it may
    be an explicit 0) means "reachable in that many seconds", a missing one
    "not within the cutoff". Call ``.tocsr()`` for row access.
    """

    times_s: sparse.csc_matrix
    demand_ids: pd.Index
    site_ids: pd.Index
    cutoff_s: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.times_s.shape

    def within(self, threshold_s: float) -> sparse.csr_matrix:
        """Boolean demand x site matrix: True where the walk takes at most ``threshold_s``."""
        if threshold_s > self.cutoff_s + 1e-9:
            raise InputError(
                f"This reach matrix was computed up to {self.cutoff_s:.0f} s; "
                f"it cannot answer for {threshold_s:.0f} s. Recompute it with cutoff_s >= {threshold_s:.0f}."
            )
        matrix = self.times_s.tocoo()
        keep = matrix.data <= threshold_s + 1e-9
        return sparse.csr_matrix(
            (np.ones(keep.sum(), dtype=bool), (matrix.row[keep], matrix.col[keep])), shape=self.shape
        )

    def nearest_time_s(self) -> pd.Series:
        """Each demand point's walk to its nearest site (inf when none is within the cutoff)."""
        best = np.full(self.shape[0], np.inf)
        matrix = self.times_s.tocoo()
        np.minimum.at(best, matrix.row, matrix.data)
        return pd.Series(best, index=self.demand_ids, name="nearest_time_s")

    def to_frame(self) -> pd.DataFrame:
        """Long form: one row per reachable (demand_id, site_id) pair with ``time_s``."""
        matrix = self.times_s.tocoo()
        return pd.DataFrame(
            {
                "demand_id": self.demand_ids.to_numpy()[matrix.row],
                "site_id": self.site_ids.to_numpy()[matrix.col],
                "time_s": matrix.data,
            }
        )


def travel_times(
    network: WalkNetwork,
    demand: gpd.GeoDataFrame | pd.DataFrame,
    sites: gpd.GeoDataFrame | pd.DataFrame,
    *,
    cutoff_s: float = 900.0,
    max_access_m: float = DEFAULT_MAX_ACCESS_M,
    workers: int | None = None,
) -> ReachMatrix:
    """Sparse walking times from every site to every demand point within ``cutoff_s``.

    ``demand`` and ``sites`` are points (snapped here) or frames that already
    carry the columns of :func:`geoplan.snapping.snap_to_network`. Points with no
    street within ``max_access_m`` reach nothing. ``workers`` threads share the
    searches (default: every core). To ask for many site sets over the same
    demand, build a :class:`Router` once and call it.
    """
    router = Router(network, demand, max_access_m=max_access_m)
    return router.travel_times(sites, cutoff_s=cutoff_s, workers=workers)


class Router:
    """A network and its demand points, prepared once for many reach queries.

    Preparing contracts the network to its junctions (:mod:`geoplan._chains`)
    and lists, per junction, the demand points on its chains; each query then
    costs only the searches.
    """

    def __init__(self, network: WalkNetwork, demand: gpd.GeoDataFrame | pd.DataFrame, *, max_access_m: float = DEFAULT_MAX_ACCESS_M):
        from geoplan._chains import contract_chains

        self.network = network
        self.max_access_m = max_access_m
        snap = _snapped(network, demand, max_access_m)
        self.demand_ids = snap.index
        self.chains = contract_chains(network)
        self.graph = self.chains.graph
        self._edge_row = pd.Index(network.edges.index)
        self._edge_time = network.edges["travel_time_s"].to_numpy()
        self._edge_length = network.edges["length_m"].to_numpy()

        self._demand_ok = np.flatnonzero(snap["edge_id"].to_numpy() >= 0)
        chain, at, access = self._on_chains(snap, self._demand_ok)
        n_points = len(self._demand_ok)
        self._point_at, self._point_access = at, access
        ends = np.concatenate([self.chains.chain_start[chain], self.chains.chain_end[chain]])
        extra = np.concatenate([at + access, self.chains.chain_time_s[chain] - at + access])
        self._attach_indptr, order = _csr_order(ends, self.graph.shape[0])
        self._attach_point = np.tile(np.arange(n_points), 2)[order]
        self._attach_time = extra[order]
        self._chain_indptr, order = _csr_order(chain, len(self.chains.chain_time_s))
        self._chain_point = np.arange(n_points)[order]

    def _on_chains(self, snap: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For snapped points (the given rows): their chain, time from the chain's start, and access time."""
        edge_id = snap["edge_id"].to_numpy()[rows]
        positional = isinstance(self._edge_row, pd.RangeIndex) and self._edge_row.start == 0 and self._edge_row.step == 1
        edge = edge_id if positional else self._edge_row.get_indexer(edge_id)
        position = snap["position_m"].to_numpy()[rows]
        fraction = np.clip(position / np.maximum(self._edge_length[edge], 1e-12), 0.0, 1.0)
        at = self.chains.position(edge, fraction * self._edge_time[edge], self._edge_time[edge])
        access = snap["access_m"].to_numpy()[rows] / self.network.walk_speed_mps
        return self.chains.edge_chain[edge], at, access

    def travel_times(self, sites: gpd.GeoDataFrame | pd.DataFrame, *, cutoff_s: float = 900.0, workers: int | None = None) -> ReachMatrix:
        """Walking times from ``sites`` to the prepared demand points within ``cutoff_s``."""
        from geoplan._dijkstra import reach_batch

        if not cutoff_s > 0:
            raise InputError(f"cutoff_s must be positive, got {cutoff_s}.")
        site_snap = _snapped(self.network, sites, self.max_access_m)
        site_ok = np.flatnonzero(site_snap["edge_id"].to_numpy() >= 0)
        chain, at, access = self._on_chains(site_snap, site_ok)
        start_a, start_b = self.chains.chain_start[chain], self.chains.chain_end[chain]
        time_a, time_b = at + access, self.chains.chain_time_s[chain] - at + access
        graph = self.graph

        def search(batch: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return reach_batch(
                graph.indptr, graph.indices, graph.data,
                start_a[batch], time_a[batch], start_b[batch], time_b[batch], chain[batch], at[batch], access[batch],
                self._attach_indptr, self._attach_point, self._attach_time,
                self._chain_indptr, self._chain_point, self._point_at, self._point_access,
                len(self._demand_ok), float(cutoff_s),
            )

        # a thread pays off only when it has a few hundred searches to do
        workers = max(1, min(workers or os.cpu_count() or 1, len(site_ok) // 256))
        bounds = np.linspace(0, len(site_ok), workers + 1).astype(int)
        batches = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(search, batches))
        else:
            parts = [search(b) for b in batches]
        # the kernel returns pairs grouped by site, in site order: a CSC matrix needs no sorting
        counts = np.zeros(len(site_snap), dtype=np.int64)
        counts[site_ok] = np.concatenate([np.bincount(src, minlength=b.stop - b.start) for (src, _, _), b in zip(parts, batches)])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        rows = self._demand_ok[np.concatenate([p for _, p, _ in parts])]
        times = sparse.csc_matrix(
            (np.concatenate([t for _, _, t in parts]), rows, indptr), shape=(len(self.demand_ids), len(site_snap))
        )
        return ReachMatrix(times_s=times, demand_ids=self.demand_ids, site_ids=site_snap.index, cutoff_s=float(cutoff_s))


def reference_graph(network: WalkNetwork, points: dict[str, pd.DataFrame]) -> nx.Graph:
    """The network with snapped points inserted as real nodes, for checking the fast path.

    Every snapped point splits its edge and hangs off the split by its access
    walk, as node ``(kind, id)``. A plain Dijkstra on this graph gives the exact
    walking times that :func:`travel_times` computes by other means.
    """
    graph = network.to_networkx()
    speed = network.walk_speed_mps
    by_edge: dict[int, list[tuple[float, tuple]]] = {}
    for kind, snap in points.items():
        for point_id, row in snap[snap["edge_id"] >= 0].iterrows():
            node = (kind, point_id)
            position = (kind, "on-street", point_id)
            by_edge.setdefault(int(row["edge_id"]), []).append((row["position_m"], position))
            graph.add_edge(node, position, travel_time_s=row["access_m"] / speed)
    for edge_id, stops in by_edge.items():
        u, v, length = network.edges.loc[edge_id, ["u", "v", "length_m"]]
        chain = [(0.0, u), *sorted(stops, key=lambda s: s[0]), (length, v)]
        for (p0, a), (p1, b) in zip(chain[:-1], chain[1:]):
            time = (p1 - p0) / speed
            if not graph.has_edge(a, b) or graph[a][b]["travel_time_s"] > time:
                graph.add_edge(a, b, travel_time_s=time)
    return graph


def _snapped(network: WalkNetwork, points, max_access_m: float) -> pd.DataFrame:
    if set(SNAP_COLUMNS) <= set(points.columns):
        return points
    if not isinstance(points, gpd.GeoDataFrame):
        raise InputError("Points must be a GeoDataFrame or carry the snap columns " + ", ".join(SNAP_COLUMNS) + ".")
    return snap_to_network(network, points, max_access_m=max_access_m)


def _csr_order(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR row pointers for items keyed by row, and the order that sorts the items by row."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=indptr[1:])
    return indptr, np.argsort(keys, kind="stable")
