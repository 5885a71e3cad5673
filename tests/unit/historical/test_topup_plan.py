"""TopUpRunner.plan and tick: the watchlist as work items, or topped up in-process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import pytest

from cbtrade.config import WatchedSeries
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.topup import TopUpRunner
from cbtrade.work.items import TopUpItem, WorkItem
from cbtrade.work.queue import WorkQueueClient

NOW = 1_704_067_200_000
MAX_BACKFILL_MS = 7 * 86_400_000


class FakeFetcher:
    """Answers fetch_data with three candles and records what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, int, int]] = []

    def now(self) -> int:
        return NOW

    async def fetch_data(
        self, exchange: str, symbol: str, timeframe: str, start: int, end: int
    ) -> list[int]:
        self.calls.append((exchange, symbol, timeframe, start, end))
        return [start, start + 1, start + 2]


class FakeQueue:
    """A work queue holding ``waiting`` messages; records what is sent to it."""

    def __init__(self, waiting: int = 0) -> None:
        self.waiting = waiting
        self.sent: list[list[WorkItem]] = []

    async def approximate_count(self) -> int:
        return self.waiting

    async def send(self, items: Sequence[WorkItem]) -> None:
        self.sent.append(list(items))
        self.waiting += len(items)

    def as_client(self) -> WorkQueueClient:
        return cast(WorkQueueClient, self)


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.__dict__.get("event") == event]


def runner(
    watchlist: list[WatchedSeries], *, series_per_item: int = 10, fetcher: FakeFetcher | None = None
) -> TopUpRunner:
    return TopUpRunner(
        cast(HistoricalFetcher, fetcher or FakeFetcher()),
        watchlist,
        max_backfill_ms=MAX_BACKFILL_MS,
        series_per_item=series_per_item,
    )


def watched(exchange: str, count: int, timeframe: str = "5m") -> list[WatchedSeries]:
    return [WatchedSeries(exchange, f"C{n}/USD", timeframe) for n in range(count)]


def covered(items: list[TopUpItem]) -> list[WatchedSeries]:
    return [WatchedSeries(item.exchange, s, tf) for item in items for s, tf in item.series]


def test_an_empty_watchlist_plans_nothing() -> None:
    assert runner([]).plan() == []


def test_one_exchange_below_the_limit_is_one_item() -> None:
    watchlist = watched("coinbase", 3)
    assert runner(watchlist, series_per_item=10).plan() == [
        TopUpItem(exchange="coinbase", series=[(s.symbol, s.timeframe) for s in watchlist])
    ]


@pytest.mark.parametrize(
    ("count", "per_item", "sizes"),
    [
        (10, 10, [10]),
        (11, 10, [10, 1]),
        (25, 10, [10, 10, 5]),
        (7, 1, [1] * 7),
        (6, 3, [3, 3]),
    ],
)
def test_series_are_split_by_series_per_item(count: int, per_item: int, sizes: list[int]) -> None:
    watchlist = watched("kraken", count)
    items = runner(watchlist, series_per_item=per_item).plan()
    assert [len(item.series) for item in items] == sizes
    assert covered(items) == watchlist


def test_items_are_per_exchange_in_watchlist_order() -> None:
    watchlist = [
        WatchedSeries("coinbase", "BTC/USD", "5m"),
        WatchedSeries("kraken", "BTC/USD", "5m"),
        WatchedSeries("coinbase", "ETH/USD", "1h"),
        WatchedSeries("binance", "BTC/USDT", "1m"),
        WatchedSeries("kraken", "ETH/USD", "1d"),
        WatchedSeries("coinbase", "SOL/USD", "5m"),
        WatchedSeries("coinbase", "BTC/USD", "1h"),
    ]
    items = runner(watchlist, series_per_item=2).plan()
    assert items == [
        TopUpItem(exchange="coinbase", series=[("BTC/USD", "5m"), ("ETH/USD", "1h")]),
        TopUpItem(exchange="coinbase", series=[("SOL/USD", "5m"), ("BTC/USD", "1h")]),
        TopUpItem(exchange="kraken", series=[("BTC/USD", "5m"), ("ETH/USD", "1d")]),
        TopUpItem(exchange="binance", series=[("BTC/USDT", "1m")]),
    ]


