"""A repair on one service process reaches another's sealed cache within the documented bound:
two uvicorn processes on one Azurite container, through ccxt against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.exchange_simulator import simulator_url_overrides

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[3]
KEY, ADMIN_KEY = "repair-reader-key", "repair-admin-key"
RECHECK_SECONDS = 2
WAIT_SECONDS = 60.0
"""A hang guard, far above the bound: the test polls, it does not time the bound."""
M5, DAY = 300_000, 86_400_000
JAN_2024 = TimeRange(1_704_067_200_000, 1_706_745_600_000)
REPAIRED = TimeRange(JAN_2024.start + DAY, JAN_2024.start + 2 * DAY)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def service_process(env: dict[str, str]) -> Iterator[httpx.Client]:
    """The service under uvicorn in a process of its own, and a client for it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "cbtrade.api:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


def page(http: httpx.Client, span: TimeRange) -> httpx.Response:
    response = http.get(
        "/api/v1/ohlcv",
        params={
            "exchange": "cryptocom",
            "symbol": "BTC/USD",
            "start": span.start,
            "end": span.end,
            "limit": 100_000,
        },
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 200, response.text
    return response


def candles(response: httpx.Response) -> list[Candle]:
    return [Candle(**candle) for candle in response.json()["candles"]]


def test_a_repair_on_one_instance_is_served_by_another_within_the_bound(
    simulator: ExchangeSimulator, azurite: AzuriteInstance, azurite_container: str
) -> None:
    truth = simulator.truth("cryptocom", "BTC/USD", "5m", *JAN_2024)
    # The store holds January whole, but wrong: as if the exchange had once answered so.
    wrong = [candle._replace(close=candle.close + 1) for candle in truth]

    async def store_wrong() -> None:
        storage = AzureBlobStorage(
            container=azurite_container, connection_string=azurite.connection_string
        )
        try:
            await storage.save_bulk_entries("cryptocom", "BTC/USD", "5m", wrong, covered=[JAN_2024])
        finally:
            await storage.close()

    asyncio.run(store_wrong())
    env = {
        "CBTRADE_STORAGE_BACKEND": "azure",
        "CBTRADE_AZURE_CONNECTION_STRING": azurite.connection_string,
        "CBTRADE_AZURE_CONTAINER": azurite_container,
        "CBTRADE_API_KEYS": KEY,
        "CBTRADE_ADMIN_API_KEYS": ADMIN_KEY,
        "CBTRADE_CONTINUATION_TOKEN_SECRET": "sealed-repair-token-secret",
        "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps(simulator_url_overrides(simulator)),
        "CBTRADE_SEALED_RECHECK_SECONDS": str(RECHECK_SECONDS),
    }
    with ExitStack() as stack:
        repairer = stack.enter_context(service_process(env))
        reader = stack.enter_context(service_process(env))
        before = page(reader, JAN_2024)
        assert candles(before) == wrong
        assert before.headers["cache-control"].startswith("public")  # sealed, cached

        repaired = repairer.post(
            "/api/v1/admin/refresh",
            params={
                "exchange": "cryptocom",
                "symbol": "BTC/USD",
                "start": REPAIRED.start,
                "end": REPAIRED.end,
            },
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert repaired.status_code == 200, repaired.text
        repaired_at = time.monotonic()

        expected = [c for c in wrong if not REPAIRED.start <= c.timestamp < REPAIRED.end]
        expected += [c for c in truth if REPAIRED.start <= c.timestamp < REPAIRED.end]
        expected.sort()
        while True:
            after = page(reader, JAN_2024)
            if candles(after) == expected:
                break
            assert candles(after) == wrong  # the old copy until the marker is read, never a mix
            assert time.monotonic() - repaired_at < WAIT_SECONDS, "the repair never showed"
            time.sleep(0.2)
        assert after.headers["etag"] != before.headers["etag"]
