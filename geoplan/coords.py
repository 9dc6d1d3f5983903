"""Conversions between WGS84, GCJ-02 and BD-09 longitude/latitude.

Facility lists exported from Chinese web maps are rarely in WGS84:

* **GCJ-02** ("Mars coordinates") is used by Amap/Gaode, Tencent/QQ Maps and
  Apple/Google maps inside China. It adds a non-linear offset of roughly
  300-700 m to WGS84.
* **BD-09** is used by Baidu Maps. It adds a second offset of about 1 km on top
  of GCJ-02.

All functions take longitude first, then latitude, in degrees. They accept
scalars or array-likes (broadcast against each other), work element-wise on
numpy arrays and return the broadcast shape; two scalars give two Python
floats back.

Only points inside the rough mainland-China bounding box
(lon 72.004..137.8347, lat 0.8293..55.8271, bounds included) are shifted; all
other points are returned unchanged, as the published converters do. The box
is a coarse rule: it also covers parts of neighbouring countries, and it does
not follow the Hong Kong, Macau or Taiwan boundaries. BD-09 follows the same
rule, so a point outside the box is the same in all three systems.

The forward formulas (WGS84 -> GCJ-02 on the Krasovsky 1940 ellipsoid and
GCJ-02 -> BD-09 with ``x_pi = pi * 3000 / 180``) are the widely published ones.
The inverses have no closed form; they are solved by fixed-point iteration
until every point moves by less than ``1e-9`` degree (about 0.1 mm), so a round
trip is exact to far below one metre.
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geoplan.errors import InputError

__all__ = [
    "COORD_SYSTEMS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "normalize_coord_system",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

#: Canonical names of the supported geographic coordinate systems.
COORD_SYSTEMS: tuple[str, ...] = ("wgs84", "gcj02", "bd09")

FloatOrArray = Union[float, NDArray[np.float64]]

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 obfuscation.
_A = 6378245.0
_EE = 0.00669342162296594323
# Baidu's BD-09 constant.
_X_PI = np.pi * 3000.0 / 180.0

# Rough mainland-China bounding box used by the published converters.
_LON_MIN, _LON_MAX = 72.004, 137.8347
_LAT_MIN, _LAT_MAX = 0.8293, 55.8271

_TOL_DEG = 1e-9
_MAX_ITER = 50

_ALIASES: dict[str, str] = {
    # WGS84
    "wgs84": "wgs84",
    "wgs": "wgs84",
    "epsg:4326": "wgs84",
    "epsg4326": "wgs84",
    "4326": "wgs84",
    "crs84": "wgs84",
    "ogc:crs84": "wgs84",
    "gps": "wgs84",
    # GCJ-02
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "mars": "gcj02",
    "amap": "gcj02",
    "gaode": "gcj02",
    "autonavi": "gcj02",
    "tencent": "gcj02",
    "qq": "gcj02",
    "soso": "gcj02",
    # BD-09
    "bd09": "bd09",
    "bd09ll": "bd09",
    "bd": "bd09",
    "baidu": "bd09",
}


def normalize_coord_system(name: str) -> str:
    """Return the canonical name of a coordinate system.

    Parameters
    ----------
    name : str
        A name or common alias, case-insensitive: ``"WGS-84"``, ``"EPSG:4326"``,
        ``"gcj-02"``, ``"amap"``, ``"gaode"``, ``"tencent"``, ``"baidu"``,
        ``"BD-09"`` and so on. Spaces, hyphens and underscores are ignored.

    Returns
    -------
    str
        One of :data:`COORD_SYSTEMS`.

    Raises
    ------
    InputError
        If the name is not a string or not a known system or alias.
    """
    key = None
    if isinstance(name, str):
        key = name.strip().lower()
        for ch in " -_":
            key = key.replace(ch, "")
    if key not in _ALIASES:
        raise InputError(
            f"Unknown coordinate system {name!r}: use one of "
            f"{', '.join(repr(s) for s in COORD_SYSTEMS)} "
            "(aliases such as 'WGS-84', 'EPSG:4326', 'GCJ-02', 'amap', 'gaode', "
            "'tencent', 'baidu' and 'BD-09' are accepted)."
        )
    return _ALIASES[key]


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return x.copy(), y.copy()


def _out(x: np.ndarray, y: np.ndarray) -> tuple[FloatOrArray, FloatOrArray]:
    if x.ndim == 0:
        return float(x), float(y)
    return x, y


def _in_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Boolean mask of points inside the rough mainland-China bounding box."""
    return (lon >= _LON_MIN) & (lon <= _LON_MAX) & (lat >= _LAT_MIN) & (lat <= _LAT_MAX)


