"""Service settings, read once from the environment (``GEOPLAN_*``) and passed down.

Routes get them through the cached :func:`get_settings` dependency; tests
override that dependency (or pass ``Settings`` to :func:`api.main.create_app`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field


class Settings(BaseModel, frozen=True):
    """What the service needs to know, with the environment variable of each field."""

    db_path: Path = Field(Path("geoplan-api.sqlite3"), description="SQLite database of scenarios and jobs (GEOPLAN_DB).")
    cache_dir: Path | None = Field(None, description="Prepared-network cache (GEOPLAN_CACHE_DIR; default ~/.cache/geoplan).")
    regions: tuple[str, ...] | None = Field(None, description="Regions served (GEOPLAN_REGIONS, comma-separated; default every shipped region).")
    preload: tuple[str, ...] = Field((), description="Regions to load and analyse at startup (GEOPLAN_PRELOAD, comma-separated).")
    job_workers: int = Field(1, ge=1, le=8, description="Background job threads (GEOPLAN_JOB_WORKERS).")
    max_upload_bytes: int = Field(5_000_000, ge=1, description="Largest facility upload accepted (GEOPLAN_MAX_UPLOAD_BYTES).")
    coverage_cache_size: int = Field(16, ge=1, description="Scenario coverage indexes kept in memory (GEOPLAN_COVERAGE_CACHE).")
    max_json_depth: int = Field(64, ge=2, le=512, description="Deepest nesting of brackets in a JSON body or GeoJSON upload (GEOPLAN_MAX_JSON_DEPTH).")
    max_upload_rows: int = Field(20_000, ge=1, description="Most rows (or features) in a facility upload (GEOPLAN_MAX_UPLOAD_ROWS).")
    max_upload_columns: int = Field(200, ge=3, description="Most columns (or properties) in a facility upload (GEOPLAN_MAX_UPLOAD_COLUMNS).")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict = {}
        names = {
            "db_path": "GEOPLAN_DB",
            "cache_dir": "GEOPLAN_CACHE_DIR",
            "regions": "GEOPLAN_REGIONS",
            "preload": "GEOPLAN_PRELOAD",
            "job_workers": "GEOPLAN_JOB_WORKERS",
            "max_upload_bytes": "GEOPLAN_MAX_UPLOAD_BYTES",
            "coverage_cache_size": "GEOPLAN_COVERAGE_CACHE",
            "max_json_depth": "GEOPLAN_MAX_JSON_DEPTH",
            "max_upload_rows": "GEOPLAN_MAX_UPLOAD_ROWS",
            "max_upload_columns": "GEOPLAN_MAX_UPLOAD_COLUMNS",
        }
        for field, var in names.items():
            raw = env.get(var)
            if raw in (None, ""):
                continue
            if field in ("regions", "preload"):
                values[field] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[field] = raw
        return cls(**values)


@lru_cache
def get_settings() -> Settings:
    """The process's settings (read from the environment once)."""
    return Settings.from_env()
