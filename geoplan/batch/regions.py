"""The regions of a batch: district configs made from a template, clipped to the street network's extent.

:func:`district_regions` writes one region config per district of a template
config's boundary file (Wuhan's 13 districts from ``wuchang.toml``), so no
one hand-writes a TOML file per district: each is the template's own TOML
with the district's boundary, census row, community units and street count,
labelled at its top with where it came from. :func:`configured_region` takes
a config as it is (``jiangan``, ``my.toml``). Both write the config into the
batch folder (``regions/<key>.toml``) and read it back with
:func:`geoplan.config.load_config`, so a batch region is exactly what
``geoplan coverage --region out/batch/regions/<key>.toml`` runs.

A street network often covers only part of a district (the shipped Wuhan
network covers the urban area: about 6 % of Jiangxia, none of Xinzhou). A
region reaching beyond the network's extent (the convex hull of its streets,
:mod:`geoplan.extent`) gets ``[boundary] clip_to_network = true``: it is the
part inside, with the district's census totals shared as its raster shares
them. :func:`clip_to_network` reports the part left out, in area and older
people (:func:`geoplan.extent.extent_report`), and refuses a region the
network barely touches with :class:`NoNetworkCoverage`, which carries the
same report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from geoplan import _files
from geoplan.config import RegionConfig, load_config, resolve_config_path
from geoplan.errors import ConfigError, EmptyDataError, GeoplanError, InputError

#: The smallest share of a region's area the street network must cover for the region to be analysed.
MIN_NETWORK_SHARE = 0.01

#: The two parts of a region in its extent layer.
ANALYSED, OUTSIDE_NETWORK = "analysed", "outside_network"

#: Sections of a template that belong to its own district only.
_OWN_DISTRICT_ONLY = ("facilities", "registers", "demand_points")


@dataclasses.dataclass(frozen=True)
class BatchRegion:
    """One region of a batch: its config (written to ``<batch>/regions/<key>.toml``) and where it came from."""

    config: RegionConfig
    origin: str
    code: str | None = None

    @property
    def key(self) -> str:
        return self.config.key


@dataclasses.dataclass(frozen=True)
class ExtentSummary:
    """How much of a region its street network covers, and who lives in the part it does not (plain data for markers).

    People are per group (``pop_60``...), scaled to the census like the
    analysed demand when the config rescales; None for a region wholly
    inside the network's extent (no one is left out).
    """

    network: str
    area_km2: float
    analysed_km2: float
    clipped: bool
    people: dict[str, float] | None = None
    people_outside: dict[str, float] | None = None
    method: str = ""

    @property
    def analysed_share(self) -> float:
        return self.analysed_km2 / self.area_km2 if self.area_km2 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Rounded plain data (markers, the summary)."""
        def rounded(values):
            return None if values is None else {g: round(float(v), 3) for g, v in values.items()}

        return {
            "network": self.network, "method": self.method, "area_km2": round(self.area_km2, 4),
            "analysed_km2": round(self.analysed_km2, 4), "analysed_pct": round(100 * self.analysed_share, 3), "clipped": self.clipped,
            "people": rounded(self.people), "people_outside_network": rounded(self.people_outside),
        }

    def outside_text(self) -> str:
        """The part left out, in words: area and older people."""
        text = f"{self.area_km2 - self.analysed_km2:,.1f} km² ({100 - 100 * self.analysed_share:.1f} % of the area)"
        if self.people_outside:
            groups = [f"{self.people_outside[g]:,.0f} aged {g[4:]}+" for g in ("pop_60", "pop_80") if g in self.people_outside]
            if groups:
                text += f", where {' and '.join(groups)} live"
        return text


class NoNetworkCoverage(EmptyDataError):
    """The street network covers too little of a region to analyse it; ``extent`` says how much and who lives there."""

    def __init__(self, message: str, extent: ExtentSummary):
        super().__init__(message)
        self.extent = extent


# --- regions -------------------------------------------------------------------------------------


