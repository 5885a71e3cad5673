"""The API's query and path parameters: their declarations in the OpenAPI spec, and their
parsing into the service's types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar, cast

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema

from cbtrade.api.encoding import PageFormat
from cbtrade.errors import InvalidInputError
from cbtrade.models import (
    EXCHANGE_SCHEMA,
    PAGE_TIMEFRAME_SCHEMA,
    PRICE_SCHEMA,
    SMALLEST_EPOCH_MS,
    SYMBOL_SCHEMA,
    TIME_SCHEMA,
    TIMEFRAME_SCHEMA,
)
from cbtrade.price_types import DEFAULT_PRICE, PriceType, series_symbol
from cbtrade.timeframes import DEFAULT_TIMEFRAME

_EPOCH_MS = re.compile(r"^[0-9]{1,15}$")
_SYMBOL_ALIAS = re.compile(r"^([A-Za-z0-9.]+)[-_]([A-Za-z0-9.]+)$")

# The parameters' schemas in the spec, for routes to attach (``Annotated[str, EXCHANGE,
# Query(...)]``): the values' schemas (cbtrade.models) rather than FastAPI's "string or null",
# as a query parameter is absent, never null. The service checks the values itself.

EXCHANGE = WithJsonSchema(EXCHANGE_SCHEMA)
SYMBOL = WithJsonSchema(SYMBOL_SCHEMA)
TIMEFRAME = WithJsonSchema(TIMEFRAME_SCHEMA)
START = WithJsonSchema({**TIME_SCHEMA, "examples": ["2024-01-01T00:00:00Z"]})
END = WithJsonSchema(
    {
        **TIME_SCHEMA,
        "description": "after start; the same formats",
        "examples": [1_704_153_600_000],  # 2024-01-02T00:00:00Z
    }
)
PAGE_LIMIT_SCHEMA: dict[str, Any] = {
    "type": "integer",
    "minimum": 1,
    # The deployment's CBTRADE_PAGE_MAX_LIMIT replaces this in its spec (cbtrade.api.app).
    "maximum": 100_000,
}
PAGE_LIMIT = WithJsonSchema(PAGE_LIMIT_SCHEMA)

# The query parameters that several routes take, optional (``ExchangeParam[str | None] =
# None``) or required (``ExchangeParam[str]``).
_T = TypeVar("_T")
ExchangeParam = Annotated[_T, EXCHANGE, Query(max_length=32, description="ccxt exchange id")]
SymbolParam = Annotated[
    _T, SYMBOL, Query(max_length=64, description="ccxt unified symbol; BTC-USD and BTC_USD too")
]
PRICE = WithJsonSchema(PRICE_SCHEMA)
PriceParam = Annotated[PriceType, PRICE, Query(description=PRICE_SCHEMA["description"])]
TimeframeParam = Annotated[
    str | None,
    TIMEFRAME,
    Query(max_length=8, description=f"candle length, default {DEFAULT_TIMEFRAME}"),
]


class PageQuery(BaseModel):
    """The query of ``GET /api/v1/ohlcv``, validated in one pass (:func:`page_query`) and
    declared in the spec from the same fields (:func:`query_parameters`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    exchange: Annotated[str | None, EXCHANGE] = Field(
        default=None, max_length=32, description="ccxt exchange id"
    )
    symbol: Annotated[str | None, SYMBOL] = Field(
        default=None, max_length=64, description="ccxt unified symbol; BTC-USD and BTC_USD too"
    )
    timeframe: Annotated[str | None, WithJsonSchema(PAGE_TIMEFRAME_SCHEMA)] = Field(
        default=None, max_length=8, description=f"candle length, default {DEFAULT_TIMEFRAME}"
    )
    price: Annotated[PriceType, PRICE] = Field(
        default=DEFAULT_PRICE, description=PRICE_SCHEMA["description"]
    )
    start: Annotated[str | None, START] = Field(
        default=None,
        max_length=40,
        description="inclusive; required unless continuation_token is given",
    )
    end: Annotated[str | None, END] = Field(
        default=None, max_length=40, description="exclusive, after start; default now"
    )
    limit: Annotated[int | None, PAGE_LIMIT] = Field(
        default=None, description="candles per page (see the settings)"
    )
    continuation_token: Annotated[
        str | None, WithJsonSchema({"type": "string", "maxLength": 2048})
    ] = Field(
        default=None,
        max_length=2048,
        description=(
            "from the previous page; then the other parameters may be left out (if given, "
            "they must match the first request's)"
        ),
    )
    format: PageFormat = Field(
        default="json",
        description=(
            "json (default), csv, or arrow (Arrow IPC stream); every format carries the "
            "continuation token in X-Continuation-Token and the next page in a Link header, "
            "json in its body too"
        ),
    )


def page_query(query_params: Mapping[str, str]) -> PageQuery:
    """The page query of a request's query string; RequestValidationError (a 400 naming the
    parameter) if a value is not one the spec allows. One pydantic pass: a FastAPI parameter
    per field cost a tenth of a millisecond per request."""
    try:
        return PageQuery.model_validate(dict(query_params))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def query_parameters(
    model: type[BaseModel], *, exclude: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The spec's query parameters for ``model``'s fields but ``exclude``, as FastAPI writes
    them for parameters of a route: the field's description, and the value's schema (its
    ``WithJsonSchema``, else the type's)."""
    parameters = []
    for name, field in model.model_fields.items():
        if name in exclude:
            continue
        declared = [item.json_schema for item in field.metadata if isinstance(item, WithJsonSchema)]
        schema = (
            dict(declared[0] or {})
            if declared
            else TypeAdapter(cast(Any, field.annotation)).json_schema()
        )
        if field.default is not None:
            schema["default"] = field.default
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": field.description,
            }
        )
    return parameters


def parse_timestamp(name: str, value: str | None) -> int | None:
    """Epoch ms from integer epoch milliseconds or an ISO-8601 time (UTC if no offset).

    ``0`` is accepted; other integers below ``SMALLEST_EPOCH_MS`` are refused as epoch
    seconds, or as a compact ``YYYYMMDD`` date when they read as one.
    """
    if value is None:
        return None
    text = value.strip()
    if _EPOCH_MS.match(text):
        return _epoch_ms(name, text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name}={value!r} is neither epoch milliseconds nor an ISO-8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch_ms = int(moment.timestamp() * 1000)
    if epoch_ms < 0:
        raise InvalidInputError(f"{name}={value!r} is before 1970-01-01")
    return epoch_ms


def _epoch_ms(name: str, digits: str) -> int:
    """The integer ``digits`` as epoch ms, refusing epoch seconds and compact dates."""
    number = int(digits)
    if number == 0 or number >= SMALLEST_EPOCH_MS:
        return number
    if len(digits) == 8:
        compact = _compact_date(digits)
        if compact is not None:
            raise InvalidInputError(
                f"{name}={digits} looks like a compact date (YYYYMMDD); "
                f"send ISO-8601 ({compact.isoformat()}) or epoch milliseconds"
            )
    as_seconds = datetime.fromtimestamp(number, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise InvalidInputError(
        f"{name}={digits} looks like epoch seconds; "
        f"send epoch milliseconds ({number * 1000}) or ISO-8601 ({as_seconds})"
    )


def _compact_date(digits: str) -> date | None:
    """The calendar date that eight digits spell as ``YYYYMMDD``, from 1970 on, if any."""
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    if year < 1970:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def normalize_symbol(value: str | None) -> str | None:
    """The ccxt unified symbol: ``BTC-USD`` and ``BTC_USD`` mean ``BTC/USD``. ``@`` is
    refused: a price type is asked for with ``price``."""
    if value is None:
        return None
    if "@" in value:
        raise InvalidInputError(
            f"symbol={value!r}: '@' is not part of a ccxt symbol; ask for mark, index or "
            "premium_index candles with price="
        )
    alias = _SYMBOL_ALIAS.match(value)
    if alias and "/" not in value:
        return f"{alias.group(1)}/{alias.group(2)}"
    return value


def series_of(symbol: str, price: PriceType) -> str:
    """The series symbol of a request's ``symbol`` (aliases allowed) and ``price``."""
    if not symbol:
        raise InvalidInputError("symbol is empty: send a ccxt unified symbol such as BTC/USD")
    return series_symbol(normalize_symbol(symbol) or symbol, price)
