"""The map of a review: passing and failing streets (or approximate zones) and communities, offline.

The street network is drawn as the base layer and every unit carries its name
as a label, so a reader finds their street without any web tiles; Leaflet is
inlined as in :mod:`geoplan.maps` (whose offline page setup this module
reuses), so the saved page makes no network request. Imports folium.
"""

from __future__ import annotations

import html
import math

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from folium.utilities import JsCode

from geoplan.errors import InputError
from geoplan.maps import (
    BASEMAPS,
    Control,
    MapScript,
    POPUPS_CLEAR_OF_CONTROLS,
    Raw,
    SIMPLIFY_M,
    SMALL_WINDOW,
    base_map,
    check_offline,
    constant_style,
    geojson_layer,
    js_json,
    legend_html,
    legend_row,
    legend_section,
    popup_html,
    save_map,
    swatch_html,
)
from geoplan.targets.indicators import OUTSIDE
from geoplan.targets.review import PASS_TEXT, Review
from geoplan.tiers import KIND_NAMES, KINDS

__all__ = ["review_map", "save_map"]

_PASS_COLOURS = {True: "#1a9850", False: "#d73027", None: "#bdbdbd"}
_MAJOR_HIGHWAYS = {"motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary", "secondary_link"}
_STREET_STYLE = {"color": "#9e9e9e", "weight": 0.7, "opacity": 0.9}
_MAJOR_STYLE = {"color": "#757575", "weight": 1.6, "opacity": 0.9}
_KIND_COLOURS = {"station": "#6a3d9a", "canteen": "#ff7f00", "centre": "#1f78b4", "district_centre": "#e31a1c", "home": "#33a02c"}
_LABEL_JS = """
<script>
function geoplanLabel(field, extra) {
    return function (feature, layer) {
        var span = document.createElement('span');
        span.textContent = feature.properties[field];
        layer.bindTooltip(span, {permanent: true, direction: 'center', className: 'geoplan-label', interactive: false});
        if (extra) { extra(feature, layer); }
    };
}
</script>
<style>
.leaflet-tooltip.geoplan-label { background: rgba(255,255,255,.75); border: none; box-shadow: none; padding: 0 3px;
  font-size: 11px; font-weight: 600; color: #222; white-space: nowrap; }
.leaflet-tooltip.geoplan-label:before { display: none; }
.leaflet-tooltip.geoplan-label-small { font-size: 9px; font-weight: 400; }
</style>
"""


def review_map(review: Review, *, basemap: str = "none", community_labels: bool = False) -> folium.Map:
    """A web map of ``review``: the street network, the units coloured by pass/fail with their names, the facilities.

    Layers: the street network (base), the streets or approximate zones
    (outlined and tinted green where every target a unit is judged on passes,
    red where one fails, grey where none applies), the communities (same
    colours), community name labels (off at first unless ``community_labels``),
    the facilities by tier and the region boundary. The title box gives the
    plan and how many of its targets pass; a popup per unit lists its figures
    and the targets it fails.

    Parameters
    ----------
    review
        The review to draw.
    basemap
        ``"none"`` (the street network only, no network request at all) or ``"osm"`` tiles as well.
    community_labels
        Show the community names from the start.
    """
    if basemap not in BASEMAPS:
        raise InputError(f"Unknown basemap {basemap!r}; use one of {', '.join(map(repr, BASEMAPS))}.")
    region = review.region
    m, boundary = base_map(region, f"{review.targets.name} review 规划目标评估", basemap=basemap)
    west, south, east, north = boundary.total_bounds
    m.get_root().header.add_child(Raw(_LABEL_JS), name="geoplan_label_js")

    network_name = "街道路网 Street network"
    add_network(m, region, network_name)
    street_name = (
        "近似片区(非街道) Approximate zones (not streets)" if review.approximate else "街道 Streets"
    )
    community_name = "社区 Communities"
    _add_units(m, review, "community", community_name, show=True)
    _add_units(m, review, "street", street_name, show=True)
    _add_labels(m, review, "street", f"{street_name}: 名称 names", show=True)
    if len(review.communities) > 1:
        _add_labels(m, review, "community", "社区名称 Community names", show=community_labels)
    site_rows = _add_facilities(m, review)
    folium.GeoJson(
        geojson_layer(boundary), name="区域边界 Region boundary",
        style_function=constant_style({"color": "#333333", "weight": 2, "dashArray": "6 4", "fill": False}), interactive=False,
    ).add_to(m)

    legend = [_legend_pass(review, street_name), _legend_network(network_name)]
    if site_rows:
        legend.append(legend_section("设施 Facilities", site_rows))
    legend.append(_note(review))
    folium.LayerControl(position="topright", collapsed=JsCode(SMALL_WINDOW)).add_to(m)
    MapScript("L.control.scale({imperial: false, maxWidth: 150}).addTo(map);").add_to(m)
    Control(_title(review), position="topleft", css_class="geoplan-box geoplan-title", first=True).add_to(m)
    Control(legend_html(legend), position="bottomright", css_class="geoplan-box geoplan-legend", legend=True).add_to(m)
    bounds = js_json([[south, west], [north, east]])
    MapScript(f"map.fitBounds({bounds}, {{paddingTopLeft: [12, 12], paddingBottomRight: [{SMALL_WINDOW} ? 12 : 280, 12]}});").add_to(m)
    MapScript(POPUPS_CLEAR_OF_CONTROLS).add_to(m)
    check_offline(m, basemap=basemap)
    return m


