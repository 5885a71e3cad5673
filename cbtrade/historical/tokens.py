"""Continuation tokens: opaque, URL-safe, integrity-protected page cursors.

A token is ``base64url(json payload) + "." + base64url(HMAC-SHA256(payload)[:16])``. The
payload carries the query (exchange, symbol, timeframe, end, and the page size when the
client chose one) and the cursor, so a client may omit the other parameters on later
pages. The HMAC key comes from settings, so every instance of the service accepts the tokens
of every other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cbtrade.errors import InvalidContinuationTokenError

_MAC_BYTES = 16
_MAX_TOKEN_CHARS = 2_048


class PageCursor(BaseModel):
    """A query and where its next page starts."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    exchange: str = Field(alias="x", max_length=32)
    symbol: str = Field(alias="s", max_length=80)
    """The series symbol (a ccxt symbol, ``@{price}`` for a price type other than trade)."""
    timeframe: str = Field(alias="t", max_length=8)
    start: int = Field(alias="b", ge=0)
    """The query's start, as the client gave it."""
    end: int = Field(alias="e", ge=0)
    """The query's end (now, when the client gave none)."""
    cursor: int = Field(alias="c", ge=0)
    """Where the next page starts."""
    limit: int | None = Field(default=None, alias="l", ge=1)
    """The page size the client asked for; None when it asked for none (the format's default
    then applies to each page). Left out of the payload when None, so such tokens read the
    same as those issued before tokens carried it."""


class ContinuationTokenCodec:
    """Encodes page cursors into tokens and verifies tokens back into cursors."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the continuation token secret needs at least 16 bytes")
        self._secret = secret

    def encode(self, cursor: PageCursor) -> str:
        """An opaque URL-safe token for ``cursor``."""
        payload = orjson.dumps(cursor.model_dump(by_alias=True, exclude_none=True))
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def decode(self, token: str) -> PageCursor:
        """The cursor in ``token``; InvalidContinuationTokenError if it is not one of ours."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise InvalidContinuationTokenError("continuation_token is malformed")
        payload_part, dot, mac_part = token.partition(".")
        if not dot:
            raise InvalidContinuationTokenError("continuation_token is malformed")
        try:
            payload = _b64decode(payload_part)
            mac = _b64decode(mac_part)
        except (binascii.Error, ValueError):
            raise InvalidContinuationTokenError("continuation_token is malformed") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidContinuationTokenError(
                "continuation_token was altered, truncated, or issued by another deployment"
            )
        try:
            return PageCursor.model_validate(orjson.loads(payload))
        except (orjson.JSONDecodeError, ValidationError):
            raise InvalidContinuationTokenError("continuation_token is malformed") from None

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
