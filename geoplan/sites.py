"""Sites: existing facilities and candidate locations for new ones.

Facility lists come from a user's CSV, Excel workbook (.xlsx/.xls), GeoJSON,
GeoPackage or shapefile, all read by :func:`load_facilities`, in WGS84, GCJ-02
(Amap/Tencent) or BD-09 (Baidu) coordinates, or from OSM tags. Candidates come
from community units (a point on a street inside each unit), from a user file,
or from the street network itself. Every frame is indexed by ``site_id``.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan import _files
from geoplan.coords import COORD_SYSTEMS, from_wgs84, normalize_coord_system, to_wgs84
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from geoplan.network import WalkNetwork
from geoplan.snapping import point_on_streets_within
from geoplan.tiers import ATTRIBUTES, KIND_NAMES, KINDS

log = logging.getLogger(__name__)

SITE_COLUMNS = ["name", "kind", "status", "capacity", "cost", "geometry"]
#: The largest capacity (people) and cost (yuan) one site may have: beyond them a value is a typo or a
#: unit mix-up, and the optimiser's numbers lose their meaning (a 1e308 cost makes every plan "infeasible").
MAX_SITE_CAPACITY = 1e7
MAX_SITE_COST = 1e12
FACILITY_KINDS = KINDS  # the tiers of geoplan.tiers

_LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
_LAT_NAMES = ("lat", "latitude", "y", "纬度")
_ID_NAMES = ("site_id", "id", "编号")
_NAME_NAMES = ("name", "名称", "机构名称")
_KIND_NAMES = ("kind", "tier", "type", "类型", "层级", "设施层级", "设施类型")
#: Column names read as each of :data:`geoplan.tiers.ATTRIBUTES`, compared after :func:`_header_key`
#: (full-width brackets made plain, case and spaces ignored, a unit in brackets dropped: 建筑面积（平方米） is 建筑面积).
_ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "floor_area_m2": ("floor_area_m2", "floor_area", "floor area", "建筑面积", "服务面积", "设施面积"),
    "land_m2": ("land_m2", "land_area_m2", "land_area", "land", "用地面积", "占地面积"),
    "beds": ("beds", "bed", "床位", "床位数", "总床位", "总床位数"),
    "nursing_beds": ("nursing_beds", "nursing beds", "护理型床位", "护理型床位数", "护理床位", "护理床位数"),
    "meals_per_day": ("meals_per_day", "meals", "日供餐能力", "供餐能力", "日供餐量", "日均供餐"),
    "street_code": ("street_code", "街道代码", "乡镇代码", "街道(乡镇)代码", "街道乡镇代码", "街道编码"),
    "community_code": ("community_code", "社区代码", "村代码", "社区(村)代码", "社区村代码", "社区编码"),
}
_CODE_ATTRIBUTES = ("street_code", "community_code")
#: Tier names a list may use instead of geoplan's kinds (the Chinese names of :data:`geoplan.tiers.KIND_NAMES` too).
_TIER_ALIASES: dict[str, str] = {
    **{zh: kind for kind, (zh, _en) in KIND_NAMES.items()},
    "养老服务站": "station", "社区养老服务站": "station", "日间照料站": "station", "社区日间照料站": "station",
    "日间照料中心": "station", "老年食堂": "canteen", "助餐点": "canteen", "老年助餐点": "canteen",
    "综合养老服务中心": "centre", "街道综合养老服务中心": "centre", "乡镇综合养老服务中心": "centre",
    "街道居家养老服务中心": "centre", "区级养老服务中心": "district_centre", "区养老服务指导中心": "district_centre",
    "养老院": "home", "敬老院": "home", "养老机构": "home", "nursing_home": "home",
}
#: How far outside the region (m) a facility may lie and still be a coordinate-system mix-up. Reading a list in
#: the wrong one of WGS84/GCJ-02/BD-09 shifts a point by 0.1-0.7 km (GCJ-02; ~0.5 km in Wuhan) or up to ~1.3 km
#: (BD-09 read as WGS84), so a facility inside the region lands at most that far outside; farther has another cause.
MIX_UP_M = 2_000.0
_SYSTEM_NAMES = {"wgs84": "GPS, OSM", "gcj02": "Amap/Tencent", "bd09": "Baidu"}
_HEADER_SEARCH_ROWS = 10  # a workbook's header may sit below this many title lines, less one
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
    sheet: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read a facility (or candidate) list from any site file: CSV, Excel, GeoJSON, GeoPackage, shapefile.

    The one reader of site files: the CLI, the API's uploads and region configs
    all come here. Tables (``.csv``/``.txt``, ``.xlsx``/``.xlsm``/``.xls``)
    follow the same column rules; any other file is read as a vector layer.

    Parameters
    ----------
    path
        A table with longitude/latitude columns (``lon``/``lng``/``longitude``/``经度``
        and ``lat``/``latitude``/``纬度``), or a point layer (other geometries
        stand at a representative point). Optional columns: ``site_id``/``id``/``编号``,
        ``name``/``名称``, ``kind``/``类型``, ``capacity``, ``cost``. In a workbook
        the header may sit below a few title lines.
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
    sheet
        Excel only: the sheet's name or 1-based position (default: the first sheet).

    Returns
    -------
    GeoDataFrame indexed by ``site_id`` with :data:`SITE_COLUMNS`; its
    ``attrs`` say where it came from (``source="file"``, ``path``, ``sheet``).
    Errors name the file and the rows as the planner numbers them (Excel's row
    numbers; the data rows of a CSV; the features of a layer).
    """
    coord_system = normalize_coord_system(coord_system)
    if outside not in ("error", "drop"):
        raise InputError(f"outside must be 'error' or 'drop', got {outside!r}.")
    path = _files.existing_file(path, what="facility")
    suffix = path.suffix.lower()
    if sheet is not None and suffix not in _files.EXCEL_SUFFIXES:
        raise InputError(f"sheet={sheet!r} chooses a sheet of an Excel workbook, but {path.name} is not one (.xlsx, .xls); leave it out.")
    label, sheet_name, file_crs = str(path), None, None
    if suffix in (".csv", ".txt"):
        table, lon, lat = lon_lat_columns(_read_csv(path), label)
    elif suffix in _files.EXCEL_SUFFIXES:
        rows, sheet_name = _read_excel(path, sheet)
        label = f"{path} (sheet {sheet_name!r})"
        table, lon, lat = lon_lat_columns(rows, label)
    else:
        table, lon, lat, file_crs = _read_layer(path, coord_system)

    lon_lat = file_crs is None or file_crs.is_geographic
    if lon_lat:
        check_lon_lat(lon, lat, table.index.to_numpy(), label)
        lon, lat = to_wgs84(lon, lat, coord_system)
        geometry = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326)
    else:
        geometry = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=file_crs)

    sites = _site_frame(table, geometry, kind=kind, status=status, path=label).to_crs(crs)
    if boundary is not None:
        sites = _inside_region(sites, boundary.to_crs(crs), path, coord_system, outside, lon_lat=lon_lat)
    sites.attrs.update(source="file", path=str(path), **({"sheet": sheet_name} if sheet_name else {}))
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
    sites.attrs.update(source="osm", path=str(path))
    return sites


