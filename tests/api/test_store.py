"""The SQLite store: WAL, atomic writes, and the recovery of jobs a dead process left running."""

import sqlite3

import pytest

from api.services.jobs import JobRunner
from api.store import Store


def test_wal_and_roundtrip(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    record = store.create_scenario(region="wuchang", name="a", spec={"region": "wuchang", "name": "a", "added": []}, spec_hash="h1")
    store.put_result(record.id, "h1", {"x": 1}, job_id=None)
    store.close()
    reopened = Store(tmp_path / "db.sqlite3")
    assert reopened.get_scenario(record.id).spec == {"region": "wuchang", "name": "a", "added": []}
    assert reopened.get_result(record.id, "h1") == {"x": 1}
    assert reopened.delete_scenario(record.id) and reopened.get_result(record.id, "h1") is None


def test_a_failed_write_leaves_nothing(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as conn:
            conn.execute("INSERT INTO scenarios VALUES ('a', 'wuchang', 'n', '{}', 'h', 't', 't')")
            conn.execute("INSERT INTO scenarios VALUES ('a', 'wuchang', 'n', '{}', 'h', 't', 't')")
    assert store.list_scenarios() == []
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        store.create_job(kind="recommendation", params={"p": float("nan")})
    assert store.list_jobs() == []


def test_recovery_fails_running_jobs_and_requeues_queued_ones(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    running = store.create_job(kind="echo", params={"n": 1})
    store.mark_running(running.id)
    queued = store.create_job(kind="echo", params={"n": 2})
    store.close()  # the process "dies" here

    store = Store(tmp_path / "db.sqlite3")
    runner = JobRunner(store)
    runner.register("echo", lambda job: {"echo": job.params["n"]})
    assert runner.recover() == [running.id]
    runner.start()
    runner.stop(timeout_s=120)  # the stop marker queues behind the recovered job: the worker runs it first
    failed = store.get_job(running.id)
    assert failed.status == "failed" and failed.error["type"] == "interrupted" and "Submit it again" in failed.error["message"]
    assert store.get_job(queued.id).result == {"echo": 2}


def test_a_handler_crash_fails_the_job_without_details(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    runner = JobRunner(store)
    runner.register("boom", lambda job: 1 / 0)
    runner.start()
    job = runner.submit("boom", {})
    runner.stop(timeout_s=120)  # the stop marker queues behind the job: no polling, no race
    error = store.get_job(job.id).error
    assert error["type"] == "internal" and "reference" in error["message"] and "division" not in error["message"]


def test_an_update_from_a_stale_read_is_refused(tmp_path):
    """Two edits made from the same read: the second must not silently overwrite the first."""
    from api.store import StaleScenario

    store = Store(tmp_path / "db.sqlite3")
    read = store.create_scenario(region="wuchang", name="a", spec={"closed": []}, spec_hash="h1")
    first = store.update_scenario(read.id, name="a", spec={"closed": ["S01"]}, spec_hash="h2", expected=read)
    assert first.spec == {"closed": ["S01"]}
    with pytest.raises(StaleScenario):
        store.update_scenario(read.id, name="a", spec={"closed": ["S02"]}, spec_hash="h3", expected=read)
    assert store.get_scenario(read.id).spec == {"closed": ["S01"]}
    store.delete_scenario(read.id)
    assert store.update_scenario(read.id, name="a", spec={}, spec_hash="h4", expected=first) is None


def test_a_job_whose_result_cannot_be_stored_fails_instead_of_staying_running(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    runner = JobRunner(store)
    runner.register("bad", lambda job: {"text": "\ud800"})  # a lone surrogate: SQLite cannot store it as UTF-8
    job = runner.submit("bad", {})
    runner._run(job.id)
    stored = store.get_job(job.id)
    assert stored.status == "failed" and stored.error["type"] == "internal"
