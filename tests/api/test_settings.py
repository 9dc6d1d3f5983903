from pathlib import Path

import pytest

from api.settings import ENVIRONMENT, Settings


def test_settings_from_environment():
    settings = Settings.from_env({"GEOPLAN_DB": "/tmp/x.sqlite3", "GEOPLAN_REGIONS": "wuchang, jiangan", "GEOPLAN_JOB_WORKERS": "2"})
    assert settings.db_path == "/tmp/x.sqlite3"
    assert settings.regions == ("wuchang", "jiangan") and settings.job_workers == 2 and settings.preload == ()
    assert Settings.from_env({}).regions is None
    assert Settings(db_path=Path("/tmp/y.sqlite3")).db_path == "/tmp/y.sqlite3"


def test_auth_is_on_unless_turned_off():
    assert Settings().auth and Settings.from_env({}).auth
    assert not Settings.from_env({"GEOPLAN_AUTH": "off"}).auth
    with pytest.raises(ValueError, match="GEOPLAN_AUTH must be on or off"):
        Settings.from_env({"GEOPLAN_AUTH": "maybe"})


def test_cors_allowlist_is_empty_by_default_and_takes_full_origins_only():
    assert Settings().cors_origins == ()
    allowed = Settings.from_env({"GEOPLAN_CORS_ORIGINS": "https://plan.example.gov.cn/, http://127.0.0.1:5173"})
    assert allowed.cors_origins == ("https://plan.example.gov.cn", "http://127.0.0.1:5173")
    for bad in ("*", "plan.example.gov.cn"):
        with pytest.raises(ValueError, match="full origin"):
            Settings.from_env({"GEOPLAN_CORS_ORIGINS": bad})


def test_every_setting_has_a_variable_and_the_table_hides_the_password():
    assert set(ENVIRONMENT) == set(Settings.model_fields)
    table = dict((var, value) for var, value, _ in Settings(db_path="postgresql://geoplan:s3cret@db.local/geoplan").table())
    assert table["GEOPLAN_DB"] == "postgresql://geoplan:***@db.local/geoplan"
    assert "s3cret" not in " ".join(table.values())


def test_the_deploy_guide_lists_every_setting():
    text = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text(encoding="utf-8")
    missing = [var for var in ENVIRONMENT.values() if f"`{var}`" not in text]
    assert not missing, f"docs/deploy.md does not list {missing}"
