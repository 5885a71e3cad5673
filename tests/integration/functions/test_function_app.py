"""function_app.py as the Functions Python worker loads it: import, index, invoke."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from cbtrade.config import get_settings
from tests.fixtures.imports import imports_module
from tests.integration.functions.conftest import (
    KEY,
    functions_by_name,
    load_function_app,
    unload_function_app,
)


def test_worker_indexing_finds_the_http_timer_and_queue_triggers(
    function_app: ModuleType,
) -> None:
    functions = functions_by_name(function_app)
    assert set(functions) == {
        "http_app_func",
        "topup_watchlist",
        "process_topup_item",
        "record_poisoned_topup_item",
        "process_work_item",
        "record_poisoned_work_item",
    }
    for name, queue in (
        ("process_topup_item", "cbtrade-topup"),
        ("record_poisoned_topup_item", "cbtrade-topup-poison"),
        ("process_work_item", "cbtrade-work"),
        ("record_poisoned_work_item", "cbtrade-work-poison"),
    ):
        bindings = json.loads(functions[name].get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"] == "queueTrigger")
        assert trigger["queueName"] == queue
        assert trigger["connection"] == "AzureWebJobsStorage"
    http = json.loads(functions["http_app_func"].get_function_json())
    trigger = next(b for b in http["bindings"] if b["type"] == "httpTrigger")
    assert trigger["authLevel"].lower() == "anonymous"
    assert trigger["route"] == "/{*route}"
    timer = json.loads(functions["topup_watchlist"].get_function_json())
    timer_trigger = next(b for b in timer["bindings"] if b["type"] == "timerTrigger")
    assert timer_trigger["schedule"] == "0 */10 * * * *"


def test_host_json_routes_everything_to_the_app() -> None:
    host = json.loads(Path("host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert host["functionTimeout"]
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"  # what WorkQueueClient sends
    assert queues["maxDequeueCount"] >= 2
    assert queues["batchSize"] + queues["newBatchThreshold"] <= 64


async def call_http(
    module: ModuleType, path: str, method: str = "GET", **headers: str
) -> func.HttpResponse:
    function = functions_by_name(module)["http_app_func"].get_user_function()
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071{path}",
        headers=headers,
        params={},
        body=b"",
    )
    response: func.HttpResponse = await function(request, None)
    return response


async def test_http_function_serves_the_api_with_app_level_auth(
    function_app: ModuleType,
) -> None:
    health = await call_http(function_app, "/api/health")
    assert health.status_code == 200
    assert json.loads(health.get_body()) == {"status": "ok", "storage": "ok"}

    denied = await call_http(function_app, "/api/v1/exchanges")
    assert denied.status_code == 401
    assert json.loads(denied.get_body())["error"]["code"] == "unauthorized"

    listed = await call_http(function_app, "/api/v1/exchanges", Authorization=f"Bearer {KEY}")
    assert listed.status_code == 200
    assert {"cryptocom", "binance", "kraken", "coinbase"} <= set(
        json.loads(listed.get_body())["exchanges"]
    )


async def test_http_function_carries_request_ids_and_answers_head(
    function_app: ModuleType,
) -> None:
    generated = await call_http(function_app, "/api/v1/exchanges")
    assert generated.status_code == 401
    assert generated.headers["x-request-id"]
    echoed = await call_http(function_app, "/api/health", **{"x-request-id": "probe-7"})
    assert echoed.headers["x-request-id"] == "probe-7"
    head = await call_http(function_app, "/api/health", method="HEAD")
    assert head.status_code == 200
    assert head.get_body() == b""
    assert head.headers["x-request-id"] not in (generated.headers["x-request-id"], "probe-7")


async def test_http_function_serves_the_docs_and_their_assets_without_a_token(
    function_app: ModuleType,
) -> None:
    page = await call_http(function_app, "/api/docs")
    assert page.status_code == 200
    assert "/api/docs/assets/swagger-ui-bundle.js" in page.get_body().decode()
    for asset, kind in (
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon.png", "image/png"),
    ):
        served = await call_http(function_app, f"/api/docs/assets/{asset}")
        assert served.status_code == 200, asset
        assert kind in served.headers["content-type"], asset
        assert len(served.get_body()) > 1_000, asset
    spec = await call_http(function_app, "/api/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/ohlcv" in json.loads(spec.get_body())["paths"]


def test_importing_function_app_does_not_import_ccxt(
    function_app_env: dict[str, str],
) -> None:
    # ccxt costs about a second and only a cold fill needs it. pyarrow (~0.1 s) is loaded:
    # every stored object is Arrow, so every read of candles needs it anyway.
    assert not imports_module("import function_app", "ccxt")


def test_a_bad_setting_fails_the_import_naming_it(
    function_app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cbtrade.errors import ConfigurationError

    monkeypatch.setenv("CBTRADE_STORAGE_BACKEND", "floppy")
    with pytest.raises(ConfigurationError, match="CBTRADE_STORAGE_BACKEND"):
        load_function_app()
    get_settings.cache_clear()
    sys.modules.pop("function_app", None)


async def test_timer_tops_up_the_watchlist_and_is_idempotent(
    function_app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, simulator: Any
) -> None:
    import time

    from tests.fixtures.exchange_simulator import simulator_url_overrides

    monkeypatch.setenv(
        "CBTRADE_WATCHLIST", "cryptocom:BTC/USD:5m,binance:BTC/USDT:5m,binance:NOPE/USDT:5m"
    )
    monkeypatch.setenv("CBTRADE_TOPUP_MAX_BACKFILL_DAYS", "1")
    monkeypatch.setenv(
        "CBTRADE_EXCHANGE_URL_OVERRIDES", json.dumps(simulator_url_overrides(simulator))
    )
    module = load_function_app()
    try:
        timer = functions_by_name(module)["topup_watchlist"].get_user_function()
        before = time.time_ns() // 1_000_000
        await timer(TimerRequest(past_due=True))
        storage = module.services.storage
        for exchange, symbol in (("cryptocom", "BTC/USD"), ("binance", "BTC/USDT")):
            truth = simulator.truth(exchange, symbol, "5m", before - 86_400_000, before)
            latest = await storage.get_latest_timestamp(exchange, symbol, "5m")
            assert latest is not None
            assert latest >= truth[-1].timestamp
        assert await storage.get_latest_timestamp("binance", "NOPE/USDT", "5m") is None
        calls = simulator.candle_requests("cryptocom")
        await timer(TimerRequest(past_due=False))
        assert simulator.candle_requests("cryptocom") - calls <= 1
    finally:
        await unload_function_app(module)
