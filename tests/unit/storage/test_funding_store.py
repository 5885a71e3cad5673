"""FundingStore on local disk: events and coverage per year object, merged, revalidated."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbtrade.errors import InvalidPathComponentError, StorageCorruptError
from cbtrade.models import FundingRate, TimeRange
from cbtrade.storage.funding_store import FundingStore
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

YEAR_2024 = 1_704_067_200_000
YEAR_2025 = 1_735_689_600_000
HOUR = 3_600_000


def rows(store_slice: object) -> list[FundingRate]:
    events = store_slice.events  # type: ignore[attr-defined]
    return [
        FundingRate(t, r)
        for t, r in zip(
            events.column("timestamp").to_pylist(), events.column("rate").to_pylist(), strict=True
        )
    ]


def stored_keys(root: Path) -> list[str]:
    """The keys of the objects stored under ``root`` (not the local backend's lock files)."""
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*.*") if not p.name.startswith(".")
    )


async def test_events_and_coverage_round_trip_across_years(tmp_path: Path) -> None:
    store = FundingStore(LocalFileStorage(tmp_path))
    events = [FundingRate(YEAR_2025 - 8 * HOUR, 0.0001), FundingRate(YEAR_2025, -0.0002)]
    await store.save(
        "binance", "BTC/USDT:USDT", events, covered=[TimeRange(YEAR_2024, YEAR_2025 + HOUR)]
    )
    assert stored_keys(tmp_path) == [
        "funding/binance/BTC-USDT%3AUSDT/2024.arrow",
        "funding/binance/BTC-USDT%3AUSDT/2025.arrow",
    ]
    stored = await store.read("binance", "BTC/USDT:USDT", 0, YEAR_2025 + 10 * HOUR)
    assert rows(stored) == events
    assert stored.covered == [TimeRange(YEAR_2024, YEAR_2025 + HOUR)]
    # A newer answer for a timestamp replaces the stored one; coverage merges.
    await store.save(
        "binance", "BTC/USDT:USDT", [FundingRate(YEAR_2025, 0.0003)],
        covered=[TimeRange(YEAR_2025 + HOUR, YEAR_2025 + 2 * HOUR)],
    )  # fmt: skip
    stored = await store.read("binance", "BTC/USDT:USDT", YEAR_2025, YEAR_2025 + 10 * HOUR)
    assert rows(stored) == [FundingRate(YEAR_2025, 0.0003)]
    assert stored.covered == [TimeRange(YEAR_2025, YEAR_2025 + 2 * HOUR)]


async def test_another_writer_is_seen_by_a_cached_reader(tmp_path: Path) -> None:
    reader = FundingStore(LocalFileStorage(tmp_path))
    writer = FundingStore(LocalFileStorage(tmp_path))
    assert rows(await reader.read("cryptocom", "BTC/USD:USD", YEAR_2024, YEAR_2025)) == []
    await writer.save("cryptocom", "BTC/USD:USD", [FundingRate(YEAR_2024, 0.01)], covered=[])
    assert rows(await reader.read("cryptocom", "BTC/USD:USD", YEAR_2024, YEAR_2025)) == [
        FundingRate(YEAR_2024, 0.01)
    ]


async def test_bad_names_and_corrupt_objects_are_typed_errors(tmp_path: Path) -> None:
    store = FundingStore(LocalFileStorage(tmp_path))
    with pytest.raises(InvalidPathComponentError):
        await store.read("binance", "../etc", 0, 1)
    path = tmp_path / "funding/binance/BTC-USDT%3AUSDT/2024.arrow"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not arrow")
    with pytest.raises(StorageCorruptError):
        await store.read("binance", "BTC/USDT:USDT", YEAR_2024, YEAR_2025)


async def test_years_wholly_empty_get_no_object_but_stay_covered(tmp_path: Path) -> None:
    store = FundingStore(LocalFileStorage(tmp_path))
    first = FundingRate(YEAR_2024 + 100 * HOUR, 0.0001)
    await store.save(
        "binance", "BTC/USDT:USDT", [first], covered=[TimeRange(0, first.timestamp + 1)]
    )
    assert stored_keys(tmp_path) == [
        "funding/binance/BTC-USDT%3AUSDT/2024.arrow",
        "funding/binance/BTC-USDT%3AUSDT/empty_years.json",
    ]
    fresh = FundingStore(LocalFileStorage(tmp_path))
    stored = await fresh.read("binance", "BTC/USDT:USDT", 0, YEAR_2025)
    assert rows(stored) == [first]
    assert stored.covered == [TimeRange(0, first.timestamp + 1)]
    # A later, narrower fill of empty years changes nothing.
    await store.save("binance", "BTC/USDT:USDT", [], covered=[TimeRange(0, YEAR_2024)])
    assert len(stored_keys(tmp_path)) == 2
    (tmp_path / "funding/binance/BTC-USDT%3AUSDT/empty_years.json").write_bytes(b"[1]")
    with pytest.raises(StorageCorruptError):
        await fresh.read("binance", "BTC/USDT:USDT", 0, YEAR_2025)
