"""Tests for geoplan.registers: priority-group registers spread over cells, and demand as points.

Hand-made demand (pop_60 per cell) in three communities and outside them::

    community A: a1 10, a2 30, a3 60      (sum 100)
    community B: b1 25, b2 75             (sum 100... and pop_total 40, 160)
    community C: c1 0,  c2 0              (no 60+: spread by pop_total 10, 30)
    outside:     o1 50

A register row "A: 高龄 20, 残疾 7" gives a1 20*10/100 = 2, a2 6, a3 12 and
a1 0.7, a2 2.1, a3 4.2; "B: 高龄 8, 残疾 4" gives b1 2, b2 6 and 1, 3;
"C: 高龄 4" gives c1 4*10/40 = 1, c2 3. The outside cell gets nothing.
"""

from __future__ import annotations

import textwrap

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from geoplan.config import load_config
from geoplan.coords import from_wgs84
from geoplan.coverage import coverage_summary
from geoplan.errors import ConfigError, InputError
from geoplan.optimize import priority_weights
from geoplan.registers import add_register, group_label, load_demand_points, load_register, spread_register
from geoplan.units import OUTSIDE
from tests.conftest import UTM50, WUCHANG_TOML, X0, Y0, points_frame, tiny_network

CELLS = {
    "a1": ("A", 10, 20), "a2": ("A", 30, 50), "a3": ("A", 60, 90),
    "b1": ("B", 25, 40), "b2": ("B", 75, 160),
    "c1": ("C", 0, 10), "c2": ("C", 0, 30),
    "o1": (OUTSIDE, 50, 70),
}


def hand_demand() -> tuple[gpd.GeoDataFrame, pd.Series]:
    ids = list(CELLS)
    demand = points_frame(
        {c: (100 * i, 0) for i, c in enumerate(ids)},
        index_name="demand_id",
        pop_total=[float(CELLS[c][2]) for c in ids],
        pop_60=[float(CELLS[c][1]) for c in ids],
        pop_80=[float(CELLS[c][1]) / 10 for c in ids],
    )
    return demand, pd.Series([CELLS[c][0] for c in ids], index=ids)


def hand_communities() -> gpd.GeoDataFrame:
    codes = ["A", "B", "C", "D"]
    return gpd.GeoDataFrame(
        {"name": ["甲社区", "乙社区", "丙社区", "丁社区"], "street_code": OUTSIDE},
        geometry=[shapely.box(X0 + 1000 * i, Y0, X0 + 1000 * i + 10, Y0 + 10) for i in range(4)],
        crs=UTM50,
        index=pd.Index(codes, name="community_code"),
    )


