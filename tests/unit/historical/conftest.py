"""Fixtures for the history layer's unit tests: a fake exchange connector with a known truth,
a fixed clock, and the real local-disk storage on a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cbtrade.config import load_settings
from cbtrade.exchange_source.interfaces import IExchangeAPIClient
from cbtrade.exchange_source.microkernel import DataSourceConnectorImpl
from cbtrade.historical.current_fetcher import CurrentDataFetcher
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.manager import HistoricalDataManagerImpl
from cbtrade.historical.tokens import ContinuationTokenCodec
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import IStorageManager
from cbtrade.storage.manager import create_storage_manager
from cbtrade.timeframes import timeframe_to_ms

FIVE_MINUTES = 300_000
DAY = 86_400_000
LISTED_AT = 1_704_067_200_000  # 2024-01-01T00:00:00Z
NOW = LISTED_AT + 60 * DAY + 150_000  # mid-candle, so a forming candle exists
CODEC = ContinuationTokenCodec(b"unit-test-token-secret-0123456789")


def has_trades(timestamp: int, timeframe_ms: int) -> bool:
    """The fake market is quiet in every 97th interval after its listing."""
    return timestamp >= LISTED_AT and (timestamp // timeframe_ms) % 97 != 0


def fake_candle(timestamp: int) -> Candle:
    base = (timestamp // FIVE_MINUTES) % 1_000
    return Candle(timestamp, 100.0 + base, 101.0 + base, 99.0 + base, 100.5 + base, 1.0 + base)


def truth(start: int, end: int, *, timeframe: str = "5m", now: int = NOW) -> list[Candle]:
    """The closed candles the fake exchange has in [start, end)."""
    step = timeframe_to_ms(timeframe)
    first = -(-start // step) * step
    return [
        fake_candle(ts)
        for ts in range(first, end, step)
        if has_trades(ts, step) and ts + step <= now
    ]


class FakeExchangeClient(IExchangeAPIClient):
    """An exchange that answers from ``truth`` and counts what it was asked."""

    def __init__(self, *, max_per_call: int = 300, listed: frozenset[str] = frozenset()) -> None:
        self.max_per_call = max_per_call
        self.listed = listed or frozenset({"BTC/USD", "ETH/USD"})
        self.fetches: list[tuple[str, str, int, int]] = []
        self.calls = 0
        self.availability_checks = 0
        self.failure: Exception | None = None
        self.quiet_after: int | None = None

    def get_exchange_name(self) -> str:
        return "fake"

    def get_max_candles_per_call(self, timeframe: str) -> int:
        return self.max_per_call

    async def check_coin_availability(self, symbol: str) -> bool:
        self.availability_checks += 1
        return symbol in self.listed

    async def fetch_historical_data(
        self,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        expect_candles: TimeRange | None = None,
    ) -> list[Candle]:
        self.fetches.append((symbol, timeframe, start, end))
        self.calls += -(-(end - start) // (timeframe_to_ms(timeframe) * self.max_per_call))
        if self.failure is not None:
            raise self.failure
        candles = truth(start, end, timeframe=timeframe)
        if self.quiet_after is not None:
            candles = [c for c in candles if c.timestamp < self.quiet_after]
        return candles

    async def close(self) -> None:
        return None


def fake_connector(client: FakeExchangeClient) -> DataSourceConnectorImpl:
    """The real connector, with ``fake`` as its only exchange."""
    return DataSourceConnectorImpl(load_settings(), factories={"fake": lambda settings: client})


@pytest.fixture
def exchange() -> FakeExchangeClient:
    return FakeExchangeClient()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[IStorageManager]:
    manager = create_storage_manager(load_settings(local_storage_root=tmp_path / "data"))
    yield manager
    await manager.close()


@pytest.fixture
def fetcher(storage: IStorageManager, exchange: FakeExchangeClient) -> HistoricalFetcher:
    return HistoricalFetcher(
        storage, fake_connector(exchange), empty_fetch_grace_ms=3_600_000, clock=lambda: NOW
    )


async def fetch_candles(
    fetcher: HistoricalFetcher, exchange: str, symbol: str, timeframe: str, start: int, end: int
) -> list[Candle]:
    """What ``fetcher.fetch_data`` returns, as a list of candles."""
    return (await fetcher.fetch_data(exchange, symbol, timeframe, start, end)).to_candles()


def page_manager(
    storage: IStorageManager,
    exchange: FakeExchangeClient,
    fetcher: HistoricalFetcher,
    **options: float,
) -> HistoricalDataManagerImpl:
    """The real page manager over ``fetcher``, with ``fake`` as its only exchange; its
    tokens are CODEC's. ``options``: its limits and page time budget."""
    return HistoricalDataManagerImpl(
        fetcher,
        CurrentDataFetcher(storage),
        fake_connector(exchange),
        CODEC,
        **options,  # type: ignore[arg-type]
    )
