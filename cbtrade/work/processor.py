"""WorkItemProcessor: does one work item, as the queue-triggered function hands it over."""

from __future__ import annotations

import logging
import time

from cbtrade.errors import InvalidWorkItemError, WorkItemFailedError
from cbtrade.historical.backfills import BackfillJobs
from cbtrade.historical.topup import TopUpRunner
from cbtrade.telemetry import log_event
from cbtrade.work.items import (
    BackfillJobItem,
    BackfillPlanItem,
    BackfillWindowItem,
    TopUpItem,
    WorkItem,
    decode_item,
)

logger = logging.getLogger(__name__)

POISONED = "retries spent: the work item was moved to the poison queue"


class WorkItemProcessor:
    """Runs work items: a top-up batch, the start of a backfill job, the plan of one of its
    series, a backfill window.

    :meth:`process` returns when the item is done and raises when it should be retried (the
    Functions runtime then retries it, up to ``maxDequeueCount``, and moves it to the poison
    queue). :meth:`poisoned` is for the poison queue's messages: it logs them and records a
    backfill item's failure in its job, so nothing is dropped silently. Both take the
    message's body and dequeue count, positionally, as a queue host hands them over.
    """

    def __init__(self, topup: TopUpRunner, backfills: BackfillJobs) -> None:
        self._topup = topup
        self._backfills = backfills

    async def process(self, body: str, dequeue_count: int = 1) -> None:
        """Do the work item in ``body``; raise for a retry."""
        began = time.monotonic()
        try:
            item = decode_item(body)
            await self._do(item, dequeue_count)
        except InvalidWorkItemError as exc:
            # No retry can make it valid (garbage, or a job that does not exist): log it
            # whole and let it go.
            log_event(logger, "work.invalid_item", level=logging.ERROR, error=str(exc), body=body)
            return
        log_event(
            logger,
            "work.done",
            kind=item.kind,
            dequeue_count=dequeue_count,
            duration_ms=round((time.monotonic() - began) * 1000),
        )

    async def poisoned(self, body: str, dequeue_count: int = 1) -> None:
        """Log a message from the poison queue; record a backfill item's failure (raises,
        for a retry, if that cannot be recorded now)."""
        log_event(logger, "work.poisoned", level=logging.ERROR, body=body)
        try:
            item = decode_item(body)
        except InvalidWorkItemError:
            return
        if isinstance(item, BackfillJobItem | BackfillPlanItem | BackfillWindowItem):
            try:
                await self._backfills.record_failure(item, POISONED)
            except InvalidWorkItemError:
                return

    async def _do(self, item: WorkItem, dequeue_count: int) -> None:
        if isinstance(item, TopUpItem):
            results = await self._topup.run_item(item)
            retry = [result for result in results if result.retryable]
            if retry:
                raise WorkItemFailedError(
                    f"{len(retry)} of {len(results)} {item.exchange} series failed: "
                    + "; ".join(f"{r.series.symbol} {r.series.timeframe}: {r.error}" for r in retry)
                )
        elif isinstance(item, BackfillJobItem):
            await self._backfills.start(item)
        elif isinstance(item, BackfillPlanItem):
            await self._backfills.plan(item)
        else:
            await self._backfills.fill(item, attempt=dequeue_count)
