"""Rural planning units: towns (乡镇), villages (村) and who lives rurally, from the user's data or derived and labelled so.

Three things, each from the user where the user has it:

* **towns** -- a town polygon layer (``[rural] towns_path``); else
  *approximate town zones* (近似乡镇片区, not towns): the region's populated
  grid squares grouped by :func:`geoplan.units.zones_from_communities`
  (contiguous, balanced in 60+), as many as the district's streets and towns
  in the NBS list times the share of its older people the region holds;
* **villages** -- village points or polygons, or a table with lon/lat
  (``[rural] villages_path``); else *derived village units* (派生村单元, not
  administrative villages): one per ``village_grid_m`` square of rural
  cells with at least :data:`MIN_VILLAGE_PEOPLE` rural residents, standing at
  its populated cell nearest the square's 60+-weighted centre (among the
  cells with a walkable street within ``max_access_m``, where it has any);
* **rural cells** -- the population raster's cells inside the user's village
  polygons; else the cells of lowest surrounding density (people in the
  13 x 13 cells, about 1.1 km x 1.2 km, around each) that together hold the
  census share of rural residents of the whole district (乡村人口 / 人口数,
  2020 census; Huangpi 46.8 %), ranked over the district and applied to the
  region.

A village's people are the rural cells it holds (its polygon, or for a point
the rural cells nearest it within ``village_radius_m``): "rural population
placed by the raster". Every table says which of the three are derived.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import ndimage
from scipy.spatial import cKDTree

from geoplan import _files
from geoplan.demand import population_columns
from geoplan.errors import EmptyDataError, InputError

if TYPE_CHECKING:
    from geoplan.region import Region

log = logging.getLogger(__name__)

OUTSIDE = "outside"  # as geoplan.units.OUTSIDE: in no unit

TOWN_LABEL = "乡镇 town"
TOWN_ZONE_LABEL = "近似乡镇片区(非乡镇) approximate town zone, not a town"
VILLAGE_LABEL = "村 village"
DERIVED_VILLAGE_LABEL = "派生村单元(非行政村) derived village unit, not an administrative village"

#: A derived village unit needs at least this many rural residents (fewer: their square is farmland with a few houses).
MIN_VILLAGE_PEOPLE = 100.0
#: Side of the window (cells) whose people give a cell's surrounding density.
DENSITY_WINDOW_CELLS = 13
#: The census households table (乡村人口, 人口数_合计 per county).
HOUSEHOLDS_CSV = Path(__file__).resolve().parents[2] / "data" / "census" / "china_census2020_county_households.csv"


@dataclasses.dataclass(frozen=True)
class RuralUnits:
    """A region's towns, villages and rural cells.

    Attributes
    ----------
    towns
        Indexed by ``town_code``: ``name``, ``unit_type`` (town, or approximate
        town zone), polygons.
    villages
        Indexed by ``village_code``: ``name``, ``town_code``, ``unit_type``,
        the rural people per group it holds (``pop_*``), a point (where a meal
        point would stand) and ``area`` (its polygon; None for a point).
    rural
        Per demand cell of the region (its index): whether it counts as rural.
    village_of
        Per demand cell: the village it belongs to (:data:`OUTSIDE`: none).
    towns_derived, villages_derived, rural_derived
        Which of the three geoplan derived.
    town_source, village_source, rural_source
        Where each came from, in words (tables and sheets show them).
    rural_share
        The share of residents counted as rural (of the district, as the census gives it).
    """

    towns: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    rural: pd.Series
    village_of: pd.Series
    towns_derived: bool
    villages_derived: bool
    rural_derived: bool
    town_source: str
    village_source: str
    rural_source: str
    rural_share: float

    @property
    def town_label(self) -> str:
        return TOWN_ZONE_LABEL if self.towns_derived else TOWN_LABEL

    @property
    def village_label(self) -> str:
        return DERIVED_VILLAGE_LABEL if self.villages_derived else VILLAGE_LABEL

    def town_of(self, points: gpd.GeoDataFrame | gpd.GeoSeries) -> pd.Series:
        """The town code of each point (:data:`OUTSIDE` when in none)."""
        geometry = points.geometry.to_crs(self.towns.crs)
        joined = gpd.sjoin(gpd.GeoDataFrame(geometry=geometry.to_numpy(), crs=self.towns.crs, index=pd.RangeIndex(len(geometry))),
                           self.towns[["geometry"]].rename_axis("town_code").reset_index(), how="left", predicate="within")
        joined = joined[~joined.index.duplicated()].sort_index()
        codes = joined["town_code"].astype(object).where(joined["town_code"].notna(), OUTSIDE).to_numpy()
        return pd.Series(codes, index=points.index, name="town_code", dtype=object)

    def about(self) -> list[tuple[str, str]]:
        """Where the units come from, as sheet rows."""
        return [
            ("towns 乡镇", f"{len(self.towns)} {self.town_label}: {self.town_source}"),
            ("villages 村", f"{len(self.villages)} {self.village_label}: {self.village_source}"),
            ("rural cells 乡村人口", f"{self.rural_source} ({'derived 派生' if self.rural_derived else 'from the village polygons 村界'})"),
        ]


def rural_units(
    region: "Region", *, towns: str | Path | gpd.GeoDataFrame | None = None, villages: str | Path | gpd.GeoDataFrame | None = None,
    coord_system: str | None = None, grid_m: float | None = None, radius_m: float | None = None, n_towns: int | None = None,
    rural_share: float | None = None,
) -> RuralUnits:
    """The region's towns, villages and rural cells (see the module docstring); arguments replace the config's ``[rural]``."""
    settings = region.config.rural
    towns = towns if towns is not None else (settings.towns_path if settings is not None else None)
    villages = villages if villages is not None else (settings.villages_path if settings is not None else None)
    coord_system = coord_system or (settings.villages_coord_system if settings is not None else "wgs84")
    grid_m = float(grid_m or (settings.village_grid_m if settings is not None else 2000.0))
    radius_m = float(radius_m or (settings.village_radius_m if settings is not None else 1500.0))
    n_towns = n_towns or (settings.n_towns if settings is not None else None)
    share_given = rural_share if rural_share is not None else (settings.rural_share if settings is not None else None)
    if not grid_m > 0 or not radius_m > 0:
        raise InputError(f"grid_m and radius_m must be positive metres, got {grid_m!r} and {radius_m!r}.")

    share, share_source = rural_share_of(region, share_given)
    polygons = None
    if villages is not None:
        frame = _read_villages(villages, region, coord_system)
        polygons = frame if frame.geom_type.isin(["Polygon", "MultiPolygon"]).all() else None
    if polygons is not None:
        rural, village_of = _cells_in_polygons(region.demand, polygons)
        rural_source = f"the cells inside the {len(polygons)} village polygons of {_name(villages)}"
        rural_derived = False
    else:
        rural, rural_source = classify_rural(region, share, share_source)
        rural_derived = True

    if towns is not None:
        town_frame = towns_from_file(towns, region, code_column=settings.town_code_column if settings else None,
                                     name_column=settings.town_name_column if settings else None)
        town_source, towns_derived = f"{len(town_frame)} towns from {_name(towns)}", False
    else:
        town_frame, town_source = derived_towns(region, n_towns=n_towns, grid_m=grid_m)
        towns_derived = True

    if villages is None:
        village_frame, village_of = derived_villages(region, rural, grid_m=grid_m)
        village_source = (f"{grid_m / 1000:g} km squares of rural cells with at least {MIN_VILLAGE_PEOPLE:g} rural residents, each at its "
                          "populated cell nearest the square's 60+-weighted centre among those with a street within reach (派生, not "
                          "administrative villages)")
        villages_derived = True
    else:
        if polygons is None:
            village_of = _nearest_village(region.demand, rural, frame, radius_m)
            village_source = f"{len(frame)} village points from {_name(villages)}; their people: the rural cells nearest each within {radius_m:g} m"
        else:
            village_source = f"{len(frame)} village polygons from {_name(villages)}; their people: the cells inside"
        village_frame = _village_table(region.demand, frame, village_of, polygons is not None)
        villages_derived = False
    village_frame = _with_towns(village_frame, town_frame)
    log.info("rural units: %d towns, %d villages, %.0f rural 60+", len(town_frame), len(village_frame),
             float(region.demand.loc[rural.to_numpy(), "pop_60"].sum()) if "pop_60" in region.demand else 0.0)
    return RuralUnits(
        towns=town_frame, villages=village_frame, rural=rural, village_of=village_of, towns_derived=towns_derived,
        villages_derived=villages_derived, rural_derived=rural_derived, town_source=town_source, village_source=village_source,
        rural_source=rural_source, rural_share=share,
    )


# --- rural cells --------------------------------------------------------------------------------


def rural_share_of(region: "Region", given: float | None = None) -> tuple[float, str]:
    """The share of the district's residents who are rural, and its source: ``given``, else the 2020 census (乡村人口 / 人口数_合计)."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, float)) or not 0 <= given <= 1:
            raise InputError(f"rural_share must be a fraction from 0 to 1, got {given!r}.")
        return float(given), "the share given ([rural] rural_share)"
    census = region.config.census
    code = census.code if census is not None else None
    if not code:
        raise InputError(f"{region.key} has no census code ([census] code), so its rural share is unknown: give [rural] rural_share (e.g. 0.468).")
    table = pd.read_csv(HOUSEHOLDS_CSV, dtype={"区划代码": str})
    rows = table[table["区划代码"] == str(code)]
    if rows.empty or not rows.iloc[0]["人口数_合计"] > 0:
        raise InputError(f"No rural population (乡村人口) for census code {code!r} in {HOUSEHOLDS_CSV.name}: give [rural] rural_share.")
    row = rows.iloc[0]
    share = float(row["乡村人口"]) / float(row["人口数_合计"])
    return share, f"2020 census 乡村人口 / 人口数 of {row['区县']} ({code}): {row['乡村人口']:,.0f} of {row['人口数_合计']:,.0f} = {100 * share:.1f} %"