def candidates_from_communities(network: WalkNetwork, communities: gpd.GeoDataFrame, *, kind: str = "station") -> gpd.GeoDataFrame:
    """One candidate per community unit: the point on a street inside the unit nearest its centre.

    The frame's ``attrs["source"]`` is ``"communities"``, so reports can say where candidates came from.
    """
    points = point_on_streets_within(network, communities.geometry)
    table = pd.DataFrame(
        {
            "site_id": [f"c{uid}" for uid in communities.index],
            "name": [f"社区 community unit {uid}" for uid in communities.index],
            "unit_id": communities.index.to_numpy(),
        }
    )
    frame = _site_frame(table, points.reset_index(drop=True), kind=kind, status="candidate", path=None)
    frame.attrs.update(source="communities")
    return frame


def candidates_from_network(
    network: WalkNetwork, boundary: gpd.GeoDataFrame, *, spacing_m: float = 300.0, kind: str = "station"
) -> gpd.GeoDataFrame:
    """Street junctions inside the region, thinned to about one per ``spacing_m`` square.

    The frame's ``attrs`` hold ``source="network"`` and ``spacing_m``, so reports can say where candidates came from.
    """
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
    frame = _site_frame(table, chosen.geometry.reset_index(drop=True), kind=kind, status="candidate", path=None)
    frame.attrs.update(source="network", spacing_m=spacing_m)
    return frame


