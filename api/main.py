"""The FastAPI application: ``create_app()`` wires settings, shared state, routers and error handlers.

Run it with::

    uvicorn api.main:create_app --factory --host 127.0.0.1 --port 8000

Web workers (several uvicorn processes) serve the requests; job workers
(``geoplan-api worker`` processes) take the jobs from the store, so a heavy
solve never slows the reads. ``geoplan-api serve`` starts both. OpenAPI docs
are at ``/docs``.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from geoplan import __version__
from geoplan.region import Region

from api import errors
from api.auth import AuditWrites, Authenticate, OriginCheck, StoreSource
from api.deps import Services
from api.limits import BodySizeLimit, JsonDepthLimit
from api.routers import coverage, facilities, jobs, keys, maps, recommendations, regions, scenarios, targets, workspace
from api.services.circle_process import CircleProcess
from api.services.coverage_service import CoverageService
from api.services.facilities import FacilityService
from api.services.jobs import JobPolicy, JobRunner
from api.services.maps import MapService
from api.services.plans import Planner, RequestLimits
from api.services.recommendations import RecommendationService
from api.services.regions import RegionService
from api.services.scenario_service import ScenarioService
from api.services.targets import TargetService
from api.services.uploads import STALE_UPLOAD_SECONDS, UNPACKED_PER_UPLOAD_BYTE, UploadLimits, UploadService, sweep_stale_uploads
from api.settings import Settings, get_settings

from api.store import Store

log = logging.getLogger(__name__)

DESCRIPTION = """
Plan elderly-care facilities for Chinese cities: 15-minute walking care circles (15分钟养老服务圈),
coverage in people, gaps, site recommendations and what-if scenarios.

