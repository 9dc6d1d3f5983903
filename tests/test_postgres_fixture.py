"""The PostgreSQL fixtures of tests/postgres.py work: a real server, and a fresh, isolated database per test."""

from __future__ import annotations

import pytest

# Until tests/conftest.py imports them (then delete this line: one server is shared either way).
from tests.postgres import with_database

psycopg = pytest.importorskip("psycopg")


def test_round_trip(postgres_db):
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE scenarios (id TEXT PRIMARY KEY, spec JSONB NOT NULL)")
        conn.execute("INSERT INTO scenarios VALUES (%s, %s)", ("a1", '{"sites": 3}'))
        conn.commit()
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT id, spec FROM scenarios").fetchall() == [("a1", {"sites": 3})]
        assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 130000


def test_the_session_database_exists(postgres_url):
    # geoplan_test on the throwaway server; whatever $GEOPLAN_TEST_POSTGRES names on another
    assert postgres_url.startswith("postgresql://")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (postgres_url.rsplit("/", 1)[1].split("?")[0],)


@pytest.fixture
def other_db(postgres_db):
    """A second fresh database next to ``postgres_db`` (the fixture itself gives one per test)."""
    from tests.postgres import create_database, drop_database

    url = create_database(postgres_db)
    try:
        yield url
    finally:
        drop_database(postgres_db, url.rsplit("/", 1)[1])


def test_fresh_databases_are_empty_and_isolated(postgres_db, other_db):
    assert postgres_db != other_db
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO jobs VALUES ('j1')")
        conn.commit()
    with psycopg.connect(other_db) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
        assert tables == []
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM jobs")


def test_each_test_gets_a_new_database(postgres_db):
    # test_round_trip's and the test above's tables are not here: each test starts from an empty database
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone() == (0,)


def test_dropped_after_the_test(postgres_url):
    from tests.postgres import create_database, drop_database

    url = create_database(postgres_url)
    name = url.rsplit("/", 1)[1]
    held = psycopg.connect(url)  # a connection left open, as a store under test might
    try:
        drop_database(postgres_url, name)
    finally:
        held.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)


def test_with_database():
    assert with_database("postgresql://u@127.0.0.1:5433/a?sslmode=disable", "b") == "postgresql://u@127.0.0.1:5433/b?sslmode=disable"
    with pytest.raises(ValueError):
        with_database("dbname=a", "b")
