"""Indicators of a plan's review: per street (or approximate zone), per community and for the district.

Every figure comes from three inputs and nothing else: the people per demand
point with the planning unit each lies in, the facilities with their kind,
attributes and unit, and one :class:`~geoplan.reach.ReachMatrix` from the
facilities to the demand (the one coverage path: "within the walk" is always
:meth:`~geoplan.reach.ReachMatrix.covered`). A figure whose facility attribute
is missing is ``None`` with a status saying which column is missing, never a
guess. People outside every unit are one more row of each unit table
(:data:`OUTSIDE`), and count in the district's figures.

Indicators (see :data:`geoplan.targets.presets.INDICATORS`):

* ``facility_count``: facilities of the counted kinds;
* ``unit_share``: % of streets (or communities) with at least one of them inside;
* ``reach``: % (and people) of a group within the walk of one of them;
* ``floor_area_per_100_households``: their floor area per 100 households
  (households = people ÷ the census household size 户规模);
* ``land_per_resident``: their land per resident;
* ``beds_per_1000_older``: their beds per 1,000 people aged 60+;
* ``nursing_bed_share``: nursing-type beds as % of their beds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from geoplan.reach import ReachMatrix
from geoplan.targets.presets import INDICATORS, Target
from geoplan.tiers import KINDS

log = logging.getLogger(__name__)

#: The code of "outside every unit" (the same as :data:`geoplan.units.OUTSIDE`).
OUTSIDE = "outside"
#: Its name in unit tables.
OUTSIDE_NAME = "不在任何单元 outside every unit"

_GROUPS = ("pop_total", "pop_60", "pop_80")


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the indicators are computed from.

    Attributes
    ----------
    people
        People per group (``pop_total``, ``pop_60``, ``pop_80``...) per demand point, indexed by ``demand_id``.
    demand_units
        ``street_code`` and ``community_code`` of each demand point (:data:`OUTSIDE` when in none), same index.
    facilities
        Facilities indexed by ``site_id`` with ``kind``, their attributes and resolved
        ``street_code``/``community_code``.
    streets, communities
        The unit tables (index the code; ``name``; communities also ``street_code``).
    reach
        Walking times from ``facilities`` to ``people``.
    household_size
        People per household (户规模) for the floor-space standard.
    street_label
        What a street unit is called in tables (``street``, or ``approximate zone, not a street``).
    """

    people: pd.DataFrame
    demand_units: pd.DataFrame
    facilities: pd.DataFrame
    streets: pd.DataFrame
    communities: pd.DataFrame
    reach: ReachMatrix
    household_size: float
    street_label: str = "street"

    def level_units(self, level: str) -> pd.DataFrame:
        return self.streets if level == "street" else self.communities

    def level_label(self, level: str, *, plural: bool = True) -> str:
        if level == "community":
            return "communities" if plural else "community"
        label = self.street_label
        if not plural:
            return label
        return label.replace("zone,", "zones,").replace("a street", "streets") if "zone" in label else f"{label}s"


def standard_indicators(plan: str) -> tuple[Target, ...]:
    """The indicators every review reports, with or without a target in the file."""
    def std(target_id: str, indicator: str, **kw) -> Target:
        from geoplan.targets.presets import default_counts

        counts = default_counts(indicator, kw.get("tier"))
        return Target(id=target_id, indicator=indicator, plan=plan, section="", clause="", counts=counts, **kw)

    return (
        std("district_centres", "facility_count", tier="district_centre"),
        std("street_centres", "facility_count", tier="centre"),
        std("stations", "facility_count", tier="station"),
        std("canteens", "facility_count", tier="canteen"),
        std("homes", "facility_count", tier="home"),
        std("streets_with_centre", "unit_share", tier="centre", level="street"),
        std("communities_with_station", "unit_share", tier="station", level="community"),
        std("pop_60_within_15min", "reach", tier="station", group="pop_60", threshold_min=15.0),
        std("pop_80_within_15min", "reach", tier="station", group="pop_80", threshold_min=15.0),
        std("canteen_reach_pop_60", "reach", tier="canteen", group="pop_60", threshold_min=10.0),
        std("floor_area_per_100_households", "floor_area_per_100_households"),
        std("land_per_resident", "land_per_resident"),
        std("beds_per_1000_older", "beds_per_1000_older"),
        std("nursing_bed_share", "nursing_bed_share", tier="home"),
    )


