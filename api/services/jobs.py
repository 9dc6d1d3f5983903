"""Background jobs: persisted in SQLite, run by daemon threads, independent of any request.

A job is written as ``queued`` before its id is returned, marked ``running``
and then ``succeeded`` (with its result) or ``failed`` (with a reason), each
in its own transaction. A client that disconnects loses nothing: it asks for
the job by id later. When the process dies mid-job, the next start marks the
job ``failed`` with the reason (the work is not resumed: a solve is not
checkpointed), and queues again the jobs that had not started.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Callable

from geoplan.errors import GeoplanError, InfeasibleError

from api.errors import ApiError, best_achievable, error_kind
from api.services.scenarios import jsonable
from api.store import JobRecord, Store, now

log = logging.getLogger(__name__)

Handler = Callable[[JobRecord], dict]


class JobRunner:
    """A small pool of daemon threads working through the persisted job queue."""

    def __init__(self, store: Store, *, workers: int = 1):
        self.store = store
        self.workers = workers
        self._handlers: dict[str, Handler] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    def recover(self) -> list[str]:
        """After a restart: fail the jobs a dead process left running, queue again those it never started."""
        reason = (
            f"The server stopped while this job was running (noticed at restart, {now()}); its work was lost. "
            "Submit it again."
        )
        failed = self.store.fail_interrupted(reason)
        if failed:
            log.warning("jobs: %d job(s) interrupted by the last shutdown marked failed: %s", len(failed), ", ".join(failed))
        for job in self.store.queued_jobs():
            self._queue.put(job.id)
        return failed

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"geoplan-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the threads finish their current job (up to ``timeout_s``); queued jobs stay queued in the database."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def submit(self, kind: str, params: dict, *, scenario_id: str | None = None) -> JobRecord:
        if kind not in self._handlers:
            raise ValueError(f"no handler for job kind {kind!r}")
        job = self.store.create_job(kind=kind, params=jsonable(params), scenario_id=scenario_id)
        self._queue.put(job.id)
        return job

    def is_active(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._running

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:  # never let a worker die: the database may be gone at shutdown
                log.exception("jobs: worker failed on job %s", job_id)

    def _run(self, job_id: str) -> None:
        if not self.store.mark_running(job_id):
            return  # already taken, or no longer queued
        job = self.store.get_job(job_id)
        if job is None:
            return
        with self._lock:
            self._running.add(job_id)
        try:
            result = self._handlers[job.kind](job)
        except (GeoplanError, ApiError) as exc:
            error = {"type": error_kind(exc) if isinstance(exc, GeoplanError) else exc.kind, "message": str(exc)}
            if isinstance(exc, InfeasibleError):
                error["best_achievable"] = best_achievable(exc)
            log.info("jobs: %s %s failed: %s", job.kind, job_id, exc)
            self.store.mark_failed(job_id, jsonable(error))
        except Exception as exc:
            self._fail_internally(job, job_id, exc, "failed unexpectedly")
        else:
            try:
                self.store.mark_succeeded(job_id, jsonable(result))
            except Exception as exc:  # e.g. a result SQLite cannot store: fail the job rather than leave it 'running'
                self._fail_internally(job, job_id, exc, "finished but its result could not be stored")
            else:
                log.info("jobs: %s %s succeeded", job.kind, job_id)
        finally:
            with self._lock:
                self._running.discard(job_id)

    def _fail_internally(self, job: JobRecord, job_id: str, exc: Exception, what: str) -> None:
        """Mark the job failed with a reference to the server log, which has the traceback; the client gets no internals."""
        reference = secrets.token_hex(4)
        log.error("jobs: %s %s %s (reference %s)", job.kind, job_id, what, reference, exc_info=exc)
        self.store.mark_failed(job_id, {
            "type": "internal",
            "message": f"The job {what} (reference {reference}); the server log has the details.",
        })


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
        "params": {k: v for k, v in job.params.items() if k != "spec"},
        "result": job.result,
        "error": job.error,
        "links": links,
    }
