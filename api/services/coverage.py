"""A coverage report prepared for fast queries: gap cells per group, threshold and bounding box.

Building the index serialises every populated cell once (WGS84 GeoJSON with its
people and its walk to the nearest site); a query is then a few numpy masks
over the cells and a join of ready-made feature strings, with no pandas, no
shapely and no JSON encoding on the request path.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import shapely

from geoplan.analysis import CoverageReport
from geoplan.errors import InputError
from geoplan.reach import within_time

from api.services.geojson import geometry_json, plain


@dataclasses.dataclass(frozen=True)
class GapQuery:
    group: str
    threshold_min: float
    bbox: tuple[float, float, float, float] | None
    limit: int
    min_people: float = 0.0


@dataclasses.dataclass(frozen=True)
class CoverageIndex:
    """One coverage report with its cells ready to be filtered and sent."""

    report: CoverageReport
    groups: tuple[str, ...]
    thresholds_min: tuple[float, ...]
    cutoff_min: float
    nearest_s: np.ndarray
    people: dict[str, np.ndarray]
    order: dict[str, np.ndarray]
    bounds: np.ndarray
    features: np.ndarray
    summary_rows: tuple[dict, ...]
    _uncovered: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, report: CoverageReport) -> "CoverageIndex":
        region = report.region
        demand = region.demand
        groups = tuple(region.groups)
        nearest = report.nearest_time_s.reindex(demand.index).to_numpy(dtype=float)
        cells = demand["cell"] if "cell" in demand else demand.geometry
        cells = cells.set_crs(demand.crs, allow_override=True).to_crs(4326) if hasattr(cells, "to_crs") else cells
        geoms = cells.to_numpy()
        bounds = shapely.bounds(geoms)
        geometry = geometry_json(geoms)
        on_foot = demand["edge_id"].to_numpy() >= 0 if "edge_id" in demand else np.ones(len(demand), bool)
        unit = demand["unit_id"].to_numpy() if "unit_id" in demand else np.full(len(demand), -1)
        people = {g: demand[g].to_numpy(dtype=float) for g in groups}
        features = np.empty(len(demand), dtype=object)
        for i, demand_id in enumerate(demand.index):
            props = {"demand_id": plain(demand_id), "unit_id": plain(unit[i]) if unit[i] >= 0 else None}
            props.update({g: round(float(people[g][i]), 2) for g in groups})
            props["nearest_time_min"] = round(nearest[i] / 60, 2) if np.isfinite(nearest[i]) else None
            props["on_foot"] = bool(on_foot[i])
            features[i] = f'{{"type":"Feature","geometry":{geometry[i]},"properties":{json.dumps(props, ensure_ascii=False)}}}'.encode()
        order = {g: np.argsort(-people[g], kind="stable") for g in groups}
        summary = report.summary.reset_index()
        rows = tuple({k: plain(v) for k, v in r.items()} for r in summary.to_dict(orient="records"))
        return cls(
            report=report,
            groups=groups,
            thresholds_min=tuple(float(t) for t in report.summary.index.get_level_values("threshold_min").unique()),
            cutoff_min=float(report.reach.cutoff_s) / 60,
            nearest_s=nearest,
            people=people,
            order=order,
            bounds=bounds,
            features=features,
            summary_rows=rows,
        )

    def check(self, *, group: str | None = None, threshold_min: float | None = None) -> None:
        """An InputError that says what to ask instead, for a group or threshold this index cannot answer."""
        if group is not None and group not in self.groups:
            raise InputError(f"Unknown population group {group!r}; use one of {', '.join(self.groups)}.")
        if threshold_min is not None and not (threshold_min > 0 and within_time(threshold_min * 60, self.cutoff_min * 60)):
            raise InputError(
                f"threshold_min must be more than 0 and at most {self.cutoff_min:g} minutes "
                f"(walks are computed up to {self.cutoff_min:g}); got {threshold_min:g}."
            )

    def summary(self, *, group: str | None = None, threshold_min: float | None = None) -> list[dict]:
        self.check(group=group, threshold_min=threshold_min)
        rows = self.summary_rows
        if group is not None:
            rows = tuple(r for r in rows if r["group"] == group)
        if threshold_min is not None:
            if threshold_min in self.thresholds_min:
                rows = tuple(r for r in rows if r["threshold_min"] == threshold_min)
            else:
                rows = tuple(self._summary_at(g, threshold_min) for g in ([group] if group else self.groups))
        return list(rows)

    def _summary_at(self, group: str, threshold_min: float) -> dict:
        people = self.people[group]
        total = float(people.sum())
        covered = float(people[within_time(self.nearest_s, threshold_min * 60)].sum())
        unreachable = next((r["not_reachable_on_foot"] for r in self.summary_rows if r["group"] == group), None)
        label = next((r["label"] for r in self.summary_rows if r["group"] == group), group)
        return {
            "group": group, "threshold_min": threshold_min, "label": label, "population": round(total, 4),
            "covered": round(covered, 4), "not_covered": round(total - covered, 4),
            "covered_pct": round(100 * covered / total, 4) if total else None, "not_reachable_on_foot": unreachable,
        }

    def uncovered(self, group: str, threshold_min: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the cells with people of ``group`` beyond ``threshold_min``, most people first, and their bounds.

        Kept per (group, threshold), so a query only filters these by bbox.
        """
        key = (group, float(threshold_min))
        found = self._uncovered.get(key)
        if found is None:
            people = self.people[group]
            order = self.order[group]
            mask = ~within_time(self.nearest_s, threshold_min * 60) & (people > 0)
            chosen = order[mask[order]]
            found = (chosen, np.ascontiguousarray(self.bounds[chosen]))
            if len(self._uncovered) < 64:
                self._uncovered[key] = found
        return found

    def gaps(self, query: GapQuery) -> tuple[bytes, int, int, float]:
        """GeoJSON features of the uncovered cells (most people of ``group`` first).

        Returns the joined features, how many cells match, how many were
        returned (at most ``limit``) and the ``group`` people in all matching cells.
        """
        self.check(group=query.group, threshold_min=query.threshold_min)
        people = self.people[query.group]
        chosen, bounds = self.uncovered(query.group, query.threshold_min)
        keep = None
        if query.min_people > 0:
            keep = people[chosen] > query.min_people
        if query.bbox is not None:
            minx, miny, maxx, maxy = query.bbox
            inside = (bounds[:, 2] >= minx) & (bounds[:, 0] <= maxx) & (bounds[:, 3] >= miny) & (bounds[:, 1] <= maxy)
            keep = inside if keep is None else keep & inside
        if keep is not None:
            chosen = chosen[keep]
        total = len(chosen)
        uncovered = float(people[chosen].sum())
        chosen = chosen[: query.limit]
        return b",".join(self.features[chosen]), total, len(chosen), uncovered
