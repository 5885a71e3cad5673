"""CandleTable: a run of candles held as Arrow columns.

Candles are stored, read, sliced and encoded as columns (pyarrow), not as one Python object
per candle: a year of 5m candles is 105,120 rows, and creating, slicing and encoding that many
tuples was most of a warm read's time. Slices and concatenations share the stored buffers.
:class:`~cbtrade.models.Candle` stays the type of single candles at the edges (exchange
plugins, the Python client, tests); :meth:`CandleTable.to_candles` converts.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cbtrade.models import Candle

ARROW_STREAM_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
CANDLE_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
CANDLE_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.int64(), nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in CANDLE_FIELDS[1:]),
    ]
)


class RowSource(NamedTuple):
    """Rows ``lo`` to ``hi`` of a stored object's whole table, the object named by
    ``identity`` (its key and ETag: the same identity always means the same rows)."""

    identity: Hashable
    table: Any
    """The object's whole ``pyarrow.Table``."""
    lo: int
    hi: int


class CandleTable:
    """Candles ascending by timestamp, one per timestamp, as Arrow columns; immutable.

    Build one with :meth:`from_candles`, :meth:`from_arrow`, :meth:`concat` or :meth:`empty`;
    each checks the schema and the order, so every CandleTable holds the invariant.

    A table read from a stored object may know where its rows came from (:meth:`with_source`,
    :attr:`sources`); slices and concatenations keep that, so an encoder can reuse work done
    once per object (the JSON text of its rows) for every page cut from it.
    """

    __slots__ = ("_sources", "_table", "_timestamp_array")
    _table: Any
    _sources: tuple[RowSource, ...] | None
    _timestamp_array: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use CandleTable.from_candles, from_arrow, concat or empty")

    @classmethod
    def _wrap(cls, table: Any, sources: tuple[RowSource, ...] | None = None) -> CandleTable:
        """A CandleTable over ``table``, which holds the invariant: checked by the caller, or
        sliced, concatenated or merged from tables that hold it. ``sources``, if known, are
        exactly its rows, in order."""
        candles = object.__new__(cls)
        candles._table = table
        candles._sources = sources
        candles._timestamp_array = None
        return candles

    def with_source(self, identity: Hashable) -> CandleTable:
        """This table as the whole of the stored object named ``identity`` (its key and ETag,
        so that one identity always means the same rows)."""
        return CandleTable._wrap(self._table, (RowSource(identity, self._table, 0, len(self)),))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> CandleTable:
        """No candles."""
        return cls._wrap(CANDLE_SCHEMA.empty_table())

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleTable:
        """A table of ``candles`` in any order; of two with one timestamp, the later wins."""
        if not all(a[0] < b[0] for a, b in pairwise(candles)):
            by_timestamp = {candle[0]: candle for candle in candles}
            candles = [by_timestamp[timestamp] for timestamp in sorted(by_timestamp)]
        if not candles:
            return cls.empty()
        columns = list(zip(*candles, strict=True))
        arrays = [
            pa.array(values, type=field.type)
            for values, field in zip(columns, CANDLE_SCHEMA, strict=True)
        ]
        return cls._wrap(pa.Table.from_arrays(arrays, schema=CANDLE_SCHEMA))

    @classmethod
    def from_arrow(cls, table: Any) -> CandleTable:
        """Wrap a pyarrow Table; ValueError unless it has the candle schema and ascends."""
        columns = [(field.name, field.type) for field in table.schema]
        if columns != [(field.name, field.type) for field in CANDLE_SCHEMA]:
            raise ValueError(f"not the candle schema: {columns}")
        if any(column.null_count for column in table.columns):
            raise ValueError("candles must not be null")
        timestamps = table.column("timestamp")
        if (
            len(timestamps) > 1
            and not pc.all(
                pc.less(timestamps.slice(0, len(timestamps) - 1), timestamps.slice(1))
            ).as_py()
        ):
            raise ValueError("timestamps must ascend with no duplicates")
        return cls._wrap(pa.Table.from_arrays(table.columns, schema=CANDLE_SCHEMA))

    @classmethod
    def concat(cls, parts: Iterable[CandleTable]) -> CandleTable:
        """Tables that follow each other in time, as one (buffers are shared, not copied)."""
        tables = [part for part in parts if len(part)]
        if not tables:
            return cls.empty()
        if len(tables) == 1:
            return tables[0]
        for before, after in pairwise(tables):
            if before.last_timestamp() >= after.first_timestamp():  # type: ignore[operator]
                raise ValueError("concatenated tables must follow each other in time")
        sources: tuple[RowSource, ...] | None = ()
        for part in tables:
            sources = None if sources is None or part._sources is None else sources + part._sources
        return cls._wrap(pa.concat_tables([part.arrow for part in tables]), sources)

    # -- reading -----------------------------------------------------------------------------

    @property
    def arrow(self) -> Any:
        """The candles as a ``pyarrow.Table`` with :data:`CANDLE_SCHEMA`."""
        return self._table

    @property
    def sources(self) -> tuple[RowSource, ...] | None:
        """The stored objects' rows this table holds, in order, if it was cut from tables
        made by :meth:`with_source` alone; else None."""
        return self._sources

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns."""
        return int(self._table.nbytes)

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __repr__(self) -> str:
        return (
            f"CandleTable({len(self)} candles, {self.first_timestamp()}..{self.last_timestamp()})"
        )

    def first_timestamp(self) -> int | None:
        """Open time of the oldest candle, or None if empty."""
        return self._timestamp_at(0) if len(self) else None

    def last_timestamp(self) -> int | None:
        """Open time of the newest candle, or None if empty."""
        return self._timestamp_at(len(self) - 1) if len(self) else None

    def between(self, start: int, end: int) -> CandleTable:
        """The candles with ``start <= timestamp < end`` (a slice sharing this table's buffers)."""
        timestamps = self._timestamps()
        lo, hi = np.searchsorted(timestamps, [start, end], side="left")
        if lo == 0 and hi == len(self):
            return self
        sources = None if self._sources is None else _slice_sources(self._sources, lo, hi)
        return CandleTable._wrap(self._table.slice(int(lo), int(hi - lo)), sources)

    def merge(self, newer: CandleTable) -> CandleTable:
        """This table and ``newer`` together; of two candles with one timestamp, newer's wins."""
        if not len(newer):
            return self
        last = self.last_timestamp()
        if last is None or last < newer.first_timestamp():  # type: ignore[operator]
            return CandleTable.concat([self, newer])
        kept = self._table.filter(
            pc.invert(
                pc.is_in(self._table.column("timestamp"), value_set=newer.arrow.column("timestamp"))
            )
        )
        merged = pa.concat_tables([kept, newer.arrow]).sort_by("timestamp")
        return CandleTable._wrap(merged)

    def to_candles(self) -> list[Candle]:
        """The candles as :class:`~cbtrade.models.Candle` tuples, ascending."""
        columns = [column.to_numpy().tolist() for column in self._table.columns]
        return list(map(Candle._make, zip(*columns, strict=True)))

    def _timestamps(self) -> Any:
        """The timestamp column as a numpy array (no copy when the table is one chunk),
        made once: a cached object's table is sliced by every request that reads it."""
        if self._timestamp_array is None:
            self._timestamp_array = self._table.column("timestamp").to_numpy()
        return self._timestamp_array

    def _timestamp_at(self, index: int) -> int:
        return int(self._table.column("timestamp")[index].as_py())


def _slice_sources(sources: tuple[RowSource, ...], lo: int, hi: int) -> tuple[RowSource, ...]:
    """The sources of rows ``lo`` to ``hi`` of a table whose rows are ``sources``."""
    sliced = []
    offset = 0
    for source in sources:
        count = source.hi - source.lo
        first, last = max(int(lo) - offset, 0), min(int(hi) - offset, count)
        if first < last:
            sliced.append(source._replace(lo=source.lo + first, hi=source.lo + last))
        offset += count
    return tuple(sliced)
