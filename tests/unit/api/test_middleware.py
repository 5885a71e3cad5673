"""Request ids on every response, HEAD on every GET route, and generic 5xx bodies whose
details go to the log under the request id."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI

from cbtrade.api.errors import install_error_handlers
from cbtrade.api.middleware import HeadAsGetMiddleware, RequestIdMiddleware
from cbtrade.errors import (
    CbTradeError,
    ExchangeError,
    ExchangeUnavailableError,
    InvalidInputError,
    StorageUnavailableError,
)

LEAKY = "read raw_data/cryptocom/BTC_USD/5m/2024.arrow: Cannot connect to host 127.0.0.1:10000"


def _app(error: Exception | None = None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/fail")
    async def fail() -> None:
        assert error is not None
        raise error

    return app


async def _call(app: FastAPI, method: str, path: str, **headers: str | bytes) -> httpx.Response:
    # raise_app_exceptions=False: Starlette re-raises an unexpected error after answering
    # it (for the server to log); the answer is what is under test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers)


async def test_every_response_gets_a_fresh_request_id() -> None:
    app = _app()
    first, second = await _call(app, "GET", "/ok"), await _call(app, "GET", "/nothing")
    assert second.status_code == 404
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2
    assert all(uuid.UUID(one) for one in ids)


@pytest.mark.parametrize(
    "sent", ["4bf92f3577b34da6a3ce929d0e0e4736", "client-7:retry.2", str(uuid.uuid4())]
)
async def test_a_sane_incoming_request_id_is_kept(sent: str) -> None:
    response = await _call(_app(), "GET", "/ok", **{"x-request-id": sent})
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent", ["", "has space", "x" * 129, "semi;colon", "-leading-dash", "a\tb", "é"]
)
async def test_an_odd_incoming_request_id_is_replaced(sent: str) -> None:
    response = await _call(_app(), "GET", "/ok", **{"x-request-id": sent.encode()})
    assert response.headers["x-request-id"] != sent
    uuid.UUID(response.headers["x-request-id"])


async def test_head_is_a_get_without_the_body() -> None:
    app = _app()
    get, head = await _call(app, "GET", "/ok"), await _call(app, "HEAD", "/ok")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] != "0"
    assert head.headers["content-type"] == "application/json"
    assert "x-request-id" in head.headers
    assert (await _call(app, "HEAD", "/nothing")).status_code == 404


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (StorageUnavailableError(LEAKY), 503, "5"),
        (
            ExchangeUnavailableError("cryptocom fetch_ohlcv failed: http://10.1.2.3:9000/v2"),
            503,
            "10",
        ),
        (ExchangeError("binance GET https://api.binance.com/api/v3/klines 418"), 502, None),
        (CbTradeError("some internal state"), 500, None),
    ],
)
async def test_a_server_side_error_answers_a_generic_message_and_logs_the_detail(
    caplog: pytest.LogCaptureFixture,
    error: CbTradeError,
    status: int,
    retry_after: str | None,
) -> None:
    with caplog.at_level(logging.WARNING, logger="cbtrade"):
        response = await _call(_app(error), "GET", "/fail")
    assert response.status_code == status
    body = response.json()["error"]
    assert body == {
        "code": error.code,
        "message": error.public_message,
        "request_id": response.headers["x-request-id"],
    }
    for internal in ("raw_data", "127.0.0.1", "10000", "://", "some internal state"):
        assert internal not in response.text
    assert response.headers.get("retry-after") == retry_after
    logged = [r.getMessage() for r in caplog.records if body["request_id"] in r.getMessage()]
    assert len(logged) == 1
    assert str(error) in logged[0]


async def test_a_client_error_keeps_its_own_message() -> None:
    response = await _call(_app(InvalidInputError("start=x is not a time")), "GET", "/fail")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "bad_request", "message": "start=x is not a time"}}
    assert "retry-after" not in response.headers
    assert "x-request-id" in response.headers


async def test_an_unexpected_error_is_a_500_that_carries_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="cbtrade"):
        response = await _call(_app(RuntimeError(LEAKY)), "GET", "/fail", **{"x-request-id": "r-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "r-1"
    assert response.json()["error"]["request_id"] == "r-1"
    assert "raw_data" not in response.text
    assert any("request_id=r-1" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_429_says_when_to_retry() -> None:
    class TooManyRequestsError(CbTradeError):
        code = "rate_limited"
        status_code = 429
        public_message = "slow down"

    too_many = await _call(_app(TooManyRequestsError("caller over its budget")), "GET", "/fail")
    assert too_many.status_code == 429
    assert too_many.headers["retry-after"] == "5"
