"""Error responses: every error is ``{"error": {"code", "message"}}``, never a traceback.

A server-side error (5xx) answers its class's generic ``public_message``: its own message
may name internals (a storage host and port, an object key, an exchange URL), so it goes to
the log under the request's id, which the body carries as ``error.request_id`` (every
response carries it in ``x-request-id``). A 4xx's message says all there is to say. A 429 or
503 says when to retry in ``Retry-After`` (seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cbtrade.api.middleware import request_id_of
from cbtrade.auth.interfaces import bearer_challenge
from cbtrade.errors import AuthenticationError, CbTradeError
from cbtrade.telemetry import log_event

logger = logging.getLogger(__name__)

RETRY_AFTER_STATUSES = frozenset({429, 503})
DEFAULT_RETRY_AFTER_SECONDS = 5
"""``Retry-After`` of a 429 or 503 whose error names no better wait."""


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    request_id: str | None = None,
    retry_after_seconds: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON error response in the service's format."""
    error = {"code": code, "message": message}
    if request_id is not None:
        error["request_id"] = request_id
    # Never kept by a cache: a CDN keeps answers without Cache-Control for days.
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    if status_code in RETRY_AFTER_STATUSES:
        all_headers.setdefault(
            "Retry-After", str(retry_after_seconds or DEFAULT_RETRY_AFTER_SECONDS)
        )
    return Response(
        orjson.dumps({"error": error}),
        status_code=status_code,
        media_type="application/json",
        headers=all_headers,
    )


async def _on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CbTradeError)
    headers = None
    if isinstance(exc, AuthenticationError):
        token_given = bool(request.headers.get("authorization", "").strip())
        headers = {"WWW-Authenticate": bearer_challenge(token_given=token_given)}
    request_id = None
    message = str(exc)
    if exc.status_code >= 500:
        request_id = request_id_of(request)
        log_event(
            logger,
            "http.error",
            level=logging.WARNING,
            request_id=request_id,
            method=request.method,
            path=request.url.path,
            status=exc.status_code,
            code=exc.code,
            detail=message,
        )
        message = exc.public_message
    return error_response(
        exc.status_code,
        exc.code,
        message,
        request_id=request_id,
        retry_after_seconds=exc.retry_after_seconds,
        headers=headers,
    )


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "query")
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(400, "invalid_parameter", "; ".join(problems) or "invalid request")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _on_unexpected_error(request: Request, exc: Exception) -> Response:
    # Outside the request-id middleware (Starlette runs this handler outermost), so the id
    # comes from the request's state and the header is set here.
    request_id = request_id_of(request)
    logger.exception(
        "unexpected error in %s %s (request_id=%s)", request.method, request.url.path, request_id
    )
    return error_response(
        500,
        "internal_error",
        "internal error; report the request id",
        request_id=request_id,
        headers=None if request_id is None else {"x-request-id": request_id},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to a JSON error response."""
    app.add_exception_handler(CbTradeError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
