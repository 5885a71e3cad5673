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
from cbtrade.storage.catalog import catalog_order, summarize_calendar_series
from cbtrade.storage.interfaces import SeriesSummary
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.storage.path_utility import RawDataObject, StoragePathUtility
from cbtrade.storage.timed_store import TimedRowStore

logger = logging.getLogger(__name__)

CALENDAR_FORMAT = b"calendar-1"
CACHED_CALENDAR_OBJECTS = 2_048
"""Decoded objects kept: a year of weekly candles is 53 rows, 3 kB of columns, so a catalog
of a few hundred series stays cached in a few MB."""


class CalendarCandleStore(TimedRowStore):
    """Reads and writes calendar candle series, one object per series and year."""

    def __init__(
        self, backend: ObjectRawDataStorage, *, cached_objects: int = CACHED_CALENDAR_OBJECTS
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
        its price types): one listing, then the series' objects, all at once, decoded once
        per ETag (where the listing shows ETags, a cached object costs no request)."""
        listed = await self.list_objects(
            self._folders.get_calendar_base(exchange_name, coin_symbol)
        )
        objects: dict[tuple[str, str], list[RawDataObject]] = {}
        for key in sorted(listed):
            try:
                parsed = self._folders.parse_calendar_key(key)
            except InvalidPathComponentError:
                logger.warning("ignoring unexpected object %s among calendar candles", key)
                continue
            market, _price = split_series_symbol(parsed.coin_symbol)
            if coin_symbol not in (None, market, parsed.coin_symbol):
                continue  # BTC/USDT's folder shares a prefix with BTC/USD's
            series = (parsed.coin_symbol, parsed.timeframe)
            objects.setdefault(series, []).append(RawDataObject(key, parsed.period))

        async def summary(symbol: str, timeframe: str) -> SeriesSummary:
            span = calendar_span(timeframe)
            assert span is not None, "parse_calendar_key admits calendar timeframes only"
            years = objects[symbol, timeframe]
            # Years recorded empty lie before the first candle: the entry does not need them.
            window = TimeRange(years[0].period.start, years[-1].period.end)
            stored = await self.read_listed(years, listed, window)
            return summarize_calendar_series(
                exchange_name,
                symbol,
                timeframe,
                span,
                CandleTable.from_arrow(stored.rows),
                stored.covered,
            )

        summaries = await self.gather_bounded(summary(*series) for series in objects)
        return sorted(summaries, key=catalog_order)
