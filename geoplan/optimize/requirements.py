r"""Planning requirements: what a plan of new care facilities must make true, as plain frozen values.

The targets of a district's elderly-care plan, one value each, for
:func:`~geoplan.optimize.least_cost.least_cost` (the cheapest new facilities
that meet them all) and for the review of a plan:

* :class:`UnitShare` -- at least a share of the units of a level (streets,
  communities, zones) hold a facility of some kinds ("80 % of streets with a
  comprehensive centre");
* :class:`CoverageShare` -- at least a share of a group within a walk of a
  facility of some kinds ("80 % of the 60+ within a 15-minute walk of a
  station or a centre");
* :class:`Quantity` -- the sum of an attribute (floor area, land, beds) over
  the facilities of some kinds, in the whole district or in every unit of a
  level, at least an amount, or an amount per people of a group ("20 m² of
  floor space per 100 households in every community");
* :class:`Ratio` -- one attribute at least a share of another over the same
  facilities ("nursing-type beds at least 60 % of beds").

``kinds`` are taken as written: a facility counts for a requirement when its
kind is listed. To let a centre count for a station target, list both
(:data:`geoplan.tiers.SERVED_BY` has the usual sets:
``SERVED_BY["station"] == ("station", "centre", "district_centre")``).
Each requirement has an ``id`` (unique within a set) that names it in tables
and errors. A targets file (TOML) is translated into these values elsewhere;
they hold no file, plan or clause.

>>> UnitShare("streets_centre", kinds=("centre",), level="street", share_pct=80).describe()
'at least 80 % of street units hold a centre'
>>> Quantity("floor_space", kinds=("station", "centre"), attribute="floor_area_m2", amount=20,
...          level="community", per_group="pop_total", per_people=231).describe()
'floor_area_m2 of station, centre: at least 20 per 231 pop_total in every community unit'
>>> CoverageShare("circle", kinds=("station",), group="pop_60", threshold_min=15, pct=120)
Traceback (most recent call last):
...
geoplan.errors.InputError: Requirement 'circle': pct must be a percentage between 0 and 100, got 120.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from typing import ClassVar, Union

from geoplan.errors import InputError
from geoplan.tiers import ATTRIBUTES, KINDS

#: The facility attributes a :class:`Quantity` or :class:`Ratio` can add up (numbers; the codes are not).
NUMERIC_ATTRIBUTES: tuple[str, ...] = tuple(a for a in ATTRIBUTES if not a.endswith("_code"))


def _check_id(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"A requirement id must be a non-empty string (it names the requirement in tables and errors), got {value!r}.")
    return value


def _check_kinds(rid: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        kinds = tuple(value)
    except TypeError:
        raise InputError(f"Requirement {rid!r}: kinds must be a list of facility kinds such as ('station', 'centre'), got {value!r}.") from None
    if not kinds:
        raise InputError(f"Requirement {rid!r}: kinds is empty; name at least one facility kind ({', '.join(KINDS)}).")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"Requirement {rid!r}: unknown facility kind(s) {unknown}; use {', '.join(KINDS)}.")
    if len(set(kinds)) != len(kinds):
        raise InputError(f"Requirement {rid!r}: kinds {list(kinds)} name a kind twice.")
    return kinds


def _check_number(rid: str, name: str, value, ok, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        raise InputError(f"Requirement {rid!r}: {name} must be {expected}, got {value!r}.")
    return float(value)


def _check_pct(rid: str, name: str, value) -> float:
    return _check_number(rid, name, value, lambda v: 0 <= v <= 100, "a percentage between 0 and 100")


def _check_level(rid: str, value, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"Requirement {rid!r}: level must name a unit level such as 'street' or 'community', got {value!r}.")
    return value


def _check_attribute(rid: str, name: str, value) -> str:
    if value not in NUMERIC_ATTRIBUTES:
        raise InputError(f"Requirement {rid!r}: {name} must be one of {', '.join(NUMERIC_ATTRIBUTES)}, got {value!r}.")
    return value


def _kinds_text(kinds: tuple[str, ...]) -> str:
    return " / ".join(kinds)


@dataclasses.dataclass(frozen=True)
class _Requirement:
    """What every requirement holds and checks: its ``id``, the facility ``kinds`` it counts, and its target.

    A subclass checks its own fields in ``_check``; ``_target_pct`` names
    the field that holds its target as a percentage (checked to lie in
    0-100, and returned by ``target``), or is None where ``target`` is its own.
    """

    id: str
    kinds: tuple[str, ...]

    _target_pct: ClassVar[str | None] = "share_pct"

    def __post_init__(self):
        _check_id(self.id)
        object.__setattr__(self, "kinds", _check_kinds(self.id, self.kinds))
        self._check()
        if self._target_pct is not None:
            _check_pct(self.id, self._target_pct, getattr(self, self._target_pct))

    def _check(self) -> None:
        """Check the subclass's own fields (raise :class:`InputError`)."""

    @property
    def target(self) -> float:
        return float(getattr(self, self._target_pct))