def empty_sites(crs) -> gpd.GeoDataFrame:
    """A site frame with no rows (a region without known facilities)."""
    frame = gpd.GeoDataFrame(
        {c: pd.Series(dtype=object if c in ("name", "kind", "status") else float) for c in SITE_COLUMNS[:-1]},
        geometry=gpd.GeoSeries([], crs=crs),
    )
    frame.index = pd.Index([], name="site_id", dtype=object)
    return frame


def _read_layer(path: Path, coord_system: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, object]:
    """A vector layer's attributes (indexed by feature number), point coordinates and CRS (None: lon/lat columns)."""
    layer = _files.read_vector(path, what="facility")
    if not isinstance(layer, gpd.GeoDataFrame):  # GDAL read a table without geometry: use its lon/lat columns
        table = pd.DataFrame(layer).set_axis(pd.RangeIndex(1, len(layer) + 1))
        if _coordinate_column(table, _LON_NAMES) is None or _coordinate_column(table, _LAT_NAMES) is None:
            raise InputError(
                f"{path} has no geometry and no longitude/latitude columns (it has {_column_list(table.columns)}). "
                "Give a layer of points, or a CSV/Excel list with lon/lat columns (e.g. '经度' and '纬度')."
            )
        return (*lon_lat_columns(table, str(path)), None)
    if layer.crs is None:
        raise CRSMismatchError(f"The facility layer {path} has no CRS; save it with one (EPSG:4326 for lon/lat).")
    if coord_system != "wgs84" and not layer.crs.is_geographic:
        raise CRSMismatchError(
            f"{path} is in {layer.crs.to_string()}, a projected CRS, but coord_system={coord_system!r} "
            "describes longitude/latitude offsets. Export the layer in lon/lat or use coord_system='wgs84'."
        )
    layer = layer.set_axis(pd.RangeIndex(1, len(layer) + 1))  # features numbered as a planner counts them
    unusable = layer.geometry.isna() | layer.geometry.is_empty
    if unusable.any():
        raise InputError(_no_geometry_message(path, layer[unusable]))
    if not (layer.geom_type == "Point").all():
        layer = layer.set_geometry(layer.geometry.representative_point())
    points = layer.geometry.to_crs(4326) if layer.crs.is_geographic else layer.geometry
    return pd.DataFrame(layer.drop(columns=layer.geometry.name)), points.x.to_numpy(), points.y.to_numpy(), layer.crs


def _no_geometry_message(path: Path, features: gpd.GeoDataFrame) -> str:
    """Which features (numbered as a planner counts them, with their ids) have no usable geometry."""
    id_col = _files.find_column(features, _ID_NAMES)
    ids = f" (id{'s' if len(features) > 1 else ''} {_files.row_list(features[id_col].astype(str).to_numpy())})" if id_col else ""
    many = len(features) > 1
    return (f"{path}: feature{'s' if many else ''} {_files.row_list(features.index.to_numpy())}{ids} "
            f"{'have' if many else 'has'} no usable geometry (null, empty or unreadable). Give each facility a Point "
            "(or lon/lat columns in a CSV/Excel list), or remove those features.")


