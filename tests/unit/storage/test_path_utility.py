"""StoragePathUtility: keys, granularity, symbol encoding, parsing and rejection of bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cbtrade.errors import InvalidPathComponentError, InvalidTimeframeError
from cbtrade.models import TimeRange
from cbtrade.storage.path_utility import (
    MAX_CANDLES_PER_OBJECT,
    MAX_TIMESTAMP,
    ParsedRawDataPath,
    StoragePathUtility,
)
from cbtrade.timeframes import TIMEFRAME_MS

paths = StoragePathUtility()


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("timeframe", "timestamp", "expected"),
    [
        ("5m", ms(2024, 1, 1), "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"),
        ("5m", ms(2024, 1, 31, 23, 55), "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"),
        ("5m", ms(2024, 2, 1), "raw_data/cryptocom/BTC-USD/5m/2024/02.arrow"),
        ("5m", ms(2023, 12, 31, 23, 55), "raw_data/cryptocom/BTC-USD/5m/2023/12.arrow"),
        ("1m", ms(2024, 2, 29, 23, 59), "raw_data/cryptocom/BTC-USD/1m/2024/02/29.arrow"),
        ("1m", ms(2024, 3, 1), "raw_data/cryptocom/BTC-USD/1m/2024/03/01.arrow"),
        ("3m", ms(2023, 12, 31, 23, 57), "raw_data/cryptocom/BTC-USD/3m/2023/12/31.arrow"),
        ("1h", ms(2024, 12, 31, 23), "raw_data/cryptocom/BTC-USD/1h/2024.arrow"),
        ("1h", ms(2025, 1, 1), "raw_data/cryptocom/BTC-USD/1h/2025.arrow"),
        ("1d", 0, "raw_data/cryptocom/BTC-USD/1d/1970.arrow"),
    ],
)
def test_get_raw_data_path_at_period_edges(timeframe: str, timestamp: int, expected: str) -> None:
    assert paths.get_raw_data_path("cryptocom", "BTC/USD", timeframe, timestamp) == expected


@pytest.mark.parametrize(
    ("timeframe", "granularity"),
    [("1m", "day"), ("3m", "day"), ("5m", "month"), ("15m", "month"), ("30m", "month")]
    + [(tf, "year") for tf in ("1h", "2h", "4h", "6h", "12h", "1d")],
)
def test_granularity_is_the_coarsest_period_within_10000_candles(
    timeframe: str, granularity: str
) -> None:
    assert paths.granularity(timeframe) == granularity


@pytest.mark.parametrize("timeframe", list(TIMEFRAME_MS))
def test_no_object_holds_more_than_the_maximum(timeframe: str) -> None:
    # 2024 is a leap year and January has 31 days: the longest periods of each granularity.
    period = paths.period_of(timeframe, ms(2024, 1, 1))
    assert (period.end - period.start) // TIMEFRAME_MS[timeframe] <= MAX_CANDLES_PER_OBJECT
    coarser_days = {"day": 31, "month": 366, "year": None}[paths.granularity(timeframe)]
    if coarser_days is not None:  # the next coarser period would hold too many
        assert coarser_days * 86_400_000 // TIMEFRAME_MS[timeframe] > MAX_CANDLES_PER_OBJECT


def test_period_of_covers_the_calendar_period() -> None:
    assert paths.period_of("5m", ms(2024, 2, 10)) == TimeRange(ms(2024, 2, 1), ms(2024, 3, 1))
    assert paths.period_of("1m", ms(2024, 2, 29, 12)) == TimeRange(ms(2024, 2, 29), ms(2024, 3, 1))
    assert paths.period_of("1h", ms(2023, 6, 1)) == TimeRange(ms(2023, 1, 1), ms(2024, 1, 1))
    assert paths.period_of("1d", MAX_TIMESTAMP - 1).end == MAX_TIMESTAMP


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP])
def test_timestamps_outside_the_storable_range_are_rejected(timestamp: int) -> None:
    with pytest.raises(InvalidPathComponentError, match="outside"):
        paths.get_raw_data_path("cryptocom", "BTC/USD", "5m", timestamp)


def test_get_coin_base_path_and_prefixes() -> None:
    assert paths.get_coin_base_path("cryptocom", "BTC/USD") == "raw_data/cryptocom/BTC-USD"
    assert paths.get_series_prefix("binance", "ETH/USDT:USDT", "1m") == (
        "raw_data/binance/ETH-USDT%3AUSDT/1m/"
    )
    assert paths.get_exchange_prefix("kraken") == "raw_data/kraken/"


def test_series_bounds_key_sits_beside_the_data_objects_and_is_not_one() -> None:
    key = paths.get_series_bounds_key("binance", "ETH/USDT:USDT", "1m")
    assert key == "raw_data/binance/ETH-USDT%3AUSDT/1m/bounds.json"
    with pytest.raises(InvalidPathComponentError):
        paths.parse_path(key)
    with pytest.raises(InvalidTimeframeError):
        paths.get_series_bounds_key("binance", "ETH/USDT", "7m")


@pytest.mark.parametrize(
    ("symbol", "encoded"),
    [
        ("BTC/USD", "BTC-USD"),
        ("BTC/USDT:USDT", "BTC-USDT%3AUSDT"),
        ("BTC-PERP", "BTC%2DPERP"),
        ("A-B/C", "A%2DB-C"),
        ("A/B-C", "A-B%2DC"),
        ("1000SHIB/USD", "1000SHIB-USD"),
        ("BTC/USD:BTC-240329", "BTC-USD%3ABTC%2D240329"),
        ("x.y_z/w", "x.y_z-w"),
        ("BTC/USDT:USDT@mark", "BTC-USDT%3AUSDT@mark"),
        ("BTC/USD:BTC-240329@premium_index", "BTC-USD%3ABTC%2D240329@premium_index"),
    ],
)
def test_symbol_encoding_round_trips(symbol: str, encoded: str) -> None:
    assert paths.encode_symbol(symbol) == encoded
    assert paths.decode_symbol(encoded) == symbol


BAD_SYMBOLS = [
    ("", "empty"),
    ("A" * 65, "longer than 64"),
    ("BTC\x00USD", "NUL or control"),
    ("BTC\x1f/USD", "NUL or control"),
    ("BTC\x7f/USD", "NUL or control"),
    ("BTC /USD", "whitespace"),
    ("BTC/USD\u00a0", "whitespace"),
    ("BTC/../USD", r"'\.\.'"),
    ("..", r"'\.\.'"),
    ("BTC\\USD", "backslash"),
    (".BTC/USD", "starts with"),
    ("BTC%2F/USD", "outside"),
    ("BTC#/USD", "outside"),
    ("BTC/USD€", "outside"),
    ("BTC?x", "outside"),
    ("BTC@X/USD", "does not name a price type"),
    ("BTC/USD@trade", "does not name a price type"),
    ("BTC/USD@last", "does not name a price type"),
    ("@mark", "does not name a price type"),
    ("BTC /USD@mark", "whitespace"),
]


@pytest.mark.parametrize(("symbol", "problem"), BAD_SYMBOLS)
def test_bad_symbols_are_rejected_naming_the_problem(symbol: str, problem: str) -> None:
    with pytest.raises(InvalidPathComponentError, match=problem):
        paths.get_raw_data_path("cryptocom", symbol, "5m", 0)


def test_a_64_character_symbol_is_accepted() -> None:
    assert paths.decode_symbol(paths.encode_symbol("A" * 64)) == "A" * 64


@pytest.mark.parametrize(
    "encoded",
    [
        "", "BTC/USD", "BTC%3aUSD", "BTC%41", "BTC%2", "BTC%2E%2E", "%2EBTC", "BTC USD",
        "BTC-USD@trade", "BTC-USD@last", "BTC-USD@mark@mark", "BTC%40USD", "@mark",
    ],
)  # fmt: skip
def test_decode_rejects_what_encode_would_not_produce(encoded: str) -> None:
    with pytest.raises(InvalidPathComponentError):
        paths.decode_symbol(encoded)


@pytest.mark.parametrize(
    "exchange", ["", "Binance", "a" * 33, "bin-ance", "bin_ance", "../x", "bin ance", "ok\x00"]
)
def test_bad_exchange_ids_are_rejected(exchange: str) -> None:
    with pytest.raises(InvalidPathComponentError, match="exchange id"):
        paths.get_coin_base_path(exchange, "BTC/USD")


@pytest.mark.parametrize("timeframe", ["", "7m", "1M", "1w", "5M"])
def test_unknown_timeframes_are_rejected(timeframe: str) -> None:
    with pytest.raises(InvalidTimeframeError):
        paths.get_raw_data_path("cryptocom", "BTC/USD", timeframe, 0)


@pytest.mark.parametrize("timeframe", list(TIMEFRAME_MS))
def test_parse_path_inverts_get_raw_data_path(timeframe: str) -> None:
    timestamp = ms(2024, 2, 29, 12)
    key = paths.get_raw_data_path("binance", "BTC/USDT:USDT", timeframe, timestamp)
    assert paths.parse_path(key) == ParsedRawDataPath(
        "binance", "BTC/USDT:USDT", timeframe, paths.period_of(timeframe, timestamp)
    )


@pytest.mark.parametrize(
    "key",
    [
        "raw_data/cryptocom/BTC-USD/5m/2024/01",
        "data/cryptocom/BTC-USD/5m/2024/01.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/01/01.arrow",
        "raw_data/cryptocom/BTC-USD/1h/2024/01.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/13.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/1.arrow",
        "raw_data/cryptocom/BTC-USD/1m/2023/02/29.arrow",
        "raw_data/cryptocom/BTC-USD/1h/1969.arrow",
        "raw_data/cryptocom/BTC-USD/1h/0000.arrow",
        "raw_data/cryptocom/BTC%41/1h/2024.arrow",
        "raw_data/Cryptocom/BTC-USD/1h/2024.arrow",
        "raw_data/cryptocom/BTC-USD/7m/2024.arrow",
        "raw_data/cryptocom/.BTC-USD.2024.tmp/1h/2024.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/.01.arrow.lock",
        "raw_data/cryptocom/BTC-USD/1h/+024.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow/",
        "raw_data//BTC-USD/1h/2024.arrow",
    ],
)
def test_parse_path_rejects_malformed_keys(key: str) -> None:
    with pytest.raises(InvalidPathComponentError):
        paths.parse_path(key)


def test_objects_spanning_crosses_year_month_and_day_boundaries() -> None:
    spans = paths.objects_spanning(
        "cryptocom", "BTC/USD", "5m", ms(2023, 12, 31, 23), ms(2024, 1, 1, 1)
    )
    assert [o.key.rsplit("/", 2)[-2:] for o in spans] == [
        ["2023", "12.arrow"],
        ["2024", "01.arrow"],
    ]
    assert spans[0].period.end == spans[1].period.start == ms(2024, 1, 1)

    days = paths.objects_spanning("cryptocom", "BTC/USD", "1m", ms(2024, 2, 28, 12), ms(2024, 3, 1))
    assert [o.key.split("/1m/")[1] for o in days] == ["2024/02/28.arrow", "2024/02/29.arrow"]

    one = paths.objects_spanning("cryptocom", "BTC/USD", "1h", ms(2024, 5, 1), ms(2024, 5, 2))
    assert [o.period for o in one] == [TimeRange(ms(2024, 1, 1), ms(2025, 1, 1))]


@pytest.mark.parametrize(("start", "end"), [(100, 100), (200, 100), (-10, 0)])
def test_objects_spanning_an_empty_range_is_empty(start: int, end: int) -> None:
    assert paths.objects_spanning("cryptocom", "BTC/USD", "5m", start, end) == []


def test_price_types_of_a_symbol_are_separate_series() -> None:
    trade = paths.get_series_prefix("binance", "BTC/USDT:USDT", "5m")
    mark = paths.get_series_prefix("binance", "BTC/USDT:USDT@mark", "5m")
    assert trade == "raw_data/binance/BTC-USDT%3AUSDT/5m/"
    assert mark == "raw_data/binance/BTC-USDT%3AUSDT@mark/5m/"
    key = paths.get_raw_data_path("binance", "BTC/USDT:USDT@mark", "5m", 0)
    assert paths.parse_path(key).coin_symbol == "BTC/USDT:USDT@mark"


def test_calendar_keys_round_trip_and_share_a_symbol_prefix_with_its_price_types() -> None:
    paths = StoragePathUtility()
    folder = paths.get_calendar_prefix("binance", "BTC/USDT:USDT@mark", "1w")
    assert folder == "calendar/binance/BTC-USDT%3AUSDT@mark/1w/"
    [year] = paths.year_objects_spanning(folder, 1_704_067_200_000, 1_704_067_200_001)
    assert year.key == folder + "2024.arrow"
    parsed = paths.parse_calendar_key(year.key)
    assert parsed == ("binance", "BTC/USDT:USDT@mark", "1w", year.period)
    assert folder.startswith(paths.get_calendar_base("binance", "BTC/USDT:USDT"))
    assert paths.get_calendar_base("binance") == "calendar/binance/"


@pytest.mark.parametrize(
    "key",
    [
        "calendar/binance/BTC-USDT/5m/2024.arrow",  # a fixed-grid timeframe
        "calendar/binance/BTC-USDT/1w/2024/01.arrow",
        "calendar/binance/BTC-USDT/1w/24.arrow",
        "calendar/binance/BTC-USDT/1w/0000.arrow",
        "calendar/binance/BTC-USDT/1w/1969.arrow",
        "calendar/binance/BTC-USDT/1w/empty_years.json",
        "raw_data/binance/BTC-USDT/1w/2024.arrow",
        "calendar/Binance/BTC-USDT/1w/2024.arrow",
        "calendar/binance/BTC%2FUSDT/1w/2024.arrow",
    ],
)
def test_anything_but_a_calendar_object_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidPathComponentError):
        StoragePathUtility().parse_calendar_key(key)


def test_a_calendar_prefix_needs_a_calendar_timeframe() -> None:
    with pytest.raises(InvalidPathComponentError, match="not a calendar timeframe"):
        StoragePathUtility().get_calendar_prefix("binance", "BTC/USDT", "1d")
