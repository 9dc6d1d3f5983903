"""Demand: population raster cells of a region as points with counts per age group.

Each cell whose centre lies in the region becomes one demand point at the cell
centre, with the people of every band the user maps to a group (``pop_total``,
``pop_60``, ``pop_65``, ``pop_80`` by default). Counts can be rescaled so that
the region's totals match a census: WorldPop holds only 68 % of Wuchang's 2020
census 60+ and 46 % of its 80+, so unscaled counts would understate need.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.windows
import shapely
from rasterio.errors import RasterioIOError

from geoplan import _files
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError

log = logging.getLogger(__name__)

#: Age groups geoplan knows, with their labels in reports.
GROUP_LABELS: dict[str, str] = {
    "pop_total": "all ages 全部",
    "pop_60": "60+",
    "pop_65": "65+",
    "pop_80": "80+",
}

#: The bands of geoplan's default WorldPop raster.
DEFAULT_BANDS: dict[str, str] = {
    "pop_total": "total_est",
    "pop_60": "age60plus",
    "pop_65": "age65plus",
    "pop_80": "age80plus",
}

#: The largest factor census totals may scale a group's raster counts by (and 1/it the smallest) before
#: :func:`rescale_to_totals` refuses. Across Wuhan's 13 districts WorldPop and the 2020 census differ by
#: x0.65 (Dongxihu 60+) to x2.38 (Qingshan 80+); Wuchang's 80+ is x2.16. A factor beyond x4 means the totals
#: are for another area than the boundary: a district's census row for part of the district (a 5 km² boundary
#: in 96 km² Wuchang gives x80), or a street's totals for a whole district.
MAX_CENSUS_FACTOR = 4.0
#: Factors beyond this (or below 1/it) are accepted with a warning: a boundary that is a good part of the
#: census area, but not all of it, gives such factors too.
WARN_CENSUS_FACTOR = 2.5

#: Most of the region's area that may lie outside the population raster's extent: the people there would
#: be missing (or, with census totals, pushed into the rest). Beyond it the load is refused; any part
#: outside is warned about.
MAX_OUTSIDE_RASTER = 0.02

#: Census columns that hold each group's count (``pop_60`` -> ``pop_60plus``; the total is ``pop_total``).
CENSUS_COLUMNS: dict[str, str] = {"pop_total": "pop_total", **{g: f"{g}plus" for g in ("pop_60", "pop_65", "pop_80")}}


def population_columns(frame: pd.DataFrame) -> list[str]:
    """The age-group columns of a demand frame, in the order of :data:`GROUP_LABELS`."""
    known = [g for g in GROUP_LABELS if g in frame.columns]
    extra = [c for c in frame.columns if c.startswith("pop_") and c not in GROUP_LABELS]
    return known + extra


def load_demand(
    raster: str | Path | None,
    boundary: gpd.GeoDataFrame,
    *,
    crs,
    bands: Mapping[str, str | int | Sequence[str | Path]] = DEFAULT_BANDS,
    census_totals: Mapping[str, float] | None = None,
) -> gpd.GeoDataFrame:
    """Population raster cells inside ``boundary`` as demand points.

    Parameters
    ----------
    raster
        A GeoTIFF (or any raster GDAL reads) of people per cell, with a CRS;
        ``None`` when every group is read from its own files.
    boundary
        The region; a cell belongs to it when its centre lies inside.
    crs
        The metric CRS of the result (the network's).
    bands
        Group name -> band description or 1-based band number of ``raster``,
        or a list of single-band rasters on one grid whose counts add up to
        the group (WorldPop's age/sex files: ``f_60``, ``m_60``, ``f_65``, ...).
    census_totals
        Group name -> the region's true total. Each group's counts are scaled so
        that they add up to it; groups left out are not scaled.

    Returns
    -------
    GeoDataFrame indexed by ``demand_id`` (the cell's row-major index in the
    raster) with one column per group, ``raster_row``, ``raster_col``, the
    cell-centre point as geometry and the cell square as ``cell``.
    """
    if not bands:
        raise InputError("No raster bands were mapped to population groups; give at least one, e.g. {'pop_60': 2}.")
    layers = _group_layers(raster, bands)
    path = next(iter(layers.values()))[0][0]  # the grid every layer must share
    with _open_raster(path) as source:
        area = boundary.to_crs(source.crs)
        region = shapely.union_all(area.geometry.to_numpy())
        window = _window_over(source, region, path)
        _check_extent(source, region, path)
        transform = source.window_transform(window)
        width = source.width
        row0, col0 = int(window.row_off), int(window.col_off)
        raster_crs = source.crs
        grid = (source.crs, source.transform, source.shape)
    data = np.ma.stack([_read_group(group, parts, window, grid, path) for group, parts in layers.items()])

    rows, cols = np.indices(data.shape[1:])
    centre_x, centre_y = rasterio.transform.xy(transform, rows.ravel(), cols.ravel(), offset="center")
    centre_x, centre_y = np.asarray(centre_x), np.asarray(centre_y)
    inside = shapely.contains_xy(region, centre_x, centre_y)
    values = np.ma.filled(data.reshape(len(layers), -1).astype("float64"), 0.0)
    populated = inside & (values.sum(axis=0) > 0)
    nodata = np.ma.getmaskarray(data).reshape(len(layers), -1).all(axis=0) & inside
    # not a warning: a settlement-constrained raster (WorldPop's) leaves most of a rural county without data, rightly
    log.info("demand: %d of the region's %d cells hold no data", nodata.sum(), inside.sum())
    if not populated.any():
        raise EmptyDataError(f"The population raster {path} has no people inside the region.")

    frame = pd.DataFrame(
        {group: values[i, populated] for i, group in enumerate(layers)},
    )
    frame["raster_row"] = rows.ravel()[populated] + row0
    frame["raster_col"] = cols.ravel()[populated] + col0
    frame.index = pd.Index(frame["raster_row"] * width + frame["raster_col"], name="demand_id")
    if census_totals:
        frame = rescale_to_totals(frame, census_totals)
    _check_nesting(frame, layers)

    half_w, half_h = abs(transform.a) / 2, abs(transform.e) / 2
    cx, cy = centre_x[populated], centre_y[populated]
    cells = shapely.box(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    demand = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(cx, cy), crs=raster_crs).to_crs(crs)
    demand["cell"] = gpd.GeoSeries(cells, index=demand.index, crs=raster_crs).to_crs(crs)
    log.info("demand: %d populated cells; %s", len(demand), _totals_text(demand))
    return demand


def rescale_to_totals(
    frame: pd.DataFrame,
    totals: Mapping[str, float],
    *,
    max_factor: float = MAX_CENSUS_FACTOR,
    source: str = "The census totals",
) -> pd.DataFrame:
    """A copy of ``frame`` whose group columns add up to ``totals`` (other columns untouched).

    Parameters
    ----------
    frame
        Demand points with one column per group.
    totals
        Group -> the true total of the area ``frame`` covers.
    max_factor
        A group scaled by more than this, or by less than its inverse, is an
        ``InputError``: the totals are for another area than the boundary
        (see :data:`MAX_CENSUS_FACTOR`). ``float("inf")`` accepts any factor.
        Factors beyond :data:`WARN_CENSUS_FACTOR` are accepted with a warning.
    source
        Where the totals come from, for messages.
    """
    if isinstance(max_factor, bool) or not isinstance(max_factor, (int, float)) or not max_factor >= 1:
        raise InputError(f"max_factor must be a number >= 1 (float('inf') accepts any factor), got {max_factor!r}.")
    scaled = frame.copy()
    factors: dict[str, tuple[float, float, float]] = {}
    for group, total in totals.items():
        if group not in scaled:
            raise InputError(
                f"Census total given for {group!r}, but the raster has no such band. "
                f"Groups from the raster: {population_columns(frame)}."
            )
        if total is None or not np.isfinite(total) or total < 0:
            raise InputError(f"The census total for {group} must be a number >= 0, got {total!r}.")
        current = scaled[group].sum()
        if current <= 0:
            raise EmptyDataError(f"The raster has no {group} people in the region, so it cannot be scaled to {total:,.0f}.")
        factors[group] = (total / current, current, total)
    _check_factors(factors, max_factor, source)
    for group, (factor, _, total) in factors.items():
        log.info("demand: %s scaled by %.3f to the census total %s", group, factor, f"{total:,.0f}")
        scaled[group] = scaled[group] * factor
    return scaled


def _check_factors(factors: Mapping[str, tuple[float, float, float]], max_factor: float, source: str) -> None:
    """Refuse factors beyond ``max_factor`` (either way), warn about those beyond :data:`WARN_CENSUS_FACTOR`."""
    def listed(groups):
        shown = [f"{g} ×{_factor_text(factors[g][0])} ({factors[g][1]:,.0f} to {factors[g][2]:,.0f})" for g in groups]
        return ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]

    normal = f"WorldPop and census counts of the same area differ by ×{1 / WARN_CENSUS_FACTOR:.1f} to ×{WARN_CENSUS_FACTOR:.1f}"
    refused = [g for g, (f, _, _) in factors.items() if f > max_factor or f < 1 / max_factor]
    if refused:
        larger = factors[refused[0]][0] > 1
        area = "a larger area than the boundary (e.g. a whole district's census row for part of it)" if larger else (
            "a smaller area than the boundary (e.g. one street's totals for a whole district)"
        )
        raise InputError(
            f"{source} would scale the raster's counts {listed(refused)} (people inside the boundary to the totals). "
            f"{normal}, so these totals are most likely for {area}. Give totals for the "
            "boundary's own area ([census] totals = {pop_60 = ..., ...}), keep the raster's counts ([census] rescale = false), "
            f"or, if the factor is right, raise the limit of ×{max_factor:g} with [census] max_factor (library: max_factor=...)."
        )
    large = [g for g, (f, _, _) in factors.items() if f > WARN_CENSUS_FACTOR or f < 1 / WARN_CENSUS_FACTOR]
    if large:
        warnings.warn(
            f"{source} scaled the raster's counts {listed(large)}; {normal}. Check that the totals are for the "
            "boundary's own area.",
            UserWarning,
            stacklevel=3,
        )


def census_totals_for(census_csv: str | Path, code: str, groups: list[str]) -> dict[str, float]:
    """The census counts of one county-level unit for the given groups."""
    path = _files.existing_file(census_csv, what="census table")
    table = pd.read_csv(path, dtype={"code": str})
    rows = table[table["code"] == str(code)]
    if rows.empty:
        raise InputError(f"No row with code {code!r} in the census table {path}. Use the 6-digit 2020 admin code, e.g. '420106' for Wuchang.")
    row = rows.iloc[0]
    totals = {}
    for group in groups:
        column = CENSUS_COLUMNS.get(group)
        if column is None:
            raise InputError(f"The census table has no column for group {group!r}; known groups: {list(CENSUS_COLUMNS)}.")
        totals[group] = float(row[column])
    return totals


def _factor_text(factor: float) -> str:
    return f"{factor:.2f}" if factor < 10 else f"{factor:,.1f}"


def _group_layers(raster, bands) -> dict[str, list[tuple[Path, int]]]:
    """Each group's (file, band number) parts: a band of ``raster``, or band 1 of each of its own files."""
    wrong = next((g for g in bands if not g.startswith("pop_")), None)
    if wrong is not None:
        raise InputError(f"Population group names start with 'pop_' (e.g. pop_60), got {wrong!r}.")
    layers: dict[str, list[tuple[Path, int]]] = {}
    named = {g: b for g, b in bands.items() if isinstance(b, (str, int)) and not isinstance(b, bool)}
    if named:
        if raster is None:
            raise InputError(f"Groups {sorted(named)} name bands, but no population raster is given to read them from.")
        path = _files.existing_file(raster, what="population raster")
        with _open_raster(path) as source:
            numbers = _band_numbers(source, named, path)
    for group, band in bands.items():
        if group in named:
            layers[group] = [(path, numbers[group])]
        elif isinstance(band, (list, tuple)) and band:
            layers[group] = [(_files.existing_file(p, what=f"population raster (for {group})"), 1) for p in band]
        else:
            raise InputError(f"The band for {group} must be a band name, a 1-based number or a list of raster files, got {band!r}.")
    return layers


def _open_raster(path: Path):
    try:
        source = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"Cannot read the population raster {path}: {exc}") from exc
    if source.crs is None:
        source.close()
        raise CRSMismatchError(
            f"The population raster {path} has no CRS. Assign it (e.g. `gdal_edit.py -a_srs EPSG:4326 {path.name}`) and load again."
        )
    return source


def _read_group(group: str, parts: list[tuple[Path, int]], window, grid, first: Path) -> np.ma.MaskedArray:
    """The group's counts in ``window``: its parts added up, no data only where every part has none."""
    total, mask = None, None
    for part, band in parts:
        with _open_raster(part) as source:
            if (source.crs, source.transform, source.shape) != grid:
                raise InputError(
                    f"The population raster {part.name} (for {group}) is not on the grid of {first.name}: every file must "
                    "have the same CRS, cell size, origin and size. Resample them to one grid (e.g. with gdalwarp -tr -te)."
                )
            values = source.read(band, window=window, masked=True)
        filled = np.maximum(np.ma.filled(values.astype("float64"), 0.0), 0.0)  # negative fill values that escaped the mask
        total = filled if total is None else total + filled
        mask = np.ma.getmaskarray(values) if mask is None else mask & np.ma.getmaskarray(values)
    return np.ma.masked_array(total, mask=mask)


def _band_numbers(source, bands: Mapping[str, str | int], path: Path) -> dict[str, int]:
    descriptions = list(source.descriptions)
    numbers = {}
    for group, band in bands.items():
        if isinstance(band, int) or (isinstance(band, str) and band.isdigit()):
            number = int(band)
            if not 1 <= number <= source.count:
                raise InputError(f"{path.name} has bands 1..{source.count}; band {number} for {group} does not exist.")
        elif band in descriptions:
            number = descriptions.index(band) + 1
        else:
            raise InputError(
                f"{path.name} has no band called {band!r} (for {group}). "
                f"Its bands are {[d or i + 1 for i, d in enumerate(descriptions)]}; give a name or a 1-based number."
            )
        numbers[group] = number
    return numbers


def _window_over(source, region: shapely.Geometry, path: Path) -> rasterio.windows.Window:
    left, bottom, right, top = source.bounds
    minx, miny, maxx, maxy = region.bounds
    if minx >= right or maxx <= left or miny >= top or maxy <= bottom:
        raise CRSMismatchError(
            f"The region (bounds {np.round(region.bounds, 4).tolist()} in {source.crs}) does not overlap the "
            f"population raster {path.name} (bounds {np.round(source.bounds, 4).tolist()}). "
            "Check that the raster covers the region and that both declare their true CRS."
        )
    window = rasterio.windows.from_bounds(minx, miny, maxx, maxy, transform=source.transform)
    window = window.round_offsets(op="floor").round_lengths(op="ceil")
    full = rasterio.windows.Window(0, 0, source.width, source.height)
    return window.intersection(full)


#: Age groups from the widest to the narrowest: each holds the next.
_NESTED_GROUPS = ("pop_total", "pop_60", "pop_65", "pop_80")


def _check_nesting(frame: pd.DataFrame, layers: Mapping[str, list[tuple[Path, int]]]) -> None:
    """Warn when a band feeds two groups, or an older group outnumbers a wider one (80+ above 60+)."""
    parts = [sorted(p) for p in layers.values()]
    shared = [g for g, p in zip(layers, parts) if parts.count(p) > 1]
    if shared:
        warnings.warn(f"The population groups {shared} are read from the same raster band: check the band mapping.",
                      UserWarning, stacklevel=3)
    groups = [g for g in _NESTED_GROUPS if g in frame]
    for wide, narrow in zip(groups, groups[1:]):
        if frame[narrow].sum() > frame[wide].sum() * 1.001:
            warnings.warn(
                f"There are more people in {narrow} ({frame[narrow].sum():,.0f}) than in {wide} ({frame[wide].sum():,.0f}), "
                "which holds them: check the band mapping, and that census totals are given for every group or none.",
                UserWarning, stacklevel=3,
            )


def _check_extent(source, region: shapely.Geometry, path: Path) -> None:
    """Refuse a raster that leaves more than :data:`MAX_OUTSIDE_RASTER` of the region out; warn about any part left out."""
    if region.area <= 0:
        return
    extent = shapely.box(*source.bounds)
    outside = shapely.difference(region, extent).area / region.area
    if outside <= 1e-4:
        return
    text = (f"{outside:.1%} of the region lies outside the population raster {path.name} (raster bounds "
            f"{np.round(source.bounds, 4).tolist()}, region bounds {np.round(region.bounds, 4).tolist()} in {source.crs}): "
            "nobody would be counted there, and census totals would be pushed into the rest.")
    if outside > MAX_OUTSIDE_RASTER:
        raise InputError(f"{text} Give a raster that covers the whole region, or a boundary clipped to the raster.")
    warnings.warn(f"{text} The people there are missing from every figure.", UserWarning, stacklevel=3)


def _totals_text(demand: pd.DataFrame) -> str:
    return ", ".join(f"{g} {demand[g].sum():,.0f}" for g in population_columns(demand))
