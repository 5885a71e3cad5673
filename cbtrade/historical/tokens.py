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
from collections.abc import Callable

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cbtrade.errors import InvalidContinuationTokenError, InvalidInputError
from cbtrade.price_types import split_series_symbol
from cbtrade.timeframes import DEFAULT_TIMEFRAME

FUNDING_SERIES = "funding"
"""What a funding page's continuation token carries as its series' timeframe: a candle
token is not taken for a funding page, nor the other way round."""
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


def resume_query(
    codec: ContinuationTokenCodec,
    token: str,
    *,
    exchange_name: str | None,
    coin_symbol: str | None,
    timeframe: str | None,
    start_time: int | None,
    end_time: int | None,
    limit: int | None,
    price: str | None = None,
) -> PageCursor:
    """The query of ``token``. Parameters repeated beside it must be the ones it was issued
    for (InvalidContinuationTokenError otherwise): the series symbol's symbol and price type
    each, or ``price`` alone; a token without a page size (a query that asked for none)
    takes the ``limit`` asked beside it, from then on."""
    query = codec.decode(token)
    symbol, price = split_series_symbol(coin_symbol) if coin_symbol is not None else (None, price)
    expected_symbol, expected_price = split_series_symbol(query.symbol)
    for name, given, expected in (
        ("exchange", exchange_name, query.exchange),
        ("symbol", symbol, expected_symbol),
        ("price", price, expected_price),
        ("timeframe", timeframe, query.timeframe),
        ("start", start_time, query.start),
        ("end", end_time, query.end),
        ("limit", limit, query.limit),
    ):
        if given is not None and expected is not None and given != expected:
            raise InvalidContinuationTokenError(
                f"{name}={given!r} does not match the continuation_token's {name}={expected!r}"
            )
    if query.limit is None and limit is not None:
        query = query.model_copy(update={"limit": limit})
    return query


def new_query(
    *,
    exchange_name: str | None,
    coin_symbol: str | None,
    timeframe: str,
    start_time: int | None,
    end: int,
    limit: int | None,
) -> PageCursor:
    """The first page's cursor of a query; InvalidInputError naming what is missing or
    wrong (``end`` is the query's end: now when the client gave none)."""
    if exchange_name is None or coin_symbol is None or start_time is None:
        missing = [
            name
            for name, value in (
                ("exchange", exchange_name),
                ("symbol", coin_symbol),
                ("start", start_time),
            )
            if value is None
        ]
        raise InvalidInputError(
            f"missing {', '.join(missing)} (or a continuation_token from a previous page)"
        )
    if start_time < 0:
        raise InvalidInputError(f"start must not be before 1970, got {start_time}")
    if end <= start_time:
        raise InvalidInputError(f"end ({end}) must be after start ({start_time})")
    return PageCursor(
        exchange=exchange_name,
        symbol=coin_symbol,
        timeframe=timeframe,
        start=start_time,
        end=end,
        cursor=start_time,
        limit=limit,
    )


def page_query(
    codec: ContinuationTokenCodec,
    continuation_token: str | None,
    *,
    funding: bool,
    exchange_name: str | None,
    coin_symbol: str | None,
    timeframe: str | None,
    start_time: int | None,
    end_time: int | None,
    limit: int | None,
    price: str | None = None,
    now: Callable[[], int],
) -> PageCursor:
    """The query of a candle page (or, if ``funding``, of a funding page): the one
    ``continuation_token`` carries (:func:`resume_query`), which must be of the same route,
    or a new one (:func:`new_query`: the default timeframe for candles, and ``end`` now when
    the client gave none)."""
    if continuation_token is not None:
        query = resume_query(
            codec,
            continuation_token,
            exchange_name=exchange_name,
            coin_symbol=coin_symbol,
            timeframe=timeframe,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            price=price,
        )
        if (query.timeframe == FUNDING_SERIES) != funding:
            issued, asked = _ROUTES[not funding], _ROUTES[funding]
            raise InvalidContinuationTokenError(
                f"continuation_token is one of GET {issued}, not of {asked}"
            )
        return query
    return new_query(
        exchange_name=exchange_name,
        coin_symbol=coin_symbol,
        timeframe=FUNDING_SERIES if funding else timeframe or DEFAULT_TIMEFRAME,
        start_time=start_time,
        end=now() if end_time is None else end_time,
        limit=limit,
    )


_ROUTES = {False: "/api/v1/ohlcv", True: "/api/v1/funding"}


class PageLimits:
    """A query's page size: the one asked, checked against the maximum, or a default."""

    def __init__(self, *, default_limit: int, max_limit: int) -> None:
        self.default_limit = default_limit
        self.max_limit = max_limit

    def check(self, limit: int | None) -> None:
        """InvalidInputError unless ``limit`` is None or from 1 to the maximum."""
        if limit is not None and not 1 <= limit <= self.max_limit:
            raise InvalidInputError(f"limit must be between 1 and {self.max_limit}, got {limit}")

    def of(self, limit: int | None, default_limit: int | None) -> int:
        """The page's size: the one asked (the maximum may have been lowered since a token
        kept it), or ``default_limit`` (the manager's default when None)."""
        if limit is None:
            return min(default_limit or self.default_limit, self.max_limit)
        return min(limit, self.max_limit)
