"""Who is asking, and may they: API keys, roles and teams, checked on every request.

A key is sent as ``Authorization: Bearer KEY``; the store keeps only its hash.
Roles rank ``viewer`` < ``planner`` < ``admin``: viewers read, planners also
create, edit, run and delete their team's scenarios and start jobs, admins also
manage keys and read the audit log. Another team's scenario or job answers 404,
as if it did not exist.

:class:`Authenticate` (middleware) answers 401 before anything else runs, for
every path but the open ones (``/health``, ``/docs``, the OpenAPI document);
:func:`authorize` (a router dependency) answers 403 when the route needs a
higher role: ``GET`` needs a viewer, other methods a planner, unless the route
says otherwise in ``openapi_extra={"x-geoplan-role": ...}``. With
``GEOPLAN_AUTH=off`` every request acts as :data:`LOCAL` (an admin of every
team), for local development only.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, Forbidden, Unauthorized
from api.services.jobs import Submitter
from api.store import ROLES, Store

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
OPEN_PREFIXES = ("/app",)  # the web workspace's page and assets: it signs in with a key itself
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ROLE_KEY = "x-geoplan-role"

bearer = HTTPBearer(
    auto_error=False, scheme_name="APIKey", bearerFormat="gpk_...",
    description="An API key: `geoplan-api keys create --role viewer|planner|admin --team NAME` prints one.",
)


@dataclasses.dataclass(frozen=True)
class Principal:
    """The key behind a request: its id, role and team (``team`` None: every team, auth off)."""

    key_id: str | None
    role: str
    team: str | None
    name: str = ""

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, team: str | None) -> bool:
        """Whether a resource of ``team`` is visible to this key."""
        return self.team is None or team == self.team

    @property
    def all_teams(self) -> bool:
        return self.team is None

    @property
    def submitter(self) -> Submitter:
        return Submitter(key_id=self.key_id, team=self.team)


LOCAL = Principal(key_id=None, role="admin", team=None, name="auth off (GEOPLAN_AUTH=off)")


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or any(path == p or path.startswith(p + "/") for p in OPEN_PREFIXES)


class Authenticate:
    """ASGI middleware: the request's :class:`Principal` in ``scope["state"]``, or 401 with the fix."""

    def __init__(self, app: ASGIApp, *, enabled: bool, store: "StoreSource"):
        self.app = app
        self.enabled = enabled
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.enabled:
            state["principal"] = LOCAL
        elif not _is_open(scope["path"]):
            try:
                state["principal"] = await self._principal(scope)
            except ApiError as exc:
                from starlette.responses import JSONResponse

                response = JSONResponse({"detail": exc.detail, "error": exc.kind}, status_code=exc.status_code, headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").strip()
        scheme, _, secret = header.partition(" ")
        if not header:
            raise Unauthorized(
                "This service needs an API key: send 'Authorization: Bearer KEY'. An admin creates keys with "
                "'geoplan-api keys create --role viewer|planner|admin --team NAME'."
            )
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("The Authorization header must be 'Bearer KEY' (an API key from 'geoplan-api keys create').")
        key = await run_in_threadpool(self.store().key_for, secret.strip())
        if key is None:
            raise Unauthorized("Unknown or revoked API key; ask an admin for a new one ('geoplan-api keys create').")
        return Principal(key_id=key.id, role=key.role, team=key.team, name=key.name)


class StoreSource:
    """The store of the running app, found once the lifespan has opened it."""

    def __init__(self, app):
        self.app = app

    def __call__(self) -> Store:
        return self.app.state.services.store


async def authorize(request: Request) -> Principal:
    """The request's principal, or 403 when its role is below what the route needs."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:  # an open path reached a protected router: never let it through
        raise Unauthorized("This path needs an API key: send 'Authorization: Bearer KEY'.")
    needed = required_role(request)
    if not principal.can(needed):
        raise Forbidden(
            f"A {principal.role} key may not {request.method} {request.url.path}: that needs a {needed} key "
            f"({'viewers read; planners also edit, run and delete their team’s scenarios; admins also manage keys'})."
        )
    return principal


def required_role(request: Request) -> str:
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(ROLE_KEY)
    if declared is not None:
        return declared
    return "planner" if request.method in UNSAFE_METHODS else "viewer"


def role(name: str) -> dict:
    """``openapi_extra`` for a route that needs ``name`` whatever its method (e.g. a read-only POST: viewer)."""
    if name not in ROLES:
        raise ValueError(name)
    return {ROLE_KEY: name}


PrincipalDep = Annotated[Principal, Depends(authorize)]
AUTHORIZED = [Depends(authorize), Depends(bearer)]


class OriginCheck:
    """ASGI middleware: a write from another web origin than the service's own (or an allowed one) answers 403.

    Browsers send ``Origin`` on cross-site writes; a page elsewhere cannot then
    post a facility list through a planner's browser. Requests without
    ``Origin`` (curl, scripts, same-origin GETs) pass.
    """

    def __init__(self, app: ASGIApp, *, allowed: tuple[str, ...] = ()):
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1").strip().rstrip("/").lower()
            if origin and origin not in self.allowed and not _same_origin(origin, headers.get(b"host", b"").decode("latin-1")):
                from starlette.responses import JSONResponse

                response = JSONResponse({
                    "detail": f"Writes from the web origin {origin!r} are refused: it is not this service's own origin. "
                              "An operator may allow it with GEOPLAN_CORS_ORIGINS.",
                    "error": "forbidden",
                }, status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return bool(host) and parts.netloc == host.lower()


class AuditWrites:
    """ASGI middleware: every write by a key (its method, path and answer) goes to the store's audit log."""

    def __init__(self, app: ASGIApp, *, store: StoreSource):
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def record_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            principal: Principal | None = scope.get("state", {}).get("principal")
            if principal is not None:
                try:
                    await run_in_threadpool(
                        self.store().audit, key_id=principal.key_id, team=principal.team, role=principal.role,
                        method=scope["method"], path=scope["path"], status=status["code"],
                    )
                except Exception:
                    log.exception("audit: could not record %s %s by key %s", scope["method"], scope["path"], principal.key_id)
                log.info("write %s %s -> %d by key %s (%s, team %s)", scope["method"], scope["path"], status["code"],
                         principal.key_id, principal.role, principal.team)
