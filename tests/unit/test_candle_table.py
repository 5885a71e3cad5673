"""CandleTable: the invariant (ascending, unique, candle schema) and its operations."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cbtrade.candle_table import CANDLE_SCHEMA, CandleTable
from cbtrade.models import Candle

STEP = 300_000


def _candles(*indexes: int, price: float = 1.0) -> list[Candle]:
    return [Candle(i * STEP, price, price + 1, price - 1, price, 2.0) for i in indexes]


def test_from_candles_sorts_and_keeps_the_later_of_two_with_one_timestamp() -> None:
    table = CandleTable.from_candles([*_candles(3, 1), *_candles(2), *_candles(1, price=5.0)])
    assert table.to_candles() == [*_candles(1, price=5.0), *_candles(2, 3)]
    assert (table.first_timestamp(), table.last_timestamp(), len(table)) == (STEP, 3 * STEP, 3)


def test_empty_and_its_bounds() -> None:
    empty = CandleTable.empty()
    assert (len(empty), empty.first_timestamp(), empty.last_timestamp()) == (0, None, None)
    assert CandleTable.from_candles([]).to_candles() == []
    assert empty.between(0, STEP).to_candles() == []


def test_the_constructor_is_not_a_way_around_the_checks() -> None:
    with pytest.raises(TypeError, match="from_candles"):
        CandleTable(CANDLE_SCHEMA.empty_table())


def test_between_is_half_open_and_shares_the_buffers() -> None:
    table = CandleTable.from_candles(_candles(*range(10)))
    part = table.between(2 * STEP, 5 * STEP)
    assert [c.timestamp for c in part.to_candles()] == [2 * STEP, 3 * STEP, 4 * STEP]
    assert part.arrow.column("timestamp").chunks[0].buffers()[1].address == (
        table.arrow.column("timestamp").chunks[0].buffers()[1].address
    )
    assert len(table.between(2 * STEP + 1, 3 * STEP)) == 0
    assert table.between(-STEP, 100 * STEP) is table


def test_concat_needs_tables_that_follow_each_other() -> None:
    first, second = CandleTable.from_candles(_candles(1, 2)), CandleTable.from_candles(_candles(3))
    assert CandleTable.concat([first, CandleTable.empty(), second]).to_candles() == _candles(
        1, 2, 3
    )
    with pytest.raises(ValueError, match="follow each other"):
        CandleTable.concat([second, first])
    assert len(CandleTable.concat([])) == 0


def test_merge_appends_or_interleaves_with_the_newer_winning() -> None:
    stored = CandleTable.from_candles(_candles(1, 2, 4))
    assert stored.merge(CandleTable.from_candles(_candles(5, 6))).to_candles() == _candles(
        1, 2, 4, 5, 6
    )
    merged = stored.merge(CandleTable.from_candles(_candles(0, 2, 3, price=9.0)))
    assert merged.to_candles() == [
        *_candles(0, price=9.0), *_candles(1), *_candles(2, 3, price=9.0), *_candles(4),
    ]  # fmt: skip
    assert stored.merge(CandleTable.empty()) is stored
    assert CandleTable.empty().merge(stored).to_candles() == stored.to_candles()


def test_from_arrow_refuses_what_is_not_an_ascending_candle_table() -> None:
    good = CandleTable.from_candles(_candles(1, 2)).arrow
    assert CandleTable.from_arrow(good.replace_schema_metadata({b"k": b"v"})).to_candles() == (
        _candles(1, 2)
    )
    with pytest.raises(ValueError, match="ascend"):
        CandleTable.from_arrow(pa.concat_tables([good, good]))
    with pytest.raises(ValueError, match="schema"):
        CandleTable.from_arrow(good.drop_columns(["volume"]))
    with pytest.raises(ValueError, match="schema"):
        CandleTable.from_arrow(good.set_column(1, "open", pa.array(["1", "2"])))
    nulls = pa.table(
        {name: pa.array([1, None], type=field.type) for name, field in zip(
            CANDLE_SCHEMA.names, CANDLE_SCHEMA, strict=True
        )}
    )  # fmt: skip
    with pytest.raises(ValueError, match="null"):
        CandleTable.from_arrow(nulls)


CANDLES = _candles(*range(13))


def _source_rows(table: CandleTable) -> list[Candle]:
    """The candles the table's sources name, read from the sources' own tables."""
    if not len(table):
        return []
    assert table.sources is not None
    rows = []
    for source in table.sources:
        whole = CandleTable.from_arrow(source.table).to_candles()
        rows.extend(whole[source.lo : source.hi])
    return rows


def test_sources_follow_slices_and_concatenations_exactly() -> None:
    january = CandleTable.from_candles(CANDLES[:6]).with_source(("jan", "e1"))
    february = CandleTable.from_candles(CANDLES[6:]).with_source(("feb", "e1"))
    assert [s.identity for s in january.sources or ()] == [("jan", "e1")]
    joined = CandleTable.concat([january, february])
    for lo in range(0, len(CANDLES) + 1, 2):
        for hi in range(lo, len(CANDLES) + 1, 3):
            part = joined.between(
                CANDLES[0].timestamp + lo * STEP, CANDLES[0].timestamp + hi * STEP
            )
            assert _source_rows(part) == part.to_candles()
            middle = CANDLES[0].timestamp + (lo + hi) // 2 * STEP
            again = CandleTable.concat([part.between(0, middle), part.between(middle, 2**62)])
            assert _source_rows(again) == part.to_candles()


def test_tables_not_cut_from_sources_have_none() -> None:
    sourced = CandleTable.from_candles(CANDLES[:6]).with_source(("jan", "e1"))
    plain = CandleTable.from_candles(CANDLES[6:])
    assert plain.sources is None
    assert CandleTable.concat([sourced, plain]).sources is None
    newer = CandleTable.from_candles([CANDLES[2]._replace(close=-1.0)])
    assert sourced.merge(newer).sources is None  # rows changed: not the object's any more