def district_regions(
    template: str | Path = "wuchang",
    codes: list[str] | tuple[str, ...] | None = None,
    *,
    directory: str | Path,
    cache_dir: str | Path | None = None,
) -> list[BatchRegion]:
    """One region per district of ``template``'s boundary file, written to ``<directory>/<key>.toml``.

    The template picks its own district by one boundary column (``where = {
    adcode = "420106" }``); every feature of the boundary file (or those of
    ``codes``: values of that column, or keys such as ``jiangxia``) becomes a
    config that is the template's TOML with:

    * ``[boundary] where = { <column> = <code> }``, and ``clip_to_network = true``
      when the district reaches beyond the street network's extent;
    * ``[census] code = <code>`` (the template must name its census row by code);
    * ``[communities] where``: the district's value of the boundary column that
      holds the template's own filter value (``district = "武昌区"`` is the
      ``name`` column); no ``[communities]`` where the layer has no units;
    * ``[units] district_code = <code>`` (approximate zones as many as its streets);
    * ``[facilities]``, ``[registers]``, ``[demand_points]`` for the template's
      own district only (a facility list belongs to one district).

    Keys come from a ``name_en`` column (``Jiang'an`` -> ``jiangan``), else the
    code. ``cache_dir`` keeps the network's extent (default
    :func:`geoplan.region.default_cache_dir`).
    """
    template_path = resolve_config_path(template)
    config = load_config(template_path)
    raw = _read_toml(template_path)
    if len(config.boundary.where) != 1:
        raise ConfigError(
            f"The template {template_path} picks its district with [boundary] where = {config.boundary.where!r}; a "
            "template for districts picks it by one column, e.g. where = { adcode = \"420106\" }."
        )
    (column, own_code), = config.boundary.where.items()
    census = config.census
    if census is not None and census.rescale and (census.code is None or census.totals):
        raise ConfigError(
            f"[census] of the template {template_path} gives totals for one district; a template for districts names "
            "the census table and row instead (path = ..., code = \"...\"), so each district gets its own row."
        )
    features = _files.read_vector(config.boundary.path, what="boundary", layer=config.boundary.layer)
    if column not in features:
        raise InputError(f"The boundary file {config.boundary.path} has no column {column!r}; columns: {list(features.columns)}.")
    features = features.assign(**{column: features[column].astype(str)})
    own = features[features[column] == str(own_code)]
    if own.empty:
        raise EmptyDataError(f"No feature of {config.boundary.path} has {column} = {own_code!r} (the template's own district).")
    keys = _district_keys(features, column)
    wanted = _wanted_codes(codes, features[column].tolist(), keys, config.boundary.path)
    known_units = _community_values(config)
    directory = Path(directory).resolve()
    by_code = {}
    for index, feature in features.iterrows():
        code = feature[column]
        if code not in wanted:
            continue
        table = _district_table(raw, config, feature, own.iloc[0], column, code, known_units)
        origin = f"district {column} {code} of {Path(config.boundary.path).name}, made from the template {template_path.name}"
        path = directory / f"{keys[index]}.toml"
        by_code[code] = BatchRegion(_write_region(table, path, template_path.parent, origin, cache_dir), origin, code)
    return [by_code[code] for code in wanted]


def configured_region(name_or_path: str | Path, *, directory: str | Path, cache_dir: str | Path | None = None) -> BatchRegion:
    """A region as its config gives it (a shipped name or a TOML path), written to ``<directory>/<key>.toml``."""
    path = resolve_config_path(name_or_path)
    config = load_config(path)
    code = config.census.code if config.census is not None and config.census.code else None
    origin = f"the config {path.resolve()}"
    return BatchRegion(_write_region(_read_toml(path), Path(directory).resolve() / f"{config.key}.toml", path.parent, origin, cache_dir),
                       origin, code)


def _district_table(raw: dict, config: RegionConfig, feature, own, column: str, code: str, known_units: set) -> dict:
    """The template's TOML tables with the district's boundary, names, census row, community units and street count."""
    table = json.loads(json.dumps(raw))  # a deep copy of plain TOML data
    own_district = code == str(config.boundary.where[column])
    table["region"] = {**table["region"], "name": str(feature.get("name_en") or feature.get("name") or code),
                       "name_zh": str(feature.get("name") or "")}
    table["boundary"] = {**table["boundary"], "where": {column: code}}
    if "census" in table and "code" in table["census"]:
        table["census"]["code"] = code
    communities = config.communities
    if communities is not None:
        where = {}
        for key, value in communities.where.items():
            source = next((c for c in own.index if c != "geometry" and str(own[c]) == str(value)), None)
            if source is None:
                raise ConfigError(
                    f"[communities] where {key} = {value!r} of the template {config.source} matches no column of its district in "
                    f"{config.boundary.path}, so the other districts' value cannot be found; give each district its own config."
                )
            where[key] = str(feature[source])
        if tuple(where.values()) in known_units:
            table["communities"]["where"] = where
        else:
            del table["communities"]  # no community units in this district
    units = table.get("units", {})
    if not any(k in units for k in ("streets_path", "table_path", "osm_path")):
        units = {k: v for k, v in units.items() if k != "n_zones"}  # as many zones as the district's streets
        table["units"] = {**units, "district_code": code}
    for section in _OWN_DISTRICT_ONLY:
        if not own_district:
            table.pop(section, None)
    return table


