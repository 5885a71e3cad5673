"""Every bad input gets a JSON 4xx over real HTTP, naming the problem; never a 5xx."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cbtrade.config import Settings
from tests.fixtures.http_server import serve_service

KEY = "bad-input-test-key"
# Nothing listens on port 9 of loopback: an exchange that is down.
DOWN = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_service(
        local_storage_root=tmp_path_factory.mktemp("data"),
        api_keys=KEY,
        continuation_token_secret="bad-input-test-token-secret",
        exchange_url_overrides={"cryptocom": DOWN, "binance": DOWN},
        exchange_retry_attempts=2,
        exchange_retry_max_wait_seconds=0.1,
        exchange_timeout_ms=2_000,
    ) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as http:
        yield http


GOOD = {"exchange": "cryptocom", "symbol": "BTC/USD", "start": "2024-01-01T00:00:00Z"}


def _error(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    # A server-side error's body names its request id: the details are logged under it.
    if response.status_code >= 500:
        assert body["error"].pop("request_id") == response.headers["x-request-id"]
    assert set(body["error"]) == {"code", "message"}
    assert "Traceback" not in response.text
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("override", "status", "code", "names"),
    [
        ({"start": "yesterday"}, 400, "bad_request", "start"),
        ({"start": "2024-13-45"}, 400, "bad_request", "start"),
        ({"end": "2023-01-01T00:00:00Z"}, 400, "bad_request", "end"),
        ({"start": None}, 400, "bad_request", "start"),
        ({"exchange": None}, 400, "bad_request", "exchange"),
        ({"symbol": None}, 400, "bad_request", "symbol"),
        ({"timeframe": "90s"}, 400, "invalid_timeframe", "90s"),
        ({"exchange": "binance", "timeframe": "1s"}, 400, "invalid_timeframe", "natively"),
        ({"timeframe": "1y"}, 400, "invalid_timeframe", "1y"),
        ({"limit": "0"}, 400, "bad_request", "limit"),
        ({"limit": "1000000"}, 400, "bad_request", "limit"),
        ({"limit": "many"}, 400, "invalid_parameter", "limit"),
        ({"symbol": "../../etc/passwd"}, 400, "invalid_path_component", "symbol"),
        ({"symbol": "BTC/USD\x00"}, 400, "invalid_path_component", "symbol"),
        ({"symbol": "x" * 65}, 400, "invalid_parameter", "symbol"),
        ({"exchange": "../x"}, 400, "invalid_path_component", "exchange"),
        ({"exchange": "CryptoCom"}, 400, "invalid_path_component", "exchange"),
        ({"exchange": "nowhere"}, 404, "unknown_exchange", "nowhere"),
        ({"continuation_token": "garbage"}, 400, "invalid_continuation_token", "token"),
        ({"continuation_token": "a" * 3000}, 400, "invalid_parameter", "continuation_token"),
    ],
)
def test_bad_ohlcv_queries(
    client: httpx.Client,
    override: dict[str, str | None],
    status: int,
    code: str,
    names: str,
) -> None:
    params = {k: v for k, v in {**GOOD, **override}.items() if v is not None}
    response = client.get("/api/v1/ohlcv", params=params)
    assert response.status_code == status, response.text
    error = _error(response)
    assert error["code"] == code
    assert names.lower() in error["message"].lower()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"start": "1704067200"},
            "start=1704067200 looks like epoch seconds; send epoch milliseconds "
            "(1704067200000) or ISO-8601 (2024-01-01T00:00:00Z)",
        ),
        (
            {"end": "1704153600"},
            "end=1704153600 looks like epoch seconds; send epoch milliseconds "
            "(1704153600000) or ISO-8601 (2024-01-02T00:00:00Z)",
        ),
        (
            {"start": "20240101"},
            "start=20240101 looks like a compact date (YYYYMMDD); send ISO-8601 "
            "(2024-01-01) or epoch milliseconds",
        ),
    ],
)
def test_epoch_seconds_and_compact_dates_are_refused(
    client: httpx.Client, override: dict[str, str], message: str
) -> None:
    response = client.get("/api/v1/ohlcv", params={**GOOD, **override})
    assert response.status_code == 400, response.text
    assert _error(response) == {"code": "bad_request", "message": message}


def test_tampered_token_is_rejected(client: httpx.Client, base_url: str) -> None:
    # A real token needs a real page; forge one with the wrong key instead.
    from cbtrade.historical.tokens import ContinuationTokenCodec, PageCursor

    forged = ContinuationTokenCodec(b"not-the-service-secret-at-all").encode(
        PageCursor(
            exchange="cryptocom", symbol="BTC/USD", timeframe="5m", start=0, end=10, cursor=0
        )
    )
    response = client.get("/api/v1/ohlcv", params={"continuation_token": forged})
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_continuation_token"


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/ohlcv/latest", {"symbol": "BTC/USD"}, 400),
        ("/api/v1/ohlcv/latest", {"exchange": "cryptocom", "symbol": "../x"}, 400),
        (
            "/api/v1/ohlcv/latest",
            {"exchange": "cryptocom", "symbol": "A/B", "timeframe": "9m"},
            400,
        ),
        ("/api/v1/exchanges/nowhere/coins", {}, 404),
        ("/api/v1/series", {}, 400),
        ("/api/v1/series", {"exchange": "nowhere"}, 404),
        ("/api/v1/series", {"exchange": "Crypto.com"}, 400),
        ("/api/v1/series", {"exchange": "cryptocom", "symbol": "../x"}, 400),
        ("/api/v1/series", {"exchange": "cryptocom", "symbol": "BTC/USD@mark"}, 400),
        ("/api/v1/series", {"exchange": "cryptocom", "symbol": "x" * 65}, 400),
        ("/api/v1/exchanges/..%2F..%2Fetc/coins", {}, 404),
        ("/api/v1/nothing-here", {}, 404),
    ],
)
def test_bad_requests_on_other_routes(
    client: httpx.Client, path: str, params: dict[str, str], status: int
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    _error(response)


def test_wrong_method_is_a_json_405(client: httpx.Client) -> None:
    response = client.post("/api/v1/ohlcv", params=GOOD)
    assert response.status_code == 405
    _error(response)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": ""},
    ],
)
def test_auth_is_required(base_url: str, headers: dict[str, str]) -> None:
    response = httpx.get(f"{base_url}/api/v1/exchanges", headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="cbtrade"')
    assert ('error="invalid_token"' in challenge) == bool(headers.get("Authorization"))
    assert _error(response)["code"] == "unauthorized"


def test_health_needs_no_auth(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "storage": "ok"}


def test_head_answers_on_health_and_every_get_route(base_url: str, client: httpx.Client) -> None:
    # Uptime probes send HEAD: the status and headers of the GET, without its body.
    health = httpx.head(f"{base_url}/api/health")
    assert health.status_code == 200
    assert health.content == b""
    assert int(health.headers["content-length"]) > 0
    assert client.head("/api/v1/exchanges").status_code == 200
    assert httpx.head(f"{base_url}/api/v1/exchanges").status_code == 401
    assert client.head("/api/v1/ohlcv/latest", params={"symbol": "A/B"}).status_code == 400
    assert client.request("HEAD", "/api/v1/backfills").status_code == 405  # POST only


def test_every_response_carries_a_request_id(base_url: str, client: httpx.Client) -> None:
    responses = [
        httpx.get(f"{base_url}/api/health"),
        httpx.get(f"{base_url}/api/v1/exchanges"),  # 401
        client.get("/api/v1/ohlcv", params={"start": "yesterday"}),  # 400
        client.get("/api/v1/nothing-here"),  # 404
        client.post("/api/v1/ohlcv"),  # 405
    ]
    ids = [response.headers["x-request-id"] for response in responses]
    assert len(set(ids)) == len(ids)
    echoed = client.get("/api/v1/exchanges", headers={"x-request-id": "probe-42"})
    assert echoed.headers["x-request-id"] == "probe-42"
    odd = client.get("/api/v1/exchanges", headers={"x-request-id": "a b; Set-Cookie: x=1"})
    uuid.UUID(odd.headers["x-request-id"])  # replaced, not echoed


def test_exchange_down_is_a_clear_503(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cbtrade"):
        response = client.get("/api/v1/ohlcv", params=GOOD | {"end": "2024-01-01T01:00:00Z"})
    assert response.status_code == 503, response.text
    request_id = response.headers["x-request-id"]
    assert _error(response) == {
        "code": "exchange_unavailable",
        "message": "the exchange is down, slow or rate-limiting the service; retry later",
    }
    assert int(response.headers["retry-after"]) > 0
    # Where the service reaches the exchange is in the log, under the request id, not in
    # the answer.
    assert "127.0.0.1" not in response.text
    logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1
    assert "exchange_unavailable" in logged[0]
    assert "127.0.0.1:9" in logged[0]


def test_settings_file_example_is_valid(tmp_path: Path) -> None:
    import json

    values = json.loads(Path("local.settings.json.example").read_text())["Values"]
    cbtrade = {k: v for k, v in values.items() if k.startswith("CBTRADE_")}
    documented = {f"CBTRADE_{name.upper()}" for name in Settings.model_fields}
    assert set(cbtrade) == documented