def classify_rural(region: "Region", share: float, share_source: str = "") -> tuple[pd.Series, str]:
    """Which of the region's cells count as rural: the least dense of the whole district holding ``share`` of its residents."""
    from geoplan.extent import district_demand

    if "raster_row" not in region.demand or "pop_total" not in region.demand:
        raise InputError("Classing cells as rural needs the population raster's cells with pop_total ([population] bands); "
                         "give village polygons ([rural] villages_path) instead.")
    district, _ = district_demand(region.config)
    density = _surrounding_people(district)
    order = np.argsort(density, kind="stable")
    cumulative = np.cumsum(district["pop_total"].to_numpy(dtype=float)[order])
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        raise EmptyDataError("The district's raster holds nobody; cannot class cells as rural.")
    cut = int(np.searchsorted(cumulative, share * total, side="right"))
    threshold = density[order[cut - 1]] if cut > 0 else -np.inf
    region_density = _surrounding_people(district, at=region.demand)
    rural = pd.Series(region_density <= threshold, index=region.demand.index, name="rural")
    text = (f"the district's least dense cells (people in the {DENSITY_WINDOW_CELLS} x {DENSITY_WINDOW_CELLS} cells around each, at most "
            f"{threshold:,.0f}) holding the census rural share, {share_source or f'{100 * share:.1f} %'}")
    return rural, text


