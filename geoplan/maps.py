"""Web maps of a coverage report: care circles, sites, uncovered elderly and community coverage.

A map is a thin shell over a :class:`~geoplan.analysis.CoverageReport`: it
draws the report's layers and quotes its figures; it computes nothing new
(class breaks and number formatting aside).

A saved map is one self-contained HTML file. Leaflet (BSD-2, vendored in
``geoplan/static``) is inlined into the page instead of being loaded from
folium's CDNs, and no folium feature that needs jQuery, Bootstrap or icon fonts
is used, so with ``basemap="none"`` (the default) the page makes no network
request at all: it opens offline, on an intranet, from ``file://`` and inside an
iframe of a planning-review document.

A map of three of Wuchang's candidate sites (``wuchang`` is
``geoplan.load_region("wuchang")``), saved in a temporary folder: the page
quotes the report's headline figure and loads no script or stylesheet from
the web:

    >>> import re, tempfile
    >>> from pathlib import Path
    >>> from geoplan import analyse_coverage
    >>> from geoplan.maps import coverage_map, save_map
    >>> report = analyse_coverage(wuchang, wuchang.candidates.loc[["c572", "c542", "c483"]])
    >>> round(report.summary.loc[("pop_60", 15), "covered"])
    18847
    >>> m = coverage_map(report)
    >>> out = tempfile.TemporaryDirectory()
    >>> path = save_map(m, Path(out.name) / "wuchang_coverage.html")
    >>> page = path.read_text(encoding="utf-8")
    >>> "18,847" in page, re.findall(r"<(?:script|link) [^>]*(?:src|href)=", page)
    (True, [])
    >>> out.cleanup()
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import branca.element
import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from folium.elements import JSCSSMixin
from folium.template import Template
from folium.utilities import JsCode

from geoplan import _files
from geoplan.demand import GROUP_LABELS
from geoplan.errors import InputError

if TYPE_CHECKING:
    from geoplan.analysis import CoverageReport

log = logging.getLogger(__name__)

#: The basemaps :func:`coverage_map` offers. ``"none"`` needs no network.
#: Amap/Gaode (and Tencent, Baidu) tiles are deliberately not offered: they are
#: drawn in GCJ-02 (Baidu: BD-09), which is shifted by 100-700 m from the WGS84
#: coordinates every geoplan layer is drawn in, so circles, cells and sites would
#: sit on the wrong streets.
BASEMAPS = ("none", "osm")

#: Simplification tolerance of circles, cells, units and boundary, in metres.
SIMPLIFY_M = 5.0
#: Coordinates are snapped to this grid in degrees (about 1 m) to keep the page small.
_GRID_DEG = 1e-5

_FONT = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", system-ui, sans-serif'
_BACKGROUND = "#f4f2ee"
# Care circles: one colour per threshold, light (largest) to dark (smallest). Each
# threshold is drawn opaque in its own pane and the pane is made translucent, so a
# hundred overlapping circles of one threshold read as one tint, not a dark smear.
_CIRCLE_LIGHT, _CIRCLE_DARK = "#a8ddb5", "#0868ac"
_CIRCLE_PANE_OPACITY = 0.45
_GAP_COLOURS = ("#fdd49e", "#fdbb84", "#fc8d59", "#e34a33", "#b30000")
_UNIT_CLASSES = ((50.0, "#d73027", "< 50%"), (75.0, "#fc8d59", "50–75%"), (90.0, "#91bfdb", "75–90%"), (np.inf, "#4575b4", "≥ 90%"))
_UNIT_NO_DATA = "#bdbdbd"
_SITE_STYLES = {
    "existing": {"radius": 7, "color": "#ffffff", "weight": 1.5, "fillColor": "#6a3d9a", "fillOpacity": 1.0},
    "candidate": {"radius": 4.5, "color": "#222222", "weight": 1.5, "fillColor": "#ffffff", "fillOpacity": 1.0},
    "new": {"radius": 8, "color": "#ffffff", "weight": 2, "fillColor": "#e6550d", "fillOpacity": 1.0},
    "added": {"radius": 8, "color": "#ffffff", "weight": 2, "fillColor": "#d94801", "fillOpacity": 1.0},
    "closed": {"radius": 6, "color": "#cb181d", "weight": 2.5, "fillColor": "#d9d9d9", "fillOpacity": 1.0},
}
_OTHER_SITE_STYLE = {"radius": 6, "color": "#ffffff", "weight": 1.5, "fillColor": "#238b45", "fillOpacity": 1.0}
_BOUNDARY_STYLE = {"color": "#333333", "weight": 2, "dashArray": "6 4", "fill": False}

_KIND_LABELS = {
    "station": "社区养老服务站 community care station",
    "canteen": "老年食堂 elderly canteen",
    "centre": "养老服务中心 care centre",
}
_STATUS_LAYERS = {
    "existing": ("现有养老设施", "Existing care facilities"),
    "new": ("推荐新建站点", "Recommended new sites"),
    "added": ("新增站点", "Added sites"),
    "closed": ("拟撤并设施", "Facilities to close"),
    "candidate": ("候选站点", "Candidate sites"),
}
_STATUS_LABELS = {
    "existing": "现有 existing",
    "new": "推荐新建 recommended new",
    "added": "新增 added",
    "closed": "拟撤并 to close",
    "candidate": "候选 candidate",
}
_NEWLY_COVERED_COLOUR = "#31a354"

# Panes, bottom to top: care circles (below the overlay pane), then the default
# overlay pane (gaps, units), the boundary, and the sites on top, whatever layers
# are switched off and on again.
_CIRCLE_Z = 350
_BOUNDARY_PANE, _SITES_PANE = "geoplanBoundary", "geoplanSites"


def coverage_map(
    report: CoverageReport, *, basemap: str = "none", newly_covered: gpd.GeoDataFrame | None = None
) -> folium.Map:
    """A web map of ``report``: care circles, sites, uncovered elderly, community coverage.

    Layers (each switchable in the layer control, named in Chinese and English):
    the care circles of each threshold, the region boundary, the sites
    (existing facilities and candidate sites styled apart), the uncovered older
    people as a choropleth of population cells, and (off at first) each
    community unit's coverage. A title box names the region, says what the
    sites are and gives the headline figure; a legend explains the symbols.

    Parameters
    ----------
    report
        The coverage report to draw.
    basemap
        ``"none"`` (a plain background, no network at all) or ``"osm"``
        (OpenStreetMap tiles, fetched from tile.openstreetmap.org when viewed).
    newly_covered
        Cells a plan brings within the walk (``Plan.newly_covered``), drawn as
        their own layer for a before/after view. Sites whose ``status`` is
        ``new``, ``added`` or ``closed`` get their own layers too.

    Returns
    -------
    folium.Map
        Save it with :func:`save_map`.
    """
    if basemap not in BASEMAPS:
        raise InputError(
            f"Unknown basemap {basemap!r}; use one of {', '.join(map(repr, BASEMAPS))}. "
            "Amap/Gaode tiles are not offered: they are in GCJ-02 and would sit 100-700 m off the WGS84 layers."
        )
    region = report.region
    top = report.threshold_min
    thresholds = sorted({float(t) for t in report.summary.index.get_level_values("threshold_min")})
    group = _map_group(report)
    label = GROUP_LABELS.get(group, group)

    m, boundary = base_map(region, f"{top:g}分钟养老服务圈 {top:g}-min care circles", basemap=basemap)
    west, south, east, north = boundary.total_bounds

    legend: list[str] = []
    circle_colours = _circle_colours(thresholds)
    circle_names = {t: f"{t:g}分钟养老服务圈 {t:g}-min care circles" for t in thresholds}
    if report.circles is not None and len(report.circles):
        for i, threshold in enumerate(sorted(thresholds, reverse=True)):  # largest first, so it lies lowest
            pane = f"geoplanCircle{i}"
            folium.map.CustomPane(pane, z_index=_CIRCLE_Z + i, pointer_events=False).add_to(m)
            circles = report.circles[np.isclose(report.circles["threshold_min"].astype(float), threshold)]
            group_layer = folium.FeatureGroup(name=circle_names[threshold], show=True).add_to(m)
            folium.GeoJson(
                geojson_layer(circles[["site_id", circles.geometry.name]], tolerance_m=SIMPLIFY_M),
                style_function=constant_style({"stroke": False, "fillColor": circle_colours[threshold], "fillOpacity": 1.0}),
                pane=pane,
                interactive=False,
            ).add_to(group_layer)
        legend.append(_legend_circles(thresholds, circle_colours, circle_names))

    folium.map.CustomPane(_BOUNDARY_PANE, z_index=420, pointer_events=False).add_to(m)
    boundary_name = "区域边界 Region boundary"
    boundary_layer = folium.FeatureGroup(name=boundary_name, show=True).add_to(m)
    folium.GeoJson(
        geojson_layer(boundary, tolerance_m=0.0), style_function=constant_style(_BOUNDARY_STYLE), pane=_BOUNDARY_PANE, interactive=False
    ).add_to(boundary_layer)

    gaps_name = f"{top:g}分钟圈外老年人({label}) Elderly {label} beyond {top:g} min"
    if len(report.gaps):
        breaks, colours = _gap_classes(report.gaps[group].to_numpy())
        gap_layer = folium.FeatureGroup(name=gaps_name, show=True).add_to(m)
        _add_gaps(gap_layer, report.gaps, group=group, top=top, breaks=breaks, colours=colours)
        legend.append(_legend_gaps(gaps_name, label, top, breaks, colours, _cell_size_m(report.gaps)))

    if newly_covered is not None and len(newly_covered):
        newly_name = f"新覆盖老年人({label}) Elderly {label} newly within reach"
        newly_layer = folium.FeatureGroup(name=newly_name, show=True).add_to(m)
        _add_newly_covered(newly_layer, newly_covered.to_crs(region.crs), top=top)
        legend.append(legend_section(newly_name, [legend_row(swatch_html(_NEWLY_COVERED_COLOUR, opacity=0.8), "规划后步行可达 within reach after the plan", layer=newly_name)], layer=newly_name))

    units_name = f"社区覆盖率 Community coverage ({label} within {top:g} min)"
    if report.units is not None and region.communities is not None:
        name_column = _unit_name_column(region)
        columns = [region.communities.geometry.name] + ([name_column] if name_column else [])
        units = region.communities[columns].join(report.units, how="inner", rsuffix="_unit")
        if len(units):
            unit_layer = folium.FeatureGroup(name=units_name, show=False).add_to(m)
            _add_units(unit_layer, units, group=group, label=label, top=top, name_column=name_column)
            legend.append(_legend_units(units_name))

    folium.map.CustomPane(_SITES_PANE, z_index=450, pointer_events=True).add_to(m)
    site_layers = _add_sites(m, report, top=top)
    legend.append(_legend_sites(site_layers))
    legend.append(_legend_boundary(boundary_name))
    legend.append(_legend_note(region, top))

    folium.LayerControl(position="topright", collapsed=JsCode(SMALL_WINDOW)).add_to(m)
    MapScript("L.control.scale({imperial: false, maxWidth: 150}).addTo(map);").add_to(m)
    Control(_title_html(report, group=group, label=label, top=top), position="topleft", css_class="geoplan-box geoplan-title", first=True).add_to(m)
    Control(legend_html(legend), position="bottomright", css_class="geoplan-box geoplan-legend", legend=True).add_to(m)
    # Fit the region beside the legend (folded on small maps), and keep popups clear of the boxes.
    bounds = js_json([[south, west], [north, east]])
    MapScript(
        f"map.fitBounds({bounds}, {{paddingTopLeft: [12, 12], paddingBottomRight: [{SMALL_WINDOW} ? 12 : 280, 12]}});"
    ).add_to(m)
    MapScript(POPUPS_CLEAR_OF_CONTROLS).add_to(m)
    check_offline(m, basemap=basemap)
    return m


def base_map(region, title: str, *, basemap: str) -> tuple[folium.Map, gpd.GeoDataFrame]:
    """An empty map of ``region`` that works offline, and the region's boundary in WGS84 (simplified) it is centred on.

    The page is titled ``"<name_zh> <name>: <title>"``; Leaflet is inlined;
    ``basemap="osm"`` adds OpenStreetMap tiles (``"none"``: no tiles).
    """
    boundary = _wgs84(region.boundary[[region.boundary.geometry.name]], tolerance_m=SIMPLIFY_M)
    west, south, east, north = boundary.total_bounds
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], tiles=None, zoom_start=13, zoom_snap=0.25, zoom_delta=0.5)
    info = region.config.region
    m.get_root().title = html.escape(f"{info.name_zh} {info.name}: {title}")
    _inline_leaflet(m)
    if basemap == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", control=False, max_zoom=19).add_to(m)
    return m, boundary


def save_map(m: folium.Map, path: str | Path) -> Path:
    """Write ``m`` to ``path`` as one HTML file, atomically; parent folders are created.

    The page is written beside ``path`` and renamed into place, so a reader
    never sees half a map.
    """
    path = Path(path)
    page = m.get_root().render()
    with _files.atomic_file(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("Wrote %s (%.0f kB)", path, path.stat().st_size / 1024)
    return path


# --- layers ----------------------------------------------------------------------------------


def _add_gaps(layer, gaps: gpd.GeoDataFrame, *, group: str, top: float, breaks: list[float], colours: list[str]) -> None:
    people = gaps[group].to_numpy()
    classes = np.searchsorted(breaks, people, side="right")
    colour_of = {str(i): colours[c] for i, c in zip(gaps.index, classes)}
    minutes = gaps["nearest_time_min"].to_numpy(dtype=float) if "nearest_time_min" in gaps else np.full(len(gaps), np.inf)
    on_foot = gaps["on_foot"].to_numpy(dtype=bool) if "on_foot" in gaps else np.ones(len(gaps), dtype=bool)
    frame = gpd.GeoDataFrame(
        {
            "p60": _whole(gaps, "pop_60"),
            "p80": _whole(gaps, "pop_80"),
            # minutes to the nearest site; null: beyond the largest threshold; false: no walkable street near
            "t": [(round(float(t)) if np.isfinite(t) else None) if foot else False for t, foot in zip(minutes, on_foot)],
        },
        index=gaps.index,
        geometry=gaps.geometry,
        crs=gaps.crs,
    )
    rows = [("60岁以上 people 60+", "p60", "people"), ("80岁以上 people 80+", "p80", "people"), ("步行至最近站点 walk to nearest site", "t", "walk")]
    folium.GeoJson(
        geojson_layer(frame, tolerance_m=SIMPLIFY_M),
        style_function=lambda feature: {"weight": 0, "fillColor": colour_of[feature["id"]], "fillOpacity": 0.8},
        on_each_feature=popup_html(rows, top=top),
    ).add_to(layer)


def _add_newly_covered(layer, cells: gpd.GeoDataFrame, *, top: float) -> None:
    frame = gpd.GeoDataFrame(
        {"p60": _whole(cells, "pop_60"), "p80": _whole(cells, "pop_80")}, index=cells.index, geometry=cells.geometry, crs=cells.crs
    )
    frame = frame[~frame.index.duplicated()]  # a cell newly reached by a station and a canteen is drawn once
    rows = [("60岁以上 people 60+", "p60", "people"), ("80岁以上 people 80+", "p80", "people")]
    folium.GeoJson(
        geojson_layer(frame, tolerance_m=SIMPLIFY_M),
        style_function=constant_style({"weight": 0, "fillColor": _NEWLY_COVERED_COLOUR, "fillOpacity": 0.8}),
        on_each_feature=popup_html(rows, top=top),
    ).add_to(layer)


def _add_units(layer, units: gpd.GeoDataFrame, *, group: str, label: str, top: float, name_column: str | None) -> None:
    pct = units[f"{group}_covered_pct"].to_numpy(dtype=float) if f"{group}_covered_pct" in units else np.full(len(units), np.nan)
    colour_of = {}
    for unit_id, value in zip(units.index, pct):
        colour_of[str(unit_id)] = _UNIT_NO_DATA if np.isnan(value) else next(c for bound, c, _ in _UNIT_CLASSES if value < bound)
    names = units[name_column].astype(str).tolist() if name_column else [f"社区 community unit {i}" for i in units.index]
    frame = gpd.GeoDataFrame(
        {
            "name": names,
            "people": _whole(units, group),
            "covered": _whole(units, f"{group}_covered"),
            "pct": [round(float(v), 1) if np.isfinite(v) else None for v in pct],
        },
        index=units.index,
        geometry=units.geometry,
        crs=units.crs,
    )
    rows = [
        ("社区 unit", "name", "text"),
        (f"{label}居民 residents {label}", "people", "people"),
        (f"{top:g}分钟内 within {top:g} min", "covered", "people"),
        ("覆盖率 covered", "pct", "percent"),
    ]
    folium.GeoJson(
        geojson_layer(frame, tolerance_m=SIMPLIFY_M),
        style_function=lambda feature: {"color": "#ffffff", "weight": 0.8, "fillColor": colour_of[feature["id"]], "fillOpacity": 0.7},
        on_each_feature=popup_html(rows, top=top),
    ).add_to(layer)


def _add_sites(m: folium.Map, report: CoverageReport, *, top: float) -> list[tuple[str, str, dict]]:
    """One layer per site status (existing, candidate...); returns (status, layer name, style)."""
    sites = report.sites
    default_status = "candidate" if report.site_source == "candidates" else "existing"
    status = sites["status"].fillna(default_status).astype(str) if "status" in sites else pd.Series(default_status, index=sites.index)
    kinds = sites["kind"].astype(str) if "kind" in sites else pd.Series("station", index=sites.index)
    names = sites["name"].fillna("").astype(str) if "name" in sites else pd.Series("", index=sites.index)
    names = names.where(names != "", pd.Series(sites.index.astype(str), index=sites.index))
    frame = gpd.GeoDataFrame(
        {
            "name": names.tolist(),
            "kind": [_KIND_LABELS.get(k, k) for k in kinds],
            "status": [_STATUS_LABELS.get(s, s) for s in status],
            "p60": _whole(sites, f"within_{top:g}min_pop_60"),
            "p80": _whole(sites, f"within_{top:g}min_pop_80"),
        },
        index=sites.index,
        geometry=sites.geometry,
        crs=sites.crs,
    )
    rows = [
        ("名称 name", "name", "text"),
        ("类型 kind", "kind", "text"),
        ("状态 status", "status", "text"),
        (f"{top:g}分钟内60岁以上 60+ within {top:g} min", "p60", "people"),
        (f"{top:g}分钟内80岁以上 80+ within {top:g} min", "p80", "people"),
    ]
    ordered = [s for s in _STATUS_LAYERS if (status == s).any()] + sorted(set(status) - set(_STATUS_LAYERS))
    layers = []
    for value in ordered:
        zh, en = _STATUS_LAYERS.get(value, ("站点", f"Sites ({value})"))
        name = f"{zh} {en}"
        style = _SITE_STYLES.get(value, _OTHER_SITE_STYLE)
        layer = folium.FeatureGroup(name=name, show=True).add_to(m)
        folium.GeoJson(
            geojson_layer(frame[(status == value).to_numpy()]),
            marker=folium.CircleMarker(),
            # (the pane goes with the style: folium's CircleMarker drops a pane option)
            style_function=constant_style({**style, "fill": True, "pane": _SITES_PANE}),
            on_each_feature=popup_html(rows, top=top, tooltip="name"),
        ).add_to(layer)
        layers.append((value, name, style))
    return layers


def popup_html(rows: list[tuple[str, str, str]], *, top: float, tooltip: str | None = None) -> JsCode:
    """Bind a popup table (and a tooltip) to each feature, built from its properties.

    ``rows`` are ``(label, property, format)`` with format ``text``,
    ``people`` (``1,234``), ``percent`` or ``walk`` (minutes; null: beyond
    ``top``; false: no walkable street near). Values are set as text, never
    parsed as HTML, so a facility name cannot inject markup into the page.
    """
    spec = {"rows": rows, "tooltip": tooltip, "beyond": f"超过{top:g}分钟 beyond {top:g} min"}
    return JsCode(f"geoplanPopup({js_json(spec)})")


# Leaflet pans an opened popup into the map but not out from under the title box or
# the layer list (controls lie above popups); move it down (or up) until it is clear.
POPUPS_CLEAR_OF_CONTROLS = """
map.on('popupopen', function (e) {
    var popup = e.popup.getElement();
    if (!popup) { return; }
    var box = popup.getBoundingClientRect(), shift = 0;
    map.getContainer().querySelectorAll('.leaflet-control').forEach(function (control) {
        var r = control.getBoundingClientRect();
        if (r.left >= box.right || r.right <= box.left || r.top >= box.bottom || r.bottom <= box.top) { return; }
        var top = control.parentNode.classList.contains('leaflet-top');
        shift = top ? Math.min(shift, box.top - r.bottom - 8) : Math.max(shift, box.bottom - r.top + 8);
    });
    if (shift) { map.panBy([0, shift]); }
});
"""

_POPUP_JS = """
<script>
function geoplanFormat(format, value, spec) {
    if (format === 'walk') {
        if (value === false) { return '附近无步行道路 no walkable street nearby'; }
        return value === null || value === undefined ? spec.beyond : value + ' 分钟 min';
    }
    if (value === null || value === undefined) { return format === 'percent' ? '无老年居民 no older residents' : '–'; }
    if (format === 'people') { return Math.round(value).toLocaleString('en-US'); }
    if (format === 'percent') { return Number(value).toFixed(1) + '%'; }
    return String(value);
}
function geoplanPopup(spec) {
    return function (feature, layer) {
        var props = feature.properties;
        layer.bindPopup(function () {
            var table = L.DomUtil.create('table', 'geoplan-popup');
            spec.rows.forEach(function (row) {
                var tr = L.DomUtil.create('tr', '', table);
                L.DomUtil.create('th', '', tr).textContent = row[0];
                L.DomUtil.create('td', '', tr).textContent = geoplanFormat(row[2], props[row[1]], spec);
            });
            return table;
        }, {maxWidth: 320});
        if (spec.tooltip) {
            layer.bindTooltip(function () {
                var span = document.createElement('span');
                span.textContent = props[spec.tooltip];
                return span;
            });
        }
    };
}
</script>
"""


# --- title and legend ------------------------------------------------------------------------


def _title_html(report: CoverageReport, *, group: str, label: str, top: float) -> str:
    info = report.region.config.region
    n = len(report.sites)
    zh_if, en_if = "", ""
    if report.site_source == "facilities":
        sites = f"{n:,} 处现有养老服务设施 · {n:,} existing care facilities"
    elif report.site_source == "candidates":
        sites = (
            f"尚无现有养老设施名录:图中为 {n:,} 处<b>候选站点</b>(假定全部开设)。"
            f"<br>No list of existing facilities is known: these are {n:,} <b>candidate sites</b>, all assumed open."
        )
        zh_if, en_if = "若全部候选站点开设:", "If every candidate site opened: "
    else:
        counts = report.sites["status"].value_counts() if "status" in report.sites else {}
        zh = "、".join(f"{c:,} 处{_STATUS_LAYERS.get(s, ('站点',))[0]}" for s, c in counts.items()) or f"{n:,} 处站点"
        en = ", ".join(f"{c:,} {_STATUS_LAYERS.get(s, ('', 'sites'))[1].lower()}" for s, c in counts.items()) or f"{n:,} sites"
        sites = f"指定站点:{zh} · Given sites: {en}"
    row = report.summary.loc[(group, top)]
    covered, population, pct = float(row["covered"]), float(row["population"]), float(row["covered_pct"])
    headline = (
        f"{zh_if}步行{top:g}分钟内的{label}老人 <b>{covered:,.0f}</b> 人,占 <b>{pct:.1f}%</b>"
        f"<br>{en_if}<b>{covered:,.0f}</b> of {population:,.0f} people {label} (<b>{pct:.1f}%</b>) live within a {top:g}-min walk"
    )
    city = f" · {html.escape(info.city)}" if info.city else ""
    return (
        f"<div class='geoplan-h1'>{html.escape(info.name_zh)} {html.escape(info.name)}{city}</div>"
        f"<div class='geoplan-h2'>{top:g}分钟养老服务圈 · {top:g}-minute care circles</div>"
        f"<div class='geoplan-sites'>{sites}</div>"
        f"<div class='geoplan-headline'>{headline}</div>"
    )


def legend_html(sections: list[str]) -> str:
    return f"<details open><summary>图例 Legend</summary>{''.join(sections)}</details>"


def _legend_note(region, top: float) -> str:
    speed = region.config.network.walk_speed_mps
    note = f"<div class='geoplan-note'>步行速度 walking speed {speed:g} m/s ({top:g} min ≈ {speed * 60 * top:,.0f} m)</div>"
    if region.config.region.attribution:
        note += f"<div class='geoplan-note'>数据 Data: {html.escape(region.config.region.attribution)}</div>"
    return note


def legend_section(title: str, rows: list[str], *, layer: str | None = None, hidden: bool = False) -> str:
    """A legend section; with ``layer``, shown only while that layer is on."""
    heading = f"<div class='geoplan-h4'>{title}</div>" if title else ""
    return f"<div class='geoplan-section'{_layer_attrs(layer, hidden)}>{heading}{''.join(rows)}</div>"


def legend_row(symbol: str, text: str, *, layer: str | None = None) -> str:
    """A legend row; with ``layer``, shown only while that layer is on."""
    return f"<div class='geoplan-row'{_layer_attrs(layer, False)}>{symbol}<span>{text}</span></div>"


def _layer_attrs(layer: str | None, hidden: bool) -> str:
    attrs = f" data-layer='{html.escape(layer, quote=True)}'" if layer else ""
    return attrs + (" hidden" if hidden else "")


def swatch_html(colour: str, *, opacity: float = 1.0, border: str = "rgba(0,0,0,.25)") -> str:
    return f"<i class='geoplan-swatch' style='background:{colour};opacity:{opacity:g};border-color:{border}'></i>"


def _legend_circles(thresholds: list[float], colours: dict[float, str], names: dict[float, str]) -> str:
    """Swatches light to dark; the map shows them stacked, so the 5-min cores read darker still."""
    swatch = {t: swatch_html(colours[t], opacity=_CIRCLE_PANE_OPACITY + 0.15) for t in thresholds}
    rows = [legend_row(swatch[t], f"{t:g}分钟 {t:g} min", layer=names[t]) for t in thresholds]
    return legend_section("养老服务圈(步行)Care circles (walk)", rows)


def _legend_sites(layers: list[tuple[str, str, dict]]) -> str:
    rows = []
    for _status, name, style in layers:
        size = 2 * style["radius"]
        dot = (
            f"<i class='geoplan-dot' style='width:{size:g}px;height:{size:g}px;background:{style['fillColor']};"
            f"border:{style['weight']:g}px solid {style['color']};box-shadow:0 0 0 1px rgba(0,0,0,.25)'></i>"
        )
        rows.append(legend_row(f"<span class='geoplan-symbol'>{dot}</span>", name, layer=name))
    return legend_section("站点 Sites", rows)


def _legend_gaps(name: str, label: str, top: float, breaks: list[float], colours: list[str], cell_m: float | None) -> str:
    bounds = [0.0, *breaks, np.inf]
    rows = []
    for i, colour in enumerate(colours):
        low, high = bounds[i], bounds[i + 1]
        if len(colours) == 1:
            text = "所有格 all cells"
        elif i == 0:
            text = f"< {high:,.0f}"
        else:
            text = f"≥ {low:,.0f}" if not np.isfinite(high) else f"{low:,.0f}–{high:,.0f}"
        rows.append(legend_row(swatch_html(colour, opacity=0.8), text))
    cell = f"≈{cell_m:,.0f} m " if cell_m else ""
    title = f"{top:g}分钟圈外{label}老人(人/格)<br>People {label} beyond {top:g} min, per {cell}cell"
    return legend_section(title, rows, layer=name)


def _legend_units(name: str) -> str:
    rows = [legend_row(swatch_html(c, opacity=0.7), text) for _, c, text in _UNIT_CLASSES]
    rows.append(legend_row(swatch_html(_UNIT_NO_DATA, opacity=0.7), "无老年居民 no older residents"))
    return legend_section("社区覆盖率 Community coverage", rows, layer=name, hidden=True)


def _legend_boundary(name: str) -> str:
    line = "<i class='geoplan-line'></i>"
    return legend_section("", [legend_row(line, "区域边界 region boundary", layer=name)])


_CSS = f"""
<style>
.leaflet-container {{ background: {_BACKGROUND}; font-family: {_FONT}; }}
.leaflet-pane[class*="leaflet-geoplanCircle"] {{ opacity: {_CIRCLE_PANE_OPACITY}; }}
.geoplan-box {{ background: rgba(255,255,255,.94); color: #222; padding: 8px 10px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,.3); font: 12px/1.45 {_FONT}; }}
.geoplan-title {{ max-width: 360px; }}
.geoplan-h1 {{ font-size: 16px; font-weight: 700; }}
.geoplan-h2 {{ font-size: 12px; color: #444; margin-bottom: 4px; }}
.geoplan-sites {{ margin: 4px 0; }}
.geoplan-headline {{ border-top: 1px solid #ddd; padding-top: 4px; font-size: 13px; }}
.geoplan-legend {{ max-width: 250px; max-height: calc(100vh - 90px); overflow-y: auto; }}
.geoplan-legend summary {{ font-weight: 700; cursor: pointer; }}
.geoplan-section {{ margin-top: 6px; }}
.geoplan-section[hidden] {{ display: none; }}
.geoplan-h4 {{ font-weight: 600; margin-bottom: 2px; }}
.geoplan-row {{ display: flex; align-items: center; gap: 6px; margin: 1px 0; }}
.geoplan-swatch {{ display: inline-block; flex: none; width: 18px; height: 12px; border: 1px solid; }}
.geoplan-symbol {{ display: inline-flex; flex: none; width: 18px; justify-content: center; }}
.geoplan-dot {{ display: inline-block; border-radius: 50%; box-sizing: border-box; }}
.geoplan-line {{ display: inline-block; flex: none; width: 18px; border-top: 2px dashed #333; }}
.geoplan-note {{ margin-top: 6px; color: #555; font-size: 11px; }}
.leaflet-control-layers {{ font: 12px/1.45 {_FONT}; }}
.geoplan-popup th {{ font-weight: 600; color: #444; text-align: left; padding: 1px 8px 1px 0; }}
.geoplan-popup td {{ text-align: right; }}
.geoplan-popup {{ font: 12px/1.4 {_FONT}; }}
@media (max-width: 700px), (max-height: 600px) {{
  .geoplan-box {{ font-size: 11px; padding: 6px 8px; }}
  .geoplan-title {{ max-width: 230px; }}
  .geoplan-h1 {{ font-size: 14px; }}
  .geoplan-headline {{ font-size: 12px; }}
  .geoplan-legend {{ max-width: 200px; }}
}}
</style>
"""


#: A map too small for the layer list and the legend to stay open side by side (an iframe in a report).
SMALL_WINDOW = "(window.innerWidth < 700 || window.innerHeight < 600)"


class MapScript(branca.element.MacroElement):
    """A line of JavaScript run once the map exists, with the map as ``map``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function (map) { {{ this.code }} })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, code: str):
        super().__init__()
        self._name = "GeoplanScript"
        self.code = code


class Control(branca.element.MacroElement):
    """A Leaflet control holding fixed HTML (title box, legend), stacked with the other controls.

    A legend (``legend=True``) shows a section only while its layer is on (the
    section's ``data-layer`` is the layer's name), and starts folded on small maps.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
        {{ this.get_name() }}.onAdd = function (map) {
            var div = L.DomUtil.create('div', {{ this.css_class|tojson }});
            div.innerHTML = {{ this.content|tojson }};
            L.DomEvent.disableClickPropagation(div);
            L.DomEvent.disableScrollPropagation(div);
            {%- if this.legend %}
            if ({{ this.small_window }}) { div.querySelector('details').open = false; }
            map.on('overlayadd overlayremove', function (e) {
                div.querySelectorAll('[data-layer]').forEach(function (section) {
                    if (section.getAttribute('data-layer') === e.name) { section.hidden = (e.type === 'overlayremove'); }
                });
            });
            {%- endif %}
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {%- if this.first %}
        (function (c) { c.parentNode.insertBefore(c, c.parentNode.firstChild); })({{ this.get_name() }}.getContainer());
        {%- endif %}
        {% endmacro %}
        """
    )

    def __init__(self, content: str, *, position: str, css_class: str, first: bool = False, legend: bool = False):
        super().__init__()
        self._name = "GeoplanControl"
        self.content = content
        self.position = position
        self.css_class = css_class
        self.first = first
        self.legend = legend
        self.small_window = SMALL_WINDOW


# --- offline page ----------------------------------------------------------------------------


class Raw(branca.element.Element):
    """Text put into the page as it is (not parsed as a Jinja template)."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    def render(self, **kwargs) -> str:
        return self._text


@functools.cache
def _leaflet_assets() -> tuple[str, str]:
    """Leaflet's JS and CSS from ``geoplan/static/leaflet``, ready to inline."""
    root = resources.files("geoplan") / "static" / "leaflet"
    js = (root / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js).replace("</script", "<\\/script")
    css = (root / "leaflet.css").read_text(encoding="utf-8")

    def data_uri(match: re.Match) -> str:
        png = (root / "images" / match.group(1)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(png).decode('ascii')})"

    css = re.sub(r"url\(images/(layers(?:-2x)?\.png)\)", data_uri, css)
    return js, css


def _inline_leaflet(m: folium.Map) -> None:
    """Inline Leaflet into ``m``'s page and drop folium's CDN links (jQuery, Bootstrap...).

    Instance attributes shadow folium's class-level lists, which stay untouched
    for other maps in the same process.
    """
    m.default_js = []
    m.default_css = []
    js, css = _leaflet_assets()
    header = m.get_root().header
    header.add_child(Raw(f"<style>{css}</style>"), name="leaflet_css")
    header.add_child(Raw(f"<script>{js}</script>"), name="leaflet_js")
    header.add_child(Raw(_CSS), name="geoplan_css")
    header.add_child(Raw(_POPUP_JS), name="geoplan_js")


def check_offline(m: folium.Map, *, basemap: str) -> None:
    """Fail loudly if any element of ``m`` would load a script or stylesheet from the web."""
    links: list[str] = []

    def walk(element) -> None:
        if isinstance(element, JSCSSMixin):
            links.extend(url for _, url in [*element.default_js, *element.default_css])
        for child in element._children.values():
            walk(child)

    walk(m)
    if links:
        raise RuntimeError(f"The map would load {links} from the web; geoplan maps must work offline (basemap={basemap!r}).")


# --- helpers ---------------------------------------------------------------------------------


def _map_group(report: CoverageReport) -> str:
    groups = list(report.summary.index.get_level_values("group").unique())
    return "pop_60" if "pop_60" in groups and "pop_60" in report.gaps else groups[0]


def _unit_name_column(region) -> str | None:
    source = region.config.communities
    column = source.name_column if source is not None else None
    return column if column and column in region.communities else None


def _wgs84(frame: gpd.GeoDataFrame, *, tolerance_m: float) -> gpd.GeoDataFrame:
    """``frame`` simplified by ``tolerance_m`` (in its metric CRS), in WGS84, snapped to about 1 m."""
    geometry = frame.geometry
    if tolerance_m:
        geometry = geometry.simplify(tolerance_m, preserve_topology=True)
    geometry = geometry.to_crs(4326).set_precision(_GRID_DEG)
    keep = ~(geometry.isna() | geometry.is_empty)
    return gpd.GeoDataFrame(frame.drop(columns=frame.geometry.name)[keep.to_numpy()], geometry=geometry[keep], crs=4326)


def geojson_layer(frame: gpd.GeoDataFrame, *, tolerance_m: float = 0.0) -> dict:
    """A GeoJSON FeatureCollection of ``frame`` in WGS84; feature ids are the index."""
    return json.loads(_wgs84(frame, tolerance_m=tolerance_m).to_json(drop_id=False))


def constant_style(style: dict) -> Callable[[dict], dict]:
    return lambda _feature: dict(style)


def _whole(frame: pd.DataFrame, column: str) -> list[int | None]:
    """``frame[column]``, counts of people, as whole numbers (None where unknown or absent).

    The popup adds the thousands separators (``1,234``).
    """
    if column not in frame:
        return [None] * len(frame)
    return [int(round(v)) if np.isfinite(v) else None for v in frame[column].to_numpy(dtype=float)]


def js_json(value) -> str:
    """``value`` as JSON safe to put inside a ``<script>``."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _nice(value: float) -> float:
    """``value`` rounded to a break a reader takes in at a glance: 7, 15, 20, 120, 1,500."""
    if value < 10:
        return float(round(value))
    if value < 100:
        return float(5 * round(value / 5))
    step = 10 ** (len(str(int(value))) - 2)
    return float(step * round(value / step))


def _gap_classes(people: np.ndarray, n: int = 5) -> tuple[list[float], list[str]]:
    """Class breaks (quantiles, rounded) and colours for people per cell."""
    if not len(people):
        return [], [_GAP_COLOURS[-1]]
    quantiles = np.quantile(people, np.linspace(0, 1, n + 1)[1:-1])
    breaks = sorted({b for b in map(_nice, quantiles) if people.min() < b <= people.max()})
    picks = np.round(np.linspace(0, len(_GAP_COLOURS) - 1, len(breaks) + 1)).astype(int)
    return breaks, [_GAP_COLOURS[i] for i in picks]


def _circle_colours(thresholds: list[float]) -> dict[float, str]:
    """Dark for the shortest walk, light for the longest."""
    ordered = sorted(thresholds)
    if len(ordered) == 1:
        return {ordered[0]: _CIRCLE_DARK}
    light = np.array([int(_CIRCLE_LIGHT[i : i + 2], 16) for i in (1, 3, 5)])
    dark = np.array([int(_CIRCLE_DARK[i : i + 2], 16) for i in (1, 3, 5)])
    colours = {}
    for i, t in enumerate(ordered):
        share = i / (len(ordered) - 1)  # 0: shortest (dark), 1: longest (light)
        rgb = np.round(dark + (light - dark) * share).astype(int)
        colours[t] = "#" + "".join(f"{c:02x}" for c in rgb)
    return colours


def _cell_size_m(cells: gpd.GeoDataFrame) -> float | None:
    """The side of the (square) population cells, in metres, for the legend."""
    if not len(cells) or not cells.crs or not cells.crs.is_projected:
        return None
    area = float(np.median(cells.geometry.area))
    return round(area**0.5 / 10) * 10 if area > 0 else None
