"""Tests for geoplan.coords: WGS84 / GCJ-02 / BD-09 conversions."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from geoplan import coords
from geoplan.coords import (
    COORD_SYSTEMS,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    normalize_coord_system,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geoplan.errors import InputError

GEOD = Geod(ellps="WGS84")

ALL_FUNCS = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
    wgs84_to_bd09,
    bd09_to_wgs84,
]


def dist_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in metres on the WGS84 ellipsoid."""
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (lon1, lat1, lon2, lat2))
    )
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


# ---------------------------------------------------------------------------
# Published reference pairs, all as (lon, lat) -> (lon, lat).
#
# Full-precision pairs produced by other implementations of the same published
# formulas must agree to a millimetre (EXACT); pairs rounded to 7-8 decimals to
# a few centimetres (TIGHT). The gcoord "china-cities" fixture holds
# coordinates of real city centres from the map providers; its WGS84 <-> GCJ-02
# pairs differ from the formula by a constant ~5e-6 deg (~0.67 m), which gcoord
# itself tolerates (it compares to 4 decimals), so those are held to 1 m.
# ---------------------------------------------------------------------------
EXACT = 0.001  # metres
TIGHT = 0.05  # metres
LOOSE = 1.0  # metres

# googollee/eviltransform python/test.py (same values in go/transform_test.go),
# given there as (wgsLat, wgsLng, gcjLat, gcjLng).
EVIL_WGS_GCJ = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]
# wandergis/coordtransform README.md, example output for input (116.404, 39.915).
CT_WGS_GCJ = ((116.404, 39.915), (116.41024449916938, 39.91640428150164))
CT_GCJ_BD = ((116.404, 39.915), (116.41036949371029, 39.92133699351021))
CT_BD_GCJ = ((116.404, 39.915), (116.39762729119315, 39.90865673957631))
# hujiulong/gcoord test/unit/crs/{WGS84,GCJ02,BD09}.spec.ts, input [123, 45].
GCOORD_WGS_GCJ = ((123.0, 45.0), (123.00607541, 45.00197815))  # WGS84.spec.ts
GCOORD_WGS_BD = ((123.0, 45.0), (123.0124491, 45.0083293))  # WGS84.spec.ts
GCOORD_GCJ_WGS = ((123.0, 45.0), (122.99395597, 44.99804071))  # GCJ02.spec.ts
GCOORD_GCJ_BD = ((123.0, 45.0), (123.00636499, 45.00636899))  # GCJ02.spec.ts
GCOORD_BD_GCJ = ((123.0, 45.0), (122.99363304, 44.99365430))  # BD09.spec.ts
GCOORD_BD_WGS = ((123.0, 45.0), (122.98762210, 44.99171540))  # BD09.spec.ts

# hujiulong/gcoord test/fixtures/china-cities.json
# (commit fedbaa105f198d5afc23fec2d60c0a0df32ef663): (WGS84, GCJ02, BD09).
GCOORD_CITIES = {
    "Zhumadian": ((114.0164322, 33.0133556), (114.022306, 33.0115324), (114.0287781, 33.0176697)),
    "Jingmen": ((112.1935849, 31.0376011), (112.1994301, 31.0354012), (112.2058231, 31.0417338)),
    "Yichang": ((111.2808211, 30.6944096), (111.2864741, 30.6919691), (111.2930248, 30.6977103)),
    "Ezhou": ((114.8898012, 30.3946322), (114.8948492, 30.3919431), (114.9014563, 30.397616)),
    "Shenyang": ((123.4253306, 41.8032629), (123.4314787, 41.8057023), (123.438095, 41.8114013)),
    "Nagqu": ((92.0499619, 31.4784436), (92.0512438, 31.4762063), (92.0576832, 31.4824421)),
    "Quanzhou": ((118.6711365, 24.8770487), (118.6756787, 24.8741363), (118.6821251, 24.8804872)),
    "Jiuquan": ((98.4937175, 39.7319946), (98.4943595, 39.7328234), (98.5008441, 39.7388949)),
}


def _cases(pairs, tol):
    return [(src, dst, tol) for src, dst in pairs]