def _write_region(table: dict, path: Path, base: Path, origin: str, cache_dir) -> RegionConfig:
    """Write ``table`` as the TOML config at ``path`` (paths made relative to it), clipped when it reaches beyond the network."""
    table = _moved_paths(table, base, path.parent)
    header = [f"{table['region'].get('name_zh', '')} {table['region']['name']}: written by geoplan batch from {origin}.".strip()]
    _write_toml(table, path, header)
    config = load_config(path)
    if not config.boundary.clip_to_network and _reaches_beyond(config, cache_dir):
        table["boundary"]["clip_to_network"] = True
        header.append("[boundary] clip_to_network: the region is the part of the district inside the street network's extent;")
        header.append("the batch's extent layer and summary report the area and the people left out.")
        _write_toml(table, path, header)
        config = load_config(path)
    return config


def _reaches_beyond(config: RegionConfig, cache_dir) -> bool:
    """Whether the region's boundary reaches beyond its street network's extent (False when that cannot be told here)."""
    from geoplan.extent import district_boundary
    from geoplan.region import default_cache_dir

    try:
        boundary = district_boundary(config)
        area = shapely.union_all(boundary.geometry.to_numpy())
        extent = _network_extent(config.network.path, boundary.crs, cache_dir or default_cache_dir())
    except GeoplanError:  # an unreadable file: the region's task fails on it and says why
        return False
    return shapely.area(shapely.difference(area, extent)) > 1e-6 * area.area


def _district_keys(features: gpd.GeoDataFrame, column: str) -> dict:
    """A short ASCII key per feature: its English name in lower case (``Jiang'an`` -> ``jiangan``), else its code."""
    keys = {}
    for index, feature in features.iterrows():
        name = str(feature.get("name_en") or "")
        slug = re.sub(r"[^a-z0-9]+", "", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower())
        keys[index] = slug or f"d{feature[column]}"
    counts = {}
    for key in keys.values():
        counts[key] = counts.get(key, 0) + 1
    return {i: (k if counts[k] == 1 else f"{k}{features.at[i, column]}") for i, k in keys.items()}


def _wanted_codes(codes, available: list[str], keys: dict, path) -> list[str]:
    if codes is None:
        return list(available)
    by_key = dict(zip(keys.values(), available))
    wanted, unknown = [], []
    for item in codes:
        item = str(item).strip()
        code = item if item in available else by_key.get(item.lower())
        (wanted if code is not None else unknown).append(code if code is not None else item)
    if unknown:
        listed = ", ".join(f"{k} ({c})" for k, c in by_key.items())
        raise InputError(f"No district {', '.join(map(repr, unknown))} in {path}. Its districts: {listed}; or 'all'.")
    return list(dict.fromkeys(wanted))


def _community_values(config: RegionConfig) -> set[tuple]:
    """The value tuples the community layer holds in the template's filter columns, to tell which districts have units."""
    communities = config.communities
    if communities is None or not communities.where:
        return set()
    import pyogrio

    columns = list(communities.where)
    path = _files.existing_file(communities.path, what="community units")
    try:
        table = pyogrio.read_dataframe(path, layer=communities.layer, columns=columns, read_geometry=False)
    except Exception as exc:  # GDAL raises many kinds on a bad file
        raise InputError(f"Cannot read the community units {path} ({exc}).") from exc
    missing = [c for c in columns if c not in table]
    if missing:
        raise InputError(f"The community units {path} have no column {missing}; columns: {list(table.columns)}.")
    return set(table[columns].astype(str).itertuples(index=False, name=None))


# --- the clip ------------------------------------------------------------------------------------


