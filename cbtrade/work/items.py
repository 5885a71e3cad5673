"""Work items: what the timer and the backfill route put on the work queue.

Each item is one JSON message, small and self-contained, and idempotent: processing it twice
stores nothing twice and loses nothing (coverage makes a repeated fill cost no exchange call,
and progress records are keyed by the item, not counted up).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cbtrade.errors import InvalidWorkItemError


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopUpItem(_Item):
    """Top up a few watched series of one exchange to the newest closed candle."""

    kind: Literal["topup"] = "topup"
    exchange: str
    series: list[tuple[str, str]] = Field(min_length=1, description="(symbol, timeframe) pairs")


class BackfillJobItem(_Item):
    """Start a backfill job: queue the plan item of each of its series."""

    kind: Literal["backfill_job"] = "backfill_job"
    job: str


class BackfillPlanItem(_Item):
    """Plan one series of a backfill job: find its range and enqueue its windows."""

    kind: Literal["backfill_plan"] = "backfill_plan"
    job: str
    series: int = Field(ge=0, description="index of the series in the job")


class BackfillWindowItem(_Item):
    """Fill one window (a run of whole exchange calls) of one series of a backfill job."""

    kind: Literal["backfill_window"] = "backfill_window"
    job: str
    series: int = Field(ge=0)
    window: int = Field(ge=0, description="index of the window in the series' plan")
    start: int = Field(ge=0)
    end: int = Field(ge=0)


WorkItem: TypeAlias = Annotated[
    TopUpItem | BackfillJobItem | BackfillPlanItem | BackfillWindowItem,
    Field(discriminator="kind"),
]
_ITEM: TypeAdapter[WorkItem] = TypeAdapter(WorkItem)


def encode_item(item: WorkItem) -> str:
    """The item as the text of one queue message."""
    return item.model_dump_json()


def decode_item(text: str | bytes) -> WorkItem:
    """The work item a queue message holds; InvalidWorkItemError if it holds none."""
    try:
        return _ITEM.validate_json(text)
    except ValidationError as exc:
        raise InvalidWorkItemError(f"not a work item: {exc.errors()[0]['msg']}") from None
