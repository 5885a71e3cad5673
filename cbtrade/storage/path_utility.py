"""Storage keys of the raw candle data: where each candle of each series lives.

Layout (keys use ``/`` on every backend; LocalFileStorage maps them under its root)::

    raw_data/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}.arrow            year objects
    raw_data/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}/{mm}.arrow       month objects
    raw_data/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}/{mm}/{dd}.arrow  day objects
    raw_data/{exchange}/{encoded_symbol}/{timeframe}/bounds.json             series bounds
    raw_data/{exchange}/{encoded_symbol}/{timeframe}/generation.json         repair marker
    raw_data/{exchange}/{encoded_symbol}/{timeframe}/summary.json            catalog summary
    calendar/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}.arrow            calendar candles
    calendar/{exchange}/{encoded_symbol}/{timeframe}/empty_years.json        years without
    funding/{exchange}/{encoded_symbol}/{yyyy}.arrow                         funding rates
    funding/{exchange}/{encoded_symbol}/empty_years.json                     years without

Data objects are Arrow IPC streams (the format is in :mod:`cbtrade.storage.object_storage`)
and are the only keys ending in ``.arrow``: listings of data objects keep to that suffix, so
they never see the series bounds record, the repair marker or the catalog summary (small
JSON objects).

Granularity: one object holds one UTC calendar period of one series, and the period is the
coarsest of year, month or day whose candle count stays <= 10,000 (``MAX_CANDLES_PER_OBJECT``):
1m and 3m -> day; 5m, 15m and 30m -> month; 1h and coarser -> year. The trade-off, measured on
Azurite (2 cores): each request costs a few ms of client CPU whatever its size at this scale,
so a fresh instance reads a year of 1m candles in 365 day objects in 0.85 s, and of 5m in 12
month objects in 0.05 s (warm, validated by one listing per folder: 0.09 s and 0.008 s).
Fewer, larger objects are cheaper to read; but a year of 5m candles is 105,120, and every write
re-reads and re-writes its whole object (read-merge-write with an ETag condition), so an object
must stay small enough to rewrite cheaply when the newest candles are topped up every few
minutes. 10,000 candles (~0.2 MB of compressed columns) keeps both costs low. Never one object
per candle.

Symbols: the input is a ccxt unified symbol (``BTC/USD``, ``BTC/USDT:USDT``). The encoding is
reversible and injective: ``/`` becomes ``-``, characters in ``[A-Za-z0-9._]`` stay, and every
other allowed character is ``%XX``-escaped (``-`` -> ``%2D``, ``:`` -> ``%3A``), so
``BTC/USD`` -> ``BTC-USD`` and ``BTC/USDT:USDT`` -> ``BTC-USDT%3AUSDT``. Anything that could
escape the layout or confuse a filesystem (``..``, ``\\``, control characters, whitespace,
a leading ``.``) is rejected with :class:`~cbtrade.errors.InvalidPathComponentError`.

Price types: a series of mark, index or premium-index candles is named by its *series
symbol* (:mod:`cbtrade.price_types`), ``BTC/USDT:USDT@mark``; its folder is the encoded
symbol with the suffix as is, ``BTC-USDT%3AUSDT@mark``. Encoding escapes every ``@`` of a
symbol, so the suffix cannot be confused with one, and trade series keep the keys they had.
"""

from __future__ import annotations

import re
from calendar import isleap, monthrange
from datetime import date
from typing import Literal, NamedTuple

from cbtrade.calendar_timeframes import calendar_span
from cbtrade.errors import InvalidPathComponentError
from cbtrade.models import TimeRange
from cbtrade.price_types import SEPARATOR, split_series_symbol
from cbtrade.timeframes import TIMEFRAME_MS, timeframe_to_ms