def clip_to_network(
    region: BatchRegion, *, min_share: float = MIN_NETWORK_SHARE, cache_dir: str | Path | None = None,
) -> ExtentSummary:
    """How much of the region its street network covers, and who lives in the part left out.

    For a region with ``[boundary] clip_to_network``, the people come from
    :func:`geoplan.extent.extent_report` (the district's raster, scaled to its
    census totals as the clipped region is). Raises
    :class:`NoNetworkCoverage` when the network covers less than
    ``min_share`` of the region's area. ``cache_dir`` keeps the network's
    extent on disk, so a worker reads a large street file only for a region
    that needs it.
    """
    from geoplan.extent import EXTENT_METHOD, district_boundary, extent_report

    config = region.config
    if not config.boundary.clip_to_network:
        area = shapely.union_all(district_boundary(config).geometry.to_numpy()).area / 1e6
        return ExtentSummary(network=Path(config.network.path).name, area_km2=area, analysed_km2=area, clipped=False, method=EXTENT_METHOD)
    if config.demand_points is not None:
        raise InputError(
            f"{config.key} counts its people from [demand_points] and the street network covers only part of it; clipping "
            "needs the population raster. Give a network that covers the whole region, or leave out the points outside it."
        )
    report = extent_report(config)
    summary = ExtentSummary(
        network=report.network, area_km2=float(report.area_km2), analysed_km2=float(report.inside_km2), clipped=True,
        people={g: float(v) for g, v in report.people["district"].items()},
        people_outside={g: float(v) for g, v in report.people["outside_extent"].items()}, method=report.method,
    )
    if summary.analysed_share < min_share:
        name = f"{config.region.name_zh} {config.region.name}".strip()
        raise NoNetworkCoverage(
            f"The street network {summary.network} covers {100 * summary.analysed_share:.1f} % of {name}'s area "
            f"({summary.analysed_km2:,.1f} of {summary.area_km2:,.0f} km²), less than the {100 * min_share:g} % a region needs "
            f"(min_network_share); not analysed: {summary.outside_text()}. Give a street network that covers it ([network] path).",
            summary,
        )
    return summary


def extent_layer(config: RegionConfig, summary: ExtentSummary, *, cache_dir: str | Path | None = None) -> gpd.GeoDataFrame:
    """The analysed part and the part outside the network's extent, in WGS84, with their area and people."""
    from geoplan.extent import district_boundary

    boundary = district_boundary(config)
    area = shapely.union_all(boundary.geometry.to_numpy())
    if summary.clipped:
        extent = _network_extent(config.network.path, boundary.crs, cache_dir)
        parts = [shapely.intersection(area, extent), shapely.difference(area, extent)]
    else:
        parts = [area, shapely.Polygon()]
    frame = gpd.GeoDataFrame(
        {"part": [ANALYSED, OUTSIDE_NETWORK], "area_km2": [round(shapely.area(p) / 1e6, 4) for p in parts]},
        geometry=parts, crs=boundary.crs,
    )
    if summary.people_outside is not None:
        for group, outside in summary.people_outside.items():
            frame[group] = [round(summary.people[group] - outside, 3), round(outside, 3)]
    return frame.to_crs(4326)


def _network_extent(path: Path, crs, cache_dir: str | Path | None) -> shapely.Geometry:
    """:func:`geoplan.extent.network_extent`, kept in ``cache_dir`` by the file's content and the CRS."""
    from geoplan.extent import network_extent

    if cache_dir is None:
        return network_extent(path, crs)
    path = _files.existing_file(path, what="street network")
    key = hashlib.sha256(f"{_files.content_hash(path)} {gpd.GeoSeries([], crs=crs).crs.to_wkt()}".encode()).hexdigest()[:16]
    cached = Path(cache_dir) / f"{path.stem}-extent-{key}.wkb"
    if cached.exists():
        return shapely.from_wkb(cached.read_bytes())
    extent = network_extent(path, crs)
    with _files.atomic_file(cached) as tmp:
        tmp.write_bytes(shapely.to_wkb(extent))
    return extent


# --- TOML ----------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _moved_paths(table: dict, base: Path, target: Path) -> dict:
    """The tables with every ``...path`` key, relative to ``base``, made relative to ``target`` instead."""
    moved = {}
    for name, section in table.items():
        if isinstance(section, dict):
            section = {
                key: (Path(os.path.relpath((base / value).resolve() if not Path(value).expanduser().is_absolute() else Path(value).expanduser(),
                                           target)).as_posix()
                      if key.endswith("path") and isinstance(value, str) and value else value)
                for key, value in section.items()
            }
        moved[name] = section
    return moved


def _write_toml(table: dict, path: Path, header: list[str]) -> None:
    """TOML tables as a file: one ``[section]`` per table, tables inside it inline (``ebike = { ... }`` is ``[modes.ebike]``)."""
    lines = [f"# {line}" for line in header] + [""]
    top = {k: v for k, v in table.items() if not isinstance(v, dict)}
    lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in top.items())
    for name, section in table.items():
        if isinstance(section, dict):
            lines.append(f"[{_toml_key(name)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in section.items())
            lines.append("")
    with _files.atomic_file(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else ("nan" if math.isnan(value) else repr(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
