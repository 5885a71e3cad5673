"""WorkQueueClient on Azurite: the queue as the Functions host sees it."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.storage.queue.aio import QueueClient

from cbtrade.errors import StorageError, StorageUnavailableError
from cbtrade.work.connection import QueueConnection
from cbtrade.work.items import (
    BackfillJobItem,
    BackfillPlanItem,
    BackfillWindowItem,
    TopUpItem,
    WorkItem,
    decode_item,
    encode_item,
)
from cbtrade.work.queue import MAX_PER_RECEIVE, WorkQueueClient
from tests.fixtures.azurite import AzuriteInstance, AzuriteInstanceFactory

pytestmark = pytest.mark.azurite

ITEMS: list[WorkItem] = [
    TopUpItem(exchange="coinbase", series=[("BTC/USD", "5m"), ("ETH/USD", "1h")]),
    BackfillJobItem(job="job1"),
    BackfillPlanItem(job="job1", series=3),
    BackfillWindowItem(job="job1", series=3, window=2, start=1_000, end=2_000),
]
WAIT_SECONDS = 30


def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def name() -> str:
    return queue_name()


@pytest.fixture
async def queue(azurite: AzuriteInstance, name: str) -> AsyncIterator[WorkQueueClient]:
    client = WorkQueueClient(name, QueueConnection(connection_string=azurite.connection_string))
    yield client
    await client.close()


@pytest.fixture
async def raw(azurite: AzuriteInstance, name: str) -> AsyncIterator[QueueClient]:
    """The queue without any encode or decode policy: the text on the wire."""
    client = QueueClient.from_connection_string(azurite.connection_string, name)
    yield client
    await client.close()


async def test_sent_items_are_received_back(queue: WorkQueueClient, name: str) -> None:
    assert queue.queue_name == name
    await queue.send(ITEMS)
    received = await queue.receive(max_messages=32, lease_seconds=30)
    assert sorted((decode_item(m.body) for m in received), key=encode_item) == sorted(
        ITEMS, key=encode_item
    )
    assert all(m.dequeue_count == 1 and m.id and m.pop_receipt for m in received)
    assert len({m.id for m in received}) == len(ITEMS)
    # Leased: nothing more to receive.
    assert await queue.receive(max_messages=32, lease_seconds=30) == []


async def test_receive_takes_at_most_max_messages(queue: WorkQueueClient) -> None:
    await queue.send([BackfillPlanItem(job="j", series=n) for n in range(5)])
    first = await queue.receive(max_messages=2, lease_seconds=30)
    assert len(first) == 2
    rest = await queue.receive(max_messages=32, lease_seconds=30)
    assert len(rest) == 3
    assert {decode_item(m.body) for m in first + rest} == {
        BackfillPlanItem(job="j", series=n) for n in range(5)
    }


async def test_an_empty_queue_receives_nothing(queue: WorkQueueClient) -> None:
    assert await queue.receive(max_messages=4, lease_seconds=5) == []
    assert await queue.approximate_count() == 0


async def test_the_wire_text_is_base64_of_the_json(
    queue: WorkQueueClient, raw: QueueClient
) -> None:
    item = ITEMS[0]
    await queue.send([item])
    [message] = [m async for m in raw.receive_messages(max_messages=1)]
    text = message.content
    assert isinstance(text, str)
    assert text != encode_item(item)
    assert base64.b64decode(text, validate=True).decode() == encode_item(item)
    assert json.loads(base64.b64decode(text))["kind"] == "topup"


async def test_a_base64_message_from_elsewhere_is_decoded(
    queue: WorkQueueClient, raw: QueueClient
) -> None:
    """What the Functions host (or the timer's output binding) puts on the queue."""
    item = ITEMS[1]
    await queue.approximate_count()  # nothing yet
    await raw.create_queue()
    await raw.send_message(base64.b64encode(encode_item(item).encode()).decode())
    [message] = await queue.receive(max_messages=1, lease_seconds=30)
    assert decode_item(message.body) == item


async def test_extend_changes_the_pop_receipt_and_hides_the_message(
    queue: WorkQueueClient,
) -> None:
    await queue.send([ITEMS[1]])
    [message] = await queue.receive(max_messages=1, lease_seconds=1)
    extended = await queue.extend(message, seconds=60)
    assert extended.id == message.id
    assert extended.body == message.body
    assert extended.pop_receipt != message.pop_receipt
    # Well past the first lease, the message is still hidden.
    await asyncio.sleep(2.5)
    assert await queue.receive(max_messages=1, lease_seconds=30) == []
    # The new receipt settles it; the message is gone.
    await queue.delete(extended)
    assert await queue.approximate_count() == 0


async def test_extend_to_zero_makes_the_message_visible_again(queue: WorkQueueClient) -> None:
    await queue.send([ITEMS[1]])
    [message] = await queue.receive(max_messages=1, lease_seconds=60)
    await queue.extend(message, seconds=0)
    [again] = await queue.receive(max_messages=1, lease_seconds=60)
    assert again.id == message.id
    assert again.dequeue_count == 2


async def test_delete_twice_is_fine(queue: WorkQueueClient) -> None:
    await queue.send([ITEMS[2]])
    [message] = await queue.receive(max_messages=1, lease_seconds=30)
    await queue.delete(message)
    await queue.delete(message)
    assert await queue.approximate_count() == 0
    assert await queue.receive(max_messages=1, lease_seconds=30) == []


async def test_move_to_poison(
    queue: WorkQueueClient, poison: WorkQueueClient, azurite: AzuriteInstance, name: str
) -> None:
    await queue.send([ITEMS[0]])
    assert await poison.approximate_count() == 0
    assert await poison.peek() == []
    [message] = await queue.receive(max_messages=1, lease_seconds=30)
    await queue.move_to_poison(message)
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 1
    assert await poison.peek() == [message.body]
    # The poison queue is the host's, "<queue>-poison", and holds base64 text too.
    async with QueueClient.from_connection_string(
        azurite.connection_string, f"{name}-poison"
    ) as raw_poison:
        [raw] = [m async for m in raw_poison.receive_messages(max_messages=1)]
    assert base64.b64decode(raw.content).decode() == encode_item(ITEMS[0])


async def test_the_poison_queue_is_a_queue_of_its_own(
    queue: WorkQueueClient, poison: WorkQueueClient, name: str
) -> None:
    assert poison.queue_name == f"{name}-poison"
    await queue.send([ITEMS[1]])
    [message] = await queue.receive(max_messages=1, lease_seconds=30)
    await queue.move_to_poison(message)
    # Its messages are received, moved on and counted like any queue's.
    [poisoned] = await poison.receive(max_messages=1, lease_seconds=30)
    assert decode_item(poisoned.body) == ITEMS[1]
    assert poisoned.dequeue_count == 1
    await poison.move_to_poison(poisoned)
    assert await poison.approximate_count() == 0
    poison_poison = poison.poison_queue()
    try:
        assert poison_poison.queue_name == f"{name}-poison-poison"
        assert await poison_poison.peek() == [message.body]
    finally:
        await poison_poison.close()
    # Closing the poison queue's clients left this one working.
    await queue.send([ITEMS[2]])
    assert await queue.approximate_count() == 1


async def test_peek_leaves_the_messages_in_place(queue: WorkQueueClient) -> None:
    assert await queue.peek() == []  # before the queue exists
    sent = [BackfillPlanItem(job="j", series=n) for n in range(MAX_PER_RECEIVE + 3)]
    await queue.send(sent)
    peeked = await queue.peek()
    assert len(peeked) == MAX_PER_RECEIVE
    assert {decode_item(body) for body in peeked} <= set(sent)
    assert len(await queue.peek(max_messages=2)) == 2
    assert await queue.approximate_count() == len(sent)
    received = await queue.receive(max_messages=MAX_PER_RECEIVE, lease_seconds=30)
    assert all(m.dequeue_count == 1 for m in received)  # peeking did not dequeue


async def test_approximate_count(queue: WorkQueueClient) -> None:
    assert await queue.approximate_count() == 0  # before the queue exists
    await queue.send([BackfillPlanItem(job="j", series=n) for n in range(7)])
    assert await queue.approximate_count() == 7
    received = await queue.receive(max_messages=3, lease_seconds=30)
    assert await queue.approximate_count() == 7  # leased messages still count
    for message in received:
        await queue.delete(message)
    assert await queue.approximate_count() == 4


async def test_sending_nothing_is_fine(queue: WorkQueueClient) -> None:
    await queue.send([])
    assert await queue.approximate_count() == 0


async def test_storage_down_is_a_storage_unavailable_error(
    start_azurite: AzuriteInstanceFactory,
) -> None:
    instance = start_azurite()
    queue = WorkQueueClient(
        queue_name(), QueueConnection(connection_string=instance.connection_string)
    )
    try:
        await queue.send([ITEMS[1]])
        [message] = await queue.receive(max_messages=1, lease_seconds=30)
        instance.stop()
        calls = {
            "send": queue.send([ITEMS[2]]),
            "receive": queue.receive(max_messages=1, lease_seconds=30),
            "extend": queue.extend(message, seconds=30),
            "delete": queue.delete(message),
            "move_to_poison": queue.move_to_poison(message),
            "approximate_count": queue.approximate_count(),
            "peek": queue.peek(),
        }
        async with asyncio.timeout(WAIT_SECONDS):  # all at once: each waits for its retries
            outcomes = await asyncio.gather(*calls.values(), return_exceptions=True)
        for what, outcome in zip(calls, outcomes, strict=True):
            assert isinstance(outcome, StorageUnavailableError), f"{what}: {outcome!r}"
            assert isinstance(outcome, StorageError)  # what callers catch
    finally:
        await queue.close()


async def test_storage_down_before_first_use(start_azurite: AzuriteInstanceFactory) -> None:
    instance = start_azurite()
    instance.stop()
    queue = WorkQueueClient(
        queue_name(), QueueConnection(connection_string=instance.connection_string)
    )
    try:
        with pytest.raises(StorageUnavailableError):
            async with asyncio.timeout(WAIT_SECONDS):
                await queue.send([ITEMS[0]])
    finally:
        await queue.close()
