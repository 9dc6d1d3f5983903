"""Limits on what a request may ask the service to parse: JSON nesting depth, checked before any parser runs.

Python's JSON decoder (and GDAL's) recurse once per bracket, so ``[`` x 2000
ends in a ``RecursionError``. :func:`json_depth` counts the nesting with a
cheap scan of the brackets outside string literals; :class:`JsonDepthLimit`
refuses JSON bodies deeper than ``GEOPLAN_MAX_JSON_DEPTH`` with a 413 before
FastAPI parses them, and uploads check their GeoJSON the same way.
"""

from __future__ import annotations

import re

import numpy as np
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLarge

DEFAULT_MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BODY_METHODS = ("POST", "PUT", "PATCH")


def json_depth(content: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, brackets inside strings not counted (no parsing)."""
    brackets = _STRING.sub(b"", content).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def too_deep_message(what: str, depth: int, limit: int) -> str:
    return (f"{what} nests {depth:,} levels of brackets; the limit is {limit} (GEOPLAN_MAX_JSON_DEPTH). "
            "Flatten it (a FeatureCollection of Points needs 5), or raise GEOPLAN_MAX_JSON_DEPTH.")


def check_json_depth(content: bytes, *, limit: int, what: str) -> None:
    """A :class:`PayloadTooLarge` if ``content`` nests deeper than ``limit``."""
    depth = json_depth(content)
    if depth > limit:
        raise PayloadTooLarge(too_deep_message(what, depth, limit))


def _is_json(scope: Scope) -> bool:
    """FastAPI parses a body as JSON when it says so, or says nothing."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
    return not content_type or content_type == b"application/json" or content_type.endswith(b"+json")


class JsonDepthLimit:
    """ASGI middleware: a JSON body nested deeper than the service's ``max_json_depth`` answers 413 unparsed."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks, message = [], {"more_body": True}
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
        body = b"".join(chunks)
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        limit = services.settings.max_json_depth if services is not None else DEFAULT_MAX_JSON_DEPTH
        depth = json_depth(body)
        if depth > limit:
            response = JSONResponse({"detail": too_deep_message("The request body", depth, limit), "error": PayloadTooLarge.kind},
                                    status_code=PayloadTooLarge.status_code)
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
