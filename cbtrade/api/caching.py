"""HTTP caching of candle pages: a strong ETag on every page, ``304 Not Modified`` for a
matching ``If-None-Match``, a ``Cache-Control`` that a CDN and a client can use, and the
encoded bytes of sealed pages kept in memory.

A page read wholly from sealed objects (see :mod:`cbtrade.storage.object_storage`) is the same
for the same query until an operator repairs the range: it is ``public, max-age=N,
immutable`` (``CBTRADE_SEALED_MAX_AGE_SECONDS``), and :class:`SealedPageCache` keeps its
encoded body and headers under the request's URL and the series' sealed-data epoch, so a
repeated request costs neither the encoding nor the hash; a repair changes the epoch (here at
once, on other instances within the recheck bound). Other pages touch the open head of a
series and are ``private, no-cache``: a client may keep them but asks again, and a 304 spares
it the body. Every page varies by ``Authorization``, so a shared cache keys it by token.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import Response

_CARRIED_ON_304 = ("ETag", "Cache-Control", "Vary", "Link", "X-Continuation-Token", "X-Series")
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


class EncodedPage(NamedTuple):
    """A page ready to send again: its body, its headers, and its ETag."""

    body: bytes
    headers: dict[str, str]
    media_type: str
    etag: str


class SealedPageCache:
    """Encoded sealed pages by key (URL and sealed-data epoch), least recently used first out,
    bounded in bytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, EncodedPage] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> EncodedPage | None:
        """The page kept under ``key``, if any."""
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: Hashable, page: EncodedPage) -> None:
        """Keep ``page`` under ``key`` (unless it alone exceeds the bound)."""
        if len(page.body) > self._max_bytes:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._pages[key] = page
        self._bytes += len(page.body)
        while self._bytes > self._max_bytes:
            _, evicted = self._pages.popitem(last=False)
            self._bytes -= len(evicted.body)


def encoded_page(response: Response, *, sealed: bool, max_age: int) -> EncodedPage:
    """``response``'s page with its validators and caching headers."""
    etag = '"' + hashlib.blake2b(response.body, digest_size=16).hexdigest() + '"'
    headers = {name: value for name, value in response.headers.items() if name != "content-length"}
    headers["ETag"] = etag
    headers["Vary"] = "Authorization"
    headers["Cache-Control"] = (
        f"public, max-age={max_age}, immutable" if sealed else "private, no-cache"
    )
    return EncodedPage(bytes(response.body), headers, response.media_type or "", etag)


def page_response(request: Request, page: EncodedPage) -> Response:
    """The page, or a 304 if the client's ``If-None-Match`` names its ETag."""
    if _matches(request.headers.get("if-none-match"), page.etag):
        lowered = {name.lower(): value for name, value in page.headers.items()}
        carried = {
            name: lowered[name.lower()] for name in _CARRIED_ON_304 if name.lower() in lowered
        }
        return Response(status_code=304, headers=carried)
    return Response(page.body, headers=page.headers, media_type=page.media_type)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
