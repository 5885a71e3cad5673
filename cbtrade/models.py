"""Data models: the candle, time ranges, and the API's request and response models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from cbtrade.derived_timeframes import DERIVABLE_TEXT, TIMEFRAME_PATTERN
from cbtrade.price_types import DEFAULT_PRICE, PRICE_TYPES, PriceType
from cbtrade.timeframes import DEFAULT_TIMEFRAME, TIMEFRAME_MS


class Candle(NamedTuple):
    """One OHLCV candle; ``timestamp`` is its open time in epoch milliseconds UTC.

    A NamedTuple rather than a pydantic model: a year of 5m candles is 105,120 of them, and
    they are created, sorted and encoded on the hot path.
    """

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class FundingRate(NamedTuple):
    """One funding event of a perpetual contract: when it was charged (epoch ms UTC) and its
    rate (a fraction of the position's value per funding interval)."""

    timestamp: int
    rate: float


class TimeRange(NamedTuple):
    """A half-open interval ``[start, end)`` in epoch milliseconds UTC."""

    start: int
    end: int


# The values the API takes, as JSON Schemas for its OpenAPI spec. The service checks each of
# these constraints itself (its errors name the parameter and what to send), so they describe
# the values rather than validate them: routes and models attach them with WithJsonSchema.

EXCHANGE_ID = re.compile(r"^[a-z0-9]{1,32}$")
"""A ccxt exchange id, as the exchange plugins, settings and storage paths take it."""
SMALLEST_EPOCH_MS = 10**11
"""Integers from 1 up to this are refused as times: as epoch ms they are March 1973 or earlier,
and as epoch seconds (the usual mistake) they are any time up to the year 5138."""
_LARGEST_EPOCH_MS = 10**15 - 1  # 15 digits: longer numbers are not read as times

EXCHANGE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": EXCHANGE_ID.pattern,
    "description": (
        "ccxt exchange id: one of GET /api/v1/exchanges, or any other exchange ccxt knows"
    ),
    "examples": ["cryptocom", "binance", "kraken", "coinbase"],
}
SYMBOL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": 64,
    # BASE/QUOTE, with ccxt's :SETTLE(-EXPIRY...) suffix for derivatives; or BASE-QUOTE, BASE_QUOTE.
    "pattern": r"^([^\s/@]+/[^\s/@]+|[A-Za-z0-9.]+[-_][A-Za-z0-9.]+)$",
    "description": (
        "ccxt unified symbol (BTC/USD, BTC/USDT:USDT); BTC-USD and BTC_USD mean BTC/USD. "
        "One the exchange lists: another is a 404"
    ),
    "examples": ["BTC/USD", "BTC/USDT", "ETH/USD", "BTC/USDT:USDT"],
}
PRICE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": list(PRICE_TYPES),
    "default": DEFAULT_PRICE,
    "description": (
        "which price the candles follow: trade (default); mark, index or premium_index for a "
        "perpetual or future where the exchange has them (each is a series of its own); "
        "another is a 400 naming what the exchange offers"
    ),
}
TIMEFRAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": list(TIMEFRAME_MS),
    "default": DEFAULT_TIMEFRAME,
    "description": (
        "candle length: the service's timeframes; one the exchange does not offer is a 400 "
        "naming those it does"
    ),
}
PAGE_TIMEFRAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": TIMEFRAME_PATTERN,
    "maxLength": 5,
    "default": DEFAULT_TIMEFRAME,
    "description": (
        f"candle length: one the exchange offers ({', '.join(TIMEFRAME_MS)}, those it offers, "
        "and its own calendar candles such as Binance's 3d, 1w and 1M, on the exchange's own "
        f"grid), fetched natively; or one derived from those: {DERIVABLE_TEXT}. A derived page "
        "names its base in derived_from and X-Derived-From. Another is a 400 naming what is "
        "offered"
    ),
    "examples": [DEFAULT_TIMEFRAME, "8h", "1w", "1M"],
}
TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "format": "date-time",
            "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
            "maxLength": 40,
            "description": "ISO-8601, from 1970 on; UTC when it has no offset",
        },
        {"type": "string", "format": "date", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-"},
        {
            "type": "integer",
            "minimum": SMALLEST_EPOCH_MS,
            "maximum": _LARGEST_EPOCH_MS,
            "description": "epoch milliseconds",
        },
        {"type": "integer", "enum": [0], "description": "1970-01-01T00:00:00Z"},
    ],
    "description": (
        "ISO-8601 (UTC when no offset is given) or integer epoch milliseconds: 0, or at least "
        "10^11. Integers from 1 to 10^11 - 1 are refused with a 400 that says what to send "
        "(1704067200 reads as epoch seconds, 20240101 as a compact date)"
    ),
}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or JSON null (a body field that may be null)."""
    return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}


# The API's response models. Routes encode responses with orjson straight to bytes; these
# models document the wire format in the OpenAPI spec and type the Python client.


class CandleOut(BaseModel):
    """A candle on the wire."""

    timestamp: int = Field(description="open time, epoch milliseconds UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float


class SeriesOut(BaseModel):
    """Names one series."""

    exchange: str = Field(examples=["cryptocom"])
    symbol: str = Field(examples=["BTC/USD"])
    price: PriceType = Field(default=DEFAULT_PRICE, description="the price the candles follow")
    timeframe: str = Field(examples=["5m"])


class OhlcvPageOut(SeriesOut):
    """One page of candles and the way to the next."""

    candles: list[CandleOut]
    continuation_token: str | None = Field(
        description="pass to get the next page; null on the last page"
    )
    next_link: str | None = Field(description="relative URL of the next page; null on the last")
    derived_from: str | None = Field(
        default=None,
        description="the base timeframe a derived timeframe's candles were aggregated from; "
        "absent when the exchange offers the timeframe",
    )


class FundingRateOut(BaseModel):
    """A funding event on the wire."""

    timestamp: int = Field(description="funding time, epoch milliseconds UTC")
    rate: float = Field(description="funding rate of the interval ending then (0.0001 = 0.01%)")


class FundingPageOut(BaseModel):
    """One page of a contract's funding-rate history and the way to the next."""

    exchange: str = Field(examples=["binance"])
    symbol: str = Field(examples=["BTC/USDT:USDT"])
    funding: list[FundingRateOut]
    continuation_token: str | None = Field(
        description="pass to get the next page; null on the last page"
    )
    next_link: str | None = Field(description="relative URL of the next page; null on the last")


