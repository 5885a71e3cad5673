"""LocalQueueHost and run_local_hosts on Azurite: the queue trigger's behaviour, in-process.

A message that fails ``max_dequeue_count`` times is moved to ``<queue>-poison``; the poison
queue is drained by a second host whose handler is the poison handler (as Azure runs a second
trigger on the poison queue), and a poison message whose handler keeps failing goes on to
``<queue>-poison-poison``.

No assertion depends on how fast the machine is: waits are bounded generously (a hang fails
instead of blocking), and the concurrency test makes handlers wait for each other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import suppress

import pytest

from cbtrade.errors import StorageUnavailableError
from cbtrade.work.connection import QueueConnection
from cbtrade.work.items import BackfillPlanItem, encode_item
from cbtrade.work.local_host import LocalQueueHost, QueueHostOptions, run_local_hosts
from cbtrade.work.queue import MAX_PER_RECEIVE, ReceivedMessage, WorkQueueClient
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


def items(count: int, job: str = "job") -> list[BackfillPlanItem]:
    return [BackfillPlanItem(job=job, series=n) for n in range(count)]


def bodies(count: int, job: str = "job") -> list[str]:
    return [encode_item(item) for item in items(count, job)]


class Recorder:
    """A handler (failing each body's first ``failures`` tries) that records its calls."""

    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, int]] = []

    async def handle(self, body: str, dequeue_count: int) -> None:
        self.calls.append((body, dequeue_count))
        if sum(b == body for b, _ in self.calls) <= self.failures:
            raise RuntimeError(f"failure {dequeue_count} of {body}")

    def processed(self) -> Counter[str]:
        return Counter(body for body, _ in self.calls)

    def counts(self, body: str) -> list[int]:
        """The dequeue counts ``body`` was handled with, in order."""
        return [count for b, count in self.calls if b == body]


class Failing(Recorder):
    """Fails ``body`` whose job is ``"bad"`` always, succeeds for any other."""

    async def handle(self, body: str, dequeue_count: int) -> None:
        self.calls.append((body, dequeue_count))
        if '"job":"bad"' in body:
            raise RuntimeError(f"failure {dequeue_count} of {body}")


def moved_to_poison(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.__dict__.get("event") == "work.moved_to_poison"]


def new_queue(azurite: AzuriteInstance) -> WorkQueueClient:
    return WorkQueueClient(
        f"q-{uuid.uuid4().hex[:12]}", QueueConnection(connection_string=azurite.connection_string)
    )


@pytest.fixture
async def queue(azurite: AzuriteInstance) -> AsyncIterator[WorkQueueClient]:
    client = new_queue(azurite)
    yield client
    await client.close()


@pytest.fixture
async def poison_poison(poison: WorkQueueClient) -> AsyncIterator[WorkQueueClient]:
    """The poison queue's poison queue, ``<queue>-poison-poison``."""
    client = poison.poison_queue()
    yield client
    await client.close()


async def drain(host: LocalQueueHost) -> None:
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        await host.run(until_idle=True)


async def drain_all(
    queue: WorkQueueClient,
    handler: Recorder,
    poison_handler: Recorder,
    options: QueueHostOptions = QUICK,
) -> None:
    async with asyncio.timeout(RUN_LIMIT_SECONDS * 2):
        await run_local_hosts(
            [(queue, handler.handle, poison_handler.handle)], until_idle=True, options=options
        )