def add_network(m: folium.Map, region, name: str) -> None:
    """The walk network's streets inside the region (and a little around it), merged by class to keep the page small."""
    edges = region.network.edges
    area = shapely.union_all(region.boundary.geometry.to_numpy()).buffer(300)
    edges = edges[shapely.intersects(edges.geometry.to_numpy(), area)]
    major = edges["highway"].astype(str).isin(_MAJOR_HIGHWAYS).to_numpy() if "highway" in edges else np.zeros(len(edges), bool)
    layer = folium.FeatureGroup(name=name, show=True).add_to(m)
    for mask, style in ((~major, _STREET_STYLE), (major, _MAJOR_STYLE)):
        if not mask.any():
            continue
        merged = shapely.line_merge(shapely.union_all(edges.geometry.to_numpy()[mask]))
        frame = gpd.GeoDataFrame(geometry=[merged], crs=edges.crs)
        folium.GeoJson(geojson_layer(frame, tolerance_m=2.0), style_function=constant_style(style), interactive=False).add_to(layer)


def _unit_frame(review: Review, level: str) -> gpd.GeoDataFrame:
    table = review.streets if level == "street" else review.communities
    geometry = review.street_geometry if level == "street" else review.community_geometry
    table = table.drop(index=OUTSIDE, errors="ignore")
    geom = geometry.geometry.copy()
    geom.index = geom.index.astype(str)
    return gpd.GeoDataFrame(table, geometry=geom.reindex(table.index).to_numpy(), crs=geometry.crs)


def _verdict(value) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def _add_units(m: folium.Map, review: Review, level: str, name: str, *, show: bool) -> None:
    units = _unit_frame(review, level)
    if units.empty:
        return
    summary = review.summary
    judged = [c for c in units.columns if c.startswith("pass_")]
    properties = {
        "name": units["name"].astype(str).tolist(),
        "verdict": [PASS_TEXT[_verdict(v)] for v in units["passes"]],
        "p60": [_people(v) for v in units.get("pop_60", pd.Series(np.nan, index=units.index))],
        "failing": [v if isinstance(v, str) and v else "–" for v in units["failing"]],
    }
    rows = [("名称 name", "name", "text"), ("评估 review", "verdict", "text"), ("60岁以上 people 60+", "p60", "text")]
    for column in judged[:8]:
        target_id = column[len("pass_"):]
        key = f"t_{len(rows)}"
        values = units[target_id] if target_id in units else pd.Series(np.nan, index=units.index)
        unit = summary.at[target_id, "unit"] if target_id in summary.index else ""
        properties[key] = [f"{_figure(v, unit)} · {PASS_TEXT[_verdict(p)]}" for v, p in zip(values, units[column])]
        rows.append((target_id, key, "text"))
    rows.append(("未达标 fails", "failing", "text"))
    frame = gpd.GeoDataFrame(properties, index=units.index, geometry=units.geometry, crs=units.crs)
    colour = {str(i): _PASS_COLOURS[_verdict(v)] for i, v in zip(units.index, units["passes"])}
    if level == "street":
        style = lambda f: {"color": colour[f["id"]], "weight": 3, "fillColor": colour[f["id"]], "fillOpacity": 0.08}
    else:
        style = lambda f: {"color": "#ffffff", "weight": 0.6, "fillColor": colour[f["id"]], "fillOpacity": 0.45}
    layer = folium.FeatureGroup(name=name, show=show).add_to(m)
    folium.GeoJson(geojson_layer(frame, tolerance_m=SIMPLIFY_M), style_function=style, on_each_feature=popup_html(rows, top=15)).add_to(layer)


def _add_labels(m: folium.Map, review: Review, level: str, name: str, *, show: bool) -> None:
    units = _unit_frame(review, level)
    if units.empty:
        return
    points = units.geometry.representative_point()
    names = units["name"].astype(str)
    if level == "community":  # "社区单元 462 community unit 462" reads as its code on the map
        names = pd.Series([_short(n, c) for n, c in zip(names, units.index)], index=units.index)
    frame = gpd.GeoDataFrame({"label": names.to_numpy()}, geometry=points.to_numpy(), crs=units.crs, index=units.index)
    layer = folium.FeatureGroup(name=name, show=show).add_to(m)
    folium.GeoJson(
        geojson_layer(frame), marker=folium.CircleMarker(radius=0, opacity=0, fill=False),
        on_each_feature=JsCode(f"geoplanLabel({js_json('label')})"), interactive=False,
    ).add_to(layer)


