"""Page encodings: JSON body, CSV and Arrow with the token in headers."""

from __future__ import annotations

import io
import math
import random

import orjson
import pyarrow as pa
import pytest

from cbtrade.api.encoding import RowTextCache, encode_funding_page, encode_page
from cbtrade.candle_table import ARROW_STREAM_MEDIA_TYPE, CandleTable
from cbtrade.historical.funding import FundingPage
from cbtrade.historical.interfaces import OhlcvPage
from cbtrade.models import Candle, FundingRate
from cbtrade.storage.funding_store import funding_table

CANDLES = [Candle(0, 1.5, 2.25, 0.5, 1.75, 10.0), Candle(300_000, 1.75, 3.0, 1.0, 2.5, 0.125)]
PAGE = OhlcvPage("cryptocom", "BTC/USD", "5m", CandleTable.from_candles(CANDLES), "tok")
LINK = "/api/v1/ohlcv?continuation_token=tok&format=csv"


def _page(candles: list[Candle]) -> OhlcvPage:
    return PAGE._replace(candles=CandleTable.from_candles(candles))


def test_json_carries_the_token_in_the_body() -> None:
    response = encode_page(PAGE, next_link=LINK, page_format="json")
    body = orjson.loads(response.body)
    assert list(body) == [
        "exchange", "symbol", "price", "timeframe", "candles", "continuation_token",
        "next_link",
    ]  # fmt: skip
    assert body["candles"][1] == {
        "timestamp": 300_000, "open": 1.75, "high": 3.0, "low": 1.0, "close": 2.5, "volume": 0.125,
    }  # fmt: skip
    assert (body["continuation_token"], body["next_link"]) == ("tok", LINK)
    assert response.headers["x-continuation-token"] == "tok"
    assert response.headers["link"] == f'<{LINK}>; rel="next"'


@pytest.mark.parametrize("page_format", ["json", "csv", "arrow"])
def test_a_derived_page_names_its_base_and_a_native_one_does_not(page_format: str) -> None:
    derived = PAGE._replace(timeframe="1w", derived_from="1d")
    response = encode_page(derived, next_link=LINK, page_format=page_format)  # type: ignore[arg-type]
    assert response.headers["x-derived-from"] == "1d"
    native = encode_page(PAGE, next_link=LINK, page_format=page_format)  # type: ignore[arg-type]
    assert "x-derived-from" not in native.headers
    if page_format == "json":
        assert orjson.loads(response.body)["derived_from"] == "1d"
        assert "derived_from" not in orjson.loads(native.body)


def test_json_of_an_empty_last_page() -> None:
    page = PAGE._replace(candles=CandleTable.empty(), continuation_token=None)
    body = orjson.loads(encode_page(page, next_link=None, page_format="json").body)
    assert body["candles"] == []
    assert (body["continuation_token"], body["next_link"]) == (None, None)


@pytest.mark.parametrize(
    "value",
    [42000.0, 0.0, -0.0, 1e-7, 1e22, 5e-324, 0.1 + 0.2, 1.7976931348623157e308, -12.5, 1e15],
)
def test_json_numbers_round_trip_exactly_and_floats_stay_floats(value: float) -> None:
    page = _page([Candle(0, value, value, value, value, value)])
    candle = orjson.loads(encode_page(page, next_link=None, page_format="json").body)["candles"][0]
    for name in ("open", "high", "low", "close", "volume"):
        assert type(candle[name]) is float
        assert candle[name] == value
        assert math.copysign(1, candle[name]) == math.copysign(1, value)


def test_json_of_many_random_candles_equals_orjson_of_the_candles() -> None:
    rng = random.Random(7)
    candles = [
        Candle(i * 60_000, *(rng.uniform(0, 10 ** rng.randint(-8, 12)) for _ in range(5)))
        for i in range(3_000)
    ]
    body = orjson.loads(encode_page(_page(candles), next_link=None, page_format="json").body)
    assert [Candle(**row) for row in body["candles"]] == candles


def test_csv_has_a_header_and_the_token_in_headers() -> None:
    response = encode_page(PAGE, next_link=LINK, page_format="csv")
    assert response.media_type == "text/csv"
    assert bytes(response.body).decode() == (
        "timestamp,open,high,low,close,volume\n0,1.5,2.25,0.5,1.75,10.0\n"
        "300000,1.75,3.0,1.0,2.5,0.125\n"
    )
    assert response.headers["x-continuation-token"] == "tok"
    assert response.headers["link"] == f'<{LINK}>; rel="next"'


def test_arrow_round_trips_and_the_last_page_has_no_link() -> None:
    last = PAGE._replace(continuation_token=None)
    response = encode_page(last, next_link=None, page_format="arrow")
    assert response.media_type == ARROW_STREAM_MEDIA_TYPE
    table = pa.ipc.open_stream(io.BytesIO(bytes(response.body))).read_all()
    assert table.column_names == ["timestamp", "open", "high", "low", "close", "volume"]
    assert [Candle(*row.values()) for row in table.to_pylist()] == CANDLES
    assert "link" not in response.headers
    empty = encode_page(
        last._replace(candles=CandleTable.empty()), next_link=None, page_format="arrow"
    )
    assert pa.ipc.open_stream(io.BytesIO(bytes(empty.body))).read_all().num_rows == 0