WGS_TO_GCJ = (
    _cases(EVIL_WGS_GCJ + [CT_WGS_GCJ], EXACT)
    + _cases([GCOORD_WGS_GCJ], TIGHT)
    + [(w, g, LOOSE) for w, g, _ in GCOORD_CITIES.values()]
)
# The inverse is checked against the same published forward pairs, read
# backwards, plus gcoord's own (iterative) GCJ02 -> WGS84 result.
GCJ_TO_WGS = (
    [(g, w, tol) for w, g, tol in WGS_TO_GCJ]
    + _cases([GCOORD_GCJ_WGS], TIGHT)
)
GCJ_TO_BD = _cases([CT_GCJ_BD], EXACT) + _cases([GCOORD_GCJ_BD], TIGHT) + [
    (g, b, TIGHT) for _, g, b in GCOORD_CITIES.values()
]
# coordtransform and gcoord invert BD-09 with the one-step closed form, which
# differs from our exact (iterated) inverse by up to ~10 cm: held to 1 m.
BD_TO_GCJ = _cases([CT_BD_GCJ, GCOORD_BD_GCJ], LOOSE) + [
    (b, g, LOOSE) for _, g, b in GCOORD_CITIES.values()
]
WGS_TO_BD = _cases([GCOORD_WGS_BD], TIGHT) + [(w, b, LOOSE) for w, _, b in GCOORD_CITIES.values()]
BD_TO_WGS = _cases([GCOORD_BD_WGS], LOOSE) + [(b, w, LOOSE) for w, _, b in GCOORD_CITIES.values()]


@pytest.mark.parametrize(
    ("func", "cases"),
    [
        (wgs84_to_gcj02, WGS_TO_GCJ),
        (gcj02_to_wgs84, GCJ_TO_WGS),
        (gcj02_to_bd09, GCJ_TO_BD),
        (bd09_to_gcj02, BD_TO_GCJ),
        (wgs84_to_bd09, WGS_TO_BD),
        (bd09_to_wgs84, BD_TO_WGS),
    ],
    ids=["wgs84-gcj02", "gcj02-wgs84", "gcj02-bd09", "bd09-gcj02", "wgs84-bd09", "bd09-wgs84"],
)
def test_published_reference_pairs(func, cases):
    assert len(cases) >= 3
    for (lon, lat), (exp_lon, exp_lat), tol in cases:
        got_lon, got_lat = func(lon, lat)
        d = float(dist_m(got_lon, got_lat, exp_lon, exp_lat))
        assert d < tol, f"{func.__name__}({lon}, {lat}) is {d:.3f} m from {exp_lon}, {exp_lat}"


def test_reference_pairs_vectorised():
    """Converting all reference points at once gives the same as one by one."""
    src = np.array([w for w, _, _ in GCOORD_CITIES.values()])
    exp = np.array([g for _, g, _ in GCOORD_CITIES.values()])
    lon, lat = wgs84_to_gcj02(src[:, 0], src[:, 1])
    assert lon.shape == lat.shape == (len(src),)
    assert np.all(dist_m(lon, lat, exp[:, 0], exp[:, 1]) < LOOSE)
    for i, (x, y) in enumerate(src):
        assert (lon[i], lat[i]) == wgs84_to_gcj02(x, y)


def test_exact_inverse_beats_one_step_approximation():
    """The one-step inverse ``g - offset(g)`` is off by metres; ours is not."""
    # wandergis/coordtransform README.md: gcj02towgs84(116.404, 39.915), which
    # is that one-step approximation. Ours lies within a few metres of it ...
    approx = (116.39775550083061, 39.91359571849836)
    lon, lat = gcj02_to_wgs84(116.404, 39.915)
    assert float(dist_m(lon, lat, *approx)) < 5.0
    # ... but maps back onto the input far more precisely.
    assert float(dist_m(*wgs84_to_gcj02(lon, lat), 116.404, 39.915)) < 1e-3
    assert float(dist_m(*wgs84_to_gcj02(*approx), 116.404, 39.915)) > 0.01

    # Over a Wuhan-sized area the one-step approximation misses by > 1 m.
    glon, glat = _wuhan_points()
    fx, fy = wgs84_to_gcj02(glon, glat)
    one_lon, one_lat = 2 * glon - fx, 2 * glat - fy
    one_err = dist_m(*wgs84_to_gcj02(one_lon, one_lat), glon, glat)
    assert one_err.max() > 1.0
    exact_err = dist_m(*wgs84_to_gcj02(*gcj02_to_wgs84(glon, glat)), glon, glat)
    assert exact_err.max() < 1e-3


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------
def _china_points(n: int = 4000, seed: int = 20240601):
    rng = np.random.default_rng(seed)
    # Inside the mainland-China box with a margin, so the offset never pushes a
    # point across the box edge.
    return rng.uniform(73.0, 135.0, n), rng.uniform(18.0, 53.5, n)


