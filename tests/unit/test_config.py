"""Settings: the contract's names, defaults, and start-up failures that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbtrade.config import WatchedSeries, load_settings
from cbtrade.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CBTRADE_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_documented_local_ones() -> None:
    settings = load_settings()
    assert settings.storage_backend == "local"
    assert settings.local_storage_root == Path("data")
    assert settings.azure_container == "cbtrade"
    assert settings.auth_disabled is False
    assert settings.api_keys == []
    assert settings.admin_api_keys == []
    assert settings.exchange_url_overrides == {}
    assert settings.watchlist == []
    assert settings.topup_schedule == "0 */5 * * * *"


def test_values_are_read_from_cbtrade_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CBTRADE_API_KEYS", " key-one , key-two ,")
    monkeypatch.setenv("CBTRADE_ADMIN_API_KEYS", "op-key-one,, op-key-two ")
    monkeypatch.setenv(
        "CBTRADE_WATCHLIST",
        "cryptocom:BTC/USD:5m, binance:BTC/USDT:USDT:1m,binance:BTC/USDT:USDT@mark:1m",
    )
    monkeypatch.setenv("CBTRADE_EXCHANGE_URL_OVERRIDES", '{"cryptocom": "http://127.0.0.1:9000"}')
    monkeypatch.setenv("CBTRADE_AUTH_DISABLED", "true")
    monkeypatch.setenv("CBTRADE_AZURE_ACCOUNT_URL", "")
    settings = load_settings()
    assert [key.get_secret_value() for key in settings.api_keys] == ["key-one", "key-two"]
    assert [key.get_secret_value() for key in settings.admin_api_keys] == [
        "op-key-one",
        "op-key-two",
    ]
    assert "op-key-one" not in repr(settings)
    assert settings.watchlist == [
        WatchedSeries("cryptocom", "BTC/USD", "5m"),
        WatchedSeries("binance", "BTC/USDT:USDT", "1m"),
        WatchedSeries("binance", "BTC/USDT:USDT@mark", "1m"),
    ]
    assert settings.exchange_url_overrides == {"cryptocom": "http://127.0.0.1:9000"}
    assert settings.auth_disabled is True
    assert settings.azure_account_url is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CBTRADE_STORAGE_BACKEND", "s3", "CBTRADE_STORAGE_BACKEND"),
        ("CBTRADE_PAGE_MAX_LIMIT", "lots", "CBTRADE_PAGE_MAX_LIMIT"),
        ("CBTRADE_WATCHLIST", "cryptocom:BTC/USD", "exchange:SYMBOL:timeframe"),
        ("CBTRADE_WATCHLIST", "cryptocom:BTC/USD:7m", "unsupported timeframe"),
        ("CBTRADE_WATCHLIST", "binance:BTC/USDT:USDT@last:5m", "does not name a price type"),
        ("CBTRADE_WATCHLIST", "Crypto.com:BTC/USD:5m", "CBTRADE_WATCHLIST"),
        ("CBTRADE_EXCHANGE_URL_OVERRIDES", "not json", "CBTRADE_EXCHANGE_URL_OVERRIDES"),
        ("CBTRADE_EXCHANGE_URL_OVERRIDES", '{"cryptocom": "ftp://x"}', "must be an origin"),
        ("CBTRADE_EXCHANGE_URL_OVERRIDES", '{"cryptocom": "http://h/p"}', "must be an origin"),
        ("CBTRADE_AZURE_CONTAINER", "Bad_Name", "CBTRADE_AZURE_CONTAINER"),
        ("CBTRADE_TOPUP_SCHEDULE", "*/5 * * * *", "six-field"),
        ("CBTRADE_CONTINUATION_TOKEN_SECRET", "short", "CBTRADE_CONTINUATION_TOKEN_SECRET"),
        ("CBTRADE_AUTH_DISABLED", "maybe", "CBTRADE_AUTH_DISABLED"),
        ("CBTRADE_EXCHANGE_CALLS_IN_FLIGHT", "0", "CBTRADE_EXCHANGE_CALLS_IN_FLIGHT"),
    ],
)
def test_bad_values_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_azure_backend_needs_a_connection_string_or_account_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CBTRADE_STORAGE_BACKEND", "azure")
    with pytest.raises(ConfigurationError, match="CBTRADE_AZURE_ACCOUNT_URL"):
        load_settings()
    monkeypatch.setenv("CBTRADE_AZURE_ACCOUNT_URL", "https://acct.blob.core.windows.net")
    assert load_settings().storage_backend == "azure"
