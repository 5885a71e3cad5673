"""WorkQueueClient: the work queue in Azure Storage (or Azurite), as the Functions host sees it.

The queue-triggered functions (``function_app.py``) read the queue through the
``AzureWebJobsStorage`` connection; this client is made for that same connection, resolved as
the host resolves it (:mod:`cbtrade.work.connection`), so the sender and the trigger always
meet on one queue.

Messages are base64 text, the host's default ``messageEncoding``. The poison queue is the
host's: the queue's name with ``-poison``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, NamedTuple

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from cbtrade.errors import ConfigurationError, StorageUnavailableError
from cbtrade.storage.implementations.azure_blob_storage import map_azure_error
from cbtrade.work.connection import QueueConnection, poison_queue_name
from cbtrade.work.items import WorkItem, encode_item

_SEND_CONCURRENCY = 32
_TIMEOUT_SECONDS = 20.0
MAX_PER_RECEIVE = 32
"""Azure Storage queues hand out at most 32 messages per request."""


class ReceivedMessage(NamedTuple):
    """A message taken from the queue, invisible to others until its lease ends."""

    id: str
    pop_receipt: str
    body: str
    dequeue_count: int


class WorkQueueClient:
    """Sends work items to one queue; receives, renews and settles them for a local host.

    With an account URL, ``DefaultAzureCredential`` signs in (with ``connection.client_id``
    as the managed identity) unless a credential is given. ``trust_env``: read proxy settings
    and .netrc from the environment for each request. The queue and its poison queue are
    created on first use if missing (``infra/`` creates them in Azure).
    """

    def __init__(
        self,
        queue_name: str,
        connection: QueueConnection,
        *,
        credential: AsyncTokenCredential | None = None,
        trust_env: bool = False,
    ) -> None:
        options: dict[str, Any] = {
            "use_env_settings": trust_env,  # proxy settings and .netrc, read per request
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
            "connection_timeout": 5,
            "read_timeout": _TIMEOUT_SECONDS,
            # A small retry budget (the SDK's default waits 15 s, then 18 s, before retrying):
            # an outage is a StorageUnavailableError within the timeout, not a timeout.
            "retry_total": 3,
            "initial_backoff": 1,
            "increment_base": 1,
            "random_jitter_range": 1,
        }
        self._connection = connection
        self._credential = credential
        self._trust_env = trust_env
        self._owns_credential = False
        if connection.connection_string:
            self._queue = QueueClient.from_connection_string(
                connection.connection_string, queue_name, **options
            )
            self._poison = QueueClient.from_connection_string(
                connection.connection_string, poison_queue_name(queue_name), **options
            )
        elif connection.account_url:
            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential

                self._credential = DefaultAzureCredential(
                    managed_identity_client_id=connection.client_id
                )
                self._owns_credential = True
            url, credential = connection.account_url, self._credential
            self._queue = QueueClient(url, queue_name, credential=credential, **options)
            self._poison = QueueClient(
                url, poison_queue_name(queue_name), credential=credential, **options
            )
        else:
            raise ConfigurationError("the work queue needs a connection string or an account URL")
        self._ready: set[str] = set()
        self._ready_lock = asyncio.Lock()

    def poison_queue(self) -> WorkQueueClient:
        """A client of this queue's poison queue (the Functions host's ``<name>-poison``),
        sharing this client's credential; close it before this one."""
        return WorkQueueClient(
            poison_queue_name(self.queue_name),
            self._connection,
            credential=self._credential,
            trust_env=self._trust_env,
        )

    @property
    def queue_name(self) -> str:
        """The work queue's name."""
        return str(self._queue.queue_name)

    async def send(self, items: Sequence[WorkItem]) -> None:
        """Put ``items`` on the queue, each as one message; StorageError if any was not put
        (those before it may have been: every item is idempotent, so sending again is safe)."""
        semaphore = asyncio.Semaphore(_SEND_CONCURRENCY)

        async def send_one(item: WorkItem) -> None:
            async with semaphore, self._errors(f"send to {self.queue_name}"):
                await self._queue.send_message(encode_item(item))

        await self._ensure(self._queue)
        try:
            async with asyncio.TaskGroup() as group:
                for item in items:
                    group.create_task(send_one(item))
        except BaseExceptionGroup as failed:
            # The first failure, as a StorageError (not an ExceptionGroup of them).
            raise failed.exceptions[0] from None

    async def receive(self, *, max_messages: int, lease_seconds: int) -> list[ReceivedMessage]:
        """Up to ``max_messages`` messages, each hidden from other receivers for
        ``lease_seconds``."""
        await self._ensure(self._queue)
        received = []
        async with self._errors(f"receive from {self.queue_name}"):
            async for message in self._queue.receive_messages(
                # One request for them all (with max_messages alone, the SDK asks one by one).
                messages_per_page=min(max_messages, MAX_PER_RECEIVE),
                max_messages=max_messages,
                visibility_timeout=lease_seconds,
            ):
                received.append(
                    ReceivedMessage(
                        message.id,
                        message.pop_receipt or "",
                        message.content,
                        message.dequeue_count or 1,
                    )
                )
                if len(received) >= max_messages:
                    break
        return received

    async def extend(self, message: ReceivedMessage, *, seconds: int) -> ReceivedMessage:
        """Keep ``message`` hidden for ``seconds`` from now (a lease renewal, or a retry
        delay after a failure); the message with its new pop receipt."""
        async with self._errors(f"update a message of {self.queue_name}"):
            updated = await self._queue.update_message(
                message.id, message.pop_receipt, visibility_timeout=seconds
            )
        return message._replace(pop_receipt=updated.pop_receipt or message.pop_receipt)

    async def delete(self, message: ReceivedMessage) -> None:
        """Remove a processed message."""
        async with self._errors(f"delete a message of {self.queue_name}"):
            with suppress(ResourceNotFoundError):  # already gone: deleted twice is done
                await self._queue.delete_message(message.id, message.pop_receipt)

    async def move_to_poison(self, message: ReceivedMessage) -> None:
        """Put the message's body on the poison queue, then remove it from the work queue."""
        await self._ensure(self._poison)
        async with self._errors(f"send to {self._poison.queue_name}"):
            await self._poison.send_message(message.body)
        await self.delete(message)

    async def approximate_count(self) -> int:
        """About how many messages wait in the queue, those leased or delayed included."""
        async with self._errors(f"count {self.queue_name}"):
            try:
                properties = await self._queue.get_queue_properties()
            except ResourceNotFoundError:
                return 0
        return int(properties.approximate_message_count or 0)

    async def peek(self, *, max_messages: int = MAX_PER_RECEIVE) -> list[str]:
        """Bodies of the first messages waiting in the queue, left in place."""
        async with self._errors(f"peek {self.queue_name}"):
            try:
                return [m.content for m in await self._queue.peek_messages(max_messages)]
            except ResourceNotFoundError:
                return []

    async def close(self) -> None:
        """Close both queue clients and any credential this client created."""
        await self._queue.close()
        await self._poison.close()
        if self._owns_credential and self._credential is not None:
            await self._credential.close()

    async def _ensure(self, queue: QueueClient) -> None:
        if queue.queue_name in self._ready:
            return
        async with self._ready_lock:
            if queue.queue_name in self._ready:
                return
            async with self._errors(f"create queue {queue.queue_name}"):
                with suppress(ResourceExistsError):
                    await queue.create_queue()
            self._ready.add(queue.queue_name)

    @asynccontextmanager
    async def _errors(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(_TIMEOUT_SECONDS):
                yield
        except TimeoutError as exc:
            raise StorageUnavailableError(
                f"{what}: no answer from queue storage within {_TIMEOUT_SECONDS:g} s"
            ) from exc
        except AzureError as exc:
            raise map_azure_error(what, exc) from exc