@dataclasses.dataclass(frozen=True)
class Figure:
    """One indicator for the district and per unit.

    ``value`` is None when it cannot be computed (``status`` says why);
    ``per_street`` and ``per_community`` follow the unit tables' index
    (OUTSIDE included), NaN where it cannot be computed.
    """

    value: float | None
    status: str
    detail: str
    numerator: float | None = None
    denominator: float | None = None
    complete: bool = True
    per_street: pd.Series | None = None
    per_community: pd.Series | None = None
    has_street: pd.Series | None = None
    has_community: pd.Series | None = None
    people_street: pd.Series | None = None
    people_community: pd.Series | None = None


def unit_index(units: pd.DataFrame) -> pd.Index:
    """A unit table's codes with :data:`OUTSIDE` last."""
    return pd.Index([*map(str, units.index), OUTSIDE], name=units.index.name)


def compute(target: Target, inputs: Inputs) -> Figure:
    """The figure of ``target``'s indicator (its ``min`` is not used here)."""
    handler = {
        "facility_count": _count,
        "unit_share": _unit_share,
        "reach": _reach,
        "floor_area_per_100_households": _ratio,
        "land_per_resident": _ratio,
        "beds_per_1000_older": _ratio,
        "nursing_bed_share": _nursing_share,
    }[target.indicator]
    return handler(target, inputs)


def judge(target: Target, figure: Figure) -> bool | None:
    """Pass (True), fail (False) or cannot say (None: no figure in the target, or no data)."""
    if target.min is None or figure.value is None:
        return None
    passed = figure.value >= target.min - 1e-9
    if not figure.complete and (not passed or not _is_lower_bound(target)):
        return None  # a lower bound below the target says nothing; a share over part of the homes, nothing at all
    return bool(passed)


def _is_lower_bound(target: Target) -> bool:
    """Whether the figure from the facilities that have the data is a lower bound of the true one (sums are; shares are not)."""
    return target.indicator != "nursing_bed_share"


def judge_units(target: Target, figure: Figure) -> tuple[pd.Series | None, pd.Series | None]:
    """Per-unit pass/fail (object Series of True/False/None) for the streets and the communities, where it applies.

    A unit share is judged on its own level (the unit has the tier or not);
    reach and the ratios on both levels (the unit's own figure against the
    target's); a count only for the district. Outside every unit: None.
    """
    if target.min is None:
        return None, None
    if target.indicator == "facility_count":
        return None, None
    if target.indicator == "unit_share":
        has = figure.has_street if target.level == "street" else figure.has_community
        judged = has.astype(object)
        judged[OUTSIDE] = None
        return (judged, None) if target.level == "street" else (None, judged)
    out = []
    for series in (figure.per_street, figure.per_community):
        if series is None:
            out.append(None)
            continue
        passes = [None if not np.isfinite(v) else bool(v >= target.min - 1e-9) for v in series.to_numpy(dtype=float)]
        if not figure.complete:  # incomplete data: a unit's lower bound can show a pass, never a fail
            passes = [p if p and _is_lower_bound(target) else None for p in passes]
        judged = pd.Series(passes, index=series.index, dtype=object)
        judged[OUTSIDE] = None
        out.append(judged)
    return out[0], out[1]


# --- indicators ------------------------------------------------------------------------------


def _of_kinds(inputs: Inputs, kinds: Sequence[str]) -> pd.DataFrame:
    facilities = inputs.facilities
    return facilities[facilities["kind"].astype(str).isin(list(kinds)).to_numpy()]


def _per_unit_count(inputs: Inputs, chosen: pd.DataFrame, level: str) -> pd.Series:
    codes = chosen[f"{level}_code"].astype(str) if len(chosen) else pd.Series([], dtype=object)
    index = unit_index(inputs.level_units(level))
    return codes.value_counts().reindex(index, fill_value=0).astype(int)


def _count(target: Target, inputs: Inputs) -> Figure:
    chosen = _of_kinds(inputs, target.counts)
    n = len(chosen)
    kinds = ", ".join(target.counts)
    return Figure(
        value=float(n), status="ok", detail=f"{n} facilities ({kinds})", numerator=float(n),
        per_street=_per_unit_count(inputs, chosen, "street").astype(float),
        per_community=_per_unit_count(inputs, chosen, "community").astype(float),
    )


def _unit_share(target: Target, inputs: Inputs) -> Figure:
    chosen = _of_kinds(inputs, target.counts)
    counts = {level: _per_unit_count(inputs, chosen, level) for level in ("street", "community")}
    has = {level: (c > 0) for level, c in counts.items()}
    level = target.level
    units = has[level].drop(OUTSIDE)
    n, total = int(units.sum()), int(len(units))
    value = 100.0 * n / total if total else None
    label = inputs.level_label(level)
    kinds = ", ".join(target.counts)
    detail = f"{n} of {total} {label} have one ({kinds})" if total else f"no {label} to count"
    return Figure(
        value=value, status="ok" if total else f"no data (no {label})", detail=detail, numerator=float(n), denominator=float(total),
        per_street=counts["street"].astype(float), per_community=counts["community"].astype(float),
        has_street=has["street"], has_community=has["community"],
    )


