"""The FastAPI application factory (``uvicorn --factory cbtrade.api:create_app``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from fastapi import FastAPI

from cbtrade.api.caching import SealedPageCache
from cbtrade.api.docs import install_docs
from cbtrade.api.encoding import RowTextCache
from cbtrade.api.errors import install_error_handlers
from cbtrade.api.middleware import HeadAsGetMiddleware, RequestIdMiddleware
from cbtrade.api.openapi import declare_page_limits
from cbtrade.api.routes import health_router, page_router, v1_router
from cbtrade.config import Settings, get_settings
from cbtrade.errors import ConfigurationError
from cbtrade.services import ServiceContainer

if TYPE_CHECKING:
    from cbtrade.services import QueueHandlers

_MIB = 1024 * 1024


def _log_service_events() -> None:
    """Show the service's INFO events (fills, top-ups) when no host has set logging up.

    Under Azure Functions the worker owns logging and this changes nothing there.
    """
    logging.getLogger("cbtrade").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _local_queues(container: ServiceContainer) -> list[QueueHandlers] | None:
    """With CBTRADE_WORK_QUEUE_LOCAL_HOST (no Functions host, e.g. uvicorn on Azurite), the
    queues this process drains; ConfigurationError (at start-up, not in the lifespan) when
    there is no queue account."""
    return container.queue_handlers() if container.settings.work_queue_local_host else None


def _start_local_queue_hosts(queues: list[QueueHandlers] | None) -> asyncio.Task[None] | None:
    """Drain the top-up and work queues and their poison queues in this process as the
    queue triggers would."""
    if queues is None:
        return None
    from cbtrade.work.local_host import run_local_hosts

    return asyncio.create_task(run_local_hosts(queues), name="local-queue-hosts")


def _services_from_environment() -> tuple[ServiceContainer, list[QueueHandlers] | None]:
    """The services the ``CBTRADE_*`` settings describe, for a process that starts with
    ``create_app()`` (``uvicorn --factory``): a bad setting ends it with one line naming the
    variable, not a traceback with the message at its end."""
    try:
        container = ServiceContainer.from_settings(get_settings())
        return container, _local_queues(container)
    except ConfigurationError as exc:
        raise SystemExit(f"cbtrade: {' '.join(str(exc).split())}") from None


def create_app(
    settings: Settings | None = None, *, services: ServiceContainer | None = None
) -> FastAPI:
    """Build the app; with no arguments it reads the settings from the environment.

    Pass ``services`` to share them with another host (the timer trigger); the app then
    leaves closing them to that host. Otherwise the app builds its own and closes them on
    shutdown. With no arguments, a bad setting raises SystemExit with a one-line message
    (given settings or services, errors are raised as they are).
    """
    _log_service_events()
    owns_services = services is None
    if services is None and settings is None:
        container, queues = _services_from_environment()
    else:
        container = services or ServiceContainer.from_settings(settings or get_settings())
        queues = _local_queues(container)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        host = _start_local_queue_hosts(queues)
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
    app.state.sealed_pages = SealedPageCache(container.settings.page_cache_mb * _MIB)
    app.state.row_text = RowTextCache(container.settings.row_text_cache_mb * _MIB)
    install_error_handlers(app)
    # Added last, so outermost of the two: the id is set before a HEAD is served as a GET.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RequestIdMiddleware)
    install_docs(app)
    declare_page_limits(app, container.settings)
    app.include_router(health_router)
    app.include_router(page_router)
    app.include_router(v1_router)
    return app