@dataclasses.dataclass(frozen=True)
class UnitShare(_Requirement):
    """At least ``share_pct`` % of the units of ``level`` hold at least one facility of ``kinds`` inside them.

    A unit is held when an existing or new facility of a listed kind lies in
    it (the unit codes of the sites say where). ``share_pct`` of :math:`U`
    units means at least :math:`\\lceil U \\cdot share\\_pct / 100 \\rceil`
    units.
    """

    level: str
    share_pct: float

    def _check(self) -> None:
        _check_level(self.id, self.level)

    @property
    def value_unit(self) -> str:
        return f"% of {self.level} units"

    def describe(self) -> str:
        return f"at least {self.share_pct:g} % of {self.level} units hold a {_kinds_text(self.kinds)}"


@dataclasses.dataclass(frozen=True)
class CoverageShare(_Requirement):
    """At least ``pct`` % of the people of ``group`` within ``threshold_min`` minutes' walk of a facility of ``kinds``.

    Counted over the whole demand (people outside every unit included);
    "within" is asked of the problem's reach matrix.
    """

    group: str
    threshold_min: float
    pct: float

    _target_pct: ClassVar[str | None] = "pct"

    def _check(self) -> None:
        if not isinstance(self.group, str) or not self.group:
            raise InputError(f"Requirement {self.id!r}: group must name a population column such as 'pop_60', got {self.group!r}.")
        _check_number(self.id, "threshold_min", self.threshold_min, lambda v: v > 0, "positive minutes")

    @property
    def threshold_s(self) -> float:
        return float(self.threshold_min) * 60.0

    @property
    def value_unit(self) -> str:
        return f"% of {self.group}"

    def describe(self) -> str:
        return f"at least {self.pct:g} % of {self.group} within {self.threshold_min:g} min of a {_kinds_text(self.kinds)}"


