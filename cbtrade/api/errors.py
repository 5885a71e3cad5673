"""Error responses: every error is ``{"error": {"code", "message"}}``, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cbtrade.auth.interfaces import bearer_challenge
from cbtrade.errors import AuthenticationError, CbTradeError

logger = logging.getLogger(__name__)


def error_response(
    status_code: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON error response in the service's format."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    # Never kept by a cache: a CDN keeps answers without Cache-Control for days.
    headers = {"Cache-Control": "no-store", **(headers or {})}
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


async def _on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CbTradeError)
    headers = None
    if isinstance(exc, AuthenticationError):
        token_given = bool(request.headers.get("authorization", "").strip())
        headers = {"WWW-Authenticate": bearer_challenge(token_given=token_given)}
    if exc.status_code >= 500:
        logger.warning("%s %s failed: %s: %s", request.method, request.url.path, exc.code, exc)
    return error_response(exc.status_code, exc.code, str(exc), headers=headers)


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
    logger.exception("unexpected error in %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; see the service's logs")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to a JSON error response."""
    app.add_exception_handler(CbTradeError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
