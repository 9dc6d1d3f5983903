"""The command line as a planner runs it: figures printed, files written, bad input told plainly."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from geoplan.cli import app

runner = CliRunner()
SAMPLE = "data/facilities/wuchang_sample_gcj02.csv"


@pytest.mark.slow
def test_coverage_with_a_gcj02_list_prints_people_and_writes_layers(tmp_path, cache_dir):
    result = runner.invoke(app, [
        "coverage", "--facilities", SAMPLE, "--coord-system", "gcj02", "--no-circles",
        "--out", str(tmp_path / "out"), "--map", str(tmp_path / "map.html"), "--cache-dir", str(cache_dir),
    ])
    assert result.exit_code == 0, result.output
    assert "19 existing facilities" in result.output
    summary = json.loads((tmp_path / "out" / "wuchang_coverage_summary.json").read_text(encoding="utf-8"))
    row = next(r for r in summary["coverage"] if r["group"] == "pop_60" and r["threshold_min"] == 15)
    assert f"{row['covered']:,.0f}" in result.output  # the table shows the same people as the file
    assert 0 < row["covered_pct"] < 100
    assert (tmp_path / "map.html").stat().st_size > 100_000


@pytest.mark.slow
def test_recommend_writes_a_phased_plan(tmp_path, cache_dir):
    result = runner.invoke(app, [
        "recommend", "--stations", "3", "--canteens", "1",
        "--out", str(tmp_path / "out"), "--map", str(tmp_path / "plan.html"), "--cache-dir", str(cache_dir),
    ])
    assert result.exit_code == 0, result.output
    assert "proven optimal" in result.output
    for name in ("wuchang_plan.xlsx", "wuchang_plan.gpkg", "wuchang_plan_sites.geojson"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    sites = json.loads((tmp_path / "out" / "wuchang_plan_sites.geojson").read_text(encoding="utf-8"))["features"]
    new = [f["properties"] for f in sites if f["properties"]["status"] == "new"]
    assert sorted(p["kind"] for p in new) == ["canteen", "station", "station", "station"]
    assert "newly within reach" in (tmp_path / "plan.html").read_text(encoding="utf-8")  # the before/after layer


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["coverage", "--region", "atlantis"], "Unknown region 'atlantis'"),
        (["coverage", "--facilities", "no/such/file.csv"], "does not exist"),
        (["coverage", "--facilities", SAMPLE, "--coord-system", "mars-grid"], "Unknown coordinate system"),
        (["recommend", "--model", "target"], "needs --target"),
        (["recommend", "--stations", "-1"], "give 0 or more"),
        (["recommend", "--target", "80"], "--target (target_pct) of the station is not used by the mclp model"),
        (["recommend", "--model", "pmedian", "--min-catchment", "50"], "--min-catchment (min_catchment) of the station is not used by the pmedian model"),
        (["recommend", "--group", "pop_80"], "--group (target_group) of the station is not used by the mclp model"),
        (["recommend", "--canteen-threshold", "20"], "used only with --canteens"),
    ],
)
def test_bad_input_is_one_clear_message_without_a_traceback(args, message, cache_dir):
    result = runner.invoke(app, [*args, "--cache-dir", str(cache_dir)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("model", ["target", "pmedian", "consolidate"])
def test_recommend_plans_canteens_for_every_model(model):
    """--canteens used to be dropped for every model but MCLP."""
    from geoplan.cli import _recommend_options

    request = _recommend_options(model, stations=None, canteens=2, threshold=None, canteen_threshold=10.0,
                                 target=60.0 if model == "target" else None, group="pop_60",
                                 min_catchment=100.0 if model == "consolidate" else None, time_limit=30.0)
    assert [s.kind for s in request.kinds] == ["station", "canteen"]
    canteen = request.kinds[1]
    assert canteen.p == 2 and canteen.threshold_min == 10.0
    assert request.options.model == model and request.solver.time_limit_s == 30.0
    if model == "target":
        assert canteen.target_pct == 60.0 and request.kinds[0].p is None


def wuchang_copy(tmp_path, edit=lambda text: text, name="mine.toml"):
    """The shipped Wuchang config with absolute data paths, edited."""
    from tests.conftest import DATA, WUCHANG_TOML

    path = tmp_path / name
    path.write_text(edit(WUCHANG_TOML.read_text(encoding="utf-8").replace('"../', f'"{DATA}/')), encoding="utf-8")
    return path


@pytest.mark.slow
def test_coverage_reads_an_excel_list(tmp_path, cache_dir):
    import pandas as pd

    sample = pd.read_csv(SAMPLE)
    listed = sample.rename(columns={"name": "名称", "lng": "经度", "lat": "纬度"})[["名称", "经度", "纬度"]]
    path = tmp_path / "list.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        pd.DataFrame({"说明": ["GCJ-02, from Amap"]}).to_excel(writer, sheet_name="说明", index=False)
        listed.to_excel(writer, sheet_name="机构", index=False)
    result = runner.invoke(app, [
        "coverage", "--facilities", str(path), "--sheet", "机构", "--coord-system", "gcj02", "--no-circles",
        "--out", str(tmp_path / "out"), "--map", str(tmp_path / "map.html"), "--cache-dir", str(cache_dir),
    ])
    assert result.exit_code == 0, result.output
    assert "19 existing facilities" in result.output
    first_sheet = runner.invoke(app, ["coverage", "--facilities", str(path), "--cache-dir", str(cache_dir)])
    assert first_sheet.exit_code == 2 and "Traceback" not in first_sheet.output
    assert "needs longitude and latitude columns" in first_sheet.output and "(sheet '说明')" in first_sheet.output


def test_config_errors_keep_their_brackets(tmp_path, cache_dir):
    path = wuchang_copy(tmp_path, lambda t: t.replace("walk_speed_mps = 1.0", "walk_speed = 1.0"), name="typo.toml")
    result = runner.invoke(app, ["coverage", "--region", str(path), "--cache-dir", str(cache_dir)])
    assert result.exit_code == 2
    assert "Unknown key 'walk_speed' in [network] of" in result.output  # not swallowed as rich markup
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_junction_candidates_and_library_warnings_are_told(tmp_path, cache_dir):
    """A small region without community units: candidates are street junctions; a big census factor is warned about."""
    import geopandas as gpd
    import shapely

    square = tmp_path / "square.geojson"
    gpd.GeoDataFrame({"adcode": ["420106"]}, geometry=[shapely.box(114.300, 30.540, 114.3233, 30.5602)], crs=4326).to_file(square)

    def edit(text):
        from tests.conftest import DATA

        text = text.replace(f'"{DATA}/boundaries/wuhan_districts.geojson"', f'"{square}"')
        text = text.replace("rescale = true", "rescale = true\nmax_factor = inf")
        return text[: text.index("[communities]")] + text[text.index("# No open list"):]

    path = wuchang_copy(tmp_path, edit, name="square.toml")
    result = runner.invoke(app, [
        "coverage", "--region", str(path), "--no-circles", "--out", str(tmp_path / "out"),
        "--map", str(tmp_path / "map.html"), "--cache-dir", str(cache_dir),
    ])
    assert result.exit_code == 0, result.output
    assert "community unit" not in result.output
    assert "street junctions" in result.output and "one per 300 m square" in result.output
    assert "warning:" in result.output and "pop_total ×" in result.output  # shown once, without a code location
    assert "UserWarning" not in result.output
