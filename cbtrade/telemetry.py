"""Telemetry: Application Insights when it is configured, and structured log events.

``configure_telemetry()`` sends traces and the ``cbtrade`` loggers' records to Application
Insights through the Azure Monitor OpenTelemetry distro when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (as the Bicep in ``infra/`` does); without it,
it does nothing, so local runs and tests stay offline. Call it once at start-up, before the
FastAPI app is created, so that the FastAPI instrumentation sees the app. With Microsoft Entra
authentication (``APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ClientId=...;Authorization=AAD``,
set by ``infra/``) the exporter picks the managed identity from that variable itself.

``log_event(logger, "history.fill", exchange=..., symbol=..., candles_fetched=...)`` writes one
record whose message reads ``history.fill exchange=cryptocom symbol=BTC/USD ...`` and whose
``extra`` carries the same fields, which Application Insights shows as custom dimensions. Use the
field names below so that queries work across modules.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from typing import Final

CONNECTION_STRING_ENV: Final = "APPLICATIONINSIGHTS_CONNECTION_STRING"
DEFAULT_LOGGER_NAME: Final = "cbtrade"

# Field names shared by every module's events (custom dimensions in Application Insights).
EVENT: Final = "event"
EXCHANGE: Final = "exchange"
SYMBOL: Final = "symbol"
TIMEFRAME: Final = "timeframe"
START_MS: Final = "start_ms"
END_MS: Final = "end_ms"
CANDLES_FETCHED: Final = "candles_fetched"
CANDLES_STORED: Final = "candles_stored"
CANDLES_RETURNED: Final = "candles_returned"
EXCHANGE_CALLS: Final = "exchange_calls"
GAPS: Final = "gaps"
SERIES: Final = "series"
DURATION_MS: Final = "duration_ms"
OUTCOME: Final = "outcome"
ERROR_TYPE: Final = "error_type"

_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:/-]+$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Attributes of every LogRecord: an ``extra`` key among them makes logging raise.
_RESERVED = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_PLAIN_TEXT = re.compile(r"^[^\s=\"']+$")

_lock = threading.Lock()
_configured = False

Scalar = str | int | float | bool


def configure_telemetry(
    *, connection_string: str | None = None, logger_name: str = DEFAULT_LOGGER_NAME
) -> bool:
    """Send traces and logs to Application Insights when a connection string is set.

    The connection string comes from the argument or else from
    ``APPLICATIONINSIGHTS_CONNECTION_STRING``; when neither is set this is a no-op. Only the
    records of ``logger_name`` and its children are exported, so the Azure SDK's own HTTP logs
    do not feed back into the exporter. Safe to call more than once: only the first call that
    finds a connection string configures anything. Returns whether telemetry is exported.
    """
    global _configured
    value = (
        connection_string
        if connection_string is not None
        else os.environ.get(CONNECTION_STRING_ENV, "")
    )
    value = value.strip()
    if not value:
        return False
    with _lock:
        if _configured:
            return True
        try:
            # Imported here: the distro is heavy, and local runs and tests never need it.
            from azure.monitor.opentelemetry import configure_azure_monitor
        except ImportError:
            logging.getLogger(__name__).warning(
                "%s is set but azure-monitor-opentelemetry is not installed; "
                "telemetry stays in the local logs",
                CONNECTION_STRING_ENV,
            )
            return False
        configure_azure_monitor(connection_string=value, logger_name=logger_name)
        logger = logging.getLogger(logger_name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        _configured = True
    return True


def telemetry_configured() -> bool:
    """Whether :func:`configure_telemetry` has set up the Application Insights exporters."""
    return _configured


def _reset_for_tests() -> None:
    global _configured
    with _lock:
        _configured = False


def _attribute(value: object) -> Scalar | list[Scalar]:
    """An OpenTelemetry attribute value: a scalar, or a list of scalars."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = [_attribute(item) for item in value]
        if all(isinstance(item, bool | int | float | str) for item in items):
            return [item for item in items if not isinstance(item, list)]
        return json.dumps([str(item) for item in items])
    return str(value)


def _text(value: Scalar | list[Scalar]) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_text(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if _PLAIN_TEXT.match(value) else json.dumps(value)
    return str(value)


def event_fields(event: str, fields: Mapping[str, object]) -> dict[str, Scalar | list[Scalar]]:
    """The ``extra`` mapping of an event: ``event`` plus the fields that are not ``None``.

    A field whose name clashes with a LogRecord attribute (``name``, ``msg``, ...) is stored
    under ``field_<name>`` instead, so that logging does not reject the record.
    """
    if not _EVENT_NAME.match(event):
        raise ValueError(f"event name {event!r} must be non-empty, without spaces or '='")
    extra: dict[str, Scalar | list[Scalar]] = {EVENT: event}
    for key, value in fields.items():
        if not _FIELD_NAME.match(key):
            raise ValueError(f"field name {key!r} is not an identifier")
        if value is None:
            continue
        name = f"field_{key}" if key in _RESERVED or key == EVENT else key
        extra[name] = _attribute(value)
    return extra


def format_event(extra: Mapping[str, Scalar | list[Scalar]]) -> str:
    """The message of an event: ``<event> key=value ...`` in the order the fields came."""
    parts = [str(extra[EVENT])]
    parts.extend(f"{key}={_text(value)}" for key, value in extra.items() if key != EVENT)
    return " ".join(parts)


def log_event(
    logger: logging.Logger, event: str, /, *, level: int = logging.INFO, **fields: object
) -> None:
    """Log one structured event, with its fields both in the message and in ``extra``.

    Example: ``log_event(log, "history.fill", exchange="cryptocom", symbol="BTC/USD",
    timeframe="5m", start_ms=s, end_ms=e, candles_fetched=288, exchange_calls=1)``.
    ``None`` fields are left out; datetimes become ISO-8601 text; other objects their ``str``.
    """
    if not logger.isEnabledFor(level):
        return
    extra = event_fields(event, fields)
    logger.log(level, "%s", format_event(extra), extra=extra, stacklevel=2)


@contextmanager
def timed_event(
    logger: logging.Logger, event: str, /, *, level: int = logging.INFO, **fields: object
) -> Iterator[dict[str, object]]:
    """Log ``event`` when the block ends, with ``duration_ms`` and ``outcome``.

    The block may add fields to the yielded dict (``fields["candles_fetched"] = n``). When the
    block raises, the event is logged at WARNING with ``outcome=error`` and ``error_type``, and
    the exception propagates.
    """
    collected: dict[str, object] = dict(fields)
    started = time.perf_counter()
    try:
        yield collected
    except BaseException as exc:
        collected[DURATION_MS] = round((time.perf_counter() - started) * 1000, 1)
        collected[OUTCOME] = "error"
        collected[ERROR_TYPE] = type(exc).__name__
        log_event(logger, event, level=max(level, logging.WARNING), **collected)
        raise
    collected[DURATION_MS] = round((time.perf_counter() - started) * 1000, 1)
    collected.setdefault(OUTCOME, "ok")
    log_event(logger, event, level=level, **collected)
