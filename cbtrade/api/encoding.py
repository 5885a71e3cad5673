"""Response encodings of a page of candles: JSON (the default), CSV and Arrow IPC stream.

JSON carries the continuation token and next link in its body. CSV and Arrow carry only
candles, so the token goes in an ``X-Continuation-Token`` header and the next page in a
``Link: <...>; rel="next"`` header. pyarrow is imported only when Arrow is asked for.
"""

from __future__ import annotations

import io
from typing import Literal

import orjson
from starlette.responses import Response

from cbtrade.gc_pause import gc_paused
from cbtrade.historical.interfaces import OhlcvPage

PageFormat = Literal["json", "csv", "arrow"]
CANDLE_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"


def encode_page(page: OhlcvPage, *, next_link: str | None, page_format: PageFormat) -> Response:
    """The HTTP response for ``page`` in ``page_format``."""
    with gc_paused():
        return _encode(page, next_link=next_link, page_format=page_format)


def _encode(page: OhlcvPage, *, next_link: str | None, page_format: PageFormat) -> Response:
    if page_format == "json":
        body = orjson.dumps(
            {
                "exchange": page.exchange,
                "symbol": page.symbol,
                "timeframe": page.timeframe,
                "candles": [dict(zip(CANDLE_FIELDS, c, strict=True)) for c in page.candles],
                "continuation_token": page.continuation_token,
                "next_link": next_link,
            }
        )
        return Response(body, media_type="application/json")
    headers = {"X-Series": f"{page.exchange}:{page.symbol}:{page.timeframe}"}
    if page.continuation_token is not None and next_link is not None:
        headers["X-Continuation-Token"] = page.continuation_token
        headers["Link"] = f'<{next_link}>; rel="next"'
    if page_format == "csv":
        return Response(_csv(page), media_type="text/csv", headers=headers)
    return Response(_arrow(page), media_type=ARROW_MEDIA_TYPE, headers=headers)


def _csv(page: OhlcvPage) -> bytes:
    lines = [",".join(CANDLE_FIELDS)]
    lines.extend(",".join(map(repr, candle)) for candle in page.candles)
    return ("\n".join(lines) + "\n").encode()


def _arrow(page: OhlcvPage) -> bytes:
    import pyarrow as pa  # lazy: only Arrow clients pay for the import

    columns = list(zip(*page.candles, strict=True)) if page.candles else [()] * 6
    table = pa.table(
        {
            "timestamp": pa.array(columns[0], type=pa.int64()),
            **{
                name: pa.array(values, type=pa.float64())
                for name, values in zip(CANDLE_FIELDS[1:], columns[1:], strict=True)
            },
        }
    )
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