def _reach(target: Target, inputs: Inputs) -> Figure:
    group = target.group
    if group not in inputs.people:
        return Figure(value=None, status=f"no data (no population group {group})", detail=f"the demand has no {group} column")
    chosen = _of_kinds(inputs, target.counts)
    people = inputs.people[group].to_numpy(dtype=float)
    if len(chosen):
        covered = inputs.reach.covered(target.threshold_min * 60.0, sites=pd.Index(chosen.index, dtype=object))
    else:
        covered = np.zeros(len(people), dtype=bool)
    total = float(people.sum())
    within = float(people[covered].sum())
    per, per_people = {}, {}
    for level in ("street", "community"):
        codes = inputs.demand_units[f"{level}_code"].astype(str).to_numpy()
        frame = pd.DataFrame({"code": codes, "people": people, "within": np.where(covered, people, 0.0)})
        sums = frame.groupby("code")[["people", "within"]].sum().reindex(unit_index(inputs.level_units(level)), fill_value=0.0)
        per[level] = 100.0 * sums["within"] / sums["people"].where(sums["people"] > 0)
        per_people[level] = sums["within"]
    value = 100.0 * within / total if total else None
    detail = f"{within:,.0f} of {total:,.0f} people {group[4:]}+ within {target.threshold_min:g} min ({', '.join(target.counts)})"
    return Figure(value=value, status="ok" if total else f"no data (nobody in {group})", detail=detail, numerator=within,
                  denominator=total, per_street=per["street"], per_community=per["community"],
                  people_street=per_people["street"], people_community=per_people["community"])