async def test_every_message_is_processed_once_and_deleted(
    queue: WorkQueueClient, poison: WorkQueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    await queue.send(items(40))
    recorder = Recorder()
    await drain(LocalQueueHost(queue, recorder.handle, options=QUICK))
    assert recorder.processed() == Counter(bodies(40))
    assert {count for _, count in recorder.calls} == {1}
    assert moved_to_poison(caplog) == []
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0


async def test_an_empty_queue_returns_at_once(queue: WorkQueueClient) -> None:
    recorder = Recorder()
    await drain(LocalQueueHost(queue, recorder.handle, options=QUICK))
    assert recorder.calls == []


async def test_a_failing_message_is_retried_until_it_succeeds(
    queue: WorkQueueClient, poison: WorkQueueClient
) -> None:
    await queue.send(items(3))
    recorder = Recorder(failures=2)
    await drain(LocalQueueHost(queue, recorder.handle, options=QUICK))
    assert recorder.processed() == Counter({body: 3 for body in bodies(3)})
    for body in bodies(3):
        assert recorder.counts(body) == [1, 2, 3]
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0


async def test_a_retry_waits_for_the_visibility_timeout(queue: WorkQueueClient) -> None:
    """The failed message stays hidden for visibilityTimeout (counted, so until_idle waits)."""
    await queue.send(items(1))
    recorder = Recorder(failures=1)
    options = QUICK._replace(visibility_timeout_seconds=1)
    await drain(LocalQueueHost(queue, recorder.handle, options=options))
    assert [count for _, count in recorder.calls] == [1, 2]
    assert await queue.approximate_count() == 0


async def test_a_message_that_always_fails_is_moved_to_the_poison_queue(
    queue: WorkQueueClient, poison: WorkQueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    await queue.send(items(2))
    recorder = Recorder(failures=10**6)
    options = QUICK._replace(max_dequeue_count=3)
    await drain(LocalQueueHost(queue, recorder.handle, options=options))
    assert recorder.processed() == Counter({body: 3 for body in bodies(2)})
    for body in bodies(2):
        assert recorder.counts(body) == [1, 2, 3]
    assert await queue.approximate_count() == 0
    assert poison.queue_name == f"{queue.queue_name}-poison"
    assert await poison.approximate_count() == 2  # each exactly once
    assert sorted(await poison.peek()) == sorted(bodies(2))
    records = moved_to_poison(caplog)
    assert sorted(r.__dict__["body"] for r in records) == sorted(bodies(2))
    assert all(r.levelno == logging.ERROR and r.__dict__["dequeue_count"] == 3 for r in records)


async def test_a_message_dequeued_too_often_is_poisoned_unprocessed(
    queue: WorkQueueClient, poison: WorkQueueClient
) -> None:
    """One another process left behind after its last try (dequeue count above the limit)."""
    await queue.send(items(1))
    options = QUICK._replace(max_dequeue_count=2)
    for _ in range(2):  # two receives whose leases end: as if a process died twice
        [message] = await queue.receive(max_messages=1, lease_seconds=30)
        await queue.extend(message, seconds=0)
    recorder = Recorder()
    await drain(LocalQueueHost(queue, recorder.handle, options=options))
    assert recorder.calls == []
    assert await queue.approximate_count() == 0
    assert await poison.peek() == bodies(1)


async def test_a_second_host_on_the_poison_queue_runs_the_poison_handler(
    queue: WorkQueueClient, poison: WorkQueueClient, poison_poison: WorkQueueClient
) -> None:
    await queue.send(items(2))
    recorder = Recorder(failures=10**6)
    options = QUICK._replace(max_dequeue_count=2)
    await drain(LocalQueueHost(queue, recorder.handle, options=options))
    assert await poison.approximate_count() == 2
    poisoned = Recorder()
    await drain(LocalQueueHost(poison, poisoned.handle, options=options))
    assert sorted(poisoned.calls) == sorted((body, 1) for body in bodies(2))
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0
    assert await poison_poison.approximate_count() == 0


async def test_run_local_hosts_runs_the_poison_handler_on_each_poisoned_message(
    queue: WorkQueueClient, poison: WorkQueueClient, poison_poison: WorkQueueClient
) -> None:
    await queue.send(items(3) + items(2, job="bad"))
    handler = Failing()
    poisoned = Recorder()
    await drain_all(queue, handler, poisoned, QUICK._replace(max_dequeue_count=3))
    for body in bodies(3):
        assert handler.counts(body) == [1]
    for body in bodies(2, job="bad"):
        assert handler.counts(body) == [1, 2, 3]
    # Each poisoned message exactly once, as a fresh message of the poison queue.
    assert sorted(poisoned.calls) == sorted((body, 1) for body in bodies(2, job="bad"))
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0
    assert await poison_poison.approximate_count() == 0


async def test_run_local_hosts_until_idle_returns_with_both_queues_empty(
    queue: WorkQueueClient, poison: WorkQueueClient, poison_poison: WorkQueueClient
) -> None:
    """Work and poison messages (one put on the poison queue directly, as a leftover)."""
    await queue.send(items(20) + items(5, job="bad"))
    await poison.send(items(1, job="leftover"))
    handler = Failing()
    poisoned = Recorder(failures=1)  # each poison message fails once, then succeeds
    await drain_all(queue, handler, poisoned, QUICK._replace(max_dequeue_count=2))
    assert handler.processed() == Counter(bodies(20)) + Counter(
        {body: 2 for body in bodies(5, job="bad")}
    )
    assert poisoned.processed() == Counter(
        {body: 2 for body in bodies(5, job="bad") + bodies(1, job="leftover")}
    )
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0
    assert await poison_poison.approximate_count() == 0


async def test_with_until_idle_the_poison_queue_is_drained_after_the_work_queue(
    queue: WorkQueueClient, poison: WorkQueueClient
) -> None:
    await queue.send(items(6) + items(3, job="bad"))
    handler = Failing()
    seen_on_first_poison_call: list[int] = []

    class Poisoned(Recorder):
        async def handle(self, body: str, dequeue_count: int) -> None:
            if not self.calls:
                seen_on_first_poison_call.append(len(handler.calls))
            await super().handle(body, dequeue_count)

    poisoned = Poisoned()
    await drain_all(queue, handler, poisoned, QUICK._replace(max_dequeue_count=2))
    # Every try of the work queue came before the first poison message was handled.
    assert seen_on_first_poison_call == [6 + 3 * 2]
    assert sorted(poisoned.processed()) == sorted(bodies(3, job="bad"))


async def test_a_failing_poison_handler_is_retried(
    queue: WorkQueueClient, poison: WorkQueueClient, poison_poison: WorkQueueClient
) -> None:
    await queue.send(items(2, job="bad"))
    handler = Failing()
    poisoned = Recorder(failures=2)
    await drain_all(queue, handler, poisoned, QUICK._replace(max_dequeue_count=4))
    for body in bodies(2, job="bad"):
        assert handler.counts(body) == [1, 2, 3, 4]
        assert poisoned.counts(body) == [1, 2, 3]
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0
    assert await poison_poison.approximate_count() == 0


async def test_a_poison_message_whose_handler_always_fails_ends_on_poison_poison(
    queue: WorkQueueClient,
    poison: WorkQueueClient,
    poison_poison: WorkQueueClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As Azure does: the poison queue's trigger has a poison queue of its own."""
    await queue.send(items(2, job="bad"))
    handler = Failing()
    poisoned = Recorder(failures=10**6)
    await drain_all(queue, handler, poisoned, QUICK._replace(max_dequeue_count=3))
    for body in bodies(2, job="bad"):
        assert handler.counts(body) == [1, 2, 3]
        assert poisoned.counts(body) == [1, 2, 3]
    assert await queue.approximate_count() == 0
    assert await poison.approximate_count() == 0
    assert poison_poison.queue_name == f"{queue.queue_name}-poison-poison"
    assert await poison_poison.approximate_count() == 2
    assert sorted(await poison_poison.peek()) == sorted(bodies(2, job="bad"))
    # Moved twice each: from the queue, then from its poison queue.
    assert Counter(r.__dict__["body"] for r in moved_to_poison(caplog)) == Counter(
        {body: 2 for body in bodies(2, job="bad")}
    )


async def test_run_local_hosts_runs_both_hosts_until_cancelled(
    queue: WorkQueueClient, poison: WorkQueueClient
) -> None:
    """Without until_idle, the poison host runs beside the work host, not after it."""
    await queue.send(items(1, job="bad"))
    handler = Failing()
    poisoned = Recorder()
    task = asyncio.create_task(
        run_local_hosts(
            [(queue, handler.handle, poisoned.handle)], options=QUICK._replace(max_dequeue_count=2)
        )
    )
    try:
        # Until the poison message was handled and deleted: nothing is in flight any more.
        async with asyncio.timeout(RUN_LIMIT_SECONDS):
            while not poisoned.calls or await poison.approximate_count() > 0:
                await asyncio.sleep(0.05)
        assert not task.done()  # still running: it runs until cancelled
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            async with asyncio.timeout(RUN_LIMIT_SECONDS):
                await task
    assert task.cancelled()
    assert handler.counts(bodies(1, job="bad")[0]) == [1, 2]
    assert poisoned.calls == [(bodies(1, job="bad")[0], 1)]
    assert await queue.approximate_count() == 0


async def test_a_cancelled_run_local_hosts_returns_after_every_host_wound_down(
    queue: WorkQueueClient,
) -> None:
    await queue.send(items(1, job="bad"))
    handler = Failing()
    handling = asyncio.Event()
    wound_down = asyncio.Event()

    async def poison_handler(body: str, dequeue_count: int) -> None:
        handling.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            await asyncio.sleep(0.5)  # cleanup that takes a while (a progress record, say)
            wound_down.set()

    task = asyncio.create_task(
        run_local_hosts(
            [(queue, handler.handle, poison_handler)], options=QUICK._replace(max_dequeue_count=1)
        )
    )
    try:
        async with asyncio.timeout(RUN_LIMIT_SECONDS):
            await handling.wait()
        task.cancel()
        with suppress(asyncio.CancelledError):
            async with asyncio.timeout(RUN_LIMIT_SECONDS):
                await task
        assert wound_down.is_set()
    finally:
        task.cancel()
        # Whatever run_local_hosts left behind ends before this test's event loop does.
        async with asyncio.timeout(RUN_LIMIT_SECONDS):
            await wound_down.wait()
            others = asyncio.all_tasks() - {asyncio.current_task()}
            await asyncio.gather(*others, return_exceptions=True)


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
        f"q-{uuid.uuid4().hex[:12]}", QueueConnection(connection_string=azurite.connection_string)
    )
    try:
        await queue.send(items(1))
        recorder = Recorder()

        async def slow(body: str, dequeue_count: int) -> None:
            await recorder.handle(body, dequeue_count)
            async with asyncio.timeout(RUN_LIMIT_SECONDS):
                await queue.renewed_twice.wait()

        # Renewed every 3 s (half the lease), each with 3 s to spare.
        await drain(LocalQueueHost(queue, slow, options=QUICK, lease_seconds=6))
        assert recorder.calls == [(bodies(1)[0], 1)]
        assert await queue.approximate_count() == 0
    finally:
        await queue.close()


async def test_a_failed_lease_renewal_does_not_lose_the_result(
    azurite: AzuriteInstance,
) -> None:
    queue = WatchedRenewals(
        f"q-{uuid.uuid4().hex[:12]}",
        QueueConnection(connection_string=azurite.connection_string),
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
        await drain(LocalQueueHost(queue, handler, options=QUICK, lease_seconds=6))
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
        pytest.param(MAX_PER_RECEIVE + 8, 90, id="more-than-one-receive"),
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

    await drain(LocalQueueHost(queue, handler, options=QUICK, max_in_flight=limit))
    assert most <= most_allowed
    assert most == most_allowed
    assert full.is_set()
    assert recorder.processed() == Counter(bodies(messages))
    assert await queue.approximate_count() == 0
