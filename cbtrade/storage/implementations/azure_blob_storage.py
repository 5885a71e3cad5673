"""AzureBlobStorage: raw data objects as block blobs in one container (Azure or Azurite).

Connects with a connection string (Azurite, account key) or with an account URL and
``DefaultAzureCredential`` (managed identity in Azure). The container is created on the first
write if it is missing. Writes are conditional: ``If-None-Match: *`` for a new blob, ``If-Match:
<etag>`` for an existing one; a 412/409 is a lost race that the base class retries.

Every call is bounded: short connect/read timeouts, a small SDK retry budget, and an overall
deadline per operation, so an unreachable store fails fast with StorageUnavailableError
instead of hanging a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobPrefix, ContainerClient, LinearRetry

from cbtrade.candle_table import ARROW_STREAM_MEDIA_TYPE
from cbtrade.errors import (
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
)
from cbtrade.storage.object_storage import (
    DEFAULT_CONCURRENCY,
    ObjectRawDataStorage,
    PreconditionFailedError,
    SealingPolicy,
)
from cbtrade.storage.path_utility import OBJECT_SUFFIX

_ARROW_STREAM = ContentSettings(content_type=ARROW_STREAM_MEDIA_TYPE)
_JSON = ContentSettings(content_type="application/json")  # bounds records, service documents
_UNAVAILABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class AzureBlobStorage(ObjectRawDataStorage):
    """Raw data as blobs in an Azure Storage container."""

    def __init__(
        self,
        *,
        container: str,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: AsyncTokenCredential | None = None,
        timeout_seconds: float = 20.0,
        retry_total: int = 3,
        write_attempts: int = 20,
        concurrency: int = DEFAULT_CONCURRENCY,
        sealing: SealingPolicy | None = None,
        trust_env: bool = False,
    ) -> None:
        """Use ``connection_string``, or ``account_url`` with ``credential`` (by default
        ``DefaultAzureCredential``, created here and closed by :meth:`close`). ``trust_env``:
        read proxy settings and .netrc from the environment for each request."""
        super().__init__(write_attempts=write_attempts, concurrency=concurrency, sealing=sealing)
        self._timeout = timeout_seconds
        options: dict[str, Any] = {
            "retry_policy": LinearRetry(backoff=1, random_jitter_range=1, retry_total=retry_total),
            "connection_timeout": min(timeout_seconds, 5.0),
            "read_timeout": timeout_seconds,
            # Without it, aiohttp re-reads the proxy settings and .netrc in a thread for
            # every request: about 40% of a small read's CPU.
            "use_env_settings": trust_env,
        }
        self._owned_credential: AsyncTokenCredential | None = None
        if connection_string:
            self._client = ContainerClient.from_connection_string(
                connection_string, container, **options
            )
        elif account_url:
            if credential is None:
                from azure.identity.aio import DefaultAzureCredential

                credential = self._owned_credential = DefaultAzureCredential()
            self._client = ContainerClient(account_url, container, credential=credential, **options)
        else:
            raise ValueError("AzureBlobStorage needs a connection_string or an account_url")
        self._container_ready = False
        self._container_lock = asyncio.Lock()

    @property
    def container_name(self) -> str:
        """The container that holds the data."""
        return self._client.container_name

    @asynccontextmanager
    async def _azure_errors(self, what: str) -> AsyncIterator[None]:
        """Bound the operation by the deadline and map Azure errors to StorageError types."""
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except StorageError:
            raise
        except TimeoutError as exc:
            raise StorageUnavailableError(
                f"{what}: no answer from blob storage within {self._timeout:g} s"
            ) from exc
        except AzureError as exc:
            raise map_azure_error(what, exc) from exc

    async def _ensure_container(self) -> None:
        if self._container_ready:
            return
        async with self._container_lock:
            if self._container_ready:
                return
            async with self._azure_errors(f"create container {self.container_name}"):
                with suppress(ResourceExistsError):
                    await self._client.create_container()
            self._container_ready = True

    async def _read_object(self, key: str) -> tuple[bytes, str] | None:
        async with self._azure_errors(f"read {key}"):
            try:
                downloader = await self._client.download_blob(key)
                data = await downloader.readall()
            except ResourceNotFoundError:
                return None
            etag: str = downloader.properties.etag
            return data, etag

    async def _read_object_if_changed(
        self, key: str, etag: str | None
    ) -> tuple[bytes | None, str] | None:
        if etag is None:
            return await self._read_object(key)
        async with self._azure_errors(f"read {key}"):
            try:
                downloader = await self._client.download_blob(
                    key, etag=etag, match_condition=MatchConditions.IfModified
                )
                data = await downloader.readall()
            except ResourceNotFoundError:
                return None
            except ResourceNotModifiedError:
                return None, etag
            except HttpResponseError as exc:
                if exc.status_code == 304:
                    return None, etag
                raise
            new_etag: str = downloader.properties.etag
            return data, new_etag

    async def _write_object(self, key: str, data: bytes, *, etag: str | None) -> None:
        await self._ensure_container()
        if etag is None:
            condition: dict[str, Any] = {"overwrite": False}
        else:
            condition = {
                "overwrite": True,
                "etag": etag,
                "match_condition": MatchConditions.IfNotModified,
            }
        async with self._azure_errors(f"write {key}"):
            try:
                await self._client.upload_blob(
                    key,
                    data,
                    content_settings=_ARROW_STREAM if key.endswith(OBJECT_SUFFIX) else _JSON,
                    **condition,
                )
            except HttpResponseError as exc:
                if exc.status_code in (409, 412):
                    raise PreconditionFailedError(f"{key} changed since it was read") from exc
                raise

    async def _list_keys(
        self, prefix: str, *, limit: int | None = None, suffix: str = OBJECT_SUFFIX
    ) -> list[str]:
        keys: list[str] = []
        async with self._azure_errors(f"list {prefix}"):
            try:
                async for name in self._client.list_blob_names(
                    name_starts_with=prefix, results_per_page=limit
                ):
                    if name.endswith(suffix):
                        keys.append(name)
                        if limit is not None and len(keys) >= limit:
                            break
            except ResourceNotFoundError:
                return []
        return keys

    async def _list_etags(
        self, prefix: str, *, suffixes: tuple[str, ...] = (OBJECT_SUFFIX,)
    ) -> dict[str, str | None]:
        etags: dict[str, str | None] = {}
        async with self._azure_errors(f"list {prefix}"):
            with suppress(ResourceNotFoundError):
                async for blob in self._client.list_blobs(name_starts_with=prefix):
                    if blob.name.endswith(suffixes):
                        # A listing gives the ETag bare; a download, and so the cache, quoted.
                        etags[blob.name] = '"' + blob.etag.strip('"') + '"'
        return etags

    async def _list_child_names(self, prefix: str) -> list[str]:
        children: list[str] = []
        async with self._azure_errors(f"list {prefix}"):
            try:
                async for item in self._client.walk_blobs(name_starts_with=prefix, delimiter="/"):
                    if isinstance(item, BlobPrefix):
                        children.append(item.name)
            except ResourceNotFoundError:
                return []
        # A folder may hold only series bounds records: ask each for one data object.
        found = await self._gather_bounded(self._list_keys(child, limit=1) for child in children)
        return [
            child[len(prefix) :].rstrip("/")
            for child, keys in zip(children, found, strict=True)
            if keys
        ]

    async def check_health(self) -> None:
        """Check the account answers and the container exists (creating it if needed)."""
        await self._ensure_container()
        async with self._azure_errors(f"container {self.container_name}"):
            await self._client.get_container_properties()

    async def close(self) -> None:
        """Close the HTTP session and the credential this instance created."""
        try:
            await self._client.close()
        finally:
            if self._owned_credential is not None:
                await self._owned_credential.close()


def map_azure_error(what: str, exc: AzureError) -> StorageError:
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    reason = exc.message.splitlines()[0] if exc.message else type(exc).__name__
    message = f"{what}: {reason}"
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return StoragePermissionError(message)
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or status in _UNAVAILABLE_STATUS:
        return StorageUnavailableError(message)
    return StorageError(message)
