"""What the OpenAPI spec says of the routes' answers: each route's errors, a page's formats,
headers and 304, and the link from a backfill to its progress; and the deployment's page
limits, filled into the spec (the parameters' own schemas are in cbtrade.api.params)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cbtrade.api.params import PageQuery, query_parameters
from cbtrade.candle_table import ARROW_STREAM_MEDIA_TYPE
from cbtrade.config import Settings
from cbtrade.models import EXCHANGE_SCHEMA, SYMBOL_SCHEMA, ErrorOut

Responses = dict[int | str, dict[str, Any]]
BEARER_SCHEME = "HTTPBearer"
"""The security scheme's name in the spec: FastAPI names it after the HTTPBearer class."""

_ERROR_DESCRIPTIONS = {
    400: "bad input: the message names the parameter and what to send",
    401: "missing or invalid bearer token",
    403: "the token is not an admin's",
    404: "unknown exchange, symbol or job",
    422: "the exchange does not keep candles that far back",
    502: "the exchange answered with an error",
    503: "the exchange, the storage, the work queue or the token issuer is unavailable",
}


def errors(*statuses: int) -> Responses:
    """The error responses of a /api/v1 route, each ``{"error": {"code", "message"}}``:
    ``statuses`` and the 401 and 503 of its token check."""
    return {
        status: {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[status]}
        for status in sorted({*statuses, 401, 503})
    }


def _header(description: str, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_PAGE_HEADERS = {
    "ETag": _header("strong; send it in If-None-Match to get a 304", required=True),
    "Cache-Control": _header(
        "public, max-age=N, immutable for a page read wholly from sealed objects; "
        "private, no-cache otherwise",
        required=True,
    ),
    "X-Series": _header(
        "exchange:symbol:timeframe; symbol@price for a price other than trade "
        "(binance:BTC/USDT:USDT@mark:5m)",
        required=True,
    ),
    "X-Continuation-Token": _header("the next page's token; absent on the last page"),
    "Link": _header('<next page>; rel="next"; absent on the last page'),
    "X-Derived-From": _header(
        "the base timeframe of a derived timeframe's candles; absent when fetched natively"
    ),
}


def _page_responses(description: str, csv_example: str, arrow_columns: str) -> Responses:
    """A paged route's answers: its page in JSON, CSV or Arrow, a 304, and its errors."""
    return {
        200: {
            "description": description,
            "headers": _PAGE_HEADERS,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": csv_example},
                ARROW_STREAM_MEDIA_TYPE: {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": f"Arrow IPC stream; columns {arrow_columns}",
                    },
                },
            },
        },
        304: {
            "description": "not modified: If-None-Match names the page's ETag",
            "headers": {name: _PAGE_HEADERS[name] for name in ("ETag", "Cache-Control")},
        },
        **errors(400, 404, 422, 502),
    }


def _page_operation(
    *, exclude: frozenset[str] = frozenset(), schemas: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What a paged route reads from the request itself rather than through FastAPI's
    parameters and dependencies: its query (cbtrade.api.params.PageQuery, but ``exclude``,
    and with the parameters' schemas in ``schemas`` instead of PageQuery's), If-None-Match
    (read by the page's caching, cbtrade.api.caching) and the bearer token."""
    parameters = query_parameters(PageQuery, exclude=exclude)
    for parameter in parameters:
        parameter["schema"] = (schemas or {}).get(parameter["name"], parameter["schema"])
    return {
        "parameters": [
            *parameters,
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "the ETag of a page kept from before: 304 if it is still the same",
                "schema": {"type": "string"},
            },
        ],
        "security": [{BEARER_SCHEME: []}],
    }


PAGE_RESPONSES = _page_responses(
    "a page of candles in the format asked for",
    "timestamp,open,high,low,close,volume\n"
    "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68\n",
    "timestamp (int64) and open, high, low, close, volume (float64)",
)
PAGE_OPERATION = _page_operation()
"""``GET /api/v1/ohlcv``'s parameters and security."""
FUNDING_RESPONSES = _page_responses(
    "a page of funding events in the format asked for",
    "timestamp,rate\n1709251200000,0.0001\n",
    "timestamp (int64) and rate (float64)",
)
FUNDING_OPERATION = _page_operation(
    exclude=frozenset({"timeframe", "price"}),
    schemas={
        "exchange": {**EXCHANGE_SCHEMA, "examples": ["binance", "cryptocom"]},
        "symbol": {
            **SYMBOL_SCHEMA,
            "description": "ccxt unified symbol of a perpetual swap (BTC/USDT:USDT); another "
            "market is a 400, a symbol the exchange does not list a 404",
            "examples": ["BTC/USDT:USDT", "BTC/USD:USD", "ETH/USDT:USDT"],
        },
    },
)
"""``GET /api/v1/funding``'s parameters (the page query without a timeframe or a price, each
a 400 there) and security."""
_LIMIT_UNITS = {"/api/v1/ohlcv": "candles", "/api/v1/funding": "funding events"}

BACKFILL_PROGRESS_OPERATION = "get_backfill"
BACKFILL_CREATED: Responses = {
    202: {
        "headers": {"Location": _header("the job's progress: /api/v1/backfills/{id}")},
        "links": {
            "progress": {
                "operationId": BACKFILL_PROGRESS_OPERATION,
                "parameters": {"job_id": "$response.body#/id"},
                "description": "the job's progress",
            }
        },
    },
    **errors(400, 404, 422, 502),
}


def declare_page_limits(app: FastAPI, settings: Settings) -> None:
    """Make the spec's ``limit`` of the paged routes this deployment's: its maximum is
    CBTRADE_PAGE_MAX_LIMIT, and its description says both settings' values."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        for path, units in _LIMIT_UNITS.items():
            for parameter in spec["paths"][path]["get"]["parameters"]:
                if parameter["name"] != "limit":
                    continue
                parameter["schema"]["maximum"] = settings.page_max_limit
                parameter["description"] = (
                    f"{units} per page, 1 to {settings.page_max_limit}; by default "
                    f"{settings.page_default_limit} for json and {settings.page_max_limit} for "
                    "csv and arrow. A page may hold fewer (it stops when its time budget is "
                    "spent): follow continuation_token until it is null"
                )
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
