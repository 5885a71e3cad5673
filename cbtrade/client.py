"""Python clients for model services: follow continuation tokens, get candles.

``CandleClient`` (sync) and ``AsyncCandleClient`` share one request builder and one page
parser; they differ only in how they send. Transient failures (502, 503, 504, connection
errors) are retried with exponential backoff; any other non-2xx answer raises
:class:`CbTradeClientError` with the service's error code and message, and a service that
stays unreachable raises :class:`CbTradeConnectionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Required, Self, TypedDict, TypeVar, Unpack

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from cbtrade.models import Candle

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_TRANSIENT_STATUS = frozenset({502, 503, 504})
_CANDLE_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
_candle_values = itemgetter(*_CANDLE_FIELDS)

TimeArg = datetime | int
"""A point in time: a timezone-aware datetime, or epoch milliseconds UTC."""


class CandleQuery(TypedDict, total=False):
    """The range options of ``get_candles`` and ``get_dataframe`` (see ``iter_candles``)."""

    start: Required[TimeArg]
    end: TimeArg | None
    timeframe: str
    limit: int | None


class CbTradeClientError(Exception):
    """The service answered with an error; ``status_code`` is None if there was no answer."""

    def __init__(self, status_code: int | None, code: str, message: str) -> None:
        super().__init__(f"{status_code or 'no answer'} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class CbTradeConnectionError(CbTradeClientError):
    """The service could not be reached (connection, timeout) through every retry."""

    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(None, "connection_error", f"{type(cause).__name__}: {cause}")


class _BearerAuth(httpx.Auth):
    """Sends ``Authorization: Bearer``, asking a token provider anew for every request."""

    def __init__(self, credential: str | Callable[[], str]) -> None:
        self._credential = credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._credential() if callable(self._credential) else self._credential
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _epoch_ms(name: str, value: TimeArg | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime or epoch milliseconds, got {value!r}")
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. tzinfo=UTC), got {value!r}")
    return int(value.timestamp() * 1000)


def _ohlcv_params(
    exchange: str,
    symbol: str,
    *,
    start: TimeArg,
    end: TimeArg | None,
    timeframe: str,
    limit: int | None,
) -> dict[str, Any]:
    params = {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "start": _epoch_ms("start", start),
        "end": _epoch_ms("end", end),
        "limit": limit,
    }
    return {key: value for key, value in params.items() if value is not None}


def _checked(response: httpx.Response) -> httpx.Response:
    """The response if it is a 2xx; CbTradeClientError for anything else."""
    if response.is_success:
        return response
    try:
        error = orjson.loads(response.content)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200]
    raise CbTradeClientError(response.status_code, code, message)


OHLCV_PATH = "/api/v1/ohlcv"
_Payload = TypeVar("_Payload")
PageDecoder = Callable[[httpx.Response], _Payload]
"""Decodes one page."""


def _next_link(response: httpx.Response) -> str | None:
    """The next page's link from the ``Link: <...>; rel="next"`` header (None on the last)."""
    link = response.headers.get("link")
    return link.split(">", 1)[0].lstrip("<") if link else None


class _GcPause:
    """Pauses the cyclic garbage collector while any thread is inside; the last thread out
    turns it back on if it was on when the first came in (so a ``gc.disable()`` made by the
    caller meanwhile does not last)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._inside += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._resume:
                gc.enable()


_GC_PAUSE = _GcPause()


def _json_page(response: httpx.Response) -> list[Candle]:
    """The candles of a JSON page, decoded with the cyclic garbage collector paused.

    A page is tens of thousands of new objects that cannot form cycles (dicts and tuples of
    numbers), yet they trigger collections, and the full ones scan every tracked object of
    the caller's process: in the benchmark, pausing took the 5m year from 0.25 s to 0.15 s.
    """
    with _GC_PAUSE:
        body = orjson.loads(response.content)
        return list(map(Candle._make, map(_candle_values, body["candles"])))


def _arrow_page(response: httpx.Response) -> bytes:
    """An Arrow page's bytes."""
    return response.content