def _wuhan_points(n: int = 2000, seed: int = 430000):
    rng = np.random.default_rng(seed)
    return rng.uniform(114.0, 114.6, n), rng.uniform(30.3, 30.8, n)


@pytest.mark.parametrize("points", [_china_points, _wuhan_points], ids=["china", "wuhan"])
@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84), (gcj02_to_bd09, bd09_to_gcj02)],
    ids=["gcj02", "bd09", "gcj02-bd09"],
)
def test_round_trip_within_1m(points, forward, inverse):
    lon, lat = points()
    fx, fy = forward(lon, lat)
    # The conversion really moves the points (tens to hundreds of metres) ...
    assert np.all(dist_m(lon, lat, fx, fy) > 10.0)
    bx, by = inverse(fx, fy)
    # ... and the inverse brings them back to well under a metre.
    err = dist_m(lon, lat, bx, by)
    assert err.max() < 1.0
    assert err.max() < 0.01  # iterative inverse: millimetre level in practice
    # Inverse then forward is the identity too.
    ix, iy = inverse(lon, lat)
    fx2, fy2 = forward(ix, iy)
    assert dist_m(lon, lat, fx2, fy2).max() < 0.01


def test_wuhan_offset_magnitude():
    lon, lat = 114.3, 30.6
    d_gcj = float(dist_m(lon, lat, *wgs84_to_gcj02(lon, lat)))
    assert 300.0 < d_gcj < 700.0
    # BD-09 stacks roughly another kilometre on top of GCJ-02.
    d_bd = float(dist_m(lon, lat, *wgs84_to_bd09(lon, lat)))
    assert 700.0 < d_bd < 2000.0


def test_offsets_across_china_are_plausible():
    lon, lat = _china_points()
    d = dist_m(lon, lat, *wgs84_to_gcj02(lon, lat))
    # The GCJ-02 offset is smallest in the far west and about 100-700 m in
    # most of the country.
    assert d.min() > 10.0
    assert np.percentile(d, 5) > 50.0
    assert d.max() < 1000.0
    wlon, wlat = _wuhan_points()
    dw = dist_m(wlon, wlat, *wgs84_to_gcj02(wlon, wlat))
    assert dw.min() > 300.0 and dw.max() < 700.0


# ---------------------------------------------------------------------------
# Outside China, shapes and types
# ---------------------------------------------------------------------------
OUTSIDE = [
    (2.3522, 48.8566),  # Paris
    (-74.006, 40.7128),  # New York
    (139.6917, 35.6895),  # Tokyo: east of the box
    (106.9057, 56.5),  # north of the box
    (103.8198, 0.5),  # south of the box
    (71.9, 39.0),  # west of the box
]


@pytest.mark.parametrize("func", ALL_FUNCS, ids=lambda f: f.__name__)
def test_outside_china_unchanged(func):
    lon = np.array([p[0] for p in OUTSIDE])
    lat = np.array([p[1] for p in OUTSIDE])
    out_lon, out_lat = func(lon, lat)
    np.testing.assert_array_equal(out_lon, lon)
    np.testing.assert_array_equal(out_lat, lat)
    for x, y in OUTSIDE:
        assert func(x, y) == (x, y)


@pytest.mark.parametrize("system", COORD_SYSTEMS)
def test_dispatch_outside_china_unchanged(system):
    for x, y in OUTSIDE:
        assert to_wgs84(x, y, system) == (x, y)
        assert from_wgs84(x, y, system) == (x, y)


def test_mixed_inside_and_outside():
    lon = np.array([114.3, 2.3522, 121.47])
    lat = np.array([30.6, 48.8566, 31.23])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon[1] == lon[1] and glat[1] == lat[1]
    assert glon[0] != lon[0] and glon[2] != lon[2]
    assert (glon[0], glat[0]) == wgs84_to_gcj02(114.3, 30.6)


@pytest.mark.parametrize("func", ALL_FUNCS, ids=lambda f: f.__name__)
def test_scalars_in_scalars_out(func):
    for lon, lat in [(114.3, 30.6), (114, 30), (np.float64(114.3), np.float32(30.6))]:
        out = func(lon, lat)
        assert isinstance(out, tuple) and len(out) == 2
        assert all(type(v) is float for v in out)


