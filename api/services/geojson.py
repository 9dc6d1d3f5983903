"""GeoJSON from geoplan's frames: WGS84, rounded, with plain JSON properties."""

from __future__ import annotations

import json
import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

#: Coordinates are rounded to this many decimals of a degree (about 0.1 m).
DECIMALS = 6


def plain(value: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN and inf as None."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if not math.isfinite(value) else round(value, 4)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (str, int)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def geometry_json(geometries, *, tolerance_deg: float = 0.0) -> list[str]:
    """GeoJSON geometry strings of WGS84 geometries (optionally simplified)."""
    geoms = np.asarray(geometries, dtype=object)
    if tolerance_deg > 0:
        geoms = shapely.simplify(geoms, tolerance_deg, preserve_topology=True)
    geoms = shapely.set_precision(geoms, 10.0**-DECIMALS)
    return [shapely.to_geojson(g) if g is not None and not g.is_empty else "null" for g in geoms]


def feature_collection(frame: gpd.GeoDataFrame, *, properties: list[str] | None = None, index_as: str | None = None,
                       tolerance_m: float = 0.0, extra: dict | None = None) -> dict:
    """A FeatureCollection dict of ``frame`` in WGS84, with the given properties (default: every column)."""
    if frame.crs is not None and tolerance_m > 0 and not frame.crs.is_geographic:
        frame = frame.set_geometry(frame.geometry.simplify(tolerance_m, preserve_topology=True))
    wgs = frame.to_crs(4326) if frame.crs is not None else frame
    columns = properties if properties is not None else [c for c in frame.columns if c != frame.geometry.name]
    columns = [c for c in columns if c in wgs.columns]
    geoms = geometry_json(wgs.geometry.to_numpy())
    features = []
    records = wgs[columns].to_dict(orient="records") if columns else [{} for _ in range(len(wgs))]
    for key, record, geom in zip(wgs.index, records, geoms):
        props = {k: plain(v) for k, v in record.items()}
        if index_as:
            props = {index_as: plain(key), **props}
        features.append({"type": "Feature", "geometry": json.loads(geom), "properties": props})
    collection = {"type": "FeatureCollection", "features": features}
    if extra:
        collection.update(extra)
    return collection
