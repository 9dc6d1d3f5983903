"""SQLite persistence of scenarios, jobs and scenario results.

One database file (``Settings.db_path``) in WAL mode with ``synchronous=FULL``:
every write is one ``BEGIN IMMEDIATE ... COMMIT`` transaction, so a scenario or
a job state change is either fully on disk or not at all, and readers never
block the writer. One connection is shared by the threads of the process behind
a lock (the writes are small and rare next to the reads of cached regions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS scenarios (
    id          TEXT PRIMARY KEY,
    region      TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    spec_hash   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    params       TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    scenario_id  TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS jobs_scenario ON jobs (scenario_id);
CREATE TABLE IF NOT EXISTS scenario_results (
    scenario_id  TEXT NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    spec_hash    TEXT NOT NULL,
    job_id       TEXT,
    result       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scenario_id, spec_hash)
);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return secrets.token_hex(8)


class StaleScenario(Exception):
    """A scenario changed between reading it and writing the change."""


@dataclasses.dataclass(frozen=True)
class ScenarioRecord:
    id: str
    region: str
    name: str
    spec: dict[str, Any]
    spec_hash: str
    created_at: str
    updated_at: str


@dataclasses.dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    scenario_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class Store:
    """Scenarios, jobs and results in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as conn:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed whole on success, rolled back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # a failed COMMIT (disk full, I/O error) must not leave the shared connection inside a
                # transaction, or every later BEGIN fails; SQLite may already have rolled back by itself
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # scenarios ---------------------------------------------------------------------------
    def create_scenario(self, *, region: str, name: str, spec: dict, spec_hash: str) -> ScenarioRecord:
        stamp = now()
        record = ScenarioRecord(new_id(), region, name, spec, spec_hash, stamp, stamp)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO scenarios (id, region, name, spec, spec_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.id, region, name, _dump(spec), spec_hash, stamp, stamp),
            )
        return record

    def update_scenario(
        self, scenario_id: str, *, name: str, spec: dict, spec_hash: str, expected: ScenarioRecord | None = None
    ) -> ScenarioRecord | None:
        """Replace a scenario's name and spec; None if it does not exist.

        With ``expected`` (the record the change was made from), the update applies only if the
        stored scenario is still that version, else :class:`StaleScenario` (no lost updates when
        two requests edit one scenario at once).
        """
        sql = "UPDATE scenarios SET name = ?, spec = ?, spec_hash = ?, updated_at = ? WHERE id = ?"
        params: tuple = (name, _dump(spec), spec_hash, now(), scenario_id)
        if expected is not None:
            sql += " AND updated_at = ? AND spec_hash = ? AND name = ?"
            params += (expected.updated_at, expected.spec_hash, expected.name)
        with self.transaction() as conn:
            cursor = conn.execute(sql, params)
            if cursor.rowcount == 0:
                if expected is not None and conn.execute("SELECT 1 FROM scenarios WHERE id = ?", (scenario_id,)).fetchone():
                    raise StaleScenario(scenario_id)
                return None
            row = conn.execute("SELECT * FROM scenarios WHERE id = ?", (scenario_id,)).fetchone()
        return _scenario(row)

    def get_scenario(self, scenario_id: str) -> ScenarioRecord | None:
        rows = self._query("SELECT * FROM scenarios WHERE id = ?", (scenario_id,))
        return _scenario(rows[0]) if rows else None

    def list_scenarios(self, *, region: str | None = None) -> list[ScenarioRecord]:
        if region is None:
            rows = self._query("SELECT * FROM scenarios ORDER BY created_at, id")
        else:
            rows = self._query("SELECT * FROM scenarios WHERE region = ? ORDER BY created_at, id", (region,))
        return [_scenario(r) for r in rows]

    def delete_scenario(self, scenario_id: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM scenarios WHERE id = ?", (scenario_id,)).rowcount > 0

    def put_result(self, scenario_id: str, spec_hash: str, result: dict, *, job_id: str | None) -> None:
        with self.transaction() as conn:
            exists = conn.execute("SELECT 1 FROM scenarios WHERE id = ?", (scenario_id,)).fetchone()
            if exists:  # the scenario may have been deleted while its run was going
                conn.execute(
                    "INSERT OR REPLACE INTO scenario_results (scenario_id, spec_hash, job_id, result, created_at) VALUES (?, ?, ?, ?, ?)",
                    (scenario_id, spec_hash, job_id, _dump(result), now()),
                )

    def get_result(self, scenario_id: str, spec_hash: str) -> dict | None:
        rows = self._query("SELECT result FROM scenario_results WHERE scenario_id = ? AND spec_hash = ?", (scenario_id, spec_hash))
        return json.loads(rows[0]["result"]) if rows else None

    # jobs --------------------------------------------------------------------------------
    def create_job(self, *, kind: str, params: dict, scenario_id: str | None = None) -> JobRecord:
        record = JobRecord(new_id(), kind, "queued", params, None, None, scenario_id, now(), None, None)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, status, params, scenario_id, created_at) VALUES (?, ?, 'queued', ?, ?, ?)",
                (record.id, kind, _dump(params), scenario_id, record.created_at),
            )
        return record

    def get_job(self, job_id: str) -> JobRecord | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def list_jobs(self, *, kind: str | None = None, status: str | None = None, scenario_id: str | None = None, limit: int = 100) -> list[JobRecord]:
        clauses, params = [], []
        for column, value in (("kind", kind), ("status", status), ("scenario_id", scenario_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id LIMIT ?", (*params, limit))
        return [_job(r) for r in rows]

    def mark_running(self, job_id: str) -> bool:
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'", (now(), job_id)
            )
            return cursor.rowcount > 0

    def mark_succeeded(self, job_id: str, result: dict) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'succeeded', result = ?, finished_at = ? WHERE id = ?", (_dump(result), now(), job_id)
            )

    def mark_failed(self, job_id: str, error: dict) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?", (_dump(error), now(), job_id)
            )

    def fail_interrupted(self, reason: str) -> list[str]:
        """Mark every job left 'running' by a previous process as failed with ``reason``; returns their ids."""
        error = _dump({"type": "interrupted", "message": reason})
        with self.transaction() as conn:
            ids = [r["id"] for r in conn.execute("SELECT id FROM jobs WHERE status = 'running'").fetchall()]
            conn.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running'", (error, now()))
        return ids

    def queued_jobs(self) -> list[JobRecord]:
        return [_job(r) for r in self._query("SELECT * FROM jobs WHERE status = 'queued' ORDER BY created_at, id")]


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _scenario(row: sqlite3.Row) -> ScenarioRecord:
    return ScenarioRecord(
        row["id"], row["region"], row["name"], json.loads(row["spec"]), row["spec_hash"], row["created_at"], row["updated_at"]
    )


def _job(row: sqlite3.Row) -> JobRecord:
    load = lambda v: json.loads(v) if v is not None else None  # noqa: E731
    return JobRecord(
        row["id"], row["kind"], row["status"], json.loads(row["params"]), load(row["result"]), load(row["error"]),
        row["scenario_id"], row["created_at"], row["started_at"], row["finished_at"],
    )
