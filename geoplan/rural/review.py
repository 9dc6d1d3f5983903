"""The rural review: the canteen network against its targets, the homes that could merge, and how much the network covers.

:func:`rural_review` puts together, for one region: its rural units
(:mod:`geoplan.rural.units`), the canteen network's figures per target, town
and village with the unserved villages ranked by their older people
(:mod:`geoplan.rural.canteens`; "rural gaps weighted first": 60+ with 80+
counted twice), the merge proposals for its rural homes
(:mod:`geoplan.rural.homes`) and the extent report (:mod:`geoplan.extent`).
:class:`RuralReview` writes them as one workbook (Chinese and English
headers), GeoJSON layers of the towns and villages, a JSON summary and an
offline map. Every table that shows a time names its mode; every derived unit
says it is derived; a straight-line time says so.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan import _files
from geoplan.targets.review import json_scalar
from geoplan.errors import InputError
from geoplan.extent import ExtentReport, extent_report
from geoplan.modes import FALLBACK_LABEL, rules_table
from geoplan.rural.canteens import CanteenFigures, CanteenPlan, ServiceModel, canteen_figures, canteen_plan, tier_name
from geoplan.rural.homes import HomeMergeOptions, HomeMerges, homes_with_residents, merge_homes
from geoplan.rural.targets import RuralTargets, load_rural_targets
from geoplan.rural.units import RuralUnits, rural_units

if TYPE_CHECKING:
    from geoplan.region import Region

#: How a pass/fail cell reads (as in the plan review).
PASS_TEXT = {True: "达标 pass", False: "未达标 fail", None: "无法判断 not judged"}

_HEADERS_ZH = {
    "id": "编号", "indicator": "指标", "value": "数值", "unit": "单位", "target": "目标", "min": "目标值", "pass": "是否达标", "detail": "说明",
    "mode": "出行方式", "plan": "规划", "section": "章节", "clause": "条款", "quote_zh": "原文", "note": "备注", "name": "名称",
    "unit_type": "单元类型", "town_code": "乡镇代码", "village_code": "村代码", "villages": "村数", "villages_served": "已覆盖村数",
    "villages_served_pct": "村覆盖率(%)", "rural_pop_60": "农村60岁以上", "town_canteens": "乡镇食堂数", "meal_points": "助餐点数",
    "has_canteen": "有乡镇食堂", "pop_total": "常住人口", "pop_60": "60岁以上", "pop_65": "65岁以上", "pop_80": "80岁以上", "served": "已覆盖",
    "served_by": "覆盖方式", "meal_walk_min": "步行至助餐点(分钟)", "delivery_min": "送餐时间(分钟)", "priority": "优先权重(60+加80+)",
    "delivery_mode": "送餐方式", "village_source": "村单元来源", "time_source": "时间来源", "rank": "排序", "beds": "床位", "residents": "在院人数",
    "use_pct": "使用率(%)", "remote_min": "至服务中心车程(分钟)", "merge_candidate": "撤并候选", "merge_into": "并入机构", "merge_into_name": "并入机构名称",
    "into_beds": "并入机构床位", "into_residents_before": "并入前在院", "into_spare_before": "并入前空床", "into_residents_after": "并入后在院",
    "drive_min": "车程(分钟)", "remote_after_min": "并入后至服务中心车程(分钟)", "gain_min": "车程改善(分钟)", "visit_extra_min": "探视增加车程(分钟)",
    "can_merge": "可撤并", "reason": "原因", "hub_source": "服务中心来源", "site_id": "设施编号", "kind": "类型", "tier": "层级", "phase": "建设顺序",
    "cost": "成本", "cumulative_cost": "累计成本", "lon": "经度(WGS84)", "lat": "纬度(WGS84)", "supply_drive_min": "中央厨房车程(分钟)",
    "within_supply_drive": "在配送时限内", "road_within_reach": "附近有道路", "supply_mode": "配送方式", "item": "项目", "highway": "道路等级", "allowed": "允许通行",
    "speed_kmh": "速度(km/h)", "source": "依据", "description": "要求", "before": "规划前", "after": "规划后", "passed": "达标", "best": "最佳可达",
}


@dataclasses.dataclass(frozen=True)
class RuralReview:
    """A region's canteen network, rural homes and network coverage, reviewed.

    Attributes
    ----------
    region, units, targets
        The region, its rural units and the rural targets judged.
    figures
        The canteen network's figures (:class:`~geoplan.rural.canteens.CanteenFigures`):
        ``summary`` (one row per target, with its ``mode``), ``towns``,
        ``villages``, ``gaps`` (unserved villages, most older people first), ``supply``.
    facilities
        The facilities reviewed (their ``kind`` is their tier).
    homes
        The merge proposals (:class:`~geoplan.rural.homes.HomeMerges`), None without homes in the list.
    extent
        The district against the street network's extent (:class:`~geoplan.extent.ExtentReport`).
    model
        The villages prepared on each mode's network (reused by :meth:`plan`).
    fallback
        ``"detour"`` when straight-line times stand in for points no road reaches, else None.
    """

    region: Any
    units: RuralUnits
    targets: RuralTargets
    figures: CanteenFigures
    facilities: gpd.GeoDataFrame
    homes: HomeMerges | None
    extent: ExtentReport
    model: ServiceModel
    fallback: str | None = None

    @property
    def key(self) -> str:
        return f"{self.region.key}_{self.targets.key}"

    @property
    def summary(self) -> pd.DataFrame:
        return self.figures.summary

    @property
    def passed(self) -> bool | None:
        verdicts = [v for v in self.summary["pass"] if v is not None]
        if any(v is False for v in verdicts):
            return False
        judged = [t for t in self.targets.targets if t.min is not None]
        return True if verdicts and len(verdicts) == len(judged) else None

    def plan(self, *, candidates: gpd.GeoDataFrame | None = None, solver=None) -> CanteenPlan:
        """The least-cost plan that meets every judged target (:func:`geoplan.rural.canteens.canteen_plan`)."""
        return canteen_plan(self.model, self.facilities, self.targets, candidates=candidates, solver=solver)

    def modes_used(self) -> list[str]:
        """The travel modes the review's times use, as labels."""
        from geoplan.modes import get_mode

        names = ["walk", self.targets.rules.delivery_mode, self.targets.rules.supply_mode]
        if self.homes is not None:
            names.append(self.homes.options.mode)
        return [get_mode(n, self.region.config).label for n in dict.fromkeys(names)]

    # --- plain data and files ---------------------------------------------------------------
    def to_dict(self, plan: CanteenPlan | None = None) -> dict[str, Any]:
        data = {
            "region": self.region.key, "targets": {"key": self.targets.key, "name": self.targets.name, "source": self.targets.source},
            "rules": {f.name: (dict(getattr(self.targets.rules, f.name)) if f.name == "costs" else getattr(self.targets.rules, f.name))
                      for f in dataclasses.fields(self.targets.rules) if f.name != "sources"}, "modes": self.modes_used(),
            "fallback": self.fallback, "units": dict(self.units.about()), "towns_derived": self.units.towns_derived,
            "villages_derived": self.units.villages_derived, "extent": self.extent.to_dict(), "passed": self.passed,
            "summary": _records(self.summary, "id"), "gaps": _records(self.figures.gaps.head(50), "village_code"),
            "homes": None if self.homes is None else {**self.homes.summary(), "proposals": _records(self.homes.proposals, "site_id")},
        }
        if plan is not None:
            data["plan"] = {**plan.summary(), "requirements": _records(plan.requirement_table(), "id"),
                            "sites": _records(pd.DataFrame(plan.new_sites.drop(columns="geometry")), "site_id")}
        return data

    def write(self, out_dir: str | Path, *, plan: CanteenPlan | None = None, map: bool = True) -> dict[str, Path]:
        """The workbook, the towns and villages as GeoJSON (WGS84), the JSON summary and (``map``) the offline map."""
        out_dir = Path(out_dir)
        stem = f"{self.key}_review"
        written = {"xlsx": self.to_xlsx(out_dir / f"{stem}.xlsx", plan=plan)}
        for name, layer in self.layers(plan).items():
            path = out_dir / f"{stem}_{name}.geojson"
            with _files.atomic_gdal_file(path) as tmp:
                _gdal_ready(layer).to_crs(4326).to_file(tmp, driver="GeoJSON")
            written[name] = path
        path = out_dir / f"{stem}.json"
        with _files.atomic_file(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(plan), ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        written["json"] = path
        if map:
            from geoplan.maps import save_map

            written["map"] = save_map(rural_map(self, plan), out_dir / f"{stem}_map.html")
        return written

    def layers(self, plan: CanteenPlan | None = None) -> dict[str, gpd.GeoDataFrame]:
        """The towns (polygons), villages (points), facilities and the plan's new sites, each with its labels."""
        towns = gpd.GeoDataFrame(self.figures.towns, geometry=self.units.towns.geometry.reindex(self.figures.towns.index).to_numpy(), crs=self.region.crs)
        layers = {"towns": towns.reset_index(), "villages": self.figures.villages.reset_index()}
        if len(self.facilities):
            facilities = self.facilities[["name", "kind", "geometry"]].copy()
            facilities["tier"] = [tier_name(k) for k in facilities["kind"]]
            layers["facilities"] = facilities.reset_index()
        if plan is not None and len(plan.new_sites):
            layers["new_sites"] = plan.new_sites.reset_index()
        return layers

    def to_xlsx(self, path: str | Path, *, plan: CanteenPlan | None = None) -> Path:
        """Sheets: summary, towns, villages, gaps, supply, homes, the plan (with ``plan``), extent, modes, about."""
        sheets = {
            "summary 摘要": _sheet(self.summary),
            f"towns {'近似乡镇片区' if self.units.towns_derived else '乡镇'}"[:31]: _sheet(self.figures.towns),
            f"villages {'派生村单元' if self.units.villages_derived else '村'}"[:31]: _sheet(pd.DataFrame(self.figures.villages.drop(columns="geometry"))),
            "gaps 未覆盖村(按权重)": _sheet(self.figures.gaps),
            "supply 中央厨房配送": _sheet(self.figures.supply),
            "homes 敬老院撤并": _sheet(self.homes.table) if self.homes is not None else _note_frame(
                "no homes (kind home with beds and residents) in the facility list 名录中无敬老院"),
        }
        if plan is not None:
            sheets["plan 最低成本方案"] = _sheet(pd.DataFrame(plan.new_sites.drop(columns="geometry")))
            sheets["plan requirements 方案要求"] = _sheet(plan.requirement_table())
            sheets["plan supply 方案配送"] = _sheet(plan.supply)
        sheets["extent 路网覆盖"] = _sheet(self.extent.to_frame().set_index("item"))
        sheets["modes 出行方式"] = _sheet(rules_table(("walk", self.targets.rules.delivery_mode, self.targets.rules.supply_mode), self.region.config))
        sheets["about 说明"] = _sheet(self._about(plan).set_index("item"))
        return _files.write_workbook(Path(path), sheets)

    def _about(self, plan: CanteenPlan | None) -> pd.DataFrame:
        info = self.region.config.region
        rules = self.targets.rules
        rows = [
            ("region 区域", f"{info.name_zh} {info.name} ({self.region.key})"),
            ("targets 目标", f"{self.targets.name} ({self.targets.key}); {self.targets.source or ''}"),
            *self.units.about(),
            ("tiers 层级", "; ".join(f"{k}: {tier_name(k)}" for k in ("district_centre", "centre", "canteen"))),
            ("served 覆盖规则", f"own meal point, a meal point within {rules.meal_walk_min:g} min walk, or delivery within "
                              f"{rules.delivery_min:g} min by {rules.delivery_mode}"),
            ("modes 出行方式", "; ".join(self.modes_used())),
            ("times 时间来源", FALLBACK_LABEL + " where no road reaches (asked for)" if self.fallback else
             "the road network only; points no road reaches are not served (no straight-line fallback)"),
            ("extent 路网覆盖", self.extent.text()),
            *[(f"rule source {k}", v) for k, v in rules.sources.items()],
        ]
        if plan is not None:
            rows.append(("plan 方案", json.dumps(plan.summary(), ensure_ascii=False, default=str)))
        return pd.DataFrame(rows, columns=["item", "value"])


def rural_review(
    region: "Region | str | Path", preset: str | Path | RuralTargets | None = None, *, facilities: gpd.GeoDataFrame | str | Path | None = None,
    coord_system: str = "wgs84", homes: gpd.GeoDataFrame | None = None, units: RuralUnits | None = None,
    home_options: HomeMergeOptions = HomeMergeOptions(), fallback: str | None = None, cache_dir=None,
) -> RuralReview:
    """Review ``region``'s canteen network against ``preset`` (default the config's ``[rural] preset``), and its rural homes.

    Parameters
    ----------
    region
        A loaded region, or a region name or config path.
    preset
        A rural targets preset (``rural_canteens``) or a TOML path, or loaded :class:`~geoplan.rural.targets.RuralTargets`.
    facilities
        The facilities (default: the region's own); a frame, or a facility file read with ``coord_system``.
        Kinds: ``district_centre`` county kitchen, ``centre`` town canteen, ``canteen`` meal point, ``home`` rural home.
    homes
        The homes to review for merging, with ``beds`` and ``residents`` (default: the facilities of kind
        ``home``; a file's residents column is read from it).
    units
        The rural units (default: :func:`geoplan.rural.units.rural_units` of the region).
    fallback
        ``"detour"``: points no road reaches are timed by the straight line x detour (labelled).
    """
    from geoplan.region import Region, load_region
    from geoplan.sites import load_facilities

    if not isinstance(region, Region):
        if not isinstance(region, (str, Path)):
            raise InputError(f"region must be a Region or a region name such as 'huangpi_south', got {type(region).__name__}.")
        region = load_region(region, cache_dir=cache_dir)
    settings = region.config.rural
    targets = load_rural_targets(preset if preset is not None else (settings.preset if settings is not None else "rural_canteens"))
    path = None
    if facilities is None:
        facilities = region.facilities
        path = region.config.facilities.path if region.config.facilities is not None else None
    elif isinstance(facilities, (str, Path)):
        path = facilities
        facilities = load_facilities(facilities, crs=region.crs, boundary=region.boundary, coord_system=coord_system)
    elif isinstance(facilities, gpd.GeoDataFrame):
        facilities = facilities.to_crs(region.crs)
    else:
        raise InputError(f"facilities must be a GeoDataFrame or a facility file, got {type(facilities).__name__}.")
    if len(facilities) and "kind" not in facilities:
        raise InputError("The facilities have no kind column; give each its tier (district_centre, centre, canteen, home).")
    units = units or rural_units(region)
    model = ServiceModel(region, units, targets.rules, fallback=fallback)
    figures = canteen_figures(model, facilities, targets)
    if homes is None and len(facilities) and (facilities["kind"].astype(str) == "home").any():
        homes = homes_with_residents(facilities, path)
    merges = merge_homes(region, homes, options=home_options, fallback=fallback) if homes is not None and len(homes) else None
    return RuralReview(region=region, units=units, targets=targets, figures=figures, facilities=facilities, homes=merges,
                       extent=extent_report(region), model=model, fallback=fallback)


# --- the map -----------------------------------------------------------------------------------


_SERVED_COLOURS = {True: "#1a9850", False: "#d73027"}
_TIER_COLOURS = {"district_centre": "#542788", "centre": "#2166ac", "canteen": "#f46d43", "home": "#8c510a"}


def rural_map(review: RuralReview, plan: CanteenPlan | None = None, *, basemap: str = "none"):
    """An offline web map: the roads, towns, villages (served or not, by which mode), facilities and the plan's new sites."""
    import folium

    from geoplan.maps import Control, MapScript, base_map, check_offline, constant_style, geojson_layer, legend_html, legend_row, legend_section, popup_html, swatch_html
    from geoplan.targets.review_map import add_network

    region = review.region
    m, boundary = base_map(region, f"{review.targets.name} 农村助餐网络评估", basemap=basemap)
    add_network(m, region, "道路 Roads (OSM)")
    towns = review.layers()["towns"]
    folium.GeoJson(geojson_layer(towns[["name", "geometry"]], tolerance_m=20.0), name=f"{review.units.town_label}",
                   style_function=constant_style({"color": "#444444", "weight": 2, "fill": False}), interactive=False).add_to(m)
    villages = review.figures.villages if plan is None else plan.after.villages
    frame = gpd.GeoDataFrame(
        {"name": villages["name"].astype(str).to_numpy(), "served_by": villages["served_by"].astype(str).to_numpy(),
         "p60": [f"{v:,.0f}" for v in villages.get("pop_60", pd.Series(0.0, index=villages.index))],
         "mode": [str(v) if v is not None else "–" for v in villages["mode"]], "served": villages["served"].astype(bool).to_numpy()},
        geometry=villages.geometry.to_numpy(), crs=villages.crs, index=villages.index)
    popup = [("名称 name", "name", "text"), ("覆盖 served by", "served_by", "text"), ("出行方式 mode", "mode", "text"), ("60岁以上 60+", "p60", "text")]
    for served in (True, False):
        part = frame[frame["served"] == served].drop(columns="served")
        if not len(part):
            continue
        style = {"radius": 5, "color": "#ffffff", "weight": 1, "fillColor": _SERVED_COLOURS[served], "fillOpacity": 0.9, "fill": True}
        layer = folium.FeatureGroup(name=("已覆盖 served" if served else "未覆盖 not served") + f" ({review.units.village_label})").add_to(m)
        folium.GeoJson(geojson_layer(part), marker=folium.CircleMarker(), style_function=constant_style(style),
                       on_each_feature=popup_html(popup, top=15, tooltip="name")).add_to(layer)
    sites = [("existing", review.facilities)] + ([("new", plan.new_sites)] if plan is not None and len(plan.new_sites) else [])
    rows = []
    for status, table in sites:
        for kind, colour in _TIER_COLOURS.items():
            chosen = table[table["kind"].astype(str) == kind] if len(table) else table
            if not len(chosen):
                continue
            label = f"{'新建 new ' if status == 'new' else ''}{tier_name(kind) if kind != 'home' else '敬老院 rural home'}"
            part = gpd.GeoDataFrame({"name": chosen.get("name", pd.Series(chosen.index.astype(str), index=chosen.index)).astype(str).to_numpy(),
                                     "tier": label}, geometry=chosen.geometry.to_numpy(), crs=chosen.crs)
            style = {"radius": 8 if status == "new" else 6, "color": "#000000" if status == "new" else "#ffffff", "weight": 2,
                     "fillColor": colour, "fillOpacity": 1.0, "fill": True}
            layer = folium.FeatureGroup(name=label).add_to(m)
            folium.GeoJson(geojson_layer(part), marker=folium.CircleMarker(), style_function=constant_style(style),
                           on_each_feature=popup_html([("名称 name", "name", "text"), ("层级 tier", "tier", "text")], top=15, tooltip="name")).add_to(layer)
            rows.append(legend_row(swatch_html(colour), f"{html.escape(label)} ({len(chosen)})", layer=label))
    rules = review.targets.rules
    figures = (plan.after if plan is not None else review.figures).summary
    lines = "".join(f"<div>{html.escape(str(i))}: {_value(r['value'], r['unit'])} ({html.escape(str(r['target']))}) "
                    f"{html.escape(PASS_TEXT[r['pass'] if r['pass'] is not None else None])}</div>" for i, r in figures.iterrows())
    title = (f"<div class='geoplan-h1'>{html.escape(region.config.region.name_zh)} {html.escape(region.config.region.name)}</div>"
             f"<div class='geoplan-h2'>农村助餐网络 Rural canteen network{' — with the least-cost plan 含最低成本方案' if plan is not None else ''}</div>"
             f"<div class='geoplan-sites'>{lines}</div>"
             f"<div class='geoplan-note'>出行方式 modes: {html.escape('; '.join(review.modes_used()))}</div>")
    legend = [
        legend_section("村 Villages", [legend_row(swatch_html(_SERVED_COLOURS[True]), f"已覆盖 served: own meal point, ≤ {rules.meal_walk_min:g} min walk, "
                                                                                       f"or ≤ {rules.delivery_min:g} min by {html.escape(rules.delivery_mode)}"),
                                       legend_row(swatch_html(_SERVED_COLOURS[False]), "未覆盖 not served")]),
    ]
    if rows:
        legend.append(legend_section("设施 Facilities", rows))
    notes = [review.units.village_source if review.units.villages_derived else "", review.extent.text(),
             FALLBACK_LABEL + " where no road reaches" if review.fallback else ""]
    legend.append("".join(f"<div class='geoplan-note'>{html.escape(n)}</div>" for n in notes if n))
    folium.LayerControl(position="topright", collapsed=True).add_to(m)
    Control(title, position="topleft", css_class="geoplan-box geoplan-title", first=True).add_to(m)
    Control(legend_html(legend), position="bottomright", css_class="geoplan-box geoplan-legend", legend=True).add_to(m)
    west, south, east, north = boundary.total_bounds
    MapScript(f"map.fitBounds([[{south}, {west}], [{north}, {east}]]);").add_to(m)
    check_offline(m, basemap=basemap)
    return m


# --- helpers -----------------------------------------------------------------------------------


def _value(value, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "no data"
    return f"{float(value):.1f} %" if unit == "%" else f"{float(value):,.0f} {unit}"


def _sheet(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as a sheet: its index as the first column, pass/fail as text, inf blank, Chinese before English in the headers."""
    frame = frame.reset_index() if frame.index.name or not isinstance(frame.index, pd.RangeIndex) else frame.copy()
    for column in frame.columns:
        if column in ("pass", "passed", "served", "can_merge", "has_canteen", "merge_candidate", "within_supply_drive", "allowed", "road_within_reach"):
            frame[column] = frame[column].map(lambda v: PASS_TEXT.get(None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v))
                                              if column in ("pass", "passed") else ("是 yes" if v is True or v is np.True_ else "否 no" if v is False or v is np.False_ else v))
        elif pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].replace([np.inf, -np.inf], np.nan)
        elif frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: v if not hasattr(v, "geom_type") else v.wkt)
    return frame.rename(columns={c: _files.bilingual_header(str(c), _HEADERS_ZH) for c in frame.columns})


def _note_frame(text: str) -> pd.DataFrame:
    return pd.DataFrame({"note": [text]})


def _records(frame: pd.DataFrame, index_name: str) -> list[dict]:
    frame = pd.DataFrame(frame)
    frame = frame.drop(columns=[c for c in frame.columns if c in ("geometry", "area")], errors="ignore")
    return [{index_name: str(i), **{k: json_scalar(v) for k, v in row.items()}} for i, row in frame.iterrows()]


def _gdal_ready(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    frame = frame.drop(columns=[c for c in frame.columns if c != frame.geometry.name and isinstance(frame[c], gpd.GeoSeries)])
    frame = frame.copy()
    for column in frame.columns:
        if column != frame.geometry.name and frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        elif pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].replace([np.inf, -np.inf], np.nan)
    return frame