class LatestOut(SeriesOut):
    """The newest stored candle of a series."""

    timestamp: int | None = Field(description="open time of the newest stored candle, or null")


class RepairOut(SeriesOut):
    """A repaired range: what was stored in it before, and what is stored now."""

    start: int = Field(description="aligned start, epoch milliseconds UTC")
    end: int = Field(description="aligned end, clipped to the newest closed candle")
    candles_before: int = Field(description="stored candles dropped from the range")
    candles_after: int = Field(description="candles the exchange has in the range, now stored")


class BackfillSeriesIn(BaseModel):
    """One series of a backfill job."""

    model_config = ConfigDict(extra="forbid")

    exchange: Annotated[str, WithJsonSchema(EXCHANGE_SCHEMA)] = Field(max_length=32)
    symbol: Annotated[str, WithJsonSchema(SYMBOL_SCHEMA)] = Field(min_length=1, max_length=64)
    price: Annotated[PriceType, WithJsonSchema(PRICE_SCHEMA)] = DEFAULT_PRICE
    timeframe: Annotated[str, WithJsonSchema(TIMEFRAME_SCHEMA)] = Field(
        default=DEFAULT_TIMEFRAME, max_length=8
    )


class BackfillIn(BaseModel):
    """A bulk backfill: series and a range (``start``, optional ``end``) or ``since_listing``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "series": [{"exchange": "cryptocom", "symbol": "BTC/USD", "timeframe": "5m"}],
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-01-02T00:00:00Z",
                }
            ]
        },
    )

    series: list[BackfillSeriesIn] = Field(min_length=1, max_length=10_000)
    start: Annotated[str | int | None, WithJsonSchema(_or_null(TIME_SCHEMA))] = Field(
        default=None,
        description=(
            "inclusive; required unless since_listing is true (then it must be absent). "
            + TIME_SCHEMA["description"]
        ),
    )
    end: Annotated[str | int | None, WithJsonSchema(_or_null(TIME_SCHEMA))] = Field(
        default=None, description="exclusive, after start; default now. The same formats"
    )
    since_listing: bool = Field(
        default=False, description="from each series' first candle instead of from start"
    )


class BackfillFailureOut(BaseModel):
    """A window (or a whole series' plan, window null) that failed for good, or a window
    being retried and its last error."""

    series: SeriesOut
    window: int | None
    error: str | None


class BackfillOut(BaseModel):
    """A backfill job's progress."""

    id: str
    state: Literal["running", "completed", "completed_with_failures", "failed"] = Field(
        description="failed: the job could not be queued or started (see error)"
    )
    created_at: int = Field(description="epoch milliseconds UTC")
    created_by: str | None
    start: int | None
    end: int
    since_listing: bool
    series: int
    series_planned: int = Field(description="series whose windows are known and queued")
    series_failed: int = Field(description="series that could not be planned")
    windows_total: int | None = Field(
        description="null until every since-listing series is planned"
    )
    windows_done: int
    windows_pending: int | None
    windows_failed: int
    windows_retrying: int = Field(description="windows whose last try failed; the queue retries")
    candles_stored: int = Field(description="candles the finished windows hold")
    eta_seconds: float | None = Field(description="at the rate so far; null before any window")
    failures: list[BackfillFailureOut] = Field(description="up to 100")
    retrying: list[BackfillFailureOut] = Field(description="up to 100, with their last error")
    error: str | None


class ExchangesOut(BaseModel):
    """Exchanges that have a plugin."""

    exchanges: list[str]


class CoinsOut(BaseModel):
    """Symbols stored for an exchange."""

    exchange: str
    coins: list[str]


class SeriesCatalogEntryOut(SeriesOut):
    """What is stored of one series: its first and last candle, how many, and its holes."""

    first: int | None = Field(
        description="open time of the first stored candle, epoch ms UTC; null if none"
    )
    first_time: str | None = Field(
        description="the same as ISO-8601", examples=["2024-01-01T00:00:00Z"]
    )
    last: int | None = Field(description="open time of the last stored candle, epoch ms UTC")
    last_time: str | None = Field(description="the same as ISO-8601")
    candles: int = Field(description="stored candles")
    not_covered: list[tuple[int, int]] = Field(
        description=(
            "ranges [start, end) (epoch ms) between the first and the last candle never "
            "fetched: a read of them fetches them from the exchange"
        ),
        examples=[[[1704153600000, 1704240000000]]],
    )
    missing_candles: int = Field(
        description=(
            "fetched slots between the first and the last candle without a candle: intervals "
            "in which the exchange had no trades (not an error)"
        )
    )


class SeriesCatalogOut(BaseModel):
    """What is stored for an exchange, series by series."""

    exchange: str
    series: list[SeriesCatalogEntryOut] = Field(description="by symbol, price and timeframe")


class HealthOut(BaseModel):
    """Liveness and storage reachability."""

    status: str = Field(examples=["ok", "unhealthy"])
    storage: str = Field(examples=["ok"])


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(
        description="stable, for programs: bad_request, invalid_timeframe, unknown_symbol, "
        "exchange_unavailable, ...",
        examples=["invalid_timeframe"],
    )
    message: str = Field(
        description="for people: what was wrong and what to send instead",
        examples=["unsupported timeframe '7m'; supported: 1m, 3m, 5m, ..."],
    )
    request_id: str | None = Field(
        default=None,
        description=(
            "on a server-side error (5xx), the request's id, under which the service logged "
            "the details (every response has it in x-request-id): quote it in a report"
        ),
    )


class ErrorOut(BaseModel):
    """Every error response."""

    error: ErrorDetail