def _arrow_table(pages: list[bytes]) -> pa.Table:
    try:
        import pyarrow as pa
    except ImportError:
        raise ImportError("get_table needs pyarrow: pip install pyarrow") from None
    return pa.concat_tables([pa.ipc.open_stream(page).read_all() for page in pages])


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, CbTradeClientError):
        return exc.status_code in _TRANSIENT_STATUS
    return isinstance(exc, httpx.TransportError)


def _to_dataframe(candles: list[Candle]) -> pd.DataFrame:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("get_dataframe needs pandas: pip install pandas") from None
    frame = pd.DataFrame(candles, columns=list(_CANDLE_FIELDS))
    frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
    return frame


class _ClientBase:
    """What both clients share: credentials and the retry policy."""

    def __init__(
        self,
        *,
        api_key: str | None,
        token: str | Callable[[], str] | None,
        retries: int,
        retry_backoff: float,
    ) -> None:
        if api_key is not None and token is not None:
            raise ValueError("pass api_key or token, not both")
        credential = api_key if api_key is not None else token
        self._auth = _BearerAuth(credential) if credential else None
        self._retry_options: dict[str, Any] = {
            "stop": stop_after_attempt(retries + 1),
            "wait": wait_exponential(multiplier=retry_backoff, max=8),
            "retry": retry_if_exception(_is_transient),
            "reraise": True,
        }


