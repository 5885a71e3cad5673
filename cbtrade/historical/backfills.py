"""BackfillJobs: bulk backfills of many series as queued work, with progress in storage.

A job is a list of series and a range (or "since listing"). Creating it checks every series
with its exchange, writes the job's document and puts one *job* item on the work queue; that
item queues one *plan* item per series. Planning a series finds its range (for "since
listing", the series' first candle, by the fetcher's listing search), records it, queues its
*windows* of ``window_calls`` whole exchange calls, each its own work item, and only then
marks the series planned. Filling a window is a gap-fill of that range, so a window
processed twice costs no second exchange call and counts once.

Progress lives in service documents beside the candles, one per series
(``backfills/<job>/series/<n>``), updated with conditional writes: windows done (with the
candles the window holds), failed (after the queue's retries, or at once for errors a retry
cannot fix, such as history the exchange does not keep) and the last error of a window being
retried. Jobs survive restarts because all of their state is in the storage account and the
queue.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from cbtrade.errors import (
    PERMANENT_ERRORS,
    CbTradeError,
    ExchangeHistoryUnavailableError,
    InvalidInputError,
    InvalidWorkItemError,
    NotFoundError,
    WorkQueueUnavailableError,
)
from cbtrade.exchange_source.history_edges import GENESIS_MS
from cbtrade.exchange_source.interfaces import IDataSourceConnector
from cbtrade.historical.fetcher import HistoricalFetcher, closed_end
from cbtrade.price_types import split_series_symbol
from cbtrade.storage.interfaces import IStorageManager
from cbtrade.telemetry import log_event
from cbtrade.timeframes import align_down, align_up, timeframe_to_ms
from cbtrade.work.items import BackfillJobItem, BackfillPlanItem, BackfillWindowItem

if TYPE_CHECKING:
    from cbtrade.work.queue import WorkQueueClient

logger = logging.getLogger(__name__)

_Change = Callable[[dict[str, Any]], dict[str, Any]]
"""A change to a series' progress document (applied again after a lost write race)."""
MAX_LISTED = 100
"""Failures and retried windows listed in a job's progress, at most."""


class BackfillSeries(NamedTuple):
    """One series of a backfill job."""

    exchange: str
    symbol: str
    timeframe: str


