"""The sealed-page cache and the page validators, without a server."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cbtrade.api.caching import EncodedPage, SealedPageCache, encoded_page, page_response


def page(size: int, tag: str = '"t"') -> EncodedPage:
    return EncodedPage(b"x" * size, {"ETag": tag}, "application/json", tag)


def request(if_none_match: str | None = None) -> Request:
    headers = [] if if_none_match is None else [(b"if-none-match", if_none_match.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_the_cache_keeps_pages_within_its_bound_dropping_the_least_recently_used() -> None:
    cache = SealedPageCache(max_bytes=100)
    cache.put("a", page(40))
    cache.put("b", page(40))
    assert cache.get("a") is not None  # now the most recently used
    cache.put("c", page(40))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    cache.put("huge", page(101))  # larger than the whole cache: not kept, nothing evicted
    assert cache.get("huge") is None
    assert cache.get("a") is not None


def test_a_page_put_again_replaces_the_old_one_and_its_size() -> None:
    cache = SealedPageCache(max_bytes=100)
    cache.put("a", page(90))
    cache.put("a", page(10))
    cache.put("b", page(80))
    assert cache.get("a") is not None
    assert cache.get("b") is not None


def test_sealed_and_open_pages_get_their_cache_control_and_a_strong_etag() -> None:
    sealed = encoded_page(Response(b"[1]", media_type="application/json"), sealed=True, max_age=60)
    opened = encoded_page(Response(b"[1]", media_type="application/json"), sealed=False, max_age=60)
    assert sealed.headers["Cache-Control"] == "public, max-age=60, immutable"
    assert opened.headers["Cache-Control"] == "private, no-cache"
    assert sealed.etag == opened.etag  # the same body
    assert sealed.etag.startswith('"')
    assert sealed.headers["Vary"] == "Authorization"


def test_if_none_match_gets_a_304_without_a_body() -> None:
    kept = encoded_page(Response(b"[1]", media_type="application/json"), sealed=True, max_age=60)
    assert page_response(request(), kept).status_code == 200
    assert page_response(request('"other"'), kept).status_code == 200
    for validator in (kept.etag, f"W/{kept.etag}", f'"x", {kept.etag}', "*"):
        answer = page_response(request(validator), kept)
        assert answer.status_code == 304
        assert answer.body == b""
        assert answer.headers["etag"] == kept.etag
        assert answer.headers["cache-control"] == "public, max-age=60, immutable"
