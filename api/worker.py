"""A job worker process: takes jobs from the store with leases and runs them, serving no requests.

Started by ``geoplan-api worker`` (or by ``geoplan-api serve``, which starts
several and restarts one that dies). It prepares the regions its jobs need on
first use, exactly as a web worker does, and stops on SIGTERM or SIGINT after
its current job (its lease lets another worker retry the job if it is killed).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading

from api.services.jobs import JobRunner
from api.services.regions import RegionService
from api.settings import Settings
from api.store import Store

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, threads: int = 1, stop: threading.Event | None = None) -> None:
    """Work through the job queue until ``stop`` is set (or a SIGTERM/SIGINT arrives in the main thread)."""
    from api.main import build_services, job_policy

    stop = stop or threading.Event()
    if settings.job_worker_nice:
        os.nice(settings.job_worker_nice)  # the web workers on the same machine come first
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    store = Store(settings.db_path)
    regions = RegionService(settings)
    runner = JobRunner(store, threads=threads, policy=job_policy(settings), exit_on_overrun=True)
    build_services(settings, store, regions, runner)
    for key in settings.preload:
        log.info("worker: preloading %s", key)
        regions.get(regions.require(key))
    gc.collect()
    gc.freeze()
    runner.start()
    log.info("worker %s: taking jobs (%s) from %s", runner.worker_id, ", ".join(runner.kinds), type(store.db).__name__)
    try:
        stop.wait()
    finally:
        runner.stop(timeout_s=settings.job_lease_seconds)
        store.close()
