"""What the clients ask the service and how they read its answers, apart from the I/O
(which ``_sync`` and ``_async`` do, each its way)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Required, Self, TypedDict, TypeVar, cast
from urllib.parse import quote

import httpx

from cbtrade_client._decode import (
    Candle,
    SeriesInfo,
    arrow_table,
    json_candles,
    loads,
    require,
    series_infos,
)
from cbtrade_client._progress import Progress
from cbtrade_client._times import TimeArg, to_epoch_ms

if TYPE_CHECKING:
    import pyarrow as pa

OHLCV_PATH = "/api/v1/ohlcv"
Params = dict[str, str | int]
_T = TypeVar("_T")


class CandleQuery(TypedDict, total=False):
    """The options of a range read (``iter_candles``, ``get_candles``, ``get_table``,
    ``get_dataframe``).

    ``start`` (inclusive) and ``end`` (exclusive; the service's now when left out) are each a
    datetime (naive means UTC), a date, an ISO-8601 string (no offset means UTC;
    ``"2024-01-01"`` is its midnight UTC) or epoch milliseconds (an int, ``0`` or at least
    10^11: smaller ones look like epoch seconds or ``YYYYMMDD`` and are refused with a
    ValueError before anything is sent). ``timeframe`` defaults to ``"5m"``; ``price`` to
    ``"trade"`` (``"mark"``, ``"index"`` or ``"premium_index"`` for a contract's other price
    series, where the exchange has them); ``limit`` is
    candles per page (the service's default when left out); ``progress=True`` shows a tqdm
    bar of the candles and pages read (needs the extra ``[progress]``).
    """

    start: Required[TimeArg]
    end: TimeArg | None
    timeframe: str
    price: str
    limit: int | None
    progress: bool


def check_keywords(
    method: str, given: Mapping[str, Any], allowed: type, required: tuple[str, ...] = ()
) -> None:
    """TypeError, as for a plain signature, on keywords that ``allowed`` (a TypedDict) does
    not name, or ``required`` ones that are missing. (Unpack[TypedDict] is checked by type
    checkers only.)"""
    unknown = sorted(set(given) - set(allowed.__annotations__))
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")
    missing = [name for name in required if name not in given]
    if missing:
        raise TypeError(f"{method}() missing a required keyword argument: {missing[0]!r}")


def ohlcv_params(method: str, exchange: str, symbol: str, query: CandleQuery) -> Params:
    """The query string of a range read's first page."""
    check_keywords(method, query, CandleQuery, required=("start",))
    params: Params = {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": query.get("timeframe", "5m"),
        "start": to_epoch_ms("start", query["start"]),
    }
    end, limit, price = query.get("end"), query.get("limit"), query.get("price", "trade")
    if price != "trade":
        params["price"] = price
    if end is not None:
        params["end"] = to_epoch_ms("end", end)
    if limit is not None:
        params["limit"] = limit
    return params


class PagedRead(Generic[_T]):
    """One range read (``PagedRead.candles(...)`` or ``PagedRead.arrow(...)``): its first
    page's query, how each page is decoded and counted, and its progress bar. Use it as a
    context manager (the bar is shown inside)."""

    def __init__(
        self,
        method: str,
        exchange: str,
        symbol: str,
        query: CandleQuery,
        *,
        page_format: Literal["json", "arrow"],
        decode: Callable[[httpx.Response], _T],
        count: Callable[[_T], int],
    ) -> None:
        self.params = ohlcv_params(method, exchange, symbol, query)
        if page_format != "json":
            self.params["format"] = page_format
        self._decode, self._count = decode, count
        self._show_progress = query.get("progress", False)
        if self._show_progress:
            require("progress=True")
        self._description = f"{exchange} {symbol} {self.params['timeframe']}"
        self._progress: Progress | None = None

    @staticmethod
    def candles(
        method: str, exchange: str, symbol: str, query: CandleQuery
    ) -> PagedRead[list[Candle]]:
        """A read of JSON pages, each decoded to Candles, for ``method``."""
        return PagedRead(
            method, exchange, symbol, query, page_format="json", decode=json_candles, count=len
        )

    @staticmethod
    def arrow(method: str, exchange: str, symbol: str, query: CandleQuery) -> PagedRead[pa.Table]:
        """A read of Arrow pages, each decoded to a pyarrow Table, for ``method``
        (``get_table`` or ``get_dataframe``: ModuleNotFoundError naming the extra when what
        it needs is not installed)."""
        require(method)
        return PagedRead(
            method,
            exchange,
            symbol,
            query,
            page_format="arrow",
            decode=arrow_table,
            count=lambda table: int(table.num_rows),
        )

    @staticmethod
    def next_link(response: httpx.Response) -> str | None:
        """The next page's link from the ``Link: <...>; rel="next"`` header (None on the last)."""
        link = response.headers.get("link")
        return link.split(">", 1)[0].lstrip("<") if link else None

    def read(self, response: httpx.Response) -> _T:
        """The page of ``response``, decoded and counted."""
        page = self._decode(response)
        if self._progress is not None:
            self._progress.page(self._count(page))
        return page

    def __enter__(self) -> Self:
        self._progress = Progress(self._show_progress, self._description)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.close()


@dataclass(frozen=True)
class JsonCall(Generic[_T]):
    """A GET whose answer is one field of a JSON object: ``JsonCall.latest(...)``,
    ``JsonCall.exchanges()``, ``JsonCall.coins(...)``, ``JsonCall.series(...)``."""

    path: str
    params: Params | None
    field: str
    convert: Callable[[Any], _T] | None = None
    """Makes the result of the field's value (else the value is the result)."""

    def result(self, response: httpx.Response) -> _T:
        value = loads(response.content)[self.field]
        return cast(_T, value) if self.convert is None else self.convert(value)

    @staticmethod
    def latest(exchange: str, symbol: str, timeframe: str, price: str) -> JsonCall[int | None]:
        params: Params = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        if price != "trade":
            params["price"] = price
        return JsonCall(f"{OHLCV_PATH}/latest", params, "timestamp")

    @staticmethod
    def exchanges() -> JsonCall[list[str]]:
        return JsonCall("/api/v1/exchanges", None, "exchanges")

    @staticmethod
    def coins(exchange: str) -> JsonCall[list[str]]:
        return JsonCall(f"/api/v1/exchanges/{quote(exchange, safe='')}/coins", None, "coins")

    @staticmethod
    def series(exchange: str, symbol: str | None) -> JsonCall[list[SeriesInfo]]:
        params: Params = {"exchange": exchange}
        if symbol is not None:
            params["symbol"] = symbol
        return JsonCall("/api/v1/series", params, "series", series_infos)
