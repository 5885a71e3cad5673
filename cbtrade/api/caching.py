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

from cbtrade.api.encoding import EncodedBody

_CARRIED_ON_304 = (
    "etag",
    "cache-control",
    "vary",
    "link",
    "x-continuation-token",
    "x-series",
    "x-derived-from",
)
DEFAULT_CACHE_BYTES = 16 * 1024 * 1024


class EncodedPage(NamedTuple):
    """A page ready to send again: its body, its headers (names in lower case), and its
    ETag."""

    body: bytes
    headers: dict[str, str]
    media_type: str
    etag: str


class SealedPageCache:
    """Encoded sealed pages by key (URL and sealed-data epoch), least recently used first out,
    bounded in bytes. Pages above ``max_page_bytes`` are not kept: a bulk read costs about
    the same per byte either way, and would push out the many small pages."""

    def __init__(
        self, max_bytes: int = DEFAULT_CACHE_BYTES, *, max_page_bytes: int = 1024 * 1024
    ) -> None:
        self._max_bytes = max_bytes
        self._max_page_bytes = min(max_page_bytes, max_bytes)
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
        if len(page.body) > self._max_page_bytes:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._pages[key] = page
        self._bytes += len(page.body)
        while self._bytes > self._max_bytes:
            _, evicted = self._pages.popitem(last=False)
            self._bytes -= len(evicted.body)


def encoded_page(encoded: EncodedBody, *, sealed: bool, max_age: int) -> EncodedPage:
    """``encoded`` with its validators and caching headers."""
    etag = '"' + hashlib.blake2b(encoded.fingerprint, digest_size=16).hexdigest() + '"'
    headers = {
        **encoded.headers,
        "etag": etag,
        "vary": "Authorization",
        "cache-control": f"public, max-age={max_age}, immutable" if sealed else "private, no-cache",
    }
    return EncodedPage(encoded.body, headers, encoded.media_type, etag)


def page_response(request: Request, page: EncodedPage) -> Response:
    """The page, or a 304 if the client's ``If-None-Match`` names its ETag."""
    if _matches(request.headers.get("if-none-match"), page.etag):
        carried = {name: page.headers[name] for name in _CARRIED_ON_304 if name in page.headers}
        return Response(status_code=304, headers=carried)
    return Response(page.body, headers=page.headers, media_type=page.media_type)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
