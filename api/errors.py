"""HTTP errors: geoplan's domain errors mapped to 4xx, one error body everywhere, never a traceback.

Every error answer is ``{"detail": <what to fix>, "error": <kind>}`` (plus
``errors`` for request validation and ``best_achievable`` for an infeasible
target). Unexpected exceptions answer 500 with a reference to the server log,
never with the exception's text.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from geoplan.errors import ConfigError, CRSMismatchError, EmptyDataError, GeoplanError, InfeasibleError, InputError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the service raises itself, with its HTTP status."""

    status_code = 400
    kind = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Unauthorized(ApiError):
    status_code = 401
    kind = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ApiError):
    status_code = 403
    kind = "forbidden"


class NotFound(ApiError):
    status_code = 404
    kind = "not_found"


class Conflict(ApiError):
    status_code = 409
    kind = "conflict"


class PayloadTooLarge(ApiError):
    status_code = 413
    kind = "payload_too_large"


class TooManyRequests(ApiError):
    status_code = 429
    kind = "too_many_requests"
    headers = {"Retry-After": "30"}


def _body(detail: str, kind: str, **extra: Any) -> dict:
    return {"detail": detail, "error": kind, **{k: v for k, v in extra.items() if v is not None}}


def error_kind(exc: GeoplanError) -> str:
    for cls, name in ((ConfigError, "config_error"), (CRSMismatchError, "crs_mismatch"), (EmptyDataError, "empty_data"),
                      (InfeasibleError, "infeasible"), (InputError, "input_error")):
        if isinstance(exc, cls):
            return name
    return "geoplan_error"


def best_achievable(exc: BaseException) -> dict | None:
    """What an infeasible target could reach at best, if the optimiser said so."""
    found = {}
    for name in ("best_pct", "best_people", "target_people", "total", "best_achievable"):
        value = getattr(exc, name, None)
        if isinstance(value, (int, float)):
            found[name] = round(float(value), 3)
        elif isinstance(value, (str, dict, list)):
            found[name] = value
    spec = getattr(exc, "spec", None)
    if spec is not None:
        for name in ("kind", "target_group", "target_pct", "threshold_min"):
            if getattr(spec, name, None) is not None:
                found[name] = getattr(spec, name)
    return found or None


def domain_error_body(exc: GeoplanError) -> dict:
    return _body(str(exc), error_kind(exc), best_achievable=best_achievable(exc) if isinstance(exc, InfeasibleError) else None)


def _readable(errors: list[dict]) -> str:
    parts = []
    for error in errors[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "Invalid request: " + "; ".join(parts) + more + "."


def _jsonable_errors(errors: list[dict]) -> list[dict]:
    clean = []
    for error in errors[:50]:
        item = {"loc": [p if isinstance(p, (str, int)) else str(p) for p in error.get("loc", ())], "msg": str(error.get("msg", "")),
                "type": str(error.get("type", ""))}
        clean.append(item)
    return clean


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.detail, exc.kind), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(GeoplanError)
    async def geoplan_error(request: Request, exc: GeoplanError) -> JSONResponse:
        return JSONResponse(domain_error_body(exc), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse(_body(_readable(errors), "validation_error", errors=_jsonable_errors(errors)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(detail, kind), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        reference = secrets.token_hex(4)
        log.error("unexpected error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            _body(f"Internal error (reference {reference}); the server log has the details. Please report it.", "internal"),
            status_code=500,
        )
