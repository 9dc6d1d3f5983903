"""Background jobs: queued in the store by the web workers, taken with a lease by job workers.

A job is written as ``queued`` before its id is returned. A worker (a thread of
a ``geoplan-api worker`` process, or of the web process when
``GEOPLAN_JOB_THREADS`` > 0) takes it with a lease, renews the lease while it
works, and stores ``succeeded`` with the result or ``failed`` with the reason.
When a worker dies its lease runs out and the job is queued again once, then
failed with the reason (:meth:`api.store.Store.expire_leases`). A job over its
time budget is failed with the budget and setting named, and a dedicated worker
process then exits so that its supervisor starts a fresh one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from geoplan.errors import GeoplanError, InfeasibleError

from api.errors import ApiError, TooManyRequests, best_achievable, error_kind
from api.services.scenarios import jsonable
from api.store import JobRecord, Store, TooManyJobs, now

log = logging.getLogger(__name__)

Handler = Callable[[JobRecord], dict]


@dataclasses.dataclass(frozen=True)
class JobPolicy:
    """How jobs are bounded and leased (each field is a setting)."""

    max_active_per_key: int = 4  # GEOPLAN_MAX_JOBS_PER_KEY
    budget_s: float = 900.0  # GEOPLAN_MAX_JOB_SECONDS
    lease_s: float = 30.0  # GEOPLAN_JOB_LEASE_SECONDS
    max_attempts: int = 2
    poll_s: float = 0.2


@dataclasses.dataclass(frozen=True)
class Submitter:
    """Who submits a job: their key (None when auth is off) and team."""

    key_id: str | None = None
    team: str | None = None


class JobRunner:
    """The job queue (``submit``) and, with ``threads`` > 0, workers that take jobs from it."""

    def __init__(self, store: Store, *, threads: int = 0, policy: JobPolicy = JobPolicy(), exit_on_overrun: bool = False):
        self.store = store
        self.threads = threads
        self.policy = policy
        self.exit_on_overrun = exit_on_overrun
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._handlers: dict[str, Handler] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._started_at = now()

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    # the queue ---------------------------------------------------------------------------
    def submit(self, kind: str, params: dict, *, scenario_id: str | None = None, by: Submitter = Submitter()) -> JobRecord:
        """Queue a job; 429 when ``by`` already has ``max_active_per_key`` jobs queued or running."""
        if kind not in self._handlers:
            raise ValueError(f"no handler for job kind {kind!r}")
        try:
            job = self.store.create_job(
                kind=kind, params=jsonable(params), scenario_id=scenario_id, team=by.team, key_id=by.key_id,
                budget_s=self.policy.budget_s, max_active=self.policy.max_active_per_key,
            )
        except TooManyJobs as exc:
            raise TooManyRequests(
                f"This key already has {exc.active} job(s) queued or running, the most allowed "
                f"(GEOPLAN_MAX_JOBS_PER_KEY={self.policy.max_active_per_key}); wait for one to finish (GET /jobs?status=running)."
            ) from None
        self._wake.set()
        return job

    # the workers -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (none when ``threads`` is 0) and the heartbeat that shows them in /health."""
        if self.threads <= 0:
            return
        self._stopping.clear()
        self._threads.append(threading.Thread(target=self._heartbeat, name="geoplan-job-heartbeat", daemon=True))
        for i in range(self.threads):
            self._threads.append(threading.Thread(target=self._work, args=(f"{self.worker_id}/{i}",), name=f"geoplan-job-{i}", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the threads finish their current job (up to ``timeout_s``); queued jobs stay queued in the store."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        if self.threads > 0:
            try:
                self.store.worker_gone(self.worker_id)
            except Exception:  # the database may be gone at shutdown
                log.debug("jobs: could not unregister worker %s", self.worker_id, exc_info=True)

    def wait(self) -> None:
        """Block until :meth:`stop` is called (a worker process's main loop)."""
        self._stopping.wait()

    def run_one(self, worker: str | None = None) -> JobRecord | None:
        """Take one queued job, run it to the end and return it as stored; None when the queue is empty."""
        worker = worker or f"{self.worker_id}/once"
        job = self.store.claim_job(worker, lease_s=self.policy.lease_s, kinds=self.kinds, max_attempts=self.policy.max_attempts)
        if job is None:
            return None
        self._run(job, worker)
        return self.store.get_job(job.id)

    def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            try:
                self.store.worker_seen(self.worker_id, host=socket.gethostname(), pid=os.getpid(), started_at=self._started_at)
            except Exception:
                log.warning("jobs: heartbeat failed", exc_info=True)
            self._stopping.wait(5.0)

    def _work(self, worker: str) -> None:
        while not self._stopping.is_set():
            try:
                if self.run_one(worker) is None:
                    self._wake.wait(self.policy.poll_s)
                    self._wake.clear()
            except Exception:  # never let a worker die: the database may be gone at shutdown
                log.exception("jobs: worker %s failed", worker)
                self._stopping.wait(1.0)

    def _run(self, job: JobRecord, worker: str) -> None:
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(job, worker, done), name=f"lease-{job.id}", daemon=True)
        keeper.start()
        try:
            outcome = self._outcome(job)
        finally:
            done.set()
            keeper.join()
        try:
            stored = self.store.finish_job(job.id, worker=worker, **outcome)
        except Exception as exc:  # e.g. a result the database cannot store: fail the job rather than leave it running
            stored = self.store.finish_job(job.id, worker=worker, error=self._internal(job, exc, "finished but its result could not be stored"))
        if stored:
            log.info("jobs: %s %s %s", job.kind, job.id, "failed" if "error" in outcome else "succeeded")
        else:
            log.warning("jobs: %s %s finished after its lease was lost; its outcome was dropped", job.kind, job.id)

    def _outcome(self, job: JobRecord) -> dict:
        try:
            return {"result": jsonable(self._handlers[job.kind](job))}
        except (GeoplanError, ApiError) as exc:
            error = {"type": error_kind(exc) if isinstance(exc, GeoplanError) else exc.kind, "message": str(exc)}
            if isinstance(exc, InfeasibleError):
                error["best_achievable"] = best_achievable(exc)
            log.info("jobs: %s %s failed: %s", job.kind, job.id, exc)
            return {"error": jsonable(error)}
        except Exception as exc:
            return {"error": self._internal(job, exc, "failed unexpectedly")}

    def _keep_lease(self, job: JobRecord, worker: str, done: threading.Event) -> None:
        """Renew the lease until the job is done; fail it when it runs past its time budget."""
        started = time.monotonic()
        budget = job.budget_s or self.policy.budget_s
        while not done.wait(min(self.policy.lease_s / 3, max(0.05, budget - (time.monotonic() - started)))):
            if time.monotonic() - started >= budget:
                message = (f"The job ran past its time budget of {budget:g} s (GEOPLAN_MAX_JOB_SECONDS) and was stopped; "
                           "ask for less (a shorter time_limit_s, fewer candidates) or ask the operator for a larger budget.")
                self.store.finish_job(job.id, worker=worker, error={"type": "time_budget", "message": message})
                log.error("jobs: %s %s ran past its budget of %g s", job.kind, job.id, budget)
                if self.exit_on_overrun:  # a thread cannot be stopped: the process ends and its supervisor starts a new one
                    os._exit(70)
                return
            if not self.store.renew_lease(job.id, worker, lease_s=self.policy.lease_s):
                return

    def _internal(self, job: JobRecord, exc: BaseException, what: str) -> dict:
        """A failure with a reference to the server log, which has the traceback; the client gets no internals."""
        reference = secrets.token_hex(4)
        log.error("jobs: %s %s %s (reference %s)", job.kind, job.id, what, reference, exc_info=exc)
        return {"type": "internal", "message": f"The job {what} (reference {reference}); the server log has the details."}


def job_out(job: JobRecord) -> dict:
    """A job as the API shows it (JobOut): its status, params (without the scenario spec it carries), result and links."""
    prefix = "/recommendations" if job.kind == "recommendation" else "/jobs"
    links = {"self": f"{prefix}/{job.id}", "job": f"/jobs/{job.id}"}
    if job.scenario_id:
        links["scenario"] = f"/scenarios/{job.scenario_id}"
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "region": job.params.get("region"),
        "scenario_id": job.scenario_id,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempts": job.attempts,
        "params": {k: v for k, v in job.params.items() if k != "spec"},
        "result": job.result,
        "error": job.error,
        "links": links,
    }
