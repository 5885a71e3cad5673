"""Telemetry: the Application Insights switch and the structured log events."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cbtrade import telemetry
from cbtrade.telemetry import (
    configure_telemetry,
    event_fields,
    format_event,
    log_event,
    timed_event,
)


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(telemetry.CONNECTION_STRING_ENV, raising=False)
    telemetry._reset_for_tests()
    yield
    telemetry._reset_for_tests()


@pytest.fixture
def fake_distro(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A stand-in for azure.monitor.opentelemetry that records its calls."""
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("azure.monitor.opentelemetry")

    def configure_azure_monitor(**kwargs: Any) -> None:
        calls.append(kwargs)

    module.configure_azure_monitor = configure_azure_monitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", module)
    return calls


def test_no_connection_string_is_a_no_op(fake_distro: list[dict[str, Any]]) -> None:
    assert configure_telemetry() is False
    assert configure_telemetry(connection_string="   ") is False
    assert fake_distro == []
    assert telemetry.telemetry_configured() is False


def test_connection_string_from_environment_configures_once(
    monkeypatch: pytest.MonkeyPatch, fake_distro: list[dict[str, Any]]
) -> None:
    conn = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x/"
    monkeypatch.setenv(telemetry.CONNECTION_STRING_ENV, conn)
    assert configure_telemetry() is True
    assert configure_telemetry() is True
    assert fake_distro == [{"connection_string": conn, "logger_name": "cbtrade"}]
    assert telemetry.telemetry_configured() is True


def test_explicit_connection_string_and_logger_name(
    fake_distro: list[dict[str, Any]],
) -> None:
    name = "cbtrade-test-telemetry-logger"
    assert configure_telemetry(connection_string="InstrumentationKey=k", logger_name=name)
    assert fake_distro == [{"connection_string": "InstrumentationKey=k", "logger_name": name}]
    # A logger without its own level gets INFO, so that events reach the exporter.
    assert logging.getLogger(name).level == logging.INFO


def test_missing_distro_only_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)
    with caplog.at_level(logging.WARNING, logger="cbtrade.telemetry"):
        assert configure_telemetry(connection_string="InstrumentationKey=k") is False
    assert "not installed" in caplog.text
    assert telemetry.telemetry_configured() is False


def test_event_fields_and_message() -> None:
    extra = event_fields(
        "history.fill",
        {
            "exchange": "cryptocom",
            "symbol": "BTC/USD",
            "timeframe": "5m",
            "start_ms": 1704067200000,
            "end_ms": 1704153600000,
            "candles_fetched": 288,
            "exchange_calls": 1,
            "complete": True,
            "skipped": None,
        },
    )
    assert extra == {
        "event": "history.fill",
        "exchange": "cryptocom",
        "symbol": "BTC/USD",
        "timeframe": "5m",
        "start_ms": 1704067200000,
        "end_ms": 1704153600000,
        "candles_fetched": 288,
        "exchange_calls": 1,
        "complete": True,
    }
    assert format_event(extra) == (
        "history.fill exchange=cryptocom symbol=BTC/USD timeframe=5m start_ms=1704067200000 "
        "end_ms=1704153600000 candles_fetched=288 exchange_calls=1 complete=true"
    )


def test_values_become_attribute_types() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    extra = event_fields(
        "timer.topup",
        {"at": when, "series": ("cryptocom:BTC/USD:5m", "binance:ETH/USDT:1m"), "obj": object},
    )
    assert extra["at"] == "2024-01-01T00:00:00+00:00"
    assert extra["series"] == ["cryptocom:BTC/USD:5m", "binance:ETH/USDT:1m"]
    assert extra["obj"] == "<class 'object'>"
    message = format_event(extra)
    assert "series=[cryptocom:BTC/USD:5m,binance:ETH/USDT:1m]" in message
    # Text with spaces or '=' is quoted so the message stays parseable.
    assert format_event(event_fields("e", {"note": "a b=c"})) == 'e note="a b=c"'


def test_reserved_field_names_are_renamed() -> None:
    extra = event_fields("e", {"name": "x", "msg": "y", "event": "z"})
    assert extra == {"event": "e", "field_name": "x", "field_msg": "y", "field_event": "z"}


@pytest.mark.parametrize("bad", ["", "has space", "a=b"])
def test_bad_event_names_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="event name"):
        event_fields(bad, {})


def test_log_event_puts_fields_in_extra_and_message(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cbtrade.test.events")
    with caplog.at_level(logging.INFO, logger="cbtrade.test.events"):
        log_event(logger, "history.fill", exchange="cryptocom", candles_fetched=3)
    [record] = caplog.records
    assert record.getMessage() == "history.fill exchange=cryptocom candles_fetched=3"
    assert record.__dict__["event"] == "history.fill"
    assert record.__dict__["exchange"] == "cryptocom"
    assert record.__dict__["candles_fetched"] == 3
    # stacklevel points the record at the caller, not at the helper.
    assert record.filename == "test_telemetry.py"


def test_log_event_skips_disabled_levels(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cbtrade.test.quiet")
    with caplog.at_level(logging.WARNING, logger="cbtrade.test.quiet"):
        log_event(logger, "history.fill", level=logging.DEBUG, exchange="x")
    assert caplog.records == []


def test_timed_event_logs_duration_and_added_fields(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cbtrade.test.timed")
    with (
        caplog.at_level(logging.INFO, logger="cbtrade.test.timed"),
        timed_event(logger, "timer.topup", series=2) as fields,
    ):
        fields["candles_fetched"] = 10
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.__dict__["series"] == 2
    assert record.__dict__["candles_fetched"] == 10
    assert record.__dict__["outcome"] == "ok"
    assert isinstance(record.__dict__["duration_ms"], float)


def test_timed_event_logs_failures_and_reraises(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cbtrade.test.failing")
    with (
        caplog.at_level(logging.INFO, logger="cbtrade.test.failing"),
        pytest.raises(RuntimeError, match="boom"),
        timed_event(logger, "history.fill", exchange="cryptocom"),
    ):
        raise RuntimeError("boom")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.__dict__["outcome"] == "error"
    assert record.__dict__["error_type"] == "RuntimeError"
    assert "history.fill exchange=cryptocom" in record.getMessage()


def test_the_real_distro_is_installed_and_exposes_the_entry_point() -> None:
    # requirements.txt pins azure-monitor-opentelemetry; configure_telemetry imports it lazily.
    import importlib

    module = importlib.import_module("azure.monitor.opentelemetry")
    assert callable(module.configure_azure_monitor)
