"""Response encodings of a page of candles: JSON (the default), CSV and Arrow IPC stream.

Every format carries the continuation token in an ``X-Continuation-Token`` header and the next
page in a ``Link: <...>; rel="next"`` header (so a client can ask for the next page before it
reads the body); JSON carries both in its body too.

Pages are encoded from the candle columns without a Python object per candle: orjson formats
each column's numbers at once (the shortest text that round-trips; a whole float keeps its
``.0``) and Arrow joins them into rows, so a JSON page costs milliseconds.
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
_JSON_ROW = tuple(
    (('{"' if i == 0 else ',"') + name + '":').encode() for i, name in enumerate(CANDLE_FIELDS)
)
_CSV_ROW = (b"", *([b","] * (len(CANDLE_FIELDS) - 1)))
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
        body = b"".join((_CSV_HEADER, *_rows(page.candles, _CSV_ROW, b"\n")))
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
    rows = _rows(page.candles, _JSON_ROW, b"},")
    if rows:
        rows[-1] = rows[-1][:-1]  # no comma after the last candle
    return b"".join((head, b'"candles":[', *rows, b"]", tail))


def _rows(candles: CandleTable, prefixes: tuple[bytes, ...], row_end: bytes) -> list[memoryview]:
    """The text of every candle, ``prefixes[i] + value[i]`` for each column then ``row_end``,
    as consecutive runs of bytes to be joined."""
    runs = []
    for batch in candles.arrow.to_batches():
        if not batch.num_rows:
            continue
        parts: list[Any] = []
        for prefix, column in zip(prefixes, batch.columns, strict=True):
            parts.extend((prefix, _number_text(column)))
        runs.append(_string_data(pc.binary_join_element_wise(*parts, row_end, b"")))
    return runs


def _number_text(column: Any) -> Any:
    """A numeric column as the JSON text of each number, as orjson writes it (``42000.0``,
    ``1e-7``): orjson formats the whole column at once, and Arrow splits it into values."""
    listed = orjson.dumps(column.to_numpy(), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    return pc.list_flatten(pc.split_pattern(pa.array([listed], pa.binary()), b","))


def _string_data(chunk: Any) -> memoryview:
    """The bytes of a binary array's values, back to back (a view of its data buffer)."""
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
    start, end = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
    return memoryview(chunk.buffers()[2])[start:end]


def _arrow(candles: CandleTable) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, candles.arrow.schema) as writer:
        writer.write_table(candles.arrow)
    return bytes(sink.getvalue())
