"""Page encodings: JSON body, CSV and Arrow with the token in headers."""

from __future__ import annotations

import io

import orjson
import pyarrow as pa

from cbtrade.api.encoding import ARROW_MEDIA_TYPE, encode_page
from cbtrade.historical.interfaces import OhlcvPage
from cbtrade.models import Candle

CANDLES = [Candle(0, 1.5, 2.25, 0.5, 1.75, 10.0), Candle(300_000, 1.75, 3.0, 1.0, 2.5, 0.125)]
PAGE = OhlcvPage("cryptocom", "BTC/USD", "5m", CANDLES, "tok")
LINK = "/api/v1/ohlcv?continuation_token=tok&format=csv"


def test_json_carries_the_token_in_the_body() -> None:
    response = encode_page(PAGE, next_link=LINK, page_format="json")
    body = orjson.loads(response.body)
    assert body["candles"][1] == {
        "timestamp": 300_000, "open": 1.75, "high": 3.0, "low": 1.0, "close": 2.5, "volume": 0.125,
    }  # fmt: skip
    assert (body["continuation_token"], body["next_link"]) == ("tok", LINK)


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
    assert response.media_type == ARROW_MEDIA_TYPE
    table = pa.ipc.open_stream(io.BytesIO(bytes(response.body))).read_all()
    assert table.column_names == ["timestamp", "open", "high", "low", "close", "volume"]
    assert [Candle(*row.values()) for row in table.to_pylist()] == CANDLES
    assert "link" not in response.headers
    empty = encode_page(last._replace(candles=[]), next_link=None, page_format="arrow")
    assert pa.ipc.open_stream(io.BytesIO(bytes(empty.body))).read_all().num_rows == 0