def _add_facilities(m: folium.Map, review: Review) -> list[str]:
    facilities = review.facilities
    rows = []
    for kind in KINDS:
        chosen = facilities[facilities["kind"].astype(str).to_numpy() == kind]
        if not len(chosen):
            continue
        zh, en = KIND_NAMES[kind]
        name = f"{zh} {en}"
        frame = gpd.GeoDataFrame(
            {"name": chosen["name"].astype(str).to_numpy(), "kind": name,
             "street": chosen.get("street_code", pd.Series("", index=chosen.index)).astype(str).to_numpy(),
             "p60": [_people(v) for v in chosen.get("catchment_pop_60", pd.Series(np.nan, index=chosen.index))]},
            index=chosen.index, geometry=chosen.geometry, crs=chosen.crs,
        )
        popup = [("名称 name", "name", "text"), ("类型 tier", "kind", "text"), ("片区/街道 street or zone", "street", "text"),
                 ("服务范围内60岁以上 60+ within its walk", "p60", "text")]
        layer = folium.FeatureGroup(name=name, show=True).add_to(m)
        style = {"radius": 6, "color": "#ffffff", "weight": 1.5, "fillColor": _KIND_COLOURS[kind], "fillOpacity": 1.0, "fill": True}
        folium.GeoJson(geojson_layer(frame), marker=folium.CircleMarker(), style_function=constant_style(style),
                       on_each_feature=popup_html(popup, top=15, tooltip="name")).add_to(layer)
        dot = (f"<i class='geoplan-dot' style='width:12px;height:12px;background:{_KIND_COLOURS[kind]};"
               "border:1.5px solid #fff;box-shadow:0 0 0 1px rgba(0,0,0,.25)'></i>")
        rows.append(legend_row(f"<span class='geoplan-symbol'>{dot}</span>", f"{html.escape(name)} ({len(chosen)})", layer=name))
    return rows


def _title(review: Review) -> str:
    info = review.region.config.region
    summary = review.summary[review.summary["source"] == "targets file"]
    verdicts = [_verdict(v) for v in summary["pass"]]
    n_pass, n_fail = sum(v is True for v in verdicts), sum(v is False for v in verdicts)
    n_other = len(verdicts) - n_pass - n_fail
    failing = [html.escape(f"{i}: {r['target']} — {_figure(r['value'], r['unit'])}") for i, r in summary.iterrows() if _verdict(r["pass"]) is False]
    listed = "".join(f"<div>✗ {f}</div>" for f in failing[:6]) + (f"<div>… {len(failing) - 6} more</div>" if len(failing) > 6 else "")
    return (
        f"<div class='geoplan-h1'>{html.escape(info.name_zh)} {html.escape(info.name)}</div>"
        f"<div class='geoplan-h2'>规划目标评估 Review against {html.escape(review.targets.name)}</div>"
        f"<div class='geoplan-headline'>达标 <b>{n_pass}</b> · 未达标 <b>{n_fail}</b> · 无法判断 {n_other}"
        f"<br><b>{n_pass}</b> of {len(verdicts)} targets pass, <b>{n_fail}</b> fail</div>"
        f"<div class='geoplan-sites'>{listed}</div>"
    )


def _legend_pass(review: Review, street_name: str) -> str:
    rows = [
        legend_row(swatch_html(_PASS_COLOURS[True], opacity=0.6), "全部达标 passes every target it is judged on"),
        legend_row(swatch_html(_PASS_COLOURS[False], opacity=0.6), "未达标 fails at least one"),
        legend_row(swatch_html(_PASS_COLOURS[None], opacity=0.6), "无法判断 no target applies / no data"),
    ]
    if review.approximate:
        rows.append(legend_row("", "片区为按社区拼合的近似片区，并非街道 zones are approximate, built from communities: not streets"))
    return legend_section(f"{html.escape(street_name)} / 社区 Communities", rows)


def _legend_network(name: str) -> str:
    line = lambda style: f"<i class='geoplan-line' style='border-top:{style['weight'] + 0.4:g}px solid {style['color']}'></i>"
    return legend_section("", [legend_row(line(_MAJOR_STYLE), "主干路 main roads", layer=name), legend_row(line(_STREET_STYLE), "街巷 streets (OSM)", layer=name)])


def _note(review: Review) -> str:
    attribution = review.region.config.region.attribution
    missing = ", ".join(review.missing_attributes)
    parts = [f"<div class='geoplan-note'>{html.escape(review.units_source)}</div>"]
    if missing:
        parts.append(f"<div class='geoplan-note'>名录缺失字段 missing columns: {html.escape(missing)} (no data, not guessed)</div>")
    if attribution:
        parts.append(f"<div class='geoplan-note'>数据 Data: {html.escape(attribution)}</div>")
    return "".join(parts)


def _people(value) -> str:
    return "–" if value is None or not np.isfinite(float(value)) else f"{float(value):,.0f}"


def _figure(value, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "no data"
    if isinstance(value, (bool, np.bool_)):
        return "有 yes" if value else "无 no"
    if unit == "%":
        return f"{float(value):.1f} %"
    if unit == "facilities":
        return f"{float(value):,.0f} facilities"
    return f"{float(value):,.2f} {unit}" if float(value) < 100 else f"{float(value):,.0f} {unit}"


def _short(name: str, code: str) -> str:
    return str(code) if name.startswith("社区单元") else name
