"""LocalFileStorage: file layout and format, conditional writes, hidden files, OS error mapping.

The behaviour shared with AzureBlobStorage is in tests/integration/storage/test_storage_contract.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cbtrade.errors import (
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from cbtrade.storage.object_storage import PreconditionFailedError
from tests.fixtures.stored_objects import read_stored_object

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
STEP = 300_000


def candle(i: int) -> Candle:
    return Candle(T0 + i * STEP, 1.0 + i, 2.0 + i, 0.5, 1.5, 10.0)


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    return LocalFileStorage(tmp_path / "data")


async def test_save_entry_creates_the_folder_and_file(storage: LocalFileStorage) -> None:
    await storage.save_entry("cryptocom", "BTC/USD", "5m", candle(0))
    path = storage.root / "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"
    assert read_stored_object(path.read_bytes()) == {
        "format": 2,
        "candles": [[T0, 1.0, 2.0, 0.5, 1.5, 10.0]],
        "covered": [],
    }


async def test_save_bulk_entries_writes_one_file_per_period(storage: LocalFileStorage) -> None:
    dec_31 = T0 - 86_400_000
    candles = [Candle(dec_31, 1, 1, 1, 1, 1), Candle(T0, 2, 2, 2, 2, 2)]
    await storage.save_bulk_entries(
        "cryptocom", "BTC/USD", "1m", candles, covered=[TimeRange(dec_31, T0 + 60_000)]
    )
    base = storage.root / "raw_data/cryptocom/BTC-USD/1m"
    files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.arrow"))
    assert files == ["2023/12/31.arrow", "2024/01/01.arrow"]
    jan = read_stored_object((base / "2024/01/01.arrow").read_bytes())
    assert jan["covered"] == [[T0, T0 + 60_000]]


async def test_write_with_a_stale_etag_is_refused(storage: LocalFileStorage) -> None:
    key = "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"
    await storage._write_object(key, b"one", etag=None)
    with pytest.raises(PreconditionFailedError):
        await storage._write_object(key, b"two", etag=None)
    found = await storage._read_object(key)
    assert found is not None
    data, etag = found
    assert data == b"one"
    await storage._write_object(key, b"two", etag=etag)
    with pytest.raises(PreconditionFailedError):
        await storage._write_object(key, b"three", etag=etag)
    assert (await storage._read_object(key) or (b"", ""))[0] == b"two"


async def test_lock_and_temp_files_are_ignored(storage: LocalFileStorage) -> None:
    await storage.save_entry("cryptocom", "BTC/USD", "5m", candle(0))
    folder = storage.root / "raw_data/cryptocom/BTC-USD/5m/2024"
    assert (folder / ".01.arrow.lock").exists()
    (folder / ".01.arrow.0123.tmp").write_bytes(b"{partial")
    (folder / ".02.arrow").write_bytes(b"{partial")
    hidden_coin = storage.root / "raw_data/cryptocom/.hidden/5m"
    hidden_coin.mkdir(parents=True)
    (hidden_coin / "2024.arrow").write_bytes(b"{}")
    (storage.root / "raw_data/cryptocom/ETH-USD/5m").mkdir(parents=True)  # no data in it

    assert await storage._list_keys("raw_data/cryptocom/BTC-USD/") == [
        "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"
    ]
    assert await storage.list_coins("cryptocom") == ["BTC/USD"]
    assert await storage.check_coin_exists("cryptocom", "ETH/USD") is False
    assert await storage.get_latest_timestamp("cryptocom", "BTC/USD", "5m") == T0


async def test_a_corrupt_file_is_reported(storage: LocalFileStorage) -> None:
    path = storage.root / "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"format": 1, "candles": [[1, 2]], "covered": []}')
    with pytest.raises(StorageCorruptError, match=r"01\.arrow"):
        await storage.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + STEP)
    with pytest.raises(StorageCorruptError):
        await storage.save_entry("cryptocom", "BTC/USD", "5m", candle(0))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), StoragePermissionError),
        (OSError(errno.ENOSPC, "No space left on device"), StorageFullError),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageFullError),
        (OSError(errno.EIO, "Input/output error"), StorageError),
    ],
)
async def test_os_errors_become_typed_storage_errors_naming_the_path(
    storage: LocalFileStorage,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    expected: type[StorageError],
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(expected, match=r"01\.arrow") as caught:
        await storage.save_entry("cryptocom", "BTC/USD", "5m", candle(0))
    assert type(caught.value) is expected
    assert caught.value.__cause__ is error
    monkeypatch.undo()
    # The failed write left nothing behind: no object and no temp file.
    folder = storage.root / "raw_data/cryptocom/BTC-USD/5m/2024"
    assert sorted(p.name for p in folder.iterdir()) == [".01.arrow.lock"]


async def test_a_root_under_a_regular_file_gives_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    storage = LocalFileStorage(tmp_path / "file" / "data")
    with pytest.raises(StorageError, match="file/data"):
        await storage.check_health()
    with pytest.raises(StorageError, match="file/data"):
        await storage.save_entry("cryptocom", "BTC/USD", "5m", candle(0))
    with pytest.raises(StorageError, match="file/data"):
        await storage.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + STEP)


async def test_check_health_creates_the_root_and_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "new")
    await storage.check_health()
    assert list((tmp_path / "new").iterdir()) == []
    await storage.close()


def test_options_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LocalFileStorage(tmp_path, write_attempts=0)
    assert os.fspath(LocalFileStorage(str(tmp_path)).root) == str(tmp_path)