def test_every_watched_series_is_in_exactly_one_item() -> None:
    watchlist = watched("coinbase", 23) + watched("kraken", 5, "1h") + watched("binance", 12, "1d")
    watchlist = watchlist[::3] + watchlist[1::3] + watchlist[2::3]  # exchanges interleaved
    items = runner(watchlist, series_per_item=4).plan()
    assert all(1 <= len(item.series) <= 4 for item in items)
    assert all(len({item.exchange}) == 1 for item in items)
    plan = covered(items)
    assert sorted(plan) == sorted(watchlist)
    assert len(set(plan)) == len(plan)
    for exchange in ("coinbase", "kraken", "binance"):  # order kept within each exchange
        assert [s for s in plan if s.exchange == exchange] == [
            s for s in watchlist if s.exchange == exchange
        ]
    per_exchange = {e: sum(s.exchange == e for s in watchlist) for e in ("coinbase", "kraken")}
    assert sum(item.exchange == "coinbase" for item in items) == -(-per_exchange["coinbase"] // 4)
    assert sum(item.exchange == "kraken" for item in items) == -(-per_exchange["kraken"] // 4)


async def test_tick_without_a_queue_tops_up_in_process() -> None:
    fetcher = FakeFetcher()
    watchlist = [
        WatchedSeries("coinbase", "BTC/USD", "5m"),
        WatchedSeries("kraken", "ETH/USD", "1h"),
        WatchedSeries("coinbase", "ETH/USD", "1d"),
    ]
    await runner(watchlist, series_per_item=1, fetcher=fetcher).tick(None)
    assert sorted(fetcher.calls) == sorted(
        (s.exchange, s.symbol, s.timeframe, NOW - MAX_BACKFILL_MS, NOW) for s in watchlist
    )


async def test_run_item_tops_up_the_items_series() -> None:
    fetcher = FakeFetcher()
    item = TopUpItem(exchange="kraken", series=[("BTC/USD", "5m"), ("ETH/USD", "1h")])
    results = await runner([], fetcher=fetcher).run_item(item)
    assert [r.series for r in results] == [
        WatchedSeries("kraken", "BTC/USD", "5m"),
        WatchedSeries("kraken", "ETH/USD", "1h"),
    ]
    assert all(r.error is None and r.candles == 3 for r in results)
    assert len(fetcher.calls) == 2


@pytest.mark.parametrize("waiting", [0, 1, 3])
async def test_tick_sends_the_plan_when_fewer_items_are_waiting(
    waiting: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cbtrade.historical.topup")
    fetcher = FakeFetcher()
    top_up = runner(
        watched("coinbase", 7) + watched("kraken", 2), series_per_item=2, fetcher=fetcher
    )
    plan = top_up.plan()
    assert len(plan) == 5
    queue = FakeQueue(waiting)
    await top_up.tick(queue.as_client())
    assert queue.sent == [plan]
    assert fetcher.calls == []  # queued, not run here
    assert events(caplog, "topup.skipped") == []
    [planned] = events(caplog, "topup.planned")
    assert planned.__dict__["work_items"] == 5


async def test_tick_sends_when_one_fewer_than_the_plan_is_waiting() -> None:
    top_up = runner(watched("coinbase", 30), series_per_item=10)
    queue = FakeQueue(len(top_up.plan()) - 1)
    await top_up.tick(queue.as_client())
    assert queue.sent == [top_up.plan()]


@pytest.mark.parametrize("extra", [0, 1, 100])
async def test_tick_skips_when_as_many_items_are_waiting(
    extra: int, caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = FakeFetcher()
    top_up = runner(watched("coinbase", 25), series_per_item=10, fetcher=fetcher)
    items = len(top_up.plan())
    assert items == 3
    queue = FakeQueue(items + extra)
    await top_up.tick(queue.as_client())
    assert queue.sent == []
    assert fetcher.calls == []
    [skipped] = events(caplog, "topup.skipped")
    assert skipped.levelno == logging.WARNING
    assert skipped.__dict__["waiting_items"] == items + extra
    assert skipped.__dict__["work_items"] == items


async def test_the_tick_after_a_send_skips_until_the_items_have_run() -> None:
    top_up = runner(watched("kraken", 4), series_per_item=2)
    queue = FakeQueue()
    await top_up.tick(queue.as_client())
    await top_up.tick(queue.as_client())  # the first tick's two items still wait
    assert queue.sent == [top_up.plan()]
    queue.waiting = 0  # they ran
    await top_up.tick(queue.as_client())
    assert queue.sent == [top_up.plan(), top_up.plan()]


async def test_tick_with_an_empty_watchlist_queues_no_item() -> None:
    queue = FakeQueue(waiting=5)
    await runner([]).tick(queue.as_client())
    assert [item for sent in queue.sent for item in sent] == []