def write_register(tmp_path, text: str, name: str = "register.csv"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# ------------------------------------------------------------------ registers


def test_register_is_spread_exactly_in_proportion_to_60plus(tmp_path):
    path = write_register(tmp_path, """
        社区代码,高龄,残疾,独居,低保
        A,20,7,3,1
        B,8,4,,2
        C,4,0,1,0
    """)
    counts = load_register(path, hand_communities())
    assert counts.columns.tolist() == ["pop_80", "pop_disabled", "pop_alone", "pop_low_income"]
    assert counts.loc["B"].tolist() == [8, 4, 0, 2]  # a blank count is 0
    demand, community_of = hand_demand()
    spread = spread_register(demand, counts, community_of)
    hand = {  # cell: (80+, disabled), counted by hand in the module docstring
        "a1": (2.0, 0.7), "a2": (6.0, 2.1), "a3": (12.0, 4.2),
        "b1": (2.0, 1.0), "b2": (6.0, 3.0),
        "c1": (1.0, 0.0), "c2": (3.0, 0.0),
        "o1": (0.0, 0.0),
    }
    for cell, (eighty, disabled) in hand.items():
        assert spread.loc[cell, "pop_80"] == pytest.approx(eighty)
        assert spread.loc[cell, "pop_disabled"] == pytest.approx(disabled)
    per_community = spread.groupby(community_of).sum()
    for community in ("A", "B", "C"):  # every community keeps its register totals
        assert per_community.loc[community].to_numpy() == pytest.approx(counts.loc[community].to_numpy())
    assert per_community.loc[OUTSIDE].sum() == 0
    assert spread["pop_alone"].sum() == pytest.approx(4.0)


def test_add_register_keeps_the_raster_groups_and_feeds_priority_weights(tmp_path):
    path = write_register(tmp_path, """
        community_code,pop_80,pop_disabled
        A,20,7
    """)
    demand, community_of = hand_demand()
    with_register = add_register(demand, spread_register(demand, load_register(path, hand_communities()), community_of))
    assert with_register["pop_80"].equals(demand["pop_80"])  # the demand's own 80+ untouched
    assert with_register.loc["a3", "pop_80_reg"] == pytest.approx(12.0)
    assert with_register.loc["a3", "pop_disabled"] == pytest.approx(4.2)
    assert "pop_disabled" not in demand  # a copy
    assert group_label("pop_80_reg") == "80+ (register) 高龄" and group_label("pop_disabled") == "disabled 残疾"
    weights = priority_weights(with_register, {"pop_60": 1.0, "pop_disabled": 2.0})
    assert weights["a3"] == pytest.approx(60 + 2 * 4.2)


def test_register_by_name_from_a_workbook_with_a_title_row(tmp_path):
    import openpyxl

    path = tmp_path / "register.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["武昌区 2024 年特殊困难老人名册"])
    sheet.append(["社区名称", "残疾老人", "独居老人", "持证残疾人"])
    sheet.append(["甲社区", 5, 2, 9])
    sheet.append(["乙社区", 1, 1, 3])
    book.save(path)
    counts = load_register(path, hand_communities(), columns={"pop_certified": "持证残疾人"})
    assert counts.index.tolist() == ["A", "B"]
    assert counts.loc["A"].to_dict() == {"pop_certified": 9, "pop_disabled": 5, "pop_alone": 2}


def test_register_rows_matching_no_community_are_listed(tmp_path):
    path = write_register(tmp_path, """
        社区代码,高龄
        A,20
        Z,5
        合计,25
    """)
    with pytest.raises(InputError, match=r"2 of 3 row\(s\) match no community by code .*row 2: 'Z', row 3: '合计'; they hold 30 pop_80"):
        load_register(path, hand_communities())
    with pytest.warns(UserWarning, match=r"2 of 3 row\(s\) match no community .*left out with 30 pop_80"):
        counts = load_register(path, hand_communities(), unmatched="warn")
    assert counts["pop_80"].to_dict() == {"A": 20}
    assert counts.attrs["unmatched"].index.tolist() == [2, 3]


def test_register_errors_name_the_problem(tmp_path):
    text = write_register(tmp_path, "社区代码,高龄\nA,二十\n")
    with pytest.raises(InputError, match=r"column '高龄' holds text where counts belong in row\(s\) 1 \('二十'\)"):
        load_register(text, hand_communities())
    no_key = write_register(tmp_path, "楼栋,高龄\n1,2\n")
    with pytest.raises(InputError, match="needs a community column"):
        load_register(no_key, hand_communities())
    no_counts = write_register(tmp_path, "社区代码,备注\nA,x\n")
    with pytest.raises(InputError, match="has no count column"):
        load_register(no_counts, hand_communities())
    demand, community_of = hand_demand()
    counts = pd.DataFrame({"pop_alone": [3.0]}, index=pd.Index(["D"], name="community_code"))
    with pytest.raises(InputError, match=r"1 community of the register has no demand cell .*\['D'\]"):
        spread_register(demand, counts, community_of)
    with pytest.warns(UserWarning, match=r"their counts \(3 pop_alone\) are left out"):
        assert spread_register(demand, counts, community_of, unmatched="warn")["pop_alone"].sum() == 0


# ------------------------------------------------------------------ demand points


def to_lon_lat(xy: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = Transformer.from_crs(UTM50, 4326, always_xy=True).transform([X0 + x for x, _ in xy], [Y0 + y for _, y in xy])
    return np.asarray(lon), np.asarray(lat)


def test_demand_points_from_a_gcj02_table(tmp_path):
    xy = [(150, 10), (700, -40), (5000, 5000)]
    lon, lat = to_lon_lat(xy)
    glon, glat = from_wgs84(lon, lat, "gcj02")  # the numbers an Amap list holds
    path = tmp_path / "compounds.csv"
    pd.DataFrame({"小区名称": ["东苑", "西苑", "北苑"], "经度": glon, "纬度": glat, "总人口": [1200, 800, 0], "60岁以上": [300, 200, 0], "80岁以上": [40, ""] + [0]}).to_csv(path, index=False)
    demand = load_demand_points(path, crs=UTM50, coord_system="gcj02", cell_m=40)
    assert demand.index.name == "demand_id" and demand.index.tolist() == [1, 2, 3]
    assert demand.columns.tolist() == ["pop_total", "pop_60", "pop_80", "name", "geometry", "cell"]
    assert demand["pop_60"].tolist() == [300, 200, 0] and demand["pop_80"].tolist() == [40, 0, 0]
    assert demand["name"].tolist() == ["东苑", "西苑", "北苑"]
    assert demand.crs == UTM50
    assert np.allclose(demand.geometry.x - X0, [x for x, _ in xy], atol=0.01)  # GCJ-02 undone to below 1 cm
    assert np.allclose(demand.geometry.y - Y0, [y for _, y in xy], atol=0.01)
    cells = gpd.GeoSeries(demand["cell"], crs=UTM50)
    assert cells.area.round(6).tolist() == [1600.0] * 3 and cells.contains(demand.geometry).all()


def test_demand_points_from_a_layer_and_outside_the_boundary(tmp_path):
    boundary = gpd.GeoDataFrame(geometry=[shapely.box(X0 - 100, Y0 - 100, X0 + 1000, Y0 + 1000)], crs=UTM50)
    layer = points_frame({1: (100, 100), 2: (900, 900), 3: (1500, 100)}, index_name="id", pop_60=[5, 6, 7]).to_crs(4326)
    path = tmp_path / "compounds.geojson"
    layer.to_file(path)
    with pytest.raises(InputError, match=r"1 of 3 demand points of .*compounds\.geojson lie outside the region \(7 pop_60\): row 3 \(3\) 500 m"):
        load_demand_points(path, crs=UTM50, boundary=boundary)
    with pytest.warns(UserWarning, match="left out"):
        demand = load_demand_points(path, crs=UTM50, boundary=boundary, outside="drop")
    assert demand["pop_60"].tolist() == [5, 6] and "cell" in demand


def test_demand_points_are_usable_for_coverage(tmp_path):
    """The streets and points of tests/test_coverage.py: p1 5 min, p3 15 min, p8 not on foot (site S1)."""
    from geoplan.reach import travel_times

    network = tiny_network([[(0, 0), (400, 0)], [(400, 0), (800, 0)]])
    lon, lat = to_lon_lat([(150, 10), (700, -40), (3000, 3000)])
    path = tmp_path / "compounds.csv"
    pd.DataFrame({"lon": lon, "lat": lat, "pop_60": [10, 30, 80]}).to_csv(path, index=False)
    demand = load_demand_points(path, crs=UTM50)
    sites = points_frame({"S1": (100, 30)}, index_name="site_id")
    reach = travel_times(network, demand, sites, cutoff_s=900)
    summary = coverage_summary(demand, reach, thresholds_min=(5, 15))
    assert summary.loc[("pop_60", 5), "covered"] == 10
    assert summary.loc[("pop_60", 15), "covered"] == 40
    assert summary.loc[("pop_60", 15), "not_reachable_on_foot"] == 80


def test_registers_and_demand_points_sections_are_checked(tmp_path):
    base = WUCHANG_TOML.read_text(encoding="utf-8").replace('path = "../', f'path = "{WUCHANG_TOML.parent.parent}/')
    without_raster = base.replace(base[base.index("[population]") : base.index("[census]")], "")
    path = tmp_path / "mine.toml"
    path.write_text(without_raster + '\n[demand_points]\npath = "compounds.csv"\ncoord_system = "amap"\n', encoding="utf-8")
    config = load_config(path)
    assert config.population is None and config.demand_points.coord_system == "gcj02"
    assert config.demand_points.path == (tmp_path / "compounds.csv").resolve()
    path.write_text(base + '\n[registers]\npath = "r.csv"\nunmatched = "drop"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r'\[registers\] unmatched .* must be "error" or "warn", got \'drop\''):
        load_config(path)
    path.write_text(base + '\n[registers]\npath = "r.csv"\ncolumns = { disabled = "残疾" }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[registers\] columns .* must map group names to column names"):
        load_config(path)
    path.write_text(base + '\n[demand_points]\npath = "c.csv"\ncell = 50\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Unknown key 'cell' in \[demand_points\].* Allowed: cell_m, columns, coord_system, path, sheet\."):
        load_config(path)


# ------------------------------------------------------------------ a region from points and a register (slow)


def test_region_from_demand_points_with_a_register(tmp_path, cache_dir, wuchang):
    """Compounds at three community units' street points (GCJ-02), a register for two of those units."""
    import geoplan

    candidates = wuchang.candidates.head(3).to_crs(4326)
    glon, glat = from_wgs84(candidates.geometry.x.to_numpy(), candidates.geometry.y.to_numpy(), "gcj02")
    units = candidates["unit_id"].tolist()
    pd.DataFrame({"名称": ["一苑", "二苑", "三苑"], "lng": glon, "lat": glat, "pop_total": [3000, 2000, 1000], "pop_60": [600, 500, 300], "pop_80": [90, 60, 30]}).to_csv(
        tmp_path / "compounds.csv", index=False
    )
    (tmp_path / "register.csv").write_text(f"社区代码,残疾,独居\n{units[0]},12,5\n{units[1]},4,2\n", encoding="utf-8")
    base = WUCHANG_TOML.read_text(encoding="utf-8").replace('path = "../', f'path = "{WUCHANG_TOML.parent.parent}/')
    text = base.replace(base[base.index("[population]") : base.index("[census]")], "").replace("rescale = true", "rescale = false")
    text += '\n[demand_points]\npath = "compounds.csv"\ncoord_system = "gcj02"\n\n[registers]\npath = "register.csv"\n'
    (tmp_path / "points.toml").write_text(text, encoding="utf-8")
    region = geoplan.load_region(tmp_path / "points.toml", cache_dir=cache_dir)
    demand = region.demand
    assert len(demand) == 3 and demand["unit_id"].tolist() == units
    assert {"pop_total", "pop_60", "pop_80", "pop_disabled", "pop_alone", "cell", "edge_id", "component"} <= set(demand.columns)
    assert demand["pop_disabled"].tolist() == [12, 4, 0] and demand["pop_alone"].tolist() == [5, 2, 0]
    assert region.groups == ["pop_total", "pop_60", "pop_80", "pop_disabled", "pop_alone"]
    report = geoplan.analyse_coverage(region, with_circles=False)
    assert report.summary.loc[("pop_60", 15), "population"] == 1400
    assert report.summary.loc[("pop_disabled", 15), "covered"] == 16  # a station at every unit's street point
