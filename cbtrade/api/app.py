"""The FastAPI application factory (``uvicorn --factory cbtrade.api:create_app``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from cbtrade.api.caching import SealedPageCache
from cbtrade.api.docs import install_docs
from cbtrade.api.errors import install_error_handlers
from cbtrade.api.openapi import declare_page_limits
from cbtrade.api.routes import health_router, v1_router
from cbtrade.config import Settings, get_settings
from cbtrade.services import ServiceContainer


def _log_service_events() -> None:
    """Show the service's INFO events (fills, top-ups) when no host has set logging up.

    Under Azure Functions the worker owns logging and this changes nothing there.
    """
    logging.getLogger("cbtrade").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _start_local_queue_hosts(container: ServiceContainer) -> asyncio.Task[None] | None:
    """With CBTRADE_WORK_QUEUE_LOCAL_HOST (no Functions host, e.g. uvicorn on Azurite), drain
    the top-up and work queues and their poison queues in this process as the queue
    triggers would."""
    if not container.settings.work_queue_local_host:
        return None
    from cbtrade.work.local_host import run_local_hosts

    queues = container.queue_handlers()
    return asyncio.create_task(run_local_hosts(queues), name="local-queue-hosts")


def create_app(
    settings: Settings | None = None, *, services: ServiceContainer | None = None
) -> FastAPI:
    """Build the app; with no arguments it reads the settings from the environment.

    Pass ``services`` to share them with another host (the timer trigger); the app then
    leaves closing them to that host. Otherwise the app builds its own and closes them on
    shutdown.
    """
    _log_service_events()
    owns_services = services is None
    container = services or ServiceContainer.from_settings(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        host = _start_local_queue_hosts(container)
        try:
            yield
        finally:
            if host is not None:
                host.cancel()
                with suppress(asyncio.CancelledError):
                    await host
            if owns_services:
                await container.aclose()

    app = FastAPI(
        title="cb-trade data service",
        summary="Gap-filled historical OHLCV candles from ccxt exchanges",
        version="1.0.0",
        openapi_url="/api/openapi.json",
        docs_url=None,  # install_docs serves them, without a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.services = container
    app.state.sealed_pages = SealedPageCache()
    install_error_handlers(app)
    install_docs(app)
    declare_page_limits(app, container.settings)
    app.include_router(health_router)
    app.include_router(v1_router)
    return app
