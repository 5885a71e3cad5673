"""The HTTP routes of DESIGN.md."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from cbtrade.api.caching import SealedPageCache, encoded_page, page_response
from cbtrade.api.encoding import PageFormat, RowTextCache, encode_funding_page, encode_page
from cbtrade.api.errors import DEFAULT_RETRY_AFTER_SECONDS
from cbtrade.api.openapi import (
    BACKFILL_CREATED,
    BACKFILL_PROGRESS_OPERATION,
    FUNDING_OPERATION,
    FUNDING_RESPONSES,
    PAGE_OPERATION,
    PAGE_RESPONSES,
    errors,
)
from cbtrade.api.params import (
    END,
    EXCHANGE,
    START,
    ExchangeParam,
    PriceParam,
    SymbolParam,
    TimeframeParam,
    normalize_symbol,
    page_query,
    parse_timestamp,
    series_of,
)
from cbtrade.auth.interfaces import Principal, require_admin
from cbtrade.errors import AuthenticationError, InvalidInputError, StorageError
from cbtrade.historical.backfills import BackfillSeries
from cbtrade.models import (
    BackfillIn,
    BackfillOut,
    CoinsOut,
    ExchangesOut,
    FundingPageOut,
    HealthOut,
    LatestOut,
    OhlcvPageOut,
    RepairOut,
    SeriesCatalogOut,
)
from cbtrade.price_types import DEFAULT_PRICE, split_series_symbol
from cbtrade.services import ServiceContainer
from cbtrade.storage.catalog import catalog_order
from cbtrade.storage.interfaces import SeriesSummary
from cbtrade.timeframes import DEFAULT_TIMEFRAME

_HEALTH_TIMEOUT_SECONDS = 10.0
_bearer = HTTPBearer(auto_error=False, description="an API key or a JWT")


async def _services(request: Request) -> ServiceContainer:
    # async: a plain function dependency is run in a worker thread, a hop per request.
    services: ServiceContainer = request.app.state.services
    return services


Services = Annotated[ServiceContainer, Depends(_services)]


async def _require_auth(
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller; None when auth is disabled."""
    if services.settings.auth_disabled:
        return None
    if credentials is None:
        raise AuthenticationError("send 'Authorization: Bearer <api key or JWT>'")
    return await services.auth.validate_token(credentials.credentials)


async def _require_admin(
    principal: Annotated[Principal | None, Depends(_require_auth)],
) -> Principal | None:
    """The caller, if an admin (403 otherwise); None when auth is disabled."""
    if principal is not None:
        require_admin(principal)
    return principal


