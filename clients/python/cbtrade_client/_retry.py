"""When to send a request again: the retry policy both clients share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cbtrade_client._errors import (
    CbTradeClientError,
    CbTradeConnectionError,
    RateLimitedError,
    ServiceUnavailableError,
)

RETRIED = (RateLimitedError, ServiceUnavailableError, CbTradeConnectionError)
"""429, 502, 503, 504 and transport errors: what a later attempt may get past."""


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``retries`` more attempts after a retried error.

    The wait before each is the ``Retry-After`` the service asked for, or else an
    exponential backoff (``backoff`` seconds, doubling each attempt) with jitter; never
    more than ``max_delay``. A ``Retry-After`` longer than ``max_delay`` is not waited out:
    the error is raised at once, with its ``retry_after``.
    """

    retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0
    jitter: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_delay < 0:
            raise ValueError(
                "retries, retry_backoff and retry_max_delay must not be negative, got "
                f"{self.retries}, {self.backoff}, {self.max_delay}"
            )

    def delay(self, retry: int, error: CbTradeClientError) -> float | None:
        """Seconds to wait before retry number ``retry`` (from 1) after ``error``, or None
        if ``error`` is to be raised."""
        if retry > self.retries or not isinstance(error, RETRIED):
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_delay else None
        backoff = min(self.backoff * 2.0 ** (retry - 1), self.max_delay)
        return backoff * self.jitter.uniform(0.5, 1.0)

    def start(self) -> Retrying:
        """The retries of one request."""
        return Retrying(self)


class Retrying:
    """The retries of one request: each error either gives the wait before the next
    attempt or is raised."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._retries = 0

    def wait_after(self, error: CbTradeClientError) -> float:
        """The seconds to wait before trying again after ``error``; raises ``error`` when
        the policy gives up."""
        self._retries += 1
        delay = self._policy.delay(self._retries, error)
        if delay is None:
            raise error
        return delay
