"""Sites: existing facilities and candidate locations for new ones.

Facility lists come from a user's CSV, GeoJSON or GeoPackage, in WGS84, GCJ-02
(Amap/Tencent) or BD-09 (Baidu) coordinates, or from OSM tags. Candidates come
from community units (a point on a street inside each unit), from a user file,
or from the street network itself. Every frame is indexed by ``site_id``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan import _files
from geoplan.coords import normalize_coord_system, to_wgs84
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from geoplan.network import WalkNetwork
from geoplan.snapping import point_on_streets_within

log = logging.getLogger(__name__)

SITE_COLUMNS = ["name", "kind", "status", "capacity", "cost", "geometry"]
FACILITY_KINDS = ("station", "canteen", "centre")

_LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
_LAT_NAMES = ("lat", "latitude", "y", "纬度")
_ID_NAMES = ("site_id", "id", "编号")
_NAME_NAMES = ("name", "名称", "机构名称")
_KIND_NAMES = ("kind", "type", "类型")
_OSM_CARE_TAGS = {"amenity": ["social_facility", "nursing_home"], "social_facility": True}


def load_facilities(
    path: str | Path,
    *,
    crs,
    boundary: gpd.GeoDataFrame | None = None,
    coord_system: str = "wgs84",
    kind: str = "station",
    status: str = "existing",
    outside: str = "error",
) -> gpd.GeoDataFrame:
    """Read a facility (or candidate) list from CSV, GeoJSON or GeoPackage.

    Parameters
    ----------
    path
        CSV with longitude/latitude columns (``lon``/``lng``/``longitude``/``经度``
        and ``lat``/``latitude``/``纬度``) or a point layer in lon/lat.
        Optional columns: ``site_id``/``id``, ``name``/``名称``, ``kind``,
        ``capacity``, ``cost``.
    crs
        The metric CRS of the result.
    boundary
        The region; points outside it are an error that lists them, or are
        dropped with a warning when ``outside="drop"``.
    coord_system
        ``"wgs84"``, ``"gcj02"`` (Amap, Tencent) or ``"bd09"`` (Baidu).
    kind
        Facility kind for rows without a ``kind`` column: ``station``,
        ``canteen`` or ``centre``.
    status
        ``"existing"`` or ``"candidate"``.
    """
    coord_system = normalize_coord_system(coord_system)
    if outside not in ("error", "drop"):
        raise InputError(f"outside must be 'error' or 'drop', got {outside!r}.")
    path = _files.existing_file(path, what="facility")
    if path.suffix.lower() in (".csv", ".txt"):
        table, lon, lat = _read_csv_points(path)
        file_crs = None
    else:
        layer = _files.read_vector(path, what="facility")
        if layer.crs is None:
            raise CRSMismatchError(f"The facility layer {path} has no CRS; save it with one (EPSG:4326 for lon/lat).")
        if coord_system != "wgs84" and not layer.crs.is_geographic:
            raise CRSMismatchError(
                f"{path} is in {layer.crs.to_string()}, a projected CRS, but coord_system={coord_system!r} "
                "describes longitude/latitude offsets. Export the layer in lon/lat or use coord_system='wgs84'."
            )
        layer = layer[layer.geometry.notna() & ~layer.geometry.is_empty]
        if not (layer.geom_type == "Point").all():
            layer = layer.set_geometry(layer.geometry.representative_point())
        file_crs = layer.crs
        points = layer.geometry.to_crs(4326) if layer.crs.is_geographic else layer.geometry
        lon, lat = points.x.to_numpy(), points.y.to_numpy()
        table = pd.DataFrame(layer.drop(columns=layer.geometry.name))

    if file_crs is None or file_crs.is_geographic:
        _check_lon_lat(lon, lat, table, path)
        lon, lat = to_wgs84(lon, lat, coord_system)
        geometry = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326)
    else:
        geometry = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=file_crs)

    sites = _site_frame(table, geometry, kind=kind, status=status, path=path).to_crs(crs)
    if boundary is not None:
        sites = _inside_region(sites, boundary.to_crs(crs), path, coord_system, outside)
    log.info("sites: %d %s facilities from %s (%s)", len(sites), status, path.name, coord_system)
    return sites


def facilities_from_osm(path: str | Path, *, crs, boundary: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Care facilities tagged in an OSM XML extract (amenity=social_facility/nursing_home, social_facility=*)."""
    import osmnx as ox

    path = _files.existing_file(path, what="OSM extract")
    try:
        features = ox.features_from_xml(path, tags=_OSM_CARE_TAGS)
    except ox._errors.InsufficientResponseError:
        features = gpd.GeoDataFrame(geometry=[], crs=4326)
    except Exception as exc:
        raise InputError(f"Cannot read OSM features from {path}: {exc}") from exc
    if features.empty:
        return empty_sites(crs)
    table = pd.DataFrame({"name": features.get("name", pd.Series(index=features.index, dtype=object))})
    table["site_id"] = [f"osm-{t}-{i}" for t, i in features.index]
    geometry = features.geometry.representative_point().reset_index(drop=True)
    sites = _site_frame(table.reset_index(drop=True), geometry, kind="station", status="existing", path=path).to_crs(crs)
    if boundary is not None:
        sites = sites[sites.within(shapely.union_all(boundary.to_crs(crs).geometry.to_numpy()))]
    return sites


