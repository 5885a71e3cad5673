"""AzureBlobStorage with a mocked container client: error mapping, conditional writes, the
container created once, deadlines, and credentials. Against Azurite: the contract suite in
tests/integration/storage/test_storage_contract.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob.aio import LinearRetry

from cbtrade.candle_table import ARROW_STREAM_MEDIA_TYPE
from cbtrade.errors import (
    StorageConflictError,
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
)
from cbtrade.models import Candle
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.interfaces import SeriesBounds
from cbtrade.storage.object_storage import PreconditionFailedError
from tests.fixtures.azurite import connection_string
from tests.fixtures.stored_objects import read_stored_object, stored_object_bytes

T0 = 1_704_067_200_000
KEY = "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"


def http_error(status: int, cls: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    error = cls(message=f"status {status}\nmore detail")
    error.status_code = status
    return error


def downloader(data: bytes, etag: str) -> MagicMock:
    result = MagicMock()
    result.readall = AsyncMock(return_value=data)
    result.properties.etag = etag
    return result


@pytest.fixture
def client() -> MagicMock:
    mock = MagicMock()
    mock.container_name = "data"
    for name in ("create_container", "download_blob", "upload_blob", "close"):
        setattr(mock, name, AsyncMock())
    mock.get_container_properties = AsyncMock()
    return mock


@pytest.fixture
def storage(client: MagicMock) -> AzureBlobStorage:
    storage = AzureBlobStorage(
        container="data", connection_string=connection_string(1), timeout_seconds=0.5
    )
    storage._client = client
    return storage


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ClientAuthenticationError("bad signature"), StoragePermissionError),
        (http_error(403), StoragePermissionError),
        (http_error(401), StoragePermissionError),
        (ServiceRequestError("connection refused"), StorageUnavailableError),
        (ServiceResponseError("connection reset"), StorageUnavailableError),
        (http_error(503), StorageUnavailableError),
        (http_error(500), StorageUnavailableError),
        (http_error(429), StorageUnavailableError),
        (http_error(400), StorageError),
    ],
)
async def test_azure_errors_become_typed_storage_errors(
    storage: AzureBlobStorage,
    client: MagicMock,
    error: Exception,
    expected: type[StorageError],
) -> None:
    client.download_blob.side_effect = error
    with pytest.raises(expected, match=f"read {KEY}") as caught:
        await storage.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + 300_000)
    assert type(caught.value) is expected
    assert "more detail" not in str(caught.value)


async def test_a_missing_blob_reads_as_empty(storage: AzureBlobStorage, client: MagicMock) -> None:
    client.download_blob.side_effect = ResourceNotFoundError("BlobNotFound")
    assert await storage.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + 300_000) == []


async def test_new_blobs_are_written_only_if_missing(
    storage: AzureBlobStorage, client: MagicMock
) -> None:
    client.download_blob.side_effect = ResourceNotFoundError("BlobNotFound")
    await storage.save_entry("cryptocom", "BTC/USD", "5m", Candle(T0, 1, 1, 1, 1, 1))
    (key, data), kwargs = client.upload_blob.await_args
    assert key == KEY
    assert read_stored_object(data) == {
        "format": 2,
        "candles": [[1704067200000, 1, 1, 1, 1, 1]],
        "covered": [],
    }
    assert kwargs["overwrite"] is False
    assert "etag" not in kwargs


async def test_blobs_carry_the_content_type_of_what_they_hold(
    storage: AzureBlobStorage, client: MagicMock
) -> None:
    client.download_blob.side_effect = ResourceNotFoundError("BlobNotFound")
    await storage.save_entry("cryptocom", "BTC/USD", "5m", Candle(T0, 1, 1, 1, 1, 1))
    await storage.save_series_bounds("cryptocom", "BTC/USD", "5m", SeriesBounds(T0, T0))
    (data_call, bounds_call) = client.upload_blob.await_args_list
    assert data_call.args[0] == KEY
    assert data_call.kwargs["content_settings"].content_type == ARROW_STREAM_MEDIA_TYPE
    assert bounds_call.args[0] == "raw_data/cryptocom/BTC-USD/5m/bounds.json"
    assert bounds_call.kwargs["content_settings"].content_type == "application/json"


async def test_existing_blobs_are_written_only_if_unchanged(
    storage: AzureBlobStorage, client: MagicMock
) -> None:
    client.download_blob.return_value = downloader(stored_object_bytes([], []), '"0x8D"')
    await storage.save_entry("cryptocom", "BTC/USD", "5m", Candle(T0, 1, 1, 1, 1, 1))
    kwargs = client.upload_blob.await_args.kwargs
    assert kwargs["etag"] == '"0x8D"'
    assert kwargs["match_condition"] is MatchConditions.IfNotModified
    assert kwargs["overwrite"] is True


@pytest.mark.parametrize(
    "error",
    [
        http_error(412, ResourceModifiedError),
        http_error(409, ResourceExistsError),
        http_error(412),
        http_error(409),
    ],
)
async def test_lost_races_are_precondition_failures(
    storage: AzureBlobStorage, client: MagicMock, error: HttpResponseError
) -> None:
    client.upload_blob.side_effect = error
    with pytest.raises(PreconditionFailedError):
        await storage._write_object(KEY, b"{}", etag=None)


async def test_a_write_that_keeps_losing_gives_up_with_a_conflict(client: MagicMock) -> None:
    storage = AzureBlobStorage(
        container="data", connection_string=connection_string(1), write_attempts=3
    )
    storage._client = client
    client.download_blob.side_effect = ResourceNotFoundError("BlobNotFound")
    client.upload_blob.side_effect = http_error(412)
    with pytest.raises(StorageConflictError, match="3 attempts"):
        await storage.save_entry("cryptocom", "BTC/USD", "5m", Candle(T0, 1, 1, 1, 1, 1))
    assert client.upload_blob.await_count == 3
    assert client.download_blob.await_count == 3


async def test_the_container_is_created_once_even_under_concurrency(
    storage: AzureBlobStorage, client: MagicMock
) -> None:
    async def slow_create(**kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        raise ResourceExistsError("ContainerAlreadyExists")

    client.create_container.side_effect = slow_create
    await asyncio.gather(
        *(storage._write_object(f"k{i}.arrow", b"{}", etag=None) for i in range(5))
    )
    await storage.check_health()
    assert client.create_container.await_count == 1
    assert client.upload_blob.await_count == 5


async def test_a_hanging_call_fails_at_the_deadline(
    storage: AzureBlobStorage, client: MagicMock
) -> None:
    async def hang(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(60)

    client.download_blob.side_effect = hang
    began = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=r"within 0\.5 s"):
        await storage.get_range("cryptocom", "BTC/USD", "5m", T0, T0 + 1)
    assert time.monotonic() - began < 2


async def test_account_url_uses_default_credential_and_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential = AsyncMock()
    factory = MagicMock(return_value=credential)
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", factory)
    storage = AzureBlobStorage(container="data", account_url="https://acct.blob.core.windows.net")
    factory.assert_called_once_with()
    assert storage.container_name == "data"
    await storage.close()
    credential.close.assert_awaited_once_with()


async def test_a_given_credential_is_not_closed() -> None:
    credential = AsyncMock()
    storage = AzureBlobStorage(
        container="data", account_url="https://acct.blob.core.windows.net", credential=credential
    )
    await storage.close()
    credential.close.assert_not_awaited()


def test_connection_details_are_required() -> None:
    with pytest.raises(ValueError, match="connection_string or an account_url"):
        AzureBlobStorage(container="data")


def test_the_module_bounds_retries() -> None:
    storage = AzureBlobStorage(
        container="data", connection_string=connection_string(1), retry_total=1
    )
    policy = storage._client._config.retry_policy
    assert isinstance(policy, LinearRetry)
    assert policy.total_retries == 1


@pytest.mark.parametrize("trust_env", [False, True])
async def test_the_environment_is_read_per_request_only_when_asked(trust_env: bool) -> None:
    # Reading proxy settings and .netrc costs a thread hop per request (aiohttp's trust_env).
    storage = AzureBlobStorage(
        container="data", connection_string=connection_string(1), trust_env=trust_env
    )
    try:
        assert storage._client._pipeline._transport._use_env_settings is trust_env
    finally:
        await storage.close()
