"""What both clients share: their options, credentials and retry policy."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypedDict

import httpx

from cbtrade_client._errors import CbTradeClientError, CbTradeConnectionError, error_for
from cbtrade_client._requests import check_keywords
from cbtrade_client._retry import RetryPolicy
from cbtrade_client._version import __version__


class ClientOptions(TypedDict, total=False):
    """The keyword-only options of both clients.

    - ``api_key``: sent as ``Authorization: Bearer <api_key>``; or
    - ``token``: a JWT, or a callable returning a fresh one, asked anew for every request;
    - ``timeout``: seconds for one HTTP request (default 240: a page may take the service
      up to 230 s under Azure Functions);
    - ``retries``: how many more times a request is sent after a 429, 502, 503, 504 or a
      transport error (default 3; 0 sends once);
    - ``retry_backoff``: the first wait in seconds when the service gives no
      ``Retry-After``, doubled at each retry, with jitter (default 0.5);
    - ``retry_max_delay``: the longest wait in seconds (default 30); a ``Retry-After``
      asking for longer is not waited out: the error is raised at once.
    """

    api_key: str | None
    token: str | Callable[[], str] | None
    timeout: float
    retries: int
    retry_backoff: float
    retry_max_delay: float


class _BearerAuth(httpx.Auth):
    """Sends ``Authorization: Bearer``, asking a token provider anew for every request."""

    def __init__(self, credential: str | Callable[[], str]) -> None:
        self._credential = credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._credential() if callable(self._credential) else self._credential
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class ClientBase:
    """The options, credentials and retry policy of a client."""

    def __init__(self, base_url: str, options: ClientOptions) -> None:
        check_keywords(type(self).__name__, options, ClientOptions)
        api_key, token = options.get("api_key"), options.get("token")
        if api_key is not None and token is not None:
            raise ValueError("pass api_key or token, not both")
        credential = api_key if api_key is not None else token
        self._retry = RetryPolicy(
            retries=options.get("retries", 3),
            backoff=options.get("retry_backoff", 0.5),
            max_delay=options.get("retry_max_delay", 30.0),
        )
        self._http_options: dict[str, Any] = {
            "base_url": base_url,
            "auth": _BearerAuth(credential) if credential else None,
            "timeout": options.get("timeout", 240.0),
            "headers": {"User-Agent": f"cbtrade-client/{__version__} httpx/{httpx.__version__}"},
        }


def checked(response: httpx.Response) -> httpx.Response:
    """``response`` if it is a 2xx; its typed error otherwise."""
    if response.is_success:
        return response
    raise error_for(response)


ATTEMPT_FAILED = (httpx.TransportError, CbTradeClientError)
"""What one attempt of a request may raise (see ``as_client_error``)."""


def as_client_error(exc: Exception) -> CbTradeClientError:
    """The client error a failed attempt stands for: a transport error is a connection
    error; the client's own errors are themselves."""
    if isinstance(exc, httpx.TransportError):
        return CbTradeConnectionError(exc)
    assert isinstance(exc, CbTradeClientError)
    return exc
