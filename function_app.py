"""Azure Functions entry (Python v2 programming model).

One HTTP function serves the whole FastAPI app (``AsgiFunctionApp``; host.json sets
``routePrefix`` to "" because the app's routes carry ``/api``), and a timer trigger tops up
the watched series. Both share one ServiceContainer: one blob client and one exchange
instance per exchange in the process. The platform's auth level is anonymous so health
probes work; the app checks bearer tokens itself.
"""

from __future__ import annotations

import logging

import azure.functions as func

from cbtrade.api import create_app
from cbtrade.config import get_settings
from cbtrade.services import ServiceContainer
from cbtrade.telemetry import configure_telemetry

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
    """Bring every CBTRADE_WATCHLIST series up to the newest closed candle."""
    if timer.past_due:
        logger.info("top-up timer is past due; catching up")
    results = await services.topup.run()
    failed = [result for result in results if result.error is not None]
    for result in failed:
        logger.error("top-up failed for %s: %s", ":".join(result.series), result.error)
