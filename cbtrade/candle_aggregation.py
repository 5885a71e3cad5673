"""OHLCV aggregation of base candles into the buckets of a longer timeframe."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cbtrade.candle_table import CANDLE_SCHEMA, CandleTable
from cbtrade.derived_timeframes import Buckets


def aggregate(candles: CandleTable, buckets: Buckets) -> CandleTable:
    """One candle per bucket that holds any of ``candles``, opening at the bucket's start:
    the open of its first candle, the highest high, the lowest low, the close of its last
    candle and the summed volume. A bucket with no candle (a quiet stretch) has none; one
    with some missing is made of those present. The caller passes only whole buckets."""
    if not len(candles):
        return CandleTable.empty()
    columns = {name: candles.arrow.column(name).to_numpy() for name in CANDLE_SCHEMA.names}
    timestamps = columns["timestamp"]
    starts = buckets.starts(buckets.floor(int(timestamps[0])), int(timestamps[-1]) + 1)
    bucket_of = np.searchsorted(starts, timestamps, side="right") - 1
    first = np.flatnonzero(np.r_[True, bucket_of[1:] != bucket_of[:-1]])
    last = np.r_[first[1:], len(timestamps)] - 1
    arrays = [
        starts[bucket_of[first]],
        columns["open"][first],
        np.maximum.reduceat(columns["high"], first),
        np.minimum.reduceat(columns["low"], first),
        columns["close"][last],
        np.add.reduceat(columns["volume"], first),
    ]
    return CandleTable.from_arrow(
        pa.Table.from_arrays(
            [
                pa.array(array, type=field.type)
                for array, field in zip(arrays, CANDLE_SCHEMA, strict=True)
            ],
            schema=CANDLE_SCHEMA,
        )
    )
