"""LocalQueueHost: drains the work queue in-process where no Functions host does.

In Azure the Functions runtime runs the queue trigger: it receives messages in batches,
keeps each hidden while it is processed, retries a failed one after ``visibilityTimeout``,
and moves one that failed ``maxDequeueCount`` times to the poison queue. Under uvicorn
(``scripts/serve.sh --azurite``), in the benchmarks and in the tests there is no runtime, so
this host does the same with the same settings, read from ``host.json``: at most
``batchSize + newBatchThreshold`` messages in flight, the same retry delay and dequeue limit,
and the same poison queue. Messages a killed process held reappear once their lease ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple

from cbtrade.errors import ConfigurationError, StorageError
from cbtrade.telemetry import log_event
from cbtrade.work.queue import MAX_PER_RECEIVE, ReceivedMessage, WorkQueueClient

logger = logging.getLogger(__name__)

HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
_FIRST_POLL_SECONDS = 0.05

Handler = Callable[[str, int], Awaitable[None]]
"""Processes one message: its body and how often it has been dequeued."""


class QueueHostOptions(NamedTuple):
    """The queue trigger's settings (``host.json`` ``extensions.queues``)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout_seconds: float = 30.0
    max_polling_interval_seconds: float = 2.0

    @property
    def max_in_flight(self) -> int:
        """Messages processed at once, as the host allows."""
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_host_json(cls, path: Path | None = None) -> QueueHostOptions:
        """The options ``host.json`` (the repo's by default) sets; these defaults for those
        it leaves out."""
        source = path or HOST_JSON
        defaults = cls()
        try:
            queues = json.loads(source.read_text()).get("extensions", {}).get("queues", {})
            return cls(
                batch_size=int(queues.get("batchSize", defaults.batch_size)),
                new_batch_threshold=int(
                    queues.get("newBatchThreshold", defaults.new_batch_threshold)
                ),
                max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
                visibility_timeout_seconds=_seconds(
                    queues.get("visibilityTimeout"), defaults.visibility_timeout_seconds
                ),
                max_polling_interval_seconds=_seconds(
                    queues.get("maxPollingInterval"), defaults.max_polling_interval_seconds
                ),
            )
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"cannot read the queue settings of {source}: {exc}") from None


