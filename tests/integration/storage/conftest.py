"""Fixtures of the storage tests: each backend (local disk, Azurite), and a second instance
over the same store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from cbtrade.storage.object_storage import ObjectRawDataStorage
from tests.fixtures.azurite import AzuriteInstance


@pytest.fixture(params=["local", "azure"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectRawDataStorage]:
    """Each backend: LocalFileStorage on a temp dir, AzureBlobStorage on a fresh container."""
    storage: ObjectRawDataStorage
    if request.param == "local":
        storage = LocalFileStorage(tmp_path / "data")
    else:
        azurite: AzuriteInstance = request.getfixturevalue("azurite")
        storage = AzureBlobStorage(
            container=request.getfixturevalue("azurite_container"),
            connection_string=azurite.connection_string,
            timeout_seconds=10,
        )
    yield storage
    await storage.close()


@pytest.fixture
async def other_writer(
    request: pytest.FixtureRequest, backend: ObjectRawDataStorage
) -> AsyncIterator[ObjectRawDataStorage]:
    """A second instance over the same store as ``backend`` (another process, in effect)."""
    storage: ObjectRawDataStorage
    if isinstance(backend, LocalFileStorage):
        storage = LocalFileStorage(backend.root)
    else:
        assert isinstance(backend, AzureBlobStorage)
        azurite: AzuriteInstance = request.getfixturevalue("azurite")
        storage = AzureBlobStorage(
            container=backend.container_name, connection_string=azurite.connection_string
        )
    yield storage
    await storage.close()
