"""CandleClient: the synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar, Unpack

import httpx

from cbtrade_client._base import ATTEMPT_FAILED, ClientBase, ClientOptions, as_client_error, checked
from cbtrade_client._decode import Candle, SeriesInfo, concat_tables, to_dataframe
from cbtrade_client._requests import OHLCV_PATH, CandleQuery, JsonCall, PagedRead, Params

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_T = TypeVar("_T")


class CandleClient(ClientBase):
    """Synchronous client of the cb-trade data service.

    ``CandleClient(base_url, api_key=...)``; the keyword-only options are those of
    :class:`ClientOptions` (``api_key`` or ``token``, ``timeout``, ``retries``,
    ``retry_backoff``, ``retry_max_delay``), and ``sleep`` (called with the seconds to wait
    between attempts; ``time.sleep`` by default) and ``transport`` (an httpx transport).
    Use it as a context manager, or call ``close()``. Errors are :class:`CbTradeClientError`
    and its subclasses.
    """

    def __init__(
        self,
        base_url: str,
        *,
        sleep: Callable[[float], object] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(base_url, options)
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, **self._http_options)

    def _send(self, url: str, params: Params | None = None) -> httpx.Response:
        """The 2xx answer to GET ``url``, retried as the policy says; its typed error else."""
        retrying = self._retry.start()
        while True:
            try:
                return checked(self._http.get(url, params=params))
            except ATTEMPT_FAILED as exc:
                delay = retrying.wait_after(as_client_error(exc))
            self._sleep(delay)

    def _call(self, call: JsonCall[_T]) -> _T:
        return call.result(self._send(call.path, call.params))

    def _pages(self, read: PagedRead[_T]) -> Generator[_T, None, None]:
        """Each page of a range read, decoded, following the ``Link`` headers to the end.

        The next page is requested as soon as a page arrives, so the service prepares it
        while this one is decoded and used.
        """
        with read, ThreadPoolExecutor(1, thread_name_prefix="cbtrade-next-page") as ahead:
            pending: Future[httpx.Response] | None = ahead.submit(
                self._send, OHLCV_PATH, read.params
            )
            while pending is not None:
                response = pending.result()
                link = read.next_link(response)
                pending = None if link is None else ahead.submit(self._send, link)
                yield read.read(response)

    def iter_candles(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> Generator[Candle, None, None]:
        """Every candle of ``[start, end)``, page after page (options: :class:`CandleQuery`).

        ``client.iter_candles("cryptocom", "BTC/USD", start="2024-01-01", end="2024-02-01")``
        """
        return self._candles(PagedRead.candles("iter_candles", exchange, symbol, query))

    def _candles(self, read: PagedRead[list[Candle]]) -> Generator[Candle, None, None]:
        with closing(self._pages(read)) as pages:
            for page in pages:
                yield from page

    def get_candles(self, exchange: str, symbol: str, **query: Unpack[CandleQuery]) -> list[Candle]:
        """Every candle of ``[start, end)`` as a list (options: :class:`CandleQuery`)."""
        return list(self._candles(PagedRead.candles("get_candles", exchange, symbol, query)))

    def get_table(self, exchange: str, symbol: str, **query: Unpack[CandleQuery]) -> pa.Table:
        """The candles as one pyarrow Table, read as Arrow pages (needs the extra
        ``[arrow]``; options: :class:`CandleQuery`)."""
        return concat_tables(
            list(self._pages(PagedRead.arrow("get_table", exchange, symbol, query)))
        )

    def get_dataframe(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> pd.DataFrame:
        """The candles as a pandas DataFrame indexed by UTC open time, read as Arrow pages
        (needs the extra ``[pandas]``; options: :class:`CandleQuery`)."""
        read = PagedRead.arrow("get_dataframe", exchange, symbol, query)
        return to_dataframe(concat_tables(list(self._pages(read))))

    def latest_timestamp(
        self, exchange: str, symbol: str, *, timeframe: str = "5m", price: str = "trade"
    ) -> int | None:
        """Open time (epoch ms UTC) of the newest stored candle of the series, or None."""
        return self._call(JsonCall.latest(exchange, symbol, timeframe, price))

    def list_exchanges(self) -> list[str]:
        """Exchange ids the service has a plugin for."""
        return self._call(JsonCall.exchanges())

    def list_coins(self, exchange: str) -> list[str]:
        """Symbols stored for ``exchange``."""
        return self._call(JsonCall.coins(exchange))

    def list_series(self, exchange: str, symbol: str | None = None) -> list[SeriesInfo]:
        """What is stored for ``exchange`` (or only ``symbol``, all its price types), series
        by series: first and last candle, count, ranges never fetched, quiet slots."""
        return self._call(JsonCall.series(exchange, symbol))

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
