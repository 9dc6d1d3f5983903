"""Shared fixtures: the real regions (loaded once per session) and small hand-built networks.

The regions are loaded with a session temporary cache directory, so the tests
neither read nor fill the user's ``~/.cache/geoplan``.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from tests.postgres import postgres_db, postgres_url  # noqa: F401  (the store tests run on a real PostgreSQL server too)
import shapely

from geoplan.network import WalkNetwork, build_walk_network
from geoplan.region import Region, load_region

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"
OSM_XML = DATA / "osm" / "wuhan_optics_valley_east.osm"
STREETS = DATA / "osm" / "wuhan_osm_streets_fua8989.parquet"
RASTER = DATA / "population" / "wuhan_worldpop2020_agegroups_100m.tif"
BOUNDARIES = DATA / "boundaries" / "wuhan_districts.geojson"
WUCHANG_TOML = DATA / "regions" / "wuchang.toml"

#: The metric CRS of the hand-built tests (UTM 50N, Wuhan's zone), and an origin inside it.
UTM50 = "EPSG:32650"
X0, Y0 = 240_000.0, 3_380_000.0


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A network cache for this test session only (shared with the doctests' region, geoplan/conftest.py)."""
    path = tmp_path_factory.getbasetemp() / "geoplan-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def wuchang(cache_dir) -> Region:
    """The shipped default region, loaded once."""
    return load_region("wuchang", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def jiangan(cache_dir) -> Region:
    """The second shipped region, loaded once."""
    return load_region("jiangan", cache_dir=cache_dir)


def lines_frame(coords: list[list[tuple[float, float]]], *, crs=UTM50, **columns) -> gpd.GeoDataFrame:
    """Street centrelines from lists of local (x, y) metres, shifted to the test origin."""
    geometry = [shapely.LineString([(X0 + x, Y0 + y) for x, y in line]) for line in coords]
    return gpd.GeoDataFrame(columns, geometry=geometry, crs=crs)


def points_frame(xy: dict, *, crs=UTM50, index_name: str, **columns) -> gpd.GeoDataFrame:
    """Points from ``{id: (x, y)}`` in local metres, shifted to the test origin."""
    ids = list(xy)
    geometry = gpd.points_from_xy([X0 + xy[i][0] for i in ids], [Y0 + xy[i][1] for i in ids])
    frame = gpd.GeoDataFrame(columns, geometry=geometry, crs=crs, index=ids)
    frame.index.name = index_name
    return frame


def tiny_network(coords: list[list[tuple[float, float]]], *, walk_speed_mps: float = 1.0) -> WalkNetwork:
    """A WalkNetwork built by geoplan from hand-drawn LineStrings (no u/v: joined at shared end points)."""
    return build_walk_network(lines_frame(coords), crs=UTM50, walk_speed_mps=walk_speed_mps)


def node_at(network: WalkNetwork, x: float, y: float) -> int:
    """The id of the network node at local (x, y); fails if there is none within 1 mm."""
    d = np.hypot(network.nodes["x"] - (X0 + x), network.nodes["y"] - (Y0 + y))
    assert d.min() < 1e-3, f"no node at ({x}, {y})"
    return d.idxmin()


def pytest_collection_modifyitems(config, items):
    """A test that needs a real region waits for it to load (~5 s): mark it slow."""
    for item in items:
        if {"wuchang", "jiangan"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