def candidates_from_communities(network: WalkNetwork, communities: gpd.GeoDataFrame, *, kind: str = "station") -> gpd.GeoDataFrame:
    """One candidate per community unit: the point on a street inside the unit nearest its centre."""
    points = point_on_streets_within(network, communities.geometry)
    table = pd.DataFrame(
        {
            "site_id": [f"c{uid}" for uid in communities.index],
            "name": [f"社区 community unit {uid}" for uid in communities.index],
            "unit_id": communities.index.to_numpy(),
        }
    )
    return _site_frame(table, points.reset_index(drop=True), kind=kind, status="candidate", path=None)


def candidates_from_network(
    network: WalkNetwork, boundary: gpd.GeoDataFrame, *, spacing_m: float = 300.0, kind: str = "station"
) -> gpd.GeoDataFrame:
    """Street junctions inside the region, thinned to about one per ``spacing_m`` square."""
    if spacing_m <= 0:
        raise InputError(f"spacing_m must be positive, got {spacing_m}.")
    region = shapely.union_all(boundary.to_crs(network.crs).geometry.to_numpy())
    nodes = network.nodes[shapely.contains_xy(region, network.nodes["x"], network.nodes["y"])]
    cell = np.floor(nodes[["x", "y"]].to_numpy() / spacing_m).astype(np.int64)
    centre = (cell + 0.5) * spacing_m
    offset = np.hypot(*(nodes[["x", "y"]].to_numpy() - centre).T)
    order = pd.DataFrame({"cx": cell[:, 0], "cy": cell[:, 1], "d": offset}, index=nodes.index).sort_values("d")
    chosen = nodes.loc[order.drop_duplicates(["cx", "cy"]).index].sort_index()
    table = pd.DataFrame({"site_id": [f"n{n}" for n in chosen.index], "name": [f"junction {n}" for n in chosen.index]})
    return _site_frame(table, chosen.geometry.reset_index(drop=True), kind=kind, status="candidate", path=None)


def empty_sites(crs) -> gpd.GeoDataFrame:
    """A site frame with no rows (a region without known facilities)."""
    frame = gpd.GeoDataFrame(
        {c: pd.Series(dtype=object if c in ("name", "kind", "status") else float) for c in SITE_COLUMNS[:-1]},
        geometry=gpd.GeoSeries([], crs=crs),
    )
    frame.index = pd.Index([], name="site_id", dtype=object)
    return frame


