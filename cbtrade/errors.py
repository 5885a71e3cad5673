"""Typed errors of the data service.

Every error carries a stable machine-readable ``code`` and the HTTP ``status_code`` that the
API answers with, so the API layer maps them in one place and no traceback reaches a client.
A server-side error (5xx) also carries the ``public_message`` the API answers instead of its
own message, which may name the service's internals (storage hosts and ports, object keys,
exchange URLs) and goes to the logs only; and, when a retry may succeed, the
``retry_after_seconds`` the API sends in ``Retry-After``.
"""

from __future__ import annotations


class CbTradeError(Exception):
    """Base of every error the service raises on purpose."""

    code = "internal_error"
    status_code = 500
    public_message = "the service failed; retry later, or report the request id if it persists"
    retry_after_seconds: int | None = None


class ConfigurationError(CbTradeError):
    """A setting is missing or has a bad value; raised at start-up."""

    code = "configuration_error"


class InvalidInputError(CbTradeError, ValueError):
    """The caller's input is malformed or out of range."""

    code = "bad_request"
    status_code = 400


class InvalidPathComponentError(InvalidInputError):
    """An exchange id, symbol or timeframe cannot be used in a storage path."""

    code = "invalid_path_component"


class InvalidTimeframeError(InvalidInputError):
    """The timeframe is not one the service supports."""

    code = "invalid_timeframe"


class UnsupportedPriceTypeError(InvalidInputError):
    """The exchange or the market has no candles of the price type asked for."""

    code = "unsupported_price"


class InvalidCandleError(InvalidInputError):
    """A candle is malformed: wrong types, not finite, or not aligned to its timeframe."""

    code = "invalid_candle"


class InvalidContinuationTokenError(InvalidInputError):
    """A continuation token is garbage, truncated, tampered with or from another query."""

    code = "invalid_continuation_token"


class AuthenticationError(CbTradeError):
    """The request carries no valid credentials."""

    code = "unauthorized"
    status_code = 401


class ForbiddenError(CbTradeError):
    """The credentials are valid but do not allow this operation (e.g. it needs an admin)."""

    code = "forbidden"
    status_code = 403


class AuthenticationUnavailableError(CbTradeError):
    """The identity provider's signing keys cannot be fetched, so JWTs cannot be checked."""

    code = "auth_unavailable"
    status_code = 503
    public_message = (
        "tokens cannot be checked now (the identity provider's keys are unavailable); retry later"
    )
    retry_after_seconds = 10


class NotFoundError(CbTradeError):
    """The named resource does not exist."""

    code = "not_found"
    status_code = 404


class UnknownExchangeError(NotFoundError):
    """No plugin serves this exchange id."""

    code = "unknown_exchange"


class UnknownSymbolError(NotFoundError):
    """The exchange does not list this symbol, and nothing is stored for it."""

    code = "unknown_symbol"

    @classmethod
    def not_listed(cls, exchange: str, series: str) -> UnknownSymbolError:
        """The error for a series whose market ``exchange`` does not list."""
        return cls(f"{exchange} does not list {series.partition('@')[0]!r}")


class StorageError(CbTradeError):
    """The raw-data store failed."""

    code = "storage_error"
    status_code = 503
    public_message = "the candle store is unavailable; retry later"
    retry_after_seconds = 5


class StorageUnavailableError(StorageError):
    """The store cannot be reached (network, timeout, emulator down)."""

    code = "storage_unavailable"


class StoragePermissionError(StorageError):
    """The store refused access (file permissions, RBAC, bad key)."""

    code = "storage_permission_denied"
    public_message = (
        "the candle store refused the service's access; retry later, and report the request "
        "id if it persists"
    )
    retry_after_seconds = 30


class StorageFullError(StorageError):
    """The store has no space left."""

    code = "storage_full"
    public_message = "the candle store is full; retry later, and report the request id"
    retry_after_seconds = 60


class StorageConflictError(StorageError):
    """A conditional write kept losing to concurrent writers until the retry budget ran out."""

    code = "storage_conflict"
    public_message = "the candle store is busy with concurrent writes to this series; retry"
    retry_after_seconds = 1


class StorageCorruptError(StorageError):
    """A stored object cannot be decoded."""

    code = "storage_corrupt"
    public_message = (
        "stored candles of this series cannot be read; report the request id (an operator "
        "can repair the range)"
    )
    retry_after_seconds = 60


class InvalidWorkItemError(InvalidInputError):
    """A queue message is not a work item this service can do (garbage, or a job that does
    not exist): no retry can help."""

    code = "invalid_work_item"


class WorkItemFailedError(CbTradeError):
    """A work item did not complete; raised so that the queue retries it."""

    code = "work_item_failed"
    status_code = 503
    retry_after_seconds = 30


class WorkQueueUnavailableError(CbTradeError):
    """The work queue is not configured, so queued work (backfill jobs) cannot be accepted."""

    code = "work_queue_unavailable"
    status_code = 503
    # Raised only when no queue is configured: the fix is public (the README's), not internal.
    public_message = (
        "backfill jobs cannot be accepted: this deployment has no work queue (its operator "
        "sets AzureWebJobsStorage; locally, scripts/serve.sh --azurite)"
    )
    retry_after_seconds = 60


class ExchangeError(CbTradeError):
    """The exchange answered with an error the service cannot recover from."""

    code = "exchange_error"
    status_code = 502
    public_message = (
        "the exchange answered with an error; retry later, or report the request id if it persists"
    )


class ExchangeUnavailableError(ExchangeError):
    """The exchange stayed down, slow or rate-limiting through the whole retry budget."""

    code = "exchange_unavailable"
    status_code = 503
    public_message = "the exchange is down, slow or rate-limiting the service; retry later"
    retry_after_seconds = 10


class ExchangeHistoryUnavailableError(ExchangeError):
    """The exchange's API cannot serve candles this far back (e.g. Kraken's last 720)."""

    code = "exchange_history_unavailable"
    status_code = 422

    def __init__(self, message: str, *, earliest_available: int | None = None) -> None:
        super().__init__(message)
        self.earliest_available = earliest_available


PERMANENT_ERRORS: tuple[type[CbTradeError], ...] = (
    NotFoundError,
    InvalidInputError,
    ExchangeHistoryUnavailableError,
)
"""Errors a retry cannot fix (an unlisted symbol, bad input, history the exchange does not
keep): work that fails with one is reported at once, not retried."""