def _column_list(columns) -> str:
    """A table's column names for a message, the first ten."""
    names = [str(c) for c in columns]
    return str(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV's rows, indexed by data row (1-based, as a planner counts them); ids and unit codes kept as text."""
    text_names = {n.lower() for n in (*_ID_NAMES, *(n for a in _CODE_ATTRIBUTES for n in _ATTRIBUTE_NAMES[a]))}
    try:
        for encoding in ("utf-8-sig", "gb18030"):  # gb18030: files saved by Excel on Chinese Windows
            try:
                sep = _separator(path, encoding)
                header = pd.read_csv(path, encoding=encoding, sep=sep, nrows=0)
                text = {c: str for c in header.columns if str(c).strip().lower() in text_names}
                table = pd.read_csv(path, encoding=encoding, sep=sep, dtype=text)  # "007" stays "007", not 7
                break
            except UnicodeDecodeError:
                if encoding == "gb18030":
                    raise
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 or GBK text; save it as a UTF-8 CSV (Excel: Save As, CSV UTF-8).") from None
    except pd.errors.EmptyDataError as exc:
        raise EmptyDataError(f"The facility file {path} is empty.") from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"Cannot read {path} as CSV: {exc}") from exc
    table.index = pd.RangeIndex(1, len(table) + 1)
    table = table[table.notna().any(axis=1)]  # the ",,,," rows an Excel export leaves at the end
    if table.empty:
        raise EmptyDataError(f"The facility file {path} has a header but no rows.")
    return table


def _separator(path: Path, encoding: str) -> str:
    """The CSV's separator: a comma, unless the header holds tabs or semicolons and no comma."""
    with open(path, encoding=encoding, errors="replace") as handle:
        first = handle.readline()
    for sep in ("\t", ";"):
        if sep in first and "," not in first:
            return sep
    return ","


def _read_excel(path: Path, sheet: str | int | None) -> tuple[pd.DataFrame, str]:
    """A sheet's rows under its header, indexed by Excel's row numbers, and the sheet's name.

    The header is the first of the top rows that names both a longitude and a
    latitude column (lists often start with a title line), else the first row.
    """
    cells, name = _files.read_sheet(path, what="facility", sheet=sheet)
    top = [{_header_key(v) for v in row if v is not None} for row in cells.head(_HEADER_SEARCH_ROWS).itertuples(index=False)]
    found = [i for i, names in enumerate(top) if names & set(_LON_NAMES) and names & set(_LAT_NAMES)]
    header = found[0] if found else 0
    columns, seen = [], {}
    for position, value in enumerate(cells.iloc[header]):
        column = str(value).strip() if value is not None else f"Unnamed: {position}"
        seen[column] = seen.get(column, 0) + 1
        columns.append(column if seen[column] == 1 else f"{column}.{seen[column] - 1}")
    table = cells.iloc[header + 1 :].set_axis(columns, axis=1)
    table = table.loc[:, [not (c.startswith("Unnamed: ") and table[c].isna().all()) for c in columns]]
    if table.empty:
        raise EmptyDataError(f"{path} (sheet {name!r}) has a header but no rows.")
    return table.replace({None: np.nan}).infer_objects(), name


