"""CalendarCandleStore on local disk: candles by their own open times, and the catalog entries
of its series (quiet periods counted by the candles' length, stray keys ignored)."""

from __future__ import annotations

from pathlib import Path

from cbtrade.candle_table import CandleTable
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.calendar_store import CalendarCandleStore
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

DAY = 86_400_000
WEEK = 7 * DAY
FRIDAY = 1_704_412_800_000  # 2024-01-05, a listing
MONDAY = 1_704_672_000_000  # 2024-01-08


def candle(timestamp: int) -> Candle:
    return Candle(timestamp, 1.0, 2.0, 0.5, 1.5, 10.0)


async def test_the_catalog_counts_quiet_weeks_and_ignores_a_stray_key(tmp_path: Path) -> None:
    store = CalendarCandleStore(LocalFileStorage(tmp_path))
    # Listed on a Friday, stamped there; then Mondays, one of them quiet (the third).
    opens = [FRIDAY, MONDAY, MONDAY + WEEK, MONDAY + 3 * WEEK, MONDAY + 60 * WEEK]
    folder = store.folder("binance", "BTC/USDT", "1w")
    rows = CandleTable.from_candles([candle(t) for t in opens]).arrow
    fetched = [TimeRange(0, MONDAY + 4 * WEEK), TimeRange(MONDAY + 50 * WEEK, MONDAY + 61 * WEEK)]
    await store.save_rows(folder, rows, covered=fetched)
    mark = store.folder("binance", "BTC/USDT@mark", "1w")
    await store.save_rows(mark, CandleTable.from_candles([candle(MONDAY)]).arrow, covered=[])
    other = store.folder("binance", "BTC/USD", "1M")
    await store.save_rows(other, CandleTable.from_candles([candle(MONDAY)]).arrow, covered=[])
    stray = tmp_path / "calendar/binance/BTC-USDT/1w/0000.arrow"
    stray.write_bytes(b"not an object")
    entries = await store.list_series("binance", "BTC/USDT")
    assert [(e.coin_symbol, e.timeframe) for e in entries] == [
        ("BTC/USDT", "1w"), ("BTC/USDT@mark", "1w")
    ]  # fmt: skip
    week = entries[0]
    assert (week.first, week.last, week.candles) == (FRIDAY, MONDAY + 60 * WEEK, 5)
    assert week.not_covered == [TimeRange(MONDAY + 4 * WEEK, MONDAY + 50 * WEEK)]
    assert week.missing_candles == 1  # the quiet week; not -1 for the short first one
    everything = await store.list_series("binance")
    assert [(e.coin_symbol, e.timeframe) for e in everything] == [
        ("BTC/USD", "1M"), ("BTC/USDT", "1w"), ("BTC/USDT@mark", "1w")
    ]  # fmt: skip
