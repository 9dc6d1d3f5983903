"""Properties that must hold for every input (hypothesis, bounded: few examples, no deadline).

* reach is symmetric on the undirected walk network: the walk from A to B
  takes as long as the walk from B to A (random street grids through the
  same router, and sampled junctions of the real Wuchang network);
* reach is monotone in the threshold (and in the cutoff it is computed to);
* coverage never falls when a site is added;
* the exact optimum is never below the greedy plan's coverage.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from geoplan.optimize import KindSpec, ModelOptions, Problem, optimize
from geoplan.optimize.phasing import greedy_cover
from geoplan.reach import ReachMatrix, Router
from tests.conftest import points_frame, tiny_network

BOUNDED = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def street_grids(draw):
    """A k x k lattice of junctions 100 m apart, each lattice street present or not, and points scattered over it."""
    k = draw(st.integers(3, 5))
    lines = []
    for i in range(k):
        for j in range(k):
            if i + 1 < k and draw(st.booleans()):
                lines.append([(100.0 * i, 100.0 * j), (100.0 * (i + 1), 100.0 * j)])
            if j + 1 < k and draw(st.booleans()):
                lines.append([(100.0 * i, 100.0 * j), (100.0 * i, 100.0 * (j + 1))])
    if not lines:
        lines = [[(0.0, 0.0), (100.0, 0.0)]]
    coordinate = st.floats(-20.0, 100.0 * (k - 1) + 20.0, allow_nan=False)
    points = draw(st.lists(st.tuples(coordinate, coordinate), min_size=2, max_size=8))
    return lines, points


def symmetric_times(network, points, cutoff_s: float) -> np.ndarray:
    """Walking times between every pair of the points, computed as demand x sites with the same points on both sides."""
    xy = {f"p{i}": xy for i, xy in enumerate(points)}
    demand = points_frame(xy, index_name="demand_id")
    sites = points_frame(xy, index_name="site_id")
    reach = Router(network, demand, max_access_m=500).travel_times(sites, cutoff_s=cutoff_s)
    return reach.times_s.toarray(), (reach.times_s != 0).toarray() | _explicit(reach.times_s)


def _explicit(matrix) -> np.ndarray:
    """Where the sparse matrix holds an entry (explicit zeros too): reachable."""
    coo = sparse.coo_matrix(matrix)
    out = np.zeros(coo.shape, bool)
    out[coo.row, coo.col] = True
    return out


@BOUNDED
@given(street_grids())
def test_reach_is_symmetric_on_street_grids(grid):
    lines, points = grid
    network = tiny_network(lines)
    times, reached = symmetric_times(network, points, cutoff_s=1e6)
    assert (reached == reached.T).all()
    np.testing.assert_allclose(times, times.T, rtol=0, atol=1e-6)
    assert (np.diag(times)[np.diag(reached)] <= 1e-6 + 2 * 500).all()  # a point to itself: at most its walk to the street and back


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_reach_is_symmetric_on_the_real_network(wuchang, data):
    """Junctions of a 1.5 km box of Wuchang: the walk A -> B equals B -> A, to a microsecond."""
    nodes = wuchang.network.nodes
    x0, y0 = nodes["x"].median(), nodes["y"].median()
    box = nodes[(nodes["x"].between(x0 - 750, x0 + 750)) & (nodes["y"].between(y0 - 750, y0 + 750))]
    chosen = data.draw(st.lists(st.integers(0, len(box) - 1), min_size=2, max_size=6, unique=True))
    picked = box.iloc[chosen]

    def frame(name: str) -> gpd.GeoDataFrame:
        index = pd.Index([f"n{i}" for i in picked.index], name=name)
        return gpd.GeoDataFrame(index=index, geometry=shapely.points(picked[["x", "y"]].to_numpy()), crs=wuchang.crs)

    reach = Router(wuchang.network, frame("demand_id"), max_access_m=500).travel_times(frame("site_id"), cutoff_s=1800)
    times, reached = reach.times_s.toarray(), _explicit(reach.times_s)
    assert (reached == reached.T).all()
    np.testing.assert_allclose(times, times.T, rtol=0, atol=1e-6)


@BOUNDED
@given(street_grids(), st.floats(30.0, 300.0), st.floats(0.0, 400.0))
def test_reach_is_monotone_in_the_threshold_and_the_cutoff(grid, low, extra):
    lines, points = grid
    network = tiny_network(lines)
    xy = {f"p{i}": xy for i, xy in enumerate(points)}
    router = Router(network, points_frame(xy, index_name="demand_id"), max_access_m=500)
    sites = points_frame(xy, index_name="site_id")
    high = low + extra
    short, long = router.travel_times(sites, cutoff_s=low), router.travel_times(sites, cutoff_s=high)
    a, b = _explicit(short.times_s), _explicit(long.times_s)
    assert (a <= b).all()  # what a shorter cutoff reaches, a longer one reaches, in the same time
    np.testing.assert_allclose(short.times_s.toarray()[a], long.times_s.toarray()[a], atol=1e-9)
    within_low, within_high = long.within(low).toarray() > 0, long.within(high).toarray() > 0
    assert (within_low <= within_high).all() and (within_low == a).all()
    assert (long.covered(low) <= long.covered(high)).all()


@st.composite
def coverage_instances(draw):
    """A random demand x site walking-time matrix with people, and a site to add."""
    seed = draw(st.integers(0, 2**31 - 1))
    n, m = draw(st.integers(5, 60)), draw(st.integers(2, 14))
    rng = np.random.default_rng(seed)
    times = rng.uniform(0, 1200, (n, m))
    times[rng.random((n, m)) < 0.6] = np.inf
    pop60 = rng.uniform(0, 30, n).round(1)
    people = pd.DataFrame({"pop_60": pop60, "pop_80": (pop60 * rng.uniform(0, 0.4, n)).round(1)})
    return times, people, seed


def reach_of(times: np.ndarray) -> ReachMatrix:
    rows, cols = np.nonzero(np.isfinite(times))
    matrix = sparse.csc_matrix((times[rows, cols], (rows, cols)), shape=times.shape)
    return ReachMatrix(matrix, pd.RangeIndex(times.shape[0]), pd.Index([f"s{j}" for j in range(times.shape[1])]), cutoff_s=1200.0)


@settings(max_examples=40, deadline=None)
@given(coverage_instances(), st.floats(60.0, 1200.0), st.data())
def test_coverage_never_falls_when_a_site_is_added(instance, threshold, data):
    times, people, _ = instance
    reach = reach_of(times)
    m = times.shape[1]
    sites = sorted(data.draw(st.sets(st.integers(0, m - 1), max_size=m)))
    extra = data.draw(st.integers(0, m - 1))
    before = reach.covered(threshold, np.array(sites, dtype=np.int64))
    after = reach.covered(threshold, np.array(sorted({*sites, extra}), dtype=np.int64))
    assert (before <= after).all()
    g = people["pop_60"].to_numpy()
    assert g[after].sum() >= g[before].sum()


@settings(max_examples=15, deadline=None)
@given(coverage_instances(), st.integers(1, 4), st.booleans())
def test_the_exact_optimum_is_never_below_greedy(instance, p, lagrangian):
    times, people, _ = instance
    m = times.shape[1]
    p = min(p, m)
    sites = pd.DataFrame({"status": "candidate"}, index=[f"s{j}" for j in range(m)])
    problem = Problem.from_matrix(times, people, sites, specs=KindSpec(p=p, threshold_min=10), cutoff_s=1200)
    out = optimize(problem, ModelOptions("mclp", lagrangian=lagrangian))
    cover = problem.reach.within(600.0)
    _, gains = greedy_cover(cover, problem.weight, k=p)
    assert out.main.status == "optimal"
    assert out.main.objective >= sum(gains) - 1e-9 * max(1.0, sum(gains))
    assert out.main.bound >= out.main.objective - 1e-9 * max(1.0, out.main.objective)
