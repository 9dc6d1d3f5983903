"""Reach: walking times from sites to demand points, up to a cutoff, as a sparse matrix.

This is the hot path of coverage and optimisation. The network is contracted
to its junctions (runs of pass-through nodes become one link, exactly), and a
compiled, bounded Dijkstra (:mod:`geoplan._dijkstra`) starts from both ends of
each site's chain and stops at the cutoff, so its cost grows with the junctions
a 15-minute walk reaches rather than with the whole graph. A demand point is
reached from either end of its own chain, plus the walk along it and its walk
to the street; a point on the same chain as the site may also walk straight
along it. Nothing beyond the cutoff is stored.

:class:`ReachMatrix` is the one place that answers "who is within a walk of
which site" (:meth:`~ReachMatrix.within`, :meth:`~ReachMatrix.covered`) and
"how far is the nearest site" (:meth:`~ReachMatrix.nearest_time_s`); every
threshold goes through :meth:`~ReachMatrix.check_threshold`, which refuses a
threshold beyond the cutoff the matrix was computed for.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.errors import InputError
from geoplan.network import WalkNetwork
from geoplan.snapping import DEFAULT_MAX_ACCESS_M, SNAP_COLUMNS, snap_to_network

log = logging.getLogger(__name__)

#: A walk counts as within a threshold up to this many seconds beyond it (floating-point noise only).
TIME_TOLERANCE_S = 1e-9


def within_time(times_s: np.ndarray | float, threshold_s: float) -> np.ndarray:
    """True where a walk of ``times_s`` seconds is within ``threshold_s`` (the one tolerance test)."""
    return np.asarray(times_s) <= threshold_s + TIME_TOLERANCE_S


@dataclass(frozen=True)
class ReachMatrix:
    """Walking times (seconds) demand x site, kept only up to ``cutoff_s``.

    ``times_s`` is a sparse matrix (CSC: one column per site) whose rows follow
    ``demand_ids`` and whose columns follow ``site_ids``; a stored entry (it may
    be an explicit 0) means "reachable in that many seconds", a missing one
    "not within the cutoff". ``off_network`` lists the demand points with no
    walkable street near enough to reach them on foot at all.

    Sites are chosen by position (an integer array) or by id (any other
    sequence) in :meth:`within`, :meth:`covered`, :meth:`nearest_time_s` and
    :meth:`select`.

    >>> import numpy as np, pandas as pd
    >>> from scipy import sparse
    >>> times = sparse.csc_matrix(np.array([[300.0, 0.0], [0.0, 700.0], [0.0, 0.0]]))
    >>> reach = ReachMatrix(times, pd.Index(["a", "b", "c"]), pd.Index(["s1", "s2"]), cutoff_s=900.0)
    >>> reach.covered(600).tolist()
    [True, False, False]
    >>> reach.nearest_time_s(["s2"]).tolist()
    [inf, 700.0, inf]
    >>> reach.within(1200)
    Traceback (most recent call last):
    ...
    geoplan.errors.InputError: This reach matrix holds walks up to 15 min (900 s); it cannot answer for 20 min (1200 s). Compute the walking times with a cutoff of at least that (e.g. region.reach(sites, cutoff_min=20)).
    """

    times_s: sparse.csc_matrix
    demand_ids: pd.Index
    site_ids: pd.Index
    cutoff_s: float
    off_network: pd.Index = field(default_factory=lambda: pd.Index([]))

    def __post_init__(self):
        if not sparse.isspmatrix_csc(self.times_s):
            object.__setattr__(self, "times_s", sparse.csc_matrix(self.times_s))
        if self.times_s.shape != (len(self.demand_ids), len(self.site_ids)):
            raise InputError(
                f"The walking-time matrix is {self.times_s.shape[0]} x {self.times_s.shape[1]} but there are "
                f"{len(self.demand_ids)} demand ids and {len(self.site_ids)} site ids."
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.times_s.shape

    def check_threshold(self, threshold_s: float) -> float:
        """``threshold_s`` as a float, or an InputError when it is not positive or beyond the cutoff."""
        threshold_s = float(threshold_s)
        if not threshold_s > 0:
            raise InputError(f"A walking threshold must be positive, got {threshold_s:g} s.")
        if threshold_s > self.cutoff_s + TIME_TOLERANCE_S:
            raise InputError(
                f"This reach matrix holds walks up to {self.cutoff_s / 60:.4g} min ({self.cutoff_s:.0f} s); it cannot "
                f"answer for {threshold_s / 60:.4g} min ({threshold_s:.0f} s). Compute the walking times with a cutoff of "
                f"at least that (e.g. region.reach(sites, cutoff_min={math.ceil(threshold_s / 60 - 1e-9):d}))."
            )
        return threshold_s

    def site_positions(self, sites: Sequence | np.ndarray | None) -> np.ndarray | None:
        """Column positions of ``sites`` (positions or ids); None stays None (every site)."""
        if sites is None:
            return None
        sites = np.asarray(sites)
        if sites.dtype.kind in "iu":
            if len(sites) and (sites.min() < 0 or sites.max() >= self.shape[1]):
                raise InputError(f"Site positions must lie in 0..{self.shape[1] - 1}.")
            return sites.astype(np.int64)
        if sites.dtype == bool:
            raise InputError("Give sites as positions or ids, not as a boolean mask.")
        positions = self.site_ids.get_indexer(sites)
        if (positions < 0).any():
            missing = sorted(map(str, sites[positions < 0]))[:10]
            raise InputError(f"Sites {missing} are not in this reach matrix; compute it for them (region.reach(sites)).")
        return positions.astype(np.int64)

    def _times(self, sites) -> sparse.csc_matrix:
        positions = self.site_positions(sites)
        return self.times_s if positions is None else self.times_s[:, positions]

    def limited(self, threshold_s: float, sites=None) -> sparse.csr_matrix:
        """Walking times (CSR) of at most ``threshold_s``, demand x site (or x ``sites``); explicit zeros kept."""
        threshold_s = self.check_threshold(threshold_s)
        times = self._times(sites).tocoo()
        keep = within_time(times.data, threshold_s)
        return sparse.csr_matrix((times.data[keep], (times.row[keep], times.col[keep])), shape=times.shape)

    def within(self, threshold_s: float, sites=None) -> sparse.csr_matrix:
        """0/1 demand x site (or x ``sites``) matrix (CSR, int8): 1 where the walk takes at most ``threshold_s``."""
        threshold_s = self.check_threshold(threshold_s)
        times = self._times(sites).tocsr()
        keep = within_time(times.data, threshold_s).astype(np.int8)
        out = sparse.csr_matrix((keep, times.indices.copy(), times.indptr.copy()), shape=times.shape)
        out.eliminate_zeros()
        return out

    def covered(self, threshold_s: float, sites=None) -> np.ndarray:
        """Per demand row: some site (of ``sites``) is within ``threshold_s``."""
        threshold_s = self.check_threshold(threshold_s)
        return within_time(self.nearest_time_s(sites).to_numpy(), threshold_s)

    def nearest_time_s(self, sites=None) -> pd.Series:
        """Each demand point's walk to its nearest site (of ``sites``; inf when none is within the cutoff)."""
        times = self._times(sites).tocsr()
        best = np.full(self.shape[0], np.inf)
        if times.nnz:
            rows = np.flatnonzero(np.diff(times.indptr))
            best[rows] = np.minimum.reduceat(times.data, times.indptr[rows])
        return pd.Series(best, index=self.demand_ids, name="nearest_time_s")

    def select(self, sites) -> "ReachMatrix":
        """The same walks for a subset (or a reordering) of the sites."""
        positions = self.site_positions(sites)
        return ReachMatrix(self.times_s[:, positions], self.demand_ids, self.site_ids[positions], self.cutoff_s, self.off_network)

    def for_demand(self, demand_ids: pd.Index) -> "ReachMatrix":
        """The same walks with rows following ``demand_ids`` (every one of them must be in the matrix)."""
        demand_ids = pd.Index(demand_ids)
        if demand_ids.equals(self.demand_ids):
            return self
        rows = self.demand_ids.get_indexer(demand_ids)
        if (rows < 0).any():  # -1 would silently take the last row's walking times
            missing = sorted(map(str, demand_ids[rows < 0]))[:10]
            raise InputError(
                f"The reach matrix has no walking times for demand points {missing}; "
                "compute it for this demand (region.reach(...))."
            )
        times = sparse.csr_matrix(self.times_s)[rows].tocsc()
        return ReachMatrix(times, demand_ids, self.site_ids, self.cutoff_s, self.off_network.intersection(demand_ids))

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
        self.off_network = self.demand_ids[snap["edge_id"].to_numpy() < 0]
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
        return ReachMatrix(
            times_s=times, demand_ids=self.demand_ids, site_ids=site_snap.index, cutoff_s=float(cutoff_s), off_network=self.off_network
        )


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