def _surrounding_people(district: pd.DataFrame, *, at: pd.DataFrame | None = None) -> np.ndarray:
    """People in the window of cells around each cell of ``at`` (default: the district's own cells)."""
    rows, cols = district["raster_row"].to_numpy(), district["raster_col"].to_numpy()
    r0, c0 = rows.min(), cols.min()
    grid = np.zeros((rows.max() - r0 + 1, cols.max() - c0 + 1))
    np.add.at(grid, (rows - r0, cols - c0), district["pop_total"].to_numpy(dtype=float))
    window = DENSITY_WINDOW_CELLS
    summed = ndimage.uniform_filter(grid, size=window, mode="constant") * window * window
    at = district if at is None else at
    r, c = at["raster_row"].to_numpy() - r0, at["raster_col"].to_numpy() - c0
    inside = (r >= 0) & (r < grid.shape[0]) & (c >= 0) & (c < grid.shape[1])
    out = np.full(len(at), np.inf)
    out[inside] = summed[r[inside], c[inside]]
    return out


# --- derived units ------------------------------------------------------------------------------


def _squares(region: "Region", cells: pd.DataFrame, grid_m: float) -> pd.Series:
    """The grid square of each cell, as ``"<col>_<row>"`` from the region's south-west corner."""
    x0, y0 = region.boundary.total_bounds[:2]
    xy = shapely.get_coordinates(cells.geometry.to_numpy())
    col = np.floor((xy[:, 0] - x0) / grid_m).astype(np.int64)
    row = np.floor((xy[:, 1] - y0) / grid_m).astype(np.int64)
    return pd.Series([f"{c}_{r}" for c, r in zip(col, row)], index=cells.index)