def _gcj_offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 position (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    xpi = x * np.pi
    ypi = y * np.pi
    common = (20.0 * np.sin(6.0 * xpi) + 20.0 * np.sin(2.0 * xpi)) * 2.0 / 3.0
    sqrt_abs_x = np.sqrt(np.abs(x))

    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
        + common
        + (20.0 * np.sin(ypi) + 40.0 * np.sin(ypi / 3.0)) * 2.0 / 3.0
        + (160.0 * np.sin(ypi / 12.0) + 320.0 * np.sin(ypi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
        + common
        + (20.0 * np.sin(xpi) + 40.0 * np.sin(xpi / 3.0)) * 2.0 / 3.0
        + (150.0 * np.sin(xpi / 12.0) + 300.0 * np.sin(xpi / 30.0)) * 2.0 / 3.0
    )

    radlat = np.radians(lat)
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (_A / sqrt_magic * np.cos(radlat) * np.pi)
    return dlon, dlat


def _gcj_forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _bd_forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_backward_approx(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 0.0065
    y = lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


_Forward = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _invert(
    forward: _Forward,
    lon: np.ndarray,
    lat: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``forward(x, y) == (lon, lat)`` by fixed-point iteration from (x, y)."""
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y)
        ex = fx - lon
        ey = fy - lat
        x = x - ex
        y = y - ey
        err = np.maximum(np.abs(ex), np.abs(ey))
        if not np.any(err >= _TOL_DEG):  # also stops when only NaNs are left
            break
    return x, y


def _inside_china(transform, lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Apply ``transform`` (arrays in, arrays out) to the points inside the mainland-China box only."""
    x, y = _as_arrays(lon, lat)
    inside = _in_china(x, y)
    if np.any(inside):
        x[inside], y[inside] = transform(x[inside], y[inside])
    return _out(x, y)


def _gcj_backward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dlon, dlat = _gcj_offset(lon, lat)
    return _invert(_gcj_forward, lon, lat, lon - dlon, lat - dlat)


def _bd_backward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _invert(_bd_forward, lon, lat, *_bd_backward_approx(lon, lat))


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert WGS84 longitude/latitude to GCJ-02 (Amap, Tencent).

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        GCJ-02 coordinates, floats for scalar input, else arrays of the
        broadcast shape. Points outside the mainland-China box are unchanged.
    """
    return _inside_china(_gcj_forward, lon, lat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert GCJ-02 longitude/latitude (Amap, Tencent) to WGS84.

    The inverse is solved iteratively until the correction is below 1e-9
    degree, so ``wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))`` reproduces the
    input to well under a millimetre.

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        WGS84 coordinates, floats for scalar input, else arrays of the broadcast
        shape. Points outside the mainland-China box are unchanged.
    """
    return _inside_china(_gcj_backward, lon, lat)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert GCJ-02 longitude/latitude to BD-09 (Baidu).

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        BD-09 coordinates, floats for scalar input, else arrays of the
        broadcast shape. Points outside the mainland-China box are unchanged.
    """
    return _inside_china(_bd_forward, lon, lat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert BD-09 longitude/latitude (Baidu) to GCJ-02.

    Starts from the usual closed-form approximation and refines it
    iteratively, so it is the exact inverse of :func:`gcj02_to_bd09`.

    Parameters
    ----------
    lon, lat : float or array_like
        BD-09 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        GCJ-02 coordinates, floats for scalar input, else arrays of the
        broadcast shape. Points outside the mainland-China box are unchanged.
    """
    return _inside_china(_bd_backward, lon, lat)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert WGS84 longitude/latitude to BD-09 (Baidu), via GCJ-02.

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        BD-09 coordinates, same shape rules as :func:`wgs84_to_gcj02`.
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert BD-09 longitude/latitude (Baidu) to WGS84, via GCJ-02.

    Parameters
    ----------
    lon, lat : float or array_like
        BD-09 longitude and latitude in degrees; broadcast against each other.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        WGS84 coordinates, same shape rules as :func:`gcj02_to_wgs84`.
    """
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _identity(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatOrArray, FloatOrArray]:
    return _out(*_as_arrays(lon, lat))


_TO_WGS84 = {"wgs84": _identity, "gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}
_FROM_WGS84 = {"wgs84": _identity, "gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}


def to_wgs84(
    lon: ArrayLike, lat: ArrayLike, coord_system: str
) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert coordinates given in ``coord_system`` to WGS84.

    Parameters
    ----------
    lon, lat : float or array_like
        Longitude and latitude in degrees; broadcast against each other.
    coord_system : str
        Source system, ``"wgs84"``, ``"gcj02"`` or ``"bd09"`` or an alias
        accepted by :func:`normalize_coord_system`.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        WGS84 coordinates (a copy, also for ``"wgs84"``).

    Raises
    ------
    InputError
        If ``coord_system`` is not a known name.
    """
    return _TO_WGS84[normalize_coord_system(coord_system)](lon, lat)


def from_wgs84(
    lon: ArrayLike, lat: ArrayLike, coord_system: str
) -> tuple[FloatOrArray, FloatOrArray]:
    """Convert WGS84 coordinates to ``coord_system``.

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 longitude and latitude in degrees; broadcast against each other.
    coord_system : str
        Target system, ``"wgs84"``, ``"gcj02"`` or ``"bd09"`` or an alias
        accepted by :func:`normalize_coord_system`.

    Returns
    -------
    lon, lat : float or numpy.ndarray
        Coordinates in the target system (a copy, also for ``"wgs84"``).

    Raises
    ------
    InputError
        If ``coord_system`` is not a known name.
    """
    return _FROM_WGS84[normalize_coord_system(coord_system)](lon, lat)
