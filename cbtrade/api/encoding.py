"""Response encodings of a page of candles: JSON (the default), CSV and Arrow IPC stream.

Every format carries the continuation token in an ``X-Continuation-Token`` header and the next
page in a ``Link: <...>; rel="next"`` header (so a client can ask for the next page before it
reads the body); JSON carries both in its body too. A page of a derived timeframe names its
base in an ``X-Derived-From`` header, and JSON in ``derived_from``.

Pages are encoded from the candle columns without a Python object per candle: orjson formats
each column's numbers at once (the shortest text that round-trips; a whole float keeps its
``.0``) and Arrow joins them into rows, so a JSON page costs milliseconds. The rows of a page
read wholly from sealed objects cost less still: :class:`RowTextCache` keeps the text of every
row of such an object, rendered once, and the page is cut from it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Literal, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cbtrade.candle_table import ARROW_STREAM_MEDIA_TYPE, CANDLE_FIELDS, CandleTable, RowSource
from cbtrade.historical.funding import FundingPage
from cbtrade.historical.interfaces import OhlcvPage
from cbtrade.price_types import split_series_symbol
from cbtrade.storage.funding_store import FUNDING_FIELDS

PageFormat = Literal["json", "csv", "arrow"]
RowFormats = dict[str, tuple[tuple[bytes, ...], bytes]]


def _row_formats(fields: tuple[str, ...]) -> RowFormats:
    """Per text format, what goes before each column's value and after each row."""
    json_row = tuple(
        (('{"' if i == 0 else ',"') + name + '":').encode() for i, name in enumerate(fields)
    )
    csv_row = (b"", *([b","] * (len(fields) - 1)))
    return {"json": (json_row, b"},"), "csv": (csv_row, b"\n")}


_CSV_HEADER = (",".join(CANDLE_FIELDS) + "\n").encode()
_ROW_FORMATS = _row_formats(CANDLE_FIELDS)
_FUNDING_CSV_HEADER = (",".join(FUNDING_FIELDS) + "\n").encode()
_FUNDING_ROW_FORMATS = _row_formats(FUNDING_FIELDS)
_RENDERING_VERSION = b"pages-1"
"""Names how pages are rendered; part of the ETag of a page named by its rows, so a change
of rendering changes the ETag."""
DEFAULT_ROW_TEXT_BYTES = 64 * 1024 * 1024
DEFAULT_ROW_TEXT_MAX_PAGE_ROWS = 10_000


class EncodedBody(NamedTuple):
    """A page as it is sent: its body, media type and headers, and what its ETag digests."""

    body: bytes
    media_type: str
    headers: dict[str, str]
    fingerprint: bytes
    """The body itself; or, for a body cut from rendered rows, a short text that names it as
    exactly: the rendering, the envelope, and which rows of which stored objects."""


class _Rendered(NamedTuple):
    text: memoryview
    offsets: Any
    """Where each row's text starts in ``text`` (one more than the rows: the end)."""

    @property
    def nbytes(self) -> int:
        return len(self.text) + int(self.offsets.nbytes)


