"""The service's database: one SQLite file (the embedded default) or a PostgreSQL server.

Both sit behind the same three calls: :meth:`Database.transaction` (one write
transaction, committed whole or rolled back), :meth:`Database.query` (rows as
dicts) and :meth:`Database.migrate` (numbered schema steps, each applied once).
SQL is written once with ``?`` placeholders and the subset both engines share
(``ON CONFLICT``, ``RETURNING``, ``TEXT``/``INTEGER``/``DOUBLE PRECISION``).

SQLite runs in WAL mode with ``synchronous=FULL``; several processes may open
the same file (``BEGIN IMMEDIATE`` serialises their writes). PostgreSQL is
reached with psycopg 3 (``pip install 'geoplan[postgres]'``); migrations take an
advisory lock, so workers starting together apply each step once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

MIGRATION_LOCK = 727_100_001  # PostgreSQL advisory lock key held while migrating


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction:
    """The statements of one transaction; rows come back as dicts."""

    def __init__(self, database: "Database", conn: Any):
        self._database = database
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(self._database.sql(sql), tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.execute(sql, params).fetchone()
        return dict(row) if row is not None else None


class Database:
    """A connection to ``target``: a SQLite path, or a ``postgresql://`` URL.

    One connection per process, shared by its threads behind a lock: the
    statements are small, and the lock keeps a transaction to one thread.
    """

    def __init__(self, target: str | Path):
        text = str(target)
        self.target = text
        self.dialect = "postgresql" if text.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._lock = threading.RLock()
        self._conn = self._connect()

    def _connect(self) -> Any:
        if self.dialect == "postgresql":
            try:
                import psycopg
                from psycopg.rows import dict_row
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError(
                    f"GEOPLAN_DB={redact(self.target)} needs psycopg: pip install 'geoplan[postgres]'"
                ) from exc
            return psycopg.connect(self.target, autocommit=True, row_factory=dict_row, connect_timeout=10)
        path = Path(self.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def sql(self, statement: str) -> str:
        """``statement`` in this engine's placeholder style."""
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: committed whole on success, rolled back on any error."""
        with self._lock:
            self._reconnect_if_closed()
            if self.dialect == "postgresql":
                with self._conn.transaction():
                    yield Transaction(self, self._conn)
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self, self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                # a failed COMMIT (disk full, I/O error) must not leave the shared connection inside a
                # transaction, or every later BEGIN fails; SQLite may already have rolled back by itself
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one read, outside any write transaction."""
        with self._lock:
            self._reconnect_if_closed()
            return [dict(row) for row in self._conn.execute(self.sql(sql), tuple(params)).fetchall()]

    def _reconnect_if_closed(self) -> None:
        """A PostgreSQL connection the server dropped (restart, failover) is opened again once."""
        if self.dialect == "postgresql" and self._conn.closed:
            self._conn = self._connect()

    def migrate(self, steps: Sequence[tuple[int, Sequence[str]]]) -> list[int]:
        """Apply the numbered ``steps`` not yet applied, each in its own transaction; the versions applied."""
        applied: list[int] = []
        with self.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for version, statements in steps:
            with self.transaction() as tx:
                if self.dialect == "postgresql":
                    tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
                if tx.one("SELECT version FROM schema_migrations WHERE version = ?", (version,)):
                    continue
                for statement in statements:
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, _now()),
                )
                applied.append(version)
        return applied

    def columns(self, table: str) -> set[str]:
        """The column names of ``table`` (empty when it does not exist)."""
        if self.dialect == "postgresql":
            rows = self.query("SELECT column_name AS name FROM information_schema.columns WHERE table_name = ?", (table,))
        else:
            rows = self.query(f"PRAGMA table_info({table})")
        return {row["name"] for row in rows}


def redact(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")
