"""Schemathesis over the service's own OpenAPI spec, over real HTTP, against the exchange
simulator, a local-disk store and Azurite's queue (for backfills).

Every generated case, valid or not, gets an answer the spec declares (status, media type,
headers, body schema) and never a 5xx; and valid cases (the spec's examples, its boundary
values and random draws) reach a 2xx on every operation. Links the spec declares are followed
from each 2xx, as a client would (a backfill's id to its progress). Hypothesis is
derandomized: every run sends the same cases.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cbtrade.api import create_app
from cbtrade.config import load_settings
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.server import WIRE_FORMATS
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.fixtures.http_server import serve_app

KEY = "fuzz-admin-key"  # an admin's, so that POST /api/v1/admin/refresh is exercised too
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Exchanges ccxt knows that the simulator does not play: the service would go to the internet
# for them (a 503 here, with no internet), so generated cases do not name them.
UNREACHABLE = frozenset(ccxt.exchanges) - {wire.EXCHANGE for wire in WIRE_FORMATS}
# Statuses by operation, of the valid (positive) cases and of the links followed from them.
VALID_CASE_STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture(scope="module")
def service_url(
    exchange_simulator: ExchangeSimulator,
    tmp_path_factory: pytest.TempPathFactory,
    azurite: AzuriteInstance,
) -> Iterator[str]:
    service_settings = load_settings(
        local_storage_root=Path(tmp_path_factory.mktemp("fuzz")),
        admin_api_keys=KEY,
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


def _names_an_unreachable_exchange(case: Case) -> bool:
    series = case.body.get("series") if isinstance(case.body, dict) else None
    if not isinstance(series, list):  # a negative case's may be any JSON value
        series = []
    named = [
        (case.query or {}).get("exchange"),
        (case.path_parameters or {}).get("exchange"),
        *(one.get("exchange") for one in series if isinstance(one, dict)),
    ]
    return any(isinstance(exchange, str) and exchange in UNREACHABLE for exchange in named)


@pytest.fixture(scope="module")
def api_schema(service_url: str) -> BaseSchema:
    schema = schemathesis.openapi.from_url(f"{service_url}/api/openapi.json")
    schema.config.update(headers={"Authorization": f"Bearer {KEY}"})
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        deterministic=True,
        with_security_parameters=False,
    )

    @schema.hook
    def filter_case(context: Any, case: Case) -> bool:
        return not _names_an_unreachable_exchange(case)

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _follow_links(case: Case, response: Response) -> None:
    """Call each operation that the spec links from this response, with the values the
    links name (``$response.body#/...``), and check its answer too."""
    declared = case.operation.definition.raw["responses"].get(str(response.status_code), {})
    for link in declared.get("links", {}).values():
        body = response.json()
        path_parameters = {}
        for name, expression in link["parameters"].items():
            source, _, pointer = expression.partition("#/")
            assert source == "$response.body", expression
            path_parameters[name] = body[pointer]
        target = case.operation.schema.find_operation_by_id(link["operationId"])
        followed = target.Case(path_parameters=path_parameters)
        answer = followed.call(headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        VALID_CASE_STATUSES[target.label][answer.status_code] += 1
        followed.validate_response(answer, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case: Case) -> None:
    response = case.call(timeout=60)
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message"}
    assert case.meta is not None
    if case.meta.generation.mode is GenerationMode.POSITIVE:
        VALID_CASE_STATUSES[case.operation.label][response.status_code] += 1
        if 200 <= response.status_code < 300:
            _follow_links(case, response)


def test_valid_cases_reach_2xx_on_every_operation(api_schema: BaseSchema) -> None:
    """Runs after the fuzz above, in the same module, and reads what it recorded."""
    if not VALID_CASE_STATUSES:
        pytest.skip("test_no_input_gets_a_server_error did not run")
    operations = {result.ok().label for result in api_schema.get_all_operations()}
    successes = {
        label: sum(n for status, n in VALID_CASE_STATUSES[label].items() if 200 <= status < 300)
        for label in sorted(operations)
    }
    print("2xx of valid cases by operation:", successes)
    summary = {label: dict(VALID_CASE_STATUSES[label]) for label in sorted(operations)}
    assert all(successes.values()), summary