class RowTextCache:
    """The text of the rows of stored objects, in JSON or CSV, rendered once per block of
    ``BLOCK_ROWS`` rows of an object and format, least recently used first out, bounded in
    bytes.

    Objects are named by their key and ETag (:class:`~cbtrade.candle_table.RowSource`), so
    a rendering is never served for other rows than it was made from. Blocks, not whole
    objects, are rendered: a page costs at most two blocks more than its own rows. Only
    pages of at most ``max_page_rows`` use it: a bulk read costs the same per row either way,
    and would otherwise push out the blocks that many small pages share.
    """

    BLOCK_ROWS = 512

    def __init__(
        self,
        max_bytes: int = DEFAULT_ROW_TEXT_BYTES,
        *,
        max_page_rows: int = DEFAULT_ROW_TEXT_MAX_PAGE_ROWS,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_page_rows = max_page_rows
        self._blocks: OrderedDict[tuple[Hashable, str, int], _Rendered] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes of rendered text (and row offsets) held."""
        return self._bytes

    def page_rows(self, candles: CandleTable, page_format: PageFormat) -> list[memoryview] | None:
        """The text of ``candles``'s rows, each ended by the format's row end, as runs of
        bytes to be joined; None unless they know their stored objects and are few enough."""
        sources = candles.sources
        if sources is None or len(candles) > self._max_page_rows or self._max_bytes <= 0:
            return None
        return [run for source in sources for run in self._source_rows(source, page_format)]

    def _source_rows(self, source: RowSource, page_format: PageFormat) -> list[memoryview]:
        runs: list[memoryview] = []
        if source.hi <= source.lo:
            return runs
        size = self.BLOCK_ROWS
        for block in range(source.lo // size, -(-source.hi // size)):
            rendered = self._block(source, page_format, block)
            first = max(source.lo - block * size, 0)
            last = min(source.hi - block * size, len(rendered.offsets) - 1)
            runs.append(rendered.text[rendered.offsets[first] : rendered.offsets[last]])
        return runs

    def _block(self, source: RowSource, page_format: PageFormat, block: int) -> _Rendered:
        key = (source.identity, page_format, block)
        rendered = self._blocks.get(key)
        if rendered is not None:
            self._blocks.move_to_end(key)
            return rendered
        rows = source.table.slice(block * self.BLOCK_ROWS, self.BLOCK_ROWS).combine_chunks()
        joined = _joined_rows(rows.to_batches()[0], *_ROW_FORMATS[page_format])
        offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
        offsets = offsets[joined.offset : joined.offset + len(joined) + 1] - offsets[joined.offset]
        start = int(np.frombuffer(joined.buffers()[1], dtype=np.int32)[joined.offset])
        rendered = _Rendered(memoryview(joined.buffers()[2])[start:], offsets)
        if rendered.nbytes <= self._max_bytes:
            self._blocks[key] = rendered
            self._bytes += rendered.nbytes
            while self._bytes > self._max_bytes:
                self._bytes -= self._blocks.popitem(last=False)[1].nbytes
        return rendered


def encode_page(
    page: OhlcvPage,
    *,
    next_link: str | None,
    page_format: PageFormat,
    row_text: RowTextCache | None = None,
) -> EncodedBody:
    """``page`` in ``page_format``; its rows cut from ``row_text`` when the page is sealed
    and its candles know their stored objects."""
    headers = _page_headers(
        f"{page.exchange}:{page.symbol}:{page.timeframe}", page.continuation_token, next_link
    )
    if page.derived_from is not None:
        headers["x-derived-from"] = page.derived_from
    if page_format == "arrow":
        body = _arrow(page.candles.arrow)
        return EncodedBody(
            body, ARROW_STREAM_MEDIA_TYPE, headers, _fingerprint(page, body, page_format)
        )
    if page_format == "json":
        symbol, price = split_series_symbol(page.symbol)
        fields: dict[str, Any] = {
            "exchange": page.exchange,
            "symbol": symbol,
            "price": price,
            "timeframe": page.timeframe,
            "candles": [],
            "continuation_token": page.continuation_token,
            "next_link": next_link,
        }
        if page.derived_from is not None:
            # Only on a derived page: a native page's bytes, and so its ETag, stay as they were.
            fields["derived_from"] = page.derived_from
        head, tail = _json_envelope(fields, "candles")
    else:
        head, tail = _CSV_HEADER, b""
    rows = None
    if page.sealed and row_text is not None:
        rows = row_text.page_rows(page.candles, page_format)
    if rows is None:
        rows = _rows(page.candles.arrow, *_ROW_FORMATS[page_format])
    body = _text_body(head, rows, tail, page_format)
    return EncodedBody(
        body,
        _MEDIA_TYPES[page_format],
        headers,
        _fingerprint(page, body, page_format, head, tail),
    )


def encode_funding_page(
    page: FundingPage, *, next_link: str | None, page_format: PageFormat
) -> EncodedBody:
    """A page of funding events in ``page_format``: JSON ``{exchange, symbol, funding:
    [{timestamp, rate}], continuation_token, next_link}``, CSV ``timestamp,rate`` or Arrow
    (``timestamp`` int64, ``rate`` float64)."""
    headers = _page_headers(
        f"{page.exchange}:{page.symbol}:funding", page.continuation_token, next_link
    )
    if page_format == "arrow":
        body = _arrow(page.events)
        return EncodedBody(body, ARROW_STREAM_MEDIA_TYPE, headers, body)
    if page_format == "json":
        head, tail = _json_envelope(
            {
                "exchange": page.exchange,
                "symbol": page.symbol,
                "funding": [],
                "continuation_token": page.continuation_token,
                "next_link": next_link,
            },
            "funding",
        )
    else:
        head, tail = _FUNDING_CSV_HEADER, b""
    rows = _rows(page.events, *_FUNDING_ROW_FORMATS[page_format])
    body = _text_body(head, rows, tail, page_format)
    return EncodedBody(body, _MEDIA_TYPES[page_format], headers, body)


_MEDIA_TYPES = {"json": "application/json", "csv": "text/csv"}


def _page_headers(series: str, token: str | None, next_link: str | None) -> dict[str, str]:
    """A page's own headers: its series, and the way to the next page."""
    headers = {"x-series": series}
    if token is not None and next_link is not None:
        headers["x-continuation-token"] = token
        headers["link"] = f'<{next_link}>; rel="next"'
    return headers


def _text_body(head: bytes, rows: list[memoryview], tail: bytes, page_format: str) -> bytes:
    """A JSON or CSV body of its envelope and its rows' text."""
    if rows and page_format == "json":
        rows[-1] = rows[-1][:-1]  # no comma after the last row
    return b"".join((head, *rows, tail))


def _fingerprint(page: OhlcvPage, body: bytes, page_format: str, *envelope: bytes) -> bytes:
    """What the page's ETag digests: for a sealed page whose candles know their stored
    objects, the rendering's version, the format, the envelope and which rows of which
    objects (as exact as the body, and short); else the body (an open object's ETag changes
    with every top-up, even when the page's rows do not)."""
    sources = page.candles.sources
    if sources is None or not page.sealed:
        return body
    named = repr([(source.identity, source.lo, source.hi) for source in sources])
    return b"\n".join((_RENDERING_VERSION, page_format.encode(), *envelope, named.encode()))


def _json_envelope(envelope: dict[str, Any], rows_key: str) -> tuple[bytes, bytes]:
    """A page's JSON body before and after its rows' text: ``envelope`` with an empty list
    under ``rows_key``, split there."""
    marker = f'"{rows_key}":[]'.encode()
    head, tail = orjson.dumps(envelope).split(marker, 1)
    return head + marker[:-1], b"]" + tail


def _rows(table: Any, prefixes: tuple[bytes, ...], row_end: bytes) -> list[memoryview]:
    """The text of every row of ``table``, ``prefixes[i] + value[i]`` for each column then
    ``row_end``, as consecutive runs of bytes to be joined."""
    return [
        _string_data(_joined_rows(batch, prefixes, row_end))
        for batch in table.to_batches()
        if batch.num_rows
    ]


def _joined_rows(batch: Any, prefixes: tuple[bytes, ...], row_end: bytes) -> Any:
    """A binary array of each row's text."""
    parts: list[Any] = []
    for prefix, column in zip(prefixes, batch.columns, strict=True):
        parts.extend((prefix, _number_text(column)))
    return pc.binary_join_element_wise(*parts, row_end, b"")


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


def _arrow(table: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())