@pytest.mark.parametrize("func", ALL_FUNCS, ids=lambda f: f.__name__)
def test_arrays_keep_shape(func):
    lon, lat = _wuhan_points(12)
    lon2, lat2 = lon.reshape(3, 4), lat.reshape(3, 4)
    lon_before, lat_before = lon2.copy(), lat2.copy()
    out_lon, out_lat = func(lon2, lat2)
    assert isinstance(out_lon, np.ndarray) and isinstance(out_lat, np.ndarray)
    assert out_lon.shape == out_lat.shape == (3, 4)
    # Same values as the flat call, and the inputs are not modified.
    flat_lon, flat_lat = func(lon, lat)
    np.testing.assert_array_equal(out_lon.ravel(), flat_lon)
    np.testing.assert_array_equal(out_lat.ravel(), flat_lat)
    np.testing.assert_array_equal(lon2, lon_before)
    np.testing.assert_array_equal(lat2, lat_before)


def test_lists_broadcasting_and_empty():
    lon, lat = wgs84_to_gcj02([114.3, 114.4], [30.6, 30.7])
    assert lon.shape == (2,)
    lon, lat = wgs84_to_gcj02(np.array([114.3, 114.4]), 30.6)
    assert lon.shape == lat.shape == (2,)
    assert (lon[0], lat[0]) == wgs84_to_gcj02(114.3, 30.6)
    lon, lat = gcj02_to_wgs84(np.array([]), np.array([]))
    assert lon.shape == lat.shape == (0,)


def test_nan_passes_through():
    lon, lat = gcj02_to_wgs84(np.array([114.3, np.nan]), np.array([30.6, 30.6]))
    assert np.isfinite(lon[0]) and np.isnan(lon[1])
    assert all(np.isnan(v) for v in bd09_to_wgs84(np.nan, np.nan))


# ---------------------------------------------------------------------------
# Names and dispatch
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("wgs84", "wgs84"),
        ("WGS84", "wgs84"),
        ("WGS-84", "wgs84"),
        ("wgs_84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("epsg:4326", "wgs84"),
        ("gps", "wgs84"),
        ("gcj02", "gcj02"),
        ("GCJ-02", "gcj02"),
        ("gcj-02", "gcj02"),
        ("amap", "gcj02"),
        ("Gaode", "gcj02"),
        ("tencent", "gcj02"),
        ("mars", "gcj02"),
        ("bd09", "bd09"),
        ("BD-09", "bd09"),
        ("bd-09", "bd09"),
        ("baidu", "bd09"),
        ("  Baidu ", "bd09"),
        ("bd09ll", "bd09"),
    ],
)
def test_normalize_aliases(alias, expected):
    assert normalize_coord_system(alias) == expected


@pytest.mark.parametrize("bad", ["utm", "bd09mc", "epsg:3857", "", "google", None, 4326])
def test_unknown_system_raises_input_error(bad):
    with pytest.raises(InputError) as info:
        normalize_coord_system(bad)
    msg = str(info.value)
    for name in COORD_SYSTEMS:
        assert name in msg
    with pytest.raises(InputError):
        to_wgs84(114.3, 30.6, bad)
    with pytest.raises(InputError):
        from_wgs84(114.3, 30.6, bad)
    # InputError is a ValueError, so generic handlers catch it as well.
    with pytest.raises(ValueError):
        to_wgs84(114.3, 30.6, bad)


def test_coord_systems_constant():
    assert COORD_SYSTEMS == ("wgs84", "gcj02", "bd09")
    assert coords.COORD_SYSTEMS is COORD_SYSTEMS


def test_dispatch_matches_direct_functions():
    lon, lat = _wuhan_points(50)
    np.testing.assert_array_equal(to_wgs84(lon, lat, "wgs84")[0], lon)
    np.testing.assert_array_equal(from_wgs84(lon, lat, "WGS-84")[1], lat)
    for name, fwd, inv in [
        ("Gaode", wgs84_to_gcj02, gcj02_to_wgs84),
        ("BD-09", wgs84_to_bd09, bd09_to_wgs84),
    ]:
        np.testing.assert_array_equal(from_wgs84(lon, lat, name)[0], fwd(lon, lat)[0])
        np.testing.assert_array_equal(to_wgs84(lon, lat, name)[1], inv(lon, lat)[1])


def test_to_wgs84_identity_returns_copy():
    lon = np.array([114.3, 114.4])
    lat = np.array([30.6, 30.7])
    out_lon, _ = to_wgs84(lon, lat, "wgs84")
    out_lon[0] = 0.0
    assert lon[0] == 114.3