ROOT = "raw_data"
CALENDAR_ROOT = "calendar"
"""An exchange's own calendar candles (weekly, monthly, ``3d``), stored by their open times:
``calendar/{exchange}/{encoded_symbol}/{timeframe}/{yyyy}.arrow``, one object per series and
year (at most 122 candles)."""
FUNDING_ROOT = "funding"
"""Funding-rate histories: ``funding/{exchange}/{encoded_symbol}/{yyyy}.arrow``, one object
per contract and calendar year (at most 8,784 hourly events)."""
DOCUMENTS_ROOT = "service"
DOCUMENT_SUFFIX = ".json"
OBJECT_SUFFIX = ".arrow"
BOUNDS_NAME = "bounds.json"
GENERATION_NAME = "generation.json"
"""A series' repair marker, rewritten after every repair of it (see object_storage)."""
SUMMARY_NAME = "summary.json"
"""A series' catalog summary, a cache of what its objects hold (see cbtrade.storage.catalog)."""
MAX_CANDLES_PER_OBJECT = 10_000
MAX_SYMBOL_LENGTH = 64
DAY_MS = 86_400_000

Granularity = Literal["year", "month", "day"]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MAX_TIMESTAMP = (date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * DAY_MS
"""Exclusive upper bound of storable timestamps (the year must have four digits)."""

_EXCHANGE_ID = re.compile(r"[a-z0-9]{1,32}")
_SYMBOL_CHARS = re.compile(r"[A-Za-z0-9._/:-]+")
_DOCUMENT_PATH = re.compile(r"(?:[a-z0-9][a-z0-9._-]{0,62}/){0,7}[a-z0-9][a-z0-9._-]{0,62}")
_ENCODED_SYMBOL = re.compile(r"(?:[A-Za-z0-9._-]|%[0-9A-F]{2})+(?:@[a-z_]+)?")
_ESCAPE = re.compile(r"[^A-Za-z0-9._/]")
_UNESCAPE = re.compile(r"%([0-9A-F]{2})")
_DIGITS = {"yyyy": re.compile(r"[0-9]{4}"), "mm": re.compile(r"[0-9]{2}")}
_DATE_PARTS: dict[Granularity, int] = {"year": 1, "month": 2, "day": 3}
# The longest period of each granularity, in days (a leap year, a 31-day month).
_MAX_DAYS: dict[Granularity, int] = {"year": 366, "month": 31, "day": 1}


class ParsedRawDataPath(NamedTuple):
    """What a storage key names: a series and the period its object holds."""

    exchange_name: str
    coin_symbol: str
    timeframe: str
    period: TimeRange


class RawDataObject(NamedTuple):
    """One stored object: its key and the period ``[start, end)`` of candles it holds."""

    key: str
    period: TimeRange


def _granularity(timeframe_ms: int) -> Granularity:
    for granularity in ("year", "month", "day"):
        if _MAX_DAYS[granularity] * DAY_MS // timeframe_ms <= MAX_CANDLES_PER_OBJECT:
            return granularity
    return "day"


_GRANULARITY: dict[str, Granularity] = {tf: _granularity(ms) for tf, ms in TIMEFRAME_MS.items()}


def _ms_to_day(timestamp: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + timestamp // DAY_MS)


def _period_of_day(day: date, granularity: Granularity) -> TimeRange:
    """The period ``[start, end)`` in epoch ms of the given granularity that contains ``day``."""
    if granularity == "day":
        first, days = day.toordinal(), 1
    elif granularity == "month":
        first, days = day.replace(day=1).toordinal(), monthrange(day.year, day.month)[1]
    else:
        first, days = date(day.year, 1, 1).toordinal(), 366 if isleap(day.year) else 365
    return TimeRange((first - _EPOCH_ORDINAL) * DAY_MS, (first + days - _EPOCH_ORDINAL) * DAY_MS)


def _date_suffix(day: date, granularity: Granularity) -> str:
    parts = [f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"]
    return "/".join(parts[: _DATE_PARTS[granularity]]) + OBJECT_SUFFIX


def _objects_spanning(
    prefix: str, granularity: Granularity, start_time: int, end_time: int
) -> list[RawDataObject]:
    """The objects under ``prefix``, one per period of ``granularity``, that intersect
    ``[start_time, end_time)`` clipped to ``[0, MAX_TIMESTAMP)``, ascending."""
    cursor, end = max(start_time, 0), min(end_time, MAX_TIMESTAMP)
    objects = []
    while cursor < end:
        period = _period_of_day(_ms_to_day(cursor), granularity)
        objects.append(
            RawDataObject(prefix + _date_suffix(_ms_to_day(period.start), granularity), period)
        )
        cursor = period.end
    return objects


class StoragePathUtility:
    """Builds, validates and parses the storage keys of raw candle data (see module docstring)."""

    def validate_exchange(self, exchange_name: str) -> str:
        """Return ``exchange_name`` if it is a ccxt-style id (``[a-z0-9]{1,32}``), else raise."""
        if not isinstance(exchange_name, str) or not _EXCHANGE_ID.fullmatch(exchange_name):
            raise InvalidPathComponentError(
                f"invalid exchange id {exchange_name!r}: must match [a-z0-9]{{1,32}}"
            )
        return exchange_name

    def validate_symbol(self, coin_symbol: str) -> str:
        """Return ``coin_symbol`` (a series symbol: a ccxt symbol, with ``@{price}`` for a
        price type other than trade) if it can be stored, else raise naming the problem."""
        if not isinstance(coin_symbol, str):
            raise InvalidPathComponentError(f"invalid symbol {coin_symbol!r}: not a string")
        try:
            symbol, _price = split_series_symbol(coin_symbol)
        except ValueError as exc:
            raise InvalidPathComponentError(f"invalid symbol {coin_symbol!r}: {exc}") from None
        problem = None
        if not symbol:
            problem = "empty"
        elif len(symbol) > MAX_SYMBOL_LENGTH:
            problem = f"longer than {MAX_SYMBOL_LENGTH} characters"
        elif any(ord(ch) < 32 or ord(ch) == 127 for ch in symbol):
            problem = "contains a NUL or control character"
        elif any(ch.isspace() for ch in symbol):
            problem = "contains whitespace"
        elif ".." in symbol:
            problem = "contains '..'"
        elif "\\" in symbol:
            problem = "contains a backslash"
        elif symbol.startswith("."):
            problem = "starts with '.'"
        elif not _SYMBOL_CHARS.fullmatch(symbol):
            problem = "has characters outside [A-Za-z0-9._/:-]"
        if problem:
            raise InvalidPathComponentError(f"invalid symbol {coin_symbol!r}: {problem}")
        return coin_symbol

    def encode_symbol(self, coin_symbol: str) -> str:
        """The path component of a series symbol: ``BTC/USDT:USDT`` -> ``BTC-USDT%3AUSDT``,
        ``BTC/USDT:USDT@mark`` -> ``BTC-USDT%3AUSDT@mark``."""
        symbol, price = split_series_symbol(self.validate_symbol(coin_symbol))
        escaped = _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", symbol).replace("/", "-")
        return escaped if symbol == coin_symbol else f"{escaped}{SEPARATOR}{price}"

    def decode_symbol(self, encoded: str) -> str:
        """Reverse :meth:`encode_symbol`; rejects anything it would not have produced."""
        if not isinstance(encoded, str) or not _ENCODED_SYMBOL.fullmatch(encoded):
            raise InvalidPathComponentError(f"invalid encoded symbol {encoded!r}")
        escaped, separator, price = encoded.partition(SEPARATOR)
        symbol = _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), escaped.replace("-", "/"))
        series = f"{symbol}{separator}{price}"
        try:
            canonical = self.encode_symbol(series) == encoded
        except InvalidPathComponentError:
            canonical = False
        if not canonical:
            raise InvalidPathComponentError(f"encoded symbol {encoded!r} is not canonical")
        return series

    def granularity(self, timeframe: str) -> Granularity:
        """The calendar period one object of this timeframe holds."""
        timeframe_to_ms(timeframe)
        return _GRANULARITY[timeframe]

    def period_of(self, timeframe: str, timestamp: int) -> TimeRange:
        """The period ``[start, end)`` of the object that holds the candle at ``timestamp``."""
        if not 0 <= timestamp < MAX_TIMESTAMP:
            raise InvalidPathComponentError(
                f"timestamp {timestamp!r} is outside [0, {MAX_TIMESTAMP})"
            )
        return _period_of_day(_ms_to_day(timestamp), self.granularity(timeframe))

    def get_exchange_prefix(self, exchange_name: str) -> str:
        """Key prefix of everything stored for an exchange (ends with ``/``)."""
        return f"{ROOT}/{self.validate_exchange(exchange_name)}/"

    def get_coin_base_path(self, exchange_name: str, coin_symbol: str) -> str:
        """Key of the folder of one symbol: ``raw_data/{exchange}/{encoded_symbol}``."""
        return self.get_exchange_prefix(exchange_name) + self.encode_symbol(coin_symbol)

    def get_series_prefix(self, exchange_name: str, coin_symbol: str, timeframe: str) -> str:
        """Key prefix of every object of one series (ends with ``/``)."""
        timeframe_to_ms(timeframe)
        return f"{self.get_coin_base_path(exchange_name, coin_symbol)}/{timeframe}/"

    def get_series_bounds_key(self, exchange_name: str, coin_symbol: str, timeframe: str) -> str:
        """Key of the series bounds record: ``{series prefix}bounds.json``."""
        return self.get_series_prefix(exchange_name, coin_symbol, timeframe) + BOUNDS_NAME

    def get_series_summary_key(self, exchange_name: str, coin_symbol: str, timeframe: str) -> str:
        """Key of the series' catalog summary: ``{series prefix}summary.json``."""
        return self.get_series_prefix(exchange_name, coin_symbol, timeframe) + SUMMARY_NAME

    def get_document_key(self, name: str) -> str:
        """Key of a service document (``backfills/<id>/job``): ``service/{name}.json``.

        ``name`` is up to 8 ``/``-separated parts of ``[a-z0-9._-]``, each starting with a
        letter or digit; anything else is an InvalidPathComponentError.
        """
        if not isinstance(name, str) or not _DOCUMENT_PATH.fullmatch(name):
            raise InvalidPathComponentError(f"{name!r} is not a document name")
        return f"{DOCUMENTS_ROOT}/{name}{DOCUMENT_SUFFIX}"

    def get_document_prefix(self, prefix: str) -> str:
        """Key prefix of the documents whose names start with ``prefix`` + ``/``."""
        return self.get_document_key(prefix)[: -len(DOCUMENT_SUFFIX)] + "/"

    def get_raw_data_path(
        self, exchange_name: str, coin_symbol: str, timeframe: str, timestamp: int
    ) -> str:
        """Key of the object that holds the candle opening at ``timestamp``."""
        prefix = self.get_series_prefix(exchange_name, coin_symbol, timeframe)
        start = self.period_of(timeframe, timestamp).start
        return prefix + _date_suffix(_ms_to_day(start), _GRANULARITY[timeframe])

    def objects_spanning(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> list[RawDataObject]:
        """The objects whose periods intersect ``[start_time, end_time)``, ascending.

        The range is clipped to the storable timestamps ``[0, MAX_TIMESTAMP)``.
        """
        prefix = self.get_series_prefix(exchange_name, coin_symbol, timeframe)
        return _objects_spanning(prefix, _GRANULARITY[timeframe], start_time, end_time)

    def get_funding_prefix(self, exchange_name: str, coin_symbol: str) -> str:
        """Key prefix of a contract's funding-rate objects (ends with ``/``)."""
        exchange = self.validate_exchange(exchange_name)
        return f"{FUNDING_ROOT}/{exchange}/{self.encode_symbol(coin_symbol)}/"

    def get_calendar_prefix(self, exchange_name: str, coin_symbol: str, timeframe: str) -> str:
        """Key prefix of a series of an exchange's own calendar candles (ends with ``/``)."""
        exchange = self.validate_exchange(exchange_name)
        if calendar_span(timeframe) is None:
            raise InvalidPathComponentError(f"{timeframe!r} is not a calendar timeframe")
        return f"{CALENDAR_ROOT}/{exchange}/{self.encode_symbol(coin_symbol)}/{timeframe}/"

    def get_calendar_base(self, exchange_name: str, coin_symbol: str | None = None) -> str:
        """Key prefix of an exchange's calendar candle series (ending with ``/``), or of one
        symbol's (not ending with ``/``: its price types' folders share it)."""
        prefix = f"{CALENDAR_ROOT}/{self.validate_exchange(exchange_name)}/"
        return prefix if coin_symbol is None else prefix + self.encode_symbol(coin_symbol)

    def parse_calendar_key(self, key: str) -> ParsedRawDataPath:
        """Split the key of a calendar candle object (``calendar/{exchange}/{encoded_symbol}/
        {timeframe}/{yyyy}.arrow``) into its parts; reject anything else."""
        parts = key.split("/") if isinstance(key, str) else []
        if (
            len(parts) != 5
            or parts[0] != CALENDAR_ROOT
            or calendar_span(parts[3]) is None
            or not _DIGITS["yyyy"].fullmatch(parts[4].removesuffix(OBJECT_SUFFIX))
            or not parts[4].endswith(OBJECT_SUFFIX)
        ):
            raise InvalidPathComponentError(f"not a calendar candle key: {key!r}")
        exchange = self.validate_exchange(parts[1])
        if int(parts[4][:4]) < 1970:
            raise InvalidPathComponentError(f"not a calendar candle key: {key!r} (before 1970)")
        period = _period_of_day(date(int(parts[4][:4]), 1, 1), "year")
        return ParsedRawDataPath(exchange, self.decode_symbol(parts[2]), parts[3], period)

    def year_objects_spanning(
        self, prefix: str, start_time: int, end_time: int
    ) -> list[RawDataObject]:
        """The objects under ``prefix`` (one per year: ``{prefix}{yyyy}.arrow``) intersecting
        ``[start_time, end_time)``, ascending; the range is clipped to ``[0, MAX_TIMESTAMP)``."""
        return _objects_spanning(prefix, "year", start_time, end_time)

    def parse_path(self, path: str) -> ParsedRawDataPath:
        """Split a key made by :meth:`get_raw_data_path` into its parts; reject anything else."""
        if not isinstance(path, str):
            raise InvalidPathComponentError(f"not a raw data path: {path!r}")
        parts = path.split("/")
        if len(parts) < 5 or parts[0] != ROOT or not parts[-1].endswith(OBJECT_SUFFIX):
            raise InvalidPathComponentError(f"not a raw data path: {path!r}")
        _, exchange, encoded, timeframe, *date_parts = parts
        date_parts[-1] = date_parts[-1].removesuffix(OBJECT_SUFFIX)
        self.validate_exchange(exchange)
        symbol = self.decode_symbol(encoded)
        if timeframe not in _GRANULARITY:
            raise InvalidPathComponentError(f"not a raw data path: {path!r} (bad timeframe)")
        granularity = _GRANULARITY[timeframe]
        if len(date_parts) != _DATE_PARTS[granularity]:
            raise InvalidPathComponentError(
                f"not a raw data path: {path!r} ({timeframe} objects hold one {granularity})"
            )
        patterns = [_DIGITS["yyyy"], _DIGITS["mm"], _DIGITS["mm"]]
        if not all(p.fullmatch(part) for p, part in zip(patterns, date_parts, strict=False)):
            raise InvalidPathComponentError(f"not a raw data path: {path!r} (bad date)")
        numbers = [int(part) for part in date_parts] + [1] * (3 - len(date_parts))
        try:
            first = date(*numbers)
        except ValueError:
            raise InvalidPathComponentError(f"not a raw data path: {path!r} (bad date)") from None
        period = _period_of_day(first, granularity)
        if period.start < 0:
            raise InvalidPathComponentError(f"not a raw data path: {path!r} (before 1970)")
        return ParsedRawDataPath(exchange, symbol, timeframe, period)