def reach_people(inputs: Inputs, kinds: Sequence[str], group: str, threshold_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Per demand point: the people of ``group``, and whether a facility of ``kinds`` is within ``threshold_min``."""
    chosen = _of_kinds(inputs, kinds)
    people = inputs.people[group].to_numpy(dtype=float)
    if not len(chosen):
        return people, np.zeros(len(people), dtype=bool)
    return people, inputs.reach.covered(threshold_min * 60.0, sites=pd.Index(chosen.index, dtype=object))


_DENOMINATOR = {
    # indicator: (population group, people per denominator unit, how the denominator reads)
    "floor_area_per_100_households": ("pop_total", "households", "per 100 households"),
    "land_per_resident": ("pop_total", "residents", "per resident"),
    "beds_per_1000_older": ("pop_60", "older", "per 1,000 aged 60+"),
}


def _denominator(indicator: str, people: np.ndarray | float, household_size: float):
    if indicator == "floor_area_per_100_households":
        return people / household_size / 100.0
    if indicator == "beds_per_1000_older":
        return people / 1000.0
    return people


def _attribute_sums(inputs: Inputs, chosen: pd.DataFrame, attribute: str) -> tuple[float, int, dict[str, pd.Series]]:
    """Sum of ``attribute`` over ``chosen`` (blank cells left out), how many are blank, and the sums per unit level."""
    values = pd.to_numeric(chosen[attribute], errors="coerce")
    blank = int(values.isna().sum())
    per = {}
    for level in ("street", "community"):
        codes = chosen[f"{level}_code"].astype(str)
        per[level] = values.fillna(0.0).groupby(codes.to_numpy()).sum().reindex(unit_index(inputs.level_units(level)), fill_value=0.0)
    return float(values.fillna(0.0).sum()), blank, per


def _unit_people(inputs: Inputs, group: str, level: str) -> pd.Series:
    codes = inputs.demand_units[f"{level}_code"].astype(str).to_numpy()
    return inputs.people[group].groupby(codes).sum().reindex(unit_index(inputs.level_units(level)), fill_value=0.0)


def _ratio(target: Target, inputs: Inputs) -> Figure:
    attribute = target.attribute
    group, _, per_text = _DENOMINATOR[target.indicator]
    chosen = _of_kinds(inputs, target.counts)
    if attribute not in inputs.facilities.columns and len(chosen):
        return Figure(value=None, status=f"no data (column {attribute} missing)",
                      detail=f"the facility list has no {attribute} column; add it to compute {INDICATORS[target.indicator][2]}")
    total_people = float(inputs.people[group].sum())
    denominator = float(_denominator(target.indicator, total_people, inputs.household_size))
    if len(chosen):
        numerator, blank, per_sums = _attribute_sums(inputs, chosen, attribute)
    else:
        numerator, blank = 0.0, 0
        per_sums = {level: pd.Series(0.0, index=unit_index(inputs.level_units(level))) for level in ("street", "community")}
    per = {}
    for level in ("street", "community"):
        units_den = _denominator(target.indicator, _unit_people(inputs, group, level), inputs.household_size)
        per[level] = per_sums[level] / units_den.where(units_den > 0)
    value = numerator / denominator if denominator > 0 else None
    status, complete = "ok", True
    if blank:
        status, complete = f"incomplete ({attribute} blank for {blank} of {len(chosen)} facilities: a lower bound)", False
    households = f" ({total_people / inputs.household_size:,.0f} households at {inputs.household_size:g} per household)" if target.indicator == "floor_area_per_100_households" else ""
    detail = f"{numerator:,.1f} {attribute} over {len(chosen)} facilities {per_text}{households}"
    return Figure(value=value, status=status if denominator > 0 else f"no data (nobody in {group})", detail=detail,
                  numerator=numerator, denominator=denominator, complete=complete,
                  per_street=per["street"], per_community=per["community"])


def _nursing_share(target: Target, inputs: Inputs) -> Figure:
    chosen = _of_kinds(inputs, target.counts)
    kinds = ", ".join(target.counts)
    if not len(chosen):
        return Figure(value=None, status=f"no data (no {kinds} in the list)", detail=f"the facility list has no {kinds}")
    missing = [c for c in ("beds", "nursing_beds") if c not in inputs.facilities.columns]
    if missing:
        return Figure(value=None, status=f"no data (column {' and '.join(missing)} missing)",
                      detail=f"the facility list has no {' or '.join(missing)} column")
    beds = pd.to_numeric(chosen["beds"], errors="coerce")
    nursing = pd.to_numeric(chosen["nursing_beds"], errors="coerce")
    known = beds.notna() & nursing.notna()
    blank = int((~known).sum())
    total_beds, total_nursing = float(beds[known].sum()), float(nursing[known].sum())
    per = {}
    for level in ("street", "community"):
        codes = chosen[f"{level}_code"].astype(str)[known].to_numpy()
        index = unit_index(inputs.level_units(level))
        b = beds[known].groupby(codes).sum().reindex(index, fill_value=0.0)
        n = nursing[known].groupby(codes).sum().reindex(index, fill_value=0.0)
        per[level] = 100.0 * n / b.where(b > 0)
    value = 100.0 * total_nursing / total_beds if total_beds > 0 else None
    status, complete = "ok", True
    if blank:
        # a share over the known homes is not a bound of the whole: say so rather than judge it
        status, complete = f"incomplete (beds or nursing_beds blank for {blank} of {len(chosen)} {kinds}: share of the others)", False
    if value is None:
        status = "no data (no beds in the list)"
    detail = f"{total_nursing:,.0f} nursing-type of {total_beds:,.0f} beds in {int(known.sum())} {kinds}"
    return Figure(value=value, status=status, detail=detail, numerator=total_nursing, denominator=total_beds, complete=complete,
                  per_street=per["street"], per_community=per["community"])


def unit_tables(inputs: Inputs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The base tables per street and per community: names, people, households and facilities per kind (OUTSIDE last)."""
    tables = []
    for level in ("street", "community"):
        units = inputs.level_units(level)
        index = unit_index(units)
        table = pd.DataFrame(index=index)
        names = units["name"].astype(object).copy() if "name" in units else pd.Series(index=units.index, dtype=object)
        names.index = names.index.astype(str)
        table["name"] = names.reindex(index).to_numpy(dtype=object)
        table.loc[OUTSIDE, "name"] = OUTSIDE_NAME
        if level == "community" and "street_code" in units:
            codes = units["street_code"].astype(str)
            codes.index = codes.index.astype(str)
            table["street_code"] = codes.reindex(index).to_numpy(dtype=object)
            table.loc[OUTSIDE, "street_code"] = OUTSIDE
        for group in _GROUPS:
            if group in inputs.people:
                table[group] = _unit_people(inputs, group, level).to_numpy()
        if "pop_total" in table:
            table["households"] = table["pop_total"] / inputs.household_size
        facilities = inputs.facilities
        for kind in KINDS:
            chosen = facilities[facilities["kind"].astype(str).to_numpy() == kind]
            table[f"n_{kind}"] = _per_unit_count(inputs, chosen, level).to_numpy()
        table.index.name = f"{level}_code"
        tables.append(table)
    return tables[0], tables[1]
