"""Run a batch on Dask: one task per region and scenario, resumable, with a summary across regions.

:func:`run_batch` checks everything it is given, skips the tasks whose marker
says they are done with the same inputs, sends the rest to a Dask cluster (a
:class:`~distributed.LocalCluster` of worker processes, or the scheduler at
``scheduler``), and writes the summary table and the review workbook across
regions from the tasks' files. Timings and memory go to a run log under
``_log/``, the one place that holds clock times. The library reports progress
through a callback and never prints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from geoplan.batch.regions import MIN_NETWORK_SHARE, BatchRegion
from geoplan.batch.task import (
    DONE_DIR, LAYERS, LOG_DIR, REGIONS_DIR, STAGING_DIR, BatchSettings, BatchTask, ScenarioSpec, TaskOutcome,
    fingerprint, marker_is_current, run_task,
)
from geoplan.errors import InputError

log = logging.getLogger(__name__)

Progress = Callable[[TaskOutcome, int, int], None]


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """A finished batch: every task's outcome (in grid order), the summary table, the files across regions and the run log."""

    out_dir: Path
    outcomes: tuple[TaskOutcome, ...]
    summary: pd.DataFrame
    files: dict[str, Path]
    log_path: Path
    wall_s: float
    workers: int | None
    scheduler: str

    def by_status(self, status: str) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[TaskOutcome]:
        return self.by_status("failed")

    @property
    def regions_analysed(self) -> list[str]:
        """Regions with at least one task analysed now or before (``ok`` or ``resumed`` and not skipped)."""
        skipped = {o.region for o in self.by_status("skipped")}
        return list(dict.fromkeys(o.region for o in self.outcomes if o.status in ("ok", "resumed") and o.region not in skipped))


def run_batch(
    regions: Sequence[BatchRegion],
    scenarios: Sequence[ScenarioSpec | str] = ("existing",),
    *,
    out_dir: str | Path,
    thresholds_min: Sequence[float] = (5, 10, 15),
    preset: str | None = "shuimogou",
    workers: int = 1,
    scheduler: str | None = None,
    processes: bool = True,
    cache_dir: str | Path | None = None,
    min_network_share: float = MIN_NETWORK_SHARE,
    time_limit_s: float = 60.0,
    progress: Progress | None = None,
) -> BatchResult:
    """Analyse every region under every scenario on Dask, resuming finished work; per-region failures are reported, not raised.

    Parameters
    ----------
    regions
        From :func:`~geoplan.batch.regions.district_regions` or
        :func:`~geoplan.batch.regions.configured_region`; their configs are
        written to ``<out_dir>/regions/``, so make them with that folder.
    scenarios
        :class:`~geoplan.batch.task.ScenarioSpec` or their text (``"existing"``, ``"recommend p=5"``).
    out_dir
        The batch folder: layers as hive partitions (``coverage/region=<key>/scenario=<slug>/part.parquet``,
        ``gaps``, ``sites``, ``summary``, ``reviews``, ``extent/region=<key>/``), ``summary.csv``,
        ``summary.xlsx``, ``review.xlsx``; markers in ``_done/``, run logs in ``_log/``.
    thresholds_min
        Walks in minutes counted in every region (the largest sets the walks computed).
    preset
        The plan targets each region's result is reviewed against (None: no review).
    workers, processes
        A local cluster of ``workers`` worker processes of one thread each
        (``processes=False``: threads in this process, for small runs).
    scheduler
        The address of a running Dask scheduler (``tcp://host:8786``) instead
        of a local cluster; its workers need geoplan, the data and the batch
        folder at the same paths.
    cache_dir
        The prepared-network cache every worker shares (default
        :func:`geoplan.region.default_cache_dir`).
    min_network_share
        A region whose street network covers less of its area is skipped, with the reason.
    time_limit_s
        The solver's limit per recommended plan.
    progress
        Called on this process with each task's outcome, the tasks finished and the total.
    """
    from geoplan.region import default_cache_dir

    started = time.perf_counter()
    settings, tasks = _plan(regions, scenarios, out_dir, thresholds_min, preset, cache_dir or default_cache_dir(),
                            min_network_share, time_limit_s)
    if scheduler is None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers is the number of local Dask worker processes, a whole number >= 1; got {workers!r}.")
    out = settings.out_dir
    check_batch_folder(out)
    _sweep(out)
    outcomes: dict[str, TaskOutcome] = {}
    pending = []
    for task in tasks:
        if marker_is_current(task):
            outcomes[task.name] = TaskOutcome(region=task.region.key, scenario=task.scenario.slug, status="resumed")
            if progress:
                progress(outcomes[task.name], len(outcomes), len(tasks))
        else:
            pending.append(task)
    address = "none (every task done before)"
    if pending:
        with _client(scheduler, workers, processes) as client:
            address = str(client.scheduler.address)
            outcomes.update(_execute(client, pending, progress, done=len(outcomes), total=len(tasks)))
    _sweep(out)
    from geoplan.batch.collect import write_summaries

    ordered = tuple(outcomes[t.name] for t in tasks)
    summary, files = write_summaries(tasks, ordered, settings)
    wall = time.perf_counter() - started
    log_path = _write_log(settings, tasks, ordered, wall, workers if scheduler is None else None, address)
    return BatchResult(out_dir=out, outcomes=ordered, summary=summary, files=files, log_path=log_path, wall_s=wall,
                       workers=workers if scheduler is None else None, scheduler=address)