def _square_polygons(region: "Region", keys: pd.Index, grid_m: float) -> np.ndarray:
    x0, y0 = region.boundary.total_bounds[:2]
    parts = np.array([k.split("_") for k in keys], dtype=np.int64).reshape(-1, 2)
    boxes = shapely.box(x0 + parts[:, 0] * grid_m, y0 + parts[:, 1] * grid_m, x0 + (parts[:, 0] + 1) * grid_m, y0 + (parts[:, 1] + 1) * grid_m)
    return shapely.intersection(boxes, shapely.union_all(region.boundary.geometry.to_numpy()))


def derived_villages(region: "Region", rural: pd.Series, *, grid_m: float = 2000.0) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """Derived village units: one per ``grid_m`` square of rural cells with at least :data:`MIN_VILLAGE_PEOPLE` rural residents."""
    demand = region.demand
    groups = population_columns(demand)
    cells = demand[rural.reindex(demand.index).fillna(False).to_numpy(dtype=bool)]
    if cells.empty:
        raise EmptyDataError(f"No cell of {region.key} counts as rural, so there are no villages to derive; give villages ([rural] villages_path).")
    square = _squares(region, cells, grid_m)
    people = cells[groups].groupby(square.to_numpy()).sum()
    kept = people.index[people["pop_total" if "pop_total" in people else groups[0]].to_numpy() >= MIN_VILLAGE_PEOPLE]
    if not len(kept):
        raise EmptyDataError(f"No {grid_m:g} m square of rural cells in {region.key} holds {MIN_VILLAGE_PEOPLE:g} rural residents; use a larger [rural] village_grid_m.")
    weight_group = "pop_60" if "pop_60" in groups else groups[0]
    xy = pd.DataFrame(shapely.get_coordinates(cells.geometry.to_numpy()), columns=["x", "y"], index=cells.index)
    xy["w"] = cells[weight_group].to_numpy(dtype=float) + 1e-9
    xy["square"] = square.to_numpy()
    xy = xy[xy["square"].isin(kept)]
    centre = xy.assign(wx=xy["x"] * xy["w"], wy=xy["y"] * xy["w"]).groupby("square")[["wx", "wy", "w"]].sum()
    cx, cy = centre["wx"] / centre["w"], centre["wy"] / centre["w"]
    xy["d"] = np.hypot(xy["x"] - cx.reindex(xy["square"]).to_numpy(), xy["y"] - cy.reindex(xy["square"]).to_numpy())
    # a cell with a street within reach first (a meal point stands on the village's road), then nearest the centre
    xy["off"] = (cells["edge_id"].reindex(xy.index).to_numpy() < 0) if "edge_id" in cells else False
    at = xy.sort_values(["square", "off", "d"]).drop_duplicates("square").set_index("square")
    # numbered north to south, then west to east
    order = sorted(kept, key=lambda k: (-at.at[k, "y"], at.at[k, "x"]))
    width = max(3, len(str(len(order))))
    code_of = {k: f"V{i + 1:0{width}d}" for i, k in enumerate(order)}
    codes = pd.Index([code_of[k] for k in order], name="village_code")
    villages = gpd.GeoDataFrame(
        {"name": [f"派生村单元{c} derived village unit {c}" for c in codes], "unit_type": DERIVED_VILLAGE_LABEL,
         **{g: people.loc[order, g].to_numpy() for g in groups}, "square": order},
        geometry=gpd.points_from_xy(at.loc[order, "x"], at.loc[order, "y"]), crs=region.crs, index=codes,
    )
    villages["area"] = gpd.GeoSeries(_square_polygons(region, pd.Index(order), grid_m), index=codes, crs=region.crs)
    village_of = pd.Series(OUTSIDE, index=demand.index, dtype=object, name="village_code")
    mapped = square.map(code_of)
    village_of.loc[mapped.dropna().index] = mapped.dropna().to_numpy()
    return villages, village_of


