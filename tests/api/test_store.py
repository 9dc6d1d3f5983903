"""The store on SQLite and on a real PostgreSQL server: atomic writes, migrations, leases, keys, audit.

Every test runs on both engines (the PostgreSQL ones are skipped, saying why,
only where no server can be started; ``.ci/run`` starts one).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from api.services.jobs import JobPolicy, JobRunner, Submitter
from api.store import MIGRATIONS, Store, TooManyJobs


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "db.sqlite3")
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def store(target):
    opened = Store(target)
    yield opened
    opened.close()


def test_roundtrip_survives_reopening(target):
    store = Store(target)
    record = store.create_scenario(region="wuchang", name="a", spec={"region": "wuchang", "name": "样本", "added": []}, spec_hash="h1",
                                   team="team-a")
    store.put_result(record.id, "h1", {"x": 1}, job_id=None)
    store.put_result(record.id, "h1", {"x": 2}, job_id="j")  # a second result for the same spec replaces the first
    store.close()
    reopened = Store(target)
    assert reopened.get_scenario(record.id).spec == {"region": "wuchang", "name": "样本", "added": []}
    assert reopened.get_scenario(record.id).team == "team-a"
    assert reopened.get_result(record.id, "h1") == {"x": 2}
    assert reopened.delete_scenario(record.id) and reopened.get_result(record.id, "h1") is None
    reopened.close()


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    assert store.db.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"


def test_a_failed_write_leaves_nothing(store):
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        with store.transaction() as tx:
            for _ in range(2):
                tx.execute("INSERT INTO scenarios (id, region, name, spec, spec_hash, created_at, updated_at) "
                           "VALUES ('a', 'wuchang', 'n', '{}', 'h', 't', 't')")
    assert store.list_scenarios() == []
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        store.create_job(kind="recommendation", params={"p": float("nan")})
    assert store.list_jobs() == []
    store.create_scenario(region="wuchang", name="after", spec={}, spec_hash="h")  # the connection is usable again
    assert len(store.list_scenarios()) == 1


def test_migrations_apply_once_and_upgrade_an_old_database(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)  # a database written before keys, teams and leases existed
    for statement in MIGRATIONS[0][1]:
        old.execute(statement)
    old.execute("INSERT INTO scenarios VALUES ('s1', 'wuchang', 'kept', '{}', 'h', 't', 't')")
    old.execute("INSERT INTO jobs (id, kind, status, params, created_at) VALUES ('j1', 'recommendation', 'queued', '{}', 't')")
    old.commit()
    old.close()
    store = Store(path)
    assert store.get_scenario("s1").name == "kept" and store.get_scenario("s1").team is None
    assert store.get_job("j1").attempts == 0
    assert store.db.migrate(MIGRATIONS) == []  # nothing left to apply
    versions = [r["version"] for r in store.db.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _ in MIGRATIONS]


def test_an_update_from_a_stale_read_is_refused(store):
    """Two edits made from the same read: the second must not silently overwrite the first."""
    from api.store import StaleScenario

    read = store.create_scenario(region="wuchang", name="a", spec={"closed": []}, spec_hash="h1")
    first = store.update_scenario(read.id, name="a", spec={"closed": ["S01"]}, spec_hash="h2", expected=read)
    assert first.spec == {"closed": ["S01"]}
    with pytest.raises(StaleScenario):
        store.update_scenario(read.id, name="a", spec={"closed": ["S02"]}, spec_hash="h3", expected=read)
    assert store.get_scenario(read.id).spec == {"closed": ["S01"]}
    store.delete_scenario(read.id)
    assert store.update_scenario(read.id, name="a", spec={}, spec_hash="h4", expected=first) is None


def test_scenarios_and_jobs_are_listed_per_team(store):
    mine = store.create_scenario(region="wuchang", name="a", spec={}, spec_hash="h", team="team-a")
    store.create_scenario(region="wuchang", name="b", spec={}, spec_hash="h", team="team-b")
    assert [r.id for r in store.list_scenarios(team="team-a", all_teams=False)] == [mine.id]
    assert len(store.list_scenarios()) == 2
    store.create_job(kind="k", params={}, team="team-b")
    assert store.list_jobs(team="team-a", all_teams=False) == [] and len(store.list_jobs()) == 1


def test_a_lease_that_runs_out_is_retried_once_then_failed_with_the_reason(store):
    job = store.create_job(kind="k", params={"n": 1})
    first = store.claim_job("w1", lease_s=0.2, kinds=("k",))
    assert first.id == job.id and first.status == "running" and first.attempts == 1 and first.lease_owner == "w1"
    assert store.claim_job("w2", lease_s=0.2, kinds=("k",)) is None  # taken, and its lease still runs
    time.sleep(0.3)  # w1 "dies": its lease runs out
    second = store.claim_job("w2", lease_s=0.2, kinds=("k",))
    assert second.id == job.id and second.attempts == 2 and second.lease_owner == "w2"
    assert not store.finish_job(job.id, result={"late": True}, worker="w1")  # the dead worker's late answer is dropped
    assert not store.renew_lease(job.id, "w1", lease_s=10)
    time.sleep(0.3)  # w2 dies too
    assert store.claim_job("w3", lease_s=0.2, kinds=("k",)) is None
    failed = store.get_job(job.id)
    assert failed.status == "failed" and failed.error["type"] == "interrupted"
    assert "2 times" in failed.error["message"] and "Submit it again" in failed.error["message"]


def test_only_the_lease_holder_finishes_a_job(store):
    job = store.create_job(kind="k", params={})
    store.claim_job("w1", lease_s=30, kinds=("k",))
    assert store.renew_lease(job.id, "w1", lease_s=30)
    assert not store.finish_job(job.id, result={"x": 1}, worker="w2")
    assert store.finish_job(job.id, result={"x": 1}, worker="w1")
    assert store.get_job(job.id).result == {"x": 1} and store.get_job(job.id).status == "succeeded"
    assert store.claim_job("w1", lease_s=30, kinds=("other",)) is None


def test_active_jobs_per_key_are_bounded(store):
    for _ in range(2):
        store.create_job(kind="k", params={}, key_id="key1", max_active=2)
    with pytest.raises(TooManyJobs):
        store.create_job(kind="k", params={}, key_id="key1", max_active=2)
    store.create_job(kind="k", params={}, key_id="key2", max_active=2)  # another key is not held back
    done = store.claim_job("w", lease_s=30, kinds=("k",))
    store.finish_job(done.id, result={}, worker="w")
    store.create_job(kind="k", params={}, key_id="key1", max_active=2)  # a finished job frees its place


def test_keys_are_stored_hashed_and_checked(store, target):
    record, secret = store.create_key(role="planner", team="team-a", name="planning section")
    assert store.key_for(secret) == record
    for wrong in (secret[:-1] + ("x" if secret[-1] != "x" else "y"), "gpk_" + record.id, "nonsense", "", f"gpk_{record.id}_"):
        assert store.key_for(wrong) is None
    stored = " ".join(str(v) for row in store.db.query("SELECT * FROM api_keys") for v in row.values())
    assert secret not in stored and secret.split("_", 2)[2] not in stored
    assert store.revoke_key(record.id) and store.key_for(secret) is None and not store.revoke_key(record.id)
    with pytest.raises(ValueError, match="role"):
        store.create_key(role="root", team="team-a")


def test_audit_entries_are_kept_newest_first(store):
    store.audit(key_id="k1", team="team-a", role="planner", method="POST", path="/scenarios", status=201)
    store.audit(key_id="k2", team="team-b", role="admin", method="DELETE", path="/keys/x", status=204)
    assert [e.key_id for e in store.audit_log()] == ["k2", "k1"]
    assert [e.path for e in store.audit_log(team="team-a")] == ["/scenarios"]


def test_a_handler_crash_fails_the_job_without_details(store):
    runner = JobRunner(store)
    runner.register("boom", lambda job: 1 / 0)
    job = runner.submit("boom", {})
    error = runner.run_one().error
    assert store.get_job(job.id).status == "failed"
    assert error["type"] == "internal" and "reference" in error["message"] and "division" not in error["message"]


def test_a_job_whose_result_cannot_be_stored_fails_instead_of_staying_running(store):
    runner = JobRunner(store)
    runner.register("bad", lambda job: {"text": "\ud800"})  # a lone surrogate: no database stores it as UTF-8
    job = runner.submit("bad", {})
    runner.run_one()
    stored = store.get_job(job.id)
    assert stored.status == "failed" and stored.error["type"] == "internal"


def test_a_job_past_its_budget_fails_naming_the_setting(store):
    runner = JobRunner(store, policy=JobPolicy(budget_s=0.3, lease_s=5))
    runner.register("slow", lambda job: time.sleep(1.5) or {"late": True})
    job = runner.submit("slow", {})
    runner.run_one()
    stored = store.get_job(job.id)
    assert stored.status == "failed" and stored.error["type"] == "time_budget"
    assert "GEOPLAN_MAX_JOB_SECONDS" in stored.error["message"] and stored.result is None


def test_the_queue_refuses_a_key_with_too_many_jobs(store):
    from api.errors import TooManyRequests

    runner = JobRunner(store, policy=JobPolicy(max_active_per_key=1))
    runner.register("k", lambda job: {})
    runner.submit("k", {}, by=Submitter(key_id="key1", team="t"))
    with pytest.raises(TooManyRequests, match="GEOPLAN_MAX_JOBS_PER_KEY=1"):
        runner.submit("k", {}, by=Submitter(key_id="key1", team="t"))


def test_workers_in_two_processes_worth_of_runners_run_each_job_exactly_once(target):
    """Two runners (as two worker processes would be), two threads each, on one database."""
    seen: list[str] = []
    lock = threading.Lock()

    def handler(job):
        with lock:
            seen.append(job.id)
        time.sleep(0.01)
        return {"n": job.params["n"]}

    stores = [Store(target) for _ in range(2)]
    runners = [JobRunner(s, threads=2, policy=JobPolicy(poll_s=0.02, max_active_per_key=100)) for s in stores]
    for runner in runners:
        runner.register("k", handler)
    ids = [runners[0].submit("k", {"n": n}).id for n in range(24)]
    for runner in runners:
        runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and stores[0].count_jobs(status="succeeded") < len(ids):
        time.sleep(0.05)
    for runner in runners:
        runner.stop(timeout_s=10)
    assert sorted(seen) == sorted(ids)  # every job once, none twice
    assert all(stores[0].get_job(i).result == {"n": n} for n, i in enumerate(ids))
    for s in stores:
        s.close()
