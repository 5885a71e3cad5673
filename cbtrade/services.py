"""The service's shared objects, built once per process from settings.

The HTTP routes, the timer and the queue triggers use the same container, so they share one
blob client and one exchange instance per exchange (with its rate budget). Building
it does no I/O and does not import ccxt.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cbtrade.auth.interfaces import IAuthenticationModule
from cbtrade.auth.module import AuthenticationModuleImpl
from cbtrade.config import Settings
from cbtrade.errors import ConfigurationError
from cbtrade.exchange_source.interfaces import IDataSourceConnector
from cbtrade.exchange_source.microkernel import create_data_source_connector
from cbtrade.historical.backfills import BackfillJobs
from cbtrade.historical.calendar_pages import CalendarCandles
from cbtrade.historical.current_fetcher import CurrentDataFetcher
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.funding import FundingHistory
from cbtrade.historical.manager import HistoricalDataManagerImpl
from cbtrade.historical.repair import RangeRepairer
from cbtrade.historical.tokens import ContinuationTokenCodec
from cbtrade.historical.topup import TopUpRunner
from cbtrade.storage.calendar_store import CalendarCandleStore
from cbtrade.storage.funding_store import FundingStore
from cbtrade.storage.interfaces import IStorageManager
from cbtrade.storage.manager import create_storage_manager
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.work.connection import QueueConnection, queue_connection
from cbtrade.work.processor import WorkItemProcessor

if TYPE_CHECKING:
    from cbtrade.work.local_host import Handler
    from cbtrade.work.queue import WorkQueueClient

    QueueHandlers = tuple[WorkQueueClient, Handler, Handler]
    """A queue, what its trigger calls, and what its poison queue's trigger calls."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServiceContainer:
    """Everything the routes and the timer need, wired together."""

    settings: Settings
    storage: IStorageManager
    connector: IDataSourceConnector
    history: HistoricalDataManagerImpl
    calendar: CalendarCandles
    funding: FundingHistory
    topup: TopUpRunner
    repair: RangeRepairer
    backfills: BackfillJobs
    work: WorkItemProcessor
    topup_queue: WorkQueueClient | None
    """The top-up queue, when the environment names its account (``AzureWebJobsStorage``)."""
    work_queue: WorkQueueClient | None
    """The queue of backfill work, in the same account."""
    auth: IAuthenticationModule

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceContainer:
        """Wire the service as the settings say (no I/O happens here)."""
        storage = create_storage_manager(settings)
        connector = create_data_source_connector(settings, storage=storage)
        grace_ms = settings.empty_fetch_grace_seconds * 1000
        fetcher = HistoricalFetcher(storage, connector, empty_fetch_grace_ms=grace_ms)
        if not isinstance(storage.backend, ObjectRawDataStorage):
            raise ConfigurationError("the storage backend keeps no keyed objects")
        calendar = CalendarCandles(
            CalendarCandleStore(storage.backend), connector, grace_ms=grace_ms, clock=fetcher.now
        )
        history = HistoricalDataManagerImpl(
            fetcher,
            CurrentDataFetcher(storage),
            connector,
            ContinuationTokenCodec(_token_secret(settings)),
            default_limit=settings.page_default_limit,
            max_limit=settings.page_max_limit,
            page_time_budget_seconds=settings.page_time_budget_seconds,
            calendar=calendar,
        )
        funding = FundingHistory(
            FundingStore(storage.backend),
            connector,
            history.token_codec,
            default_limit=settings.page_default_limit,
            max_limit=settings.page_max_limit,
            page_time_budget_seconds=settings.page_time_budget_seconds,
            grace_ms=grace_ms,
        )
        topup = TopUpRunner(
            fetcher,
            settings.watchlist,
            max_backfill_ms=int(settings.topup_max_backfill_days * 86_400_000),
            series_per_item=settings.topup_series_per_item,
        )
        connection = queue_connection()
        topup_queue = _queue(settings.topup_queue, connection, settings)
        work_queue = _queue(settings.work_queue, connection, settings)
        backfills = BackfillJobs(
            fetcher,
            storage,
            connector,
            work_queue,
            max_series=settings.backfill_max_series,
            max_calls=settings.backfill_max_calls,
            window_calls=settings.backfill_window_calls,
        )
        return cls(
            settings=settings,
            storage=storage,
            connector=connector,
            history=history,
            calendar=calendar,
            funding=funding,
            topup=topup,
            repair=RangeRepairer(fetcher, storage, connector, max_candles=settings.page_max_limit),
            backfills=backfills,
            work=WorkItemProcessor(topup, backfills),
            topup_queue=topup_queue,
            work_queue=work_queue,
            auth=AuthenticationModuleImpl.from_settings(settings),
        )

    def queue_handlers(self) -> list[QueueHandlers]:
        """Each queue (top-up, work) with what its trigger and its poison queue's trigger
        call, for a local queue host; ConfigurationError without a queue account."""
        if self.topup_queue is None or self.work_queue is None:
            raise ConfigurationError("no work queue: set AzureWebJobsStorage")
        work = self.work
        return [
            (queue, work.process, work.poisoned) for queue in (self.topup_queue, self.work_queue)
        ]

    async def aclose(self) -> None:
        """Stop the reads ahead, close the exchange sessions, the queue clients and the
        storage client."""
        try:
            await self.history.fetcher.close()
            await self.connector.close()
        finally:
            try:
                for queue in (self.topup_queue, self.work_queue):
                    if queue is not None:
                        await queue.close()
            finally:
                await self.storage.close()


def _queue(
    name: str, connection: QueueConnection | None, settings: Settings
) -> WorkQueueClient | None:
    if connection is None:
        return None
    from cbtrade.work.queue import WorkQueueClient  # the Azure SDK, only when it is used

    return WorkQueueClient(name, connection, trust_env=settings.storage_trust_env)


def _token_secret(settings: Settings) -> bytes:
    if settings.continuation_token_secret is not None:
        return settings.continuation_token_secret.get_secret_value().encode()
    logger.warning(
        "CBTRADE_CONTINUATION_TOKEN_SECRET is not set: continuation tokens are signed with a "
        "random per-process key and will not work across instances or restarts"
    )
    return secrets.token_bytes(32)