def derived_towns(region: "Region", *, n_towns: int | None = None, grid_m: float = 2000.0) -> tuple[gpd.GeoDataFrame, str]:
    """Approximate town zones: the region's populated ``grid_m`` squares grouped into ``n_towns`` contiguous zones balanced in 60+."""
    from geoplan.units import street_count, zones_from_communities

    demand = region.demand
    group = "pop_60" if "pop_60" in demand else population_columns(demand)[0]
    square = _squares(region, demand, grid_m)
    people = demand[group].groupby(square.to_numpy()).sum()
    people = people[people > 0]
    if people.empty:
        raise EmptyDataError(f"{region.key} holds nobody to build town zones from.")
    how = "given ([rural] n_towns)"
    if n_towns is None:
        n_towns, how = _town_count(region, group, street_count)
    n_towns = int(min(max(1, n_towns), len(people)))
    squares = gpd.GeoDataFrame({"name": [f"square {k}" for k in people.index]}, geometry=_square_polygons(region, people.index, grid_m),
                               crs=region.crs, index=pd.Index(people.index, name="community_code"))
    squares = squares[~squares.geometry.is_empty]
    if n_towns == 1:
        zone = pd.Series("T01", index=squares.index)
    else:
        units = zones_from_communities(squares, people, n_zones=n_towns, source=f"the region's populated {grid_m / 1000:g} km squares")
        zone = units.communities["street_code"].map(lambda z: "T" + z[1:])
    polygons = squares.geometry.groupby(zone.reindex(squares.index).to_numpy()).agg(lambda g: shapely.union_all(g.to_numpy()))
    towns = gpd.GeoDataFrame(
        {"name": [f"近似乡镇片区{c[1:]} approximate town zone {c[1:]}" for c in polygons.index], "unit_type": TOWN_ZONE_LABEL},
        geometry=polygons.to_numpy(), crs=region.crs, index=pd.Index(polygons.index, name="town_code"),
    )
    zone_people = people.groupby(zone.reindex(people.index).to_numpy()).sum()
    text = (f"{n_towns} approximate town zones (近似乡镇片区, not towns; {how}) built from the region's populated {grid_m / 1000:g} km squares "
            f"with spopt SKATER + AZP: contiguous, 60+ per zone {zone_people.min():,.0f} to {zone_people.max():,.0f}")
    return towns, text


