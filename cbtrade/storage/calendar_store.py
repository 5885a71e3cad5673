"""CalendarCandleStore: an exchange's own calendar candles (weekly, monthly, ``3d``), stored
by the open times the exchange gives them.

The exchanges align these each their own way (:mod:`~cbtrade.calendar_timeframes`), so they
are not stored on a grid but by their own timestamps (:mod:`~cbtrade.storage.timed_store`),
one object per series and calendar year:
``calendar/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}.arrow`` (see
:mod:`~cbtrade.storage.path_utility`), of the candle columns.
"""

from __future__ import annotations

import logging

from cbtrade.calendar_timeframes import calendar_span
from cbtrade.candle_table import CANDLE_SCHEMA, CandleTable
from cbtrade.errors import InvalidPathComponentError
from cbtrade.models import TimeRange
from cbtrade.price_types import split_series_symbol
from cbtrade.storage.catalog import summarize_calendar_series
from cbtrade.storage.interfaces import SeriesSummary
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.storage.path_utility import StoragePathUtility
from cbtrade.storage.timed_store import DEFAULT_CACHED_OBJECTS, TimedRowStore

logger = logging.getLogger(__name__)

CALENDAR_FORMAT = b"calendar-1"


class CalendarCandleStore(TimedRowStore):
    """Reads and writes calendar candle series, one object per series and year."""

    def __init__(
        self, backend: ObjectRawDataStorage, *, cached_objects: int = DEFAULT_CACHED_OBJECTS
    ) -> None:
        super().__init__(
            backend,
            schema=CANDLE_SCHEMA,
            object_format=CALENDAR_FORMAT,
            cached_objects=cached_objects,
        )
        self._folders = StoragePathUtility()

    def folder(self, exchange_name: str, coin_symbol: str, timeframe: str) -> str:
        """The key prefix of one series' objects."""
        return self._folders.get_calendar_prefix(exchange_name, coin_symbol, timeframe)

    async def list_series(
        self, exchange_name: str, coin_symbol: str | None = None
    ) -> list[SeriesSummary]:
        """The catalog entries of an exchange's calendar candle series (or one symbol's, all
        its price types): one listing, then each series' objects (a few per series, read
        only when changed, as every read)."""
        listed = await self.list_keys(self._folders.get_calendar_base(exchange_name, coin_symbol))
        spans: dict[tuple[str, str], TimeRange] = {}
        for key in listed:
            try:
                parsed = self._folders.parse_calendar_key(key)
            except InvalidPathComponentError:
                logger.warning("ignoring unexpected object %s among calendar candles", key)
                continue
            market, _price = split_series_symbol(parsed.coin_symbol)
            if coin_symbol not in (None, market, parsed.coin_symbol):
                continue  # BTC/USDT's folder shares a prefix with BTC/USD's
            series = (parsed.coin_symbol, parsed.timeframe)
            known = spans.get(series, parsed.period)
            spans[series] = TimeRange(
                min(known.start, parsed.period.start), max(known.end, parsed.period.end)
            )
        summaries = []
        for (symbol, timeframe), years in spans.items():
            span = calendar_span(timeframe)
            assert span is not None, "parse_calendar_key admits calendar timeframes only"
            stored = await self.read_rows(self.folder(exchange_name, symbol, timeframe), *years)
            summaries.append(
                summarize_calendar_series(
                    exchange_name,
                    symbol,
                    timeframe,
                    span,
                    CandleTable.from_arrow(stored.rows),
                    stored.covered,
                )
            )
        return summaries
