"""Continuation tokens: round trip, and every kind of bad token is a typed bad request."""

from __future__ import annotations

import pytest

from cbtrade.errors import InvalidContinuationTokenError
from cbtrade.historical.tokens import ContinuationTokenCodec, PageCursor

CURSOR = PageCursor(
    exchange="cryptocom",
    symbol="BTC/USD",
    timeframe="5m",
    start=1_704_067_200_000,
    end=1_704_153_600_000,
    cursor=1_704_100_000_000,
)


@pytest.fixture
def codec() -> ContinuationTokenCodec:
    return ContinuationTokenCodec(b"0123456789abcdef-test-secret")


def test_round_trip_is_url_safe(codec: ContinuationTokenCodec) -> None:
    token = codec.encode(CURSOR)
    assert codec.decode(token) == CURSOR
    assert all(c.isalnum() or c in "-_." for c in token)


def test_the_page_size_rides_in_the_token_and_older_tokens_have_none(
    codec: ContinuationTokenCodec,
) -> None:
    import base64

    import orjson

    sized = CURSOR.model_copy(update={"limit": 500})
    assert codec.decode(codec.encode(sized)).limit == 500

    def payload(token: str) -> dict[str, object]:
        part = token.split(".")[0]
        return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]

    # A query without a limit gives the payload tokens had before they carried one, so
    # either version reads the other's.
    assert set(payload(codec.encode(CURSOR))) == {"x", "s", "t", "b", "e", "c"}
    assert payload(codec.encode(sized))["l"] == 500


def test_another_deployments_token_is_rejected(codec: ContinuationTokenCodec) -> None:
    other = ContinuationTokenCodec(b"another-secret-of-16-bytes")
    with pytest.raises(InvalidContinuationTokenError, match="another deployment"):
        codec.decode(other.encode(CURSOR))


def test_same_secret_in_another_instance_accepts_it(codec: ContinuationTokenCodec) -> None:
    again = ContinuationTokenCodec(b"0123456789abcdef-test-secret")
    assert again.decode(codec.encode(CURSOR)) == CURSOR


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t[: len(t) // 2],
        lambda t: _flip(t, 3),
        lambda t: _flip(t, len(t) - 3),
        lambda t: t.replace(".", ""),
        lambda t: t + "x",
        lambda t: "!" + t,
        lambda t: t.split(".")[0],
        lambda t: "",
        lambda t: "....",
        lambda t: "é" * 10,
        lambda t: "a" * 5000,
    ],
)
def test_tampered_or_garbage_tokens_are_rejected(codec: ContinuationTokenCodec, mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidContinuationTokenError):
        codec.decode(mangle(codec.encode(CURSOR)))


def test_a_validly_signed_but_malformed_payload_is_rejected(
    codec: ContinuationTokenCodec,
) -> None:
    import base64

    payload = b'{"x": "cryptocom", "c": "not a number"}'
    forged = (
        base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(codec._mac(payload)).rstrip(b"=").decode()
    )
    with pytest.raises(InvalidContinuationTokenError, match="malformed"):
        codec.decode(forged)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        ContinuationTokenCodec(b"short")
