"""Service settings, read once from the environment (``GEOPLAN_*``) and passed down.

Routes get them through the cached :func:`get_settings` dependency; tests
override that dependency (or pass ``Settings`` to :func:`api.main.create_app`).
Every field names its variable; ``geoplan-api settings`` prints the table.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

#: field -> environment variable
ENVIRONMENT = {
    "db_path": "GEOPLAN_DB",
    "auth": "GEOPLAN_AUTH",
    "cors_origins": "GEOPLAN_CORS_ORIGINS",
    "cache_dir": "GEOPLAN_CACHE_DIR",
    "regions": "GEOPLAN_REGIONS",
    "preload": "GEOPLAN_PRELOAD",
    "web_workers": "GEOPLAN_WEB_WORKERS",
    "job_workers": "GEOPLAN_JOB_WORKERS",
    "job_threads": "GEOPLAN_JOB_THREADS",
    "max_jobs_per_key": "GEOPLAN_MAX_JOBS_PER_KEY",
    "max_job_seconds": "GEOPLAN_MAX_JOB_SECONDS",
    "job_lease_seconds": "GEOPLAN_JOB_LEASE_SECONDS",
    "max_reach_pairs": "GEOPLAN_MAX_REACH_PAIRS",
    "max_body_bytes": "GEOPLAN_MAX_BODY_BYTES",
    "max_upload_bytes": "GEOPLAN_MAX_UPLOAD_BYTES",
    "max_upload_rows": "GEOPLAN_MAX_UPLOAD_ROWS",
    "max_upload_columns": "GEOPLAN_MAX_UPLOAD_COLUMNS",
    "max_gpkg_seconds": "GEOPLAN_MAX_GPKG_SECONDS",
    "upload_dir": "GEOPLAN_UPLOAD_DIR",
    "max_json_depth": "GEOPLAN_MAX_JSON_DEPTH",
    "coverage_cache_size": "GEOPLAN_COVERAGE_CACHE",
    "circle_cache_size": "GEOPLAN_CIRCLE_CACHE",
    "job_worker_nice": "GEOPLAN_JOB_WORKER_NICE",
    "circle_processes": "GEOPLAN_CIRCLE_PROCESSES",
}
TUPLES = ("regions", "preload", "cors_origins")
SWITCH = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


class Settings(BaseModel, frozen=True):
    """What the service needs to know, with the environment variable of each field."""

    db_path: str = Field("geoplan-api.sqlite3", description="The database: a SQLite file, or postgresql://user:pass@host/db (GEOPLAN_DB).")
    auth: bool = Field(True, description="API keys required (GEOPLAN_AUTH; 'off' for local development only).")
    cors_origins: tuple[str, ...] = Field((), description="Web origins allowed to call the service from a browser (GEOPLAN_CORS_ORIGINS, comma-separated; none by default).")
    cache_dir: Path | None = Field(None, description="Prepared-network cache (GEOPLAN_CACHE_DIR; default ~/.cache/geoplan).")
    regions: tuple[str, ...] | None = Field(None, description="Regions served (GEOPLAN_REGIONS, comma-separated; default every shipped region).")
    preload: tuple[str, ...] = Field((), description="Regions to load and analyse at startup (GEOPLAN_PRELOAD, comma-separated).")
    web_workers: int = Field(2, ge=1, le=64, description="Web worker processes started by 'geoplan-api serve' (GEOPLAN_WEB_WORKERS).")
    job_workers: int = Field(1, ge=0, le=64, description="Job worker processes started by 'geoplan-api serve' (GEOPLAN_JOB_WORKERS).")
    job_threads: int = Field(0, ge=0, le=8, description="Job threads inside each web process (GEOPLAN_JOB_THREADS; 0 in production, where job workers take the jobs).")
    max_jobs_per_key: int = Field(4, ge=1, description="Jobs one key may have queued or running (GEOPLAN_MAX_JOBS_PER_KEY).")
    max_job_seconds: float = Field(900.0, gt=0, description="Time budget of one job, solver time limit included (GEOPLAN_MAX_JOB_SECONDS).")
    job_lease_seconds: float = Field(30.0, ge=1, description="A job worker's lease on its job, renewed while it works; a dead worker's job is retried after it (GEOPLAN_JOB_LEASE_SECONDS).")
    max_reach_pairs: int = Field(60_000_000, ge=1, description="Most demand cells x sites (facilities and candidates) one request may walk from (GEOPLAN_MAX_REACH_PAIRS).")
    max_body_bytes: int = Field(2_000_000, ge=1_000, description="Largest request body other than a file upload, JSON included; refused (413) as it arrives (GEOPLAN_MAX_BODY_BYTES).")
    max_upload_bytes: int = Field(5_000_000, ge=1, description="Largest file upload accepted (a facility list, a targets file); a multipart body may exceed it by 64 kB of form fields, and an Excel workbook may unpack to 20 times it (GEOPLAN_MAX_UPLOAD_BYTES).")
    max_upload_rows: int = Field(20_000, ge=1, description="Most rows (or features) in a facility upload (GEOPLAN_MAX_UPLOAD_ROWS).")
    max_upload_columns: int = Field(200, ge=3, description="Most columns (or properties) in a facility upload (GEOPLAN_MAX_UPLOAD_COLUMNS).")
    max_gpkg_seconds: float = Field(2.0, gt=0, le=60, description="Longest the checks of a GeoPackage upload may run, in seconds (GEOPLAN_MAX_GPKG_SECONDS).")
    upload_dir: Path | None = Field(None, description="Parent of the uploads' temporary folders; leftovers over an hour old are removed at start (GEOPLAN_UPLOAD_DIR; default <tempdir>/geoplan-uploads).")
    max_json_depth: int = Field(64, ge=2, le=512, description="Deepest nesting of brackets in a JSON body or GeoJSON upload (GEOPLAN_MAX_JSON_DEPTH).")
    coverage_cache_size: int = Field(16, ge=1, description="Scenario coverage indexes kept in memory (GEOPLAN_COVERAGE_CACHE).")
    circle_cache_size: int = Field(4096, ge=0, description="Care circles of points kept per web process, about 3 kB each (GEOPLAN_CIRCLE_CACHE; 0 keeps none).")
    job_worker_nice: int = Field(10, ge=0, le=19, description="CPU priority given up by job worker processes, so that solves never slow the reads (GEOPLAN_JOB_WORKER_NICE; 0 keeps it).")
    circle_processes: int = Field(1, ge=0, le=8, description="Child processes of each web worker that draw new care circles of points at a lower CPU priority, each holding its own copy of the regions it serves (GEOPLAN_CIRCLE_PROCESSES; 0 draws them in the web worker).")

    @field_validator("db_path", mode="before")
    @classmethod
    def _path_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ValueError(f"each CORS origin is a full origin such as https://plan.example.gov.cn (no '*'); got {origin!r}")
        return tuple(o.rstrip("/") for o in value)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict = {}
        for field, var in ENVIRONMENT.items():
            raw = env.get(var)
            if raw in (None, ""):
                continue
            if field in TUPLES:
                values[field] = tuple(part.strip() for part in raw.split(",") if part.strip())
            elif field == "auth":
                if raw.strip().lower() not in SWITCH:
                    raise ValueError(f"{var} must be on or off; got {raw!r}")
                values[field] = SWITCH[raw.strip().lower()]
            else:
                values[field] = raw
        return cls(**values)

    def table(self) -> list[tuple[str, str, str]]:
        """(variable, value, meaning) of every setting, the database password hidden."""
        from api.db import redact

        rows = []
        for field, var in ENVIRONMENT.items():
            value = getattr(self, field)
            if field == "db_path":
                shown = redact(value)
            elif isinstance(value, bool):
                shown = "on" if value else "off"
            else:
                shown = ",".join(value) if isinstance(value, tuple) else str(value)
            rows.append((var, shown, type(self).model_fields[field].description or ""))
        return rows


@lru_cache
def get_settings() -> Settings:
    """The process's settings (read from the environment once)."""
    return Settings.from_env()
