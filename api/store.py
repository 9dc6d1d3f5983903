"""Persistence of scenarios, jobs, results, API keys and the audit log.

On SQLite (the embedded default) or PostgreSQL, through :class:`api.db.Database`:
every write is one transaction, so a scenario, a job state change or a key is
either fully stored or not at all. Jobs are taken by workers with a *lease*: a
worker renews it while it works, and a job whose lease ran out (its worker
died) is queued again once, then failed with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.db import Database

ROLES = ("viewer", "planner", "admin")
KEY_PREFIX = "gpk"

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE IF NOT EXISTS scenarios (
            id          TEXT PRIMARY KEY,
            region      TEXT NOT NULL,
            name        TEXT NOT NULL,
            spec        TEXT NOT NULL,
            spec_hash   TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS jobs (
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
        )""",
        "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
        "CREATE INDEX IF NOT EXISTS jobs_scenario ON jobs (scenario_id)",
        """CREATE TABLE IF NOT EXISTS scenario_results (
            scenario_id  TEXT NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
            spec_hash    TEXT NOT NULL,
            job_id       TEXT,
            result       TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            PRIMARY KEY (scenario_id, spec_hash)
        )""",
    )),
    (2, (
        "ALTER TABLE scenarios ADD COLUMN team TEXT",
        "CREATE INDEX IF NOT EXISTS scenarios_team ON scenarios (team)",
        "ALTER TABLE jobs ADD COLUMN team TEXT",
        "ALTER TABLE jobs ADD COLUMN key_id TEXT",
        "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_expires DOUBLE PRECISION",
        "ALTER TABLE jobs ADD COLUMN budget_s DOUBLE PRECISION",
        "CREATE INDEX IF NOT EXISTS jobs_key_status ON jobs (key_id, status)",
        """CREATE TABLE IF NOT EXISTS api_keys (
            id           TEXT PRIMARY KEY,
            secret_hash  TEXT NOT NULL,
            role         TEXT NOT NULL CHECK (role IN ('viewer', 'planner', 'admin')),
            team         TEXT NOT NULL,
            name         TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            revoked_at   TEXT
        )""",
        """CREATE TABLE IF NOT EXISTS audit_log (
            id           TEXT PRIMARY KEY,
            at           TEXT NOT NULL,
            key_id       TEXT,
            team         TEXT,
            role         TEXT,
            method       TEXT NOT NULL,
            path         TEXT NOT NULL,
            status       INTEGER NOT NULL,
            detail       TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS audit_at ON audit_log (at)",
        """CREATE TABLE IF NOT EXISTS workers (
            id           TEXT PRIMARY KEY,
            host         TEXT NOT NULL,
            pid          INTEGER NOT NULL,
            started_at   TEXT NOT NULL,
            seen         DOUBLE PRECISION NOT NULL
        )""",
    )),
)


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
    team: str | None = None


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
    team: str | None = None
    key_id: str | None = None
    attempts: int = 0
    lease_owner: str | None = None
    budget_s: float | None = None


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    id: str
    role: str
    team: str
    name: str
    created_at: str
    revoked_at: str | None


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    id: str
    at: str
    key_id: str | None
    team: str | None
    role: str | None
    method: str
    path: str
    status: int
    detail: str | None


class Store:
    """Scenarios, jobs, results, keys and the audit log in one database (a SQLite path or a PostgreSQL URL)."""

    def __init__(self, target: str | Path):
        self.db = Database(target)
        self.db.migrate(MIGRATIONS)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def close(self) -> None:
        self.db.close()

    def transaction(self):
        return self.db.transaction()

    # scenarios ---------------------------------------------------------------------------
    def create_scenario(self, *, region: str, name: str, spec: dict, spec_hash: str, team: str | None = None) -> ScenarioRecord:
        stamp = now()
        record = ScenarioRecord(new_id(), region, name, spec, spec_hash, stamp, stamp, team)
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO scenarios (id, region, name, spec, spec_hash, created_at, updated_at, team) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, region, name, _dump(spec), spec_hash, stamp, stamp, team),
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
        with self.transaction() as tx:
            if tx.execute(sql, params).rowcount == 0:
                if expected is not None and tx.one("SELECT 1 AS found FROM scenarios WHERE id = ?", (scenario_id,)):
                    raise StaleScenario(scenario_id)
                return None
            row = tx.one("SELECT * FROM scenarios WHERE id = ?", (scenario_id,))
        return _scenario(row)

    def get_scenario(self, scenario_id: str) -> ScenarioRecord | None:
        rows = self.db.query("SELECT * FROM scenarios WHERE id = ?", (scenario_id,))
        return _scenario(rows[0]) if rows else None

    def list_scenarios(self, *, region: str | None = None, team: str | None = None, all_teams: bool = True) -> list[ScenarioRecord]:
        """Scenarios, oldest first: of one region, and of one ``team`` unless ``all_teams``."""
        clauses, params = _filters(region=region)
        if not all_teams:
            clauses.append("team = ?" if team is not None else "team IS NULL")
            params += [team] if team is not None else []
        rows = self.db.query(f"SELECT * FROM scenarios {_where(clauses)} ORDER BY created_at, id", params)
        return [_scenario(r) for r in rows]

    def delete_scenario(self, scenario_id: str) -> bool:
        with self.transaction() as tx:
            tx.execute("DELETE FROM scenario_results WHERE scenario_id = ?", (scenario_id,))
            return tx.execute("DELETE FROM scenarios WHERE id = ?", (scenario_id,)).rowcount > 0

    def put_result(self, scenario_id: str, spec_hash: str, result: dict, *, job_id: str | None) -> None:
        with self.transaction() as tx:
            if tx.one("SELECT 1 AS found FROM scenarios WHERE id = ?", (scenario_id,)):  # it may have been deleted meanwhile
                tx.execute(
                    "INSERT INTO scenario_results (scenario_id, spec_hash, job_id, result, created_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (scenario_id, spec_hash) DO UPDATE SET job_id = excluded.job_id, result = excluded.result, "
                    "created_at = excluded.created_at",
                    (scenario_id, spec_hash, job_id, _dump(result), now()),
                )

    def get_result(self, scenario_id: str, spec_hash: str) -> dict | None:
        rows = self.db.query("SELECT result FROM scenario_results WHERE scenario_id = ? AND spec_hash = ?", (scenario_id, spec_hash))
        return json.loads(rows[0]["result"]) if rows else None

    # jobs --------------------------------------------------------------------------------
    def create_job(self, *, kind: str, params: dict, scenario_id: str | None = None, team: str | None = None,
                   key_id: str | None = None, budget_s: float | None = None, max_active: int | None = None) -> JobRecord:
        """A queued job. With ``max_active``, :class:`TooManyJobs` when ``key_id`` already has that many queued or running."""
        record = JobRecord(new_id(), kind, "queued", params, None, None, scenario_id, now(), None, None, team, key_id, 0, None, budget_s)
        with self.transaction() as tx:
            if max_active is not None:
                active = self._active_jobs(tx, key_id)
                if active >= max_active:
                    raise TooManyJobs(active)
            tx.execute(
                "INSERT INTO jobs (id, kind, status, params, scenario_id, created_at, team, key_id, budget_s) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (record.id, kind, _dump(params), scenario_id, record.created_at, team, key_id, budget_s),
            )
        return record

    @staticmethod
    def _active_jobs(tx, key_id: str | None) -> int:
        where = "key_id = ?" if key_id is not None else "key_id IS NULL"
        row = tx.one(f"SELECT COUNT(*) AS n FROM jobs WHERE {where} AND status IN ('queued', 'running')", (key_id,) if key_id else ())
        return int(row["n"])

    def get_job(self, job_id: str) -> JobRecord | None:
        rows = self.db.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def list_jobs(self, *, kind: str | None = None, status: str | None = None, scenario_id: str | None = None,
                  team: str | None = None, all_teams: bool = True, limit: int = 100) -> list[JobRecord]:
        clauses, params = _filters(kind=kind, status=status, scenario_id=scenario_id)
        if not all_teams:
            clauses.append("team = ?" if team is not None else "team IS NULL")
            params += [team] if team is not None else []
        rows = self.db.query(f"SELECT * FROM jobs {_where(clauses)} ORDER BY created_at DESC, id LIMIT ?", (*params, limit))
        return [_job(r) for r in rows]

    def count_jobs(self, *, status: str) -> int:
        return int(self.db.query("SELECT COUNT(*) AS n FROM jobs WHERE status = ?", (status,))[0]["n"])

    def claim_job(self, worker: str, *, lease_s: float, kinds: tuple[str, ...], max_attempts: int = 2) -> JobRecord | None:
        """Take the oldest queued job of ``kinds`` for ``worker`` with a lease of ``lease_s``; None when there is none.

        Jobs whose lease ran out first go back to the queue (at most ``max_attempts`` runs in
        all) or fail with the reason, so a dead worker's job is never left running.
        """
        self.expire_leases(max_attempts=max_attempts)
        if not kinds:
            return None
        marks = ", ".join("?" for _ in kinds)
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        with self.transaction() as tx:
            row = tx.one(
                f"SELECT id FROM jobs WHERE status = 'queued' AND kind IN ({marks}) ORDER BY created_at, id LIMIT 1{lock}", kinds
            )
            if row is None:
                return None
            claimed = tx.one(
                "UPDATE jobs SET status = 'running', started_at = ?, lease_owner = ?, lease_expires = ?, attempts = attempts + 1 "
                "WHERE id = ? AND status = 'queued' RETURNING *",
                (now(), worker, time.time() + lease_s, row["id"]),
            )
        return _job(claimed) if claimed else None

    def renew_lease(self, job_id: str, worker: str, *, lease_s: float) -> bool:
        """Extend ``worker``'s lease on a running job; False when the lease is no longer its own."""
        with self.transaction() as tx:
            return tx.execute(
                "UPDATE jobs SET lease_expires = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (time.time() + lease_s, job_id, worker),
            ).rowcount > 0

    def expire_leases(self, *, max_attempts: int = 2) -> tuple[list[str], list[str]]:
        """Queue again (or fail, after ``max_attempts`` runs) the running jobs whose lease ran out: (requeued, failed)."""
        stamp = time.time()
        with self.transaction() as tx:
            expired = tx.rows("SELECT id, attempts FROM jobs WHERE status = 'running' AND lease_expires < ?", (stamp,))
            requeued = [r["id"] for r in expired if r["attempts"] < max_attempts]
            failed = [r["id"] for r in expired if r["attempts"] >= max_attempts]
            for job_id in requeued:
                tx.execute(
                    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires = NULL, started_at = NULL "
                    "WHERE id = ? AND status = 'running'", (job_id,),
                )
            error = _dump({
                "type": "interrupted",
                "message": f"The worker running this job stopped before it finished, {max_attempts} times "
                           f"(noticed {now()}); its work was lost. Submit it again, or ask the operator to check the job workers' logs.",
            })
            for job_id in failed:
                tx.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, lease_owner = NULL WHERE id = ? AND status = 'running'",
                    (error, now(), job_id),
                )
        return requeued, failed

    def finish_job(self, job_id: str, *, result: dict | None = None, error: dict | None = None, worker: str | None = None) -> bool:
        """Store a job's result (succeeded) or error (failed); with ``worker``, only while it holds the lease."""
        status, payload, column = ("failed", error, "error") if error is not None else ("succeeded", result, "result")
        sql = f"UPDATE jobs SET status = ?, {column} = ?, finished_at = ?, lease_owner = NULL WHERE id = ? AND status IN ('queued', 'running')"
        params: tuple = (status, _dump(payload), now(), job_id)
        if worker is not None:
            sql += " AND lease_owner = ?"
            params += (worker,)
        with self.transaction() as tx:
            return tx.execute(sql, params).rowcount > 0

    def mark_succeeded(self, job_id: str, result: dict) -> None:
        self.finish_job(job_id, result=result)

    def mark_failed(self, job_id: str, error: dict) -> None:
        self.finish_job(job_id, error=error)

    # job workers -------------------------------------------------------------------------
    def worker_seen(self, worker: str, *, host: str, pid: int, started_at: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO workers (id, host, pid, started_at, seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seen = excluded.seen",
                (worker, host, pid, started_at, time.time()),
            )

    def worker_gone(self, worker: str) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM workers WHERE id = ?", (worker,))

    def live_workers(self, *, within_s: float) -> list[dict[str, Any]]:
        return self.db.query("SELECT id, host, pid, started_at, seen FROM workers WHERE seen >= ? ORDER BY started_at", (time.time() - within_s,))

    # keys --------------------------------------------------------------------------------
    def create_key(self, *, role: str, team: str, name: str = "") -> tuple[KeyRecord, str]:
        """A new key for ``team`` with ``role``: its record and the secret, which is stored only as a hash."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
        if not team.strip():
            raise ValueError("a key needs a team name")
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(key_id, role, team.strip(), name.strip(), now(), None)
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO api_keys (id, secret_hash, role, team, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, hash_secret(secret), record.role, record.team, record.name, record.created_at),
            )
        return record, secret

    def key_for(self, secret: str) -> KeyRecord | None:
        """The live key whose secret this is; None for an unknown, malformed or revoked key."""
        parts = secret.split("_")
        if len(parts) < 3 or parts[0] != KEY_PREFIX:
            return None
        rows = self.db.query("SELECT * FROM api_keys WHERE id = ? AND revoked_at IS NULL", (parts[1],))
        if not rows or not hmac.compare_digest(rows[0]["secret_hash"], hash_secret(secret)):
            return None
        return _key(rows[0])

    def list_keys(self, *, team: str | None = None) -> list[KeyRecord]:
        clauses, params = _filters(team=team)
        return [_key(r) for r in self.db.query(f"SELECT * FROM api_keys {_where(clauses)} ORDER BY created_at, id", params)]

    def get_key(self, key_id: str) -> KeyRecord | None:
        rows = self.db.query("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    def revoke_key(self, key_id: str) -> bool:
        with self.transaction() as tx:
            return tx.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now(), key_id)).rowcount > 0

    # audit -------------------------------------------------------------------------------
    def audit(self, *, key_id: str | None, team: str | None, role: str | None, method: str, path: str, status: int,
              detail: str | None = None) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO audit_log (id, at, key_id, team, role, method, path, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"{time.time_ns():020d}-{secrets.token_hex(3)}", now(), key_id, team, role, method, path, status, detail),
            )

    def audit_log(self, *, team: str | None = None, limit: int = 100) -> list[AuditRecord]:
        clauses, params = _filters(team=team)
        rows = self.db.query(f"SELECT * FROM audit_log {_where(clauses)} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [AuditRecord(**{f.name: r[f.name] for f in dataclasses.fields(AuditRecord)}) for r in rows]


class TooManyJobs(Exception):
    """A key already has as many jobs queued or running as it may."""

    def __init__(self, active: int):
        super().__init__(active)
        self.active = active


def hash_secret(secret: str) -> str:
    """SHA-256 of a key's secret: the secrets are 256-bit random, so a fast unsalted hash cannot be guessed back."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _filters(**values: Any) -> tuple[list[str], list[Any]]:
    clauses, params = [], []
    for column, value in values.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses, params


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _scenario(row: dict) -> ScenarioRecord:
    return ScenarioRecord(
        row["id"], row["region"], row["name"], json.loads(row["spec"]), row["spec_hash"], row["created_at"], row["updated_at"],
        row.get("team"),
    )


def _job(row: dict) -> JobRecord:
    load = lambda v: json.loads(v) if v is not None else None  # noqa: E731
    return JobRecord(
        row["id"], row["kind"], row["status"], json.loads(row["params"]), load(row["result"]), load(row["error"]),
        row["scenario_id"], row["created_at"], row["started_at"], row["finished_at"],
        row.get("team"), row.get("key_id"), int(row.get("attempts") or 0), row.get("lease_owner"), row.get("budget_s"),
    )


def _key(row: dict) -> KeyRecord:
    return KeyRecord(row["id"], row["role"], row["team"], row["name"], row["created_at"], row["revoked_at"])
