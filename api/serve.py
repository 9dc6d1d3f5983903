"""``geoplan-api serve``: the web workers (uvicorn) and the job workers, as one supervised group.

The web workers only answer requests (``GEOPLAN_JOB_THREADS=0``); the job
workers take the jobs. A job worker that dies (killed, or ended after a job ran
past its budget) is started again; uvicorn does the same for its web workers.
SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from api.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, *, host: str, port: int, log_level: str = "info") -> int:
    """Run until stopped; the exit code of the web server."""
    env = {**os.environ, "GEOPLAN_JOB_THREADS": "0"}
    web_command = [
        sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", host, "--port", str(port),
        "--workers", str(settings.web_workers), "--log-level", log_level,
    ]
    worker_command = [sys.executable, "-m", "api.cli", "worker", "--log-level", log_level]
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    web = subprocess.Popen(web_command, env=env)
    workers = [subprocess.Popen(worker_command, env=env) for _ in range(settings.job_workers)]
    log.info("serve: %d web worker(s) on http://%s:%d, %d job worker(s)", settings.web_workers, host, port, len(workers))
    restarts: list[float] = []
    try:
        while not stopping.is_set() and web.poll() is None:
            for i, worker in enumerate(workers):
                if worker.poll() is not None:
                    restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
                    log.warning("serve: job worker %d (pid %d) exited with %s; starting another", i, worker.pid, worker.returncode)
                    if len(restarts) > 10:  # crash loop: slow down rather than spin
                        time.sleep(5)
                    workers[i] = subprocess.Popen(worker_command, env=env)
            stopping.wait(0.5)
    finally:
        for process in (web, *workers):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + max(10.0, settings.job_lease_seconds)
        for process in (web, *workers):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return web.returncode or 0
