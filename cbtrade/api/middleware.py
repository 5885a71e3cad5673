"""ASGI middleware of the app: a request id on every response, and HEAD on every GET route.

Both are plain ASGI (no ``BaseHTTPMiddleware``): they cost a wrapper call per message, not a
task and a queue per request, and they see every response, errors included, under uvicorn
and under Azure Functions' ``AsgiMiddleware`` alike.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""An id a caller (or a proxy in front) sent that is safe to echo and to log: a UUID, a
W3C trace id, an Azure Front Door reference. Anything else is replaced by a fresh id."""


def request_id_of(request: Request) -> str | None:
    """The id :class:`RequestIdMiddleware` gave the request (None without the middleware)."""
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


class RequestIdMiddleware:
    """Gives every HTTP request an id, the caller's ``x-request-id`` if it sent a sane one,
    else a new UUID, and sends it back in ``x-request-id``. Handlers read it with
    :func:`request_id_of` and log it with the details they keep out of the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or str(uuid.uuid4())
        # In the scope's state (shared by reference with the outer error middleware), so that
        # the handler of an unexpected error, which runs outside this middleware, sees it.
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _SANE_REQUEST_ID.match(text) else None
    return None


class HeadAsGetMiddleware:
    """Answers ``HEAD`` on every GET route (uptime probes use HEAD; FastAPI's routes take
    only the methods they declare): the request is served as a GET and the body dropped,
    the headers (``Content-Length`` included) kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server keeps its own scope, and with it the knowledge that this is a
        # HEAD (uvicorn then sends no body whatever the app sends).
        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
