"""Targets files: what a plan asks of a district, per tier, with the clause each figure comes from.

A targets file is a small TOML file: a ``[plan]`` table naming the plan, and
one ``[[targets]]`` table per target. Every target names its indicator
(:data:`INDICATORS`), the tier it is about, its figure (``min``; left out: the
plan names the aim without a figure, and the indicator is reported, not
judged) and its source: the plan, the section and the quoted clause. Unknown
keys are refused with the keys allowed, so a typo never drops a target.

Five presets ship with geoplan (:func:`available_presets`): ``shuimogou``,
``yunfu``, ``baodi``, ``xinjiang`` and ``chaoyang``, with the figures quoted in
geoplan's issue 9; any other name is read as a path to the planner's own file.

>>> targets = load_targets("shuimogou")
>>> [(t.id, t.min) for t in targets.targets][:3]
[('district_centre', 1.0), ('street_centres_80pct', 80.0), ('community_facility_60pct', 60.0)]
>>> targets.targets[1].source_text
"Shuimogou district plan, section not given in the issue's excerpt: '80 % of streets with a home-care service centre' (街道居家养老服务中心)"
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from geoplan import _files
from geoplan.errors import ConfigError
from geoplan.tiers import KINDS, SERVED_BY

#: Each indicator: (unit of its value, Chinese name, English name).
INDICATORS: Mapping[str, tuple[str, str, str]] = MappingProxyType({
    "facility_count": ("facilities", "设施数量", "facilities in the district"),
    "unit_share": ("%", "设施覆盖的单元比例", "share of units with the tier"),
    "reach": ("%", "步行可达的老年人比例", "share of older people within the walk"),
    "floor_area_per_100_households": ("m² per 100 households", "每百户养老服务设施建筑面积", "floor space per 100 households"),
    "land_per_resident": ("m² per resident", "人均养老服务设施用地", "land per resident"),
    "beds_per_1000_older": ("beds per 1,000 aged 60+", "每千名老年人养老床位数", "beds per 1,000 older people"),
    "nursing_bed_share": ("%", "护理型床位占比", "nursing-type bed share"),
})

#: Which facility attribute each attribute-based indicator adds up (the rest need none).
INDICATOR_ATTRIBUTE: Mapping[str, str] = MappingProxyType({
    "floor_area_per_100_households": "floor_area_m2",
    "land_per_resident": "land_m2",
    "beds_per_1000_older": "beds",
    "nursing_bed_share": "nursing_beds",
})

#: Planning-unit levels a unit-share target counts.
LEVELS = ("street", "community")

#: The walk within which each tier serves a person, in minutes, when a target gives none.
DEFAULT_THRESHOLD_MIN: Mapping[str, float] = MappingProxyType({
    "station": 15.0, "canteen": 10.0, "centre": 15.0, "district_centre": 15.0, "home": 15.0,
})

#: What a section says when the plan's excerpt does not give one.
NO_SECTION = "section not given"

_PLAN_KEYS = {"key", "name", "place", "horizon", "source", "note"}
#: Column names of the review's unit tables, which a target id may not take.
RESERVED_IDS = frozenset({"name", "geometry", "street_code", "community_code", "households", "passes", "failing", "approximate", "level"})

_TARGET_KEYS = {
    "id", "indicator", "tier", "counts", "level", "group", "threshold_min", "min", "scope",
    "plan", "section", "clause", "quote_zh", "note",
}
#: Keys each indicator uses beyond the common ones (id, indicator, min, scope, plan, section, clause, quote_zh, note).
_INDICATOR_KEYS = {
    "facility_count": {"tier", "counts"},
    "unit_share": {"tier", "counts", "level"},
    "reach": {"tier", "counts", "group", "threshold_min"},
    "floor_area_per_100_households": {"counts"},
    "land_per_resident": {"counts"},
    "beds_per_1000_older": {"counts"},
    "nursing_bed_share": {"tier", "counts"},
}
_NEEDS_TIER = {"facility_count", "unit_share", "reach"}
_PERCENT = {"unit_share", "reach", "nursing_bed_share"}
#: Most characters a targets file may hold: the presets are a few kB.
MAX_TARGETS_CHARS = 1_000_000
#: Deepest nesting of brackets a targets file may have: the presets nest 2 (``[[targets]]``, ``counts = [...]``).
MAX_TARGETS_DEPTH = 32
_TOML_STRINGS_AND_COMMENTS = re.compile(r'"""(?:[^\\]|\\[\s\S])*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')
_BRACKETS = re.compile(r"[\[\]{}]")


