"""The review of a district against a plan's targets: a frozen value with its tables, layers and files.

A :class:`Review` holds a summary (one row per indicator: value, target,
pass/fail, source), a table per street (or approximate zone) and per
community with each unit's figures and pass/fail, the facilities with their
units and catchments, and the consolidation review. It writes an XLSX
workbook with Chinese and English headers (a summary sheet, the unit sheets,
one sheet per tier), GeoJSON and a GeoPackage of the units with pass/fail.
Streets built from communities are labelled "approximate zone, not a street"
in every table, sheet and layer.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan import _files
from geoplan.targets.indicators import OUTSIDE
from geoplan.targets.presets import INDICATORS, TargetSet
from geoplan.tiers import KIND_NAMES, KINDS

#: How a pass/fail cell reads in sheets and layers.
PASS_TEXT = {True: "达标 pass", False: "未达标 fail", None: "无法判断 not judged"}

_HEADERS_ZH = {
    "id": "编号", "indicator": "指标", "indicator_name": "指标名称", "tier": "设施层级", "level": "单元层级", "value": "数值",
    "unit": "单位", "target": "目标", "min": "目标值", "pass": "是否达标", "status": "状态", "detail": "说明",
    "failing_units": "未达标单元", "n_failing_units": "未达标单元数", "plan": "规划", "section": "章节", "clause": "条款(引文)",
    "quote_zh": "原文", "note": "备注", "source": "来源", "name": "名称", "unit_type": "单元类型", "street_code": "街道(片区)代码",
    "community_code": "社区代码", "pop_total": "常住人口", "pop_60": "60岁以上", "pop_80": "80岁以上", "households": "户数",
    "passes": "全部达标", "failing": "未达标指标", "kind": "类型", "status_site": "状态", "catchment": "服务范围内人数",
    "catchment_pop_60": "服务范围内60岁以上", "catchment_pop_80": "服务范围内80岁以上", "group": "人群",
    "threshold_min": "步行时间(分钟)", "merge_into": "并入设施", "merge_into_name": "并入设施名称", "merge_walk_min": "步行距离(分钟)",
    "spare_capacity": "剩余容量", "lose_pop_60": "失去覆盖60岁以上", "lose_pop_80": "失去覆盖80岁以上", "can_merge": "可撤并",
    "reason": "原因", "site_id": "设施编号", "lon": "经度(WGS84)", "lat": "纬度(WGS84)", "capacity": "容量", "cost": "成本",
    "floor_area_m2": "建筑面积(平方米)", "land_m2": "用地面积(平方米)", "beds": "床位", "nursing_beds": "护理型床位",
    "meals_per_day": "日供餐能力(份)", "unit_from": "单元依据", "item": "项目",
}


@dataclasses.dataclass(frozen=True)
class Review:
    """A district reviewed against a plan's targets.

    Attributes
    ----------
    region
        The :class:`~geoplan.region.Region` reviewed.
    targets
        The :class:`~geoplan.targets.presets.TargetSet` it was judged against.
    summary
        One row per target of the file, then the standard indicators the file
        sets no target for (``source`` says which): ``value`` in ``unit``,
        ``target``, ``pass`` (True/False/None: not judged), ``status`` (``ok``,
        ``no data (column X missing)``...), ``detail``, the units failing,
        and the ``plan``, ``section`` and ``clause`` it comes from.
    streets, communities
        One row per unit, indexed by its code, with :data:`OUTSIDE` (people
        outside every unit) last: name, people, households, facilities per
        kind, each indicator's figure (column named by its id), ``pass_<id>``,
        ``passes`` and ``failing``.
    facilities
        The facilities reviewed with their ``street_code``, ``community_code``
        (where each lies, or the list's own codes) and catchments.
    consolidation
        Under-used facilities: the facility each would merge into and who would
        lose coverage (:func:`geoplan.targets.consolidation.review_consolidation`).
    street_geometry, community_geometry
        The unit polygons (indexed by code), for layers and maps.
    units, demand_units
        The planning units and the units of each demand point.
    approximate, street_label, units_source
        Whether the street units are approximate zones built from communities,
        what a street unit is called everywhere, and where the units came from.
    household_size, household_source
        People per household (户规模) and where the figure comes from.
    missing_attributes
        Facility attributes the list has no column for.
    """

    region: Any
    targets: TargetSet
    summary: pd.DataFrame
    streets: pd.DataFrame
    communities: pd.DataFrame
    facilities: gpd.GeoDataFrame
    consolidation: pd.DataFrame
    street_geometry: gpd.GeoDataFrame
    community_geometry: gpd.GeoDataFrame
    units: Any
    demand_units: pd.DataFrame
    reach: Any
    approximate: bool
    street_label: str
    units_source: str
    household_size: float
    household_source: str
    missing_attributes: tuple[str, ...]

    # --- answers ------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return f"{self.region.key}_{self.targets.key}"

    @property
    def passed(self) -> bool | None:
        """False when a target fails, True when every target of the file is judged and passes, None when one cannot be judged."""
        judged_ids = [t.id for t in self.targets.targets if t.min is not None]  # targets with a figure to meet
        verdicts = [self.summary.at[i, "pass"] for i in judged_ids]
        judged = [v for v in verdicts if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if any(v is False for v in judged):
            return False
        if not judged or len(judged) < len(verdicts):
            return None  # no data for some target: the district cannot be said to pass
        return True

    def failing(self) -> pd.DataFrame:
        """The summary rows of the targets that fail."""
        return self.summary[self.summary["pass"].map(lambda v: v is False)]

    def failing_units(self, level: str = "street") -> pd.DataFrame:
        """The units (``street`` or ``community``) that fail at least one target, with the targets they fail."""
        table = self.streets if level == "street" else self.communities
        return table[table["passes"].map(lambda v: v is False)]

    def to_dict(self) -> dict:
        """The review as plain data (JSON, the API): the summary, per-unit pass/fail, consolidation and context."""
        def records(frame: pd.DataFrame, index_name: str) -> list[dict]:
            return [{index_name: str(i), **{k: json_scalar(v) for k, v in row.items()}} for i, row in frame.iterrows()]

        unit_columns = lambda t: [c for c in t.columns if c in ("name", "unit_type", "street_code", "pop_total", "pop_60", "pop_80",
                                                                "households", "passes", "failing") or c.startswith("n_")]
        return {
            "region": self.region.key,
            "targets": {"key": self.targets.key, "name": self.targets.name, "place": self.targets.place,
                        "horizon": self.targets.horizon, "source": self.targets.source},
            "units": {"source": self.units_source, "approximate": self.approximate, "street_label": self.street_label,
                      "streets": int(len(self.streets) - 1), "communities": int(len(self.communities) - 1)},
            "household_size": self.household_size,
            "household_source": self.household_source,
            "facilities": int(len(self.facilities)),
            "facilities_by_kind": {k: int((self.facilities["kind"] == k).sum()) for k in KINDS},
            "missing_attributes": list(self.missing_attributes),
            "passed": self.passed,
            "summary": records(self.summary, "id"),
            "streets": records(self.streets[unit_columns(self.streets)], "street_code"),
            "communities": records(self.communities[unit_columns(self.communities)], "community_code"),
            "consolidation": records(self.consolidation, "site_id"),
        }

    # --- files --------------------------------------------------------------------------
    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the workbook, the GeoPackage, one GeoJSON per unit level and the summary JSON into ``out_dir``."""
        out_dir = Path(out_dir)
        stem = f"{self.key}_review"
        written = {
            "xlsx": self.to_xlsx(out_dir / f"{stem}.xlsx"),
            "gpkg": self.to_gpkg(out_dir / f"{stem}.gpkg"),
        }
        written.update(self.to_geojson(out_dir, stem=stem))
        path = out_dir / f"{stem}.json"
        with _files.atomic_file(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        written["json"] = path
        return written

    def unit_layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The unit polygons with their figures and pass/fail, in the region's CRS, by layer name.

        The street layer is called ``approximate_zones`` when the streets are
        approximate zones built from communities.
        """
        layers = {}
        for name, table, geometry in (
            ("approximate_zones" if self.approximate else "streets", self.streets, self.street_geometry),
            ("communities", self.communities, self.community_geometry),
        ):
            frame = sheet_values(table.drop(index=OUTSIDE, errors="ignore"))
            geom = geometry.geometry.copy()
            geom.index = geom.index.astype(str)
            layers[name] = gpd.GeoDataFrame(frame, geometry=geom.reindex(frame.index).to_numpy(), crs=geometry.crs)
        return layers

    def to_gpkg(self, path: str | Path) -> Path:
        """A GeoPackage with the unit layers (pass/fail), the facilities and the summary table."""
        path = Path(path)
        with _files.atomic_gdal_file(path) as tmp:
            for name, layer in self.unit_layers().items():
                _gdal_ready(layer.reset_index()).to_file(tmp, layer=name, driver="GPKG")
            if len(self.facilities):
                _gdal_ready(sheet_values(self.facilities).reset_index()).to_file(tmp, layer="facilities", driver="GPKG")
            import pyogrio

            pyogrio.write_dataframe(sheet_values(self.summary).reset_index().astype(str), tmp, layer="summary", driver="GPKG")
        return path

    def to_geojson(self, out_dir: str | Path, *, stem: str | None = None) -> dict[str, Path]:
        """One GeoJSON (WGS84) per unit level, with each unit's figures and pass/fail."""
        out_dir = Path(out_dir)
        stem = stem or f"{self.key}_review"
        written = {}
        for name, layer in self.unit_layers().items():
            path = out_dir / f"{stem}_{name}.geojson"
            with _files.atomic_gdal_file(path) as tmp:
                _gdal_ready(layer.reset_index()).to_crs(4326).to_file(tmp, driver="GeoJSON")
            written[name] = path
        return written

    def to_xlsx(self, path: str | Path) -> Path:
        """An Excel workbook: summary, the two unit levels, consolidation, one sheet per tier, and what it rests on."""
        path = Path(path)
        street_sheet = "approximate zones 近似片区" if self.approximate else "streets 街道"
        headers = self._indicator_headers()
        street_headers = {**headers, "name": "近似片区名称(非街道) name (approximate zone, not a street)"} if self.approximate else headers
        sheets = {
            "summary 摘要": bilingual(sheet_values(self.summary).reset_index()),
            street_sheet: bilingual(sheet_values(self.streets).reset_index(), street_headers),
            "communities 社区": bilingual(sheet_values(self.communities).reset_index(), headers),
            "consolidation 撤并": bilingual(sheet_values(self.consolidation).reset_index()),
        }
        facilities = self.facilities.copy()
        wgs = facilities.geometry.to_crs(4326)
        facilities["lon"], facilities["lat"] = wgs.x.round(6), wgs.y.round(6)
        facilities = pd.DataFrame(facilities.drop(columns=facilities.geometry.name))
        for kind in KINDS:
            zh = KIND_NAMES[kind][0].replace("/", "、").replace("(", "").replace(")", "")
            rows = facilities[facilities["kind"].astype(str) == kind]
            frame = sheet_values(rows).reset_index()
            if frame.empty:
                frame = pd.DataFrame({"note": [f"no {KIND_NAMES[kind][1]} in the facility list 名录中无此类设施"]})
            sheets[f"{kind} {zh}"[:31]] = bilingual(frame)
        sheets["about 说明"] = bilingual(self._about())
        return _files.write_workbook(path, sheets)

    def _indicator_headers(self) -> dict[str, str]:
        """Headers of the per-unit indicator columns: what each measures, in its unit, with the target's id."""
        headers = {}
        for target_id, row in self.summary.iterrows():
            unit, zh, en = INDICATORS[row["indicator"]]
            if row["indicator"] == "unit_share":
                headers[target_id] = f"有{KIND_NAMES.get(row['tier'], (row['tier'],))[0]} has one: {target_id}"
            else:
                headers[target_id] = f"{zh} {en}: {target_id} ({unit})"
            if row["indicator"] == "reach":
                headers[f"{target_id}_people"] = f"步行可达人数 people within the walk: {target_id}"
            headers[f"pass_{target_id}"] = f"达标 pass: {target_id} {row['target'] if row['source'] == 'targets file' else ''}".strip()
        return headers

    def _about(self) -> pd.DataFrame:
        info = self.region.config.region
        missing = ", ".join(self.missing_attributes) or "none"
        kinds = self.facilities["kind"].astype(str)
        by_kind = ", ".join(f"{k} {int((kinds == k).sum())}" for k in KINDS)
        rows = [
            ("region 区域", f"{info.name_zh} {info.name} ({self.region.key})"),
            ("targets 目标", f"{self.targets.name} ({self.targets.key}){' — ' + self.targets.place if self.targets.place else ''}"),
            ("targets source 目标来源", self.targets.source or (str(self.targets.path) if self.targets.path else "")),
            ("street units 街道单元", self.street_label + (" 近似片区，非街道" if self.approximate else "")),
            ("units source 单元来源", self.units_source),
            ("household size 户规模", f"{self.household_size:g} people per household ({self.household_source})"),
            ("facilities 设施", f"{len(self.facilities)} ({by_kind})"),
            ("missing attributes 缺失字段", f"{missing}: indicators that need them say 'no data', never a guess"),
            ("outside every unit 单元外", f"people outside every unit are the row '{OUTSIDE}' of each unit sheet"),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])


def json_scalar(value):
    """A JSON-ready scalar (numpy numbers as Python ones, NaN as None)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else round(float(value), 4)
    return value if isinstance(value, (str, list, dict)) else str(value)


def _is_pass_column(column: str) -> bool:
    return column in ("pass", "passes", "can_merge") or column.startswith("pass_")


def sheet_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Pass/fail cells as text (达标 pass / 未达标 fail / 无法判断), inf as blank."""
    frame = frame.copy()
    for column in frame.columns:
        if _is_pass_column(str(column)):
            frame[column] = frame[column].map(lambda v: PASS_TEXT.get(None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)))
        elif pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].replace([np.inf, -np.inf], np.nan)
    return frame


def _gdal_ready(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if column != frame.geometry.name and (frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column])):
            frame[column] = frame[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return frame


#: The Chinese of a column after each prefix (``pass_<target>``: 达标; ``n_<kind>``: the kind's 数量).
_PREFIXES_ZH = {
    "pass_": lambda target_id: "达标",
    "n_": lambda kind: f"{KIND_NAMES[kind][0]}数量" if kind in KIND_NAMES else None,
}


def bilingual(frame: pd.DataFrame, extra: dict[str, str] | None = None) -> pd.DataFrame:
    extra = extra or {}
    return frame.rename(columns={c: extra.get(str(c)) or _files.bilingual_header(str(c), _HEADERS_ZH, _PREFIXES_ZH) for c in frame.columns})


def indicator_header(indicator: str, target_id: str) -> str:
    """A unit-table column header for an indicator's per-unit figure."""
    unit, zh, en = INDICATORS[indicator]
    return f"{zh} {target_id} ({unit})"
