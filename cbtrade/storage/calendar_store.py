"""CalendarCandleStore: an exchange's own calendar candles (weekly, monthly, ``3d``), stored
by the open times the exchange gives them.

The exchanges align these each their own way (:mod:`~cbtrade.calendar_timeframes`), so they
are not stored on a grid but by their own timestamps (:mod:`~cbtrade.storage.timed_store`),
one object per series and calendar year:
``calendar/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}.arrow`` (see
:mod:`~cbtrade.storage.path_utility`), of the candle columns.
"""

from __future__ import annotations

from cbtrade.candle_table import CANDLE_SCHEMA
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.storage.path_utility import StoragePathUtility
from cbtrade.storage.timed_store import DEFAULT_CACHED_OBJECTS, TimedRowStore

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