@dataclasses.dataclass(frozen=True)
class Target:
    """One target of a plan: an indicator, the tiers it counts, its figure and its source.

    Attributes
    ----------
    id
        A short name, unique in its file.
    indicator
        One of :data:`INDICATORS`.
    tier
        The tier the target is about (``station``, ``canteen``, ``centre``,
        ``district_centre``, ``home``); None for the district-wide ratios.
    counts
        The facility kinds that count towards it (default: the kinds that
        serve the tier, :data:`geoplan.tiers.SERVED_BY`; for a count, the tier
        itself; for the ratios, every kind; for nursing beds, homes).
    level
        ``street`` or ``community`` (unit shares only).
    group, threshold_min
        Reach only: the population group and the walk in minutes.
    min
        The figure to reach (at least), in the indicator's unit; None when the
        plan names the aim without a figure (reported, not judged).
    scope
        Where the plan applies the figure (e.g. ``"new areas"``), as it says.
    plan, section, clause, quote_zh, note
        The source: the plan's name, the section (or that it is not given),
        the clause as quoted, the Chinese wording where known, and how geoplan
        reads it.
    """

    id: str
    indicator: str
    plan: str
    section: str
    clause: str
    tier: str | None = None
    counts: tuple[str, ...] = ()
    level: str | None = None
    group: str | None = None
    threshold_min: float | None = None
    min: float | None = None
    scope: str | None = None
    quote_zh: str | None = None
    note: str | None = None

    @property
    def unit(self) -> str:
        """The unit of the indicator's value: ``%``, ``facilities``, ``m² per 100 households``..."""
        return INDICATORS[self.indicator][0]

    @property
    def attribute(self) -> str | None:
        """The facility attribute the indicator adds up (None: it needs none)."""
        return INDICATOR_ATTRIBUTE.get(self.indicator)

    @property
    def judged(self) -> bool:
        """True when the target has a figure to pass or fail."""
        return self.min is not None

    @property
    def target_text(self) -> str:
        """The figure as a reader writes it: ``≥ 80 %``, ``≥ 1 facilities``; or that there is none."""
        if self.min is None:
            return "no figure given (reported only)"
        unit = " %" if self.unit == "%" else f" {self.unit}"
        return f"≥ {self.min:g}{unit}" + (f" ({self.scope})" if self.scope else "")

    @property
    def source_text(self) -> str:
        """``plan, section: 'clause' (中文)``."""
        zh = f" ({self.quote_zh})" if self.quote_zh else ""
        return f"{self.plan}, {self.section}: {self.clause!r}{zh}"

    @property
    def key(self) -> tuple:
        """What the indicator measures (two targets with the same key share one computed value)."""
        return (self.indicator, self.tier, self.counts, self.level, self.group, self.threshold_min)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["counts"] = list(self.counts)
        return data


@dataclasses.dataclass(frozen=True)
class TargetSet:
    """The targets of one plan, as read from a targets file."""

    key: str
    name: str
    targets: tuple[Target, ...]
    path: Path | None = None
    place: str | None = None
    horizon: str | None = None
    source: str | None = None
    note: str | None = None

    def __iter__(self):
        return iter(self.targets)

    def __len__(self) -> int:
        return len(self.targets)

    def get(self, target_id: str) -> Target:
        for target in self.targets:
            if target.id == target_id:
                return target
        raise KeyError(target_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "place": self.place, "horizon": self.horizon, "source": self.source,
            "note": self.note, "path": str(self.path) if self.path else None, "targets": [t.as_dict() for t in self.targets],
        }


def available_presets() -> list[str]:
    """The targets presets shipped with geoplan, by name."""
    root = resources.files("geoplan.targets") / "presets"
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    """The file of a shipped preset."""
    return Path(str(resources.files("geoplan.targets") / "presets" / f"{name}.toml"))


