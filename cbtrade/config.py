"""Settings of the data service, read from ``CBTRADE_*`` environment variables.

The names are part of the deployment contract (see DESIGN.md). A bad value fails at start-up
with a :class:`~cbtrade.errors.ConfigurationError` that names the environment variable.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from cbtrade.errors import ConfigurationError
from cbtrade.price_types import split_series_symbol
from cbtrade.timeframes import timeframe_to_ms

ENV_PREFIX = "CBTRADE_"
_EXCHANGE_ID = re.compile(r"^[a-z0-9]{1,32}$")
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class WatchedSeries(NamedTuple):
    """One series the timer keeps topped up."""

    exchange: str
    symbol: str
    """A series symbol: ``BTC/USDT:USDT``, or ``BTC/USDT:USDT@mark`` for its mark price."""
    timeframe: str


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All settings of the service; see ``local.settings.json.example`` for every one."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    # Storage
    storage_backend: Literal["local", "azure"] = "local"
    local_storage_root: Path = Path("./data")
    azure_connection_string: SecretStr | None = None
    azure_account_url: str | None = None
    azure_container: str = "cbtrade"
    storage_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    storage_write_attempts: int = Field(default=20, ge=1, le=100)
    # true: storage and queue requests read HTTP(S)_PROXY / NO_PROXY and .netrc from the
    # environment (a thread hop per request); Azure needs no proxy.
    storage_trust_env: bool = False
    # How often an instance reads a series' repair marker: the longest a repair elsewhere
    # takes to be served here (sealed objects are otherwise served from memory).
    sealed_recheck_seconds: float = Field(default=10.0, ge=0, le=3_600)
    # max-age of HTTP pages whose range is wholly sealed (immutable until a repair).
    sealed_max_age_seconds: int = Field(default=86_400, ge=0, le=31_536_000)
    # Memory for warm pages (MiB; 0 turns one off): sealed pages of at most 1 MiB kept
    # encoded, and the JSON/CSV text of sealed objects' rows that pages of at most 10,000
    # candles are cut from.
    page_cache_mb: int = Field(default=16, ge=0, le=4_096)
    row_text_cache_mb: int = Field(default=64, ge=0, le=4_096)

    # Auth
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # true: no token is checked on any route, the admin routes included (local development).
    auth_disabled: bool = False
    jwt_hs256_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    # Exchanges
    exchange_url_overrides: dict[str, str] = Field(default_factory=dict)
    exchange_timeout_ms: int = Field(default=15_000, ge=100, le=120_000)
    exchange_retry_attempts: int = Field(default=5, ge=1, le=20)
    exchange_retry_max_wait_seconds: float = Field(default=8.0, gt=0, le=120)
    exchange_calls_in_flight: int = Field(default=8, ge=1, le=64)
    # Per exchange id: the pace of its calls in ccxt's cost units per second (ccxt gives each
    # endpoint a cost: a Binance spot kline call is 0.4 units). Unset: ccxt's 1000 / rateLimit.
    exchange_rate_limits: dict[str, float] = Field(default_factory=dict)
    # "process": each process paces its own calls; "shared": every instance on the same store
    # draws from one budget per exchange (an ETag-conditional document), so N instances
    # together keep to the rate.
    rate_budget_scope: Literal["process", "shared"] = "process"

    # History and pages
    page_default_limit: int = Field(default=20_000, ge=1)
    page_max_limit: int = Field(default=100_000, ge=1, le=1_000_000)
    page_time_budget_seconds: float = Field(default=20.0, gt=0, le=200)
    empty_fetch_grace_seconds: int = Field(default=3_600, ge=0)
    continuation_token_secret: SecretStr | None = None

    # Timer top-up
    watchlist: Annotated[list[WatchedSeries], NoDecode] = Field(default_factory=list)
    topup_schedule: str = "0 */5 * * * *"
    topup_max_backfill_days: float = Field(default=7.0, gt=0, le=3_650)
    topup_series_per_item: int = Field(default=10, ge=1, le=100)

    # Work queues in the AzureWebJobsStorage account: top-up items on their own queue, so a
    # large backfill never delays the watchlist
    topup_queue: str = "cbtrade-topup"
    work_queue: str = "cbtrade-work"
    work_queue_local_host: bool = False
    backfill_max_series: int = Field(default=500, ge=1, le=10_000)
    backfill_max_calls: int = Field(default=250_000, ge=1)
    backfill_window_calls: int = Field(default=32, ge=1, le=1_000)

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("watchlist", mode="before")
    @classmethod
    def _parse_watchlist(cls, value: object) -> object:
        items = _split_csv(value)
        if not isinstance(items, list):
            return items
        series = []
        for item in items:
            if isinstance(item, WatchedSeries):
                series.append(item)
                continue
            exchange, sep, rest = str(item).partition(":")
            symbol, sep2, timeframe = rest.rpartition(":")
            if not (sep and sep2 and exchange and symbol and timeframe):
                raise ValueError(f"{item!r} is not exchange:SYMBOL:timeframe")
            if not _EXCHANGE_ID.match(exchange):
                raise ValueError(f"{item!r}: exchange id must match [a-z0-9]+")
            timeframe_to_ms(timeframe)
            split_series_symbol(symbol)
            series.append(WatchedSeries(exchange, symbol, timeframe))
        return series

    @field_validator("exchange_url_overrides")
    @classmethod
    def _check_overrides(cls, value: dict[str, str]) -> dict[str, str]:
        for exchange, origin in value.items():
            if not _EXCHANGE_ID.match(exchange):
                raise ValueError(f"{exchange!r}: exchange id must match [a-z0-9]+")
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path
                not in (
                    "",
                    "/",
                )
            ):
                raise ValueError(
                    f"{origin!r} for {exchange!r} must be an origin like http://host:port"
                )
        return value

    @field_validator("exchange_rate_limits")
    @classmethod
    def _check_rate_limits(cls, value: dict[str, float]) -> dict[str, float]:
        for exchange, rate in value.items():
            if not _EXCHANGE_ID.match(exchange):
                raise ValueError(f"{exchange!r}: exchange id must match [a-z0-9]+")
            if not 0 < rate <= 100_000:
                raise ValueError(f"{exchange!r}: {rate!r} units per second is not in (0, 100000]")
        return value

    @field_validator("topup_queue", "work_queue")
    @classmethod
    def _check_queue(cls, value: str) -> str:
        # Azure queue names; "-poison" is appended for the poison queue (63 characters at most).
        if not _CONTAINER_NAME.match(value) or len(value) > 56:
            raise ValueError(f"{value!r} is not a valid queue name of at most 56 characters")
        return value

    @field_validator("azure_container")
    @classmethod
    def _check_container(cls, value: str) -> str:
        if not _CONTAINER_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid blob container name")
        return value

    @field_validator("azure_account_url", "jwt_jwks_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("continuation_token_secret")
    @classmethod
    def _check_token_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes long")
        return value

    @field_validator("topup_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError(f"{value!r} is not a six-field CRON expression")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if (
            self.storage_backend == "azure"
            and self.azure_connection_string is None
            and self.azure_account_url is None
        ):
            raise ValueError(
                f"{ENV_PREFIX}STORAGE_BACKEND=azure needs {ENV_PREFIX}AZURE_CONNECTION_STRING "
                f"or {ENV_PREFIX}AZURE_ACCOUNT_URL"
            )
        if self.topup_queue == self.work_queue:
            raise ValueError(
                f"{ENV_PREFIX}TOPUP_QUEUE and {ENV_PREFIX}WORK_QUEUE must be different queues"
            )
        if self.page_default_limit > self.page_max_limit:
            raise ValueError(
                f"{ENV_PREFIX}PAGE_DEFAULT_LIMIT must not exceed {ENV_PREFIX}PAGE_MAX_LIMIT"
            )
        return self


_SECRET_FIELDS = frozenset(
    name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
)
_SHOWN_VALUE_CHARS = 80


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into a ConfigurationError whose
    message is one line naming each bad variable (and its value, unless it is a secret)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
    except SettingsError as exc:
        # Raised for values that must be JSON and are not; the message names the field.
        match = re.search(r'field "([a-z_]+)"', str(exc))
        name = f"{ENV_PREFIX}{match.group(1).upper()}" if match else "settings"
        raise ConfigurationError(
            f"invalid settings: {name}: not valid JSON (a JSON object is expected)"
        ) from None


def _problem(error: ErrorDetails) -> str:
    """``CBTRADE_NAME='value': what is wrong`` for one validation error, on one line."""
    what = " ".join(error["msg"].removeprefix("Value error, ").split())
    if not error["loc"]:
        return what  # a rule across settings: its message names them
    field, *inner = (str(part) for part in error["loc"])
    name = f"{ENV_PREFIX}{field.upper()}" + "".join(f"[{part!r}]" for part in inner)
    value = error.get("input")
    if field not in _SECRET_FIELDS and isinstance(value, str | int | float):
        shown = repr(value)
        if len(shown) <= _SHOWN_VALUE_CHARS:
            name = f"{name}={shown}"
    return f"{name}: {what}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
