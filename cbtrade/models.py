"""Data models: the candle, time ranges, and the API's request and response models."""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field


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


class TimeRange(NamedTuple):
    """A half-open interval ``[start, end)`` in epoch milliseconds UTC."""

    start: int
    end: int


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
    timeframe: str = Field(examples=["5m"])


class OhlcvPageOut(SeriesOut):
    """One page of candles and the way to the next."""

    candles: list[CandleOut]
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

    exchange: str = Field(max_length=32, examples=["cryptocom"])
    symbol: str = Field(max_length=64, examples=["BTC/USD"])
    timeframe: str = Field(default="5m", max_length=8, examples=["5m"])


class BackfillIn(BaseModel):
    """A bulk backfill: series and a range (``start``, optional ``end``) or ``since_listing``."""

    model_config = ConfigDict(extra="forbid")

    series: list[BackfillSeriesIn] = Field(min_length=1, max_length=10_000)
    start: str | int | None = Field(
        default=None, description="inclusive; ISO-8601 UTC or epoch milliseconds"
    )
    end: str | int | None = Field(
        default=None, description="exclusive; ISO-8601 UTC or epoch milliseconds; default now"
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


class HealthOut(BaseModel):
    """Liveness and storage reachability."""

    status: str = Field(examples=["ok", "unhealthy"])
    storage: str = Field(examples=["ok"])


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str
    message: str
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