def load_targets(preset_or_path: str | Path | TargetSet) -> TargetSet:
    """Read a targets file: a shipped preset's name (``shuimogou``...) or a path to a TOML file.

    Raises
    ------
    ConfigError
        An unknown preset (the message lists the presets), a file that is not
        TOML, an unknown key (the message names the keys allowed, and the
        nearest one), a missing clause or figure out of range.
    """
    if isinstance(preset_or_path, TargetSet):
        return preset_or_path
    text = str(preset_or_path)
    is_path = isinstance(preset_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text
    if not is_path:
        if text not in available_presets():
            raise ConfigError(
                f"Unknown targets preset {text!r}; the presets are {', '.join(available_presets())}. "
                "For your own targets give the path of a .toml file (see geoplan/targets/presets/ for the format)."
            )
        path = preset_path(text)
    else:
        path = _files.existing_file(preset_or_path, what="targets")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The targets file {path} is not UTF-8 text; save it as UTF-8.") from exc
    return loads_targets(text, path=path)


def loads_targets(text: str, *, path: Path | None = None, name: str | None = None) -> TargetSet:
    """A :class:`TargetSet` from the text of a targets file (an upload); ``name`` labels it in messages."""
    where = str(path) if path else (name or "the targets file")
    _check_extent(text, where)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}. Fix the line it names.") from exc
    except RecursionError:  # nesting the scan did not see (brackets it took for strings)
        raise ConfigError(_too_deep(where, None)) from None
    return parse_targets(data, path=path, name=name)


def _toml_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in TOML text, strings and comments left out (no parsing)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_TOML_STRINGS_AND_COMMENTS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_extent(text: str, where: str) -> None:
    """A ``ConfigError`` for a targets text too long, or nested too deep, to be a targets file (before TOML parses it)."""
    if len(text) > MAX_TARGETS_CHARS:
        raise ConfigError(f"{where} holds {len(text):,} characters; a targets file is a few kB of TOML (the limit is "
                          f"{MAX_TARGETS_CHARS:,}). Give one [plan] table and a [[targets]] table per target.")
    depth = _toml_depth(text)
    if depth > MAX_TARGETS_DEPTH:
        raise ConfigError(_too_deep(where, depth))


def _too_deep(where: str, depth: int | None) -> str:
    """The message for a targets text nested ``depth`` levels deep (``None``: too deep for the parser)."""
    how_deep = f"{depth:,} levels deep" if depth is not None else "too deep for the TOML parser"
    return (f"{where} nests brackets {how_deep}; a targets file needs 2 (the limit is {MAX_TARGETS_DEPTH}). "
            "Write each target as a [[targets]] table of plain values, its counts as a list of kinds.")


def parse_targets(data: Mapping[str, Any], *, path: Path | None = None, name: str | None = None) -> TargetSet:
    """A :class:`TargetSet` from the parsed TOML of a targets file (see :func:`load_targets`)."""
    where = str(path) if path else (name or "the targets")
    _check_keys(data, {"plan", "targets"}, where, "the top level")
    plan = data.get("plan")
    if not isinstance(plan, Mapping):
        raise ConfigError(f"{where} needs a [plan] table with at least name = \"...\" (the plan the targets come from).")
    _check_keys(plan, _PLAN_KEYS, where, "[plan]")
    name = _text(plan, "name", where, "[plan]", required=True)
    key = _text(plan, "key", where, "[plan]") or (path.stem if path else "targets")
    if not all(c.isalnum() or c in "_-" for c in key):
        raise ConfigError(f"{where}: [plan] key {key!r} names files and URLs; use letters, digits, '_' and '-' only.")
    raw = data.get("targets")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} has no targets: add one or more [[targets]] tables (id, indicator, clause, ...).")
    targets, seen = [], set()
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: target {number} is not a table; write each as a [[targets]] table.")
        target = _target(item, number, name, where)
        if target.id in seen:
            raise ConfigError(f"{where}: target id {target.id!r} is used twice; give each target its own id.")
        seen.add(target.id)
        targets.append(target)
    return TargetSet(
        key=key, name=name, targets=tuple(targets), path=path,
        place=_text(plan, "place", where, "[plan]"), horizon=_text(plan, "horizon", where, "[plan]"),
        source=_text(plan, "source", where, "[plan]"), note=_text(plan, "note", where, "[plan]"),
    )


