"""One task of a batch: a region under one scenario, prepared, analysed, reviewed and written.

:func:`run_task` runs on a Dask worker. It clips the region to its street
network's extent (:func:`geoplan.batch.regions.clip_to_network`), loads it
(the prepared network comes from the shared cache folder), runs the scenario,
reviews the result against the plan targets and writes its layers. Files are
built in a staging folder and moved into place; the task's marker
(``_done/<region>/<scenario>.json``) is written last, atomically, so a region
counts as done only when all its files are complete. Every file is the same,
byte for byte, when the task runs again: rows in a fixed order, no clock
times inside (timings travel in the :class:`TaskOutcome`, for the run log).
A failure is returned with its reason, never raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import socket
import threading
import time
import traceback
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoplan import _files
from geoplan.batch.regions import BatchRegion, NoNetworkCoverage, clip_to_network, extent_layer
from geoplan.errors import GeoplanError, InputError

#: Layers written per region and scenario, as hive partitions ``<layer>/region=<key>/scenario=<slug>/``.
LAYERS = ("coverage", "gaps", "sites", "summary", "reviews")
#: Folders of the batch folder that are not layers: region configs, markers, unfinished work, run logs.
REGIONS_DIR, DONE_DIR, STAGING_DIR, LOG_DIR = "regions", "_done", "_staging", "_log"
#: The version of the files a task writes; a marker of another version is not taken as done.
FORMAT = 1

_SCENARIO_MODELS = ("mclp", "pmedian")


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """A scenario of the grid: ``existing`` (the region's facilities as they are) or ``recommend p=N``.

    ``existing`` analyses the region's facility list; a region without one is
    analysed, as ``geoplan coverage`` does, with a station at every candidate
    site (``site_source`` says which). ``recommend`` adds ``p`` new stations
    placed by the optimiser (``model`` mclp or pmedian) for a walk of
    ``threshold_min`` (default the batch's largest threshold).
    """

    kind: str = "existing"
    p: int | None = None
    model: str = "mclp"
    threshold_min: float | None = None

    @classmethod
    def parse(cls, text: str) -> "ScenarioSpec":
        """``"existing"``, ``"recommend p=5"``, ``"recommend p=5 model=pmedian threshold=10"``."""
        words = str(text).split()
        usage = 'Give a scenario as "existing" or "recommend p=N" (optionally model=mclp|pmedian threshold=MIN).'
        if not words or words[0] not in ("existing", "recommend"):
            raise InputError(f"Unknown scenario {text!r}. {usage}")
        if words[0] == "existing":
            if len(words) > 1:
                raise InputError(f"The scenario 'existing' takes no options, got {text!r}. {usage}")
            return cls()
        options = {}
        for word in words[1:]:
            key, _, value = word.partition("=")
            if key not in ("p", "model", "threshold") or not value:
                raise InputError(f"Unknown option {word!r} in the scenario {text!r}. {usage}")
            options[key] = value
        if "p" not in options or not options["p"].isdigit() or int(options["p"]) < 1:
            raise InputError(f"The scenario {text!r} needs p=N, the number of new stations (a whole number >= 1). {usage}")
        model = options.get("model", "mclp")
        if model not in _SCENARIO_MODELS:
            raise InputError(f"The scenario {text!r} asks for model={model}; a batch recommends with {' or '.join(_SCENARIO_MODELS)}.")
        threshold = None
        if "threshold" in options:
            try:
                threshold = float(options["threshold"])
            except ValueError:
                threshold = -1.0
            if not threshold > 0:
                raise InputError(f"threshold in the scenario {text!r} is the walk in minutes, a positive number.")
        return cls(kind="recommend", p=int(options["p"]), model=model, threshold_min=threshold)

    @property
    def slug(self) -> str:
        """The scenario's name in folders and tables: ``existing``, ``recommend_p5``, ``recommend_p5_pmedian_t10``."""
        if self.kind == "existing":
            return "existing"
        parts = [f"recommend_p{self.p}"]
        if self.model != "mclp":
            parts.append(self.model)
        if self.threshold_min is not None:
            parts.append(f"t{self.threshold_min:g}")
        return "_".join(parts)

    @property
    def text(self) -> str:
        if self.kind == "existing":
            return "existing"
        extra = (f" model={self.model}" if self.model != "mclp" else "") + (f" threshold={self.threshold_min:g}" if self.threshold_min else "")
        return f"recommend p={self.p}{extra}"


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """What every task of a batch shares."""

    out_dir: Path
    cache_dir: Path
    thresholds_min: tuple[float, ...] = (5, 10, 15)
    preset: str | None = "shuimogou"
    min_network_share: float = 0.01
    time_limit_s: float = 60.0


@dataclasses.dataclass(frozen=True)
class BatchTask:
    """One region under one scenario; ``fingerprint`` identifies its inputs and settings."""

    region: BatchRegion
    scenario: ScenarioSpec
    settings: BatchSettings
    fingerprint: str

    @property
    def name(self) -> str:
        return f"{self.region.key}/{self.scenario.slug}"

    @property
    def marker(self) -> Path:
        return self.settings.out_dir / DONE_DIR / self.region.key / f"{self.scenario.slug}.json"

    def partition(self, layer: str) -> Path:
        """The folder of this task's part of ``layer``."""
        return Path(layer) / f"region={self.region.key}" / f"scenario={self.scenario.slug}"


@dataclasses.dataclass(frozen=True)
class TaskOutcome:
    """What became of a task: ``ok``, ``skipped`` (no street network there), ``failed`` or ``resumed`` (done before).

    ``seconds``, ``phases_s`` and the memory figures are measured on the
    worker; they go to the run log, never into the data files.
    ``worker_tasks_before`` tells a worker's first task (0), which also pays
    for its imports and first reads.
    """

    region: str
    scenario: str
    status: str
    reason: str | None = None
    seconds: float | None = None
    phases_s: dict[str, float] = dataclasses.field(default_factory=dict)
    peak_rss_mb: float | None = None
    rss_start_mb: float | None = None
    worker: str | None = None
    worker_tasks_before: int | None = None
    size: dict[str, float] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    traceback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Tasks this process has run (the run log tells a worker's first task by it).
_tasks_run = 0


def run_task(task: BatchTask) -> TaskOutcome:
    """Run one task on this worker and write its files; a failure comes back as a ``failed`` outcome."""
    global _tasks_run
    before, _tasks_run = _tasks_run, _tasks_run + 1
    started = time.perf_counter()
    meter = _RssMeter()
    staging = task.settings.out_dir / STAGING_DIR / f"{task.region.key}__{task.scenario.slug}__{os.getpid()}-{uuid.uuid4().hex[:8]}"
    phases: dict[str, float] = {}
    record: dict[str, Any] = {}
    try:
        staging.mkdir(parents=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = _compute(task, staging, phases)
        messages = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
        messages = [relative_text(m, task.settings.out_dir) for m in messages]
        record["warnings"] = messages
        clock = time.perf_counter()
        _publish(task, staging, record)
        phases["publish_s"] = time.perf_counter() - clock
        status, reason, trace = record["status"], record.get("reason"), None
    except Exception as exc:  # reported per region, never fatal to the batch
        _remove_outputs(task)
        status, trace = "failed", traceback.format_exc()
        reason = str(exc) if isinstance(exc, GeoplanError) else f"{type(exc).__name__}: {exc} (unexpected: see the traceback in the run log)"
        reason = relative_text(reason, task.settings.out_dir)
        messages = []
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        peak, start = meter.stop()
    return TaskOutcome(
        region=task.region.key, scenario=task.scenario.slug, status=status, reason=reason,
        seconds=time.perf_counter() - started, phases_s=phases, peak_rss_mb=peak, rss_start_mb=start,
        worker=f"{socket.gethostname()}:{os.getpid()}", worker_tasks_before=before, size=record.get("size", {}),
        warnings=tuple(messages), traceback=trace,
    )


# --- the work ------------------------------------------------------------------------------------


def _compute(task: BatchTask, staging: Path, phases: dict[str, float]) -> dict[str, Any]:
    """Clip, load, analyse, review and write into ``staging``; the marker record (without its file list)."""
    from geoplan.region import load_region

    settings, region, scenario = task.settings, task.region, task.scenario
    config = region.config
    config = dataclasses.replace(config, analysis=dataclasses.replace(config.analysis, thresholds_min=tuple(settings.thresholds_min)))
    info = config.region
    record: dict[str, Any] = {
        "format": FORMAT, "region": region.key, "scenario": scenario.slug, "scenario_text": scenario.text,
        "fingerprint": task.fingerprint, "name": info.name, "name_zh": info.name_zh, "code": region.code, "origin": region.origin,
    }
    clock = time.perf_counter()
    try:
        extent = clip_to_network(dataclasses.replace(region, config=config), min_share=settings.min_network_share,
                                 cache_dir=settings.cache_dir)
    except NoNetworkCoverage as exc:
        _write_parquet(extent_layer(config, exc.extent, cache_dir=settings.cache_dir), staging / _extent_path(task))
        phases["clip_s"] = time.perf_counter() - clock
        return {**record, "status": "skipped", "reason": relative_text(str(exc), settings.out_dir), "extent": exc.extent.as_dict()}
    _write_parquet(extent_layer(config, extent, cache_dir=settings.cache_dir), staging / _extent_path(task))
    record["extent"] = extent.as_dict()
    phases["clip_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    loaded = load_region(config, cache_dir=settings.cache_dir)
    phases["load_s"] = time.perf_counter() - clock
    record["size"] = {
        "demand_cells": int(len(loaded.demand)), "network_edges": int(len(loaded.network.edges)),
        "candidates": int(len(loaded.candidates)),
        **{g: round(float(loaded.demand[g].sum()), 3) for g in ("pop_total", "pop_60", "pop_80") if g in loaded.demand},
    }

    clock = time.perf_counter()
    coverage, sites, plan = _run_scenario(loaded, scenario, settings)
    phases["scenario_s"] = time.perf_counter() - clock
    record.update(site_source=coverage.site_source, sites=int(len(sites)), plan=plan)

    clock = time.perf_counter()
    record["review"] = _review(task, loaded, sites, staging) if settings.preset else None
    phases["review_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    _write_layers(task, loaded, coverage, staging)
    phases["write_s"] = time.perf_counter() - clock
    return {**record, "status": "ok", "reason": None}


def _run_scenario(region, scenario: ScenarioSpec, settings: BatchSettings):
    """The coverage report of the scenario, the sites it counts (closed ones left out), and the plan's record."""
    from geoplan.analysis import analyse_coverage

    if scenario.kind == "existing":
        report = analyse_coverage(region, with_circles=False)
        return report, report.sites, None
    from geoplan.optimize import KindSpec, ModelOptions, PlanRequest, SolverOptions
    from geoplan.scenario import Scenario, run

    threshold = scenario.threshold_min or max(settings.thresholds_min)
    request = PlanRequest(
        kinds=(KindSpec("station", p=scenario.p, threshold_min=threshold),),
        options=ModelOptions(scenario.model),
        solver=SolverOptions(time_limit_s=settings.time_limit_s, threads=1),  # one thread: the same plan on every worker
    )
    result = run(region, Scenario(name=scenario.text, recommend=request), with_circles=False)
    report = result.report
    sites = report.sites[report.sites["status"].astype(str) != "closed"]
    plan = result.plan
    stats = plan.solver
    record = {
        "model": scenario.model, "p": scenario.p, "threshold_min": threshold, "status": stats.status,
        "optimal": bool(plan.optimal), "objective": None if stats.objective is None else round(float(stats.objective), 3),
        "gap": None if stats.gap is None else round(float(stats.gap), 6), "new_sites": sorted(map(str, result.added)),
    }
    return report, sites, record


def _review(task: BatchTask, region, sites: gpd.GeoDataFrame, staging: Path) -> dict[str, Any]:
    """The plan-targets review of the scenario's sites, written as a workbook, a table and JSON; or why there is none."""
    from geoplan.targets import targets

    preset = task.settings.preset
    try:
        review = targets(region, preset, facilities=sites)
    except InputError as exc:  # e.g. no community units to build planning units from
        return {"preset": preset, "reviewed": False, "note": relative_text(str(exc), task.settings.out_dir)}
    folder = staging / task.partition("reviews")
    folder.mkdir(parents=True, exist_ok=True)
    deterministic_xlsx(review.to_xlsx(folder / "review.xlsx"))
    _write_parquet(_plain_table(review.summary.reset_index()), folder / "targets.parquet")
    (folder / "review.json").write_text(json.dumps(review.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    failing = [str(i) for i in review.failing().index]
    return {"preset": preset, "targets": review.targets.name, "reviewed": True, "passed": review.passed, "failing": failing,
            "units": review.units_source, "approximate_units": bool(review.approximate)}


def _write_layers(task: BatchTask, region, report, staging: Path) -> None:
    from geoplan.coverage import covered, off_network

    demand = region.demand
    groups = region.groups
    reach = report.reach
    cells = pd.DataFrame({g: demand[g].to_numpy(dtype=float) for g in groups}, index=demand.index)
    nearest = report.nearest_time_s.reindex(demand.index).to_numpy() / 60
    cells["nearest_min"] = np.where(np.isfinite(nearest), nearest, np.nan)
    for threshold in task.settings.thresholds_min:
        cells[f"within_{threshold:g}min"] = covered(reach, demand, threshold)
    cells["on_foot"] = ~off_network(reach, demand)
    for column in ("component", "unit_id"):
        if column in demand:
            cells[column] = demand[column].to_numpy()
    geometry = demand["cell"] if "cell" in demand else demand.geometry
    coverage = gpd.GeoDataFrame(cells, geometry=gpd.GeoSeries(geometry.to_numpy(), index=demand.index, crs=region.crs))
    coverage.index.name = "demand_id"
    _write_parquet(coverage.sort_index().reset_index().to_crs(4326), staging / task.partition("coverage") / "part.parquet")

    gaps = report.gaps.sort_index()
    gaps.index.name = "demand_id"
    gaps = gaps.assign(nearest_time_min=gaps["nearest_time_min"].replace([np.inf, -np.inf], np.nan))
    _write_parquet(gaps.reset_index().to_crs(4326), staging / task.partition("gaps") / "part.parquet")

    sites = report.sites.copy()
    sites.index = sites.index.astype(str)
    sites.index.name = "site_id"
    _write_parquet(_plain_table(sites.sort_index().reset_index()).to_crs(4326), staging / task.partition("sites") / "part.parquet")

    summary = report.summary.reset_index()
    _write_parquet(_plain_table(summary), staging / task.partition("summary") / "part.parquet")


# --- files ---------------------------------------------------------------------------------------


def _extent_path(task: BatchTask) -> Path:
    return Path("extent") / f"region={task.region.key}" / "part.parquet"


def _publish(task: BatchTask, staging: Path, record: dict[str, Any]) -> None:
    """Move the staged files into place, then write the marker listing every file with its hash (the last step)."""
    out = task.settings.out_dir
    task.marker.unlink(missing_ok=True)
    staged = sorted(p for p in staging.rglob("*") if p.is_file())
    for layer in LAYERS:  # a rerun leaves nothing of an earlier result beside the new one
        shutil.rmtree(out / task.partition(layer), ignore_errors=True)
    files = {}
    for path in staged:
        relative = path.relative_to(staging)
        files[relative.as_posix()] = _file_record(path)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    config = task.region.config.source  # written before the batch started; listed, so a changed config is seen
    if config.exists():
        files[config.relative_to(out).as_posix()] = _file_record(config)
    record = {**record, "files": dict(sorted(files.items()))}
    with _files.atomic_file(task.marker) as tmp:
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _remove_outputs(task: BatchTask) -> None:
    """A failed task leaves no layer (or marker) of an earlier run that the summary would not account for."""
    task.marker.unlink(missing_ok=True)
    for layer in LAYERS:
        shutil.rmtree(task.settings.out_dir / task.partition(layer), ignore_errors=True)


def relative_text(text: str, out_dir: Path) -> str:
    """A message with the batch folder's own paths made relative to it, so the folder's files do not depend on where it lies."""
    return text.replace(f"{out_dir}{os.sep}", "")


def _file_record(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _files.content_hash(path)}


def marker_is_current(task: BatchTask) -> bool:
    """Whether the task's marker says it is done with these inputs and its files are all there, at their sizes."""
    try:
        record = json.loads(task.marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("format") != FORMAT or record.get("fingerprint") != task.fingerprint:
        return False
    out = task.settings.out_dir
    for name, meta in record.get("files", {}).items():
        path = out / name
        if not path.is_file() or path.stat().st_size != meta.get("bytes"):
            return False
    return True


def read_marker(task: BatchTask) -> dict[str, Any] | None:
    try:
        return json.loads(task.marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.copy()
    frame.attrs = {}
    frame.to_parquet(path, index=False)


def _plain_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns a parquet file can hold: text as text (None kept), pass/fail as nullable booleans."""
    frame = frame.copy()
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    for column in frame.columns:
        if column == geometry or frame[column].dtype != object:
            continue
        values = frame[column].tolist()
        present = [v for v in values if not _missing(v)]
        if present and all(isinstance(v, (bool, np.bool_)) for v in present):
            frame[column] = pd.array([None if _missing(v) else bool(v) for v in values], dtype="boolean")
        elif present and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in present):
            frame[column] = pd.to_numeric(pd.Series([np.nan if _missing(v) else v for v in values], index=frame.index))
        else:
            frame[column] = pd.Series([None if _missing(v) else str(v) for v in values], index=frame.index, dtype=object)
    return frame


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


#: The time every entry of a batch workbook carries, so a rerun writes the same bytes.
_XLSX_TIME = (1980, 1, 1, 0, 0, 0)
_CORE_TIMES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def deterministic_xlsx(path: Path) -> Path:
    """Rewrite an Excel workbook without the clock times openpyxl puts in it (zip entry times, created/modified)."""
    path = Path(path)
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    with _files.atomic_file(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for info, data in entries:
                if info.filename == "docProps/core.xml":
                    data = _CORE_TIMES.sub(rb"\g<1>2020-01-01T00:00:00Z\g<3>", data)
                entry = zipfile.ZipInfo(info.filename, date_time=_XLSX_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = info.external_attr
                target.writestr(entry, data)
    return path


class _RssMeter:
    """The worker process's resident memory while a task runs: at the start and its peak (sampled every 20 ms)."""

    def __init__(self, every_s: float = 0.02):
        import psutil

        self._process = psutil.Process()
        self.start_mb = self._process.memory_info().rss / 2**20
        self.peak_mb = self.start_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every_s,), daemon=True)
        self._thread.start()

    def _sample(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
        return round(self.peak_mb, 1), round(self.start_mb, 1)


def fingerprint(region: BatchRegion, scenario: ScenarioSpec, settings: BatchSettings) -> str:
    """What a task's result depends on: geoplan's version, the config, the scenario, the settings and each input file's size and time."""
    import geoplan

    config = region.config
    inputs = {}
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                path = getattr(value, field.name)
                if isinstance(path, Path) and path.exists():
                    stat = path.stat()
                    inputs[f"{section.name}.{field.name}"] = [str(path), stat.st_size, stat.st_mtime_ns]
    payload = {
        "geoplan": geoplan.__version__, "format": FORMAT, "region": repr(dataclasses.replace(config, source=Path(config.source.name))),
        "origin": region.origin, "scenario": dataclasses.asdict(scenario), "inputs": inputs,
        "settings": {"thresholds_min": list(settings.thresholds_min), "preset": settings.preset,
                     "min_network_share": settings.min_network_share, "time_limit_s": settings.time_limit_s},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
