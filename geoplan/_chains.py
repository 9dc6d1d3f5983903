"""Contract chains of pass-through nodes, keeping walking times exact.

Three in four nodes of an OSM street network only join two edges (a bend, or
a split where a tag changes). A walk through such a node has nowhere else to
go, so each run of them between two junctions (or dead ends) can become one
weighted link, a *chain*. Every edge keeps its place on its chain (offset from
the chain's start and direction), so any point on an edge has an exact
position on the contracted network. Routing then settles only junctions: about
a quarter of the nodes on geoplan's default data.

A loop (an edge from a node to itself, or a run of pass-through nodes back to
where it began) is a chain whose start and end are the same junction; a ring
with no junction at all keeps one of its nodes as both. Such a chain is no link
of the graph, but points on it are still reached from its junction both ways
round, and from each other along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoplan.network import WalkNetwork, symmetric_csr


@dataclass(frozen=True)
class Chains:
    """A network contracted to its junctions.

    ``graph`` is the symmetric CSR of chain times between kept nodes. Per
    original edge: ``edge_chain``, ``edge_offset_s`` (time from the chain's
    start to where the edge begins along the chain) and ``edge_forward``
    (whether the chain runs from the edge's ``u`` to its ``v``). Per chain:
    ``chain_start``, ``chain_end`` (rows of ``graph``) and ``chain_time_s``.
    """

    graph: object
    edge_chain: np.ndarray
    edge_offset_s: np.ndarray
    edge_forward: np.ndarray
    chain_start: np.ndarray
    chain_end: np.ndarray
    chain_time_s: np.ndarray

    def position(self, edge: np.ndarray, at_s: np.ndarray, edge_time_s: np.ndarray) -> np.ndarray:
        """Time from the chain's start of points ``at_s`` seconds from their edge's ``u`` end."""
        along = np.where(self.edge_forward[edge], at_s, edge_time_s - at_s)
        return self.edge_offset_s[edge] + along


def contract_chains(network: WalkNetwork) -> Chains:
    """Contract ``network`` to the nodes that do not just join two edges."""
    end_u, end_v = network.edge_ends
    edge_time = network.edges["travel_time_s"].to_numpy()
    n_nodes, n_edges = len(network.nodes), len(edge_time)

    # incidence lists: for each node, its edges (parallel edges counted apart)
    ends = np.concatenate([end_u, end_v])
    order = np.argsort(ends, kind="stable")
    incident = np.tile(np.arange(n_edges), 2)[order]
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=n_nodes), out=indptr[1:])
    kept = np.diff(indptr) != 2

    edge_chain = np.full(n_edges, -1, dtype=np.int64)
    edge_offset = np.zeros(n_edges)
    edge_forward = np.ones(n_edges, dtype=bool)
    starts: list[int] = []
    finishes: list[int] = []
    lengths: list[float] = []

    def walk(start: int, first_edge: int) -> None:
        chain = len(starts)
        node, edge, offset = start, first_edge, 0.0
        while True:
            forward = end_u[edge] == node
            edge_chain[edge] = chain
            edge_offset[edge] = offset
            edge_forward[edge] = forward
            offset += edge_time[edge]
            node = end_v[edge] if forward else end_u[edge]
            if kept[node]:
                break
            a, b = incident[indptr[node]], incident[indptr[node] + 1]
            edge = b if a == edge else a
            if edge_chain[edge] >= 0:  # back at the start of a ring of pass-through nodes
                break
        starts.append(start)
        finishes.append(node)
        lengths.append(offset)

    for node in np.flatnonzero(kept):
        for k in range(indptr[node], indptr[node + 1]):
            if edge_chain[incident[k]] < 0:
                walk(node, incident[k])
    for edge in np.flatnonzero(edge_chain < 0):  # rings with no junction: keep one node of each
        if edge_chain[edge] < 0:
            kept[end_u[edge]] = True
            walk(end_u[edge], edge)

    row = np.cumsum(kept) - 1  # kept nodes renumbered 0..k-1
    chain_start = row[np.asarray(starts, dtype=np.int64)]
    chain_end = row[np.asarray(finishes, dtype=np.int64)]
    chain_time = np.asarray(lengths)
    links = chain_start != chain_end  # a loop back to its own junction never shortens a walk
    graph = symmetric_csr(chain_start[links], chain_end[links], chain_time[links], int(kept.sum()))
    return Chains(graph, edge_chain, edge_offset, edge_forward, chain_start, chain_end, chain_time)
