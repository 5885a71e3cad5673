"""FundingStore: contracts' funding-rate histories, stored by event time.

Funding events are not on a grid (a contract's interval differs by exchange and changes over
time), so they are stored by their own timestamps (:mod:`~cbtrade.storage.timed_store`), one
object per contract and calendar year: ``funding/{exchange}/{encoded_symbol}/{yyyy}.arrow``
(see :mod:`~cbtrade.storage.path_utility`), of the columns ``timestamp`` (int64, epoch ms
UTC) and ``rate`` (float64).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pyarrow as pa

from cbtrade.models import FundingRate, TimeRange
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.storage.path_utility import StoragePathUtility
from cbtrade.storage.timed_store import DEFAULT_CACHED_OBJECTS, TimedRowStore

FUNDING_FIELDS = ("timestamp", "rate")
FUNDING_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("rate", pa.float64(), nullable=False),
    ]
)
FUNDING_FORMAT = b"funding-1"


class FundingSlice(NamedTuple):
    """What is stored of one contract's funding within a requested range."""

    events: pa.Table
    """Events in the range, ascending, one per timestamp (columns ``timestamp``, ``rate``)."""
    covered: list[TimeRange]
    """Fetched ranges clipped to the requested range, merged and ascending."""


def funding_table(events: Iterable[FundingRate]) -> pa.Table:
    """``events`` as columns, ascending, the last of each timestamp kept."""
    by_time = {event.timestamp: event.rate for event in events}
    stamps = sorted(by_time)
    return pa.table(
        [pa.array(stamps, pa.int64()), pa.array([by_time[t] for t in stamps], pa.float64())],
        schema=FUNDING_SCHEMA,
    )


class FundingStore(TimedRowStore):
    """Reads and writes funding-rate histories, one object per contract and year."""

    def __init__(
        self, backend: ObjectRawDataStorage, *, cached_objects: int = DEFAULT_CACHED_OBJECTS
    ) -> None:
        super().__init__(
            backend,
            schema=FUNDING_SCHEMA,
            object_format=FUNDING_FORMAT,
            cached_objects=cached_objects,
        )
        self._folders = StoragePathUtility()

    def folder(self, exchange_name: str, coin_symbol: str) -> str:
        """The key prefix of a contract's funding objects."""
        return self._folders.get_funding_prefix(exchange_name, coin_symbol)

    async def read(
        self, exchange_name: str, coin_symbol: str, start: int, end: int
    ) -> FundingSlice:
        """Stored events and coverage of ``[start, end)``."""
        stored = await self.read_rows(self.folder(exchange_name, coin_symbol), start, end)
        return FundingSlice(stored.rows, stored.covered)

    async def save(
        self,
        exchange_name: str,
        coin_symbol: str,
        events: Sequence[FundingRate],
        *,
        covered: Sequence[TimeRange],
    ) -> None:
        """Store ``events`` and mark ``covered`` as fetched (events outside it are stored
        too)."""
        await self.save_rows(
            self.folder(exchange_name, coin_symbol), funding_table(events), covered=covered
        )
