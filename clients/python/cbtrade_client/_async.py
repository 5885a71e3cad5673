"""AsyncCandleClient: the asynchronous client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar, Unpack

import httpx

from cbtrade_client._base import ATTEMPT_FAILED, ClientBase, ClientOptions, as_client_error, checked
from cbtrade_client._decode import Candle, SeriesInfo, concat_tables, to_dataframe
from cbtrade_client._errors import CbTradeClientError
from cbtrade_client._requests import OHLCV_PATH, CandleQuery, JsonCall, PagedRead, Params

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_T = TypeVar("_T")


class AsyncCandleClient(ClientBase):
    """Asynchronous client of the cb-trade data service: the methods of
    :class:`CandleClient`, awaited (``iter_candles`` is an async iterator).

    Options as for :class:`CandleClient`; ``sleep`` is awaited (``asyncio.sleep`` by
    default) and ``transport`` is an async httpx transport. Use it as an async context
    manager, or await ``close()``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(base_url, options)
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **self._http_options)

    async def _send(self, url: str, params: Params | None = None) -> httpx.Response:
        """As ``CandleClient._send``."""
        retrying = self._retry.start()
        while True:
            try:
                return checked(await self._http.get(url, params=params))
            except ATTEMPT_FAILED as exc:
                delay = retrying.wait_after(as_client_error(exc))
            await self._sleep(delay)

    async def _call(self, call: JsonCall[_T]) -> _T:
        return call.result(await self._send(call.path, call.params))

    async def _pages(self, read: PagedRead[_T]) -> AsyncGenerator[_T, None]:
        """As ``CandleClient._pages``: the next page is requested, as a task of its own, as
        soon as a page arrives; it is cancelled if the read is abandoned."""
        with read:
            pending: asyncio.Task[httpx.Response] | None = asyncio.create_task(
                self._send(OHLCV_PATH, read.params)
            )
            try:
                while pending is not None:
                    response = await pending
                    link = read.next_link(response)
                    pending = None if link is None else asyncio.create_task(self._send(link))
                    yield read.read(response)
            finally:
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, CbTradeClientError):
                        await pending

    def iter_candles(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> AsyncGenerator[Candle, None]:
        """Every candle of ``[start, end)``, page after page (options: :class:`CandleQuery`)."""
        return self._candles(PagedRead.candles("iter_candles", exchange, symbol, query))

    async def _candles(self, read: PagedRead[list[Candle]]) -> AsyncGenerator[Candle, None]:
        async with contextlib.aclosing(self._pages(read)) as pages:
            async for page in pages:
                for candle in page:
                    yield candle

    async def get_candles(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> list[Candle]:
        """Every candle of ``[start, end)`` as a list (options: :class:`CandleQuery`)."""
        read = PagedRead.candles("get_candles", exchange, symbol, query)
        return [candle async for candle in self._candles(read)]

    async def get_table(self, exchange: str, symbol: str, **query: Unpack[CandleQuery]) -> pa.Table:
        """The candles as one pyarrow Table (needs the extra ``[arrow]``)."""
        read = PagedRead.arrow("get_table", exchange, symbol, query)
        return concat_tables([table async for table in self._pages(read)])

    async def get_dataframe(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> pd.DataFrame:
        """The candles as a pandas DataFrame indexed by UTC open time (needs ``[pandas]``)."""
        read = PagedRead.arrow("get_dataframe", exchange, symbol, query)
        return to_dataframe(concat_tables([table async for table in self._pages(read)]))

    async def latest_timestamp(
        self, exchange: str, symbol: str, *, timeframe: str = "5m", price: str = "trade"
    ) -> int | None:
        """Open time (epoch ms UTC) of the newest stored candle of the series, or None."""
        return await self._call(JsonCall.latest(exchange, symbol, timeframe, price))

    async def list_exchanges(self) -> list[str]:
        """Exchange ids the service has a plugin for."""
        return await self._call(JsonCall.exchanges())

    async def list_coins(self, exchange: str) -> list[str]:
        """Symbols stored for ``exchange``."""
        return await self._call(JsonCall.coins(exchange))

    async def list_series(self, exchange: str, symbol: str | None = None) -> list[SeriesInfo]:
        """What is stored for ``exchange`` (or only ``symbol``, all its price types), series
        by series: first and last candle, count, ranges never fetched, quiet slots."""
        return await self._call(JsonCall.series(exchange, symbol))

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