def _town_count(region: "Region", group: str, street_count) -> tuple[int, str]:
    from geoplan.extent import district_demand
    from geoplan.units import _district_code

    code = _district_code(region)
    if code is None:
        return 1, "one zone: no district code to count towns by"
    try:
        count = street_count(code)
    except InputError:
        return 1, f"one zone: the NBS list has no streets or towns of {code}"
    district, _ = district_demand(region.config)
    share = float(region.demand[group].sum()) / float(district[group].sum()) if district[group].sum() > 0 else 1.0
    n = max(1, round(count * share))
    return n, f"{count} streets and towns of {code} in the NBS list x {100 * share:.1f} % of its {group[4:]}+ in the region = {n}"


# --- the user's units ---------------------------------------------------------------------------


def towns_from_file(path: str | Path | gpd.GeoDataFrame, region: "Region", *, code_column: str | None = None,
                    name_column: str | None = None) -> gpd.GeoDataFrame:
    """Town polygons from a layer (codes and names found as :func:`geoplan.units.streets_from_layer` finds them), those in the region."""
    from geoplan.units import _overlapping, streets_from_layer

    streets = streets_from_layer(path, code_column=code_column, name_column=name_column, crs=region.crs)
    towns = _overlapping(streets, region.boundary).rename_axis("town_code")
    towns["unit_type"] = TOWN_LABEL
    return towns[["name", "unit_type", "geometry"]]


def villages_from_file(path: str | Path, region: "Region", *, coord_system: str = "wgs84") -> gpd.GeoDataFrame:
    """Villages from a file, in the region: points or polygons (a layer) or a CSV/Excel table with lon/lat.

    Columns read: the village code (``community_code``, ``村代码``, ``社区代码``,
    else ``site_id``/``id``/``编号``), the name (``name``/``名称``) and the
    town code (``street_code``, ``乡镇代码``, ``街道代码``). A polygon layer's
    columns are read as :func:`geoplan.units.communities_from_layer` reads them.
    Returns a frame indexed by ``village_code`` with ``name``, ``town_code``
    (None where not given) and the geometry; villages outside the region are
    left out (with a log line), an empty result is an error.
    """
    return _read_villages(path, region, coord_system)


def _read_villages(source, region: "Region", coord_system: str) -> gpd.GeoDataFrame:
    from geoplan.sites import load_facilities
    from geoplan.units import communities_from_layer

    if isinstance(source, gpd.GeoDataFrame):
        frame = source.to_crs(region.crs)
        if "town_code" not in frame:
            frame["town_code"] = None
        if "name" not in frame:
            frame["name"] = frame.index.astype(str)
        frame.index = frame.index.astype(str).rename("village_code")
    else:
        path = _files.existing_file(source, what="villages")
        polygons = False
        if path.suffix.lower() not in (".csv", ".txt", *_files.EXCEL_SUFFIXES):
            layer = _files.read_vector(path, what="villages")
            polygons = bool(len(layer)) and layer.geom_type.isin(["Polygon", "MultiPolygon"]).all()
        if polygons:
            units = communities_from_layer(path, crs=region.crs)
            frame = gpd.GeoDataFrame({"name": units["name"].to_numpy(),
                                      "town_code": units["street_code"].where(units["street_code"] != OUTSIDE, None).to_numpy()},
                                     geometry=units.geometry.to_numpy(), crs=region.crs, index=pd.Index(units.index, name="village_code"))
        else:
            sites = load_facilities(path, crs=region.crs, coord_system=coord_system, kind="canteen")
            codes = sites["community_code"].astype(str) if "community_code" in sites else pd.Series(sites.index.astype(str), index=sites.index)
            if codes.duplicated().any():
                raise InputError(f"{path}: village codes repeat: {sorted(set(codes[codes.duplicated()]))[:10]}. Give each village its own code.")
            frame = gpd.GeoDataFrame({"name": sites["name"].to_numpy(),
                                      "town_code": sites["street_code"].to_numpy() if "street_code" in sites else None},
                                     geometry=sites.geometry.to_numpy(), crs=region.crs, index=pd.Index(codes.to_numpy(), name="village_code"))
    area = shapely.union_all(region.boundary.geometry.to_numpy())
    inside = shapely.intersects(frame.geometry.to_numpy(), area)
    if not inside.any():
        raise InputError(f"None of the {len(frame)} villages of {_name(source)} lies in {region.key}: check the file, its coordinate system "
                         "(wgs84, gcj02, bd09) and the region.")
    if not inside.all():
        log.info("rural units: %d of %d villages lie outside %s and are left out", int((~inside).sum()), len(frame), region.key)
    return frame[inside]


