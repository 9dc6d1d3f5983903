"""GeoPackage uploads checked with sqlite3 before GDAL opens them, and the uploads' temporary folders swept.

A GeoPackage is an SQLite database whose layers may be VIEWs: a 61 KB file
whose layer is a view over ``WITH RECURSIVE`` took 3.7 GB in 3 s when read.
Every file here is built in the test: a real GeoPackage written by geopandas,
then altered with sqlite3 the way a GeoPackage view or virtual table is
registered (``gpkg_contents`` and ``gpkg_geometry_columns``). Where a guard
must refuse before reading, GDAL's readers are replaced by ones that fail the
test, so a guard that lets the file through fails at once instead of running
the attack.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point

from api.errors import PayloadTooLarge
from api.services import uploads
from api.services.uploads import (STALE_UPLOAD_SECONDS, UPLOAD_FOLDER_PREFIX, UploadLimits, UploadService, check_geopackage,
                                  default_upload_dir, read_upload, sweep_stale_uploads, upload_folder)
from geoplan.errors import InputError
from tests.api.conftest import REPO, assert_error, upload

#: An endless query: each row of the view is one more step of the recursion, each with a 1 KB text.
ENDLESS_VIEW = """CREATE VIEW {name} AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)
                  SELECT n AS fid, (SELECT geom FROM sites LIMIT 1) AS geom, 'B' || n AS site_id, hex(zeroblob(500)) AS pad FROM r"""
HOUR = 3600.0


def _gpkg(path: Path, n: int = 2, *, layer: str = "sites", spatial_index: bool = True) -> Path:
    """A real GeoPackage of ``n`` points in Wuchang, written by geopandas (with its rtree spatial index and triggers)."""
    frame = gpd.GeoDataFrame({"site_id": [f"G{i}" for i in range(1, n + 1)], "name": [f"site {i}" for i in range(1, n + 1)]},
                             geometry=[Point(114.307 + (i % 100) * 1e-4, 30.5607 + (i // 100) * 1e-4) for i in range(n)], crs=4326)
    frame.to_file(path, layer=layer, SPATIAL_INDEX="YES" if spatial_index else "NO")
    return path


def _register(db: sqlite3.Connection, table: str, *, geometry: str = "geom") -> None:
    """Register ``table`` as a feature layer, as GDAL registers a view (GeoPackage 1.2, clause 2.1.2 and 2.1.5)."""
    db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES (?, 'features', ?, 4326)", (table, table))
    db.execute("INSERT INTO gpkg_geometry_columns (table_name, column_name, geometry_type_name, srs_id, z, m) "
               "VALUES (?, ?, 'POINT', 4326, 0, 0)", (table, geometry))


def _deregister(db: sqlite3.Connection, table: str) -> None:
    db.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = ?", (table,))
    db.execute("DELETE FROM gpkg_contents WHERE table_name = ?", (table,))


def _view_bomb(path: Path, *, only_layer: bool = True) -> Path:
    """A GeoPackage whose layer ``bomb`` is a VIEW over an endless ``WITH RECURSIVE`` (the review's attack)."""
    _gpkg(path, spatial_index=False)
    with sqlite3.connect(path) as db:
        db.execute(ENDLESS_VIEW.format(name="bomb"))
        _register(db, "bomb")
        if only_layer:
            _deregister(db, "sites")
    db.close()
    return path


def _forbid_gdal(monkeypatch, *, listing: bool = False) -> None:
    """From here on, any read of the upload by GDAL (or by the library) fails the test.

    With ``listing``, GDAL may still list the layers (the check asks it which
    layer it would read, once only tables are left): that reads no feature.
    """
    import pyogrio

    def refuse(*args, **kwargs):
        raise AssertionError("GDAL opened the upload: the guard did not refuse it first")

    for name in ("read_info", "read_dataframe", "read_arrow", "open_arrow", *(() if listing else ("list_layers",))):
        monkeypatch.setattr(pyogrio, name, refuse)
    monkeypatch.setattr(uploads, "load_facilities", refuse)


def _post(client, scenario, path: Path, *, filename: str | None = None):
    return client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": (filename or path.name, path.read_bytes())})


def _unchanged(client, scenario) -> None:
    assert client.get(f"/scenarios/{scenario['id']}").json()["spec_hash"] == scenario["spec_hash"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# --- views: the attack -----------------------------------------------------------------------------


def test_the_view_bomb_is_an_endless_query_gdal_would_read(tmp_path):
    """The attack file is what it claims: GDAL lists the view as the layer to read, and its query never ends.

    The query is run through the guard's own connection, so this also shows
    that no query on an upload runs past the time budget.
    """
    import pyogrio

    path = _view_bomb(tmp_path / "bomb.gpkg")
    assert path.stat().st_size < 200_000
    assert str(pyogrio.list_layers(path)[0][0]) == "bomb"
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match="GEOPLAN_MAX_GPKG_SECONDS") as caught:
        with uploads._geopackage_connection("bomb.gpkg", path, 0.3) as db:
            watchdog = threading.Timer(10.0, db.interrupt)  # without the budget: an InputError after 10 s, not a hang
            watchdog.start()
            try:
                db.execute("SELECT count(*) FROM bomb").fetchone()
            finally:
                watchdog.cancel()
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5, elapsed
    assert "0.3 s" in str(caught.value) and "bomb.gpkg" in str(caught.value)


@pytest.mark.parametrize("only_layer", [True, False], ids=["only-layer", "second-layer"])
def test_a_view_layer_is_refused_before_gdal_reads_it(tmp_path, monkeypatch, only_layer):
    path = _view_bomb(tmp_path / "bomb.gpkg", only_layer=only_layer)
    _forbid_gdal(monkeypatch)
    peak = _peak_rss_mb()
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        check_geopackage("bomb.gpkg", path)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "'bomb'" in message and "VIEW" in message and "Export the view to a table" in message, message
    assert "bomb.gpkg" in message and str(tmp_path) not in message
    assert elapsed < 1.0, elapsed
    assert _peak_rss_mb() - peak < 100, "the check itself took memory"


def test_a_view_that_is_not_a_layer_is_refused_too(tmp_path, monkeypatch):
    """GDAL lists unregistered tables and views too (and reads the first it lists), so no view is let through."""
    path = _gpkg(tmp_path / "helper.gpkg")
    with sqlite3.connect(path) as db:
        db.execute(ENDLESS_VIEW.format(name="helper"))
    db.close()
    _forbid_gdal(monkeypatch)
    with pytest.raises(InputError, match=r"holds the VIEW 'helper'.*tables only"):
        check_geopackage("helper.gpkg", path)


def test_a_geopackage_whose_gpkg_contents_is_a_view_is_refused_without_running_it(tmp_path, monkeypatch):
    path = tmp_path / "contents.gpkg"
    with sqlite3.connect(path) as db:
        db.execute("CREATE VIEW gpkg_contents AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                   "SELECT 'x' || n AS table_name, 'features' AS data_type FROM r")
    db.close()
    _forbid_gdal(monkeypatch)
    started = time.monotonic()
    with pytest.raises(InputError, match="gpkg_contents is a view"):
        check_geopackage("contents.gpkg", path)
    assert time.monotonic() - started < 1.0


def test_the_view_bomb_upload_is_refused_quickly_over_http(client, scenario, tmp_path, monkeypatch):
    path = _view_bomb(tmp_path / "bomb.gpkg")
    _forbid_gdal(monkeypatch)
    started = time.monotonic()
    response = _post(client, scenario, path)
    elapsed = time.monotonic() - started
    body = assert_error(response, 422, "bomb.gpkg", "'bomb'", "VIEW", "export the view to a table")
    assert body["error"] == "input_error" and "/tmp" not in body["detail"] and "geoplan-upload-" not in body["detail"]
    assert elapsed < 2.0, elapsed
    _unchanged(client, scenario)


# --- virtual tables and computed columns -----------------------------------------------------------


@pytest.mark.parametrize(("module", "columns"), [("rtree", "id, minx, maxx, miny, maxy"), ("fts5", "site_id, geom")])
def test_a_virtual_table_layer_is_refused(client, scenario, tmp_path, monkeypatch, module, columns):
    path = _gpkg(tmp_path / f"{module}.gpkg")
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE VIRTUAL TABLE vt_{module} USING {module}({columns})")
        _register(db, f"vt_{module}")
    db.close()
    _forbid_gdal(monkeypatch)
    with pytest.raises(InputError, match=rf"layer 'vt_{module}' is a VIRTUAL table \(module {module}\).*Export the layer to a table"):
        check_geopackage(path.name, path)
    assert_error(_post(client, scenario, path), 422, f"vt_{module}", "VIRTUAL", module)
    _unchanged(client, scenario)


def test_a_virtual_table_other_than_a_spatial_index_is_refused_even_unregistered(tmp_path, monkeypatch):
    path = _gpkg(tmp_path / "fts.gpkg")
    with sqlite3.connect(path) as db:
        db.execute("CREATE VIRTUAL TABLE notes USING fts5(text)")
    db.close()
    _forbid_gdal(monkeypatch)
    with pytest.raises(InputError, match=r"VIRTUAL table 'notes' \(module fts5\).*rtree spatial indexes only"):
        check_geopackage("fts.gpkg", path)


def test_a_computed_column_is_refused(tmp_path, monkeypatch):
    """A VIRTUAL generated column is worked out at each read: here 500 MB per feature."""
    path = _gpkg(tmp_path / "computed.gpkg")
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE sites ADD COLUMN pad BLOB GENERATED ALWAYS AS (zeroblob(500000000)) VIRTUAL")
    db.close()
    _forbid_gdal(monkeypatch)
    with pytest.raises(InputError, match=r"table 'sites' has computed .*\['pad'\]"):
        check_geopackage("computed.gpkg", path)


def test_an_ordinary_geopackage_with_its_spatial_index_and_triggers_is_read(client, scenario, tmp_path):
    path = _gpkg(tmp_path / "plain.gpkg", 3)
    with sqlite3.connect(path) as db:
        kinds = {kind for (kind,) in db.execute("SELECT type FROM sqlite_master")}
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%rtree%'").fetchone()[0] == 1
    db.close()
    assert "trigger" in kinds  # the spatial index's: triggers run on writes only, so they are allowed
    check_geopackage("plain.gpkg", path)
    body = upload(client, scenario["id"], path.read_bytes(), filename="plain.gpkg")
    assert body["count"] == 3 and body["site_ids"] == ["G1", "G2", "G3"]


# --- sizes and the time budget ---------------------------------------------------------------------


def test_a_geopackage_with_more_features_than_the_limit_is_refused_before_reading(client, scenario, api_settings, tmp_path, monkeypatch):
    """Counted from the table, not from the metadata GDAL trusts (gpkg_ogr_contents here says 1)."""
    import pyogrio

    limit = api_settings.max_upload_rows
    path = _gpkg(tmp_path / "many.gpkg", limit + 1, layer="many")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE gpkg_ogr_contents SET feature_count = 1")
    db.close()
    assert pyogrio.read_info(path)["features"] == 1  # a count of metadata would let it through
    _forbid_gdal(monkeypatch, listing=True)
    with pytest.raises(PayloadTooLarge, match=rf"layer 'many'\) has more than {limit:,} rows .*GEOPLAN_MAX_UPLOAD_ROWS"):
        check_geopackage("many.gpkg", path, UploadLimits(rows=limit))
    with pytest.raises(PayloadTooLarge, match="more than 5 rows"):
        check_geopackage("many.gpkg", path, UploadLimits(rows=5))
    response = _post(client, scenario, path)
    assert_error(response, 413, "many.gpkg", "'many'", f"{limit:,}", "GEOPLAN_MAX_UPLOAD_ROWS")
    _unchanged(client, scenario)


def test_a_geopackage_with_too_many_fields_is_refused(tmp_path):
    path = tmp_path / "wide.gpkg"
    gpd.GeoDataFrame({f"c{i}": [1] for i in range(12)}, geometry=[Point(114.307, 30.5607)], crs=4326).to_file(path)
    check_geopackage("wide.gpkg", path, UploadLimits(columns=12))  # fid and geometry are not fields
    with pytest.raises(PayloadTooLarge, match=r"has 12 columns .*limit is 11 .*GEOPLAN_MAX_UPLOAD_COLUMNS"):
        check_geopackage("wide.gpkg", path, UploadLimits(columns=11))


def test_the_checks_are_bounded_by_the_time_budget(tmp_path):
    path = _gpkg(tmp_path / "slow.gpkg", 50)
    with pytest.raises(PayloadTooLarge, match=r"longer than 0 s, the limit \(GEOPLAN_MAX_GPKG_SECONDS\)"):
        check_geopackage("slow.gpkg", path, UploadLimits(gpkg_seconds=0.0))
    assert UploadLimits().gpkg_seconds == 2.0
    check_geopackage("slow.gpkg", path, UploadLimits())


def test_a_second_layer_larger_than_the_limit_does_not_matter(wuchang, tmp_path):
    """As before: the upload is the first layer GDAL lists, and only its size counts."""
    path = _gpkg(tmp_path / "two.gpkg", 2)
    _gpkg(tmp_path / "two.gpkg", 10, layer="others")
    sites = read_upload(wuchang, filename="two.gpkg", content=path.read_bytes(), coord_system="wgs84", status="existing",
                        kind="station", outside="error", limits=UploadLimits(rows=5), upload_dir=tmp_path / "up")
    assert list(sites.index) == ["G1", "G2"]


# --- not a GeoPackage ------------------------------------------------------------------------------


def test_an_sqlite_database_that_is_not_a_geopackage_is_refused(client, scenario, tmp_path, monkeypatch):
    path = tmp_path / "plain.gpkg"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE facilities (id TEXT, lon REAL, lat REAL)")
        db.execute("INSERT INTO facilities VALUES ('F1', 114.307, 30.5607)")
    db.close()
    _forbid_gdal(monkeypatch)
    with pytest.raises(InputError, match="SQLite database but not a GeoPackage: it has no gpkg_contents"):
        check_geopackage("plain.gpkg", path)
    assert_error(_post(client, scenario, path), 422, "plain.gpkg", "not a GeoPackage", "gpkg_contents", "CSV")
    _unchanged(client, scenario)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "header-only"])