class LocalQueueHost:
    """Runs ``handler`` on one queue's messages, at most ``max_in_flight`` at once; a message
    that fails ``max_dequeue_count`` times goes to the queue's poison queue."""

    def __init__(
        self,
        queue: WorkQueueClient,
        handler: Handler,
        *,
        options: QueueHostOptions | None = None,
        max_in_flight: int | None = None,
        lease_seconds: int = 60,
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._options = options or QueueHostOptions.from_host_json()
        self._max_in_flight = max_in_flight or self._options.max_in_flight
        self._lease_seconds = lease_seconds
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, *, until_idle: bool = False) -> None:
        """Process messages until cancelled, or with ``until_idle`` until the queue is empty
        and nothing is in flight."""
        poll = _FIRST_POLL_SECONDS
        try:
            while True:
                room = self._max_in_flight - len(self._in_flight)
                received = await self._receive(min(room, MAX_PER_RECEIVE)) if room > 0 else []
                for message in received:
                    task = asyncio.create_task(self._settle(message))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                if received:
                    poll = _FIRST_POLL_SECONDS
                    continue
                if until_idle and not self._in_flight and await self._queue_is_empty():
                    return
                if self._in_flight and room <= 0:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(poll)
                    poll = min(poll * 2, self._options.max_polling_interval_seconds)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _queue_is_empty(self) -> bool:
        """Whether no message waits, counting those retried later or leased by a process
        that died; False when the queue cannot be asked (it is asked again)."""
        try:
            return await self._queue.approximate_count() == 0
        except StorageError as exc:
            log_event(logger, "work.receive_failed", level=logging.WARNING, error=str(exc))
            return False

    async def _receive(self, count: int) -> list[ReceivedMessage]:
        try:
            return await self._queue.receive(max_messages=count, lease_seconds=self._lease_seconds)
        except StorageError as exc:
            log_event(logger, "work.receive_failed", level=logging.WARNING, error=str(exc))
            return []

    async def _settle(self, message: ReceivedMessage) -> None:
        """Process one message and delete it; on failure, retry it later or poison it."""
        if message.dequeue_count > self._options.max_dequeue_count:
            try:
                await self._poison(message)
            except StorageError as exc:
                log_event(logger, "work.settle_failed", level=logging.WARNING, error=str(exc))
            return
        holder = [message]
        processed = asyncio.Event()
        renewal = asyncio.create_task(self._renew(holder, processed))
        try:
            await self._handler(message.body, message.dequeue_count)
        except Exception as exc:
            failed: BaseException | None = exc
        else:
            failed = None
        finally:
            # Not cancelled: a renewal under way ends, so holder has the newest pop receipt.
            processed.set()
            try:
                await renewal
            except asyncio.CancelledError:
                renewal.cancel()
                raise
        try:
            if failed is None:
                await self._queue.delete(holder[0])
            elif message.dequeue_count >= self._options.max_dequeue_count:
                await self._poison(holder[0])
            else:
                log_event(
                    logger,
                    "work.retry",
                    level=logging.WARNING,
                    dequeue_count=message.dequeue_count,
                    error=f"{type(failed).__name__}: {failed}",
                )
                delay = round(self._options.visibility_timeout_seconds)
                await self._queue.extend(holder[0], seconds=delay)
        except StorageError as exc:
            # The message's lease runs out and it comes back: nothing is lost.
            log_event(logger, "work.settle_failed", level=logging.WARNING, error=str(exc))

    async def _renew(self, holder: list[ReceivedMessage], processed: asyncio.Event) -> None:
        """Keep the message hidden while it is processed, as the host does."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(processed.wait(), self._lease_seconds / 2)
            if processed.is_set():
                return
            try:
                holder[0] = await self._queue.extend(holder[0], seconds=self._lease_seconds)
            except StorageError as exc:
                # Tried again half a lease later; should the lease end, the message comes
                # back and is processed again (items are idempotent).
                log_event(logger, "work.renew_failed", level=logging.WARNING, error=str(exc))

    async def _poison(self, message: ReceivedMessage) -> None:
        await self._queue.move_to_poison(message)
        log_event(
            logger,
            "work.moved_to_poison",
            level=logging.ERROR,
            dequeue_count=message.dequeue_count,
            body=message.body,
        )


async def run_local_hosts(
    queues: Sequence[tuple[WorkQueueClient, Handler, Handler]],
    *,
    until_idle: bool = False,
    options: QueueHostOptions | None = None,
    max_in_flight: int | None = None,
    lease_seconds: int = 60,
) -> None:
    """Drain each queue with its handler and its poison queue with its poison handler, as
    the Functions host runs a queue trigger and a trigger on its poison queue (a poison
    message whose handler keeps failing goes on to ``<queue>-poison-poison``).

    Until cancelled; with ``until_idle`` until every queue is empty, the poison queues
    drained after the queues (their messages come from them).
    """

    def host(queue: WorkQueueClient, handler: Handler) -> LocalQueueHost:
        return LocalQueueHost(
            queue,
            handler,
            options=options,
            max_in_flight=max_in_flight,
            lease_seconds=lease_seconds,
        )

    poison_queues = [queue.poison_queue() for queue, _, _ in queues]
    work = [host(queue, handler) for queue, handler, _ in queues]
    poison = [
        host(poison_queue, poison_handler)
        for poison_queue, (_, _, poison_handler) in zip(poison_queues, queues, strict=True)
    ]
    try:
        if until_idle:
            await _run_all([host.run(until_idle=True) for host in work])
            await _run_all([host.run(until_idle=True) for host in poison])
        else:
            await _run_all([host.run() for host in [*work, *poison]])
    finally:
        for poison_queue in poison_queues:
            await poison_queue.close()


async def _run_all(runs: list[Coroutine[Any, Any, None]]) -> None:
    """Run all until each ends; when one fails or this is cancelled, the others are cancelled
    (once: a second cancellation would cut their clean-up short) and waited for, so none
    still uses a client closed after this returns."""
    tasks = [asyncio.create_task(run) for run in runs]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in done:
        task.result()  # the first failure, raised


def _seconds(timespan: object, default: float) -> float:
    """A host.json timespan ("00:00:30", "hh:mm:ss") in seconds."""
    if timespan is None:
        return default
    hours, minutes, seconds = str(timespan).split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
