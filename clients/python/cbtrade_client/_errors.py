"""The client's typed errors, and the error an HTTP answer that is not a 2xx stands for."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx


class CbTradeClientError(Exception):
    """The service answered with an error; ``status_code`` is None if there was no answer.

    ``code`` and ``message`` are the service's (``{"error": {"code", "message"}}``);
    ``retry_after`` is the wait in seconds its ``Retry-After`` header asked for, if any.
    """

    def __init__(
        self, status_code: int | None, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status_code or 'no answer'} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BadRequestError(CbTradeClientError):
    """400: the service refused the request's parameters (the message names the parameter)."""


class AuthenticationError(CbTradeClientError):
    """401 or 403: no token, a token the service does not accept, or one without the right."""


class NotFoundError(CbTradeClientError):
    """404: an exchange, a symbol or a route the service does not know."""


class RateLimitedError(CbTradeClientError):
    """429: too many requests, through every retry; ``retry_after`` says when to come back."""


class ServiceUnavailableError(CbTradeClientError):
    """502, 503 or 504: the service, its store or the exchange was unavailable through
    every retry."""


class CbTradeConnectionError(CbTradeClientError):
    """The service could not be reached (connection, timeout) through every retry."""

    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(None, "connection_error", f"{type(cause).__name__}: {cause}")
        self.__cause__ = cause


_ERROR_TYPES: dict[int, type[CbTradeClientError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    429: RateLimitedError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def error_for(
    response: httpx.Response, *, now: Callable[[], datetime] | None = None
) -> CbTradeClientError:
    """The typed error of a non-2xx ``response``; ``now`` (for a ``Retry-After`` date) is
    the current time, by default the system clock's."""
    try:
        error = json.loads(response.content)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200]
    error_type = _ERROR_TYPES.get(response.status_code, CbTradeClientError)
    header = response.headers.get("retry-after")
    retry_after = None if header is None else retry_after_seconds(header, now or _utc_now)
    return error_type(response.status_code, code, message, retry_after=retry_after)


def retry_after_seconds(header: str, now: Callable[[], datetime]) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait: a number of seconds, or an
    HTTP-date (a date already past is 0). None when it is neither."""
    text = header.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:  # an HTTP-date is GMT; "-0000" parses as naive
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - now()).total_seconds()
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer


def _utc_now() -> datetime:
    return datetime.now(UTC)
