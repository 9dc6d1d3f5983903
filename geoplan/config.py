"""Region config files: a small TOML file per region, checked key by key.

A region names its boundary, street network, population raster, census row,
community units, facilities and analysis parameters. Paths are relative to the
config file. A wrong or missing key is an error that names the file, the
section and the keys that are allowed, so a planner can add a district without
touching code.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import warnings
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from geoplan.coords import normalize_coord_system
from geoplan.errors import ConfigError, InputError

#: Where the regions that ship with geoplan live.
REGIONS_DIR = Path(__file__).resolve().parents[1] / "data" / "regions"
DEFAULT_REGION = "wuchang"


@dataclass(frozen=True)
class RegionInfo:
    name: str
    name_zh: str = ""
    city: str = ""
    attribution: str = ""  # data credits shown on maps (e.g. "© OpenStreetMap contributors")


@dataclass(frozen=True)
class LayerSource:
    """A vector layer and which of its features belong to the region.

    ``clip_to_network`` (boundary only): the region is the part of the
    boundary inside the street network's extent (:mod:`geoplan.extent`), with
    the census totals shared as the raster shares them.
    """

    path: Path
    where: dict[str, Any] = field(default_factory=dict)
    layer: str | int | None = None
    clip_to_network: bool = False


@dataclass(frozen=True)
class NetworkSource:
    path: Path
    walk_speed_mps: float = 1.0
    buffer_m: float | None = None
    excluded_highways: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PopulationSource:
    """A population raster (``path``) and which band holds each group; a group may instead add up its own files.

    ``bands = { pop_60 = ["f_60.tif", "m_60.tif", "f_65.tif", ...] }`` reads band 1
    of each listed raster (paths relative to the config, all on one grid) and
    adds them up: WorldPop's age/sex files as they are downloaded. ``path`` may
    then be left out.
    """

    path: Path | None = None
    bands: dict[str, str | int | tuple[Path, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class CensusSource:
    """Region totals per group: from a census table row, or given directly."""

    path: Path | None = None
    code: str | None = None
    totals: dict[str, float] = field(default_factory=dict)
    rescale: bool = True
    #: The largest factor (or smallest, as 1/max_factor) the totals may scale the raster's counts by;
    #: None: :data:`geoplan.demand.MAX_CENSUS_FACTOR`. ``inf`` accepts any factor.
    max_factor: float | None = None


@dataclass(frozen=True)
class CommunitySource:
    path: Path
    where: dict[str, Any] = field(default_factory=dict)
    id_column: str = "unit_id"
    name_column: str | None = None
    population_column: str | None = None
    layer: str | int | None = None


@dataclass(frozen=True)
class FacilitySource:
    path: Path
    coord_system: str = "wgs84"
    kind: str = "station"


@dataclass(frozen=True)
class UnitsSource:
    """Where the region's streets come from (see :mod:`geoplan.units`); none of the three: approximate zones.

    ``streets_path``: a street polygon layer (``code_column``, ``name_column``,
    ``layer``, ``where``); ``table_path``: a community -> street table (``sheet``)
    joined to ``[communities]``; ``osm_path``: an OSM extract's ``admin_level``
    boundaries. Zones: ``n_zones`` (default the district's street count in
    ``street_list_path``, found by ``district_code``, else ``[census] code``), ``seed``.
    """

    streets_path: Path | None = None
    code_column: str | None = None
    name_column: str | None = None
    layer: str | int | None = None
    where: dict[str, Any] = field(default_factory=dict)
    table_path: Path | None = None
    sheet: str | int | None = None
    osm_path: Path | None = None
    admin_level: int | None = None
    n_zones: int | None = None
    seed: int = 0
    district_code: str | None = None
    street_list_path: Path | None = None


@dataclass(frozen=True)
class RegisterSource:
    """A community-level register of priority groups (see :mod:`geoplan.registers`)."""

    path: Path
    sheet: str | int | None = None
    code_column: str | None = None
    name_column: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    unmatched: str = "error"
    by: str = "pop_60"


@dataclass(frozen=True)
class DemandPointsSource:
    """Demand as points with counts (residential compounds 小区) instead of the raster (see :mod:`geoplan.registers`)."""

    path: Path
    coord_system: str = "wgs84"
    cell_m: float = 50.0
    columns: dict[str, str] = field(default_factory=dict)
    sheet: str | int | None = None


@dataclass(frozen=True)
class RuralSource:
    """Rural units and the canteen network's rules (see :mod:`geoplan.rural`); every key is optional.

    ``towns_path``: town (乡镇) polygons (``town_code_column``,
    ``town_name_column``); ``villages_path``: village (村) points or polygons,
    or a CSV/Excel table with lon/lat (``villages_coord_system``; columns as
    :func:`geoplan.rural.units.villages_from_file` reads them). Without them geoplan derives stand-ins,
    labelled as derived: villages from ``village_grid_m`` squares of rural
    cells, towns as ``n_towns`` approximate zones. ``rural_share`` replaces
    the census share of rural residents (乡村人口) that classes cells as
    rural; ``village_radius_m`` is how far a village point gathers its rural
    cells; ``preset`` the rural targets file.
    """

    towns_path: Path | None = None
    town_code_column: str | None = None
    town_name_column: str | None = None
    villages_path: Path | None = None
    villages_coord_system: str = "wgs84"
    village_grid_m: float = 2000.0
    village_radius_m: float = 1500.0
    rural_share: float | None = None
    n_towns: int | None = None
    preset: str = "rural_canteens"


@dataclass(frozen=True)
class AnalysisSettings:
    thresholds_min: tuple[float, ...] = (5, 10, 15)
    max_access_m: float = 500.0


@dataclass(frozen=True)
class RegionConfig:
    """Everything geoplan needs to know about one region, read from a TOML file."""

    source: Path
    region: RegionInfo
    boundary: LayerSource
    network: NetworkSource
    population: PopulationSource | None = None  # None only with [demand_points]
    census: CensusSource | None = None
    communities: CommunitySource | None = None
    facilities: FacilitySource | None = None
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    units: UnitsSource | None = None
    registers: RegisterSource | None = None
    demand_points: DemandPointsSource | None = None
    rural: RuralSource | None = None
    #: ``[modes.<name>]`` tables: a travel mode's rules replaced or added (:func:`geoplan.modes.get_mode`).
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``[modes] default``: the travel mode the region's own network is built for (``walk`` unless given).
    default_mode: str = "walk"

    @property
    def key(self) -> str:
        """A short name for files and URLs: the config file's stem."""
        return self.source.stem


