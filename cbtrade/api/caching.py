"""HTTP caching of candle pages: a strong ETag on every page, ``304 Not Modified`` for a
matching ``If-None-Match``, and a ``Cache-Control`` that a CDN and a client can use.

A page read wholly from sealed objects (see :mod:`cbtrade.storage.object_storage`) is the same
for the same query until an operator repairs the range: it is ``public, max-age=N,
immutable`` (``CBTRADE_SEALED_MAX_AGE_SECONDS``). Other pages touch the open head of a series
and are ``private, no-cache``: a client may keep them but asks again, and a 304 spares it the
body. Every page varies by ``Authorization``, so a shared cache keys it by token and never
hands one caller's page to another who was not allowed to ask.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

_CARRIED_ON_304 = ("ETag", "Cache-Control", "Vary", "Link", "X-Continuation-Token", "X-Series")


def cached_page(request: Request, response: Response, *, sealed: bool, max_age: int) -> Response:
    """``response`` with its validators and caching headers, or a 304 if the client's
    ``If-None-Match`` names its ETag."""
    etag = '"' + hashlib.blake2b(response.body, digest_size=16).hexdigest() + '"'
    response.headers["ETag"] = etag
    response.headers["Vary"] = "Authorization"
    response.headers["Cache-Control"] = (
        f"public, max-age={max_age}, immutable" if sealed else "private, no-cache"
    )
    if not _matches(request.headers.get("if-none-match"), etag):
        return response
    headers = {name: response.headers[name] for name in _CARRIED_ON_304 if name in response.headers}
    return Response(status_code=304, headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
