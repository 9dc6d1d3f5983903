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
    ],
)
def test_bad_input_is_one_clear_message_without_a_traceback(args, message, cache_dir):
    result = runner.invoke(app, [*args, "--cache-dir", str(cache_dir)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