_SECTIONS = {
    "region": RegionInfo,
    "boundary": LayerSource,
    "network": NetworkSource,
    "population": PopulationSource,
    "census": CensusSource,
    "communities": CommunitySource,
    "facilities": FacilitySource,
    "analysis": AnalysisSettings,
    "units": UnitsSource,
    "registers": RegisterSource,
    "demand_points": DemandPointsSource,
    "rural": RuralSource,
}
_REQUIRED_SECTIONS = ("region", "boundary", "network", "population")
_PATH_KEYS = {"path", "streets_path", "table_path", "osm_path", "street_list_path", "towns_path", "villages_path"}


def available_regions(directory: Path = REGIONS_DIR) -> list[str]:
    """Names of the regions shipped in ``directory`` (config file stems)."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A region name (``wuchang``) or a path to a ``.toml`` file, as an existing path."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise InputError(f"Region config {candidate} does not exist.")
        return candidate
    shipped = REGIONS_DIR / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    raise InputError(
        f"Unknown region {str(name_or_path)!r}. Shipped regions: {', '.join(available_regions())}; "
        "or pass the path of your own .toml config (see data/regions/wuchang.toml)."
    )


def load_config(name_or_path: str | Path = DEFAULT_REGION) -> RegionConfig:
    """Read and check a region config (a shipped region's name or a TOML path)."""
    path = resolve_config_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    _check_keys(raw, set(_SECTIONS) | {"modes"}, path, "the top level")
    missing = [s for s in _REQUIRED_SECTIONS if s not in raw and not (s == "population" and "demand_points" in raw)]
    if missing:
        raise ConfigError(f"{path} lacks the section(s) {', '.join(f'[{s}]' for s in missing)}; see data/regions/wuchang.toml.")
    sections = {name: _section(cls, raw[name], path, name) for name, cls in _SECTIONS.items() if name in raw}
    if "modes" in raw:
        sections["modes"], sections["default_mode"] = _modes(raw["modes"], path)
    config = RegionConfig(source=path.resolve(), **sections)
    if config.default_mode != "walk":
        from geoplan.modes import get_mode

        try:
            get_mode(config.default_mode, config)
        except InputError as exc:
            raise ConfigError(f"[modes] default in {path}: {exc}") from exc
    return config


def check_files(config: RegionConfig, *, skip: tuple[str, ...] = ()) -> None:
    """Raise a :class:`ConfigError` if a file the config names does not exist.

    The message names every missing file with its section, and the folder the
    config's relative paths start at (the config file's, not the working
    directory). ``skip`` leaves sections out, e.g. ``("facilities",)`` when a
    facility list is given another way. A census table is needed only when the
    region is rescaled to a census row.
    """
    wanted = {
        "boundary": config.boundary.path,
        "network": config.network.path,
    }
    if config.population is not None and config.population.path is not None:
        wanted["population"] = config.population.path
    census = config.census
    if census is not None and census.rescale and not census.totals and census.path is not None:
        wanted["census"] = census.path
    if config.communities is not None:
        wanted["communities"] = config.communities.path
    if config.facilities is not None:
        wanted["facilities"] = config.facilities.path
    for section in ("registers", "demand_points"):
        if getattr(config, section) is not None:
            wanted[section] = getattr(config, section).path

    missing = [f"[{section}] path -> {path}" for section, path in wanted.items() if section not in skip and not path.exists()]
    if config.population is not None:
        missing += [f"[population] bands.{group} -> {path}" for group, paths in config.population.bands.items()
                    if isinstance(paths, tuple) for path in paths if not path.exists()]
    if config.units is not None and "units" not in skip:
        for key in ("streets_path", "table_path", "osm_path", "street_list_path"):
            path = getattr(config.units, key)
            if path is not None and not path.exists():
                missing.append(f"[units] {key} -> {path}")
    if config.rural is not None and "rural" not in skip:
        for key in ("towns_path", "villages_path"):
            path = getattr(config.rural, key)
            if path is not None and not path.exists():
                missing.append(f"[rural] {key} -> {path}")
    if missing:
        raise ConfigError(
            f"{config.source} names files that do not exist: {'; '.join(missing)}. Relative paths in a region config "
            f"start at the config file's folder, {config.source.parent}, not at the working directory: correct them "
            "there, or give absolute paths."
        )


def _section(cls, values: Any, path: Path, name: str):
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] in {path} must be a table of keys, got {values!r}.")
    allowed = {f.name for f in fields(cls)}
    _check_keys(values, allowed, path, f"[{name}]")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in values]
    if missing:
        raise ConfigError(f"[{name}] in {path} lacks {', '.join(missing)}.")
    types = {f.name: f.type for f in fields(cls)}
    converted = {}
    for key, value in values.items():
        if key not in _PATH_KEYS and key not in _OWN_CHECKS:
            value = _checked_type(value, types[key], path, name, key)
        if key in _PATH_KEYS:
            value = _path(value, path, name) if value not in ("", None) else None
            if value is None and key in required:
                raise ConfigError(f"[{name}] path in {path} is empty; give the file's path.")
        elif key in ("thresholds_min", "excluded_highways"):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"[{name}] {key} in {path} must be a non-empty list, got {value!r}.")
            value = tuple(value)
        elif key == "coord_system":
            value = normalize_coord_system(value)
        converted[key] = value
    if name == "analysis":
        thresholds = converted.get("thresholds_min", AnalysisSettings.thresholds_min)
        if any(isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < math.inf for t in thresholds):
            raise ConfigError(f"[analysis] thresholds_min in {path} must be positive minutes, got {list(thresholds)}.")
        if len(set(thresholds)) < len(thresholds):
            raise ConfigError(f"[analysis] thresholds_min in {path} repeats a threshold: {list(thresholds)}; give each once.")
        access = converted.get("max_access_m", AnalysisSettings.max_access_m)
        if not 0 < access < math.inf:
            raise ConfigError(f"[analysis] max_access_m in {path} must be a positive distance in metres (e.g. 500), got {access!r}.")
    if name == "network":
        speed = converted.get("walk_speed_mps", 1.0)
        if not 0 < speed < math.inf:
            raise ConfigError(f"[network] walk_speed_mps in {path} must be positive (a speed in m/s, e.g. 1.0), got {speed!r}.")
        if not MIN_WALK_SPEED_MPS <= speed <= MAX_WALK_SPEED_MPS:
            warnings.warn(
                f"[network] walk_speed_mps = {speed:g} in {path} is not a walking speed: older people walk about 0.8-1.2 m/s "
                f"(geoplan's default is 1.0). Every walking time and circle is computed at {speed:g} m/s.",
                UserWarning, stacklevel=2,
            )
    if name == "census" and "max_factor" in converted:
        factor = converted["max_factor"]
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
            raise ConfigError(
                f"[census] max_factor in {path} must be a number >= 1 (e.g. 4, or inf to accept any factor), got {factor!r}."
            )
        converted["max_factor"] = float(factor)
    if name == "population":
        converted["bands"] = _population_bands(converted.get("bands", {}), path)
        if converted.get("path") is None and not converted["bands"]:
            raise ConfigError(f"[population] in {path} lacks path (the population raster).")
        if converted.get("path") is None and any(not isinstance(b, tuple) for b in converted["bands"].values()):
            raise ConfigError(
                f"[population] in {path} names bands but no raster: give path = \"...\", or list each group's files "
                '(bands = { pop_60 = ["f_60.tif", "m_60.tif"] }).'
            )
    if name == "units":
        _check_units(converted, path)
    if name in ("registers", "demand_points"):
        _check_points_or_register(name, converted, path)
    if name == "rural":
        _check_rural(converted, path)
    if name == "boundary" and not isinstance(converted.get("clip_to_network", False), bool):
        raise ConfigError(f"[boundary] clip_to_network in {path} must be true or false, got {converted['clip_to_network']!r}.")

    if name in ("facilities",) and converted.get("path") is None:
        return None
    return cls(**converted)