class CandleClient(_ClientBase):
    """Synchronous client of the cb-trade data service.

    ``api_key`` (or ``token``: a JWT, or a callable returning a fresh one for each request)
    is sent as ``Authorization: Bearer``. Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | Callable[[], str] | None = None,
        timeout: float = 240.0,
        retries: int = 3,
        retry_backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key=api_key, token=token, retries=retries, retry_backoff=retry_backoff)
        self._http = httpx.Client(
            base_url=base_url, auth=self._auth, timeout=timeout, transport=transport
        )

    def _send(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            for attempt in Retrying(**self._retry_options):
                with attempt:
                    return _checked(self._http.get(path, params=params))
        except httpx.TransportError as exc:
            raise CbTradeConnectionError(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return orjson.loads(self._send(path, params).content)

    def _pages(self, query: dict[str, Any], decode: PageDecoder[_Payload]) -> Iterator[_Payload]:
        """Each page of an ohlcv query, decoded, following the ``Link`` headers to the end.

        The next page is requested as soon as a page arrives, so the service prepares it
        while this one is decoded and used.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cbtrade-next-page") as ahead:
            pending: Future[httpx.Response] | None = ahead.submit(self._send, OHLCV_PATH, query)
            while pending is not None:
                response = pending.result()
                link = _next_link(response)
                pending = None if link is None else ahead.submit(self._send, link)
                yield decode(response)

    def iter_candles(
        self,
        exchange: str,
        symbol: str,
        *,
        start: TimeArg,
        end: TimeArg | None = None,
        timeframe: str = "5m",
        limit: int | None = None,
    ) -> Iterator[Candle]:
        """Every candle of ``[start, end)``, following the pages' next links."""
        query = _ohlcv_params(
            exchange, symbol, start=start, end=end, timeframe=timeframe, limit=limit
        )
        for candles in self._pages(query, _json_page):
            yield from candles

    def get_candles(self, exchange: str, symbol: str, **query: Unpack[CandleQuery]) -> list[Candle]:
        """``iter_candles`` as a list."""
        return list(self.iter_candles(exchange, symbol, **query))

    def get_dataframe(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> pd.DataFrame:
        """The candles as a pandas DataFrame indexed by UTC open time (needs pandas)."""
        return _to_dataframe(self.get_candles(exchange, symbol, **query))

    def get_table(
        self,
        exchange: str,
        symbol: str,
        *,
        start: TimeArg,
        end: TimeArg | None = None,
        timeframe: str = "5m",
        limit: int | None = None,
    ) -> pa.Table:
        """The candles as one pyarrow Table, fetched as Arrow pages (needs pyarrow)."""
        query = _ohlcv_params(
            exchange, symbol, start=start, end=end, timeframe=timeframe, limit=limit
        )
        return _arrow_table(list(self._pages(query | {"format": "arrow"}, _arrow_page)))

    def latest_timestamp(self, exchange: str, symbol: str, *, timeframe: str = "5m") -> int | None:
        """Open time of the newest stored candle, or None."""
        params = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        timestamp: int | None = self._get("/api/v1/ohlcv/latest", params)["timestamp"]
        return timestamp

    def list_exchanges(self) -> list[str]:
        """Exchange ids the service has a plugin for."""
        exchanges: list[str] = self._get("/api/v1/exchanges")["exchanges"]
        return exchanges

    def list_coins(self, exchange: str) -> list[str]:
        """Symbols stored for ``exchange``."""
        coins: list[str] = self._get(f"/api/v1/exchanges/{exchange}/coins")["coins"]
        return coins

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


class AsyncCandleClient(_ClientBase):
    """Asynchronous client of the cb-trade data service; options as in :class:`CandleClient`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | Callable[[], str] | None = None,
        timeout: float = 240.0,
        retries: int = 3,
        retry_backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(api_key=api_key, token=token, retries=retries, retry_backoff=retry_backoff)
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=self._auth, timeout=timeout, transport=transport
        )

    async def _send(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            async for attempt in AsyncRetrying(**self._retry_options):
                with attempt:
                    return _checked(await self._http.get(path, params=params))
        except httpx.TransportError as exc:
            raise CbTradeConnectionError(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return orjson.loads((await self._send(path, params)).content)

    async def _pages(
        self, query: dict[str, Any], decode: PageDecoder[_Payload]
    ) -> AsyncIterator[_Payload]:
        """Each page of an ohlcv query, decoded, following the ``Link`` headers to the end.

        The next page is requested as soon as a page arrives (see ``CandleClient._pages``).
        """
        pending: asyncio.Task[httpx.Response] | None = asyncio.create_task(
            self._send(OHLCV_PATH, query)
        )
        try:
            while pending is not None:
                response = await pending
                link = _next_link(response)
                pending = None if link is None else asyncio.create_task(self._send(link))
                yield decode(response)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, CbTradeClientError):
                    await pending

    async def iter_candles(
        self,
        exchange: str,
        symbol: str,
        *,
        start: TimeArg,
        end: TimeArg | None = None,
        timeframe: str = "5m",
        limit: int | None = None,
    ) -> AsyncIterator[Candle]:
        """Every candle of ``[start, end)``, following the pages' next links."""
        query = _ohlcv_params(
            exchange, symbol, start=start, end=end, timeframe=timeframe, limit=limit
        )
        async for candles in self._pages(query, _json_page):
            for candle in candles:
                yield candle

    async def get_candles(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> list[Candle]:
        """``iter_candles`` as a list."""
        return [candle async for candle in self.iter_candles(exchange, symbol, **query)]

    async def get_dataframe(
        self, exchange: str, symbol: str, **query: Unpack[CandleQuery]
    ) -> pd.DataFrame:
        """The candles as a pandas DataFrame indexed by UTC open time (needs pandas)."""
        return _to_dataframe(await self.get_candles(exchange, symbol, **query))

    async def get_table(
        self,
        exchange: str,
        symbol: str,
        *,
        start: TimeArg,
        end: TimeArg | None = None,
        timeframe: str = "5m",
        limit: int | None = None,
    ) -> pa.Table:
        """The candles as one pyarrow Table, fetched as Arrow pages (needs pyarrow)."""
        query = _ohlcv_params(
            exchange, symbol, start=start, end=end, timeframe=timeframe, limit=limit
        )
        pages = [page async for page in self._pages(query | {"format": "arrow"}, _arrow_page)]
        return _arrow_table(pages)

    async def latest_timestamp(
        self, exchange: str, symbol: str, *, timeframe: str = "5m"
    ) -> int | None:
        """Open time of the newest stored candle, or None."""
        params = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        timestamp: int | None = (await self._get("/api/v1/ohlcv/latest", params))["timestamp"]
        return timestamp

    async def list_exchanges(self) -> list[str]:
        """Exchange ids the service has a plugin for."""
        exchanges: list[str] = (await self._get("/api/v1/exchanges"))["exchanges"]
        return exchanges

    async def list_coins(self, exchange: str) -> list[str]:
        """Symbols stored for ``exchange``."""
        coins: list[str] = (await self._get(f"/api/v1/exchanges/{exchange}/coins"))["coins"]
        return coins

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