Coordinates in and out are WGS84 longitude/latitude unless a `coord_system` says otherwise
(`gcj02` for Amap/Tencent, `bd09` for Baidu). Long solves run as background jobs: the POST answers
202 with a job id, and `GET /jobs/{id}` (or `/recommendations/{id}`) gives the status and the result.
"""


def create_app(settings: Settings | None = None, *, preloaded: Mapping[str, Region] | None = None) -> FastAPI:
    """The service. ``settings`` override :func:`get_settings` (tests); ``preloaded`` regions skip loading."""
    current = settings if settings is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not current.auth:
            log.warning("GEOPLAN_AUTH=off: every request acts as an admin of every team; for local development only")
        store = Store(current.db_path)
        region_service = RegionService(current)
        for key, region in (preloaded or {}).items():
            region_service.put(region, key)
        runner = JobRunner(store, threads=current.job_threads, policy=job_policy(current))
        # care-circle processes load what this process loads from config itself: the preloaded regions not handed in
        own = tuple(region_service.require(key) for key in current.preload if key not in (preloaded or {}))
        services = build_services(current, store, region_service, runner, circle_regions=own)
        swept = sweep_stale_uploads(services.uploads.upload_dir, STALE_UPLOAD_SECONDS)
        if swept:
            log.info("removed %d upload folder(s) left by a stopped process", swept)
        runner.start()
        try:
            if services.coverage.drawer is not None:
                services.coverage.drawer.start()
            for key in current.preload:
                log.info("preloading %s", key)
                await run_in_threadpool(region_service.coverage, region_service.require(key))
                await run_in_threadpool(services.coverage.prepare_circles, key)
        except BaseException:
            runner.stop()
            services.coverage.close()
            raise
        app.state.services = services
        app.state.targets = TargetService(region_service, services.scenarios)
        # The prepared regions are millions of long-lived objects: move them out of the garbage
        # collector's generations, so that collections triggered by requests stay short.
        gc.collect()
        gc.freeze()
        # a web worker answers quick requests beside the odd long computation (a new care circle, a cold
        # scenario): hand the interpreter over more often, so the quick ones wait less behind it
        sys.setswitchinterval(0.001)
        try:
            yield
        finally:
            runner.stop()
            services.coverage.close()
            store.close()

    app = FastAPI(
        title="geoplan planning service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    errors.install(app)
    store = StoreSource(app)
    # outermost last: CORS (when allowed) > OPTIONS > Origin check > keys (401) > audit of writes > body size > JSON depth > routes
    app.add_middleware(JsonDepthLimit)
    app.add_middleware(BodySizeLimit, body_bytes=current.max_body_bytes, upload_bytes=current.max_upload_bytes)
    app.add_middleware(AuditWrites, store=store)
    app.add_middleware(Authenticate, enabled=current.auth, store=store)
    app.add_middleware(OriginCheck, allowed=current.cors_origins)
    app.add_middleware(AnswerOptions)
    if current.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(current.cors_origins), allow_methods=list(AnswerOptions.METHODS),
            allow_headers=["Authorization", "Content-Type", "If-Match"], expose_headers=["ETag"], max_age=600,
        )
    for module in (regions, coverage, facilities, scenarios, recommendations, jobs, maps, targets, keys, workspace):
        app.include_router(module.router)

    @app.get("/health", tags=["meta"], summary="Liveness, which regions are loaded, and the job workers seen")
    async def health() -> dict[str, object]:
        services: Services = app.state.services
        workers = await run_in_threadpool(services.store.live_workers, within_s=WORKER_SEEN_S)
        return {
            "status": "ok",
            "regions_loaded": [k for k in services.regions.names() if services.regions.is_loaded(k)],
            "auth": "on" if current.auth else "off (local development only)",
            "job_workers": len(workers),
            # of the web worker answering: the regions its care-circle process has ready (None: it has none)
            "circle_process_regions": None if services.coverage.drawer is None else services.coverage.drawer.prepared(),
        }

    return app


WORKER_SEEN_S = 15.0


def _drawer(settings: Settings, regions: tuple[str, ...]) -> CircleProcess | None:
    """Care-circle processes for ``regions``, when the settings have them and point circles are kept at all."""
    if not (settings.circle_processes and settings.circle_cache_size and regions):
        return None
    return CircleProcess(settings, regions, settings.circle_processes)


def job_policy(settings: Settings) -> JobPolicy:
    return JobPolicy(max_active_per_key=settings.max_jobs_per_key, budget_s=settings.max_job_seconds,
                     lease_s=settings.job_lease_seconds)


class AnswerOptions:
    """ASGI middleware: ``OPTIONS`` answers 204 with the path's methods in ``Allow`` (404 for no path).

    No CORS headers: a preflight from another origin gets no
    ``Access-Control-Allow-Origin``, so browsers still refuse cross-origin writes.
    """

    METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        routes = scope["app"].router.routes
        probe = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""), "headers": []}
        allowed = [m for m in self.METHODS if any(route.matches({**probe, "method": m})[0] is Match.FULL for route in routes)]
        if allowed:
            response = Response(status_code=204, headers={"Allow": ", ".join([*allowed, "OPTIONS"])})
        else:
            response = JSONResponse({"detail": f"No path {scope['path']!r}; the API is listed at /docs.", "error": "not_found"}, status_code=404)
        await response(scope, receive, send)


def build_services(settings: Settings, store: Store, regions: RegionService, jobs: JobRunner, *,
                   circle_regions: tuple[str, ...] = ()) -> Services:
    """One service per resource over the shared store, regions and job runner, their job handlers registered.

    ``circle_regions``: the regions whose new care circles of points child processes draw (see CircleProcess).
    """
    planner = Planner(limits=RequestLimits(max_reach_pairs=settings.max_reach_pairs, max_job_seconds=settings.max_job_seconds))
    scenario_service = ScenarioService(store, regions, jobs, planner, runs_cache_size=settings.coverage_cache_size)
    recommendation_service = RecommendationService(regions, jobs, planner, scenario_service)
    scenario_service.register_jobs()
    recommendation_service.register_jobs()
    return Services(
        settings=settings, store=store, regions=regions, jobs=jobs,
        scenarios=scenario_service,
        uploads=UploadService(scenario_service, regions, max_upload_bytes=settings.max_upload_bytes,
                              limits=UploadLimits(rows=settings.max_upload_rows, columns=settings.max_upload_columns,
                                                  json_depth=settings.max_json_depth, gpkg_seconds=settings.max_gpkg_seconds,
                                                  unpacked_bytes=UNPACKED_PER_UPLOAD_BYTE * settings.max_upload_bytes),
                              upload_dir=settings.upload_dir),
        recommendations=recommendation_service,
        maps=MapService(regions, scenario_service),
        facilities=FacilityService(regions),
        coverage=CoverageService(regions, scenario_service, point_circle_cache_size=settings.circle_cache_size,
                                 drawer=_drawer(settings, circle_regions)),
    )
