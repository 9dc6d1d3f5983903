"""The result of an optimisation: one immutable :class:`Plan`, and its GeoJSON, GeoPackage and Excel files."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan import _files
from geoplan.coverage import catchments, coverage_summary
from geoplan.tiers import KIND_NAMES
from geoplan.optimize.solve import SolvedBy, SolverStats

log = logging.getLogger(__name__)

STATUS_ZH = {"new": "新建", "existing": "现有", "closed": "建议关闭"}
KIND_ZH = {kind: names[0] for kind, names in KIND_NAMES.items()}
GROUP_ZH = {"pop_total": "总人口", "pop_60": "60岁以上", "pop_65": "65岁以上", "pop_80": "80岁以上"}
MODEL_ZH = {"mclp": "最大覆盖", "target": "目标覆盖（最少站点）", "pmedian": "p-中位（最短步行）", "consolidate": "整合（关闭小站）"}

_HEADERS_ZH = {
    "site_id": "站点编号",
    "kind": "类型",
    "status": "状态",
    "name": "名称",
    "lon": "经度(WGS84)",
    "lat": "纬度(WGS84)",
    "lon_gcj02": "经度(GCJ-02高德)",
    "lat_gcj02": "纬度(GCJ-02高德)",
    "cost": "成本",
    "capacity": "容量",
    "phase": "建设顺序",
    "gain_weighted": "新增覆盖(加权老人)",
    "gain_time_saved_s": "节省步行时间(加权人·秒)",
    "reason": "原因",
    "group": "人群",
    "threshold_min": "步行时间(分钟)",
    "population": "人口",
    "before": "规划前覆盖人数",
    "after": "规划后覆盖人数",
    "gain": "新增覆盖人数",
    "before_pct": "规划前覆盖率%",
    "after_pct": "规划后覆盖率%",
    "item": "项目",
    "value": "值",
}


@dataclasses.dataclass(frozen=True)
class Plan(SolvedBy):
    """A site plan: which sites to open (and close), what each adds, coverage before and after, how it was solved.

    A Plan is an immutable value: its attributes hand out copies (changing
    ``plan.sites`` changes the copy, never the plan). Build one with
    :func:`~geoplan.optimize.recommend` or :func:`make_plan`.

    Attributes
    ----------
    region
        The region key (e.g. ``wuchang``).
    model
        ``mclp``, ``target``, ``pmedian`` or ``consolidate``.
    parameters
        Every option the plan was made with (JSON-serialisable).
    sites
        Indexed by ``site_id``: ``kind``, ``status`` (``new``/``existing``/
        ``closed``), ``name``, ``lon``/``lat`` (WGS84), ``cost``, ``capacity``,
        ``phase`` (build order of new sites), ``gain_weighted`` and
        ``gain_<group>`` (people newly within the walk that this site adds
        given the sites before it), ``catchment_<group>`` (people within the
        kind's threshold of the site, overlapping), ``served_<group>`` (people
        assigned, capacitated and p-median plans), ``reason`` (closed sites),
        geometry in the region's CRS. A candidate that takes both a station
        and a canteen appears once per kind.
    coverage
        Indexed by (``kind``, ``group``, ``threshold_min``): ``population``,
        ``before``, ``after``, ``gain`` (people) and ``before_pct``/``after_pct``.
    solver
        :class:`~geoplan.optimize.solve.SolverStats` of the main solve.
    stages
        Every solve (the main one, and the refining one of target/consolidation).
    reductions
        Per kind, the model sizes before and after each reduction.
    newly_covered
        Demand cells within the walk after the plan but not before, per kind
        (people per group; cell squares in the region's CRS): for the map.
    assignment
        Capacitated and p-median plans: ``demand_id``, ``site_id``, ``kind``,
        ``share`` (the part of the cell's people served there).
    """

    region: str
    model: str
    parameters_json: str
    site_table: gpd.GeoDataFrame = dataclasses.field(repr=False)
    coverage_table: pd.DataFrame = dataclasses.field(repr=False)
    solver: SolverStats
    stages: tuple[SolverStats, ...]
    reductions_json: str = dataclasses.field(repr=False)
    newly_covered_table: gpd.GeoDataFrame = dataclasses.field(repr=False)
    assignment_table: pd.DataFrame | None = dataclasses.field(default=None, repr=False)

    # a Plan is a value: every frame or mapping it hands out is a fresh copy, so no caller can change it
    @property
    def parameters(self) -> dict[str, Any]:
        return json.loads(self.parameters_json)

    @property
    def reductions(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.reductions_json)

    @property
    def sites(self) -> gpd.GeoDataFrame:
        return self.site_table.copy()

    @property
    def coverage(self) -> pd.DataFrame:
        return self.coverage_table.copy()

    @property
    def newly_covered(self) -> gpd.GeoDataFrame:
        return self.newly_covered_table.copy()

    @property
    def assignment(self) -> pd.DataFrame | None:
        return None if self.assignment_table is None else self.assignment_table.copy()

    @property
    def new_sites(self) -> gpd.GeoDataFrame:
        """The sites to build, in phase order."""
        sites = self.site_table
        return sites[sites["status"] == "new"].sort_values("phase").copy()

    @property
    def closed_sites(self) -> gpd.GeoDataFrame:
        sites = self.site_table
        return sites[sites["status"] == "closed"].copy()

    def summary(self) -> pd.DataFrame:
        """Key figures as one table (``item``, ``value``): the model, solver stats, sites and coverage."""
        s = self.solver
        items: list[tuple[str, Any]] = [
            ("region 区域", self.region),
            ("model 模型", f"{self.model} {MODEL_ZH.get(self.model, '')}"),
            ("solver 求解器", s.solver),
            ("status 状态", s.status + ("" if s.optimal else " (NOT proven optimal 未证明最优)")),
            ("objective 目标值", s.objective),
            ("best bound 最优界", s.bound),
            ("relative gap 相对差距", s.gap),
            ("solve time s 求解时间(秒)", round(s.solve_s, 3)),
            ("build time s 建模时间(秒)", round(s.build_s, 3)),
        ]
        sites = self.site_table
        for kind in dict.fromkeys(sites["kind"]):
            of_kind = sites[sites["kind"] == kind]
            for status in ("new", "existing", "closed"):
                count = int((of_kind["status"] == status).sum())
                if count or status == "new":
                    items.append((f"{kind} {status} {KIND_ZH.get(kind, '')}{STATUS_ZH[status]}", count))
        parameters = self.parameters
        for (kind, group, threshold), row in self.coverage_table.iterrows():
            if threshold == parameters.get("thresholds", {}).get(kind):
                items.append((
                    f"{kind} {group} within {threshold:g} min {GROUP_ZH.get(group, group)}{threshold:g}分钟覆盖率",
                    f"{row['before_pct']:.1f} % -> {row['after_pct']:.1f} % (+{row['gain']:,.0f})",
                ))
        for key, value in parameters.items():
            if key not in ("kinds", "thresholds"):
                items.append((f"parameter {key}", json.dumps(value, ensure_ascii=False, default=str)))
        for spec in parameters.get("kinds", []):
            items.append((f"parameter kind {spec['kind']}", json.dumps(spec, ensure_ascii=False, default=str)))
        return pd.DataFrame(items, columns=["item", "value"])

    def to_dict(self) -> dict:
        """A JSON-serialisable view (for an API response)."""
        sites = self.sites.drop(columns="geometry").reset_index()
        return {
            "region": self.region,
            "model": self.model,
            "parameters": self.parameters,
            "solver": self.solver.as_dict(),
            "stages": [s.as_dict() for s in self.stages],
            "sites": json.loads(sites.to_json(orient="records", force_ascii=False)),
            "coverage": json.loads(self.coverage.reset_index().to_json(orient="records", force_ascii=False)),
            "reductions": self.reductions,
        }

    def to_geojson(self, path: str | Path) -> Path:
        """The sites as GeoJSON points in WGS84 (written atomically)."""
        path = Path(path)
        layer = _plain(self.sites).to_crs(4326)
        with _files.atomic_gdal_file(path) as tmp:
            layer.reset_index().to_file(tmp, driver="GeoJSON")
        return path

    def to_gpkg(self, path: str | Path) -> Path:
        """A GeoPackage with layers ``sites``, ``newly_covered``, and tables ``coverage`` and ``summary``."""
        import pyogrio

        path = Path(path)
        with _files.atomic_gdal_file(path) as tmp:
            _plain(self.sites).reset_index().to_file(tmp, layer="sites", driver="GPKG")
            if len(self.newly_covered):
                _plain(self.newly_covered).reset_index().to_file(tmp, layer="newly_covered", driver="GPKG")
            pyogrio.write_dataframe(self.coverage.reset_index(), tmp, layer="coverage", driver="GPKG")
            summary = self.summary().astype({"value": str})
            pyogrio.write_dataframe(summary, tmp, layer="summary", driver="GPKG")
        return path

    def to_xlsx(self, path: str | Path) -> Path:
        """An Excel workbook a planner can hand in: sheets summary, sites, coverage; Chinese and English headers."""
        path = Path(path)
        sites = self.sites.drop(columns="geometry").reset_index()
        sites["kind"] = [f"{KIND_ZH.get(k, k)} {k}" for k in sites["kind"]]
        sites["status"] = [f"{STATUS_ZH.get(s, s)} {s}" for s in sites["status"]]
        coverage = self.coverage.reset_index()
        coverage["group"] = [f"{GROUP_ZH.get(g, g)} {g}" for g in coverage["group"]]
        coverage["kind"] = [f"{KIND_ZH.get(k, k)} {k}" for k in coverage["kind"]]
        summary = self.summary()
        summary["value"] = summary["value"].map(lambda v: v if isinstance(v, (int, float, str)) or v is None else str(v))
        sheets = {"summary 摘要": summary, "sites 站点": sites, "coverage 覆盖": coverage}
        return _files.write_workbook(path, {name: bilingual(frame) for name, frame in sheets.items()})


#: The Chinese put before a group's column name after each prefix (``gain_pop_60``: 新增60岁及以上).
_PREFIXES_ZH = {
    prefix: (lambda group, zh=zh: f"{zh}{GROUP_ZH.get(group, group)}")
    for prefix, zh in (("gain_", "新增"), ("catchment_", "服务范围内"), ("served_", "实际服务"))
}


def bilingual(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={c: _files.bilingual_header(c, _HEADERS_ZH, _PREFIXES_ZH) for c in frame.columns})


def _plain(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns GDAL can write: other geometry columns dropped, objects as text."""
    extra = [c for c in frame.columns if c != frame.geometry.name and isinstance(frame[c].dtype, gpd.array.GeometryDtype)]
    frame = frame.drop(columns=extra)
    for column in frame.columns:
        if column != frame.geometry.name and frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return frame


def make_plan(
    problem,
    outcome,
    *,
    region_key: str,
    crs,
    demand_cells: gpd.GeoSeries | None,
    thresholds_min: tuple[float, ...],
    parameters: Mapping[str, Any],
    phasing: pd.DataFrame,
    closable_reason: Mapping[str, Mapping[int, str]] | None = None,
) -> Plan:
    """Assemble a :class:`Plan` from a problem, a solved outcome and its phasing."""
    sites = problem.sites
    people = problem.people
    groups = list(people.columns)
    P = people.to_numpy(dtype=float)
    rows = []
    geometry = sites["geometry"] if "geometry" in sites else pd.Series([None] * len(sites), index=sites.index)
    phase = phasing.set_index(["kind", "site_pos"]) if len(phasing) else None

    catchment_tables: dict[float, np.ndarray] = {}

    def catchment(pos: int, threshold_s: float) -> np.ndarray:
        if threshold_s not in catchment_tables:
            catchment_tables[threshold_s] = catchments(people, problem.reach, threshold_min=threshold_s / 60).to_numpy()
        return catchment_tables[threshold_s][pos]

    served = {}
    if outcome.assignment:
        for kind, (d, s, share) in outcome.assignment.items():
            frame = pd.DataFrame(P[d] * share[:, None], columns=groups)
            frame["site_pos"] = s
            served[kind] = frame.groupby("site_pos")[groups].sum()

    def row_for(pos: int, kind: str, status: str, threshold_s: float) -> dict:
        row = {
            "site_id": sites.index[pos],
            "kind": kind,
            "status": status,
            "name": sites["name"].iloc[pos] if "name" in sites else str(sites.index[pos]),
            "cost": float(sites["cost"].iloc[pos]),
            "capacity": _finite(problem.capacity_of(kind, np.array([pos]))[0] if kind in problem.kinds else sites["capacity"].iloc[pos]),
            "geometry": geometry.iloc[pos],
        }
        if phase is not None and (kind, pos) in phase.index and status == "new":
            row.update(phase.loc[(kind, pos)].to_dict())
        row.update({f"catchment_{g}": v for g, v in zip(groups, catchment(pos, threshold_s))})
        if kind in served:
            got = served[kind].loc[pos] if pos in served[kind].index else pd.Series(0.0, index=groups)
            row.update({f"served_{g}": float(got[g]) for g in groups})
        return row

    listed_existing = set()
    for kind in problem.kinds:
        tau = problem.spec(kind).threshold_s
        for pos in outcome.opened.get(kind, []):
            rows.append(row_for(int(pos), kind, "new", tau))
        for pos in outcome.closed.get(kind, []):
            row = row_for(int(pos), kind, "closed", tau)
            row["reason"] = (closable_reason or {}).get(kind, {}).get(int(pos), "")
            rows.append(row)
            listed_existing.add(int(pos))
    existing = np.flatnonzero(sites["status"].to_numpy() == "existing")
    for pos in existing:
        if int(pos) in listed_existing:
            continue
        own = sites["kind"].iloc[pos]
        serving = [k for k in problem.kinds if int(pos) in set(problem.existing_for(k))]
        tau = problem.spec(serving[0]).threshold_s if serving else max(s.threshold_s for s in problem.specs)
        rows.append(row_for(int(pos), own, "existing", tau))
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=["site_id", "kind", "status", "name", "cost", "capacity", "geometry"])
    # a plan that opens nothing has no phasing: its table still has the column, so that new_sites is empty, not a KeyError
    table["phase"] = table["phase"].astype("Int64") if "phase" in table else pd.Series(pd.NA, index=table.index, dtype="Int64")
    frame = gpd.GeoDataFrame(table.drop(columns="geometry"), geometry=list(table["geometry"]), crs=crs).set_index("site_id")
    if len(frame) and frame.geometry.notna().all():
        ll = frame.geometry.to_crs(4326)
        frame.insert(3, "lon", ll.x.round(6))
        frame.insert(4, "lat", ll.y.round(6))
        from geoplan.coords import from_wgs84

        gx, gy = from_wgs84(ll.x.to_numpy(), ll.y.to_numpy(), "gcj02")
        frame.insert(5, "lon_gcj02", np.round(gx, 6))
        frame.insert(6, "lat_gcj02", np.round(gy, 6))
    order = {"new": 0, "closed": 1, "existing": 2}
    if len(frame):
        frame = frame.assign(_o=frame["status"].map(order), _p=frame.get("phase", pd.Series(0, index=frame.index)).fillna(0)).sort_values(["_o", "_p"]).drop(columns=["_o", "_p"])

    coverage, newly = _coverage(problem, outcome, thresholds_min, demand_cells, crs)
    return Plan(
        region=region_key,
        model=outcome.model,
        parameters_json=_json(parameters),
        site_table=frame,
        coverage_table=coverage,
        solver=outcome.main,
        stages=outcome.stats,
        reductions_json=_json(outcome.reductions),
        newly_covered_table=newly,
        assignment_table=_assignment_frame(problem, outcome),
    )


def _finite(value) -> float:
    """A capacity as a number, NaN for none (uncapacitated)."""
    value = float(value)
    return value if np.isfinite(value) else np.nan


def _json(value) -> str:
    """Plain JSON text of parameters or sizes (numpy numbers unwrapped, tuples as lists)."""
    def plain(v):
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.floating):
            return float(v)
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.ndarray):
            return v.tolist()
        return str(v)

    return json.dumps(value, default=plain, ensure_ascii=False, sort_keys=True)


