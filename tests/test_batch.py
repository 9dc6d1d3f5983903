"""geoplan batch: district regions from a template, the clip to the street network, the grid on Dask, resume and faults.

The batch tests run on five 1.2 km boxes of Wuhan so that they take seconds:
two in the centre (with hand-made community units, so their reviews run), one
across the edge of the street network's extent (Caidian: clipped, the rest
reported), one outside it (Xinzhou: skipped) and one whose config names a
truncated copy of the street file (failed). Networks are prepared once, in
the session's ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geoplan.batch import ScenarioSpec, configured_region, district_regions, run_batch
from geoplan.config import load_config
from geoplan.errors import InputError
from tests.conftest import DATA, RASTER, STREETS

#: Box centres (lon, lat): name -> (centre, community units or not).
BOXES = {
    "box_a": ((114.310, 30.550), True),   # Wuchang
    "box_b": ((114.295, 30.605), True),   # Jiang'an
    "box_c": ((114.0793, 30.4430), False),  # Caidian, across the edge of the street network's extent
    "box_d": ((114.800, 30.840), False),  # Xinzhou, beyond the street network
}
SCENARIOS = ("existing", "recommend p=2")
THRESHOLDS = (5, 10)


def _box(lon: float, lat: float, half_m: float = 600.0) -> shapely.Polygon:
    dlat = half_m / 111_320
    dlon = half_m / (111_320 * 0.862)
    return shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)


@pytest.fixture(scope="module")
def box_configs(tmp_path_factory) -> dict[str, Path]:
    """Region configs of the five boxes (the fifth, box_e, is box_a with a truncated street file)."""
    folder = tmp_path_factory.mktemp("batch-inputs")
    boxes = gpd.GeoDataFrame({"code": list(BOXES)}, geometry=[_box(*centre) for centre, _ in BOXES.values()], crs=4326)
    boxes.to_file(folder / "boxes.geojson", driver="GeoJSON")
    units = []
    for name, ((lon, lat), with_units) in BOXES.items():
        if with_units:
            minx, miny, maxx, maxy = _box(lon, lat).bounds
            mx, my = (minx + maxx) / 2, (miny + maxy) / 2
            for i, quarter in enumerate([(minx, miny, mx, my), (mx, miny, maxx, my), (minx, my, mx, maxy), (mx, my, maxx, maxy)]):
                units.append({"unit_id": len(units) + 1, "box": name, "population": 1000.0 + i, "geometry": shapely.box(*quarter)})
    gpd.GeoDataFrame(units, crs=4326).to_file(folder / "units.gpkg", driver="GPKG")
    truncated = folder / "streets_truncated.parquet"
    truncated.write_bytes(STREETS.read_bytes()[:100_000])

    configs = {}
    for name, (_, with_units) in {**BOXES, "box_e": (None, True)}.items():
        code = "box_a" if name == "box_e" else name
        network = truncated if name == "box_e" else STREETS
        text = f"""
[region]
name = "{name}"
[boundary]
path = "{folder / 'boxes.geojson'}"
where = {{ code = "{code}" }}
[network]
path = "{network}"
[population]
path = "{RASTER}"
bands = {{ pop_total = "total_est", pop_60 = "age60plus", pop_80 = "age80plus" }}
[census]
path = "{DATA / 'census' / 'china_census2020_county_age.csv'}"
code = "420106"
rescale = false
"""
        if with_units:
            text += f"""[communities]
