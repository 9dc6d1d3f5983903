"""Planning units: district -> street/town (街道/乡镇) -> community/village (社区/村).

The plans' targets are counted per street and per community ("80 % of streets
with a centre", "60 % of communities with a station"), so a review needs both
levels as polygons. They come, in order of preference, from

* the user's own layers (GeoJSON, GPKG, shapefile) with code and name columns:
  :func:`streets_from_layer`, :func:`communities_from_layer`, :func:`units_from_layers`;
* a community -> street table (CSV or Excel) joined to a community layer:
  :func:`units_from_table` (each street is the union of its communities);
* OSM ``admin_level`` boundary relations in an ``.osm`` extract
  (level 8 is usually 街道/乡镇 in China): :func:`streets_from_osm`;
* or, where a region has no street polygons at all (Wuchang's open data has
  none), **approximate zones** built from its community units:
  :func:`zones_from_communities`. They are labelled as approximate zones, not
  streets (:attr:`PlanningUnits.approximate`, names like ``片区01 zone 01``).

How zones are built (:func:`zones_from_communities`)
-----------------------------------------------------
1. Contiguity: two communities are neighbours when they lie within
   :data:`CONTIGUITY_TOLERANCE_M` of each other (sharing an edge or a corner, or
   separated by a digitising sliver). A community or group of communities with
   no neighbour (an island) is joined to the nearest community outside it, by a
   "bridge" edge, until the graph is connected (:func:`community_graph`): an
   island then belongs to the zone of its nearest neighbour instead of breaking
   the method or becoming a zone of its own.
2. SKATER (``spopt.region.Skater``): a minimum spanning tree of the graph, with
   the distance between the communities' representative points as edge cost,
   cut ``n_zones - 1`` times. The cuts are chosen greedily to minimise the
   balance objective below (spopt's ``spanning_forest_kwds``), so every zone is
   one connected piece of the tree.
3. AZP (``spopt.region.AZP``), started from the SKATER zones: communities on a
   zone's edge move to a neighbouring zone while the objective falls and the
   donor zone stays connected. Seeded (``seed``), so the zones are the same on
   every run.

The objective is ``sum over zones (P_z / P_mean)**2 + compactness * sum over
zones of the squared km from each community to its zone's centre``, where
``P_z`` is the zone's older population (60+ of the region's demand cells in its
communities). With the total fixed, the first term is smallest when every zone
holds the same number of older people; the second keeps zones compact.
Balance is "as far as the method allows": communities are not split, so a zone
cannot be balanced finer than its communities. Wuchang (124 community units,
14 zones): 60+ per zone from 11,634 to 13,537 (mean 12,437; 56,904 more live in
no community unit).

People in no unit
-----------------
Community layers rarely cover every populated cell (a quarter of Wuchang's lie
in none of its community units). :meth:`PlanningUnits.locate` gives such points
the code :data:`OUTSIDE`, and :func:`people_per_unit` counts them in a row of
their own: nobody is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import csgraph, csr_matrix

from geoplan import _files
from geoplan.demand import population_columns
from geoplan.errors import CRSMismatchError, EmptyDataError, InputError

if TYPE_CHECKING:
    from geoplan.region import Region

log = logging.getLogger(__name__)

OUTSIDE = "outside"  # the code of the row for people outside every unit
OUTSIDE_NAME = "不在任何单元 outside every unit"

STREET_LABEL = "街道 street"
ZONE_LABEL = "近似片区(非街道) approximate zone, not a street"

#: The shipped list of Wuhan's streets and townships (NBS division codes, 2023).
STREET_LIST = Path(__file__).resolve().parents[1] / "data" / "admin" / "streets_wuhan_nbs2023.csv"

#: Two communities closer than this (metres) are neighbours (slivers between digitised polygons).
CONTIGUITY_TOLERANCE_M = 1.0
#: Weight of compactness against balance in the zone objective (per km² of squared distance).
DEFAULT_COMPACTNESS = 0.01

#: Column names a unit table's code / name / community code / community name is found under (any case).
CODE_NAMES = ("code", "代码", "区划代码", "编码", "编号", "id")
NAME_NAMES = ("name", "名称", "名字")
_STREET_CODE_NAMES = ("street_code", "街道代码", "乡镇代码", "街道编码", "街道区划代码")
_STREET_NAME_NAMES = ("street_name", "street", "街道名称", "街道", "乡镇", "乡镇街道", "街道乡镇")
COMMUNITY_CODE_NAMES = ("community_code", "社区代码", "村代码", "社区编码", "社区区划代码", "unit_id")
COMMUNITY_NAME_NAMES = ("community_name", "community", "社区名称", "社区", "村", "社区村", "村社区")
_HEADER_SEARCH_ROWS = 10
#: NBS township codes (the last 3 of 9 digits): 001-099 街道, 100-199 镇, 200-399 乡; 400-599 are
#: "units like townships" (development zones, scenic areas, farms), not counted as streets.
_TOWNSHIP_CODE_MAX = 399


@dataclass(frozen=True)
class PlanningUnits:
    """A district's streets (or approximate zones) and communities, in the region CRS.

    Attributes
    ----------
    streets
        Indexed by ``street_code`` (str); columns ``name``, ``geometry``.
    communities
        Indexed by ``community_code`` (str); columns ``name``, ``street_code``
        (:data:`OUTSIDE` for a community in no street), ``geometry``. May be
        empty (streets only).
    approximate
        True: the streets are approximate zones built from communities
        (:func:`zones_from_communities`), not real streets.
    source
        Where the units came from, in words (shown in tables and sheets).
    """

    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    approximate: bool
    source: str

    @property
    def street_label(self) -> str:
        """What a street row is: ``"街道 street"`` or ``"近似片区(非街道) approximate zone, not a street"``."""
        return ZONE_LABEL if self.approximate else STREET_LABEL

    @property
    def crs(self):
        return self.streets.crs if self.streets.crs is not None else self.communities.crs

    def locate(self, points: gpd.GeoDataFrame | gpd.GeoSeries) -> pd.DataFrame:
        """The street and community of every point (:data:`OUTSIDE` when in none).

        ``points`` is a GeoDataFrame or GeoSeries in any CRS (e.g.
        ``region.demand`` or ``facilities.geometry``).

        A point in a community belongs to that community's street, so the two
        levels always nest; a point in no community belongs to the street
        polygon it lies in, if any. Other geometries stand at a representative
        point. A point exactly on a shared edge is in neither (as for
        ``region.demand["unit_id"]``).

        Returns
        -------
        DataFrame on the points' index with ``street_code`` and ``community_code`` (str).
        """
        if points.crs is None:
            raise CRSMismatchError("The points to locate have no CRS; set one (e.g. points.set_crs(4326)).")
        geometry = points.geometry
        if not (geometry.geom_type == "Point").all():
            geometry = geometry.representative_point()
        geometry = geometry.to_crs(self.crs)
        community = _first_within(geometry, self.communities)
        street = self.communities["street_code"].reindex(community.to_numpy()).to_numpy(dtype=object)
        street = np.where(pd.isna(street), OUTSIDE, street)
        loose = street == OUTSIDE
        if loose.any():
            street[loose] = _first_within(geometry[loose], self.streets).to_numpy()
        return pd.DataFrame({"street_code": street.astype(str), "community_code": community.to_numpy()}, index=points.index)


def people_per_unit(
    units: PlanningUnits, demand: gpd.GeoDataFrame, *, level: str = "street", groups: list[str] | None = None
) -> pd.DataFrame:
    """People per street (or community) with a last row for those in no unit.

    Parameters
    ----------
    units
        The planning units.
    demand
        Demand points with ``pop_*`` columns (``region.demand``).
    level
        ``"street"`` or ``"community"``.
    groups
        The ``pop_*`` columns to add up (default: all of the demand's).

    Returns
    -------
    DataFrame indexed by ``street_code`` or ``community_code``: every unit (also
    those with nobody) in the units' order, then :data:`OUTSIDE`; columns
    ``name`` and one per group. The rows add up to the demand's totals.
    """
    if level not in ("street", "community"):
        raise InputError(f"level must be 'street' or 'community', got {level!r}.")
    groups = groups or population_columns(demand)
    unknown = [g for g in groups if g not in demand]
    if unknown:
        raise InputError(f"The demand has no column(s) {unknown}; it has {population_columns(demand)}.")
    frame = units.streets if level == "street" else units.communities
    column = f"{level}_code"
    codes = units.locate(demand)[column]
    sums = demand[groups].groupby(codes.to_numpy()).sum()
    order = list(frame.index) + [OUTSIDE]
    table = sums.reindex(order, fill_value=0.0)
    table.insert(0, "name", list(frame["name"]) + [OUTSIDE_NAME])
    table.index.name = column
    return table


# ---------------------------------------------------------------- loaders: layers and tables


def streets_from_layer(
    layer: str | Path | gpd.GeoDataFrame,
    *,
    code_column: str | None = None,
    name_column: str | None = None,
    layer_name: str | None = None,
    where: Mapping[str, Any] | None = None,
    crs=None,
) -> gpd.GeoDataFrame:
    """Street/town polygons from a user's layer (GeoJSON, GPKG, shapefile...) or a GeoDataFrame.

    Parameters
    ----------
    layer
        The file or frame.
    code_column, name_column
        The columns holding each street's code and name; when not given they
        are found among common names (``street_code``/``街道代码``/``code``/
        ``代码``/``区划代码``..., ``street_name``/``街道``/``name``/``名称``...).
        With names only, the names serve as codes.
    layer_name
        The layer of a multi-layer file (GPKG).
    where
        ``{column: value}``: keep only the features that match (e.g. a district).
    crs
        The CRS of the result (default: the layer's).

    Returns
    -------
    GeoDataFrame indexed by ``street_code`` (str) with ``name`` and ``geometry``.
    """
    frame, label = _polygons(layer, what="street", layer_name=layer_name, where=where)
    codes, names = _codes_and_names(
        frame, label, code_column, name_column, code_names=_STREET_CODE_NAMES + CODE_NAMES, name_names=_STREET_NAME_NAMES + NAME_NAMES
    )
    streets = gpd.GeoDataFrame({"name": names.to_numpy()}, geometry=frame.geometry.to_numpy(), crs=frame.crs, index=pd.Index(codes.to_numpy(), name="street_code"))
    return streets.to_crs(crs) if crs is not None else streets


def communities_from_layer(
    layer: str | Path | gpd.GeoDataFrame,
    *,
    code_column: str | None = None,
    name_column: str | None = None,
    street_column: str | None = None,
    layer_name: str | None = None,
    where: Mapping[str, Any] | None = None,
    crs=None,
) -> gpd.GeoDataFrame:
    """Community/village polygons from a user's layer or a GeoDataFrame.

    Codes and names are found as in :func:`streets_from_layer` (``community_code``/
    ``社区代码``/``code``/``代码``..., ``community_name``/``社区``/``name``/``名称``...);
    without a name column, communities are named ``社区单元 <code> community unit <code>``.
    ``street_column`` (or a column found among ``street_code``/``街道代码``) gives
    each community's street code; without one ``street_code`` is :data:`OUTSIDE`
    until the communities are joined to streets (:func:`units_from_layers`).

    Returns
    -------
    GeoDataFrame indexed by ``community_code`` (str) with ``name``, ``street_code``, ``geometry``.
    """
    frame, label = _polygons(layer, what="community", layer_name=layer_name, where=where)
    codes, names = _codes_and_names(
        frame, label, code_column, name_column,
        code_names=COMMUNITY_CODE_NAMES + CODE_NAMES, name_names=COMMUNITY_NAME_NAMES + NAME_NAMES, names_optional=True,
    )
    street = street_column or _files.find_column(frame, _STREET_CODE_NAMES)
    if street_column is not None and street_column not in frame:
        raise InputError(f"The community layer {label} has no column {street_column!r}; its columns: {_columns(frame)}.")
    streets = _code_text(frame[street], label, street) if street else pd.Series(OUTSIDE, index=frame.index)
    communities = gpd.GeoDataFrame(
        {"name": names.to_numpy(), "street_code": streets.to_numpy()},
        geometry=frame.geometry.to_numpy(), crs=frame.crs, index=pd.Index(codes.to_numpy(), name="community_code"),
    )
    return communities.to_crs(crs) if crs is not None else communities


def units_from_layers(
    streets: str | Path | gpd.GeoDataFrame,
    communities: str | Path | gpd.GeoDataFrame | None = None,
    *,
    crs=None,
    source: str | None = None,
    **columns: str,
) -> PlanningUnits:
    """Planning units from a street layer and, optionally, a community layer.

    Layers given as paths are read with :func:`streets_from_layer` and
    :func:`communities_from_layer` (``columns`` passes ``street_code_column``,
    ``street_name_column``, ``community_code_column``, ``community_name_column``).
    A community whose layer gives no street belongs to the street it overlaps
    most (:data:`OUTSIDE` if none).
    """
    allowed = {"street_code_column", "street_name_column", "community_code_column", "community_name_column"}
    unknown = sorted(set(columns) - allowed)
    if unknown:
        raise InputError(f"Unknown argument(s) {unknown}; allowed: {', '.join(sorted(allowed))}.")
    given = "the street layer" if isinstance(streets, gpd.GeoDataFrame) else Path(streets).name
    if not isinstance(streets, gpd.GeoDataFrame) or "name" not in streets or streets.index.name != "street_code":
        streets = streets_from_layer(streets, code_column=columns.get("street_code_column"), name_column=columns.get("street_name_column"))
    streets = _projected(streets.to_crs(crs) if crs is not None else streets, "street")
    crs = streets.crs
    if communities is None:
        communities = _empty_communities(crs)
    elif not isinstance(communities, gpd.GeoDataFrame) or communities.index.name != "community_code":
        communities = communities_from_layer(
            communities, code_column=columns.get("community_code_column"), name_column=columns.get("community_name_column")
        )
    communities = communities.to_crs(crs)
    communities = assign_streets(communities, streets)
    label = source or f"{len(streets)} streets from {given}"
    return PlanningUnits(streets=streets[["name", "geometry"]], communities=communities, approximate=False, source=label)


def assign_streets(communities: gpd.GeoDataFrame, streets: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy of ``communities`` in which a community without a known street gets the one it overlaps most.

    A ``street_code`` that names no street of ``streets`` is an ``InputError``.
    """
    communities = communities.copy()
    if "street_code" not in communities:
        communities["street_code"] = OUTSIDE
    known = communities["street_code"] != OUTSIDE
    wrong = sorted(set(communities.loc[known, "street_code"]) - set(streets.index))
    if wrong:
        raise InputError(
            f"{len(wrong)} street code(s) of the communities name no street of the street layer: {wrong[:10]}. "
            f"The street codes are {list(streets.index[:10])}{'...' if len(streets) > 10 else ''}; correct the codes."
        )
    if (~known).any() and len(streets):
        todo = communities.loc[~known]
        pairs = gpd.sjoin(todo[["geometry"]], streets[["geometry"]].rename_axis("street_code"), predicate="intersects")
        if len(pairs):
            left = todo.geometry.loc[pairs.index].to_numpy()
            right = streets.geometry.loc[pairs["street_code"]].to_numpy()
            pairs["overlap"] = shapely.area(shapely.intersection(shapely.make_valid(left), shapely.make_valid(right)))
            pairs = pairs[pairs["overlap"] > 0].reset_index(names="community_code")
            best = pairs.sort_values(["community_code", "overlap", "street_code"], ascending=[True, False, True]).drop_duplicates("community_code")
            communities.loc[best["community_code"].to_numpy(), "street_code"] = best["street_code"].to_numpy()
    return communities


def units_from_table(
    table: str | Path | pd.DataFrame,
    communities: gpd.GeoDataFrame,
    *,
    sheet: str | int | None = None,
    district_code: str | None = None,
    street_list: str | Path | None = STREET_LIST,
) -> PlanningUnits:
    """Planning units from a community -> street table joined to a community layer.

    Parameters
    ----------
    table
        CSV or Excel (or a DataFrame) with one row per community: its code
        (``community_code``/``社区代码``/``code``...) or name
        (``community_name``/``社区``/``name``...), and its street's code
        (``street_code``/``街道代码``) and/or name (``street_name``/``街道``/``乡镇``).
    communities
        The community layer (:func:`communities_from_layer`, or a region's
        community units), indexed by ``community_code``, in a projected CRS.
    sheet
        Excel only: which sheet (default the first).
    district_code, street_list
        Without a street code column, streets named in ``street_list`` (NBS
        codes, default the shipped Wuhan list) within ``district_code`` get
        their official code; others keep their name as code.

    Returns
    -------
    PlanningUnits whose streets are the union of their communities. A table
    row that matches no community is an ``InputError`` listing them; a
    community missing from the table is in no street (:data:`OUTSIDE`) and is
    reported with a warning.
    """
    rows, label = (table.copy(), "the community table") if isinstance(table, pd.DataFrame) else read_table(
        table, what="community table", sheet=sheet, header_names=COMMUNITY_CODE_NAMES + COMMUNITY_NAME_NAMES + CODE_NAMES + NAME_NAMES
    )
    key_column, by = community_key(rows, label)
    street_code = _files.find_column(rows, _STREET_CODE_NAMES)
    street_name = _files.find_column(rows, _STREET_NAME_NAMES)
    if street_code is None and street_name is None:
        raise InputError(
            f"{label} needs a street column: its code ('street_code', '街道代码') or name ('street_name', '街道', '乡镇'); "
            f"it has {_columns(rows)}."
        )
    community_of = match_communities(rows[key_column], communities, by=by, label=label)
    missing = community_of.isna()
    if missing.any():
        raise InputError(
            f"{label}: {missing.sum()} row(s) match no community by {by} ({key_column!r}): "
            f"{row_values(rows.loc[missing, key_column])}. Correct them, or remove those rows."
        )
    names = rows[street_name].astype(str).str.strip() if street_name else None
    if street_code is not None:
        codes = _code_text(rows[street_code], label, street_code)
    else:
        official = _official_codes(street_list, district_code) if street_list is not None else {}
        codes = names.map(lambda n: official.get(n, n))
    if names is None:
        names = codes.copy()
    repeated = community_of[community_of.duplicated()]
    if len(repeated):
        raise InputError(f"{label}: communities listed more than once: {sorted(set(repeated))[:10]}. Give each community one street.")
    communities = communities.copy()
    communities["street_code"] = OUTSIDE
    communities.loc[community_of.to_numpy(), "street_code"] = codes.to_numpy()
    loose = communities.index[communities["street_code"] == OUTSIDE]
    if len(loose):
        warnings.warn(
            f"{len(loose)} of {len(communities)} communities are not in {label} ({list(loose[:10])}); their people are "
            f"counted in no street (the '{OUTSIDE}' row). Add them to the table to give them a street.",
            UserWarning,
            stacklevel=2,
        )
    street_names = pd.Series(names.to_numpy(), index=codes.to_numpy())
    street_names = street_names[~street_names.index.duplicated()]
    inner = communities[communities["street_code"] != OUTSIDE]
    streets = _dissolve(inner, "street_code")
    streets.insert(0, "name", street_names.reindex(streets.index).to_numpy())
    source = f"{len(streets)} streets from {label} (each the union of its communities)"
    return PlanningUnits(streets=streets, communities=communities, approximate=False, source=source)


def match_communities(keys: pd.Series, communities: gpd.GeoDataFrame, *, by: str, label: str) -> pd.Series:
    """The ``community_code`` each key names (NaN where none), matching codes, or names (after stripping).

    A name shared by several communities is an ``InputError``: match by code instead.
    """
    if by == "code":
        text = _code_text(keys, label, keys.name)
        return text.where(text.isin(communities.index))
    names = communities["name"].astype(str).str.strip()
    shared = names[names.duplicated(keep=False)]
    wanted = keys.astype(str).str.strip()
    clash = sorted(set(wanted) & set(shared))
    if clash:
        raise InputError(f"{label}: the community names {clash[:10]} are shared by several communities; match by code instead.")
    lookup = pd.Series(communities.index.to_numpy(), index=names.to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    return wanted.map(lookup)


# ---------------------------------------------------------------- loaders: OSM boundaries


def osm_admin_boundaries(path: str | Path) -> pd.DataFrame:
    """Every ``boundary=administrative`` relation of an OSM XML extract, and whether its outline is whole.

    Returns
    -------
    DataFrame indexed by ``osm_id`` (the relation id) with ``name``,
    ``admin_level`` (int, -1 when untagged), ``ways`` (member ways),
    ``ways_present`` (of them, in the file with all their nodes) and
    ``complete`` (every member way present and the rings closed).
    """
    path = _files.existing_file(path, what="OSM extract")
    parsed = _parse_osm(path)
    rows = []
    for relation_id, (tags, members) in parsed["relations"].items():
        polygon, present, total = _relation_polygon(members, parsed)
        rows.append(
            {
                "osm_id": relation_id,
                "name": tags.get("name", ""),
                "admin_level": int(tags["admin_level"]) if tags.get("admin_level", "").isdigit() else -1,
                "ways": total,
                "ways_present": present,
                "complete": polygon is not None,
            }
        )
    table = pd.DataFrame(rows, columns=["osm_id", "name", "admin_level", "ways", "ways_present", "complete"])
    return table.set_index("osm_id")


def streets_from_osm(
    path: str | Path,
    *,
    admin_level: int = 8,
    crs=None,
    district_code: str | None = None,
    street_list: str | Path | None = STREET_LIST,
) -> gpd.GeoDataFrame:
    """Street/town polygons from the ``admin_level`` boundary relations of an OSM XML extract.

    ``admin_level=8`` is usually 街道/乡镇 in China (6 district/county, 5 city).
    A street whose name is in ``street_list`` (within ``district_code`` if
    given) gets its NBS code; others get ``osm-<relation id>``.

    Relations whose outline the extract does not hold whole (a bounding-box
    export keeps only the ways inside the box) cannot become polygons: with
    none whole this is an ``EmptyDataError`` naming them and how to export them
    whole; with some whole, the others are left out with a warning.

    Returns
    -------
    GeoDataFrame indexed by ``street_code`` (str) with ``name``, ``osm_id``
    and ``geometry`` (EPSG:4326, or ``crs``).
    """
    path = _files.existing_file(path, what="OSM extract")
    parsed = _parse_osm(path)
    levels: dict[int, list[str]] = {}
    found, broken = [], []
    for relation_id, (tags, members) in parsed["relations"].items():
        level = tags.get("admin_level", "")
        if level.isdigit():
            levels.setdefault(int(level), []).append(tags.get("name", f"relation {relation_id}"))
        if level != str(admin_level):
            continue
        polygon, present, total = _relation_polygon(members, parsed)
        name = tags.get("name", f"relation {relation_id}")
        if polygon is None:
            broken.append(f"{name} (relation {relation_id}: {present} of {total} member ways in the file)")
        else:
            found.append((relation_id, name, polygon))
    if not found:
        if not broken:
            present = "; ".join(f"{lvl}: {', '.join(sorted(n)[:5])}" for lvl, n in sorted(levels.items())) or "none"
            raise EmptyDataError(
                f"{path} has no boundary=administrative relation with admin_level={admin_level}. Levels present: {present}. "
                "Choose another admin_level ([units] admin_level), or give a street layer ([units] streets_path)."
            )
        raise EmptyDataError(
            f"{path} has the admin_level {admin_level} boundaries {', '.join(broken)}, but not their whole outlines: an "
            "export of a bounding box (the OSM API's map call, JOSM's download) keeps only the ways inside the box. Export the "
            "whole relations (Overpass: rel(<id>);(._;>;);out; or osmium extract --strategy smart), or give a street layer "
            "([units] streets_path)."
        )
    if broken:
        warnings.warn(
            f"{path}: {len(broken)} admin_level {admin_level} boundaries are not whole in the extract and were left out: "
            f"{', '.join(broken[:10])}.",
            UserWarning,
            stacklevel=2,
        )
    official = _official_codes(street_list, district_code) if street_list is not None else {}
    codes = [official.get(name, f"osm-{rid}") for rid, name, _ in found]
    streets = gpd.GeoDataFrame(
        {"name": [n for _, n, _ in found], "osm_id": [r for r, _, _ in found]},
        geometry=[p for _, _, p in found], crs=4326, index=pd.Index(codes, name="street_code"),
    )
    if streets.index.duplicated().any():
        streets.index = pd.Index([f"{c}-{r}" if d else c for c, r, d in zip(codes, streets["osm_id"], streets.index.duplicated(keep=False))], name="street_code")
    log.info("units: %d admin_level %d boundaries from %s", len(streets), admin_level, path.name)
    return streets.to_crs(crs) if crs is not None else streets


def _parse_osm(path: Path) -> dict:
    nodes: dict[str, tuple[float, float]] = {}
    ways: dict[str, list[str]] = {}
    relations: dict[int, tuple[dict, list]] = {}
    try:
        for _, element in ET.iterparse(path, events=("end",)):
            if element.tag == "node":
                nodes[element.get("id")] = (float(element.get("lon")), float(element.get("lat")))
                element.clear()
            elif element.tag == "way":
                ways[element.get("id")] = [nd.get("ref") for nd in element.iter("nd")]
                element.clear()
            elif element.tag == "relation":
                tags = {t.get("k"): t.get("v") for t in element.iter("tag")}
                if tags.get("boundary") == "administrative":
                    members = [(m.get("ref"), m.get("role") or "outer") for m in element.iter("member") if m.get("type") == "way"]
                    relations[int(element.get("id"))] = (tags, members)
                element.clear()
    except (ET.ParseError, TypeError, ValueError) as exc:
        raise InputError(f"Cannot read {path} as OSM XML: {exc}") from exc
    return {"nodes": nodes, "ways": ways, "relations": relations}


def _relation_polygon(members: list, parsed: dict) -> tuple[shapely.Geometry | None, int, int]:
    """The relation's (multi)polygon if all its ways are in the file and close into rings; and ways present / total."""
    nodes, ways = parsed["nodes"], parsed["ways"]
    lines: dict[str, list] = {"outer": [], "inner": []}
    present = 0
    for ref, role in members:
        refs = ways.get(ref)
        if refs is None or any(r not in nodes for r in refs) or len(refs) < 2:
            continue
        present += 1
        lines["inner" if role == "inner" else "outer"].append(shapely.LineString([nodes[r] for r in refs]))
    total = len(members)
    if present < total or not lines["outer"]:
        return None, present, total
    polygons, cuts, dangles, invalid = shapely.polygonize_full(lines["outer"])
    if shapely.is_empty(polygons) or not shapely.is_empty(dangles) or not shapely.is_empty(cuts) or not shapely.is_empty(invalid):
        return None, present, total
    shape = shapely.union_all(shapely.get_parts(polygons))
    if lines["inner"]:
        holes = shapely.polygonize(lines["inner"])
        shape = shapely.difference(shape, shapely.union_all(shapely.get_parts(holes)))
    return shape, present, total


# ---------------------------------------------------------------- approximate zones


def community_graph(communities: gpd.GeoDataFrame, *, tolerance_m: float = CONTIGUITY_TOLERANCE_M) -> dict[str, list[str]]:
    """Which communities neighbour which: contiguity, with islands bridged to their nearest community.

    Two communities are neighbours when they lie within ``tolerance_m`` of each
    other. While the graph has more than one connected piece, the smallest
    piece is joined to the nearest community outside it (one "bridge" edge),
    so every community can be reached from every other.

    Returns
    -------
    ``{community_code: [neighbour codes]}`` in the frame's order.
    """
    adjacency = _adjacency(_projected(communities, "community"), tolerance_m=tolerance_m)
    codes = communities.index.to_numpy()
    return {codes[i]: [codes[j] for j in adjacency.indices[adjacency.indptr[i] : adjacency.indptr[i + 1]]] for i in range(len(codes))}


def zones_from_communities(
    communities: gpd.GeoDataFrame,
    population: pd.Series,
    *,
    n_zones: int,
    compactness: float = DEFAULT_COMPACTNESS,
    seed: int = 0,
    source: str | None = None,
) -> PlanningUnits:
    """Approximate planning zones (not streets): contiguous groups of communities with balanced older population.

    See the module docstring for the method (spopt SKATER, refined by AZP).

    Parameters
    ----------
    communities
        Indexed by ``community_code``, with ``name`` and polygons in a projected CRS.
    population
        The people to balance per community (60+), indexed by ``community_code``;
        communities left out count 0.
    n_zones
        How many zones, 1 to the number of communities.
    compactness
        Weight of compactness against balance (0: balance only).
    seed
        Seed of AZP's random order of moves (the zones are the same for the same seed).
    source
        Where the communities come from, for :attr:`PlanningUnits.source`.

    Returns
    -------
    PlanningUnits with ``approximate=True``: zones ``Z01``... numbered north to
    south, named ``片区01 zone 01``..., each the union of its communities.
    """
    communities = _projected(communities, "community")
    n = len(communities)
    if isinstance(n_zones, bool) or not isinstance(n_zones, (int, np.integer)) or not 1 <= n_zones <= n:
        raise InputError(f"n_zones must be a whole number from 1 to the number of communities ({n}), got {n_zones!r}.")
    if not (isinstance(compactness, (int, float)) and np.isfinite(compactness) and compactness >= 0):
        raise InputError(f"compactness must be a number >= 0, got {compactness!r}.")
    people = population.reindex(communities.index).fillna(0.0).to_numpy(dtype=float)
    if (people < 0).any() or not np.isfinite(people).all():
        raise InputError("The population to balance must be finite and >= 0 in every community.")
    if people.sum() <= 0:
        raise EmptyDataError("The communities hold no older people to balance; check the region's demand and community units.")
    labels = _zone_labels(communities, people, n_zones=int(n_zones), compactness=float(compactness), seed=seed)

    centre = communities.geometry.representative_point()
    zone_y = pd.Series(centre.y.to_numpy()).groupby(labels).mean()
    zone_x = pd.Series(centre.x.to_numpy()).groupby(labels).mean()
    order = sorted(zone_y.index, key=lambda z: (-zone_y[z], zone_x[z]))
    width = max(2, len(str(n_zones)))
    code_of = {z: f"Z{i + 1:0{width}d}" for i, z in enumerate(order)}
    communities = communities.copy()
    communities["street_code"] = [code_of[z] for z in labels]
    streets = _dissolve(communities, "street_code")
    streets.insert(0, "name", [f"片区{c[1:]} zone {c[1:]}" for c in streets.index])
    zone_people = pd.Series(people).groupby(communities["street_code"].to_numpy()).sum()
    where = source or f"the {n} community units"
    text = (
        f"{n_zones} approximate zones (近似片区, not streets) built by geoplan from {where} with spopt SKATER + AZP: contiguous, "
        f"60+ per zone {zone_people.min():,.0f} to {zone_people.max():,.0f} (mean {zone_people.mean():,.0f})"
    )
    log.info("units: %s", text)
    return PlanningUnits(streets=streets, communities=communities[["name", "street_code", "geometry"]], approximate=True, source=text)


def _zone_labels(communities: gpd.GeoDataFrame, people: np.ndarray, *, n_zones: int, compactness: float, seed: int) -> np.ndarray:
    try:
        import libpysal
        from spopt.region import AZP, Skater
        from spopt.region.objective_function import ObjectiveFunction
    except ImportError as exc:
        raise InputError(
            "Approximate zones need spopt (and libpysal): pip install 'spopt>=0.6'. Or give the region's streets "
            "([units] streets_path, table_path or osm_path in its config)."
        ) from exc
    n = len(communities)
    if n_zones == 1:
        return np.zeros(n, dtype=int)
    if n_zones == n:
        return np.arange(n)
    adjacency = _adjacency(communities, tolerance_m=CONTIGUITY_TOLERANCE_M)
    neighbours = {i: adjacency.indices[adjacency.indptr[i] : adjacency.indptr[i + 1]].tolist() for i in range(n)}
    centre = communities.geometry.representative_point()
    mean = people.sum() / n_zones
    attrs = np.column_stack([centre.x.to_numpy() / 1000.0, centre.y.to_numpy() / 1000.0, people / mean])
    frame = gpd.GeoDataFrame({"x_km": attrs[:, 0], "y_km": attrs[:, 1], "share": attrs[:, 2]}, geometry=communities.geometry.to_numpy(), crs=communities.crs)

    def zone_score(rows: np.ndarray) -> float:  # (P_z / P_mean)**2 + compactness * squared km to the zone's centre
        if not len(rows):
            return 0.0
        return float(rows[:, 2].sum() ** 2 + compactness * ((rows[:, :2] - rows[:, :2].mean(axis=0)) ** 2).sum())

    def dissimilarity(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if b is None:  # the spanning tree's edge costs: km between representative points
            return np.hypot(a[:, None, 0] - a[None, :, 0], a[:, None, 1] - a[None, :, 1]) + 1e-9
        # b is the zone's column sums (see centre below); per community, a share of zone_score that adds up to it
        count = len(a)
        middle = b[0, :2] / count
        return (a[:, 2] * b[0, 2] + compactness * ((a[:, :2] - middle) ** 2).sum(axis=1)).reshape(-1, 1)

    def column_sums(a: np.ndarray, axis: int = 0) -> np.ndarray:
        return a.sum(axis=axis)

    class Balance(ObjectiveFunction):
        """spopt objective: the zone objective of the module docstring."""

        def __init__(self):
            pass

        def __call__(self, labels, attr):
            return sum(zone_score(attr[labels == z]) for z in np.unique(labels))

        def update(self, moving_area, recipient_region, labels, attr):
            donor = labels[moving_area]
            moved = labels.copy()
            moved[moving_area] = recipient_region
            before = zone_score(attr[labels == donor]) + zone_score(attr[labels == recipient_region])
            return zone_score(attr[moved == donor]) + zone_score(attr[moved == recipient_region]) - before

    weights = libpysal.weights.W(neighbours, ids=list(range(n)), silence_warnings=True)
    with _own_random_for_azp(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = Skater(
                frame, weights, ["x_km", "y_km", "share"], n_clusters=n_zones, islands="ignore",
                spanning_forest_kwds={"dissimilarity": dissimilarity, "center": column_sums, "reduction": np.sum},
            )
            tree.solve()
            start = np.asarray(tree.labels_, dtype=int)
            if len(np.unique(start)) != n_zones:
                raise InputError(f"SKATER found {len(np.unique(start))} zones instead of {n_zones}; ask for fewer zones.")
            local = AZP(frame, weights, ["x_km", "y_km", "share"], n_clusters=n_zones, random_state=seed, initial_labels=start, objective_func=Balance())
            local.solve()
    return np.asarray(local.labels_, dtype=int)


_AZP_LOCK = threading.Lock()


@contextlib.contextmanager
def _own_random_for_azp(seed: int):
    """AZP seeds and draws from Python's global ``random``, which other threads (a Dask worker's, a web server's) draw
    from too, changing the zones; while it runs, spopt's region modules get a generator of their own, seeded (one call
    at a time), and the global one is left as it was."""
    from spopt.region import azp, util

    with _AZP_LOCK:
        modules = (azp, util)
        shared = [module.random for module in modules]
        own = random.Random(seed)
        for module in modules:
            module.random = own
        try:
            yield
        finally:
            for module, generator in zip(modules, shared):
                module.random = generator


def _adjacency(communities: gpd.GeoDataFrame, *, tolerance_m: float) -> csr_matrix:
    geometry = shapely.make_valid(communities.geometry.to_numpy())
    n = len(geometry)
    tree = shapely.STRtree(geometry)
    left, right = tree.query(geometry, predicate="dwithin", distance=tolerance_m)
    keep = left != right
    edges = {(int(a), int(b)) for a, b in zip(left[keep], right[keep])}
    while True:
        matrix = _symmetric(edges, n)
        count, piece = csgraph.connected_components(matrix, directed=False)
        if count <= 1:
            return matrix
        sizes = np.bincount(piece)
        smallest = int(np.argmin(sizes))
        inside = np.flatnonzero(piece == smallest)
        outside = np.flatnonzero(piece != smallest)
        other = shapely.STRtree(geometry[outside])
        found, distance = other.query_nearest(geometry[inside], return_distance=True, all_matches=False)
        best = int(np.argmin(distance))
        a, b = int(inside[found[0, best]]), int(outside[found[1, best]])
        log.debug("units: community %s has no neighbour in its piece of %d; bridged to %s (%.0f m)", communities.index[a], len(inside), communities.index[b], distance[best])
        edges |= {(a, b), (b, a)}


def _symmetric(edges: set[tuple[int, int]], n: int) -> csr_matrix:
    pairs = np.array(sorted(edges | {(b, a) for a, b in edges}), dtype=np.int64).reshape(-1, 2)
    return csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))


# ---------------------------------------------------------------- the region's units


def street_count(district_code: str, *, street_list: str | Path = STREET_LIST) -> int:
    """How many streets and townships (街道, 镇, 乡) a district has in an NBS division list.

    Rows whose ``areaCode`` is the district's 6-digit code are counted, except
    the "units like townships" (township codes 400-599: development zones,
    scenic areas), which are not streets. Wuchang (420106): 14.

    >>> street_count("420106")
    14
    """
    table = _street_list(street_list)
    rows = table[table["areaCode"] == str(district_code)]
    if rows.empty:
        raise InputError(
            f"The street list {street_list} has no streets of district {district_code!r}. Give the 6-digit district code "
            "([units] district_code), or the number of zones ([units] n_zones)."
        )
    return int((rows["code"].str[6:9].astype(int) <= _TOWNSHIP_CODE_MAX).sum())


def region_units(region: Region, *, n_zones: int | None = None) -> PlanningUnits:
    """The region's planning units: from its config's ``[units]``, else zones from its community units.

    Parameters
    ----------
    region
        A loaded region.
    n_zones
        The number of approximate zones; default ``[units] n_zones``, else the
        district's number of streets in the street list (:func:`street_count`).
        Only for zones: a region whose config names real streets refuses it.

    Returns
    -------
    PlanningUnits in the region's CRS. The communities are the region's
    community units (``[communities]``), coded by their id.
    """
    config = region.config
    settings = getattr(config, "units", None)
    communities = _region_communities(region)
    real = settings is not None and any(getattr(settings, k) is not None for k in ("streets_path", "table_path", "osm_path"))
    if real and n_zones is not None:
        raise InputError(
            f"n_zones applies to approximate zones, but the config of {region.key} names real streets ([units] in {config.source}); leave n_zones out."
        )
    district = _district_code(region)
    street_list = settings.street_list_path if settings is not None and settings.street_list_path is not None else STREET_LIST
    if settings is not None and settings.streets_path is not None:
        streets = streets_from_layer(
            settings.streets_path, code_column=settings.code_column, name_column=settings.name_column,
            layer_name=settings.layer, where=settings.where, crs=region.crs,
        )
        streets = _overlapping(streets, region.boundary)
        return units_from_layers(streets, communities, crs=region.crs, source=f"{len(streets)} streets from {Path(settings.streets_path).name}")
    if settings is not None and settings.table_path is not None:
        if communities is None:
            raise InputError(f"[units] table_path in {config.source} joins communities to streets, but the region has no [communities] layer.")
        units = units_from_table(settings.table_path, communities, sheet=settings.sheet, district_code=district, street_list=street_list)
        return units
    if settings is not None and settings.osm_path is not None:
        streets = streets_from_osm(settings.osm_path, admin_level=settings.admin_level or 8, crs=region.crs, district_code=district, street_list=street_list)
        streets = _overlapping(streets, region.boundary)
        return units_from_layers(streets, communities, crs=region.crs, source=f"{len(streets)} streets (OSM admin_level {settings.admin_level or 8}) from {Path(settings.osm_path).name}")
    if communities is None:
        raise InputError(
            f"The region {region.key} has no street polygons and no community units to build zones from. Add [units] "
            f"(streets_path, table_path or osm_path) or [communities] to {config.source}."
        )
    count = n_zones if n_zones is not None else (settings.n_zones if settings is not None and settings.n_zones is not None else None)
    if count is None:
        if district is None:
            raise InputError(
                f"No district code for {region.key} to count its streets: give [units] district_code or n_zones in {config.source}."
            )
        count = street_count(district, street_list=street_list)
    demand = region.demand
    group = "pop_60" if "pop_60" in demand else population_columns(demand)[0]
    inside = demand["unit_id"].to_numpy() >= 0
    population = demand.loc[inside, group].groupby(demand.loc[inside, "unit_id"].astype(str).to_numpy()).sum()
    seed = settings.seed if settings is not None else 0
    name = config.communities.path.name if config.communities is not None else "community units"
    return zones_from_communities(communities, population, n_zones=count, seed=seed, source=f"the {len(communities)} community units of {name}")


def _region_communities(region: Region) -> gpd.GeoDataFrame | None:
    return None if region.communities is None else as_communities(region.communities)


def as_communities(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A region's community units (``region.communities``, indexed by ``unit_id``) as a community frame.

    Returns
    -------
    GeoDataFrame indexed by ``community_code`` (the unit id as text) with
    ``name`` (the config's ``name_column``, else ``社区单元 <id> community unit <id>``),
    ``street_code`` (:data:`OUTSIDE`: not yet joined to streets) and ``geometry``.
    """
    codes = pd.Index(units.index.astype(str), name="community_code")
    if "unit_name" in units:
        names = units["unit_name"].astype(str).to_numpy()
    else:
        names = [f"社区单元 {c} community unit {c}" for c in codes]
    return gpd.GeoDataFrame(
        {"name": names, "street_code": OUTSIDE}, geometry=shapely.make_valid(units.geometry.to_numpy()), crs=units.crs, index=codes
    )


def _district_code(region: Region) -> str | None:
    settings = getattr(region.config, "units", None)
    if settings is not None and settings.district_code:
        return str(settings.district_code)
    census = region.config.census
    if census is not None and census.code:
        return str(census.code)
    for value in region.config.boundary.where.values():
        if re.fullmatch(r"\d{6}", str(value)):
            return str(value)
    return None


def _overlapping(streets: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The streets that share area with the region."""
    region = shapely.union_all(boundary.to_crs(streets.crs).geometry.to_numpy())
    shared = shapely.area(shapely.intersection(shapely.make_valid(streets.geometry.to_numpy()), region))
    kept = streets[shared > 0]
    if kept.empty:
        raise EmptyDataError("None of the street polygons overlaps the region's boundary; check the street layer and its CRS.")
    return kept


# ---------------------------------------------------------------- helpers


def _first_within(points: gpd.GeoSeries, units: gpd.GeoDataFrame) -> pd.Series:
    """Per point, the code of the first unit (in code order) it lies within, else OUTSIDE."""
    result = pd.Series(OUTSIDE, index=points.index, dtype=object)
    if units.empty or points.empty:
        return result
    right = units[["geometry"]].rename_axis("unit_code")
    left = gpd.GeoDataFrame(geometry=points.to_numpy(), crs=points.crs, index=pd.RangeIndex(len(points)))
    joined = gpd.sjoin(left, right, how="inner", predicate="within")
    if len(joined):
        first = joined.reset_index().sort_values(["index", "unit_code"]).drop_duplicates("index")
        values = result.to_numpy(copy=True)
        values[first["index"].to_numpy()] = first["unit_code"].astype(str).to_numpy()
        result = pd.Series(values, index=points.index, dtype=object)
    return result


def _polygons(layer, *, what: str, layer_name: str | None, where: Mapping[str, Any] | None) -> tuple[gpd.GeoDataFrame, str]:
    if isinstance(layer, gpd.GeoDataFrame):
        frame, label = layer.copy(), f"the {what} frame"
    else:
        frame, label = _files.read_vector(layer, what=f"{what} layer", layer=layer_name), str(layer)
    if frame.crs is None:
        raise CRSMismatchError(f"The {what} layer {label} has no CRS. Save it with one (EPSG:4326 for lon/lat).")
    for column, value in (where or {}).items():
        if column not in frame:
            raise InputError(f"The {what} layer {label} has no column {column!r} to filter on; its columns: {_columns(frame)}.")
        frame = frame[frame[column].astype(str) == str(value)]
    if frame.empty:
        raise EmptyDataError(f"The {what} layer {label} has no features{' matching ' + str(dict(where)) if where else ''}.")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    kinds = set(frame.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(f"The {what} layer {label} must hold polygons; it holds {sorted(kinds)}.")
    frame = frame.set_geometry(shapely.make_valid(frame.geometry.to_numpy()))
    return frame, label


def _codes_and_names(
    frame: pd.DataFrame, label: str, code_column: str | None, name_column: str | None, *,
    code_names: tuple[str, ...], name_names: tuple[str, ...], names_optional: bool = False,
) -> tuple[pd.Series, pd.Series]:
    for given in (code_column, name_column):
        if given is not None and given not in frame:
            raise InputError(f"{label} has no column {given!r}; its columns: {_columns(frame)}.")
    code = code_column or _files.find_column(frame, code_names)
    name = name_column or _files.find_column(frame, tuple(n for n in name_names if n != code))
    if code is None and name is None:
        raise InputError(
            f"{label} needs a code or a name column (e.g. 'code'/'代码'/'区划代码', 'name'/'名称'); its columns: {_columns(frame)}. "
            "Name them with code_column=/name_column= (config: code_column, name_column)."
        )
    codes = _code_text(frame[code], label, code) if code else frame[name].astype(str).str.strip()
    if codes.duplicated().any():
        raise InputError(f"{label}: codes repeat: {sorted(set(codes[codes.duplicated()]))[:10]}. Give each unit its own code.")
    if name:
        names = frame[name].astype(str).str.strip()
    elif names_optional:
        names = codes.map(lambda c: f"社区单元 {c} community unit {c}")
    else:
        names = codes.copy()
    return codes, names


def _code_text(values: pd.Series, label: str, column) -> pd.Series:
    """Codes as text: 420106001 and 420106001.0 both as '420106001'; blanks refused."""
    def text(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        return str(value).strip() or None

    codes = values.map(text)
    blank = codes.isna()
    if blank.any():
        raise InputError(f"{label}: column {column!r} is blank in row(s) {_files.row_list(values.index[blank])}. Fill in every code.")
    return codes.astype(str)


def community_key(rows: pd.DataFrame, label: str, *, hint: str = "") -> tuple[str, str]:
    """The column that names each row's community, and whether it holds codes (``"code"``) or names (``"name"``).

    A community code column (``community_code``, ``社区代码``, then ``code``,
    ``代码``) wins over a name column (``community_name``, ``社区``, then
    ``name``, ``名称``). With neither, an :class:`~geoplan.errors.InputError`
    names ``label`` and its columns, and ends with ``hint`` (another way to name the column).
    """
    code = _files.find_column(rows, COMMUNITY_CODE_NAMES) or _files.find_column(rows, CODE_NAMES)
    if code is not None:
        return code, "code"
    name = _files.find_column(rows, COMMUNITY_NAME_NAMES) or _files.find_column(rows, NAME_NAMES)
    if name is not None:
        return name, "name"
    raise InputError(
        f"{label} needs a community column: its code ('community_code', '社区代码', 'code', '代码') or name "
        f"('community_name', '社区', 'name', '名称'); it has {_columns(rows)}.{hint}"
    )


def read_table(path: str | Path, *, what: str, sheet: str | int | None = None, header_names: tuple[str, ...] = ()) -> tuple[pd.DataFrame, str]:
    """A CSV's or Excel sheet's rows, indexed as a planner numbers them (CSV data rows from 1; Excel's row numbers)."""
    path = _files.existing_file(path, what=what)
    suffix = path.suffix.lower()
    if sheet is not None and suffix not in _files.EXCEL_SUFFIXES:
        raise InputError(f"sheet={sheet!r} chooses a sheet of an Excel workbook, but {path.name} is not one (.xlsx, .xls); leave it out.")
    if suffix in _files.EXCEL_SUFFIXES:
        cells, name = _files.read_sheet(path, what=what, sheet=sheet)
        wanted = {n.lower() for n in header_names}
        top = [{str(v).strip().lower() for v in row if v is not None} for row in cells.head(_HEADER_SEARCH_ROWS).itertuples(index=False)]
        found = [i for i, names in enumerate(top) if names & wanted]
        header = found[0] if found else 0
        columns = [str(v).strip() if v is not None else f"Unnamed: {i}" for i, v in enumerate(cells.iloc[header])]
        table = cells.iloc[header + 1 :].set_axis(columns, axis=1).replace({None: np.nan}).infer_objects()
        label = f"{path} (sheet {name!r})"
    elif suffix in (".csv", ".txt"):
        try:
            table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError:
            table = pd.read_csv(path, encoding="gb18030", dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise InputError(f"Cannot read the {what} {path} as CSV: {exc}") from exc
        table.columns = [str(c).strip() for c in table.columns]
        table.index = pd.RangeIndex(1, len(table) + 1)
        label = str(path)
    else:
        raise InputError(f"The {what} {path} must be a CSV (.csv) or Excel (.xlsx, .xls) file.")
    if table.empty:
        raise EmptyDataError(f"The {what} {label} has a header but no rows.")
    return table, label


def _official_codes(street_list: str | Path, district_code: str | None) -> dict[str, str]:
    try:
        table = _street_list(street_list)
    except InputError:
        return {}
    if district_code is not None:
        table = table[table["areaCode"] == str(district_code)]
    unique = table.drop_duplicates("name", keep=False)
    return dict(zip(unique["name"], unique["code"]))


def _street_list(path: str | Path) -> pd.DataFrame:
    path = _files.existing_file(path, what="street list")
    table = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    missing = {"code", "name", "areaCode"} - set(table.columns)
    if missing:
        raise InputError(f"The street list {path} lacks the column(s) {sorted(missing)}; it needs code, name and areaCode (NBS division codes).")
    return table


def _dissolve(communities: gpd.GeoDataFrame, by: str) -> gpd.GeoDataFrame:
    groups = communities.groupby(by, sort=True).geometry
    geometry = [shapely.union_all(shapely.make_valid(g.to_numpy())) for _, g in groups]
    return gpd.GeoDataFrame(geometry=geometry, crs=communities.crs, index=pd.Index([k for k, _ in groups], name="street_code"))


def _empty_communities(crs) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame({"name": pd.Series(dtype=object), "street_code": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=crs))
    frame.index = pd.Index([], name="community_code", dtype=object)
    return frame


def _projected(frame: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    if frame.crs is None:
        raise CRSMismatchError(f"The {what} polygons have no CRS; set one.")
    if frame.crs.is_geographic:
        return frame.to_crs(frame.estimate_utm_crs())
    return frame


def _columns(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns if c != getattr(frame, "_geometry_column_name", None)]


def row_values(values: pd.Series) -> str:
    shown = ", ".join(f"row {i}: {v!r}" for i, v in values.iloc[:10].items())
    return shown + (f" and {len(values) - 10} more" if len(values) > 10 else "")
