"""Azure Functions entry (Python v2 programming model).

One HTTP function serves the whole FastAPI app (``AsgiFunctionApp``; host.json sets
``routePrefix`` to "" because the app's routes carry ``/api``). The timer plans the watchlist's
top-up as work items on the top-up queue (``CBTRADE_TOPUP_QUEUE``); backfill jobs put theirs on
the work queue (``CBTRADE_WORK_QUEUE``), both in the ``AzureWebJobsStorage`` account, so a large
backfill never delays the watchlist. A queue-triggered function per queue does each item; the
runtime retries a failed one and moves it to the queue's poison queue after
``maxDequeueCount`` tries (host.json), where a trigger logs it and records it in its backfill
job. All share one
ServiceContainer: one blob client, one queue client and one exchange instance per exchange in
the process. The platform's auth level is anonymous so health probes work; the app checks
bearer tokens itself.
"""

from __future__ import annotations

import logging

import azure.functions as func

from cbtrade.api import create_app
from cbtrade.config import get_settings
from cbtrade.services import ServiceContainer
from cbtrade.telemetry import configure_telemetry
from cbtrade.work.connection import CONNECTION_SETTING, poison_queue_name

logger = logging.getLogger("cbtrade.function_app")

configure_telemetry()
settings = get_settings()
services = ServiceContainer.from_settings(settings)

app = func.AsgiFunctionApp(
    app=create_app(services=services), http_auth_level=func.AuthLevel.ANONYMOUS
)


@app.function_name(name="topup_watchlist")
@app.timer_trigger(
    arg_name="timer", schedule=settings.topup_schedule, run_on_startup=False, use_monitor=True
)
async def topup_watchlist(timer: func.TimerRequest) -> None:
    """Queue the CBTRADE_WATCHLIST series' top-up (in-process if no queue is configured)."""
    if timer.past_due:
        logger.info("top-up timer is past due; catching up")
    await services.topup.tick(services.topup_queue)


@app.function_name(name="process_topup_item")
@app.queue_trigger(
    arg_name="message", queue_name=settings.topup_queue, connection=CONNECTION_SETTING
)
async def process_topup_item(message: func.QueueMessage) -> None:
    """Top up one item's series; raising makes the runtime retry it."""
    await services.work.process(message.get_body().decode(), message.dequeue_count or 1)


@app.function_name(name="record_poisoned_topup_item")
@app.queue_trigger(
    arg_name="message",
    queue_name=poison_queue_name(settings.topup_queue),
    connection=CONNECTION_SETTING,
)
async def record_poisoned_topup_item(message: func.QueueMessage) -> None:
    """Log a top-up item whose retries are spent (the next tick tops its series up)."""
    await services.work.poisoned(message.get_body().decode(), message.dequeue_count or 1)


@app.function_name(name="process_work_item")
@app.queue_trigger(
    arg_name="message", queue_name=settings.work_queue, connection=CONNECTION_SETTING
)
async def process_work_item(message: func.QueueMessage) -> None:
    """Do one backfill work item; raising makes the runtime retry it."""
    await services.work.process(message.get_body().decode(), message.dequeue_count or 1)


@app.function_name(name="record_poisoned_work_item")
@app.queue_trigger(
    arg_name="message",
    queue_name=poison_queue_name(settings.work_queue),
    connection=CONNECTION_SETTING,
)
async def record_poisoned_work_item(message: func.QueueMessage) -> None:
    """Log a work item whose retries are spent and record it in its backfill job (raising,
    for a retry, if that cannot be recorded now)."""
    await services.work.poisoned(message.get_body().decode(), message.dequeue_count or 1)
