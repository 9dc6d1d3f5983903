"""Limits on what a request may ask the service to parse: body size and JSON nesting depth, checked before any parser runs.

:class:`BodySizeLimit` refuses a body larger than ``GEOPLAN_MAX_BODY_BYTES``
(a multipart upload: ``GEOPLAN_MAX_UPLOAD_BYTES`` and a little for its form
fields) with a 413 as it arrives: from its ``Content-Length`` before a byte is
read, or once the chunks streamed pass the limit, so no request holds more
than the limit in memory (or on disk, for an upload).

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
DEFAULT_MAX_BODY_BYTES = 2_000_000
#: What a multipart body may hold beyond its file: part headers, boundaries and the form fields beside it.
MULTIPART_ALLOWANCE = 64_000
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


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes its limit; :class:`BodySizeLimit` answers 413 instead."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The value of the request header ``name`` (lower-case), ``None`` without one."""
    return next((value for key, value in scope.get("headers") or [] if key.lower() == name), None)


def _content_length(scope: Scope) -> int | None:
    """The declared ``Content-Length`` (``None``: none or unreadable, the body is counted as it streams)."""
    raw = _header(scope, b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _is_multipart(scope: Scope) -> bool:
    """Whether the body is a form with files (an upload)."""
    return (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower() == b"multipart/form-data"


class BodySizeLimit:
    """ASGI middleware: a request body over its limit answers 413 naming the setting, before it is read in full.

    A multipart body (a file upload) may hold ``upload_bytes`` and
    :data:`MULTIPART_ALLOWANCE` more; any other body ``body_bytes``. A
    ``Content-Length`` over the limit is refused unread; otherwise the chunks
    are counted as the application reads them, and the first one past the
    limit stops the reading (the application's answer is replaced by the 413).
    """

    def __init__(self, app: ASGIApp, *, body_bytes: int = DEFAULT_MAX_BODY_BYTES, upload_bytes: int = 5_000_000):
        self.app = app
        self.body_bytes = body_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, self._message(scope, f"{declared:,} bytes"))
            return
        received, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, over
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge()
            return event

        async def guarded(event: Message) -> None:
            nonlocal started
            if over and not started:  # the application's answer to a body cut short: the 413 replaces it
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, receive, send, self._message(scope, f"more than {limit:,} bytes"))

    def _limit(self, scope: Scope) -> int:
        """The most bytes this request's body may hold."""
        return self.upload_bytes + MULTIPART_ALLOWANCE if _is_multipart(scope) else self.body_bytes

    def _message(self, scope: Scope, size: str) -> str:
        """What is wrong with a body of ``size``, the setting that limits it, and what to do."""
        if _is_multipart(scope):
            return (f"The upload is {size}; the limit is {self.upload_bytes:,} bytes for the file (GEOPLAN_MAX_UPLOAD_BYTES) "
                    f"and {MULTIPART_ALLOWANCE:,} for the form around it. Upload a smaller file (split a facility list), "
                    "or raise GEOPLAN_MAX_UPLOAD_BYTES.")
        return (f"The request body is {size}; the limit is {self.body_bytes:,} bytes (GEOPLAN_MAX_BODY_BYTES). "
                "Send fewer sites per request (or upload a list as a file), or raise GEOPLAN_MAX_BODY_BYTES.")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        """The 413; the connection is closed after it, as the rest of the body is never read."""
        response = JSONResponse({"detail": detail, "error": PayloadTooLarge.kind}, status_code=PayloadTooLarge.status_code,
                                headers={"Connection": "close"})
        await response(scope, receive, send)