def _target(item: Mapping[str, Any], number: int, plan_name: str, where: str) -> Target:
    label = f"target {number}" + (f" ({item['id']!r})" if isinstance(item.get("id"), str) else "")
    _check_keys(item, _TARGET_KEYS, where, label)
    target_id = _text(item, "id", where, label, required=True)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", target_id) or target_id in RESERVED_IDS or target_id.startswith(("pop_", "n_", "pass_")):
        raise ConfigError(
            f"{where}: {label} has id {target_id!r}; an id is letters, digits and _ (starting with a letter), and not one of "
            f"{', '.join(sorted(RESERVED_IDS))} nor starting with pop_, n_ or pass_ (the review's own columns)."
        )
    indicator = _text(item, "indicator", where, label, required=True)
    if indicator not in INDICATORS:
        raise ConfigError(f"{where}: {label} has indicator {indicator!r}; use one of {', '.join(INDICATORS)}{_nearest(indicator, INDICATORS)}.")
    common = {"id", "indicator", "min", "scope", "plan", "section", "clause", "quote_zh", "note"}
    unused = sorted(set(item) - common - _INDICATOR_KEYS[indicator])
    if unused:
        raise ConfigError(
            f"{where}: {label} ({indicator}) does not use {unused}; its keys are "
            f"{', '.join(sorted(common | _INDICATOR_KEYS[indicator]))}. Remove them."
        )
    tier = _text(item, "tier", where, label)
    if indicator in _NEEDS_TIER and tier is None:
        raise ConfigError(f"{where}: {label} ({indicator}) needs tier = one of {', '.join(KINDS)}.")
    if tier is not None and tier not in KINDS:
        raise ConfigError(f"{where}: {label} has tier {tier!r}; use one of {', '.join(KINDS)}{_nearest(tier, KINDS)}.")
    counts = item.get("counts")
    if counts is None:
        counts = default_counts(indicator, tier)
    else:
        if isinstance(counts, str) or not isinstance(counts, list) or not counts or not all(isinstance(c, str) for c in counts):
            raise ConfigError(f"{where}: {label} counts must be a list of facility kinds, e.g. [\"station\", \"centre\"].")
        odd = sorted(set(counts) - set(KINDS))
        if odd:
            raise ConfigError(f"{where}: {label} counts unknown kinds {odd}; use {', '.join(KINDS)}.")
        counts = tuple(dict.fromkeys(counts))
    level = _text(item, "level", where, label)
    if indicator == "unit_share":
        if level not in LEVELS:
            raise ConfigError(f"{where}: {label} (unit_share) needs level = \"street\" or \"community\", got {level!r}.")
    group = threshold = None
    if indicator == "reach":
        group = _text(item, "group", where, label) or "pop_60"
        if not group.startswith("pop_"):
            raise ConfigError(f"{where}: {label} group must be a population group such as pop_60 or pop_80, got {group!r}.")
        threshold = _number(item, "threshold_min", where, label)
        threshold = DEFAULT_THRESHOLD_MIN[tier] if threshold is None else threshold
        if not 0 < threshold <= 120:
            raise ConfigError(f"{where}: {label} threshold_min must be minutes between 0 and 120, got {threshold:g}.")
    figure = _number(item, "min", where, label)
    if figure is not None:
        if figure < 0 or (indicator in _PERCENT and figure > 100):
            bound = "a percentage between 0 and 100" if indicator in _PERCENT else "a number >= 0"
            raise ConfigError(f"{where}: {label} min must be {bound} ({INDICATORS[indicator][0]}), got {figure:g}.")
    plan = _text(item, "plan", where, label) or plan_name
    clause = _text(item, "clause", where, label, required=True)
    section = _text(item, "section", where, label) or NO_SECTION
    return Target(
        id=target_id, indicator=indicator, plan=plan, section=section, clause=clause, tier=tier, counts=tuple(counts),
        level=level, group=group, threshold_min=threshold, min=figure, scope=_text(item, "scope", where, label),
        quote_zh=_text(item, "quote_zh", where, label), note=_text(item, "note", where, label),
    )


def default_counts(indicator: str, tier: str | None) -> tuple[str, ...]:
    if indicator == "facility_count":
        return (tier,)
    if indicator in ("unit_share", "reach"):
        return tuple(SERVED_BY[tier])
    if indicator == "nursing_bed_share":
        return (tier or "home",)
    return KINDS


def _check_keys(values: Mapping[str, Any], allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        hints = "".join(_nearest(k, allowed) for k in unknown[:1])
        raise ConfigError(f"{where}: unknown key(s) {unknown} in {what}{hints}; allowed: {', '.join(sorted(allowed))}.")


def _nearest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(values: Mapping[str, Any], key: str, where: str, what: str, *, required: bool = False) -> str | None:
    value = values.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: {what} needs {key} = \"...\".")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {what} {key} must be non-empty text, got {value!r}.")
    return value.strip()


def _number(values: Mapping[str, Any], key: str, where: str, what: str) -> float | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{where}: {what} {key} must be a number, got {value!r}.")
    return float(value)
