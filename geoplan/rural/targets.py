"""Rural targets files: the canteen network's targets and the rules its figures are counted by.

A rural targets file is TOML like a plan's targets file
(:mod:`geoplan.targets.presets`): a ``[plan]`` table, one ``[[targets]]``
table per target (``id``, ``indicator``, ``min``, ``clause``, ``section``,
``quote_zh``, ``note``), and a ``[rules]`` table (:class:`CanteenRules`: how
far a village may be from a meal point on foot, or from a kitchen by
delivery). Its indicators (:data:`RURAL_INDICATORS`) are the canteen
network's, so these files live apart from the plan presets, in
``geoplan/targets/presets/rural/``. Unknown keys are refused with the keys
allowed.

>>> targets = load_rural_targets("rural_canteens")
>>> [(t.id, t.min) for t in targets.targets]
[('county_kitchen', 1.0), ('every_town_canteen', 100.0), ('villages_served', 80.0), ('rural_older_served', None)]
>>> targets.rules.delivery_mode, targets.rules.delivery_min
('ebike', 20.0)
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from geoplan import _files
from geoplan.errors import ConfigError

#: Each rural indicator: (unit of its value, Chinese name, English name).
RURAL_INDICATORS: Mapping[str, tuple[str, str, str]] = MappingProxyType({
    "county_kitchen": ("kitchens", "县级中央厨房数量", "county central kitchens"),
    "towns_with_canteen": ("%", "有老年食堂的乡镇比例", "share of towns with a town canteen (or the county kitchen)"),
    "villages_served": ("%", "有助餐点或在送餐范围内的村比例", "share of villages with a meal point or within delivery reach"),
    "rural_older_served": ("%", "助餐服务覆盖的农村老年人比例", "share of the villages' 60+ in a served village"),
})

#: Relative build costs of each tier when the file gives none (an assumption: give your own).
DEFAULT_COSTS: Mapping[str, float] = MappingProxyType({"canteen": 1.0, "centre": 3.0, "district_centre": 10.0})

_PLAN_KEYS = {"key", "name", "place", "horizon", "source", "note"}
_TARGET_KEYS = {"id", "indicator", "min", "clause", "section", "quote_zh", "note"}
_RULE_KEYS = {"delivery_mode", "delivery_min", "meal_walk_min", "supply_mode", "supply_drive_min", "costs", "hub_spacing_m", "sources"}


@dataclasses.dataclass(frozen=True)
class CanteenRules:
    """How the canteen network serves a village, and what a new facility costs.

    Attributes
    ----------
    delivery_mode, delivery_min
        Meals delivered from a town canteen or the county kitchen by this
        travel mode (:mod:`geoplan.modes`) within this many minutes.
    meal_walk_min
        A village is served on foot by a meal point within this walk (its own
        meal point always serves it).
    supply_mode, supply_drive_min
        The county kitchen supplies each town canteen by this mode within this
        drive (reported: a plan's town canteens beyond it are flagged).
    costs
        Relative cost of a new meal point (``canteen``), town canteen
        (``centre``) and county kitchen (``district_centre``).
    hub_spacing_m
        Candidate sites for town canteens and the kitchen: street junctions about this far apart.
    sources
        Where each figure comes from, by field.
    """

    delivery_mode: str = "ebike"
    delivery_min: float = 20.0
    meal_walk_min: float = 15.0
    supply_mode: str = "car"
    supply_drive_min: float = 60.0
    costs: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_COSTS))
    hub_spacing_m: float = 1500.0
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        from geoplan.errors import InputError

        for name in ("delivery_min", "meal_walk_min", "supply_drive_min", "hub_spacing_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= (100_000 if name == "hub_spacing_m" else 240):
                raise InputError(f"Canteen rule {name} must be a positive number ({'metres' if name == 'hub_spacing_m' else 'minutes, at most 240'}), got {value!r}.")
            object.__setattr__(self, name, float(value))
        costs = {**DEFAULT_COSTS, **dict(self.costs)}
        unknown = sorted(set(costs) - set(DEFAULT_COSTS))
        bad = {k: v for k, v in costs.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
        if unknown or bad:
            raise InputError(f"Canteen rule costs take canteen, centre and district_centre, each a number >= 0; got {dict(self.costs)!r}.")
        object.__setattr__(self, "costs", MappingProxyType(costs))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def cutoff_min(self) -> float:
        """The longest time a rule allows (the service matrix keeps each site's times within its own rule)."""
        return max(self.delivery_min, self.meal_walk_min)


@dataclasses.dataclass(frozen=True)
class RuralTarget:
    """One target of the canteen network: an indicator of :data:`RURAL_INDICATORS`, its figure and its source."""

    id: str
    indicator: str
    plan: str
    section: str
    clause: str
    min: float | None = None
    quote_zh: str | None = None
    note: str | None = None

    @property
    def unit(self) -> str:
        return RURAL_INDICATORS[self.indicator][0]

    @property
    def target_text(self) -> str:
        if self.min is None:
            return "no figure given (reported only)"
        return f"≥ {self.min:g}" + (" %" if self.unit == "%" else f" {self.unit}")

    @property
    def source_text(self) -> str:
        zh = f" ({self.quote_zh})" if self.quote_zh else ""
        return f"{self.plan}, {self.section}: {self.clause!r}{zh}"


@dataclasses.dataclass(frozen=True)
class RuralTargets:
    """The targets and rules of one rural targets file."""

    key: str
    name: str
    targets: tuple[RuralTarget, ...]
    rules: CanteenRules
    path: Path | None = None
    place: str | None = None
    source: str | None = None
    note: str | None = None

    def get(self, target_id: str) -> RuralTarget:
        for target in self.targets:
            if target.id == target_id:
                return target
        raise KeyError(target_id)

    def with_rules(self, **changes: Any) -> "RuralTargets":
        """The same targets with some rules changed (e.g. ``delivery_min=30``)."""
        return dataclasses.replace(self, rules=dataclasses.replace(self.rules, **changes))


def presets_dir() -> Path:
    return Path(str(resources.files("geoplan.targets") / "presets" / "rural"))


def available_rural_presets() -> list[str]:
    """The rural targets files shipped with geoplan, by name."""
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_rural_targets(preset_or_path: str | Path | RuralTargets = "rural_canteens") -> RuralTargets:
    """Read a rural targets file: a shipped preset's name or a path to a TOML file (see the module docstring)."""
    if isinstance(preset_or_path, RuralTargets):
        return preset_or_path
    text = str(preset_or_path)
    if isinstance(preset_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text:
        path = _files.existing_file(preset_or_path, what="rural targets")
    else:
        if text not in available_rural_presets():
            raise ConfigError(f"Unknown rural targets preset {text!r}; the presets are {', '.join(available_rural_presets())}, "
                              "or give the path of your own .toml file (see geoplan/targets/presets/rural/ for the format).")
        path = presets_dir() / f"{text}.toml"
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid UTF-8 TOML: {exc}. Fix the line it names.") from exc
    return parse_rural_targets(data, path=path)


def parse_rural_targets(data: Mapping[str, Any], *, path: Path | None = None) -> RuralTargets:
    """A :class:`RuralTargets` from the parsed TOML of a rural targets file."""
    from geoplan.errors import InputError

    where = str(path) if path else "the rural targets"
    _check(data, {"plan", "targets", "rules"}, where, "the top level")
    plan = data.get("plan")
    if not isinstance(plan, Mapping) or not isinstance(plan.get("name"), str):
        raise ConfigError(f"{where} needs a [plan] table with name = \"...\".")
    _check(plan, _PLAN_KEYS, where, "[plan]")
    rules = dict(data.get("rules", {}))
    _check(rules, _RULE_KEYS, where, "[rules]")
    try:
        parsed_rules = CanteenRules(**rules)
    except InputError as exc:
        raise ConfigError(f"{where}: [rules]: {exc}") from exc
    raw = data.get("targets")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} has no targets: add [[targets]] tables (id, indicator, clause, min).")
    targets, seen = [], set()
    for number, item in enumerate(raw, start=1):
        label = f"target {number}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: {label} is not a table; write each as a [[targets]] table.")
        _check(item, _TARGET_KEYS, where, label)
        for key in ("id", "indicator", "clause"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"{where}: {label} needs {key} = \"...\".")
        if item["indicator"] not in RURAL_INDICATORS:
            raise ConfigError(f"{where}: {label} has indicator {item['indicator']!r}; use one of {', '.join(RURAL_INDICATORS)}"
                              f"{_nearest(item['indicator'], RURAL_INDICATORS)}.")
        figure = item.get("min")
        if figure is not None:
            unit = RURAL_INDICATORS[item["indicator"]][0]
            if isinstance(figure, bool) or not isinstance(figure, (int, float)) or figure < 0 or (unit == "%" and figure > 100):
                raise ConfigError(f"{where}: {label} min must be {'a percentage from 0 to 100' if unit == '%' else 'a number >= 0'}, got {figure!r}.")
            figure = float(figure)
        if item["id"] in seen:
            raise ConfigError(f"{where}: target id {item['id']!r} is used twice.")
        seen.add(item["id"])
        targets.append(RuralTarget(id=item["id"], indicator=item["indicator"], plan=plan["name"], section=item.get("section", "section not given"),
                                   clause=item["clause"], min=figure, quote_zh=item.get("quote_zh"), note=item.get("note")))
    return RuralTargets(key=plan.get("key") or (path.stem if path else "rural"), name=plan["name"], targets=tuple(targets), rules=parsed_rules,
                        path=path, place=plan.get("place"), source=plan.get("source"), note=plan.get("note"))


def _check(values: Mapping[str, Any], allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} in {what}{_nearest(unknown[0], allowed)}; allowed: {', '.join(sorted(allowed))}.")


def _nearest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
