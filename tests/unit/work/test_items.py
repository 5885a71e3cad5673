"""Work items: each kind survives encode_item/decode_item; anything else is refused."""

from __future__ import annotations

import json

import pytest

from cbtrade import errors
from cbtrade.errors import InvalidInputError, InvalidWorkItemError
from cbtrade.work.items import (
    BackfillJobItem,
    BackfillPlanItem,
    BackfillWindowItem,
    TopUpItem,
    WorkItem,
    decode_item,
    encode_item,
)

ITEMS: list[WorkItem] = [
    TopUpItem(exchange="coinbase", series=[("BTC/USD", "5m"), ("ETH/USD", "1h")]),
    BackfillJobItem(job="0123456789abcdef"),
    BackfillPlanItem(job="0123456789abcdef", series=0),
    BackfillPlanItem(job="job", series=41),
    BackfillWindowItem(job="job", series=2, window=0, start=0, end=300_000),
    BackfillWindowItem(
        job="job", series=0, window=7, start=1_704_067_200_000, end=1_704_153_600_000
    ),
]


def test_every_kind_is_tested() -> None:
    assert {item.kind for item in ITEMS} == {
        "topup",
        "backfill_job",
        "backfill_plan",
        "backfill_window",
    }


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.kind)
def test_each_kind_round_trips(item: WorkItem) -> None:
    text = encode_item(item)
    assert json.loads(text)["kind"] == item.kind
    decoded = decode_item(text)
    assert type(decoded) is type(item)
    assert decoded == item
    assert decode_item(text.encode()) == item  # bytes too, as a queue trigger may hand them


def test_topup_series_come_back_as_pairs() -> None:
    item = decode_item(
        json.dumps({"kind": "topup", "exchange": "kraken", "series": [["BTC/USD", "1d"]]})
    )
    assert isinstance(item, TopUpItem)
    assert item.series == [("BTC/USD", "1d")]


def test_a_backfill_job_item_is_the_job_alone() -> None:
    item = BackfillJobItem(job="0123456789abcdef")
    assert item.kind == "backfill_job"
    assert json.loads(encode_item(item)) == {"kind": "backfill_job", "job": "0123456789abcdef"}
    assert decode_item('{"kind": "backfill_job", "job": "j"}') == BackfillJobItem(job="j")


def test_the_invalid_work_item_error_is_an_input_error() -> None:
    assert issubclass(InvalidWorkItemError, InvalidInputError)
    assert InvalidWorkItemError.code == "invalid_work_item"
    assert InvalidWorkItemError.__module__ == errors.__name__  # it lives in cbtrade.errors


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="not-json"),
        pytest.param('{"kind": "topup", "exchange": "x", "series": [["A", "5m"]]', id="truncated"),
        pytest.param("[]", id="array"),
        pytest.param("42", id="number"),
        pytest.param("{}", id="no-kind"),
        pytest.param('{"kind": "rebalance", "job": "j"}', id="unknown-kind"),
        pytest.param('{"kind": 7}', id="kind-not-a-string"),
        pytest.param(
            '{"kind": "topup", "exchange": "x", "series": [["A", "5m"]], "extra": 1}',
            id="topup-extra-field",
        ),
        pytest.param('{"kind": "backfill_plan", "job": "j", "series": 0, "x": 0}', id="plan-extra"),
        pytest.param('{"kind": "backfill_job"}', id="job-no-job"),
        pytest.param('{"kind": "backfill_job", "job": 7}', id="job-not-a-string"),
        pytest.param('{"kind": "backfill_job", "job": "j", "series": 0}', id="job-extra-field"),
        pytest.param(
            '{"kind": "backfill_window", "job": "j", "series": 0, "window": 0, "start": 0,'
            ' "end": 1, "attempt": 2}',
            id="window-extra-field",
        ),
        pytest.param('{"kind": "topup", "exchange": "x", "series": []}', id="topup-no-series"),
        pytest.param('{"kind": "topup", "series": [["A", "5m"]]}', id="topup-no-exchange"),
        pytest.param('{"kind": "backfill_plan", "job": "j", "series": -1}', id="plan-negative"),
        pytest.param(
            '{"kind": "backfill_window", "job": "j", "series": -1, "window": 0, "start": 0,'
            ' "end": 1}',
            id="window-negative-series",
        ),
        pytest.param(
            '{"kind": "backfill_window", "job": "j", "series": 0, "window": -1, "start": 0,'
            ' "end": 1}',
            id="window-negative-window",
        ),
        pytest.param(
            '{"kind": "backfill_window", "job": "j", "series": 0, "window": 0, "start": -5,'
            ' "end": 1}',
            id="window-negative-start",
        ),
        pytest.param(
            '{"kind": "backfill_window", "job": "j", "series": 0, "window": 0, "start": 0,'
            ' "end": -1}',
            id="window-negative-end",
        ),
        pytest.param(
            '{"kind": "backfill_window", "job": "j", "series": 0, "window": 0, "start": 0}',
            id="window-no-end",
        ),
    ],
)
def test_anything_else_is_an_invalid_work_item(text: str) -> None:
    with pytest.raises(InvalidWorkItemError, match="not a work item"):
        decode_item(text)


def test_items_are_frozen() -> None:
    item = BackfillPlanItem(job="j", series=1)
    with pytest.raises(ValueError, match="frozen"):
        item.series = 2  # type: ignore[misc]
