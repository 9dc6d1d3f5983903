"""Registers of priority groups, and demand as points (residential compounds 小区).

Civil-affairs registers count the people the plans put first (80+, disabled,
living alone, low-income) per community, not per raster cell.
:func:`load_register` reads such a table (CSV or Excel: a community's code or
name, then one count per group) and :func:`add_register` spreads each
community's counts over its demand cells **in proportion to the cells' 60+**:

    cell i of community c gets  R_c * pop_60_i / (sum of pop_60 over c's cells)

so every community keeps exactly its register total, and within it the people
sit where the older people live. A community whose cells hold no 60+ spreads
by ``pop_total``, and one with no cell at all cannot be placed (reported like
an unmatched row). The counts become extra ``pop_*`` columns of the demand
(``pop_disabled``, ``pop_alone``, ``pop_low_income``; a register column whose
name the demand already has, such as its ``pop_80``, gets the suffix ``_reg``:
``pop_80_reg``), ready for coverage tables and priority weights
(:func:`geoplan.optimize.priority_weights`).

Rows that match no community are an ``InputError`` that lists them (the
default, ``unmatched="error"``): a register total that silently lost rows would
misstate need. With ``unmatched="warn"`` they are left out with a warning that
counts them and the people in them.

:func:`load_demand_points` reads demand as points with counts (a list of
compounds with their residents and older residents: CSV, Excel, GeoJSON, GPKG;
WGS84, GCJ-02 or BD-09), as an alternative to the population raster. Its frame
has the raster demand's columns: ``pop_*`` counts, a point geometry and a
``cell`` square of ``cell_m`` around each point. A region config uses it with a
``[demand_points]`` section (the ``[population]`` raster is then not read).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geoplan import _files
from geoplan.coords import normalize_coord_system, to_wgs84
from geoplan.demand import GROUP_LABELS, population_columns
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError
from geoplan.sites import MIX_UP_M, check_lon_lat, lon_lat_columns
from geoplan.units import (
    CODE_NAMES,
    COMMUNITY_CODE_NAMES,
    COMMUNITY_NAME_NAMES,
    NAME_NAMES,
    OUTSIDE,
    community_key,
    match_communities,
    read_table,
    row_values,
)

log = logging.getLogger(__name__)

#: Register groups and the column names they are found under (besides any ``pop_*`` column).
REGISTER_COLUMNS: dict[str, tuple[str, ...]] = {
    "pop_80": ("pop_80", "高龄", "高龄老人", "80岁以上", "80岁及以上", "80+"),
    "pop_disabled": ("pop_disabled", "残疾", "残疾人", "残疾老人", "失能", "失能老人"),
    "pop_alone": ("pop_alone", "独居", "独居老人"),
    "pop_low_income": ("pop_low_income", "低保", "低保老人", "低收入", "低收入老人"),
}
REGISTER_LABELS: dict[str, str] = {
    "pop_80": "80+ (register) 高龄",
    "pop_disabled": "disabled 残疾",
    "pop_alone": "living alone 独居",
    "pop_low_income": "low-income 低保",
}
#: Demand-point groups and the column names they are found under (besides any ``pop_*`` column).
POINT_COLUMNS: dict[str, tuple[str, ...]] = {
    "pop_total": ("pop_total", "总人口", "人口", "常住人口", "人数", "居民"),
    "pop_60": ("pop_60", "60岁以上", "60岁及以上", "60+", "老年人口", "老人"),
    "pop_65": ("pop_65", "65岁以上", "65岁及以上", "65+"),
    "pop_80": ("pop_80", "80岁以上", "80岁及以上", "80+", "高龄"),
}
_POINT_NAME_NAMES = ("name", "名称", "小区", "小区名称", "compound")
#: The suffix of a register column whose name the demand already has.
CLASH_SUFFIX = "_reg"


def load_register(
    path: str | Path | pd.DataFrame,
    communities: gpd.GeoDataFrame,
    *,
    sheet: str | int | None = None,
    code_column: str | None = None,
    name_column: str | None = None,
    columns: Mapping[str, str] | None = None,
    unmatched: str = "error",
) -> pd.DataFrame:
    """A community-level register as counts per community.

    Parameters
    ----------
    path
        CSV or Excel (or a DataFrame): one row per community with its code
        (``community_code``/``社区代码``/``code``/``代码``...) or name
        (``community_name``/``社区``/``name``/``名称``...) and counts in
        ``pop_*`` columns or columns named as in :data:`REGISTER_COLUMNS`
        (``高龄``, ``残疾``, ``独居``, ``低保``...). Blank counts are 0.
    communities
        The community units (:attr:`geoplan.units.PlanningUnits.communities` or
        :func:`geoplan.units.as_communities`), indexed by ``community_code``.
    sheet
        Excel only: which sheet (default the first).
    code_column, name_column
        The column to match on, when not found by name: codes are matched
        to community codes, names to community names.
    columns
        ``{group: column}`` for count columns with other names, e.g. ``{"pop_disabled": "持证残疾人"}``.
    unmatched
        ``"error"`` (default): rows that match no community are an
        ``InputError`` listing them. ``"warn"``: they are left out with a
        warning that counts them.

    Returns
    -------
    DataFrame indexed by ``community_code`` with one column per group (rows
    for the same community added up); ``attrs["unmatched"]`` holds the rows
    left out (``unmatched="warn"``), ``attrs["source"]`` the file.
    """
    if unmatched not in ("error", "warn"):
        raise InputError(f"unmatched must be 'error' or 'warn', got {unmatched!r}.")
    if isinstance(path, pd.DataFrame):
        rows, label = path.copy(), "the register"
        rows.index = pd.RangeIndex(1, len(rows) + 1)
    else:
        headers = COMMUNITY_CODE_NAMES + COMMUNITY_NAME_NAMES + CODE_NAMES + NAME_NAMES
        rows, label = read_table(path, what="register", sheet=sheet, header_names=headers)
    key, by = _register_key(rows, label, code_column, name_column)
    groups = _count_columns(rows, label, columns or {}, REGISTER_COLUMNS, exclude={key})
    counts = _counts(rows, groups, label)
    community = match_communities(rows[key], communities, by=by, label=label)
    missing = community.isna()
    left_out = rows.loc[missing]
    if missing.any():
        people = ", ".join(f"{counts.loc[missing, g].sum():,.0f} {g}" for g in counts.columns)
        text = f"{label}: {missing.sum()} of {len(rows)} row(s) match no community by {by} ({key!r}): {row_values(rows.loc[missing, key])}"
        if unmatched == "error":
            examples = ", ".join(map(str, communities.index[:5]))
            raise InputError(
                f"{text}; they hold {people}. The communities' {by}s are like {examples}"
                f"{'' if by == 'code' else ' (names)'}. Correct those rows or remove them (a total row, 合计, too), "
                "or pass unmatched='warn' ([registers] unmatched = \"warn\") to leave them out."
            )
        warnings.warn(f"{text}; left out with {people}.", UserWarning, stacklevel=2)
    table = counts.loc[~missing].groupby(community[~missing].to_numpy()).sum()
    table.index.name = "community_code"
    table.attrs.update(unmatched=left_out, source=label)
    log.info("registers: %d communities from %s (%s)", len(table), label, ", ".join(f"{g} {table[g].sum():,.0f}" for g in table))
    return table


def spread_register(
    demand: pd.DataFrame,
    counts: pd.DataFrame,
    community_of: pd.Series,
    *,
    by: str = "pop_60",
    unmatched: str = "error",
) -> pd.DataFrame:
    """Each community's register counts spread over its demand points in proportion to their ``by`` people.

    Parameters
    ----------
    demand
        Demand points with a ``by`` column (``region.demand``).
    counts
        Counts per community (:func:`load_register`).
    community_of
        Each demand point's community code (:data:`geoplan.units.OUTSIDE` for none),
        on the demand's index: ``units.locate(demand)["community_code"]``.
    by
        The group the counts follow within a community (default 60+). A
        community whose points hold none of them follows ``pop_total`` (if the
        demand has it), else is spread evenly over its points.
    unmatched
        A community with counts but no demand point: ``"error"`` lists them,
        ``"warn"`` leaves them out with a warning.

    Returns
    -------
    DataFrame on the demand's index with the columns of ``counts``; each
    community's column sums equal its counts (to floating-point rounding).
    """
    if by not in demand:
        raise InputError(f"The demand has no column {by!r} to spread the register by; it has {population_columns(demand)}.")
    if unmatched not in ("error", "warn"):
        raise InputError(f"unmatched must be 'error' or 'warn', got {unmatched!r}.")
    codes = community_of.reindex(demand.index).fillna(OUTSIDE).astype(str).to_numpy()
    base = demand[by].to_numpy(dtype=float)
    fallback = demand["pop_total"].to_numpy(dtype=float) if "pop_total" in demand else np.ones(len(demand))
    position = pd.Series(np.arange(len(demand))).groupby(codes).apply(np.asarray)
    empty = [c for c in counts.index if c not in position.index or c == OUTSIDE]
    if empty:
        one = len(empty) == 1
        text = (
            f"{len(empty)} communit{'y' if one else 'ies'} of the register ha{'s' if one else 've'} no demand cell "
            f"(nobody lives in {'it' if one else 'them'} in the demand data): {empty[:10]}"
        )
        if unmatched == "error":
            raise InputError(f"{text}. Check the codes, or pass unmatched='warn' to leave those counts out.")
        left = ", ".join(f"{counts.loc[empty, g].sum():,.0f} {g}" for g in counts)
        warnings.warn(f"{text}; their counts ({left}) are left out.", UserWarning, stacklevel=2)
    values = np.zeros((len(demand), len(counts.columns)))
    for community in counts.index.difference(pd.Index(empty)):
        rows = position[community]
        weight = base[rows]
        if weight.sum() <= 0:
            weight = fallback[rows] if fallback[rows].sum() > 0 else np.ones(len(rows))
        values[rows, :] = np.outer(weight / weight.sum(), counts.loc[community].to_numpy(dtype=float))
    return pd.DataFrame(values, index=demand.index, columns=counts.columns)


def add_register(demand: gpd.GeoDataFrame, spread: pd.DataFrame) -> gpd.GeoDataFrame:
    """A copy of ``demand`` with the register's counts, spread over it, as extra ``pop_*`` columns.

    ``spread`` is :func:`spread_register` of this demand:
    ``add_register(demand, spread_register(demand, counts, community_of))``.
    A register column whose name the demand already has (``pop_80``) is
    added as ``<name>_reg`` (``pop_80_reg``), so the raster's group stays as it was.
    """
    spread = spread.rename(columns={c: f"{c}{CLASH_SUFFIX}" for c in spread.columns if c in demand.columns})
    out = demand.copy()
    for column in spread.columns:
        out[column] = spread[column].to_numpy()
    return out


def load_demand_points(
    path: str | Path,
    *,
    crs,
    boundary: gpd.GeoDataFrame | None = None,
    coord_system: str = "wgs84",
    cell_m: float = 50.0,
    columns: Mapping[str, str] | None = None,
    sheet: str | int | None = None,
    outside: str = "error",
) -> gpd.GeoDataFrame:
    """Demand as points with counts (residential compounds 小区), an alternative to the population raster.

    Parameters
    ----------
    path
        A table (CSV, Excel) with longitude/latitude columns (``lon``/``lng``/``经度``,
        ``lat``/``纬度``), or a point layer (GeoJSON, GPKG, shapefile; other
        geometries stand at a representative point). Counts in ``pop_*``
        columns or columns named as in :data:`POINT_COLUMNS` (``总人口``,
        ``60岁以上``, ``80岁以上``...); blank counts are 0. An optional
        ``name``/``名称``/``小区`` column is kept.
    crs
        The metric CRS of the result (the network's).
    boundary
        The region: points outside it are an ``InputError`` listing them
        (``outside="drop"``: left out with a warning).
    coord_system
        ``"wgs84"``, ``"gcj02"`` (Amap, Tencent) or ``"bd09"`` (Baidu), for lon/lat.
    cell_m
        The side of the square ``cell`` drawn around each point (metres), used
        where the raster demand uses its cell squares (gap maps, care circles).
    columns
        ``{group: column}`` for count columns with other names.
    sheet
        Excel only: which sheet (default the first).

    Returns
    -------
    GeoDataFrame indexed by ``demand_id`` (the row as the planner numbers it:
    a CSV's data row or a layer's feature from 1, Excel's row number)
    with the ``pop_*`` columns, ``name`` (if given), the point geometry and
    ``cell``, in ``crs``: the columns :func:`geoplan.demand.load_demand` gives
    (but ``raster_row``/``raster_col``), ready for ``snap_to_network``.
    """
    coord_system = normalize_coord_system(coord_system)
    if isinstance(cell_m, bool) or not isinstance(cell_m, (int, float)) or not cell_m > 0:
        raise InputError(f"cell_m must be a positive number of metres, got {cell_m!r}.")
    if outside not in ("error", "drop"):
        raise InputError(f"outside must be 'error' or 'drop', got {outside!r}.")
    path = _files.existing_file(path, what="demand points")
    suffix = path.suffix.lower()
    aliases = tuple(a for names in POINT_COLUMNS.values() for a in names)
    if suffix in (".csv", ".txt") or suffix in _files.EXCEL_SUFFIXES:
        rows, label = read_table(path, what="demand points", sheet=sheet, header_names=("lon", "lng", "longitude", "经度") + aliases)
        table, lon, lat = lon_lat_columns(rows, label)
        check_lon_lat(lon, lat, table.index.to_numpy(), label)
        lon, lat = to_wgs84(lon, lat, coord_system)
        geometry = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326, index=table.index)
    else:
        if sheet is not None:
            raise InputError(f"sheet={sheet!r} chooses a sheet of an Excel workbook, but {path.name} is not one; leave it out.")
        layer = _files.read_vector(path, what="demand points")
        label = str(path)
        if layer.crs is None:
            raise CRSMismatchError(f"The demand point layer {path} has no CRS; save it with one (EPSG:4326 for lon/lat).")
        layer = layer.set_axis(pd.RangeIndex(1, len(layer) + 1))
        layer = layer[layer.geometry.notna() & ~layer.geometry.is_empty]
        points = layer.geometry if (layer.geom_type == "Point").all() else layer.geometry.representative_point()
        if layer.crs.is_geographic:
            wgs = points.to_crs(4326)
            lon, lat = to_wgs84(wgs.x.to_numpy(), wgs.y.to_numpy(), coord_system)
            geometry = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326, index=layer.index)
        elif coord_system != "wgs84":
            raise CRSMismatchError(
                f"{path} is in {layer.crs.to_string()}, a projected CRS, but coord_system={coord_system!r} describes "
                "longitude/latitude offsets. Export the layer in lon/lat or use coord_system='wgs84'."
            )
        else:
            geometry = points
        table = pd.DataFrame(layer.drop(columns=layer.geometry.name))
    name_column = _files.find_column(table, _POINT_NAME_NAMES)
    groups = _count_columns(table, label, columns or {}, POINT_COLUMNS, exclude={name_column} if name_column else set())
    counts = _counts(table, groups, label)
    if not (counts.to_numpy().sum(axis=1) > 0).any():
        raise EmptyDataError(f"The demand points {label} hold no people (every count is 0 or blank).")
    demand = gpd.GeoDataFrame(counts, geometry=geometry.to_numpy(), crs=geometry.crs, index=pd.Index(table.index.to_numpy(), name="demand_id"))
    if name_column:
        demand.insert(len(counts.columns), "name", table[name_column].astype(str).to_numpy())
    demand = demand.to_crs(crs)
    if demand.crs.is_geographic:
        raise CRSMismatchError(f"crs must be a projected (metric) CRS for the cell squares, got {demand.crs.to_string()}.")
    if boundary is not None:
        demand = _inside(demand, boundary.to_crs(crs), label, coord_system, outside)
    half = cell_m / 2
    x, y = demand.geometry.x.to_numpy(), demand.geometry.y.to_numpy()
    demand["cell"] = gpd.GeoSeries(shapely.box(x - half, y - half, x + half, y + half), index=demand.index, crs=demand.crs)
    log.info("demand: %d points from %s; %s", len(demand), path.name, ", ".join(f"{g} {demand[g].sum():,.0f}" for g in groups))
    return demand


def group_label(group: str) -> str:
    """A group's label for tables: ``80+``, ``disabled 残疾``, ``pop_80_reg`` -> ``80+ (register) 高龄``..."""
    if group.endswith(CLASH_SUFFIX) and group[: -len(CLASH_SUFFIX)] in REGISTER_LABELS:
        return REGISTER_LABELS[group[: -len(CLASH_SUFFIX)]]
    return GROUP_LABELS.get(group) or REGISTER_LABELS.get(group, group)


def _inside(demand: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame, label: str, coord_system: str, outside: str) -> gpd.GeoDataFrame:
    """The points inside the region; those outside are an ``InputError`` listing them, or left out with a warning."""
    region = shapely.union_all(boundary.geometry.to_numpy())
    inside = demand.within(region).to_numpy()
    if inside.all():
        return demand
    out = demand[~inside]
    distance_m = out.distance(region)
    names = out["name"] if "name" in out else pd.Series(out.index.astype(str), index=out.index)
    listed = ", ".join(f"row {i} ({n}) {d:,.0f} m" for i, n, d in zip(out.index[:10], names.iloc[:10], distance_m.iloc[:10]))
    more = f" and {len(out) - 10} more" if len(out) > 10 else ""
    people = ", ".join(f"{out[g].sum():,.0f} {g}" for g in population_columns(out))
    text = f"{len(out)} of {len(demand)} demand points of {label} lie outside the region ({people}): {listed}{more} from it"
    if outside == "drop":
        warnings.warn(f"{text}; they were left out.", UserWarning, stacklevel=3)
        return demand[inside]
    hint = (
        f" Points up to {MIX_UP_M:,.0f} m outside may be read in the wrong coordinate system (read as {coord_system}): "
        "lists from Amap/Tencent are gcj02, from Baidu bd09 (coord_system=...; [demand_points] coord_system)."
        if (distance_m <= MIX_UP_M).any() else ""
    )
    raise InputError(f"{text}.{hint} Otherwise remove them, or pass outside='drop' to leave them out.")


def _register_key(rows: pd.DataFrame, label: str, code_column: str | None, name_column: str | None) -> tuple[str, str]:
    for given in (code_column, name_column):
        if given is not None and given not in rows:
            raise InputError(f"{label} has no column {given!r}; its columns: {[str(c) for c in rows.columns]}.")
    if code_column:
        return code_column, "code"
    if name_column:
        return name_column, "name"
    return community_key(rows, label, hint=" Or name it with code_column=/name_column= ([registers] code_column, name_column).")


def _count_columns(
    table: pd.DataFrame, label: str, given: Mapping[str, str], known: Mapping[str, tuple[str, ...]], *, exclude: set
) -> dict[str, str]:
    """``{group: column}``: the given ones, then ``pop_*`` columns, then the known aliases."""
    groups: dict[str, str] = {}
    for group, column in given.items():
        if not str(group).startswith("pop_"):
            raise InputError(f"Group names start with 'pop_' (e.g. pop_disabled), got {group!r}.")
        if column not in table:
            raise InputError(f"{label} has no column {column!r} (for {group}); its columns: {[str(c) for c in table.columns]}.")
        groups[group] = column
    used = set(groups.values()) | exclude
    for column in table.columns:
        text = str(column).strip()
        if text.lower().startswith("pop_") and column not in used and text.lower() not in groups:
            groups[text.lower()] = column
            used.add(column)
    for group, names in known.items():
        if group in groups:
            continue
        found = _files.find_column(table[[c for c in table.columns if c not in used]], names)
        if found is not None:
            groups[group] = found
            used.add(found)
    if not groups:
        wanted = "; ".join(f"{g}: {', '.join(n[1:4])}" for g, n in known.items())
        raise InputError(
            f"{label} has no count column: name them pop_60, pop_80, pop_disabled... or as {wanted}; "
            f"it has {[str(c) for c in table.columns]}. Or map them with columns={{'pop_...': 'column'}}."
        )
    return groups


def _counts(table: pd.DataFrame, groups: Mapping[str, str], label: str) -> pd.DataFrame:
    """The count columns as floats >= 0 (blank: 0), on the table's index; text or negatives are an ``InputError``."""
    out = {}
    for group, column in groups.items():
        raw = table[column]
        cleaned = raw.map(lambda v: v.replace(",", "").strip() if isinstance(v, str) else v)
        values = pd.to_numeric(cleaned.replace("", np.nan), errors="coerce")
        text = values.isna() & cleaned.notna() & (cleaned.astype(str).str.strip() != "")
        if text.any():
            raise InputError(
                f"{label}: column {column!r} holds text where counts belong in row(s) {_files.row_list(table.index[text])} "
                f"({', '.join(repr(v) for v in raw[text].iloc[:3])}). Give whole numbers of people."
            )
        values = values.fillna(0.0).astype(float)
        if (values < 0).any():
            raise InputError(f"{label}: column {column!r} is negative in row(s) {_files.row_list(table.index[values < 0])}; counts are >= 0.")
        out[group] = values
    return pd.DataFrame(out, index=table.index)
