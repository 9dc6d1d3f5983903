"""The optimiser's own errors: a target out of reach, and a solver that gave no usable answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from geoplan.errors import GeoplanError, InfeasibleError

if TYPE_CHECKING:
    from geoplan.optimize.options import KindSpec


class SolverError(GeoplanError):
    """The solver stopped without a usable solution (time limit too short, a solver failure, or an answer that fails its checks)."""


class TargetUnreachable(InfeasibleError):
    """A coverage target beyond what every candidate together reaches; ``best_pct`` says what can be reached."""

    def __init__(self, spec: "KindSpec", *, target: float, best: float, total: float):
        self.spec = spec
        self.target_people = target
        self.best_people = best
        self.total = total
        self.best_pct = 100.0 * best / total if total else 0.0
        self.plan = None
        super().__init__(self._message())

    def _message(self, sites: Sequence[str] | None = None) -> str:
        spec = self.spec
        text = (
            f"The target of {spec.target_pct:g} % of {spec.target_group} within {spec.threshold_min:g} min for "
            f"{spec.kind}s cannot be reached: with every candidate and existing site open, at most "
            f"{self.best_pct:.1f} % ({self.best_people:,.0f} of {self.total:,.0f}) are within reach."
        )
        if sites is not None:
            shown = ", ".join(map(str, list(sites)[:15])) + (f" and {len(sites) - 15} more" if len(sites) > 15 else "")
            text += f" The fewest new sites that reach {self.best_pct:.1f} % are {len(sites)}: {shown} (the plan is in .plan)."
        return text + " Lower target_pct, add candidate sites, or raise the threshold."

    def with_plan(self, plan, sites: Sequence[str]) -> "TargetUnreachable":
        self.plan = plan
        self.args = (self._message(sites),)
        return self


class RequirementsUnreachable(InfeasibleError):
    """Requirements no plan can meet, even with every candidate open.

    ``unreachable`` lists ``(requirement id, best achievable value)``, the
    value in the requirement's own terms (% of units, % of people, the sum or
    the rate, % of units meeting a per-unit amount, % share).
    """

    def __init__(self, unreachable: Sequence[tuple[str, float]], lines: Sequence[str]):
        self.unreachable = tuple(unreachable)
        super().__init__(
            f"{len(lines)} requirement(s) cannot be met even with every candidate open: " + "; ".join(lines)
            + ". Add candidate sites where they are missing (e.g. geoplan.candidates_from_network(region.network, "
            "region.boundary, spacing_m=200)), allow more kinds to be built (build=...), give new facilities larger "
            "attributes (new_attributes=...), or lower the target."
        )
