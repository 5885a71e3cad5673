"""Query-parameter parsing: times and symbol aliases."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError

from cbtrade.api.params import (
    PageQuery,
    normalize_symbol,
    page_query,
    parse_timestamp,
    query_parameters,
    series_of,
)
from cbtrade.derived_timeframes import TIMEFRAME_PATTERN
from cbtrade.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1704067200000", 1_704_067_200_000),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),
        ("2024-01-01T00:00:00+00:00", 1_704_067_200_000),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200_000),
        ("2024-01-01", 1_704_067_200_000),
        ("2024-01-01T00:00:00.250Z", 1_704_067_200_250),
        ("0", 0),
    ],
)
def test_times_parse_to_epoch_ms(text: str, expected: int) -> None:
    assert parse_timestamp("start", text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "-5", "1e12", "2024-13-01", "1969-12-31T00:00:00Z", "", "9" * 20]
)
def test_bad_times_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidInputError, match="start="):
        parse_timestamp("start", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("000", 0),
        ("100000000000", 100_000_000_000),  # 10**11, the smallest accepted besides 0
        ("20240101T000000", 1_704_067_200_000),  # ISO-8601 basic format
        ("20240101T000000Z", 1_704_067_200_000),
    ],
)
def test_zero_and_large_integers_and_basic_iso_are_accepted(text: str, expected: int) -> None:
    assert parse_timestamp("start", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "1704067200",
            "start=1704067200 looks like epoch seconds; send epoch milliseconds "
            "(1704067200000) or ISO-8601 (2024-01-01T00:00:00Z)",
        ),
        (
            "99999999999",  # 10**11 - 1
            "start=99999999999 looks like epoch seconds; send epoch milliseconds "
            "(99999999999000) or ISO-8601 (5138-11-16T09:46:39Z)",
        ),
        (
            "1",
            "start=1 looks like epoch seconds; send epoch milliseconds (1000) or ISO-8601 "
            "(1970-01-01T00:00:01Z)",
        ),
        (
            "12345678",  # eight digits but no calendar date
            "start=12345678 looks like epoch seconds; send epoch milliseconds "
            "(12345678000) or ISO-8601 (1970-05-23T21:21:18Z)",
        ),
        (
            "20241301",  # month 13
            "start=20241301 looks like epoch seconds; send epoch milliseconds "
            "(20241301000) or ISO-8601 (1970-08-23T06:35:01Z)",
        ),
        (
            "19691231",  # a date, but before 1970
            "start=19691231 looks like epoch seconds; send epoch milliseconds "
            "(19691231000) or ISO-8601 (1970-08-16T21:47:11Z)",
        ),
        (
            "20240101",
            "start=20240101 looks like a compact date (YYYYMMDD); send ISO-8601 "
            "(2024-01-01) or epoch milliseconds",
        ),
        (
            "19700101",
            "start=19700101 looks like a compact date (YYYYMMDD); send ISO-8601 "
            "(1970-01-01) or epoch milliseconds",
        ),
        (
            " 20240229 ",
            "start=20240229 looks like a compact date (YYYYMMDD); send ISO-8601 "
            "(2024-02-29) or epoch milliseconds",
        ),
    ],
)
def test_small_integers_are_refused_as_seconds_or_compact_dates(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_timestamp("start", text)
    assert str(caught.value) == message


def test_a_negative_integer_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="end='-1704067200000' is neither"):
        parse_timestamp("end", "-1704067200000")


def test_missing_time_is_none() -> None:
    assert parse_timestamp("end", None) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("BTC/USD", "BTC/USD"),
        ("BTC-USD", "BTC/USD"),
        ("BTC_USD", "BTC/USD"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("BTC-USD-PERP", "BTC-USD-PERP"),
        (None, None),
    ],
)
def test_symbol_aliases(given: str | None, expected: str | None) -> None:
    assert normalize_symbol(given) == expected


@pytest.mark.parametrize("given", ["BTC/USDT:USDT@mark", "BTC-USD@index", "@"])
def test_a_symbol_naming_a_price_type_is_refused(given: str) -> None:
    with pytest.raises(InvalidInputError, match="price="):
        normalize_symbol(given)


def test_a_series_is_the_symbol_alias_and_the_price() -> None:
    assert series_of("BTC-USD", "trade") == "BTC/USD"
    assert series_of("BTC/USDT:USDT", "mark") == "BTC/USDT:USDT@mark"
    with pytest.raises(InvalidInputError, match="symbol is empty"):
        series_of("", "mark")


def test_a_page_query_is_read_in_one_pass() -> None:
    query = page_query(
        {"exchange": "binance", "symbol": "BTC/USDT", "limit": "500", "format": "csv", "x": "1"}
    )
    assert (query.exchange, query.symbol, query.limit, query.format) == (
        "binance", "BTC/USDT", 500, "csv",
    )  # fmt: skip
    assert (query.start, query.end, query.timeframe, query.continuation_token) == (None,) * 4
    assert page_query({}).format == "json"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "many"}, "limit"),
        ({"format": "xml"}, "format"),
        ({"exchange": "x" * 33}, "exchange"),
        ({"continuation_token": "t" * 2049}, "continuation_token"),
    ],
)
def test_a_bad_page_query_is_a_validation_error_naming_the_parameter(
    params: dict[str, str], named: str
) -> None:
    with pytest.raises(RequestValidationError) as refused:
        page_query(params)
    assert [error["loc"] for error in refused.value.errors()] == [(named,)]


def test_the_page_querys_spec_parameters_come_from_its_fields() -> None:
    parameters = {p["name"]: p for p in query_parameters(PageQuery)}
    assert list(parameters) == list(PageQuery.model_fields)
    assert all(p["in"] == "query" and p["required"] is False for p in parameters.values())
    assert parameters["timeframe"]["schema"]["pattern"] == TIMEFRAME_PATTERN
    assert parameters["limit"]["schema"]["minimum"] == 1
    assert parameters["format"]["schema"] == {
        "enum": ["json", "csv", "arrow"], "type": "string", "default": "json",
    }  # fmt: skip
    assert parameters["symbol"]["description"] == PageQuery.model_fields["symbol"].description
