"""The sealed-page cache and the page validators, without a server."""

from __future__ import annotations

from starlette.requests import Request

from cbtrade.api.caching import EncodedPage, SealedPageCache, encoded_page, page_response
from cbtrade.api.encoding import EncodedBody


def page(size: int, tag: str = '"t"') -> EncodedPage:
    return EncodedPage(b"x" * size, {"etag": tag}, "application/json", tag)


def body(content: bytes, fingerprint: bytes | None = None) -> EncodedBody:
    return EncodedBody(
        content, "application/json", {}, content if fingerprint is None else fingerprint
    )


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


def test_pages_above_the_page_bound_are_not_kept() -> None:
    cache = SealedPageCache(max_bytes=100, max_page_bytes=30)
    cache.put("small", page(30))
    cache.put("large", page(31))
    assert cache.get("small") is not None
    assert cache.get("large") is None


def test_a_page_put_again_replaces_the_old_one_and_its_size() -> None:
    cache = SealedPageCache(max_bytes=100)
    cache.put("a", page(90))
    cache.put("a", page(10))
    cache.put("b", page(80))
    assert cache.get("a") is not None
    assert cache.get("b") is not None


def test_sealed_and_open_pages_get_their_cache_control_and_a_strong_etag() -> None:
    sealed = encoded_page(body(b"[1]"), sealed=True, max_age=60)
    opened = encoded_page(body(b"[1]"), sealed=False, max_age=60)
    assert sealed.headers["cache-control"] == "public, max-age=60, immutable"
    assert opened.headers["cache-control"] == "private, no-cache"
    assert sealed.etag == opened.etag  # the same body
    assert sealed.etag.startswith('"')
    assert sealed.headers["vary"] == "Authorization"
    assert encoded_page(body(b"[2]"), sealed=True, max_age=60).etag != sealed.etag


def test_the_etag_digests_the_fingerprint_not_the_body() -> None:
    """A body cut from rendered rows names itself by a short fingerprint."""
    named = encoded_page(body(b"[1]", b"rows of object k@e1"), sealed=True, max_age=60)
    renamed = encoded_page(body(b"[1]", b"rows of object k@e2"), sealed=True, max_age=60)
    assert named.etag != renamed.etag
    assert named.etag != encoded_page(body(b"[1]"), sealed=True, max_age=60).etag


def test_if_none_match_gets_a_304_without_a_body() -> None:
    kept = encoded_page(body(b"[1]"), sealed=True, max_age=60)
    assert page_response(request(), kept).status_code == 200
    assert page_response(request('"other"'), kept).status_code == 200
    for validator in (kept.etag, f"W/{kept.etag}", f'"x", {kept.etag}', "*"):
        answer = page_response(request(validator), kept)
        assert answer.status_code == 304
        assert answer.body == b""
        assert answer.headers["etag"] == kept.etag
        assert answer.headers["cache-control"] == "public, max-age=60, immutable"
