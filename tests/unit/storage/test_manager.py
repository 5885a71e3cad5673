"""StorageManagerImpl: validation, normalisation and delegation; backend selection by settings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest

from cbtrade.config import load_settings
from cbtrade.errors import (
    InvalidCandleError,
    InvalidInputError,
    InvalidPathComponentError,
    InvalidTimeframeError,
)
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from cbtrade.storage.interfaces import IRawDataStorage, SeriesBounds, SeriesSlice
from cbtrade.storage.manager import (
    StorageManagerImpl,
    create_raw_data_storage,
    create_storage_manager,
)
from cbtrade.storage.path_utility import MAX_TIMESTAMP

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
STEP = 300_000  # 5m


def candle(i: int, price: float = 1.0) -> Candle:
    return Candle(T0 + i * STEP, price, price, price, price, 10.0)


@pytest.fixture
def backend() -> AsyncMock:
    return AsyncMock(spec=IRawDataStorage)


@pytest.fixture
def manager(backend: AsyncMock) -> StorageManagerImpl:
    return StorageManagerImpl(backend)


async def test_save_bulk_sorts_deduplicates_and_normalises(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    given: list[Any] = [candle(2), candle(0), (T0 + STEP, 1, 2, 0, 1, 5), candle(2, price=7.0)]
    covered: list[Any] = [(T0, T0 + 3 * STEP)]
    await manager.save_bulk_entries("cryptocom", "BTC/USD", "5m", given, covered=covered)
    backend.save_bulk_entries.assert_awaited_once()
    args, kwargs = backend.save_bulk_entries.await_args
    assert args[:3] == ("cryptocom", "BTC/USD", "5m")
    assert args[3] == [candle(0), Candle(T0 + STEP, 1.0, 2.0, 0.0, 1.0, 5.0), candle(2, 7.0)]
    assert all(type(c) is Candle and type(c.open) is float for c in args[3])
    assert kwargs == {"covered": [TimeRange(T0, T0 + 3 * STEP)]}


async def test_save_entry_goes_through_the_same_validation(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    await manager.save_entry("cryptocom", "BTC/USD", "5m", candle(1))
    backend.save_bulk_entries.assert_awaited_once_with(
        "cryptocom", "BTC/USD", "5m", [candle(1)], covered=[]
    )
    with pytest.raises(InvalidCandleError):
        await manager.save_entry("cryptocom", "BTC/USD", "5m", candle(1)._replace(timestamp=T0 + 1))


@pytest.mark.parametrize(
    "bad",
    [
        (True, 1.0, 1.0, 1.0, 1.0, 1.0),
        (float(T0), 1.0, 1.0, 1.0, 1.0, 1.0),
        (-STEP, 1.0, 1.0, 1.0, 1.0, 1.0),
        (T0 + 1, 1.0, 1.0, 1.0, 1.0, 1.0),
        (str(T0), 1.0, 1.0, 1.0, 1.0, 1.0),
        (T0, math.nan, 1.0, 1.0, 1.0, 1.0),
        (T0, 1.0, math.inf, 1.0, 1.0, 1.0),
        (T0, 1.0, 1.0, -math.inf, 1.0, 1.0),
        (T0, 1.0, 1.0, 1.0, True, 1.0),
        (T0, 1.0, 1.0, 1.0, 1.0, "1"),
        (T0, 1.0, 1.0, 1.0, 1.0, None),
        (T0, 1.0, 1.0, 1.0, 1.0),
        (T0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        {"timestamp": T0},
    ],
)
async def test_invalid_candles_are_rejected_before_the_backend(
    manager: StorageManagerImpl, backend: AsyncMock, bad: Any
) -> None:
    with pytest.raises(InvalidCandleError):
        await manager.save_bulk_entries("cryptocom", "BTC/USD", "5m", [candle(0), bad])
    backend.save_bulk_entries.assert_not_awaited()


@pytest.mark.parametrize(
    "bad",
    [
        (T0, T0),
        (T0 + STEP, T0),
        (T0 + 1, T0 + STEP),
        (T0, T0 + STEP + 1),
        (-STEP, 0),
        (True, T0),
        (float(T0), T0 + STEP),
        (T0,),
        "ab",
    ],
)
async def test_invalid_covered_ranges_are_rejected(
    manager: StorageManagerImpl, backend: AsyncMock, bad: Any
) -> None:
    with pytest.raises(InvalidInputError, match="covered range"):
        await manager.save_bulk_entries("cryptocom", "BTC/USD", "5m", [], covered=[bad])
    backend.save_bulk_entries.assert_not_awaited()


@pytest.mark.parametrize(
    ("exchange", "symbol", "timeframe", "error"),
    [
        ("Crypto.com", "BTC/USD", "5m", InvalidPathComponentError),
        ("cryptocom", "../etc", "5m", InvalidPathComponentError),
        ("cryptocom", "", "5m", InvalidPathComponentError),
        ("cryptocom", "BTC/USD", "7m", InvalidTimeframeError),
    ],
)
async def test_bad_series_names_never_reach_the_backend(
    manager: StorageManagerImpl,
    backend: AsyncMock,
    exchange: str,
    symbol: str,
    timeframe: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await manager.save_bulk_entries(exchange, symbol, timeframe, [candle(0)])
    with pytest.raises(error):
        await manager.get_range(exchange, symbol, timeframe, T0, T0 + STEP)
    with pytest.raises(error):
        await manager.get_range_with_coverage(exchange, symbol, timeframe, T0, T0 + STEP)
    with pytest.raises(error):
        await manager.get_latest_timestamp(exchange, symbol, timeframe)
    with pytest.raises(error):
        await manager.check_coin_exists(exchange, symbol, timeframe)
    with pytest.raises(error):
        await manager.replace_range(exchange, symbol, timeframe, T0, T0 + STEP, [], covered=[])
    with pytest.raises(error):
        await manager.get_series_bounds(exchange, symbol, timeframe)
    with pytest.raises(error):
        await manager.save_series_bounds(exchange, symbol, timeframe, SeriesBounds(T0))
    assert backend.method_calls == []


async def test_list_coins_rejects_a_bad_exchange(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    with pytest.raises(InvalidPathComponentError):
        await manager.list_coins("../x")
    backend.list_coins.assert_not_awaited()


@pytest.mark.parametrize(("exchange", "symbol"), [("../x", None), ("cryptocom", "../x")])
async def test_list_series_rejects_bad_names(
    manager: StorageManagerImpl, backend: AsyncMock, exchange: str, symbol: str | None
) -> None:
    with pytest.raises(InvalidPathComponentError):
        await manager.list_series(exchange, symbol)
    backend.list_series.assert_not_awaited()


@pytest.mark.parametrize(("start", "end"), [(float(T0), T0), (T0, None), (False, T0)])
async def test_range_bounds_must_be_integers(
    manager: StorageManagerImpl, start: Any, end: Any
) -> None:
    with pytest.raises(InvalidInputError, match="integer"):
        await manager.get_range("cryptocom", "BTC/USD", "5m", start, end)


async def test_reads_and_queries_are_delegated(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    backend.get_range.return_value = [candle(0)]
    backend.get_range_with_coverage.return_value = SeriesSlice([candle(0)], [TimeRange(T0, T0 + 1)])
    backend.get_latest_timestamp.return_value = T0
    backend.list_coins.return_value = ["BTC/USD"]
    backend.check_coin_exists.return_value = True

    assert await manager.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + STEP) == [candle(0)]
    backend.get_range.assert_awaited_once_with("cryptocom", "BTC/USD", "5m", T0, T0 + STEP)
    sliced = await manager.get_range_with_coverage("cryptocom", "BTC/USD", "5m", T0, T0 + STEP)
    assert sliced == backend.get_range_with_coverage.return_value
    assert await manager.get_latest_timestamp("cryptocom", "BTC/USD", "5m") == T0
    backend.get_latest_timestamp.assert_awaited_once_with("cryptocom", "BTC/USD", "5m")
    assert await manager.list_coins("cryptocom") == ["BTC/USD"]
    backend.list_series.return_value = []
    assert await manager.list_series("cryptocom", "BTC/USD") == []
    backend.list_series.assert_awaited_once_with("cryptocom", "BTC/USD")
    assert await manager.check_coin_exists("cryptocom", "BTC/USD") is True
    backend.check_coin_exists.assert_awaited_once_with("cryptocom", "BTC/USD", None)
    await manager.check_health()
    backend.check_health.assert_awaited_once_with()
    await manager.close()
    backend.close.assert_awaited_once_with()


async def test_replace_range_normalises_and_delegates(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    backend.replace_range.return_value = 4
    given: list[Any] = [candle(3), (T0 + STEP, 1, 1, 1, 1, 10), candle(3, price=2.0)]
    covered: list[Any] = [(T0, T0 + 9 * STEP)]
    removed = await manager.replace_range(
        "cryptocom", "BTC/USD", "5m", T0, T0 + 5 * STEP, given, covered=covered
    )
    assert removed == 4
    backend.replace_range.assert_awaited_once_with(
        "cryptocom",
        "BTC/USD",
        "5m",
        T0,
        T0 + 5 * STEP,
        [candle(1), candle(3, price=2.0)],
        covered=[TimeRange(T0, T0 + 9 * STEP)],  # the backend clips it to the range
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0, T0),
        (T0 + STEP, T0),
        (T0 + 1, T0 + STEP),
        (T0, T0 + STEP + 1),
        (-STEP, 0),
        (float(T0), T0 + STEP),
        (T0, True),
        (T0, MAX_TIMESTAMP + STEP),
    ],
)
async def test_replace_range_needs_an_aligned_range(
    manager: StorageManagerImpl, backend: AsyncMock, start: Any, end: Any
) -> None:
    with pytest.raises(InvalidInputError, match="range"):
        await manager.replace_range("cryptocom", "BTC/USD", "5m", start, end, [], covered=[])
    backend.replace_range.assert_not_awaited()


@pytest.mark.parametrize("outside", [candle(-1), candle(5), candle(6)])
async def test_replace_range_rejects_candles_outside_the_range(
    manager: StorageManagerImpl, backend: AsyncMock, outside: Candle
) -> None:
    with pytest.raises(InvalidInputError, match=f"outside the replaced range.*{outside[0]}"):
        await manager.replace_range(
            "cryptocom", "BTC/USD", "5m", T0, T0 + 5 * STEP, [candle(0), outside], covered=[]
        )
    backend.replace_range.assert_not_awaited()


async def test_replace_range_checks_candles_and_coverage(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    with pytest.raises(InvalidCandleError):
        await manager.replace_range(
            "cryptocom",
            "BTC/USD",
            "5m",
            T0,
            T0 + 5 * STEP,
            [candle(0)._replace(open=math.nan)],
            covered=[],
        )
    with pytest.raises(InvalidInputError, match="covered range"):
        await manager.replace_range(
            "cryptocom", "BTC/USD", "5m", T0, T0 + 5 * STEP, [], covered=[TimeRange(T0, T0 + 1)]
        )
    backend.replace_range.assert_not_awaited()


async def test_series_bounds_are_checked_and_delegated(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    backend.get_series_bounds.return_value = SeriesBounds(T0, T0)
    backend.save_series_bounds.return_value = SeriesBounds(T0, T0, T0 + STEP)
    assert await manager.get_series_bounds("cryptocom", "BTC/USD", "5m") == SeriesBounds(T0, T0)
    backend.get_series_bounds.assert_awaited_once_with("cryptocom", "BTC/USD", "5m")
    saved = await manager.save_series_bounds(
        "cryptocom", "BTC/USD", "5m", SeriesBounds(0, None, T0 + STEP)
    )
    assert saved == SeriesBounds(T0, T0, T0 + STEP)
    backend.save_series_bounds.assert_awaited_once_with(
        "cryptocom", "BTC/USD", "5m", SeriesBounds(0, None, T0 + STEP), clear_empty_from=False
    )
    await manager.save_series_bounds(
        "cryptocom", "BTC/USD", "5m", SeriesBounds(), clear_empty_from=True
    )
    assert backend.save_series_bounds.await_args.kwargs == {"clear_empty_from": True}


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        (SeriesBounds(-STEP), "epoch ms"),
        (SeriesBounds(T0 + 1), "aligned"),
        (SeriesBounds(True), "epoch ms"),
        (SeriesBounds(float(T0)), "epoch ms"),  # type: ignore[arg-type]
        (SeriesBounds(None), "epoch ms"),  # type: ignore[arg-type]
        (SeriesBounds(T0, T0 + 1), "aligned"),
        (SeriesBounds(T0, None, MAX_TIMESTAMP), "epoch ms"),
        (SeriesBounds(T0, T0 + STEP), "first_candle"),
        (SeriesBounds(T0, None, T0), "empty_from"),
        ((T0, None, None), "SeriesBounds"),
    ],
)
async def test_bad_series_bounds_never_reach_the_backend(
    manager: StorageManagerImpl, backend: AsyncMock, bounds: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await manager.save_series_bounds("cryptocom", "BTC/USD", "5m", bounds)
    backend.save_series_bounds.assert_not_awaited()


async def test_clear_empty_from_with_an_empty_from_is_refused(
    manager: StorageManagerImpl, backend: AsyncMock
) -> None:
    with pytest.raises(InvalidInputError, match="clear_empty_from"):
        await manager.save_series_bounds(
            "cryptocom", "BTC/USD", "5m", SeriesBounds(0, None, T0), clear_empty_from=True
        )
    backend.save_series_bounds.assert_not_awaited()


async def test_with_a_real_local_backend(tmp_path: Path) -> None:
    manager = StorageManagerImpl(LocalFileStorage(tmp_path))
    await manager.save_bulk_entries("cryptocom", "BTC/USD", "5m", [candle(1), candle(0)])
    assert await manager.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + 10 * STEP) == [
        candle(0),
        candle(1),
    ]
    assert await manager.get_latest_timestamp("cryptocom", "BTC/USD", "5m") == T0 + STEP
    assert await manager.list_coins("cryptocom") == ["BTC/USD"]
    [series] = await manager.list_series("cryptocom", "BTC/USD")
    assert (series.first, series.last, series.candles) == (T0, T0 + STEP, 2)


def test_settings_choose_the_local_backend(tmp_path: Path) -> None:
    storage = create_raw_data_storage(
        load_settings(local_storage_root=tmp_path, storage_write_attempts=3)
    )
    assert isinstance(storage, LocalFileStorage)
    assert storage.root == tmp_path
    manager = create_storage_manager(load_settings(local_storage_root=tmp_path))
    assert isinstance(manager.backend, LocalFileStorage)


async def test_settings_choose_the_azure_backend() -> None:
    conn = "UseDevelopmentStorage=true"
    settings = load_settings(
        storage_backend="azure", azure_connection_string=conn, azure_container="mydata"
    )
    storage = create_raw_data_storage(settings)
    assert isinstance(storage, AzureBlobStorage)
    assert storage.container_name == "mydata"
    await storage.close()


async def test_azure_account_url_uses_a_default_credential() -> None:
    settings = load_settings(
        storage_backend="azure", azure_account_url="https://acct.blob.core.windows.net"
    )
    manager = create_storage_manager(settings)
    assert isinstance(manager.backend, AzureBlobStorage)
    assert manager.backend.container_name == "cbtrade"
    await manager.close()