def test_a_corrupt_geopackage_is_refused(client, scenario, tmp_path, monkeypatch, damage):
    whole = _gpkg(tmp_path / "whole.gpkg", 20).read_bytes()
    content = {"garbage": os.urandom(50_000), "truncated": whole[: len(whole) // 2], "header-only": whole[:100]}[damage]
    path = tmp_path / "broken.gpkg"
    path.write_bytes(content)
    _forbid_gdal(monkeypatch)
    with pytest.raises(InputError, match=r"Cannot read 'broken.gpkg' as a GeoPackage \((file is not a database|database disk image is malformed)\)"):
        check_geopackage("broken.gpkg", path)
    body = assert_error(_post(client, scenario, path), 422, "broken.gpkg", "GeoPackage")
    assert str(tmp_path) not in body["detail"]
    _unchanged(client, scenario)


# --- the uploads' folders --------------------------------------------------------------------------


def _folder(parent: Path, name: str, *, age_s: float, files: tuple[str, ...] = ("upload.gpkg",)) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    when = time.time() - age_s
    for file in files:
        (folder / file).write_bytes(b"x")
        os.utime(folder / file, (when, when))
    os.utime(folder, (when, when))
    return folder


def test_sweep_removes_only_the_stale_upload_folders(tmp_path):
    parent = tmp_path / "geoplan-uploads"
    old = [_folder(parent, f"{UPLOAD_FOLDER_PREFIX}old{i}", age_s=2 * HOUR) for i in range(2)]
    old_empty = _folder(parent, f"{UPLOAD_FOLDER_PREFIX}empty", age_s=2 * HOUR, files=())
    new = _folder(parent, f"{UPLOAD_FOLDER_PREFIX}new", age_s=60)
    touched = _folder(parent, f"{UPLOAD_FOLDER_PREFIX}touched", age_s=2 * HOUR)
    os.utime(touched / "upload.gpkg")  # a file written just now: in use
    other = _folder(parent, "someone-elses", age_s=2 * HOUR)
    outside = _folder(tmp_path, "outside", age_s=2 * HOUR)
    (parent / f"{UPLOAD_FOLDER_PREFIX}link").symlink_to(outside)
    (parent / f"{UPLOAD_FOLDER_PREFIX}file").write_bytes(b"x")
    os.utime(parent / f"{UPLOAD_FOLDER_PREFIX}file", (time.time() - 2 * HOUR,) * 2)

    assert sweep_stale_uploads(parent, HOUR) == 3
    assert not any(f.exists() for f in [*old, old_empty])
    assert new.exists() and touched.exists() and other.exists() and (outside / "upload.gpkg").exists()
    assert (parent / f"{UPLOAD_FOLDER_PREFIX}link").is_symlink() and (parent / f"{UPLOAD_FOLDER_PREFIX}file").exists()
    assert sweep_stale_uploads(parent, HOUR) == 0
    assert sweep_stale_uploads(parent, 30) == 1 and not new.exists()
    assert sweep_stale_uploads(tmp_path / "missing", HOUR) == 0
    with pytest.raises(ValueError):
        sweep_stale_uploads(parent, -1)
    assert STALE_UPLOAD_SECONDS == HOUR


def test_sweep_never_removes_a_live_upload_whatever_its_age(tmp_path):
    parent = tmp_path / "up"
    with upload_folder(parent) as live:
        (live / "upload.gpkg").write_bytes(b"x")
        for path in (live / "upload.gpkg", live / ".in-use", live):
            os.utime(path, (time.time() - 5 * HOUR,) * 2)
        assert sweep_stale_uploads(parent, HOUR) == 0
        assert sweep_stale_uploads(parent, 0) == 0
        assert (live / "upload.gpkg").exists()
    assert not live.exists()


def test_a_folder_left_by_a_killed_upload_is_swept(tmp_path):
    """SIGKILL skips every cleanup: the folder stays, its lock goes with the process, and the next sweep removes it."""
    parent = tmp_path / "up"
    code = ("import os, signal, sys\nfrom pathlib import Path\nfrom api.services.uploads import upload_folder\n"
            "with upload_folder(Path(sys.argv[1])) as folder:\n"
            "    (folder / 'upload.gpkg').write_bytes(b'x')\n    print(folder, flush=True)\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    run = subprocess.run([sys.executable, "-c", code, str(parent)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    left = Path(run.stdout.strip())
    assert left.parent == parent and (left / "upload.gpkg").exists()
    assert sweep_stale_uploads(parent, HOUR) == 0  # too recent to tell from a live one by age
    for path in (left / "upload.gpkg", left / ".in-use", left):
        os.utime(path, (time.time() - 2 * HOUR,) * 2)
    assert sweep_stale_uploads(parent, HOUR) == 1 and not left.exists()


def test_uploads_are_written_under_the_service_folder_and_removed(wuchang, tmp_path, monkeypatch):
    parent = tmp_path / "uploads"
    seen = []
    real = uploads.load_facilities

    def spy(path, **kwargs):
        seen.append((Path(path), sorted(p.name for p in Path(path).parent.iterdir())))
        return real(path, **kwargs)

    monkeypatch.setattr(uploads, "load_facilities", spy)
    content = b"id,lng,lat\nC1,114.307,30.5607\n"
    sites = read_upload(wuchang, filename="../../etc/f.csv", content=content, coord_system="wgs84", status="existing",
                        kind="station", outside="error", upload_dir=parent)
    assert list(sites.index) == ["C1"]
    (path, names), = seen
    assert path.parent.parent == parent and path.parent.name.startswith(UPLOAD_FOLDER_PREFIX)
    assert names == [".in-use", "f.csv"]
    assert list(parent.iterdir()) == []  # removed afterwards
    assert (parent.stat().st_mode & 0o777) == 0o700
    with pytest.raises(InputError):
        read_upload(wuchang, filename="f.csv", content=b"no,coordinates\n1,2\n", coord_system="wgs84", status="existing",
                    kind="station", outside="error", upload_dir=parent)
    assert list(parent.iterdir()) == []  # and after a refusal


def test_the_service_folder_defaults_under_the_temporary_folder(tmp_path):
    import tempfile

    assert default_upload_dir() == Path(tempfile.gettempdir()) / "geoplan-uploads"
    assert UploadService(None, None).upload_dir == default_upload_dir()
    assert UploadService(None, None, upload_dir=tmp_path).upload_dir == tmp_path
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(RuntimeError, match="symlink"):
        with upload_folder(link):
            pass
