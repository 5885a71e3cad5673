"""Decoding of the service's answers: JSON bodies, JSON pages of candles, Arrow pages, and
the optional packages the columnar results need."""

from __future__ import annotations

import gc
import importlib
import json
import threading
from collections.abc import Callable
from operator import itemgetter
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def _json_loads() -> Callable[[bytes], Any]:
    """orjson's ``loads`` when it is installed (the extra ``[orjson]``: pages decode about
    twice as fast), else the standard library's."""
    try:
        import orjson
    except ModuleNotFoundError:
        return json.loads
    return orjson.loads


loads = _json_loads()


class Candle(NamedTuple):
    """One OHLCV candle; ``timestamp`` is its open time in epoch milliseconds UTC."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


_candle_values = itemgetter(*Candle._fields)


class SeriesInfo(NamedTuple):
    """What the service stores of one series (an entry of ``list_series``)."""

    exchange: str
    symbol: str
    price: str
    """Which price the candles follow: ``trade``, ``mark``, ``index`` or ``premium_index``."""
    timeframe: str
    first: int | None
    """Open time (epoch ms UTC) of the first stored candle; None if the series holds none."""
    last: int | None
    """Open time (epoch ms UTC) of the last stored candle."""
    candles: int
    """Stored candles."""
    not_covered: list[tuple[int, int]]
    """Ranges ``[start, end)`` (epoch ms) between the first and last candle never fetched: a
    read of them fetches them from the exchange."""
    missing_candles: int
    """Fetched slots between the first and last candle without a candle (no trades)."""


def series_infos(entries: list[dict[str, Any]]) -> list[SeriesInfo]:
    """The entries of a catalog answer as SeriesInfo records."""
    return [
        SeriesInfo(
            **{name: entry[name] for name in SeriesInfo._fields if name != "not_covered"},
            not_covered=[(start, end) for start, end in entry["not_covered"]],
        )
        for entry in entries
    ]


_OPTIONAL = {
    "get_table": ("arrow", ("pyarrow",)),
    "get_dataframe": ("pandas", ("pyarrow", "pandas")),
    "progress=True": ("progress", ("tqdm",)),
}
"""What each optional feature imports, and the extra of this package that installs it."""


def require(feature: str) -> list[ModuleType]:
    """The modules ``feature`` needs, imported; or a ModuleNotFoundError naming the extra
    of this package that installs them."""
    extra, modules = _OPTIONAL[feature]
    imported = []
    for module in modules:
        try:
            imported.append(importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise ModuleNotFoundError(
                f"{feature} needs {module}: pip install 'cbtrade-client[{extra}]'", name=module
            ) from None
    return imported


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


GC_PAUSE = _GcPause()


def json_candles(response: httpx.Response) -> list[Candle]:
    """The candles of a JSON page, decoded with the cyclic garbage collector paused.

    A page is tens of thousands of new objects that cannot form cycles (dicts and tuples of
    numbers), yet they trigger collections, and the full ones scan every tracked object of
    the caller's process: in the service's benchmark, pausing took the 5m year from 0.25 s
    to 0.15 s.
    """
    with GC_PAUSE:
        body = loads(response.content)
        return list(map(Candle._make, map(_candle_values, body["candles"])))


def arrow_table(response: httpx.Response) -> pa.Table:
    """The candles of an Arrow page (an Arrow IPC stream) as a pyarrow Table."""
    import pyarrow.ipc

    table: pa.Table = pyarrow.ipc.open_stream(response.content).read_all()
    return table


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """The pages' tables as one."""
    import pyarrow

    table: pa.Table = pyarrow.concat_tables(tables)
    return table


def to_dataframe(table: pa.Table) -> pd.DataFrame:
    """A candle table as a pandas DataFrame indexed by UTC open time."""
    import pandas

    frame: pd.DataFrame = table.to_pandas()
    frame.index = pandas.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
    return frame