def _coverage(problem, outcome, thresholds_min, demand_cells, crs) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """Coverage before and after per kind, group and threshold (one path: :func:`geoplan.coverage.coverage_summary`)."""
    people = problem.people
    groups = list(people.columns)
    rows, newly = [], []
    for spec in problem.specs:
        kind = spec.kind
        before_sites = problem.existing_for(kind)
        after_sites = np.r_[outcome.kept.get(kind, []), outcome.opened.get(kind, [])].astype(np.int64)
        thresholds = tuple(sorted({float(t) for t in thresholds_min} | {float(spec.threshold_min)}))
        before = coverage_summary(people, problem.reach.select(before_sites), thresholds_min=thresholds)
        after = coverage_summary(people, problem.reach.select(after_sites), thresholds_min=thresholds)
        for threshold in thresholds:
            for group in groups:
                total = before.loc[(group, threshold), "population"]
                b, a = before.loc[(group, threshold), "covered"], after.loc[(group, threshold), "covered"]
                rows.append({
                    "kind": kind, "group": group, "threshold_min": threshold, "population": total,
                    "before": b, "after": a, "gain": a - b,
                    "before_pct": 100 * b / total if total else np.nan,
                    "after_pct": 100 * a / total if total else np.nan,
                })
        gained = problem.reach.covered(spec.threshold_s, after_sites) & ~problem.reach.covered(spec.threshold_s, before_sites)
        if gained.any():
            cells = pd.DataFrame(people.to_numpy(dtype=float)[gained], columns=groups, index=people.index[gained])
            cells["kind"] = kind
            cells["weight"] = problem.weight[gained]
            geometry = demand_cells.loc[cells.index] if demand_cells is not None else gpd.GeoSeries([None] * len(cells), crs=crs)
            newly.append(gpd.GeoDataFrame(cells, geometry=list(geometry), crs=crs))
    coverage = pd.DataFrame(rows).set_index(["kind", "group", "threshold_min"])
    if newly:
        newly_frame = pd.concat(newly)
    else:
        newly_frame = gpd.GeoDataFrame({**{g: [] for g in groups}, "kind": [], "weight": []}, geometry=[], crs=crs)
    newly_frame.index.name = "demand_id"
    return coverage, gpd.GeoDataFrame(newly_frame, geometry="geometry", crs=crs)


def _assignment_frame(problem, outcome) -> pd.DataFrame | None:
    if not outcome.assignment:
        return None
    parts = []
    for kind, (d, s, share) in outcome.assignment.items():
        parts.append(pd.DataFrame({
            "demand_id": problem.people.index.to_numpy()[d],
            "site_id": problem.sites.index.to_numpy()[s],
            "kind": kind,
            "share": share,
        }))
    return pd.concat(parts, ignore_index=True)
