"""Response encodings of a page of candles: JSON (the default), CSV and Arrow IPC stream.

Every format carries the continuation token in an ``X-Continuation-Token`` header and the next
page in a ``Link: <...>; rel="next"`` header (so a client can ask for the next page before it
reads the body); JSON carries both in its body too.

Pages are encoded from the candle columns without a Python object per candle: numbers are
formatted by Arrow (shortest round-trip text; a whole float keeps a ``.0``) and joined into
rows in one vectorised step, so a JSON page costs milliseconds however many candles it holds.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from starlette.responses import Response

from cbtrade.candle_table import ARROW_STREAM_MEDIA_TYPE, CANDLE_FIELDS, CandleTable
from cbtrade.historical.interfaces import OhlcvPage

PageFormat = Literal["json", "csv", "arrow"]
_JSON_ROW = tuple(('{"' if i == 0 else ',"') + name + '":' for i, name in enumerate(CANDLE_FIELDS))
_CSV_ROW = ("", *([","] * (len(CANDLE_FIELDS) - 1)))
_CSV_HEADER = (",".join(CANDLE_FIELDS) + "\n").encode()


def encode_page(page: OhlcvPage, *, next_link: str | None, page_format: PageFormat) -> Response:
    """The HTTP response for ``page`` in ``page_format``."""
    headers = {"X-Series": f"{page.exchange}:{page.symbol}:{page.timeframe}"}
    if page.continuation_token is not None and next_link is not None:
        headers["X-Continuation-Token"] = page.continuation_token
        headers["Link"] = f'<{next_link}>; rel="next"'
    if page_format == "json":
        return Response(_json(page, next_link), media_type="application/json", headers=headers)
    if page_format == "csv":
        body = b"".join((_CSV_HEADER, *_rows(page.candles, _CSV_ROW, "\n")))
        return Response(body, media_type="text/csv", headers=headers)
    return Response(_arrow(page.candles), media_type=ARROW_STREAM_MEDIA_TYPE, headers=headers)


def _json(page: OhlcvPage, next_link: str | None) -> bytes:
    """The page's JSON body: the candles' text is spliced into an orjson-encoded envelope."""
    envelope = orjson.dumps(
        {
            "exchange": page.exchange,
            "symbol": page.symbol,
            "timeframe": page.timeframe,
            "candles": [],
            "continuation_token": page.continuation_token,
            "next_link": next_link,
        }
    )
    head, tail = envelope.split(b'"candles":[]', 1)
    rows = _rows(page.candles, _JSON_ROW, "},")
    if rows:
        rows[-1] = rows[-1][:-1]  # no comma after the last candle
    return b"".join((head, b'"candles":[', *rows, b"]", tail))


def _rows(candles: CandleTable, prefixes: tuple[str, ...], row_end: str) -> list[memoryview]:
    """Every candle as ``prefix[i] + value[i]`` for each column, then ``row_end``: the text
    of consecutive runs of candles, to be joined."""
    table = candles.arrow
    parts: list[Any] = []
    for prefix, column in zip(prefixes, table.columns, strict=True):
        parts.extend((prefix, _number_text(column)))
    joined = pc.binary_join_element_wise(*parts, row_end, "")
    return [_string_data(chunk) for chunk in joined.chunks if len(chunk)]


def _number_text(column: Any) -> Any:
    """The column's numbers as JSON/CSV text; a whole float keeps ``.0`` (``42000.0``)."""
    text = pc.cast(column, pa.string())
    if not pa.types.is_floating(column.type):
        return text
    whole = pc.equal(pc.floor(column), column)
    if not pc.any(whole).as_py():
        return text
    # Arrow writes whole floats without a fraction ("42000"), large ones with an exponent.
    whole = pc.and_(whole, pc.invert(pc.match_substring(text, "e")))
    return pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)


def _string_data(chunk: Any) -> memoryview:
    """The bytes of a string array's values, back to back (a view of its data buffer)."""
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
    start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
    return memoryview(chunk.buffers()[2])[start:end]


def _arrow(candles: CandleTable) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, candles.arrow.schema) as writer:
        writer.write_table(candles.arrow)
    return bytes(sink.getvalue())
