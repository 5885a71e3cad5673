"""A work-queue worker process without the Functions host: ``python -m cbtrade.work``.

It builds the service from the ``CBTRADE_*`` settings and ``AzureWebJobsStorage`` (as the
function app does) and drains the work queue with :class:`LocalQueueHost` until SIGINT or
SIGTERM, or, with ``--until-idle``, until the queues are empty. For local runs on Azurite, the
benchmarks and the multi-process tests; in Azure the queue trigger does this.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from contextlib import suppress

from cbtrade.config import load_settings
from cbtrade.errors import ConfigurationError, StorageError
from cbtrade.services import ServiceContainer
from cbtrade.work.local_host import run_local_hosts


async def _drain(*, until_idle: bool, max_in_flight: int | None, lease_seconds: int) -> None:
    services = ServiceContainer.from_settings(load_settings())
    try:
        task = asyncio.create_task(
            run_local_hosts(
                services.queue_handlers(),
                until_idle=until_idle,
                max_in_flight=max_in_flight,
                lease_seconds=lease_seconds,
            )
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with suppress(asyncio.CancelledError):
            await task
    finally:
        await services.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until-idle", action="store_true", help="stop once the queue is empty")
    parser.add_argument("--max-in-flight", type=int, help="default: host.json's batch + threshold")
    parser.add_argument("--lease-seconds", type=int, default=60, help="message lease, renewed")
    args = parser.parse_args()
    try:
        asyncio.run(
            _drain(
                until_idle=args.until_idle,
                max_in_flight=args.max_in_flight,
                lease_seconds=args.lease_seconds,
            )
        )
    except (ConfigurationError, StorageError) as exc:
        sys.exit(f"cbtrade.work: {exc}")


if __name__ == "__main__":
    main()