def _read_csv_points(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    try:
        table = pd.read_csv(path, encoding="utf-8-sig")
    except UnicodeDecodeError:
        table = pd.read_csv(path, encoding="gb18030")  # files saved by Excel on Chinese Windows
    except pd.errors.EmptyDataError as exc:
        raise EmptyDataError(f"The facility file {path} is empty.") from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"Cannot read {path} as CSV: {exc}") from exc
    if table.empty:
        raise EmptyDataError(f"The facility file {path} has a header but no rows.")
    lon_col = _find_column(table, _LON_NAMES)
    lat_col = _find_column(table, _LAT_NAMES)
    if lon_col is None or lat_col is None:
        raise InputError(
            f"{path} needs longitude and latitude columns (e.g. 'lon' and 'lat', or '经度' and '纬度'); "
            f"it has {list(table.columns)}."
        )
    lon = pd.to_numeric(table[lon_col], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(table[lat_col], errors="coerce").to_numpy(dtype=float)
    return table.drop(columns=[lon_col, lat_col]), lon, lat


def _check_lon_lat(lon: np.ndarray, lat: np.ndarray, table: pd.DataFrame, path: Path) -> None:
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        raise InputError(f"{path}: rows {_row_list(np.flatnonzero(bad))} have no usable longitude/latitude.")
    swapped = (np.abs(lon) <= 90) & (np.abs(lat) > 90)
    out_of_range = (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if out_of_range.any():
        hint = " Longitude and latitude look swapped." if swapped.any() else (
            " These look like projected metres, not degrees: give lon/lat, or a layer with its projected CRS."
        )
        raise CRSMismatchError(f"{path}: rows {_row_list(np.flatnonzero(out_of_range))} are not valid lon/lat.{hint}")


def _site_frame(table: pd.DataFrame, geometry: gpd.GeoSeries, *, kind: str, status: str, path: Path | None) -> gpd.GeoDataFrame:
    if kind not in FACILITY_KINDS:
        raise InputError(f"Unknown facility kind {kind!r}; use one of {', '.join(FACILITY_KINDS)}.")
    table = table.reset_index(drop=True)
    id_col = _find_column(table, _ID_NAMES)
    prefix = "f" if status == "existing" else "k"
    ids = table[id_col].astype(str) if id_col else pd.Series([f"{prefix}{i + 1:03d}" for i in range(len(table))])
    if ids.duplicated().any():
        raise InputError(f"{path}: site ids repeat: {sorted(set(ids[ids.duplicated()]))[:10]}. Give each facility its own id.")
    name_col = _find_column(table, _NAME_NAMES)
    kind_col = _find_column(table, _KIND_NAMES)
    kinds = table[kind_col].astype(str).str.lower() if kind_col else pd.Series(kind, index=table.index)
    unknown = sorted(set(kinds) - set(FACILITY_KINDS))
    if unknown:
        raise InputError(f"{path}: unknown facility kinds {unknown}; use {', '.join(FACILITY_KINDS)}.")
    frame = gpd.GeoDataFrame(
        {
            "name": table[name_col].astype(str).to_numpy() if name_col else ids.to_numpy(),
            "kind": kinds.to_numpy(),
            "status": status,
            "capacity": _number_column(table, "capacity", path),
            "cost": _number_column(table, "cost", path, default=1.0),
        },
        geometry=geometry.to_numpy(),
        crs=geometry.crs,
        index=pd.Index(ids.to_numpy(), name="site_id"),
    )
    for extra in ("unit_id",):
        if extra in table:
            frame[extra] = table[extra].to_numpy()
    return frame


def _number_column(table: pd.DataFrame, name: str, path: Path | None, default: float = np.nan) -> np.ndarray:
    if name not in table:
        return np.full(len(table), default)
    values = pd.to_numeric(table[name], errors="coerce")
    bad = values.isna() & table[name].notna() | (values < 0)
    if bad.any():
        raise InputError(f"{path}: column {name!r} must hold numbers >= 0; rows {_row_list(np.flatnonzero(bad))} do not.")
    return values.fillna(default).to_numpy(dtype=float)


def _inside_region(sites: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame, path: Path, coord_system: str, outside: str) -> gpd.GeoDataFrame:
    region = shapely.union_all(boundary.geometry.to_numpy())
    inside = sites.within(region)
    if inside.all():
        return sites
    listed = ", ".join(f"{i} ({n})" for i, n in zip(sites.index[~inside][:10], sites["name"][~inside][:10]))
    more = f" and {(~inside).sum() - 10} more" if (~inside).sum() > 10 else ""
    if outside == "drop":
        log.warning("sites: %d facilities outside the region were left out: %s%s", (~inside).sum(), listed, more)
        return sites[inside]
    raise InputError(
        f"{(~inside).sum()} of {len(sites)} facilities in {path.name} lie outside the region: {listed}{more}. "
        f"They were read as {coord_system}; if the list comes from Amap/Tencent use coord_system='gcj02', "
        "from Baidu 'bd09'. Otherwise remove them, or pass outside='drop' (CLI: --drop-outside) to leave them out."
    )


def _find_column(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lower = {str(c).strip().lower(): c for c in table.columns}
    return next((lower[n] for n in names if n in lower), None)


def _row_list(positions: np.ndarray) -> str:
    shown = ", ".join(str(p + 1) for p in positions[:10])  # 1-based data rows, as a planner counts them
    return shown + (f" and {len(positions) - 10} more" if len(positions) > 10 else "")