def _json(
    payload: object, status_code: int = 200, *, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer that no cache keeps (they change: the newest candle, a job's progress)."""
    return Response(
        orjson.dumps(payload),
        status_code=status_code,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


health_router = APIRouter(prefix="/api", tags=["health"])
v1_router = APIRouter(prefix="/api/v1", tags=["candles"], dependencies=[Depends(_require_auth)])
page_router = APIRouter(prefix="/api/v1", tags=["candles"])
"""GET /api/v1/ohlcv alone: it checks the token itself (see get_ohlcv)."""


@health_router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(services: Services) -> Response:
    """Liveness and storage reachability; needs no auth. HEAD answers the same status."""
    try:
        await asyncio.wait_for(services.storage.check_health(), _HEALTH_TIMEOUT_SECONDS)
    except (StorageError, TimeoutError) as exc:
        reason = exc.code if isinstance(exc, StorageError) else "storage_timeout"
        retry_after = exc.retry_after_seconds if isinstance(exc, StorageError) else None
        return _json(
            {"status": "unhealthy", "storage": reason},
            status_code=503,
            headers={"Retry-After": str(retry_after or DEFAULT_RETRY_AFTER_SECONDS)},
        )
    return _json({"status": "ok", "storage": "ok"})


@page_router.get(
    "/ohlcv",
    response_model=OhlcvPageOut,
    responses=PAGE_RESPONSES,
    openapi_extra=PAGE_OPERATION,
)
async def get_ohlcv(request: Request) -> Response:
    """Candles of ``[start, end)``, ascending, gap-filled from the exchange, page by page.

    The hot path of warm serving: its token check and query are read here, in one pass
    each, rather than by FastAPI's dependencies (a third of a warm page's CPU); the spec
    declares the same (PageQuery, the bearer scheme)."""
    services: ServiceContainer = request.app.state.services
    await _require_auth(services, await _bearer(request))
    asked = page_query(request.query_params)
    exchange, symbol, timeframe = asked.exchange, asked.symbol, asked.timeframe
    start, end, limit, format = asked.start, asked.end, asked.limit, asked.format
    continuation_token = asked.continuation_token
    pages: SealedPageCache = request.app.state.sealed_pages
    row_text: RowTextCache = request.app.state.row_text
    series = None if symbol is None else series_of(symbol, asked.price)
    epoch = await services.history.sealed_epoch(
        exchange_name=exchange,
        coin_symbol=series,
        timeframe=timeframe,
        continuation_token=continuation_token,
    )
    key = None if epoch is None else (request.url.path, request.url.query, epoch)
    kept = None if key is None else pages.get(key)
    if kept is not None:
        return page_response(request, kept)
    page = await services.history.get_page(
        exchange_name=exchange,
        coin_symbol=series,
        timeframe=timeframe,
        start_time=parse_timestamp("start", start),
        end_time=parse_timestamp("end", end),
        limit=limit,
        continuation_token=continuation_token,
        # Columns cost little to encode and decode: their pages are as large as allowed.
        default_limit=None if format == "json" else services.settings.page_max_limit,
        price=asked.price if "price" in request.query_params else None,
    )
    next_link = _next_link(request, page.continuation_token, format)
    encoded = encoded_page(
        encode_page(page, next_link=next_link, page_format=format, row_text=row_text),
        sealed=page.sealed,
        max_age=services.settings.sealed_max_age_seconds,
    )
    if key is not None and page.sealed:
        pages.put(key, encoded)
    return page_response(request, encoded)


@page_router.get(
    "/funding",
    response_model=FundingPageOut,
    responses=FUNDING_RESPONSES,
    openapi_extra=FUNDING_OPERATION,
    tags=["funding"],
)
async def get_funding(request: Request) -> Response:
    """Funding-rate history of a perpetual swap in ``[start, end)``: its funding events,
    ascending, gap-filled from the exchange, page by page (the query of ``/ohlcv`` without a
    timeframe). 400 for a symbol that is not a perpetual swap or an exchange without funding
    history, 404 for an unknown exchange or symbol."""
    services: ServiceContainer = request.app.state.services
    await _require_auth(services, await _bearer(request))
    asked = page_query(request.query_params)
    for candles_only in ("timeframe", "price"):
        if candles_only in request.query_params:
            raise InvalidInputError(f"{candles_only} is not a parameter of /api/v1/funding")
    page = await services.funding.get_page(
        exchange_name=asked.exchange,
        coin_symbol=normalize_symbol(asked.symbol),
        start_time=parse_timestamp("start", asked.start),
        end_time=parse_timestamp("end", asked.end),
        limit=asked.limit,
        continuation_token=asked.continuation_token,
        default_limit=None if asked.format == "json" else services.settings.page_max_limit,
    )
    next_link = _next_link(request, page.continuation_token, asked.format)
    encoded = encoded_page(
        encode_funding_page(page, next_link=next_link, page_format=asked.format),
        sealed=False,
        max_age=services.settings.sealed_max_age_seconds,
    )
    return page_response(request, encoded)


def _next_link(request: Request, token: str | None, page_format: PageFormat) -> str | None:
    """The next page's relative URL: the token carries the query and its limit; the format
    is the request's own."""
    if token is None:
        return None
    query = {"continuation_token": token}
    if page_format != "json":
        query["format"] = page_format
    return f"{request.url.path}?{urlencode(query)}"


@v1_router.get("/ohlcv/latest", response_model=LatestOut, responses=errors(400, 404, 502))
async def get_latest(
    services: Services,
    exchange: ExchangeParam[str],
    symbol: SymbolParam[str],
    timeframe: TimeframeParam = None,
    price: PriceParam = DEFAULT_PRICE,
) -> Response:
    """Open time of the newest stored candle of a series: null when nothing is stored for a
    series the exchange serves; 404 for a symbol it does not list, 400 for a timeframe or a
    price type it does not offer."""
    series = series_of(symbol, price)
    series_timeframe = timeframe or DEFAULT_TIMEFRAME
    timestamp = await services.history.get_most_recent_timestamp(exchange, series, series_timeframe)
    return _json({**_series_fields(exchange, series, series_timeframe), "timestamp": timestamp})


@v1_router.get("/exchanges", response_model=ExchangesOut, responses=errors())
async def list_exchanges(services: Services) -> Response:
    """Exchange ids that have a plugin."""
    return _json({"exchanges": services.connector.list_exchanges()})


@v1_router.get("/exchanges/{exchange}/coins", response_model=CoinsOut, responses=errors(400, 404))
async def list_coins(
    services: Services, exchange: Annotated[str, EXCHANGE, Path(max_length=32)]
) -> Response:
    """Symbols with candles stored for an exchange."""
    services.connector.get_client(exchange)
    return _json({"exchange": exchange, "coins": await services.storage.list_coins(exchange)})


@v1_router.get("/series", response_model=SeriesCatalogOut, responses=errors(400, 404))
async def list_series(
    services: Services,
    exchange: ExchangeParam[str],
    symbol: SymbolParam[str | None] = None,
) -> Response:
    """What is stored for an exchange (or one symbol, all its price types): per series its
    first and last candle, how many, the ranges between them never fetched and the quiet
    slots. Reads the series' summaries and only the objects changed since they were made
    (the exchange's own calendar candle series: their few objects, decoded when changed)."""
    services.connector.get_client(exchange)
    symbol = normalize_symbol(symbol)
    fixed, calendar = await asyncio.gather(
        services.storage.list_series(exchange, symbol),
        services.calendar.list_series(exchange, symbol),
    )
    found = sorted([*fixed, *calendar], key=catalog_order)
    return _json({"exchange": exchange, "series": [_catalog_entry(one) for one in found]})


def _catalog_entry(summary: SeriesSummary) -> dict[str, object]:
    symbol, price = split_series_symbol(summary.coin_symbol)
    return {
        "exchange": summary.exchange_name,
        "symbol": symbol,
        "price": price,
        "timeframe": summary.timeframe,
        "first": summary.first,
        "first_time": _iso(summary.first),
        "last": summary.last,
        "last_time": _iso(summary.last),
        "candles": summary.candles,
        "not_covered": [list(gap) for gap in summary.not_covered],
        "missing_candles": summary.missing_candles,
    }


def _iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@v1_router.post(
    "/admin/refresh",
    response_model=RepairOut,
    tags=["admin"],
    responses=errors(400, 403, 404, 422, 502),
)
async def refresh_range(
    services: Services,
    principal: Annotated[Principal | None, Depends(_require_admin)],
    exchange: ExchangeParam[str],
    symbol: SymbolParam[str],
    start: Annotated[str, START, Query(max_length=40, description="inclusive")],
    end: Annotated[str, END, Query(max_length=40, description="exclusive, after start")],
    timeframe: TimeframeParam = None,
    price: PriceParam = DEFAULT_PRICE,
) -> Response:
    """Admin only: re-fetch ``[start, end)`` from the exchange and replace what is stored."""
    start_time, end_time = parse_timestamp("start", start), parse_timestamp("end", end)
    assert start_time is not None  # given a string, parse_timestamp returns an int
    assert end_time is not None
    result = await services.repair.refetch(
        exchange,
        series_of(symbol, price),
        timeframe or DEFAULT_TIMEFRAME,
        start_time,
        end_time,
        principal=principal.subject if principal is not None else None,
    )
    fields = result._asdict()
    return _json({**fields, **_series_fields(exchange, result.symbol, result.timeframe)})


@v1_router.post(
    "/backfills",
    response_model=BackfillOut,
    status_code=202,
    tags=["backfills"],
    responses=BACKFILL_CREATED,
)
async def create_backfill(
    services: Services,
    principal: Annotated[Principal | None, Depends(_require_auth)],
    job: BackfillIn,
) -> Response:
    """Queue a bulk backfill of many series; 202 with the job, whose progress
    ``GET /api/v1/backfills/{id}`` shows."""
    progress = await services.backfills.create(
        [
            BackfillSeries(one.exchange, series_of(one.symbol, one.price), one.timeframe)
            for one in job.series
        ],
        start=_job_time("start", job.start),
        end=_job_time("end", job.end),
        since_listing=job.since_listing,
        created_by=principal.subject if principal is not None else None,
    )
    response = _json(progress, status_code=202)
    response.headers["Location"] = f"/api/v1/backfills/{progress['id']}"
    return response


@v1_router.get(
    "/backfills/{job_id}",
    response_model=BackfillOut,
    tags=["backfills"],
    operation_id=BACKFILL_PROGRESS_OPERATION,
    responses=errors(400, 404),
)
async def get_backfill(
    services: Services, job_id: Annotated[str, Path(pattern="^[0-9a-f]{16}$")]
) -> Response:
    """A backfill job's progress: windows done, pending and failed, candles stored, ETA."""
    return _json(await services.backfills.progress(job_id))


def _series_fields(exchange: str, series: str, timeframe: str) -> dict[str, str]:
    """How an answer names a series: its exchange, ccxt symbol, price type and timeframe."""
    symbol, price = split_series_symbol(series)
    return {"exchange": exchange, "symbol": symbol, "price": price, "timeframe": timeframe}


def _job_time(name: str, value: str | int | None) -> int | None:
    return parse_timestamp(name, None if value is None else str(value))
