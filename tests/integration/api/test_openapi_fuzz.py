"""Schemathesis over the service's own OpenAPI spec, over real HTTP: no input gets a 5xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.schemas import BaseSchema

from cbtrade.api import create_app
from cbtrade.config import load_settings
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.fixtures.http_server import serve_app

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def service_url(
    exchange_simulator: ExchangeSimulator,
    tmp_path_factory: pytest.TempPathFactory,
    azurite: AzuriteInstance,
) -> Iterator[str]:
    service_settings = load_settings(
        local_storage_root=Path(tmp_path_factory.mktemp("fuzz")),
        api_keys=KEY,
        continuation_token_secret="fuzz-token-secret-0123456789",
        exchange_url_overrides=simulator_url_overrides(exchange_simulator),
        exchange_retry_attempts=2,
        exchange_retry_max_wait_seconds=0.05,
        # Generated ranges may reach back to 1970: keep each page's work small.
        page_default_limit=50,
        page_time_budget_seconds=1,
        work_queue=f"fuzz-{uuid.uuid4().hex[:12]}",
    )
    # A work queue, so POST /api/v1/backfills is exercised, not refused as unconfigured.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AzureWebJobsStorage", azurite.connection_string)
        app = create_app(service_settings)
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(service_url: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{service_url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case: Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert response.status_code < 500, (case.as_curl_command(), response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) == {"code", "message"}