def _plan(regions, scenarios, out_dir, thresholds, preset, cache_dir, min_share, time_limit) -> tuple[BatchSettings, list[BatchTask]]:
    """The settings and the tasks (scenario by scenario, so a region's network is prepared once before its next scenario)."""
    if not regions:
        raise InputError("A batch needs at least one region (geoplan batch --districts all, or --region NAME).")
    keys = [r.key for r in regions]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise InputError(f"Regions {twice} are given twice; give each region once.")
    out = Path(out_dir).resolve()
    wrong_home = [r.key for r in regions if r.config.source.parent != out / REGIONS_DIR]
    if wrong_home:
        raise InputError(
            f"The configs of {wrong_home[:5]} would be written outside the batch folder; make the regions with "
            f"directory={out / REGIONS_DIR} (district_regions, configured_region)."
        )
    specs = [s if isinstance(s, ScenarioSpec) else ScenarioSpec.parse(s) for s in scenarios]
    if not specs:
        raise InputError('A batch needs at least one scenario, e.g. "existing" or "recommend p=5".')
    slugs = [s.slug for s in specs]
    if len(set(slugs)) < len(slugs):
        raise InputError(f"Scenarios repeat: {slugs}; give each once.")
    values = []
    for value in thresholds:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not number > 0 or number != number:
            raise InputError(f"Thresholds are walks in minutes, positive numbers; got {value!r}.")
        values.append(int(number) if number.is_integer() else number)
    if not values:
        raise InputError("Give at least one threshold in minutes, e.g. 15.")
    values = tuple(sorted(set(values)))
    if not 0 <= min_share < 1:
        raise InputError(f"min_network_share is a share of the area between 0 and 1, got {min_share!r}.")
    if not time_limit > 0:
        raise InputError(f"time_limit_s must be positive seconds, got {time_limit!r}.")
    for spec in specs:
        if spec.threshold_min is not None and spec.threshold_min > max(values):
            raise InputError(
                f"The scenario {spec.text!r} plans for a {spec.threshold_min:g}-minute walk, beyond the largest threshold "
                f"({max(values):g} min); add {spec.threshold_min:g} to the thresholds."
            )
    if preset is not None:
        from geoplan.targets import load_targets

        load_targets(Path(preset) if str(preset).endswith(".toml") else preset)  # a bad preset is told before any work
    settings = BatchSettings(out_dir=out, cache_dir=Path(cache_dir).expanduser().resolve(), thresholds_min=values,
                             preset=preset, min_network_share=float(min_share), time_limit_s=float(time_limit))
    tasks = [BatchTask(r, s, settings, fingerprint(r, s, settings)) for s in specs for r in regions]
    return settings, tasks


