from pathlib import Path

from api.settings import Settings


def test_settings_from_environment():
    settings = Settings.from_env({"GEOPLAN_DB": "/tmp/x.sqlite3", "GEOPLAN_REGIONS": "wuchang, jiangan", "GEOPLAN_JOB_WORKERS": "2"})
    assert settings.db_path == Path("/tmp/x.sqlite3")
    assert settings.regions == ("wuchang", "jiangan") and settings.job_workers == 2 and settings.preload == ()
    assert Settings.from_env({}).regions is None