def _cells_in_polygons(demand: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame) -> tuple[pd.Series, pd.Series]:
    joined = gpd.sjoin(demand[["geometry"]], polygons[["geometry"]].rename_axis("village_code").reset_index(), how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    village = joined["village_code"].reindex(demand.index)
    village_of = village.astype(object).where(village.notna(), OUTSIDE).rename("village_code")
    return pd.Series(village.notna().to_numpy(), index=demand.index, name="rural"), village_of


def _nearest_village(demand: gpd.GeoDataFrame, rural: pd.Series, villages: gpd.GeoDataFrame, radius_m: float) -> pd.Series:
    village_of = pd.Series(OUTSIDE, index=demand.index, dtype=object, name="village_code")
    rural_cells = demand[rural.reindex(demand.index).fillna(False).to_numpy(dtype=bool)]
    if rural_cells.empty:
        return village_of
    points = villages.geometry.representative_point()
    tree = cKDTree(np.column_stack([points.x, points.y]))
    xy = shapely.get_coordinates(rural_cells.geometry.to_numpy())
    distance, nearest = tree.query(xy, distance_upper_bound=radius_m)
    found = np.isfinite(distance)
    village_of.loc[rural_cells.index[found]] = villages.index.to_numpy()[nearest[found]]
    return village_of


def _village_table(demand: gpd.GeoDataFrame, frame: gpd.GeoDataFrame, village_of: pd.Series, polygons: bool) -> gpd.GeoDataFrame:
    groups = population_columns(demand)
    inside = village_of != OUTSIDE
    people = demand.loc[inside.to_numpy(), groups].groupby(village_of[inside].to_numpy()).sum().reindex(frame.index, fill_value=0.0)
    villages = gpd.GeoDataFrame(
        {"name": frame["name"].to_numpy(), "unit_type": VILLAGE_LABEL, "given_town_code": frame["town_code"].to_numpy(),
         **{g: people[g].to_numpy() for g in groups}},
        geometry=frame.geometry.representative_point().to_numpy() if polygons else frame.geometry.to_numpy(), crs=frame.crs, index=frame.index,
    )
    villages["area"] = gpd.GeoSeries(frame.geometry.to_numpy() if polygons else [None] * len(frame), index=frame.index, crs=frame.crs)
    return villages


def _with_towns(villages: gpd.GeoDataFrame, towns: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The villages with their town: the one the file gives (if the towns have it), else the town the point lies in."""
    points = gpd.GeoDataFrame(geometry=villages.geometry.to_numpy(), crs=villages.crs, index=pd.RangeIndex(len(villages)))
    joined = gpd.sjoin(points, towns[["geometry"]].rename_axis("town_code").reset_index(), how="left", predicate="within")
    joined = joined[~joined.index.duplicated()].sort_index()
    located = joined["town_code"].astype(object).where(joined["town_code"].notna(), OUTSIDE).to_numpy()
    if "given_town_code" in villages:
        given = villages["given_town_code"].astype(object)
        known = given.notna() & given.astype(str).isin(set(map(str, towns.index)))
        located = np.where(known.to_numpy(), given.astype(str).to_numpy(), located)
        villages = villages.drop(columns="given_town_code")
    villages = villages.copy()
    villages.insert(1, "town_code", located)
    return villages


def _name(source) -> str:
    return Path(source).name if isinstance(source, (str, Path)) else "the given frame"