def test_a_page_of_several_stored_slices_encodes_every_candle() -> None:
    """Pages are concatenations of slices of stored objects: chunked, with offsets."""
    whole = CandleTable.from_candles([Candle(i * 300_000, i, i, i, i, i) for i in range(100)])
    parts = [whole.between(10 * 300_000, 40 * 300_000), whole.between(40 * 300_000, 77 * 300_000)]
    page = PAGE._replace(candles=CandleTable.concat(parts))
    body = orjson.loads(encode_page(page, next_link=None, page_format="json").body)
    assert [row["timestamp"] for row in body["candles"]] == [i * 300_000 for i in range(10, 77)]
    csv_lines = bytes(encode_page(page, next_link=None, page_format="csv").body).splitlines()
    assert csv_lines[1] == b"3000000,10.0,10.0,10.0,10.0,10.0"
    assert len(csv_lines) == 1 + 67


def _sourced(identity: str, count: int, first: int = 0) -> CandleTable:
    """A stored object's table: ``count`` random candles from index ``first``."""
    rng = random.Random(identity)
    candles = [
        Candle(i * 300_000, *(rng.uniform(0, 10 ** rng.randint(-8, 9)) for _ in range(5)))
        for i in range(first, first + count)
    ]
    return CandleTable.from_candles(candles).with_source((identity, "etag-1"))


@pytest.mark.parametrize("page_format", ["json", "csv"])
def test_sealed_pages_cut_from_rendered_rows_equal_pages_rendered_whole(page_format: str) -> None:
    """Slices across blocks and objects, from a small cache that must evict: byte for byte
    what the page rendered on its own is."""
    objects = [_sourced("a", 1_300), _sourced("b", 700, first=1_300), _sourced("c", 5, 2_000)]
    whole = CandleTable.concat(objects)
    rows = RowTextCache(max_bytes=120_000)
    rng = random.Random(3)
    for _ in range(60):
        lo = rng.randrange(0, 2_005)
        hi = rng.randrange(lo, 2_006)
        candles = whole.between(lo * 300_000, hi * 300_000)
        sealed = PAGE._replace(candles=candles, sealed=True)
        cut = encode_page(sealed, next_link=LINK, page_format=page_format, row_text=rows)
        rendered = encode_page(
            sealed._replace(sealed=False), next_link=LINK, page_format=page_format, row_text=rows
        )
        assert cut.body == rendered.body, (lo, hi)
        if len(candles):
            assert cut.fingerprint != cut.body  # named by its rows, not digested whole
    assert 0 < rows.nbytes <= 120_000


def test_rendered_rows_are_named_by_object_and_etag() -> None:
    rows = RowTextCache()
    first = _sourced("a", 10)
    page = PAGE._replace(candles=first, sealed=True)
    before = encode_page(page, next_link=None, page_format="json", row_text=rows)
    changed = CandleTable.from_candles(
        [c._replace(close=c.close + 1) for c in first.to_candles()]
    ).with_source(("a", "etag-2"))
    after = encode_page(
        page._replace(candles=changed), next_link=None, page_format="json", row_text=rows
    )
    assert orjson.loads(after.body)["candles"] == [row._asdict() for row in changed.to_candles()]
    assert after.fingerprint != before.fingerprint


def test_pages_too_large_or_not_sealed_are_rendered_on_their_own() -> None:
    rows = RowTextCache(max_page_rows=100)
    large = PAGE._replace(candles=_sourced("a", 101), sealed=True)
    assert encode_page(large, next_link=None, page_format="json", row_text=rows).body == (
        encode_page(large, next_link=None, page_format="json").body
    )
    assert rows.nbytes == 0
    small = large._replace(candles=_sourced("b", 100))
    assert rows.page_rows(small.candles, "json") is not None
    assert rows.page_rows(large.candles, "json") is None
    assert rows.page_rows(CandleTable.from_candles(CANDLES), "json") is None  # no sources


def test_a_sealed_pages_fingerprint_names_its_format_and_rows() -> None:
    sourced = PAGE._replace(candles=_sourced("a", 20), sealed=True)
    prints = {
        page_format: encode_page(sourced, next_link=None, page_format=page_format).fingerprint
        for page_format in ("json", "csv", "arrow")
    }
    assert len(set(prints.values())) == 3
    assert all(len(one) < 400 for one in prints.values())
    shorter = sourced._replace(candles=sourced.candles.between(0, 19 * 300_000))
    assert encode_page(shorter, next_link=None, page_format="arrow").fingerprint != prints["arrow"]
    for plain in (PAGE._replace(sealed=True), sourced._replace(sealed=False)):
        encoded = encode_page(plain, next_link=None, page_format="arrow")
        assert encoded.fingerprint == encoded.body  # unknown rows or an open page: the body


@pytest.mark.parametrize("rates", [[], [0.0001], [0.0001, -2e-05, 0.0]])
def test_funding_pages_in_every_format(rates: list[float]) -> None:
    events = [FundingRate(1_709_251_200_000 + i * 14_400_000, r) for i, r in enumerate(rates)]
    page = FundingPage("binance", "BTC/USDT:USDT", funding_table(events), None)
    body = orjson.loads(encode_funding_page(page, next_link=None, page_format="json").body)
    assert body == {
        "exchange": "binance",
        "symbol": "BTC/USDT:USDT",
        "funding": [e._asdict() for e in events],
        "continuation_token": None,
        "next_link": None,
    }
    csv = encode_funding_page(page, next_link=None, page_format="csv")
    assert csv.body.decode() == "timestamp,rate\n" + "".join(
        f"{e.timestamp},{orjson.dumps(e.rate).decode()}\n" for e in events
    )
    arrow = encode_funding_page(page, next_link=None, page_format="arrow")
    assert arrow.media_type == ARROW_STREAM_MEDIA_TYPE
    assert pa.ipc.open_stream(arrow.body).read_all().to_pylist() == [e._asdict() for e in events]
    assert arrow.headers == {"x-series": "binance:BTC/USDT:USDT:funding"}
