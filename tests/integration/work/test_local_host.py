"""LocalQueueHost on Azurite: the queue trigger's behaviour, in-process.

No assertion depends on how fast the machine is: waits are bounded generously (a hang fails
instead of blocking), and the concurrency test makes handlers wait for each other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import suppress

import pytest

from cbtrade.errors import StorageUnavailableError
from cbtrade.work.connection import QueueConnection
from cbtrade.work.items import BackfillPlanItem, encode_item
from cbtrade.work.local_host import LocalQueueHost, QueueHostOptions
from cbtrade.work.queue import ReceivedMessage, WorkQueueClient
from tests.fixtures.azurite import AzuriteInstance

pytestmark = pytest.mark.azurite

RUN_LIMIT_SECONDS = 60
QUICK = QueueHostOptions(
    batch_size=4,
    new_batch_threshold=2,
    max_dequeue_count=5,
    visibility_timeout_seconds=0,
    max_polling_interval_seconds=0.2,
)


def items(count: int) -> list[BackfillPlanItem]:
    return [BackfillPlanItem(job="job", series=n) for n in range(count)]


def bodies(count: int) -> list[str]:
    return [encode_item(item) for item in items(count)]


class Recorder:
    """A handler and a poison handler that record what they were given."""

    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, int]] = []
        self.poisoned: list[str] = []

    async def handle(self, body: str, dequeue_count: int) -> None:
        self.calls.append((body, dequeue_count))
        if sum(b == body for b, _ in self.calls) <= self.failures:
            raise RuntimeError(f"failure {dequeue_count} of {body}")

    async def poison(self, body: str) -> None:
        self.poisoned.append(body)

    def processed(self) -> Counter[str]:
        return Counter(body for body, _ in self.calls)


@pytest.fixture
async def queue(azurite: AzuriteInstance) -> AsyncIterator[WorkQueueClient]:
    client = WorkQueueClient.from_connection(
        f"q-{uuid.uuid4().hex[:12]}", QueueConnection(connection_string=azurite.connection_string)
    )
    yield client
    await client.close()


async def drain(host: LocalQueueHost) -> None:
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        await host.run(until_idle=True)


async def test_every_message_is_processed_once_and_deleted(queue: WorkQueueClient) -> None:
    await queue.send(items(40))
    recorder = Recorder()
    await drain(LocalQueueHost(queue, recorder.handle, recorder.poison, options=QUICK))
    assert recorder.processed() == Counter(bodies(40))
    assert {count for _, count in recorder.calls} == {1}
    assert recorder.poisoned == []
    assert await queue.approximate_count() == 0
    assert await queue.approximate_count(poison=True) == 0


async def test_an_empty_queue_returns_at_once(queue: WorkQueueClient) -> None:
    recorder = Recorder()
    await drain(LocalQueueHost(queue, recorder.handle, recorder.poison, options=QUICK))
    assert recorder.calls == []


async def test_a_failing_message_is_retried_until_it_succeeds(queue: WorkQueueClient) -> None:
    await queue.send(items(3))
    recorder = Recorder(failures=2)
    await drain(LocalQueueHost(queue, recorder.handle, recorder.poison, options=QUICK))
    assert recorder.processed() == Counter({body: 3 for body in bodies(3)})
    for body in bodies(3):
        assert [count for b, count in recorder.calls if b == body] == [1, 2, 3]
    assert recorder.poisoned == []
    assert await queue.approximate_count() == 0
    assert await queue.approximate_count(poison=True) == 0


async def test_a_retry_waits_for_the_visibility_timeout(queue: WorkQueueClient) -> None:
    """The failed message stays hidden for visibilityTimeout (counted, so until_idle waits)."""
    await queue.send(items(1))
    recorder = Recorder(failures=1)
    options = QUICK._replace(visibility_timeout_seconds=1)
    await drain(LocalQueueHost(queue, recorder.handle, recorder.poison, options=options))
    assert [count for _, count in recorder.calls] == [1, 2]
    assert await queue.approximate_count() == 0


async def test_a_message_that_always_fails_ends_on_the_poison_queue(
    queue: WorkQueueClient,
) -> None:
    await queue.send(items(2))
    recorder = Recorder(failures=10**6)
    options = QUICK._replace(max_dequeue_count=3)
    await drain(LocalQueueHost(queue, recorder.handle, recorder.poison, options=options))
    assert recorder.processed() == Counter({body: 3 for body in bodies(2)})
    for body in bodies(2):
        assert [count for b, count in recorder.calls if b == body] == [1, 2, 3]
    assert sorted(recorder.poisoned) == sorted(bodies(2))  # each exactly once
    assert await queue.approximate_count() == 0
    assert await queue.approximate_count(poison=True) == 2
    assert sorted(await queue.peek_poison()) == sorted(bodies(2))


async def test_a_message_dequeued_too_often_is_poisoned_unprocessed(
    queue: WorkQueueClient,
) -> None:
    """One another process left behind after its last try (dequeue count above the limit)."""
    await queue.send(items(1))
    options = QUICK._replace(max_dequeue_count=2)
    for _ in range(2):  # two receives whose leases end: as if a process died twice
        [message] = await queue.receive(max_messages=1, lease_seconds=30)
        await queue.extend(message, seconds=0)
    recorder = Recorder()
    await drain(LocalQueueHost(queue, recorder.handle, recorder.poison, options=options))
    assert recorder.calls == []
    assert recorder.poisoned == bodies(1)
    assert await queue.approximate_count(poison=True) == 1


async def test_a_failing_poison_handler_is_logged_not_raised(queue: WorkQueueClient) -> None:
    await queue.send(items(1))
    recorder = Recorder(failures=10**6)

    async def poison(body: str) -> None:
        recorder.poisoned.append(body)
        raise RuntimeError("the poison handler failed")

    options = QUICK._replace(max_dequeue_count=1)
    await drain(LocalQueueHost(queue, recorder.handle, poison, options=options))
    assert recorder.poisoned == bodies(1)
    assert await queue.approximate_count() == 0


class WatchedRenewals(WorkQueueClient):
    """Counts lease renewals; with ``fail_first`` the first one fails as in a storage blip."""

    def __init__(self, *args: object, fail_first: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fail_first = fail_first
        self.attempts = 0
        self.renewals = 0
        self.failed_once = asyncio.Event()
        self.renewed_twice = asyncio.Event()

    async def extend(self, message: ReceivedMessage, *, seconds: int) -> ReceivedMessage:
        self.attempts += 1
        if self.fail_first and self.attempts == 1:
            self.failed_once.set()
            raise StorageUnavailableError("update a message: simulated outage")
        renewed = await super().extend(message, seconds=seconds)
        self.renewals += 1
        if self.renewals >= 2:
            self.renewed_twice.set()
        return renewed


async def test_a_slow_message_is_not_processed_twice(azurite: AzuriteInstance) -> None:
    """The handler outlives its first lease twice over; the renewals keep it hidden."""
    queue = WatchedRenewals(
        f"q-{uuid.uuid4().hex[:12]}", connection_string=azurite.connection_string
    )
    try:
        await queue.send(items(1))
        recorder = Recorder()

        async def slow(body: str, dequeue_count: int) -> None:
            await recorder.handle(body, dequeue_count)
            async with asyncio.timeout(RUN_LIMIT_SECONDS):
                await queue.renewed_twice.wait()

        # Renewed every 3 s (half the lease), each with 3 s to spare.
        host = LocalQueueHost(queue, slow, recorder.poison, options=QUICK, lease_seconds=6)
        await drain(host)
        assert recorder.calls == [(bodies(1)[0], 1)]
        assert await queue.approximate_count() == 0
    finally:
        await queue.close()


async def test_a_failed_lease_renewal_does_not_lose_the_result(
    azurite: AzuriteInstance,
) -> None:
    queue = WatchedRenewals(
        f"q-{uuid.uuid4().hex[:12]}",
        connection_string=azurite.connection_string,
        fail_first=True,
    )
    try:
        await queue.send(items(1))
        recorder = Recorder()

        async def handler(body: str, dequeue_count: int) -> None:
            await recorder.handle(body, dequeue_count)
            async with asyncio.timeout(RUN_LIMIT_SECONDS):
                await queue.failed_once.wait()

        # Renewal after 3 s fails; the handler then returns well within the 6 s lease.
        host = LocalQueueHost(queue, handler, recorder.poison, options=QUICK, lease_seconds=6)
        await drain(host)
        assert recorder.calls == [(bodies(1)[0], 1)]
        assert await queue.approximate_count() == 0
    finally:
        await queue.close()


@pytest.mark.parametrize(
    ("limit", "messages"),
    [
        pytest.param(1, 5, id="one"),
        pytest.param(4, 20, id="four"),
        pytest.param(None, 60, id="host-json-batch-plus-threshold"),
        pytest.param(40, 90, id="more-than-one-receive"),
    ],
)
async def test_at_most_max_in_flight_handlers_run_at_once(
    queue: WorkQueueClient, limit: int | None, messages: int
) -> None:
    await queue.send(items(messages))
    most_allowed = limit or QUICK.max_in_flight
    inside = 0
    most = 0
    full = asyncio.Event()
    recorder = Recorder()

    async def handler(body: str, dequeue_count: int) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        try:
            await recorder.handle(body, dequeue_count)
            if inside >= most_allowed:
                full.set()
            # Wait until the limit's worth of handlers are in (or a generous time has passed):
            # so the peak is reached however slow the machine is.
            with suppress(TimeoutError):
                async with asyncio.timeout(RUN_LIMIT_SECONDS / 3):
                    await full.wait()
        finally:
            inside -= 1

    host = LocalQueueHost(queue, handler, recorder.poison, options=QUICK, max_in_flight=limit)
    await drain(host)
    assert most <= most_allowed
    assert most == most_allowed
    assert full.is_set()
    assert recorder.processed() == Counter(bodies(messages))
    assert await queue.approximate_count() == 0
