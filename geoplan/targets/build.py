"""Build a :class:`~geoplan.targets.review.Review`: the one place that chains units, reach, indicators and consolidation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.errors import ConfigError, InputError
from geoplan.reach import ReachMatrix
from geoplan.targets import indicators as ind
from geoplan.targets.consolidation import WALK_TIERS, ConsolidationOptions, review_consolidation, tier_catchments
from geoplan.targets.indicators import OUTSIDE, Figure, Inputs
from geoplan.targets.presets import DEFAULT_THRESHOLD_MIN, INDICATORS, Target, TargetSet, load_targets
from geoplan.targets.review import Review

log = logging.getLogger(__name__)

#: The census households table shipped with geoplan (7th census 2020, by county).
HOUSEHOLDS_CSV = Path(__file__).resolve().parents[2] / "data" / "census" / "china_census2020_county_households.csv"

#: How many failing units a summary row lists by name.
_LISTED_UNITS = 30


def targets(
    region,
    preset_or_path: str | Path | TargetSet,
    *,
    facilities: gpd.GeoDataFrame | str | Path | None = None,
    units=None,
    coord_system: str = "wgs84",
    household_size: float | None = None,
    consolidation: ConsolidationOptions | None = None,
    cache_dir: str | Path | None = None,
) -> Review:
    """Review ``region`` against a plan's targets: which streets and communities pass which target.

    Parameters
    ----------
    region
        A :class:`~geoplan.region.Region`, or a region name or config path (loaded here).
    preset_or_path
        A shipped preset (``shuimogou``, ``yunfu``, ``baodi``, ``xinjiang``,
        ``chaoyang``), a path to a targets TOML file, or a loaded
        :class:`~geoplan.targets.presets.TargetSet`.
    facilities
        The facilities to review (default: the region's own); a frame, or a
        facility file read with ``coord_system``. Their tier is their
        ``kind``; attributes (floor area, land, beds, nursing beds, meals per
        day, unit codes) are used where the list has them.
    units
        The planning units (a :class:`geoplan.units.PlanningUnits`); default
        ``region.units`` (:func:`geoplan.units.region_units`: the config's
        ``[units]``, else approximate zones built from the community units).
    household_size
        People per household (户规模) for the floor-space standard; default
        the census figure of the region's census code.
    consolidation
        When a facility is under-used (:class:`~geoplan.targets.consolidation.ConsolidationOptions`);
        default: no consolidation review.

    Returns
    -------
    Review
        Its ``summary``, ``streets`` and ``communities`` tables; write its files with ``write``.

    Examples
    --------
    Wuchang (``wuchang`` is ``geoplan.load_region("wuchang")``, which ships no
    facility list) against the Shuimogou plan: its 14 street units are
    approximate zones built from the community units, and with no facilities
    every judged target fails:

    >>> review = targets(wuchang, "shuimogou")
    >>> review.approximate, len(review.streets) - 1, len(review.communities) - 1
    (True, 14, 124)
    >>> row = review.summary.loc["street_centres_80pct"]
    >>> f"{row['value']:g} %, target {row['target']}, pass: {row['pass']}"
    '0 %, target ≥ 80 %, pass: False'
    >>> review.passed
    False
    """
    region = _region(region, cache_dir)
    target_set = load_targets(preset_or_path)
    facilities = _facilities(region, facilities, coord_system)
    units = _units(region, units)
    consolidation = consolidation or ConsolidationOptions()
    size, size_source = _household_size(region, household_size)

    demand = region.demand
    people = pd.DataFrame({g: demand[g].to_numpy(dtype=float) for g in region.groups}, index=demand.index)
    demand_units = _locate(units, demand.geometry, what="demand")
    missing = tuple(a for a in _attribute_names() if a not in facilities.columns)  # as the list has them, before placing
    if len(facilities) and "kind_column" in facilities.attrs and facilities.attrs["kind_column"] is None:
        missing = ("kind (every row was read as a station)", *missing)  # reported, not guessed silently
    facilities = _facility_units(units, facilities)

    standard = ind.standard_indicators(target_set.name)
    rows_targets = list(target_set.targets)
    keys = {t.key for t in rows_targets}
    rows_standard = [t for t in standard if t.key not in keys]
    thresholds = [t.threshold_min for t in (*rows_targets, *rows_standard) if t.threshold_min is not None]
    if consolidation.min_catchment is not None:
        thresholds += [DEFAULT_THRESHOLD_MIN[k] for k in WALK_TIERS]
    cutoff_min = max(thresholds) if thresholds else 15.0
    reach = _reach(region, facilities, cutoff_min)

    streets_units, communities_units = _unit_frames(units)
    inputs = Inputs(
        people=people, demand_units=demand_units, facilities=facilities, streets=streets_units, communities=communities_units,
        reach=reach, household_size=size, street_label=units.street_label,
    )
    streets, communities = ind.unit_tables(inputs)
    label = units.street_label
    streets.insert(1, "unit_type", [label if c != OUTSIDE else OUTSIDE for c in streets.index])
    communities.insert(1, "unit_type", ["社区 community" if c != OUTSIDE else OUTSIDE for c in communities.index])

    figures: dict[tuple, Figure] = {}
    summary_rows = []
    street_columns: dict[str, pd.Series] = {}
    community_columns: dict[str, pd.Series] = {}
    for source, target in [("targets file", t) for t in rows_targets] + [("standard", t) for t in rows_standard]:
        figure = figures.get(target.key)
        if figure is None:
            figure = figures[target.key] = ind.compute(target, inputs)
        passed = ind.judge(target, figure)
        for level, values in _unit_people(target, figure).items():
            (street_columns if level == "street" else community_columns)[f"{target.id}_people"] = values
        for level, values in _unit_values(target, figure).items():
            (street_columns if level == "street" else community_columns)[target.id] = values
        failing = []
        for level, judged in zip(("street", "community"), ind.judge_units(target, figure)):
            if judged is None:
                continue
            (street_columns if level == "street" else community_columns)[f"pass_{target.id}"] = judged
            table = streets if level == "street" else communities
            failing.append((level, [c for c, v in judged.items() if v is False], table))
        summary_rows.append(_summary_row(target, figure, passed, source, failing, inputs))

    streets = _with_columns(streets, street_columns)
    communities = _with_columns(communities, community_columns)
    summary = pd.DataFrame(summary_rows).set_index("id")

    facilities = facilities.copy()
    for group in ("pop_60", "pop_80"):
        if group in people:
            facilities[f"catchment_{group}"] = tier_catchments(facilities, people, reach, group=group)
    between = None
    if consolidation.min_catchment is not None and len(facilities):
        from geoplan.reach import travel_times

        between = travel_times(region.network, facilities[["geometry"]], facilities, cutoff_s=consolidation.max_merge_walk_min * 60.0,
                               max_access_m=region.config.analysis.max_access_m)
    merges = review_consolidation(facilities, people, reach, consolidation, between=between)

    return Review(
        region=region, targets=target_set, summary=summary, streets=streets, communities=communities,
        facilities=facilities, consolidation=merges,
        street_geometry=gpd.GeoDataFrame(geometry=units.streets.geometry, crs=units.streets.crs),
        community_geometry=gpd.GeoDataFrame(geometry=units.communities.geometry, crs=units.communities.crs),
        units=units, demand_units=demand_units, reach=reach, approximate=bool(units.approximate), street_label=label,
        units_source=str(units.source), household_size=size, household_source=size_source, missing_attributes=missing,
    )


# --- steps -----------------------------------------------------------------------------------


def _region(region, cache_dir):
    from geoplan.region import Region, load_region

    if isinstance(region, Region):
        return region
    if isinstance(region, (str, Path)):
        return load_region(region, cache_dir=cache_dir)
    raise InputError(f"region must be a Region or a region name such as 'wuchang', got {type(region).__name__}.")


def _facilities(region, facilities, coord_system: str) -> gpd.GeoDataFrame:
    from geoplan.sites import load_facilities

    if facilities is None:
        frame = region.facilities
    elif isinstance(facilities, (str, Path)):
        frame = load_facilities(facilities, crs=region.crs, boundary=region.boundary, coord_system=coord_system)
    elif isinstance(facilities, gpd.GeoDataFrame):
        frame = facilities.to_crs(region.crs)
    else:
        raise InputError(f"facilities must be a GeoDataFrame or a facility file, got {type(facilities).__name__}.")
    if "kind" not in frame:
        raise InputError("The facilities have no kind column; give each its tier (station, canteen, centre, district_centre, home).")
    return frame


def _units(region, units):
    if units is not None:
        return units
    if hasattr(type(region), "units"):
        return region.units  # built once per region and kept (geoplan.units.region_units)
    from geoplan.units import region_units

    return region_units(region)


def _unit_frames(units) -> tuple[pd.DataFrame, pd.DataFrame]:
    streets = pd.DataFrame(units.streets.drop(columns=units.streets.geometry.name))
    communities = pd.DataFrame(units.communities.drop(columns=units.communities.geometry.name))
    streets.index = streets.index.astype(str)
    communities.index = communities.index.astype(str)
    for frame, level in ((streets, "street"), (communities, "community")):
        if OUTSIDE in frame.index:
            raise InputError(f"A {level} unit has the code {OUTSIDE!r}, which geoplan keeps for people outside every unit; rename it.")
        frame.index.name = f"{level}_code"
    return streets, communities


def _locate(units, points: gpd.GeoSeries, *, what: str) -> pd.DataFrame:
    located = units.locate(points)
    if len(located) != len(points):
        raise InputError(f"The planning units located {len(located)} of {len(points)} {what} points; locate must answer one row per point.")
    columns = {}
    for column in ("street_code", "community_code"):
        values = pd.Series(np.asarray(located[column], dtype=object))
        columns[column] = values.where(values.notna(), OUTSIDE).astype(str).to_numpy(dtype=object)
    return pd.DataFrame(columns, index=points.index)


def _facility_units(units, facilities: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The facilities with the units they lie in; a code the list gives (and the units know) wins over the location."""
    facilities = facilities.copy()
    if not len(facilities):
        for column in ("street_code", "community_code"):
            facilities[column] = pd.Series([], dtype=object)
        facilities["unit_from"] = pd.Series([], dtype=object)
        return facilities
    located = _locate(units, facilities.geometry, what="facility")
    known = {"street_code": set(map(str, units.streets.index)), "community_code": set(map(str, units.communities.index))}
    source = pd.Series("location", index=facilities.index, dtype=object)
    for column in ("street_code", "community_code"):
        given = facilities[column] if column in facilities else pd.Series(None, index=facilities.index, dtype=object)
        use = given.notna() & given.astype(str).isin(known[column])
        unknown = given.notna() & ~given.astype(str).isin(known[column])
        if unknown.any():
            log.warning("targets: %d facilities give a %s the units do not have (%s); placed by location instead",
                        int(unknown.sum()), column, ", ".join(sorted(set(map(str, given[unknown])))[:5]))
        codes = located[column].where(~use.to_numpy(), given.astype(str))
        facilities[column] = codes.to_numpy(dtype=object)
        source[use.to_numpy()] = "list"
    facilities["unit_from"] = source.to_numpy()
    return facilities


def _household_size(region, given: float | None) -> tuple[float, str]:
    if given is not None:
        if not (isinstance(given, (int, float)) and np.isfinite(given) and given > 0):
            raise InputError(f"household_size must be people per household (> 0), got {given!r}.")
        return float(given), "given"
    census = region.config.census
    code = census.code if census is not None else None
    if not code:
        raise InputError(
            f"{region.key} has no census code ([census] code in its config), so its household size is unknown. "
            "Give household_size=... (people per household, 户规模; e.g. 2.31 for Wuchang)."
        )
    if not HOUSEHOLDS_CSV.exists():
        raise InputError(f"The census households table {HOUSEHOLDS_CSV} is missing; give household_size=... instead.")
    table = pd.read_csv(HOUSEHOLDS_CSV, dtype={"区划代码": str})
    rows = table[table["区划代码"] == str(code)]
    if rows.empty or not np.isfinite(float(rows.iloc[0]["户规模"])):
        raise InputError(
            f"No household size for census code {code!r} in {HOUSEHOLDS_CSV.name}; give household_size=... (people per household)."
        )
    value = float(rows.iloc[0]["户规模"])
    return value, f"2020 census 户规模 of {rows.iloc[0]['区县']} ({code}), {HOUSEHOLDS_CSV.name}"


def _reach(region, facilities: gpd.GeoDataFrame, cutoff_min: float) -> ReachMatrix:
    if len(facilities):
        return region.reach(facilities, cutoff_min=cutoff_min)
    n = len(region.demand)
    return ReachMatrix(sparse.csc_matrix((n, 0)), pd.Index(region.demand.index), pd.Index([], dtype=object), cutoff_min * 60.0)


def _unit_values(target: Target, figure: Figure) -> dict[str, pd.Series]:
    """The per-unit figure of a target by level: whether the unit has the tier (unit shares), else its own value."""
    if target.indicator == "facility_count":
        return {}  # the unit tables count every kind already (n_<kind>)
    if target.indicator == "unit_share":
        return {target.level: figure.has_street if target.level == "street" else figure.has_community}
    values = {"street": figure.per_street, "community": figure.per_community}
    return {level: series for level, series in values.items() if series is not None}


def _unit_people(target: Target, figure: Figure) -> dict[str, pd.Series]:
    """Reach only: the people within the walk per unit, by level."""
    values = {"street": figure.people_street, "community": figure.people_community}
    return {level: series for level, series in values.items() if series is not None}


def _summary_row(target: Target, figure: Figure, passed, source: str, failing, inputs: Inputs) -> dict[str, Any]:
    unit, zh, en = INDICATORS[target.indicator]
    names, n_failing = [], 0
    both = len(failing) > 1
    for level, codes, table in failing:
        n_failing += len(codes)
        prefix = f"{inputs.level_label(level, plural=False)} " if both else ""
        for code in codes:
            name = table.at[code, "name"] if "name" in table else None
            names.append(prefix + (f"{code} {name}" if isinstance(name, str) and name and name != code else str(code)))
    listed = "; ".join(names[:_LISTED_UNITS]) + (f"; and {len(names) - _LISTED_UNITS} more" if len(names) > _LISTED_UNITS else "")
    from_file = source == "targets file"
    return {
        "id": target.id,
        "indicator": target.indicator,
        "indicator_name": f"{zh} {en}",
        "tier": target.tier,
        "level": inputs.level_label(target.level) if target.level else None,
        "value": None if figure.value is None else float(figure.value),
        "unit": unit,
        "target": target.target_text if from_file else "no target in this file",
        "min": target.min,
        "pass": passed,
        "status": figure.status if (from_file and target.judged) or figure.status != "ok" else ("ok (reported)" if from_file else "ok"),
        "detail": figure.detail + (
            f"; scope '{target.scope}' not applied: no layer says which areas are {target.scope}, so it is judged district-wide"
            if target.scope and from_file else ""
        ),
        "n_failing_units": n_failing if failing else None,
        "failing_units": listed if failing else None,
        "plan": target.plan if from_file else None,
        "section": target.section if from_file else None,
        "clause": target.clause if from_file else None,
        "quote_zh": target.quote_zh,
        "note": target.note,
        "source": source if from_file else "standard",
    }


def _with_columns(table: pd.DataFrame, columns: dict[str, pd.Series]) -> pd.DataFrame:
    clash = sorted(set(columns) & set(table.columns))
    if clash:  # a target id named like a column of the unit tables would overwrite it
        raise ConfigError(
            f"Target ids make the unit-table columns {clash}, which the review already has; "
            "give those targets other ids (e.g. prefix them with the plan's name)."
        )
    table = table.copy()
    for name, series in columns.items():
        if series is None:
            continue
        values = series.reindex(table.index)
        table[name] = values.to_numpy(dtype=object if name.startswith("pass_") or values.dtype == bool else float)
    passes = [c for c in table.columns if c.startswith("pass_")]
    verdicts, failing = [], []
    for code, row in table[passes].iterrows():
        judged = [v for v in row.to_numpy() if v is not None and not (isinstance(v, float) and np.isnan(v))]
        fails = [c[len("pass_"):] for c in passes if row[c] is False]
        verdicts.append(None if code == OUTSIDE or not judged else bool(all(judged)))
        failing.append(", ".join(fails) if fails else None)
    table["passes"] = pd.Series(verdicts, index=table.index, dtype=object)
    table["failing"] = pd.Series(failing, index=table.index, dtype=object)
    return table


def _attribute_names() -> tuple[str, ...]:
    from geoplan.tiers import ATTRIBUTES

    return tuple(ATTRIBUTES)
