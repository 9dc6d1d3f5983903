"""Compiled bounded Dijkstra from many sources to the demand points hanging off the network.

Work per source grows with the nodes it reaches, not with the size of the
graph: the distance arrays are allocated once per batch and only the entries a
search touched are reset. The kernel releases the GIL, so threads can run
batches side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _push(keys, vals, size, key, val):
    i = size
    keys[i] = key
    vals[i] = val
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        vals[parent], vals[i] = vals[i], vals[parent]
        i = parent
    return size + 1


@njit(cache=True, inline="always")
def _pop(keys, vals, size):
    key, val = keys[0], vals[0]
    size -= 1
    keys[0], vals[0] = keys[size], vals[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and keys[left + 1] < keys[left]:
            child = left + 1
        if keys[i] <= keys[child]:
            break
        keys[child], keys[i] = keys[i], keys[child]
        vals[child], vals[i] = vals[i], vals[child]
        i = child
    return key, val, size


@njit(cache=True, nogil=True)
def reach_batch(
    indptr, indices, weights,
    start_a, time_a, start_b, time_b, source_edge, source_at, source_access,
    attach_indptr, attach_point, attach_time,
    edge_indptr, edge_point, point_at, point_access,
    n_points, cutoff,
):
    """Times from each source to every attached point within ``cutoff``.

    A source starts at two nodes at once (the two ends of its street edge,
    each with the time already walked). ``attach_*`` is a CSR list, per node,
    of the points that can be reached from it and the extra time to each.
    ``edge_*`` lists, per edge, the points on it, so that a point on the
    source's own edge can also walk straight along the edge (``*_at`` are
    times along the edge from its first end, ``*_access`` the walks to it).
    Returns COO arrays (source, point, time).
    """
    n_nodes = indptr.shape[0] - 1
    dist = np.full(n_nodes, np.inf)
    best = np.full(n_points, np.inf)
    seen_nodes = np.empty(n_nodes, dtype=np.int64)
    seen_points = np.empty(n_points, dtype=np.int64)
    # each push follows an improved distance: at most one per directed edge, plus the two starts
    keys = np.empty(indices.shape[0] + 2, dtype=np.float64)
    vals = np.empty(indices.shape[0] + 2, dtype=np.int64)
    out_source = np.empty(4096, dtype=np.int64)
    out_point = np.empty(4096, dtype=np.int64)
    out_time = np.empty(4096, dtype=np.float64)
    n_out = 0

    for source in range(start_a.shape[0]):
        size = 0
        n_seen = 0
        n_seen_points = 0
        edge = source_edge[source]
        for k in range(edge_indptr[edge], edge_indptr[edge + 1]):
            point = edge_point[k]
            t = abs(point_at[point] - source_at[source]) + point_access[point] + source_access[source]
            if t <= cutoff and t < best[point]:
                if best[point] == np.inf:
                    seen_points[n_seen_points] = point
                    n_seen_points += 1
                best[point] = t
        for node, t in ((start_a[source], time_a[source]), (start_b[source], time_b[source])):
            if t <= cutoff and t < dist[node]:
                if dist[node] == np.inf:
                    seen_nodes[n_seen] = node
                    n_seen += 1
                dist[node] = t
                size = _push(keys, vals, size, t, node)
        while size > 0:
            d, node, size = _pop(keys, vals, size)
            if d > dist[node]:
                continue  # a stale entry: the node was reached sooner since it was pushed
            for k in range(attach_indptr[node], attach_indptr[node + 1]):
                t = d + attach_time[k]
                point = attach_point[k]
                if t <= cutoff and t < best[point]:
                    if best[point] == np.inf:
                        seen_points[n_seen_points] = point
                        n_seen_points += 1
                    best[point] = t
            for k in range(indptr[node], indptr[node + 1]):
                other = indices[k]
                t = d + weights[k]
                if t <= cutoff and t < dist[other]:
                    if dist[other] == np.inf:
                        seen_nodes[n_seen] = other
                        n_seen += 1
                    dist[other] = t
                    size = _push(keys, vals, size, t, other)
        if n_out + n_seen_points > out_source.shape[0]:
            grow = max(out_source.shape[0] * 2, n_out + n_seen_points)
            out_source = _grown(out_source, grow, n_out)
            out_point = _grown(out_point, grow, n_out)
            out_time = _grown(out_time, grow, n_out)
        for i in range(n_seen_points):
            point = seen_points[i]
            out_source[n_out] = source
            out_point[n_out] = point
            out_time[n_out] = best[point]
            n_out += 1
            best[point] = np.inf
        for i in range(n_seen):
            dist[seen_nodes[i]] = np.inf
    return out_source[:n_out], out_point[:n_out], out_time[:n_out]


@njit(cache=True)
def _grown(array, size, used):
    new = np.empty(size, dtype=array.dtype)
    new[:used] = array[:used]
    return new


@njit(cache=True, nogil=True)
def node_times(indptr, indices, weights, start_a, time_a, start_b, time_b, cutoff):
    """Walking time from one source (two start nodes) to every node within ``cutoff``; inf elsewhere."""
    n_nodes = indptr.shape[0] - 1
    dist = np.full(n_nodes, np.inf)
    done = np.zeros(n_nodes, dtype=np.bool_)
    keys = np.empty(indices.shape[0] + 2, dtype=np.float64)
    vals = np.empty(indices.shape[0] + 2, dtype=np.int64)
    size = 0
    for node, t in ((start_a, time_a), (start_b, time_b)):
        if t <= cutoff and t < dist[node]:
            dist[node] = t
            size = _push(keys, vals, size, t, node)
    while size > 0:
        d, node, size = _pop(keys, vals, size)
        if done[node]:
            continue
        done[node] = True
        for k in range(indptr[node], indptr[node + 1]):
            other = indices[k]
            t = d + weights[k]
            if t <= cutoff and t < dist[other]:
                dist[other] = t
                size = _push(keys, vals, size, t, other)
    return dist
