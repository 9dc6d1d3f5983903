"""What to plan and how: one frozen options object per concern, passed down the whole chain.

* :class:`KindSpec` -- one kind of facility to plan (its walk, count, budget,
  capacity, target);
* :class:`ModelOptions` -- which model, and the model-wide rules;
* :class:`SolverOptions` -- which solver, time limit and MIP gap.

An option that the chosen model does not use is an error, never silently
dropped: :meth:`ModelOptions.check_kinds` says which option, for which model,
and how to fix it.

>>> ModelOptions("mclp", minimize="cost")
Traceback (most recent call last):
...
geoplan.errors.InputError: minimize is not used by the mclp model (it applies to target, consolidate); leave it out or choose one of those models (got minimize='cost').
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from geoplan.errors import InputError
from geoplan.tiers import KINDS

#: The models :func:`~geoplan.optimize.optimize` solves.
MODELS = ("mclp", "target", "pmedian", "consolidate")

#: The solvers, through PuLP: HiGHS (``highspy``) by default, CBC as the fallback.
SOLVERS = ("highs", "cbc")


#: Model options that only some models use (``None`` means "not given").
_MODEL_ONLY = {
    "refine": ("target", "consolidate"),
    "within_threshold": ("pmedian",),
    "pmedian_cutoff_min": ("pmedian",),
    "minimize": ("target", "consolidate"),
    "keep_groups": ("consolidate",),
    "lagrangian": ("mclp", "target"),
}

#: KindSpec fields that only some models use (compared with their defaults).
_KIND_ONLY = {
    "target_pct": ("target",),
    "min_catchment": ("consolidate",),
    "target_group": ("target", "consolidate"),
}


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """What to plan for one kind of facility.

    Parameters
    ----------
    kind
        ``"station"`` (community care station 社区养老服务站), ``"canteen"``
        (elderly canteen 老年食堂/助餐点) or ``"centre"``.
    p
        At most this many new sites (MCLP, p-median; a cap in the target model;
        new sites that consolidation may open).
    budget
        At most this total cost of new sites (same unit as the site costs).
    threshold_min
        The walk (minutes) within which a site serves a person: 15 for the
        15-minute care circle, often 10 for a canteen.
    capacity
        Capacitated models: how much one site serves, in ``capacity_group``
        people times ``use_rate`` (day-care places, meals per day). A site's
        own ``capacity`` (from its file) replaces it where given. ``None``:
        uncapacitated.
    capacity_group, use_rate
        What one unit of capacity serves: ``use_rate`` units per person of
        ``capacity_group`` (e.g. 0.3 meals per 60+ person per day). Only with
        ``capacity``.
    target_pct
        Target model: at least this percentage of ``target_group`` within the
        threshold after the plan.
    target_group
        The group the target (or the consolidation catchment) counts.
    min_catchment
        Consolidation: existing sites with fewer ``target_group`` people
        within the threshold than this may close.
    """

    kind: str = "station"
    p: int | None = None
    budget: float | None = None
    threshold_min: float = 15.0
    capacity: float | None = None
    capacity_group: str = "pop_60"
    use_rate: float = 1.0
    target_pct: float | None = None
    target_group: str = "pop_60"
    min_catchment: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"Unknown facility kind {self.kind!r}; use one of {', '.join(KINDS)}.")
        if self.p is not None and (isinstance(self.p, bool) or not isinstance(self.p, numbers.Integral) or self.p < 0):
            raise InputError(f"p (the number of new {self.kind} sites) must be a whole number >= 0, got {self.p!r}.")
        checks = (
            ("budget", self.budget, lambda v: v >= 0, ">= 0"),
            ("threshold_min", self.threshold_min, lambda v: v > 0, "positive minutes"),
            ("capacity", self.capacity, lambda v: v >= 0, ">= 0 (people or meals a site serves)"),
            ("use_rate", self.use_rate, lambda v: v >= 0, ">= 0"),
            ("target_pct", self.target_pct, lambda v: 0 <= v <= 100, "a percentage between 0 and 100"),
            ("min_catchment", self.min_catchment, lambda v: v >= 0, ">= 0 people"),
        )
        for name, value, ok, expected in checks:
            if value is None:
                continue
            if not _is_number(value) or not ok(value):
                raise InputError(f"The {self.kind} {name} must be {expected}, got {value!r}.")
        if self.capacity is None and (self.capacity_group != "pop_60" or self.use_rate != 1.0):
            raise InputError(
                f"capacity_group and use_rate describe what one unit of capacity serves; the {self.kind} has no "
                "capacity. Give capacity too, or leave them out."
            )

    @property
    def threshold_s(self) -> float:
        return float(self.threshold_min) * 60.0

    @property
    def capacitated(self) -> bool:
        return self.capacity is not None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The model and the rules over all kinds.

    Parameters
    ----------
    model
        ``"mclp"`` (most weighted older people within the walk), ``"target"``
        (fewest new sites, or least cost, for a coverage target),
        ``"pmedian"`` (shortest weighted walk) or ``"consolidate"`` (close
        under-used sites while no group loses coverage).
    reduce
        Apply the optimum-preserving reductions (:mod:`geoplan.optimize.reduce`).
    warm_start
        Hand the solver a greedy starting solution.
    refine
        target, consolidate: among the plans with the fewest sites, take the
        one reaching the most weighted people (default True).
    one_per_site
        Several kinds: a candidate takes at most one new facility.
    total_budget
        The cost of all new sites of every kind together.
    within_threshold
        pmedian: assign people only within the kind's threshold (default
        False: up to ``pmedian_cutoff_min``).
    pmedian_cutoff_min
        pmedian: how far walks are computed (default twice the largest
        threshold); a person with no site that near counts this long.
    minimize
        target, consolidate: ``"count"`` (default) or ``"cost"`` of sites.
    keep_groups
        consolidate: the groups that may not lose coverage (default 60+ and 80+).
    lagrangian
        mclp, target (one uncapacitated kind, no budget, fewest sites): bound
        the optimum by Lagrangian relaxation (and, for the target, the LP),
        find plans by greedy and swap search, leave out the candidates the
        bound rules out and fix in those it forces, then solve only what is
        left (:mod:`geoplan.optimize.exact`). Default: with ``reduce``.
        ``False`` solves the whole model with the solver alone.
    """

    model: str = "mclp"
    reduce: bool = True
    warm_start: bool = True
    refine: bool | None = None
    one_per_site: bool = False
    total_budget: float | None = None
    within_threshold: bool | None = None
    pmedian_cutoff_min: float | None = None
    minimize: str | None = None
    keep_groups: tuple[str, ...] | None = None
    lagrangian: bool | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise InputError(f"Unknown model {self.model!r}; use one of {', '.join(MODELS)}.")
        for name, models in _MODEL_ONLY.items():
            if getattr(self, name) is not None and self.model not in models:
                raise InputError(
                    f"{name} is not used by the {self.model} model (it applies to {', '.join(models)}); "
                    f"leave it out or choose one of those models (got {name}={getattr(self, name)!r})."
                )
        if self.lagrangian is not None and not isinstance(self.lagrangian, bool):
            raise InputError(f"lagrangian must be true or false, got {self.lagrangian!r}.")
        if self.minimize is not None and self.minimize not in ("count", "cost"):
            raise InputError(f"minimize must be 'count' or 'cost', got {self.minimize!r}.")
        if self.total_budget is not None and not (_is_number(self.total_budget) and self.total_budget >= 0):
            raise InputError(f"total_budget must be a number >= 0, got {self.total_budget!r}.")
        if self.pmedian_cutoff_min is not None and not (_is_number(self.pmedian_cutoff_min) and self.pmedian_cutoff_min > 0):
            raise InputError(f"pmedian_cutoff_min must be positive minutes, got {self.pmedian_cutoff_min!r}.")
        if self.keep_groups is not None:
            if isinstance(self.keep_groups, str) or not all(isinstance(g, str) for g in self.keep_groups) or not self.keep_groups:
                raise InputError(f"keep_groups must be a list of group names such as ['pop_60', 'pop_80'], got {self.keep_groups!r}.")
            object.__setattr__(self, "keep_groups", tuple(self.keep_groups))

    @property
    def refines(self) -> bool:
        return self.model in _MODEL_ONLY["refine"] and self.refine is not False

    @property
    def uses_lagrangian(self) -> bool:
        """Whether the Lagrangian bounds and fixing run before the solver (where the model allows them)."""
        if self.model not in _MODEL_ONLY["lagrangian"]:
            return False
        return bool(self.reduce) if self.lagrangian is None else bool(self.lagrangian)

    @property
    def minimize_by(self) -> str:
        return self.minimize or "count"

    @property
    def groups_kept(self) -> tuple[str, ...]:
        return self.keep_groups or ("pop_60", "pop_80")

    @property
    def assign_within_threshold(self) -> bool:
        return bool(self.within_threshold)

    def cutoff_min(self, specs: Sequence[KindSpec], thresholds_min: Sequence[float] = ()) -> float:
        """How far walking times must reach for these kinds (and report thresholds)."""
        longest = max([*(float(t) for t in thresholds_min), *(s.threshold_min for s in specs)])
        if self.model != "pmedian":
            return longest
        cutoff = self.pmedian_cutoff_min if self.pmedian_cutoff_min is not None else 2 * longest
        if cutoff < max(s.threshold_min for s in specs):
            raise InputError(f"pmedian_cutoff_min ({cutoff:g}) must be at least the longest threshold ({longest:g} min).")
        return float(cutoff)

    def check_kinds(self, specs: Sequence[KindSpec]) -> None:
        """Refuse kind options this model does not use, and missing ones it needs."""
        if not specs:
            raise InputError("Nothing to plan: give at least one kind (KindSpec).")
        kinds = [s.kind for s in specs]
        if len(set(kinds)) != len(kinds):
            raise InputError(f"Each kind can be planned once; got {kinds}.")
        if self.one_per_site and len(specs) < 2:
            raise InputError("one_per_site applies to several kinds planned together; with one kind, leave it out.")
        defaults = KindSpec()
        for spec in specs:
            for name, models in _KIND_ONLY.items():
                if getattr(spec, name) != getattr(defaults, name) and self.model not in models:
                    raise InputError(
                        f"{name} of the {spec.kind} is not used by the {self.model} model (it applies to "
                        f"{', '.join(models)}); leave it out or choose one of those models (got {name}={getattr(spec, name)!r})."
                    )
            if self.model in ("mclp", "pmedian") and spec.p is None and spec.budget is None:
                raise InputError(f"The {self.model} model needs p (how many new {spec.kind} sites) or a budget for the {spec.kind}.")
            if self.model == "target" and spec.target_pct is None:
                raise InputError(f"The target model needs target_pct for the {spec.kind} (e.g. 80 for 80 % of {spec.target_group}).")
            if self.model == "consolidate":
                if spec.min_catchment is None:
                    raise InputError(
                        f"Consolidation needs min_catchment for the {spec.kind}: existing sites with fewer "
                        f"{spec.target_group} people within {spec.threshold_min:g} min may close."
                    )
                if spec.capacitated:
                    raise InputError(f"Consolidation is uncapacitated; leave the {spec.kind} capacity unset.")
                if spec.budget is not None:
                    raise InputError(f"Consolidation does not use a budget for the {spec.kind}; give p (new sites it may open) instead.")

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["keep_groups"] is not None:
            data["keep_groups"] = list(data["keep_groups"])
        return data


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Which solver, and how long it may search.

    ``mip_gap`` is the relative gap at which to stop (0: proven optimal); a
    time limit returns the best plan found so far, labelled ``time_limit``.
    """

    solver: str = "highs"
    time_limit_s: float | None = 60.0
    mip_gap: float = 0.0
    threads: int | None = None

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise InputError(f"Unknown solver {self.solver!r}; use one of {', '.join(SOLVERS)}.")
        if self.time_limit_s is not None and not (_is_number(self.time_limit_s) and self.time_limit_s > 0):
            raise InputError(f"time_limit_s must be positive seconds (or None for no limit), got {self.time_limit_s!r}.")
        if not (_is_number(self.mip_gap) and 0 <= self.mip_gap < 1):
            raise InputError(f"mip_gap is a relative gap in [0, 1), got {self.mip_gap!r}.")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, numbers.Integral) or self.threads < 1):
            raise InputError(f"threads must be a whole number >= 1, got {self.threads!r}.")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def kind_specs(kinds: KindSpec | Sequence[KindSpec] | Mapping[str, Mapping[str, Any] | None]) -> tuple[KindSpec, ...]:
    """KindSpecs from one spec, a list of them, or a mapping kind -> options (unknown options refused)."""
    if isinstance(kinds, KindSpec):
        return (kinds,)
    if isinstance(kinds, Mapping):
        known = [f.name for f in dataclasses.fields(KindSpec) if f.name != "kind"]
        specs = []
        for name, options in kinds.items():
            options = dict(options or {})
            unknown = sorted(set(options) - set(known))
            if unknown:
                raise InputError(f"Unknown option(s) {unknown} for kind {name!r}; known: {known}.")
            specs.append(KindSpec(kind=name, **options))
        return tuple(specs)
    specs = tuple(kinds)
    for spec in specs:
        if not isinstance(spec, KindSpec):
            raise InputError(f"kinds must hold KindSpec objects (or be a mapping kind -> options), got {type(spec).__name__}.")
    return specs


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class PlanRequest:
    """A whole optimiser request: the kinds, the model options, the solver options and the priority weights.

    The form a scenario stores and a service receives; :meth:`from_dict`
    reads the plain JSON form (unknown keys refused) and :meth:`as_dict`
    writes it.

    >>> request = PlanRequest.from_dict({"model": "target", "kinds": [{"kind": "station", "target_pct": 80}]})
    >>> request.options.model, request.kinds[0].target_pct
    ('target', 80)
    """

    kinds: tuple[KindSpec, ...] = (KindSpec("station", p=5),)
    options: ModelOptions = ModelOptions()
    solver: SolverOptions = SolverOptions()
    weights: Mapping[str, float] | None = None

    def __post_init__(self):
        object.__setattr__(self, "kinds", kind_specs(self.kinds))
        self.options.check_kinds(self.kinds)
        if self.weights is not None:
            object.__setattr__(self, "weights", dict(self.weights))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PlanRequest":
        """A request from ``{"model": ..., "kinds": [{"kind": ..., ...}], <model options>, <solver options>, "weights": {...}}``."""
        data = {k: v for k, v in dict(data).items() if v is not None}
        model_keys = {f.name for f in dataclasses.fields(ModelOptions)}
        solver_keys = {f.name for f in dataclasses.fields(SolverOptions)}
        unknown = sorted(set(data) - model_keys - solver_keys - {"kinds", "weights"})
        if unknown:
            raise InputError(f"Unknown option(s) {unknown}; known: {sorted(model_keys | solver_keys | {'kinds', 'weights'})}.")
        kinds = []
        for item in data.get("kinds") or [{"kind": "station", "p": 5}]:
            item = {k: v for k, v in dict(item).items() if v is not None}
            kinds.append(item)
        by_kind = {}
        for item in kinds:
            name = item.pop("kind", "station")
            if name in by_kind:
                raise InputError(f"Each kind can be planned once; {name!r} is given twice.")
            by_kind[name] = item
        return cls(
            kinds=kind_specs(by_kind),
            options=ModelOptions(**{k: v for k, v in data.items() if k in model_keys}),
            solver=SolverOptions(**{k: v for k, v in data.items() if k in solver_keys}),
            weights=data.get("weights") or None,
        )

    def as_dict(self) -> dict[str, Any]:
        options = {k: v for k, v in self.options.as_dict().items() if v is not None}
        return {**options, **self.solver.as_dict(), "kinds": [s.as_dict() for s in self.kinds], "weights": self.weights}