def lon_lat_columns(table: pd.DataFrame, label: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The table without its lon/lat columns, and the longitudes and latitudes as floats (NaN where blank)."""
    lon_col = _coordinate_column(table, _LON_NAMES)
    lat_col = _coordinate_column(table, _LAT_NAMES)
    if lon_col is None or lat_col is None:
        raise InputError(
            f"{label} needs longitude and latitude columns (e.g. 'lon' and 'lat', or '经度' and '纬度'); "
            f"it has {_column_list(table.columns)}."
        )
    values, is_text = {}, {}
    for column in (lon_col, lat_col):
        raw = table[column]
        cleaned = raw if pd.api.types.is_numeric_dtype(raw) else raw.astype(object).map(_clean_number)
        values[column] = pd.to_numeric(cleaned, errors="coerce")
        is_text[column] = values[column].isna() & cleaned.notna()
    text = is_text[lon_col] | is_text[lat_col]
    if text.any():
        examples = [f"{c} {table.at[row, c]!r}" for row in table.index[text][:3] for c in (lon_col, lat_col) if is_text[c][row]]
        raise InputError(
            f"{label}: rows {_files.row_list(table.index[text].to_numpy())} hold text where numbers belong ({', '.join(examples)}). "
            "Give longitude and latitude as decimal degrees, such as 114.3052 and 30.5526 (convert degree-minute-second "
            "values first), or remove those rows."
        )
    lon = values[lon_col].to_numpy(dtype=float)
    lat = values[lat_col].to_numpy(dtype=float)
    return table.drop(columns=[lon_col, lat_col]), lon, lat


def _clean_number(value):
    """Text as typed with a Chinese input method (full-width digits, stray spaces) made readable; blank as None."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value).strip()
        return value or None
    return value


def check_lon_lat(lon: np.ndarray, lat: np.ndarray, rows: np.ndarray, label: str) -> None:
    """An InputError naming the rows of ``label`` whose coordinates are blank, not numbers, or not lon/lat degrees."""
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        raise InputError(f"{label}: rows {_files.row_list(rows[bad])} have no usable longitude/latitude. Fill them in, or remove those rows.")
    swapped = (np.abs(lon) <= 90) & (np.abs(lat) > 90)
    out_of_range = (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if out_of_range.any():
        hint = " Longitude and latitude look swapped." if swapped.any() else (
            " These look like projected metres, not degrees: give lon/lat, or a layer with its projected CRS."
        )
        raise CRSMismatchError(f"{label}: rows {_files.row_list(rows[out_of_range])} are not valid lon/lat.{hint}")


def _site_frame(table: pd.DataFrame, geometry: gpd.GeoSeries, *, kind: str, status: str, path: Path | str | None) -> gpd.GeoDataFrame:
    """A site frame from a table whose index numbers its rows as a planner counts them (for messages)."""
    if kind not in FACILITY_KINDS:
        raise InputError(f"Unknown facility kind {kind!r}; use one of {', '.join(FACILITY_KINDS)}.")
    rows = table.index.to_numpy() if path is not None else np.arange(1, len(table) + 1)
    table = table.reset_index(drop=True)
    id_col = _files.find_column(table, _ID_NAMES)
    prefix = "f" if status == "existing" else "k"
    if id_col:
        ids = _code_column(table[id_col])
        blank = ids.isna().to_numpy()
        if blank.any():
            raise InputError(
                f"{path}: rows {_files.row_list(rows[blank])} have no id (column {id_col!r}). Fill them in, or remove the "
                "column to have geoplan number the facilities."
            )
    else:
        ids = pd.Series([f"{prefix}{i + 1:03d}" for i in range(len(table))])
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        raise InputError(
            f"{path}: site ids repeat: {sorted(set(ids[repeated]))[:10]} (rows {_files.row_list(rows[repeated])}). "
            "Give each facility its own id."
        )
    name_col = _files.find_column(table, _NAME_NAMES)
    kind_col = _files.find_column(table, _KIND_NAMES)
    kinds = _tier_values(table[kind_col]) if kind_col else pd.Series(kind, index=table.index)
    unknown = sorted(set(kinds) - set(FACILITY_KINDS))
    if unknown:
        raise InputError(
            f"{path}: unknown facility kinds {unknown}; use {', '.join(FACILITY_KINDS)} (column {kind_col!r}; "
            "Chinese tier names such as 社区养老服务站, 老年食堂, 综合养老服务中心, 养老院 are read too)."
        )
    frame = gpd.GeoDataFrame(
        {
            "name": table[name_col].astype(str).to_numpy() if name_col else ids.to_numpy(),
            "kind": kinds.to_numpy(),
            "status": status,
            "capacity": _number_column(table, "capacity", path, rows, at_most=MAX_SITE_CAPACITY),
            "cost": _number_column(table, "cost", path, rows, default=1.0, at_most=MAX_SITE_COST),
        },
        geometry=geometry.to_numpy(),
        crs=geometry.crs,
        index=pd.Index(ids.to_numpy(), name="site_id"),
    )
    for extra in ("unit_id",):
        if extra in table:
            frame[extra] = table[extra].to_numpy()
    found = _attribute_columns(table)
    for attribute, column in found.items():
        if attribute in _CODE_ATTRIBUTES:
            frame[attribute] = _code_column(table[column]).to_numpy()
        else:
            frame[attribute] = _number_column(table, column, path, rows)
    frame.attrs["missing_attributes"] = [a for a in ATTRIBUTES if a not in found]
    frame.attrs["kind_column"] = kind_col  # None: the list has no kind/类型 column and every row took `kind`
    return frame


def missing_attributes(sites: pd.DataFrame) -> list[str]:
    """The facility attributes (:data:`geoplan.tiers.ATTRIBUTES`) that ``sites`` has no column for, in that order.

    A missing column is reported, never guessed: indicators that need it say
    "no data". Blank cells of a present column stay NaN.

    >>> import pandas as pd
    >>> missing_attributes(pd.DataFrame({"beds": [10.0], "kind": ["home"]}))
    ['floor_area_m2', 'land_m2', 'nursing_beds', 'meals_per_day', 'street_code', 'community_code']
    """
    return [a for a in ATTRIBUTES if a not in sites.columns]


def _coordinate_column(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    """The longitude (or latitude) column: a known name as it is, else with a unit or note dropped (``经度(GCJ02)``)."""
    exact = _files.find_column(table, names)
    if exact is not None:
        return exact
    return next((c for c in table.columns if _header_key(c) in names), None)


def _header_key(name) -> str:
    """A column header as compared with the known names: NFKC, lower case, no spaces, a trailing (unit) dropped."""
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    text = "".join(text.split())
    while text.endswith(")") and "(" in text:
        head = text[: text.rindex("(")]
        if not head:
            break
        text = head
    for unit in ("/m2", "/m²", "/㎡", "m2", "m²", "㎡", "(平方米)"):
        if text.endswith(unit) and len(text) > len(unit) and not text.endswith("_m2"):
            text = text[: -len(unit)]
    return text


def _attribute_columns(table: pd.DataFrame) -> dict[str, str]:
    """Which column of ``table`` holds each known facility attribute (the first that matches)."""
    keys = {}
    for column in table.columns:
        keys.setdefault(_header_key(column), column)
    found = {}
    for attribute, names in _ATTRIBUTE_NAMES.items():
        for name in names:
            column = keys.get(_header_key(name))
            if column is not None and column not in found.values():
                found[attribute] = column
                break
    return found


def _code_column(values: pd.Series) -> pd.Series:
    """Unit codes as text: 420106001 read as a number (420106001.0) is the code '420106001'; blanks stay None."""
    def text(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        value = unicodedata.normalize("NFKC", str(value)).strip()
        return value or None

    return values.astype(object).map(text)


def _tier_values(values: pd.Series) -> pd.Series:
    """Kinds from a kind/tier column: geoplan's names in any case, or a Chinese tier name (养老院 -> home)."""
    def kind(value) -> str:
        text = unicodedata.normalize("NFKC", str(value)).strip()
        return _TIER_ALIASES.get(text, _TIER_ALIASES.get(text.lower(), text.lower()))

    return values.map(kind)


def _number_column(table: pd.DataFrame, name: str, path: Path | str | None, rows: np.ndarray, default: float = np.nan,
                   at_most: float = np.inf) -> np.ndarray:
    if name not in table:
        return np.full(len(table), default)
    values = pd.to_numeric(table[name], errors="coerce")
    bad = values.isna() & table[name].notna() | (values < 0) | np.isinf(values)
    if bad.any():
        raise InputError(f"{path}: column {name!r} must hold numbers >= 0; rows {_files.row_list(rows[bad.to_numpy()])} do not.")
    large = values > at_most
    if large.any():
        raise InputError(
            f"{path}: column {name!r} holds more than {at_most:g} in rows {_files.row_list(rows[large.to_numpy()])}: "
            "check the unit (people for capacity, yuan for cost)."
        )
    return values.fillna(default).to_numpy(dtype=float)


def _inside_region(
    sites: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame, path: Path, coord_system: str, outside: str, *, lon_lat: bool = True
) -> gpd.GeoDataFrame:
    """``sites`` if all lie in the region; else those inside (``outside="drop"``) or an error that tells why not.

    Only facilities at most :data:`MIX_UP_M` outside get the coordinate-system
    hint (and, when reading the file in another system puts every facility
    inside, that system by name); farther ones are told to check their rows.
    """
    region = shapely.union_all(boundary.geometry.to_numpy())
    inside = sites.within(region)
    if inside.all():
        return sites
    out = sites[~inside]
    distance_m = out.distance(region)
    listed = ", ".join(
        f"{i}{f' ({n})' if n != i else ''} {_distance_text(d)}" for i, n, d in zip(out.index[:10], out["name"][:10], distance_m[:10])
    )
    more = f" and {len(out) - 10} more" if len(out) > 10 else ""
    if outside == "drop":
        log.warning("sites: %d facilities outside the region were left out: %s%s from it", len(out), listed, more)
        return sites[inside]
    parts = [f"{len(out)} of {len(sites)} facilities in {path.name} lie outside the region: {listed}{more} from it."]
    near = (distance_m <= MIX_UP_M).to_numpy()
    if near.any():
        parts.append(
            f"{_count(near.sum(), len(out))} just outside the region (at most {_distance_text(distance_m[near].max())}), "
            + (
                f"the size of shift a coordinate system mix-up causes: they were read as {coord_system} ({_SYSTEM_NAMES[coord_system]}){_better_system(sites, region, coord_system, far=out.index[~near])}"
                if lon_lat
                else "where the boundary may be drawn a little differently: check whether they belong to the region."
            )
        )
    if (~near).any():
        parts.append(
            f"{_count((~near).sum(), len(out))} far outside the region ({_distance_text(distance_m[~near].min())} or more), farther than "
            f"a WGS84/GCJ-02/BD-09 mix-up shifts a point (under {_distance_text(MIX_UP_M)}): check those rows of the file "
            "for another place's address, a typo in the coordinates, or longitude and latitude swapped or in the wrong columns."
        )
    parts.append("Otherwise remove them, or pass outside='drop' (CLI: --drop-outside) to leave them out.")
    raise InputError(" ".join(parts))


def _better_system(sites: gpd.GeoDataFrame, region, coord_system: str, *, far: pd.Index) -> str:
    """', but read as X all lie inside: ...' when another coordinate system puts every site (but the far ones) in the region, else a general hint."""
    sites = sites.drop(index=far)
    wgs = sites.geometry.to_crs(4326)
    given_lon, given_lat = from_wgs84(wgs.x.to_numpy(), wgs.y.to_numpy(), coord_system)  # the numbers in the file
    for system in COORD_SYSTEMS:
        if system == coord_system:
            continue
        lon, lat = to_wgs84(given_lon, given_lat, system)
        moved = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326).to_crs(sites.crs)
        if moved.within(region).all():
            return (
                f", but read as {system} ({_SYSTEM_NAMES[system]}) all {len(sites)}{' not far off' if len(far) else ''} lie inside: "
                f"pass coord_system='{system}' "
                f"(CLI: --coord-system {system})."
            )
    return ". If the list comes from Amap/Tencent use coord_system='gcj02', from Baidu 'bd09'."


def _count(n: int, of: int) -> str:
    return ("It lies" if n == 1 else "They lie") if n == of else (f"{n} of them lie" if n > 1 else "1 of them lies")


def _distance_text(metres: float) -> str:
    if metres < 1000:
        return f"{metres:,.0f} m"
    return f"{metres / 1000:,.1f} km" if metres < 10_000 else f"{metres / 1000:,.0f} km"