@dataclasses.dataclass(frozen=True)
class Quantity(_Requirement):
    """The sum of ``attribute`` over the facilities of ``kinds`` is at least ``amount``.

    Parameters
    ----------
    id, kinds
        The requirement's name, and the facility kinds whose attribute counts.
    attribute
        A numeric facility attribute (:data:`NUMERIC_ATTRIBUTES`: floor area,
        land, beds, nursing beds, meals per day). Existing facilities carry
        it as a column; new ones take the candidate's own value or the kind's
        default (``new_attributes`` of :func:`~geoplan.optimize.least_cost.least_cost`).
    amount
        The least sum; with ``per_group``, per ``per_people`` people of that
        group (``amount=20, per_group="pop_total", per_people=231``: 20 m² per
        100 households of 2.31 people; ``amount=0.1, per_group="pop_total"``:
        0.1 m² per resident).
    level
        ``None``: over the whole district. A level (``"street"``,
        ``"community"``): in every unit of that level, each with its own sum
        and, with ``per_group``, its own people.
    units
        With ``level``: only these unit codes (e.g. the new areas, with the old
        areas as a second requirement at a lower amount). Default: every unit.
    """

    attribute: str
    amount: float
    level: str | None = None
    per_group: str | None = None
    per_people: float = 1.0
    units: tuple[str, ...] | None = None

    _target_pct: ClassVar[str | None] = None

    def _check(self) -> None:
        _check_attribute(self.id, "attribute", self.attribute)
        _check_number(self.id, "amount", self.amount, lambda v: v >= 0, "a number >= 0")
        _check_level(self.id, self.level, optional=True)
        if self.per_group is not None and (not isinstance(self.per_group, str) or not self.per_group):
            raise InputError(f"Requirement {self.id!r}: per_group must name a population column such as 'pop_total', got {self.per_group!r}.")
        _check_number(self.id, "per_people", self.per_people, lambda v: v > 0, "a positive number of people")
        if self.per_group is None and self.per_people != 1.0:
            raise InputError(f"Requirement {self.id!r}: per_people only applies with per_group (the group the amount is per); give per_group too.")
        if self.units is not None:
            if self.level is None:
                raise InputError(f"Requirement {self.id!r}: units lists unit codes of a level; give level too (e.g. level='community').")
            units = (self.units,) if isinstance(self.units, str) else tuple(self.units)
            if not units:
                raise InputError(f"Requirement {self.id!r}: units is empty; leave it out to apply the amount in every unit.")
            object.__setattr__(self, "units", tuple(str(u) for u in units))

    @property
    def per_unit(self) -> bool:
        return self.level is not None

    @property
    def target(self) -> float:
        return 100.0 if self.per_unit else float(self.amount)

    @property
    def value_unit(self) -> str:
        if self.per_unit:
            return f"% of {self.level} units meeting the amount"
        if self.per_group is not None:
            return f"{self.attribute} per {self.per_people:g} {self.per_group}"
        return self.attribute

    def describe(self) -> str:
        per = f" per {self.per_people:g} {self.per_group}" if self.per_group is not None else ""
        where = f" in every {self.level} unit" if self.per_unit else ""
        if self.units is not None:
            where = f" in {self.level} units {', '.join(self.units[:5])}{' ...' if len(self.units) > 5 else ''}"
        return f"{self.attribute} of {', '.join(self.kinds)}: at least {self.amount:g}{per}{where}"


@dataclasses.dataclass(frozen=True)
class Ratio(_Requirement):
    """Over the facilities of ``kinds``, the sum of ``numerator`` is at least ``share_pct`` % of the sum of ``denominator``.

    Linear: :math:`\\sum n_j \\ge s \\sum d_j`. With no ``denominator`` at all
    (no beds) it holds. Unlike the other requirements it can get worse as
    facilities are added (a home with few nursing beds lowers the share).
    """

    numerator: str
    denominator: str
    share_pct: float

    def _check(self) -> None:
        _check_attribute(self.id, "numerator", self.numerator)
        _check_attribute(self.id, "denominator", self.denominator)
        if self.numerator == self.denominator:
            raise InputError(f"Requirement {self.id!r}: numerator and denominator are both {self.numerator!r}; a ratio needs two attributes.")

    @property
    def value_unit(self) -> str:
        return f"{self.numerator} as % of {self.denominator}"

    def describe(self) -> str:
        return f"{self.numerator} at least {self.share_pct:g} % of {self.denominator} over {', '.join(self.kinds)}"


#: Any one requirement.
Requirement = Union[UnitShare, CoverageShare, Quantity, Ratio]

#: The requirement types, in the order tables list them.
REQUIREMENT_TYPES: tuple[type, ...] = (UnitShare, CoverageShare, Quantity, Ratio)


def check_requirements(requirements: Requirement | Iterable[Requirement]) -> tuple[Requirement, ...]:
    """The requirements as a tuple: at least one, each of a requirement type, ids unique."""
    if isinstance(requirements, REQUIREMENT_TYPES):
        requirements = (requirements,)
    requirements = tuple(requirements)
    if not requirements:
        raise InputError("No requirements given; pass at least one (UnitShare, CoverageShare, Quantity or Ratio).")
    for r in requirements:
        if not isinstance(r, REQUIREMENT_TYPES):
            raise InputError(
                f"Requirements must be UnitShare, CoverageShare, Quantity or Ratio values, got {type(r).__name__}."
            )
    ids = [r.id for r in requirements]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InputError(f"Requirement ids repeat: {repeated}; give each requirement its own id.")
    return requirements