def _execute(client, tasks: list[BatchTask], progress: Progress | None, *, done: int, total: int) -> dict[str, TaskOutcome]:
    from distributed import as_completed

    futures = {}
    for task in tasks:
        future = client.submit(run_task, task, key=f"geoplan-batch-{task.region.key}-{task.scenario.slug}-{task.fingerprint[:12]}", pure=False)
        futures[future] = task
    outcomes = {}
    for future in as_completed(list(futures)):
        task = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # the worker died too often, or the cluster went away
            outcome = TaskOutcome(region=task.region.key, scenario=task.scenario.slug, status="failed", reason=_lost(exc))
        outcomes[task.name] = outcome
        future.release()
        done += 1
        if progress:
            progress(outcome, done, total)
    return outcomes


def _lost(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("the worker running it died every time it was tried (killed, or out of memory): see the worker logs; "
                "give each worker more memory (fewer --workers) and run the batch again to retry it")
    return f"the task was lost ({name}: {exc}); run the batch again to retry it"


class _client:
    """A Dask client on a new local cluster, or on the scheduler at ``address``; closed on exit."""

    def __init__(self, address: str | None, workers: int, processes: bool):
        self.address, self.workers, self.processes = address, workers, processes
        self.cluster = self.client = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        # Dask logs its cluster's comings and goings to stderr; a batch reports through its outcomes instead
        self.logger = logging.getLogger("distributed")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

        if self.address is not None:
            try:
                self.client = Client(self.address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"Cannot reach the Dask scheduler at {self.address} ({exc}). Start one (`dask scheduler`, then "
                    "`dask worker ADDRESS --nthreads 1` on each machine) or leave out --scheduler to use local workers."
                ) from None
            return self.client
        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=self.processes,
                                    dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.logger.setLevel(self.level)
        return False


#: The files a batch writes at the top of its folder.
_TOP_FILES = ("summary.csv", "summary.xlsx", "review.xlsx")


def check_batch_folder(out: str | Path) -> None:
    """Refuse a folder that holds other things than a batch (its leftovers are swept and its layers replaced)."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"The batch folder {out} is a file; give a folder (new, empty, or an earlier batch's).")
    ours = {REGIONS_DIR, DONE_DIR, STAGING_DIR, LOG_DIR, "extent", *LAYERS, *_TOP_FILES}
    others = sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith("."))
    if others and not (out / DONE_DIR).is_dir():
        raise InputError(
            f"The batch folder {out} already holds other files ({', '.join(others[:5])}); give a new or empty folder, "
            "or the folder of an earlier batch to resume it."
        )


def _sweep(out: Path) -> None:
    """Remove what unfinished work left: the staging folder and the temporary files of interrupted writes."""
    shutil.rmtree(out / STAGING_DIR, ignore_errors=True)
    leftovers = [p for name in _TOP_FILES for p in out.glob(f".{Path(name).stem}.*")]
    for folder in (out / REGIONS_DIR, out / DONE_DIR, *(out / layer for layer in (*LAYERS, "extent"))):
        if folder.is_dir():
            leftovers += folder.rglob(".*")
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _write_log(settings: BatchSettings, tasks, outcomes, wall_s: float, workers, address: str) -> Path:
    """The run's timings and memory per task, the one file of a batch that holds clock times."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = settings.out_dir / LOG_DIR / f"run-{stamp}-{os.getpid()}.json"
    payload: dict[str, Any] = {
        "started_utc": stamp,
        "wall_s": round(wall_s, 3),
        "workers": workers,
        "scheduler": address,
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "settings": {"thresholds_min": list(settings.thresholds_min), "preset": settings.preset,
                     "min_network_share": settings.min_network_share, "cache_dir": str(settings.cache_dir)},
        "tasks": [{"task": t.name, "fingerprint": t.fingerprint, **o.as_dict()} for t, o in zip(tasks, outcomes)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path