class BackfillJobs:
    """Creates backfill jobs, does their work items, and reports their progress."""

    def __init__(
        self,
        fetcher: HistoricalFetcher,
        storage: IStorageManager,
        connector: IDataSourceConnector,
        queue: WorkQueueClient | None,
        *,
        max_series: int,
        max_calls: int,
        window_calls: int,
    ) -> None:
        self._fetcher = fetcher
        self._storage = storage
        self._connector = connector
        self._queue = queue
        self._max_series = max_series
        self._max_calls = max_calls
        self._window_calls = window_calls

    async def create(
        self,
        series: Sequence[BackfillSeries],
        *,
        start: int | None,
        end: int | None,
        since_listing: bool,
        created_by: str | None,
    ) -> dict[str, Any]:
        """Check and record a job and queue it; its progress.

        Raises InvalidInputError for a request out of bounds (series count, exchange calls, a
        timeframe the exchange does not offer), NotFoundError for an unknown exchange or
        symbol, ExchangeHistoryUnavailableError for a range the exchange does not keep, and
        WorkQueueUnavailableError when no work queue is configured; nothing is written then.
        """
        now = self._fetcher.now()
        unique = list(dict.fromkeys(series))
        if not unique or len(unique) > self._max_series:
            raise InvalidInputError(
                f"series: give 1 to {self._max_series} series (CBTRADE_BACKFILL_MAX_SERIES), "
                f"not {len(unique)}"
            )
        if since_listing == (start is not None):
            raise InvalidInputError("give either start or since_listing=true, not both or neither")
        end = now if end is None else min(end, now)
        first = GENESIS_MS if start is None else start
        if first >= end:
            raise InvalidInputError(f"start ({first}) must be before end ({end}) and now")
        estimates = [await self._checked_calls(one, start, first, end) for one in unique]
        calls = sum(estimates)
        if calls > self._max_calls:
            reach = "from 2009 on, " if since_listing else ""
            raise InvalidInputError(
                f"the job needs up to {calls} exchange calls ({reach}at most "
                f"{self._max_calls} per job, CBTRADE_BACKFILL_MAX_CALLS): split it into "
                "smaller jobs"
            )
        queue = self._require_queue()
        job_id = secrets.token_hex(8)
        job = {
            "id": job_id,
            "created_at": now,
            "created_by": created_by,
            "series": [list(one) for one in unique],
            "start": start,
            "end": end,
            "since_listing": since_listing,
            "window_calls": self._window_calls,
            "estimated_windows": [
                None if since_listing else -(-estimate // self._window_calls)
                for estimate in estimates
            ],
            "state": "queued",
            "error": None,
        }
        await self._storage.update_document(_job_doc(job_id), lambda _: job)
        try:
            await queue.send([BackfillJobItem(job=job_id)])
        except CbTradeError as exc:
            await self._mark_job_failed(job_id, f"not queued: {exc.code}: {exc}")
            raise
        log_event(
            logger,
            "backfill.created",
            job=job_id,
            series=len(unique),
            exchange_calls=calls,
            since_listing=since_listing,
            created_by=created_by,
        )
        return self._progress(job, {})

    async def start(self, item: BackfillJobItem) -> None:
        """Queue the plan item of each of the job's series (again, if retried)."""
        queue = self._require_queue()
        job = await self._job_of(item)
        await queue.send(
            [BackfillPlanItem(job=item.job, series=n) for n in range(len(job["series"]))]
        )

    async def plan(self, item: BackfillPlanItem) -> None:
        """Find one series' range, record its windows, queue those not yet done, and only
        then mark the series planned."""
        queue = self._require_queue()
        job = await self._job_of(item)
        series = self._series_of(job, item)
        timeframe_ms = timeframe_to_ms(series.timeframe)
        end = min(
            align_down(job["end"], timeframe_ms), closed_end(self._fetcher.now(), timeframe_ms)
        )
        try:
            if job["since_listing"]:
                start = await self._first_candle(series, end)
            else:
                start = align_up(job["start"], timeframe_ms)
        except PERMANENT_ERRORS as exc:
            await self.record_failure(item, f"{exc.code}: {exc}")
            return
        span = self._call_span(series) * job["window_calls"]
        windows = [(first, min(first + span, end)) for first in range(start, end, span)]
        planning = await self._update_series(
            item.job, item.series, _planning(start, end, len(windows))
        )
        settled = set(planning.get("done", {})) | set(planning.get("failed", {}))
        await queue.send(
            [
                BackfillWindowItem(
                    job=item.job, series=item.series, window=n, start=first, end=last
                )
                for n, (first, last) in enumerate(windows)
                if str(n) not in settled
            ]
        )
        await self._update_series(item.job, item.series, _planned)
        log_event(
            logger,
            "backfill.planned",
            job=item.job,
            **series._asdict(),
            start_ms=start,
            end_ms=end,
            windows=len(windows),
        )

    async def fill(self, item: BackfillWindowItem, *, attempt: int) -> None:
        """Gap-fill one window and record it done; a failure a retry may fix is recorded and
        raised (the queue retries the item), one it cannot is recorded as failed."""
        job = await self._job_of(item)
        series = self._series_of(job, item)
        try:
            result = await self._fetcher.fetch_range(*series, item.start, item.end)
        except PERMANENT_ERRORS as exc:
            await self.record_failure(item, f"{exc.code}: {exc}")
            return
        except CbTradeError as exc:
            error = f"attempt {attempt}: {exc.code}: {exc}"
            await self._update_series(item.job, item.series, _window_retrying(item.window, error))
            raise
        candles = len(result.candles)
        await self._update_series(item.job, item.series, _window_done(item.window, candles))
        log_event(
            logger,
            "backfill.window",
            job=item.job,
            **series._asdict(),
            window=item.window,
            start_ms=item.start,
            end_ms=item.end,
            candles=candles,
        )

    async def record_failure(
        self, item: BackfillJobItem | BackfillPlanItem | BackfillWindowItem, error: str
    ) -> None:
        """Record that ``item`` failed for good (its retries are spent, or none can help);
        InvalidWorkItemError if its job does not exist."""
        job = await self._job_of(item)
        if isinstance(item, BackfillJobItem):
            await self._mark_job_failed(item.job, error)
        else:
            self._series_of(job, item)
            change = (
                _plan_failed(error)
                if isinstance(item, BackfillPlanItem)
                else _window_failed(item.window, error)
            )
            await self._update_series(item.job, item.series, change)
        log_event(
            logger,
            "backfill.failed",
            level=logging.ERROR,
            job=item.job,
            kind=item.kind,
            series_index=getattr(item, "series", None),
            window=getattr(item, "window", None),
            error=error,
        )

    async def progress(self, job_id: str) -> dict[str, Any]:
        """What a job has done: windows done, pending and failed, candles stored, an ETA.
        NotFoundError for a job that does not exist."""
        job = await self._storage.get_document(_job_doc(job_id))
        if job is None:
            raise NotFoundError(f"no backfill job {job_id!r}")
        documents = await self._storage.list_documents(f"backfills/{job_id}/series")
        by_index = {int(name.rsplit("/", 1)[1]): doc for name, doc in documents.items()}
        return self._progress(job, by_index)

    def _progress(self, job: dict[str, Any], by_index: dict[int, dict[str, Any]]) -> dict[str, Any]:
        total = done = failed = candles = planned = plan_failed = unknown = 0
        failures: list[dict[str, Any]] = []
        retrying: list[dict[str, Any]] = []
        for index, names in enumerate(job["series"]):
            doc = by_index.get(index, {})
            exchange, series_name, timeframe = names
            symbol, price = split_series_symbol(series_name)
            series = {
                "exchange": exchange,
                "symbol": symbol,
                "price": price,
                "timeframe": timeframe,
            }
            state = doc.get("state")
            if state == "plan_failed":
                plan_failed += 1
                failures.append({"series": series, "window": None, "error": doc.get("error")})
                continue
            if state == "planned":
                planned += 1
                total += doc["windows"]
            elif job["estimated_windows"][index] is not None:
                total += job["estimated_windows"][index]
            else:
                unknown += 1
            done += len(doc.get("done", {}))
            candles += sum(doc.get("done", {}).values())
            failed += len(doc.get("failed", {}))
            failures.extend(
                {"series": series, "window": int(n), "error": error}
                for n, error in doc.get("failed", {}).items()
            )
            retrying.extend(
                {"series": series, "window": int(n), "error": error}
                for n, error in doc.get("retrying", {}).items()
            )
        pending = max(0, total - done - failed)
        elapsed_ms = max(1, self._fetcher.now() - job["created_at"])
        unplanned = len(job["series"]) - planned - plan_failed
        if job["state"] == "failed":
            state = "failed"
        elif pending or unplanned:
            state = "running"
        else:
            state = "completed_with_failures" if failed or plan_failed else "completed"
        if state.startswith("completed"):
            eta: float | None = 0.0
        elif done and pending and not unknown:
            eta = round(pending * elapsed_ms / done / 1000, 1)
        else:
            eta = None
        return {
            "id": job["id"],
            "state": state,
            "created_at": job["created_at"],
            "created_by": job["created_by"],
            "start": job["start"],
            "end": job["end"],
            "since_listing": job["since_listing"],
            "series": len(job["series"]),
            "series_planned": planned,
            "series_failed": plan_failed,
            "windows_total": None if unknown else total,
            "windows_done": done,
            "windows_pending": None if unknown else pending,
            "windows_failed": failed,
            "windows_retrying": len(retrying),
            "candles_stored": candles,
            "eta_seconds": eta,
            "failures": failures[:MAX_LISTED],
            "retrying": retrying[:MAX_LISTED],
            "error": job.get("error"),
        }

    async def _job_of(
        self, item: BackfillJobItem | BackfillPlanItem | BackfillWindowItem
    ) -> dict[str, Any]:
        """The item's job; InvalidWorkItemError (no retry can help) if there is none."""
        try:
            job = await self._storage.get_document(_job_doc(item.job))
        except InvalidInputError:
            job = None
        if job is None:
            raise InvalidWorkItemError(f"no backfill job {item.job!r}")
        return job

    @staticmethod
    def _series_of(
        job: dict[str, Any], item: BackfillPlanItem | BackfillWindowItem
    ) -> BackfillSeries:
        if item.series >= len(job["series"]):
            raise InvalidWorkItemError(f"backfill job {item.job!r} has no series {item.series}")
        return BackfillSeries(*job["series"][item.series])

    async def _mark_job_failed(self, job_id: str, error: str) -> None:
        def change(job: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if job is None else {**job, "state": "failed", "error": error}

        await self._storage.update_document(_job_doc(job_id), change)

    def _require_queue(self) -> WorkQueueClient:
        if self._queue is None:
            raise WorkQueueUnavailableError(
                "backfill jobs need the work queue: set AzureWebJobsStorage to the storage "
                "account (locally, scripts/serve.sh --azurite)"
            )
        return self._queue

    def _call_span(self, series: BackfillSeries) -> int:
        client = self._connector.get_client(series.exchange)
        return client.get_max_candles_per_call(series.timeframe) * timeframe_to_ms(series.timeframe)

    async def _checked_calls(
        self, series: BackfillSeries, start: int | None, first: int, end: int
    ) -> int:
        """Exchange calls the series' range needs at most, once its exchange has said it can
        serve the series (from ``start``, if given)."""
        client = self._connector.get_client(series.exchange)
        timeframe_ms = client.check_timeframe(series.timeframe)
        await client.check_series(series.symbol, series.timeframe, start=start)
        span = self._call_span(series)
        return max(1, -(-(align_up(end, timeframe_ms) - align_down(first, timeframe_ms)) // span))

    async def _first_candle(self, series: BackfillSeries, end: int) -> int:
        """Where the series' history starts, found (and remembered) by the fetcher's listing
        search: one call's window from the epoch costs a few probes, not years of calls."""
        try:
            await self._fetcher.fetch_range(*series, 0, min(end, self._call_span(series)))
        except ExchangeHistoryUnavailableError as exc:
            if exc.earliest_available is None:
                raise
            return align_up(exc.earliest_available, timeframe_to_ms(series.timeframe))
        bounds = await self._storage.get_series_bounds(*series)
        return bounds.first_candle if bounds.first_candle is not None else bounds.empty_before

    async def _update_series(self, job_id: str, index: int, change: _Change) -> dict[str, Any]:
        stored = await self._storage.update_document(
            f"backfills/{job_id}/series/{index}", lambda found: change(dict(found or {}))
        )
        return stored or {}


def _planning(start: int, end: int, windows: int) -> _Change:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        state = "planned" if doc.get("state") == "planned" else "planning"
        return {**doc, "state": state, "start": start, "end": end, "windows": windows}

    return change


def _planned(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "state": "planned"}


def _plan_failed(error: str) -> _Change:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        if doc.get("state") == "planned":
            return doc
        return {**doc, "state": "plan_failed", "error": error}

    return change


def _window_done(window: int, candles: int) -> _Change:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        key = str(window)
        return {
            **doc,
            "done": {**doc.get("done", {}), key: candles},
            "failed": {n: e for n, e in doc.get("failed", {}).items() if n != key},
            "retrying": {n: e for n, e in doc.get("retrying", {}).items() if n != key},
        }

    return change


def _window_failed(window: int, error: str) -> _Change:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        key = str(window)
        if key in doc.get("done", {}):
            return doc
        return {
            **doc,
            "failed": {**doc.get("failed", {}), key: error},
            "retrying": {n: e for n, e in doc.get("retrying", {}).items() if n != key},
        }

    return change


def _window_retrying(window: int, error: str) -> _Change:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "retrying": {**doc.get("retrying", {}), str(window): error}}

    return change


def _job_doc(job_id: str) -> str:
    return f"backfills/{job_id}/job"