#: Walking speeds outside this range (m/s) are accepted with a warning: older people walk about 0.8-1.2 m/s.
MIN_WALK_SPEED_MPS, MAX_WALK_SPEED_MPS = 0.3, 2.5

#: Keys whose values have their own check, with its own message, in :func:`_section`.
_OWN_CHECKS = {"max_factor", "clip_to_network"}

_TYPE_NAMES = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false", "dict": "a table",
               "tuple": "a non-empty list", "None": "empty"}
_PLURAL_NAMES = {"str": "texts", "int": "whole numbers", "float": "numbers", "bool": "true or false values"}


def _checked_type(value: Any, hint: str, path: Path, section: str, key: str) -> Any:
    """The value if its TOML type is the field's (``hint``, the dataclass annotation as text), else a ``ConfigError``.

    A whole number given for text (``code = 420106``, ``name = 42``) is taken as its text.
    """
    options = [part.strip() for part in _top_level_split(str(hint))]
    bases = [option.split("[", 1)[0] for option in options]
    for option, base in zip(options, bases):
        if base == "Any" or (base == "None" and value is None):
            return value
        if base == "bool" and isinstance(value, bool):
            return value
        if base == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if base == "str" and isinstance(value, str):
            return value
        if base == "dict" and isinstance(value, dict):
            return value
        if base == "tuple" and isinstance(value, list):
            inner = option[len("tuple["):-1].split(",")[0].strip()
            wrong = [v for v in value if not _is_type(v, inner)]
            if not wrong:
                return value
            raise ConfigError(
                f"[{section}] {key} in {path} must be a list of {_PLURAL_NAMES.get(inner, inner)}, got {value!r} ({wrong[0]!r} is not)."
            )
    if "str" in bases and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    wanted = " or ".join(dict.fromkeys(_type_text(o) for o in options if o != "None"))
    quoted = " (remove the quotes)" if isinstance(value, str) and _unquoted(value) in bases else ""
    raise ConfigError(f"[{section}] {key} in {path} must be {wanted}, got {value!r}{quoted}.")


