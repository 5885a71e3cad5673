"""The retry policy: which answers are retried, how long the client waits, and Retry-After
(seconds or an HTTP-date). The clients' sleep is replaced by a recorder, so no test waits."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from cbtrade_client import (
    AsyncCandleClient,
    AuthenticationError,
    BadRequestError,
    CandleClient,
    CbTradeClientError,
    CbTradeConnectionError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
)
from cbtrade_client._errors import error_for, retry_after_seconds
from cbtrade_client._retry import RetryPolicy

NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)
LIST = {"exchanges": ["binance"]}


def answers(*statuses: int, retry_after: str | None = None) -> Callable[..., httpx.Response]:
    """A service that answers each status in turn (with ``Retry-After`` on errors, if
    given), then 200 with an exchange list; it records the requests it got."""
    pending = list(statuses)
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if not pending:
            return httpx.Response(200, json=LIST)
        status = pending.pop(0)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"error": {"code": f"code_{status}", "message": "try later"}}
        return httpx.Response(status, json=body, headers=headers)

    handler.requests = requests  # type: ignore[attr-defined]
    return handler


def client(
    handler: Callable[..., httpx.Response], sleeps: list[float], **options: float
) -> CandleClient:
    return CandleClient(
        "http://service", transport=httpx.MockTransport(handler), sleep=sleeps.append, **options
    )


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_after_in_seconds_is_waited_before_each_retry(status: int) -> None:
    sleeps: list[float] = []
    service = answers(status, status, retry_after="7")
    with client(service, sleeps, retries=3) as http:
        assert http.list_exchanges() == ["binance"]
    assert sleeps == [7.0, 7.0]
    assert len(service.requests) == 3  # type: ignore[attr-defined]


def test_retry_after_as_an_http_date_already_past_is_no_wait() -> None:
    sleeps: list[float] = []
    past = format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)
    with client(answers(503, retry_after=past), sleeps) as http:
        assert http.list_exchanges() == ["binance"]
    assert sleeps == [0.0]


def test_without_retry_after_the_backoff_doubles_with_jitter_up_to_the_bound() -> None:
    sleeps: list[float] = []
    service = answers(503, 503, 503, 503, 503)
    with client(service, sleeps, retries=5, retry_backoff=1, retry_max_delay=5) as http:
        assert http.list_exchanges() == ["binance"]
    bounds = [1, 2, 4, 5, 5]
    assert len(sleeps) == len(bounds)
    for waited, bound in zip(sleeps, bounds, strict=True):
        assert bound / 2 <= waited <= bound


def test_a_retry_after_longer_than_the_bound_is_raised_at_once() -> None:
    sleeps: list[float] = []
    service = answers(429, retry_after="3600")
    with (
        client(service, sleeps, retry_max_delay=60) as http,
        pytest.raises(RateLimitedError) as caught,
    ):
        http.list_exchanges()
    assert sleeps == []
    assert caught.value.retry_after == 3600.0
    assert (caught.value.status_code, caught.value.code) == (429, "code_429")


def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    sleeps: list[float] = []
    service = answers(*[503] * 10, retry_after="1")
    with client(service, sleeps, retries=2) as http, pytest.raises(ServiceUnavailableError):
        http.list_exchanges()
    assert sleeps == [1.0, 1.0]
    assert len(service.requests) == 3  # type: ignore[attr-defined]
    none: list[float] = []
    with client(answers(503), none, retries=0) as http, pytest.raises(ServiceUnavailableError):
        http.list_exchanges()
    assert none == []


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (422, CbTradeClientError),
        (500, CbTradeClientError),
    ],
)
def test_other_errors_are_typed_and_not_retried(
    status: int, error_type: type[CbTradeClientError]
) -> None:
    sleeps: list[float] = []
    service = answers(status, retry_after="1")
    with client(service, sleeps) as http, pytest.raises(error_type) as caught:
        http.list_exchanges()
    assert type(caught.value) is error_type
    assert (caught.value.status_code, caught.value.code, caught.value.message) == (
        status, f"code_{status}", "try later"
    )  # fmt: skip
    assert sleeps == []
    assert len(service.requests) == 1  # type: ignore[attr-defined]


async def test_the_async_client_awaits_its_sleep_between_attempts() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    service = answers(429, 503, retry_after="2.5")
    transport = httpx.MockTransport(service)
    async with AsyncCandleClient("http://service", transport=transport, sleep=sleep) as http:
        assert await http.list_exchanges() == ["binance"]
    assert sleeps == [2.5, 2.5]


def test_transport_errors_are_retried_with_backoff_then_a_connection_error() -> None:
    sleeps: list[float] = []

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        client(unreachable, sleeps, retries=2, retry_backoff=0.5) as http,
        pytest.raises(CbTradeConnectionError) as caught,
    ):
        http.list_exchanges()
    assert len(sleeps) == 2
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Mon, 01 Jan 2024 12:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 12:00:30 -0000", 30.0),
        ("Monday, 01-Jan-24 12:00:30 GMT", 30.0),  # the obsolete forms of an HTTP-date
        ("Mon Jan  1 12:00:30 2024", 30.0),
        ("Mon, 01 Jan 2024 11:00:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_header_values(header: str, seconds: float | None) -> None:
    assert retry_after_seconds(header, lambda: NOW) == seconds


def test_an_error_carries_the_retry_after_of_its_answer() -> None:
    answer = httpx.Response(503, headers={"Retry-After": "Mon, 01 Jan 2024 12:01:00 GMT"})
    error = error_for(answer, now=lambda: NOW)
    assert isinstance(error, ServiceUnavailableError)
    assert (error.retry_after, error.code) == (60.0, "http_error")


def test_the_policy_refuses_negative_settings() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="must not be negative"):
        CandleClient("http://service", retry_backoff=-0.5)


def test_the_policy_alone() -> None:
    policy = RetryPolicy(retries=2, backoff=1.0, max_delay=10.0, jitter=random.Random(7))
    unavailable = ServiceUnavailableError(503, "x", "y")
    assert 0.5 <= (policy.delay(1, unavailable) or 0) <= 1.0
    assert 1.0 <= (policy.delay(2, unavailable) or 0) <= 2.0
    assert policy.delay(3, unavailable) is None
    assert policy.delay(1, NotFoundError(404, "x", "y")) is None
    assert policy.delay(1, RateLimitedError(429, "x", "y", retry_after=10.0)) == 10.0
    assert policy.delay(1, RateLimitedError(429, "x", "y", retry_after=10.5)) is None
