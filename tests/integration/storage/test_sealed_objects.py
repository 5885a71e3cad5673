"""Sealed objects on both backends: served from the cache with no request, the open head of a
series still revalidated, and a repair on another instance served within the recheck bound."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from cbtrade.storage.object_storage import ObjectRawDataStorage, SealingPolicy
from tests.fixtures.azurite import AzuriteInstance

pytestmark = pytest.mark.azurite

EX, SYM, TF = "cryptocom", "BTC/USD", "1m"
M1, DAY = 60_000, 86_400_000
DAY_1 = 1_704_067_200_000  # 2024-01-01, a day object of 1m candles
NOW = DAY_1 + 10 * DAY
HOUR = 3_600_000

Factory = Callable[..., ObjectRawDataStorage]


def day(start: int, *, price: float = 1.0, count: int = 1440) -> list[Candle]:
    return [
        Candle(start + i * M1, price, price + 1, price - 1, price, float(i)) for i in range(count)
    ]


class CountedReads:
    """Counts a storage's object reads (conditional ones included) and listings."""

    def __init__(self, storage: ObjectRawDataStorage) -> None:
        self.reads = 0
        read, listing = storage._read_object_if_changed, storage._list_etags

        async def counted_read(key: str, etag: str | None) -> Any:
            self.reads += 1
            return await read(key, etag)

        async def counted_list(prefix: str) -> Any:
            self.reads += 1
            return await listing(prefix)

        storage._read_object_if_changed = counted_read  # type: ignore[method-assign]
        storage._list_etags = counted_list  # type: ignore[method-assign]


@pytest.fixture(params=["local", "azure"])
async def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Instances over one store (a folder, or an Azurite container), like service processes."""
    made: list[ObjectRawDataStorage] = []
    container = request.getfixturevalue("azurite_container")

    def make(*, recheck_seconds: float = 10.0, now: int = NOW) -> ObjectRawDataStorage:
        sealing = SealingPolicy(seal_after_ms=HOUR, recheck_seconds=recheck_seconds)
        storage: ObjectRawDataStorage
        if request.param == "local":
            storage = LocalFileStorage(tmp_path / "data", sealing=sealing)
        else:
            azurite: AzuriteInstance = request.getfixturevalue("azurite")
            storage = AzureBlobStorage(
                container=container, connection_string=azurite.connection_string, sealing=sealing
            )
        storage._clock = lambda: now
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


async def test_a_sealed_object_is_served_with_no_request(make_storage: Factory) -> None:
    storage = make_storage()
    await storage.save_bulk_entries(
        EX, SYM, TF, day(DAY_1), covered=[TimeRange(DAY_1, DAY_1 + DAY)]
    )
    first = await storage.get_range_with_coverage(EX, SYM, TF, DAY_1, DAY_1 + DAY)
    assert first.sealed
    counted = CountedReads(storage)
    for _ in range(3):
        again = await storage.get_range_with_coverage(EX, SYM, TF, DAY_1 + HOUR, DAY_1 + 2 * HOUR)
        assert again.sealed
        assert again.candles.to_candles() == day(DAY_1)[60:120]
    assert counted.reads == 0


@pytest.mark.parametrize(
    ("covered", "now"),
    [
        pytest.param(TimeRange(DAY_1, DAY_1 + DAY - M1), NOW, id="not-wholly-covered"),
        pytest.param(TimeRange(DAY_1, DAY_1 + DAY), DAY_1 + DAY + HOUR - 1, id="within-grace"),
    ],
)
async def test_an_open_object_is_revalidated_on_every_read(
    make_storage: Factory, covered: TimeRange, now: int
) -> None:
    storage = make_storage(now=now)
    await storage.save_bulk_entries(EX, SYM, TF, day(DAY_1), covered=[covered])
    assert not (await storage.get_range_with_coverage(EX, SYM, TF, DAY_1, DAY_1 + DAY)).sealed
    counted = CountedReads(storage)
    await storage.get_range_with_coverage(EX, SYM, TF, DAY_1, DAY_1 + DAY)
    await storage.get_range_with_coverage(EX, SYM, TF, DAY_1, DAY_1 + DAY)
    assert counted.reads >= 2


async def test_a_range_reaching_into_an_open_object_is_not_sealed(make_storage: Factory) -> None:
    storage = make_storage()
    whole = TimeRange(DAY_1, DAY_1 + DAY)
    await storage.save_bulk_entries(EX, SYM, TF, day(DAY_1), covered=[whole])
    await storage.save_bulk_entries(EX, SYM, TF, day(DAY_1 + DAY, count=10))
    assert (await storage.get_range_with_coverage(EX, SYM, TF, *whole)).sealed
    both = await storage.get_range_with_coverage(EX, SYM, TF, DAY_1, DAY_1 + 2 * DAY)
    assert not both.sealed


async def test_a_repair_elsewhere_is_served_once_the_marker_is_rechecked(
    make_storage: Factory,
) -> None:
    whole = TimeRange(DAY_1, DAY_1 + DAY)
    reader = make_storage(recheck_seconds=0)  # checks the marker on every read
    stale_reader = make_storage(recheck_seconds=3_600)  # a bound of an hour
    repairer = make_storage()
    await repairer.save_bulk_entries(EX, SYM, TF, day(DAY_1, price=1.0), covered=[whole])
    for storage in (reader, stale_reader):
        assert (await storage.get_range(EX, SYM, TF, *whole)) == day(DAY_1, price=1.0)

    await repairer.replace_range(EX, SYM, TF, *whole, day(DAY_1, price=2.0), covered=[whole])

    # Within its bound, an instance serves its sealed copy (that is the point of sealing);
    # once it reads the marker, it serves the repair.
    assert await stale_reader.get_range(EX, SYM, TF, *whole) == day(DAY_1, price=1.0)
    assert await reader.get_range(EX, SYM, TF, *whole) == day(DAY_1, price=2.0)
    assert await repairer.get_range(EX, SYM, TF, *whole) == day(DAY_1, price=2.0)


async def test_without_a_sealing_policy_every_read_revalidates(make_storage: Factory) -> None:
    storage = make_storage()
    storage._seal_after_ms = None
    whole = TimeRange(DAY_1, DAY_1 + DAY)
    await storage.save_bulk_entries(EX, SYM, TF, day(DAY_1), covered=[whole])
    assert not (await storage.get_range_with_coverage(EX, SYM, TF, *whole)).sealed
    counted = CountedReads(storage)
    await storage.get_range_with_coverage(EX, SYM, TF, *whole)
    assert counted.reads == 1