def _unquoted(text: str) -> str | None:
    """The TOML type ``text`` would have without its quotes (``"1.0"`` -> float), if a number or a boolean."""
    try:
        parsed = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return None
    return {bool: "bool", int: "int", float: "float"}.get(type(parsed))


def _is_type(value: Any, name: str) -> bool:
    if name in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, {"int": int, "float": (int, float), "str": str, "bool": bool}.get(name, object))


def _type_text(option: str) -> str:
    return _TYPE_NAMES.get(option.split("[", 1)[0], option)


def _top_level_split(hint: str) -> list[str]:
    """``"dict[str, str | int] | None"`` -> ``["dict[str, str | int]", "None"]``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(hint):
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(hint[start:i])
            start = i + 1
    parts.append(hint[start:])
    return parts


def _check_units(values: dict, path: Path) -> None:
    """[units]: at most one street source, and only the keys that go with it."""
    sources = [k for k in ("streets_path", "table_path", "osm_path") if values.get(k) is not None]
    if len(sources) > 1:
        raise ConfigError(f"[units] in {path} gives {' and '.join(sources)}; give one source of streets (or none, for approximate zones).")
    source = sources[0] if sources else "zones"
    belongs = {
        "streets_path": {"code_column", "name_column", "layer", "where"},
        "table_path": {"sheet"},
        "osm_path": {"admin_level"},
        "zones": {"n_zones", "seed"},
    }
    for key in set().union(*belongs.values()):
        owner = next(o for o, keys in belongs.items() if key in keys)
        if key in values and owner != source:
            needs = "no streets_path, table_path or osm_path" if owner == "zones" else owner
            raise ConfigError(f"[units] {key} in {path} goes with {needs}; it has {source if sources else 'none of them'}. Remove {key}.")
    for key, low in (("n_zones", 1), ("admin_level", 1), ("seed", 0)):
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"[units] {key} in {path} must be a whole number >= {low}, got {value!r}.")
    if "district_code" in values:
        values["district_code"] = str(values["district_code"])


def _check_points_or_register(name: str, values: dict, path: Path) -> None:
    columns = values.get("columns", {})
    if not isinstance(columns, dict) or any(not str(k).startswith("pop_") or not isinstance(v, str) for k, v in columns.items()):
        raise ConfigError(
            f"[{name}] columns in {path} must map group names to column names, e.g. {{ pop_60 = \"60岁以上\" }}; got {columns!r}."
        )
    if name == "registers" and values.get("unmatched", "error") not in ("error", "warn"):
        raise ConfigError(f"[registers] unmatched in {path} must be \"error\" or \"warn\", got {values['unmatched']!r}.")
    if name == "demand_points":
        cell = values.get("cell_m", 50.0)
        if isinstance(cell, bool) or not isinstance(cell, (int, float)) or not cell > 0:
            raise ConfigError(f"[demand_points] cell_m in {path} must be a positive number of metres, got {cell!r}.")


def _check_rural(values: dict, path: Path) -> None:
    """[rural]: positive sizes, a share between 0 and 1, a known coordinate system."""
    for key in ("village_grid_m", "village_radius_m"):
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ConfigError(f"[rural] {key} in {path} must be a positive number of metres, got {value!r}.")
    share = values.get("rural_share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1):
        raise ConfigError(f"[rural] rural_share in {path} must be a fraction from 0 to 1 (e.g. 0.468), got {share!r}.")
    towns = values.get("n_towns")
    if towns is not None and (isinstance(towns, bool) or not isinstance(towns, int) or towns < 1):
        raise ConfigError(f"[rural] n_towns in {path} must be a whole number >= 1, got {towns!r}.")
    if "villages_coord_system" in values:
        values["villages_coord_system"] = normalize_coord_system(values["villages_coord_system"])
    for key in ("town_code_column", "town_name_column", "preset"):
        if key in values and not (isinstance(values[key], str) and values[key].strip()):
            raise ConfigError(f"[rural] {key} in {path} must be non-empty text, got {values[key]!r}.")


def _modes(values: Any, path: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """``[modes]``: ``default`` (the region's own mode) and ``[modes.<name>]`` tables of the keys a mode may change (:data:`geoplan.modes.MODE_KEYS`)."""
    from geoplan.modes import MODE_KEYS

    if not isinstance(values, dict):
        raise ConfigError(f"[modes] in {path} must hold one table per travel mode, e.g. [modes.ebike] speeds_kmh = {{ primary = 18 }}.")
    values = dict(values)
    default = values.pop("default", "walk")
    if not isinstance(default, str) or not default:
        raise ConfigError(f"[modes] default in {path} must name a travel mode (walk, ebike, car), got {default!r}.")
    modes = {}
    for name, table in values.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[modes.{name}] in {path} must be a table of keys ({', '.join(MODE_KEYS)}), got {table!r}.")
        _check_keys(table, set(MODE_KEYS), path, f"[modes.{name}]")
        table = dict(table)
        speeds = table.get("speeds_kmh", {})
        if not isinstance(speeds, dict) or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in speeds.values()):
            raise ConfigError(f"[modes.{name}] speeds_kmh in {path} must map OSM highway classes to positive km/h, e.g. {{ primary = 40 }}; got {speeds!r}.")
        for key in ("other_kmh", "access_kmh", "fallback_kmh", "buffer_m"):
            value = table.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key != "buffer_m" and value == 0)):
                raise ConfigError(f"[modes.{name}] {key} in {path} must be a positive number, got {value!r}.")
        if "excluded_highways" in table:
            excluded = table["excluded_highways"]
            if not isinstance(excluded, list) or not all(isinstance(h, str) for h in excluded):
                raise ConfigError(f"[modes.{name}] excluded_highways in {path} must be a list of OSM highway classes, got {excluded!r}.")
            table["excluded_highways"] = tuple(excluded)
        modes[str(name)] = table
    return modes, default


def _population_bands(bands: dict, config_path: Path) -> dict[str, str | int | tuple[Path, ...]]:
    """[population] bands: a band name or number per group, or a non-empty list of files (made absolute)."""
    checked = {}
    for group, band in bands.items():
        if isinstance(band, list):
            if not band or not all(isinstance(p, str) and p for p in band):
                raise ConfigError(f"[population] bands.{group} in {config_path} must list raster files, got {band!r}.")
            checked[group] = tuple(_path(p, config_path, "population") for p in band)
        elif isinstance(band, bool) or not isinstance(band, (str, int)):
            raise ConfigError(
                f"[population] bands.{group} in {config_path} must be a band name, a 1-based band number or a list of "
                f"raster files, got {band!r}."
            )
        else:
            checked[group] = band
    return checked


def _path(value: Any, config_path: Path, section: str) -> Path:
    if not isinstance(value, str):
        raise ConfigError(f"[{section}] path in {config_path} must be a string, got {value!r}.")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (config_path.parent / path).resolve()


def _check_keys(values: dict, allowed: set[str], path: Path, where: str) -> None:
    for key in values:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(
                f"Unknown key {key!r} in {where} of {path}.{did_you_mean} Allowed: {', '.join(sorted(allowed))}."
            )