path = "{folder / 'units.gpkg'}"
where = {{ box = "{code}" }}
population_column = "population"
[units]
n_zones = 2
"""
        path = folder / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        configs[name] = path
    return configs


def _regions(configs: dict[str, Path], out: Path, cache_dir: Path):
    return [configured_region(path, directory=out / "regions", cache_dir=cache_dir) for path in configs.values()]


def _batch(configs, out: Path, cache_dir: Path, **options):
    options = {"workers": 1, "processes": False, **options}
    return run_batch(_regions(configs, out, cache_dir), SCENARIOS, out_dir=out, thresholds_min=THRESHOLDS, preset="shuimogou",
                     cache_dir=cache_dir, time_limit_s=30, **options)


def _hashes(out: Path) -> dict[str, str]:
    """Every file of a batch folder but the run logs, by path, with its SHA-256."""
    return {
        path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*")) if path.is_file() and "_log" not in path.relative_to(out).parts
    }


@pytest.fixture(scope="module")
def clean(box_configs, cache_dir, tmp_path_factory):
    """A clean batch over the boxes, and the hashes of its files."""
    out = tmp_path_factory.mktemp("batch-clean") / "out"
    result = _batch(box_configs, out, cache_dir)
    return result, _hashes(out)


# --- regions ---------------------------------------------------------------------------------------


def test_district_regions_are_the_template_per_district(tmp_path, cache_dir):
    regions = district_regions("wuchang", directory=tmp_path / "regions", cache_dir=cache_dir)
    assert [r.key for r in regions] == ["jiangan", "jianghan", "qiaokou", "hanyang", "wuchang", "qingshan", "hongshan",
                                        "dongxihu", "hannan", "caidian", "jiangxia", "huangpi", "xinzhou"]
    jiangxia = next(r for r in regions if r.key == "jiangxia").config
    assert jiangxia.source == (tmp_path / "regions" / "jiangxia.toml").resolve() and jiangxia.source.exists()
    assert jiangxia.boundary.where == {"adcode": "420115"} and jiangxia.census.code == "420115"
    assert jiangxia.communities.where == {"district": "江夏区"} and jiangxia.units.district_code == "420115"
    assert jiangxia.region.name_zh == "江夏区" and jiangxia.boundary.clip_to_network  # beyond the street network: clipped
    assert "made from the template wuchang.toml" in jiangxia.source.read_text(encoding="utf-8").splitlines()[0]
    assert next(r for r in regions if r.key == "dongxihu").config.communities is None  # no community units there
    wuchang = next(r for r in regions if r.key == "wuchang").config
    shipped = load_config("wuchang")
    assert not wuchang.boundary.clip_to_network  # inside the network's extent
    assert (wuchang.boundary, wuchang.census, wuchang.communities, wuchang.population, wuchang.network) == (
        shipped.boundary, shipped.census, shipped.communities, shipped.population, shipped.network)
    again = district_regions("wuchang", ["jiangxia"], directory=tmp_path / "regions", cache_dir=cache_dir)[0]
    assert again.config == jiangxia  # written again, the same


def test_district_regions_pick_by_code_or_key_and_name_the_unknown(tmp_path, cache_dir):
    picked = district_regions("wuchang", ["420115", "jiangan"], directory=tmp_path, cache_dir=cache_dir)
    assert [r.key for r in picked] == ["jiangxia", "jiangan"]
    with pytest.raises(InputError, match=r"No district 'atlantis' in .*wuhan_districts.geojson. Its districts: jiangan \(420102\)"):
        district_regions("wuchang", ["atlantis"], directory=tmp_path, cache_dir=cache_dir)


def test_scenarios_parse_and_refuse_with_the_form_to_use():
    assert ScenarioSpec.parse("existing").slug == "existing"
    spec = ScenarioSpec.parse("recommend p=5 model=pmedian threshold=10")
    assert (spec.p, spec.model, spec.threshold_min, spec.slug) == (5, "pmedian", 10.0, "recommend_p5_pmedian_t10")
    for text, message in [("recommend", "needs p=N"), ("recommend p=0", "needs p=N"), ("closest 3", "Unknown scenario"),
                          ("recommend p=2 model=lscp", "mclp or pmedian"), ("recommend p=2 colour=red", "Unknown option")]:
        with pytest.raises(InputError, match=message):
            ScenarioSpec.parse(text)


# --- the batch ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_runs_every_region_and_reports_the_rest(clean):
    result, _ = clean
    status = {(o.region, o.scenario): o.status for o in result.outcomes}
    assert status == {(r, s): ("ok" if r in ("box_a", "box_b", "box_c") else "skipped" if r == "box_d" else "failed")
                      for r in ("box_a", "box_b", "box_c", "box_d", "box_e") for s in ("existing", "recommend_p2")}
    summary = result.summary.set_index(["region", "scenario"])
    # the box across the network's edge: clipped, and the older people outside it reported
    edge = summary.loc[("box_c", "existing")]
    assert 20 < edge["analysed_pct"].iloc[0] < 90 and edge["pop_60_outside_network"].iloc[0] > 0
    assert (edge["covered_60_pct_of_district"] < edge["covered_60_pct"]).all()
    assert "not reviewed" in edge["review"].iloc[0] and "community units" in edge["review"].iloc[0]
    # beyond the network: skipped, with the reason and the people left out
    beyond = summary.loc[("box_d", "existing")]
    assert "covers 0.0 % of box_d's area" in beyond["reason"] and beyond["pop_60_outside_network"] > 0
    # the corrupt street file: that region fails, saying which file and what to do
    corrupt = [o for o in result.outcomes if o.region == "box_e"][0]
    assert "Cannot read the street network file" in corrupt.reason and "streets_truncated.parquet" in corrupt.reason
    assert "box_e" not in {p.parts[-1] for p in (result.out_dir / "_done").iterdir()}
    # the rest ran: coverage per threshold, reviews, plans
    ok = summary.loc[("box_a", "recommend_p2")]
    assert list(ok["threshold_min"]) == [5, 10] and (ok["sites"] == 2).all() and (ok["plan_status"] == "optimal").all()
    assert ok["covered_60"].iloc[1] >= ok["covered_60"].iloc[0] > 0


@pytest.mark.slow
def test_batch_layers_are_partitioned_geoparquet(clean):
    result, _ = clean
    out = result.out_dir
    coverage = gpd.read_parquet(out / "coverage")
    assert set(coverage["region"].astype(str)) == {"box_a", "box_b", "box_c"} and coverage.crs.to_epsg() == 4326
    assert {"pop_60", "nearest_min", "within_5min", "within_10min", "on_foot", "scenario"} <= set(coverage.columns)
    one = gpd.read_parquet(out / "coverage" / "region=box_a" / "scenario=existing" / "part.parquet")
    assert one["demand_id"].is_monotonic_increasing
    gaps = gpd.read_parquet(out / "gaps" / "region=box_a" / "scenario=existing" / "part.parquet")
    assert not (gaps["demand_id"].isin(one.loc[one["within_10min"], "demand_id"])).any()
    extent = gpd.read_parquet(out / "extent" / "region=box_c" / "part.parquet")
    assert list(extent["part"]) == ["analysed", "outside_network"] and extent["pop_60"].iloc[1] > 0
    assert load_config(out / "regions" / "box_c.toml").boundary.clip_to_network  # the config each region ran, written
    sheets = pd.read_excel(out / "review.xlsx", sheet_name=None)
    assert list(sheets) == ["districts 区县", "targets 指标", "not reviewed 未评估", "about 说明"]
    districts = sheets["districts 区县"]
    assert len(districts) == 4 and any("fail" in str(v) for v in districts.iloc[0])  # box_a and box_b, two scenarios
    assert set(sheets["not reviewed 未评估"]["区域 region"]) == {"box_c", "box_d", "box_e"}
    assert pd.read_csv(out / "summary.csv").shape[0] == len(result.summary)


@pytest.mark.slow
def test_rerun_resumes_and_writes_the_same_bytes(clean, box_configs, cache_dir):
    result, hashes = clean
    again = _batch(box_configs, result.out_dir, cache_dir)
    assert {o.status for o in again.outcomes if o.region != "box_e"} == {"resumed"}
    assert [o.status for o in again.outcomes if o.region == "box_e"] == ["failed", "failed"]  # retried, fails again
    assert _hashes(result.out_dir) == hashes


def _task_files(hashes: dict[str, str], regions: set[str]) -> dict[str, str]:
    """The files of the tasks of ``regions`` (their layers, configs and markers), from :func:`_hashes`."""
    def owner(name: str) -> str | None:
        parts = name.split("/")
        region = next((p[len("region="):] for p in parts if p.startswith("region=")), None)
        if region is None and parts[0] in ("_done", "regions"):
            region = parts[1].split(".")[0]
        return region

    return {name: digest for name, digest in hashes.items() if owner(name) in regions}


@pytest.mark.slow
def test_worker_killed_mid_task_then_rerun_gives_the_clean_files(clean, box_configs, cache_dir, tmp_path):
    """SIGKILL a worker process while it runs a task: Dask runs the task again, and nothing is lost or doubled."""
    from distributed import LocalCluster

    _, hashes = clean
    out = tmp_path / "out"
    two = {name: box_configs[name] for name in ("box_a", "box_b")}
    killed: list[int] = []
    done: dict = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = threading.Thread(target=lambda: done.update(result=_batch(two, out, cache_dir, scheduler=cluster.scheduler_address)))
        runner.start()
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline and runner.is_alive():
            staged = list((out / "_staging").glob("box_a__existing__*")) if (out / "_staging").is_dir() else []
            if staged:  # box_a's task is running: kill the worker process that runs it (its pid names the staging folder)
                pid = int(staged[0].name.split("__")[-1].split("-")[0])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)
        runner.join(timeout=300)
    assert killed, "no task was caught running"
    result = done["result"]
    assert [o.status for o in result.outcomes] == ["ok"] * 4
    assert all(not o.worker.endswith(f":{killed[0]}") for o in result.outcomes)  # box_a ran again, on a live worker
    files = _hashes(out)
    top = {"summary.csv", "summary.xlsx", "review.xlsx"}
    assert set(files) - top == set(_task_files(hashes, {"box_a", "box_b"}))  # nothing missing, nothing extra
    assert _task_files(files, {"box_a", "box_b"}) == _task_files(hashes, {"box_a", "box_b"})  # byte for byte
    rerun = _batch(two, out, cache_dir)
    assert {o.status for o in rerun.outcomes} == {"resumed"} and _hashes(out) == files


@pytest.mark.slow
def test_interrupted_writes_are_swept_and_redone(clean, box_configs, cache_dir, tmp_path):
    """What a killed batch process leaves (a staging folder, a half-written file, a file without its marker) is redone."""
    import shutil

    result, hashes = clean
    out = tmp_path / "out"
    shutil.copytree(result.out_dir, out)
    for task in ("box_b/existing", "box_c/recommend_p2"):
        (out / "_done" / f"{task}.json").unlink()
    part = out / "coverage" / "region=box_b" / "scenario=existing" / "part.parquet"
    part.write_bytes(part.read_bytes()[:1000])
    (out / "_staging" / "box_a__existing__1-x").mkdir(parents=True)
    (out / "regions" / ".box_a.abc.toml").write_text("half")
    rerun = _batch(box_configs, out, cache_dir)
    redone = {f"{o.region}/{o.scenario}" for o in rerun.outcomes if o.status == "ok"}
    assert redone == {"box_b/existing", "box_c/recommend_p2"}
    assert _hashes(out) == hashes


def test_bad_batch_options_are_refused_before_any_work(box_configs, tmp_path, cache_dir):
    regions = _regions(box_configs, tmp_path / "out", cache_dir)
    with pytest.raises(InputError, match="positive numbers"):
        run_batch(regions, ["existing"], out_dir=tmp_path / "out", thresholds_min=(0,))
    with pytest.raises(InputError, match="given twice"):
        run_batch(regions + regions[:1], ["existing"], out_dir=tmp_path / "out")
    with pytest.raises(InputError, match="beyond the largest threshold"):
        run_batch(regions, ["recommend p=2 threshold=20"], out_dir=tmp_path / "out", thresholds_min=(10, 15))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already holds other files"):
        run_batch([configured_region(box_configs["box_a"], directory=tmp_path / "elsewhere" / "regions", cache_dir=cache_dir)], ["existing"],
                  out_dir=tmp_path / "elsewhere")


def test_cli_batch_refuses_thresholds_given_as_separate_numbers(tmp_path):
    from typer.testing import CliRunner

    from geoplan.cli import app

    result = CliRunner().invoke(app, ["batch", "--districts", "all", "--thresholds", "10", "15", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "--thresholds 10,15" in result.output
