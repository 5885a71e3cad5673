"""Rate budgets (GCRA per process, or shared through a storage document), on a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cbtrade.config import load_settings
from cbtrade.errors import StorageUnavailableError
from cbtrade.exchange_source.microkernel import DataSourceConnectorImpl
from cbtrade.exchange_source.plugins.ccxt_exchange import CCXTExchangeClient
from cbtrade.exchange_source.rate_budget import (
    ProcessRateBudget,
    RateBudget,
    SharedRateBudget,
    create_rate_budget,
)
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

T0 = 1_750_000_000_000.0  # a wall-clock moment, epoch ms

Change = Callable[[dict[str, Any] | None], dict[str, Any] | None]


class FakeTime:
    """A clock (ms) that sleeping moves on; ``blocked`` sleeps wait until unblocked."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.stall = 0.0
        """Extra milliseconds the next sleep oversleeps by (a stalled process)."""
        self.blocked: asyncio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.blocked is not None:
            await self.blocked.wait()
        self.now += seconds * 1000 + self.stall
        self.stall = 0.0
        await asyncio.sleep(0)


class MemoryDocuments:
    """Service documents in memory; ``lose_races`` makes every write lose once first (the
    change is called again), as a concurrent writer would make it."""

    def __init__(self, *, lose_races: bool = False) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.updates = 0
        self.lose_races = lose_races
        self.failure: Exception | None = None

    async def get_document(self, name: str) -> dict[str, Any] | None:
        return self.documents.get(name)

    async def update_document(self, name: str, change: Change) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        self.updates += 1
        if self.lose_races:
            change(self.documents.get(name))  # computed, then the write loses the race
            await asyncio.sleep(0)
        document = change(self.documents.get(name))
        if document is not None:
            self.documents[name] = document
        return document


async def take_all(budget: Any, costs: list[float | None]) -> list[float]:
    """Start a take per cost, in order, concurrently; their slots in starting order."""
    tasks = [asyncio.create_task(budget.take(cost)) for cost in costs]
    return list(await asyncio.gather(*tasks))


def spans(slots: list[float], costs: list[float], rate: float) -> list[tuple[float, float]]:
    return sorted((s, s + c / rate * 1000) for s, c in zip(slots, costs, strict=True))


def assert_disjoint(intervals: list[tuple[float, float]]) -> None:
    ordered = sorted(intervals)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end - 1e-6, ordered


# ProcessRateBudget


async def test_slots_are_spaced_by_cost_over_rate_and_the_first_goes_at_once() -> None:
    time = FakeTime()
    budget = ProcessRateBudget(10, clock=time.clock, sleep=time.sleep)
    slots = await take_all(budget, [None] * 5)
    assert slots == [T0, T0 + 100, T0 + 200, T0 + 300, T0 + 400]
    assert time.now == T0 + 400  # each call went at its slot, none early


async def test_costs_weigh_the_slots() -> None:
    time = FakeTime()
    budget = ProcessRateBudget(2, clock=time.clock, sleep=time.sleep)
    slots = await take_all(budget, [1, 3, 0.5, None])
    assert [b - a for a, b in itertools.pairwise(slots)] == [500, 1500, 250]


async def test_no_burst_after_idling_and_a_free_call_waits_for_nothing() -> None:
    time = FakeTime()
    budget = ProcessRateBudget(10, clock=time.clock, sleep=time.sleep)
    await budget.acquire()
    time.now += 60_000  # idle for a minute: no credit is saved up
    slots = await take_all(budget, [1, 1, 1])
    assert slots == [T0 + 60_000, T0 + 60_100, T0 + 60_200]
    assert await budget.take(0) == time.now


async def test_calls_go_first_come_first_served() -> None:
    time = FakeTime()
    budget = ProcessRateBudget(5, clock=time.clock, sleep=time.sleep)
    done: list[int] = []

    async def call(number: int, cost: float) -> None:
        await budget.acquire(cost)
        done.append(number)

    costs = [3, 0.1, 2, 0.1, 1, 0.5]
    await asyncio.gather(*(call(n, cost) for n, cost in enumerate(costs)))
    assert done == list(range(len(costs)))


async def test_a_cancelled_call_leaves_its_slot_to_the_next() -> None:
    time = FakeTime()
    budget = ProcessRateBudget(1, clock=time.clock, sleep=time.sleep)
    assert await budget.take() == T0
    time.blocked = asyncio.Event()
    second = asyncio.create_task(budget.take())
    third = asyncio.create_task(budget.take())
    fourth = asyncio.create_task(budget.take())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    fourth.cancel()  # waiting for its turn
    second.cancel()  # sleeping until its slot
    await asyncio.sleep(0)
    time.blocked.set()
    assert await third == T0 + 1000  # the cancelled call's slot
    assert second.cancelled()
    assert fourth.cancelled()
    assert await budget.take() == T0 + 2000


async def test_an_overslept_slot_is_not_used_late() -> None:
    time = FakeTime()
    budget = ProcessRateBudget(10, clock=time.clock, sleep=time.sleep)
    await budget.take()
    time.stall = 900  # the sleep until T0 + 100 ends at T0 + 1000
    slot = await budget.take()
    assert slot == T0 + 1000 == time.now


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        ProcessRateBudget(rate)


# SharedRateBudget


async def test_a_batch_reserves_the_waiting_calls_up_to_a_fifth_of_a_second() -> None:
    time, store = FakeTime(), MemoryDocuments()
    budget = SharedRateBudget(store, "binance", 20, clock=time.clock, sleep=time.sleep)
    slots = await take_all(budget, [1] * 8)  # 0.2 s of 20/s is 4 calls
    assert slots == [T0 + 50 * n for n in range(8)]
    assert store.updates == budget.reservations == 2
    assert store.documents["rate-budgets/binance"]["tat_ms"] == T0 + 400
    # A call costing more than the cap still gets one reservation of its own.
    assert await budget.take(10) == T0 + 400
    assert store.documents["rate-budgets/binance"]["tat_ms"] == T0 + 900
    assert store.updates == 3


async def test_rounding_of_epoch_milliseconds_wastes_no_slot() -> None:
    """Epoch ms are ~1.7e12, where a float's step is ~2e-4 ms: three calls of 0.4 units at
    7.2 a second (Binance klines at 18 a second) still fit their 1.2-unit reservation."""
    time, store = FakeTime(T0 + 0.3), MemoryDocuments()
    budget = SharedRateBudget(store, "binance", 7.2, clock=time.clock, sleep=time.sleep)
    slots = await take_all(budget, [0.4] * 6)  # 0.2 s of 7.2 a second: 3 calls a batch
    assert store.updates == 2
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps == pytest.approx([400 / 7.2] * 5, abs=0.01)


async def test_a_lone_call_reserves_only_its_own_slot() -> None:
    time, store = FakeTime(), MemoryDocuments()
    budget = SharedRateBudget(store, "binance", 20, clock=time.clock, sleep=time.sleep)
    for n in range(3):
        assert await budget.take() == T0 + 50 * n
    assert store.updates == 3
    assert store.documents["rate-budgets/binance"]["tat_ms"] == T0 + 150


async def test_slots_of_a_stalled_batch_are_discarded_not_bunched() -> None:
    time, store = FakeTime(), MemoryDocuments()
    budget = SharedRateBudget(store, "binance", 20, clock=time.clock, sleep=time.sleep)
    taken: list[tuple[float, float]] = []

    async def call() -> None:
        slot = await budget.take()
        taken.append((slot, time.now))
        if len(taken) == 2:
            time.stall = 1_000  # the third call's sleep ends a second late

    await asyncio.gather(*(call() for _ in range(4)))
    slots = [slot for slot, _ in taken]
    assert slots[:2] == [T0, T0 + 50]
    # The batch's last two slots (T0 + 100, T0 + 150) passed during the stall: the calls
    # went after it, 50 ms apart again, from a new reservation.
    assert slots[2] == T0 + 1_100
    assert slots[3] == T0 + 1_150
    assert all(0 <= went - slot < 50 for slot, went in taken)
    assert store.updates == 2


async def test_a_slow_store_makes_reservations_start_ahead() -> None:
    time, store = FakeTime(), MemoryDocuments()
    budget = SharedRateBudget(store, "binance", 1, clock=time.clock, sleep=time.sleep)
    real_update = store.update_document

    async def slow_update(name: str, change: Change) -> dict[str, Any] | None:
        document = await real_update(name, change)
        time.now += 300  # the write took 300 ms (more than the 50 ms tolerance)
        return document

    store.update_document = slow_update  # type: ignore[method-assign]
    # The first reservation comes back 300 ms late: used all the same (else a slow store
    # would never get a slot), and later ones start that far ahead.
    assert await budget.take(0.5) == T0
    assert await budget.take(0.5) == T0 + 600
    assert time.now == T0 + 600  # the second went on time
    assert store.updates == 2


@pytest.mark.parametrize("lose_races", [False, True])
async def test_two_budgets_over_one_store_never_overlap(lose_races: bool) -> None:
    time, store = FakeTime(), MemoryDocuments(lose_races=lose_races)
    rate = 20
    budgets = [
        SharedRateBudget(store, "binance", rate, clock=time.clock, sleep=time.sleep)
        for _ in range(2)
    ]
    costs = [[1, 0.4, 2, 1, 0.4] * 6, [0.4, 1, 1, 3, 0.4] * 6]
    results = await asyncio.gather(*(take_all(b, c) for b, c in zip(budgets, costs, strict=True)))
    intervals = [
        span for slots, c in zip(results, costs, strict=True) for span in spans(slots, c, rate)
    ]
    assert_disjoint(intervals)
    assert max(end for _, end in intervals) <= store.documents["rate-budgets/binance"]["tat_ms"]
    assert all(b.reservations < len(c) for b, c in zip(budgets, costs, strict=True))  # batched


async def test_two_budgets_over_one_local_file_store_never_overlap(tmp_path: Path) -> None:
    time, store = FakeTime(), LocalFileStorage(tmp_path)
    rate = 50
    budgets = [
        SharedRateBudget(store, "kraken", rate, clock=time.clock, sleep=time.sleep)
        for _ in range(2)
    ]
    costs = [[1.0] * 25, [2.0, 0.5] * 12]
    results = await asyncio.gather(*(take_all(b, c) for b, c in zip(budgets, costs, strict=True)))
    intervals = [
        span for slots, c in zip(results, costs, strict=True) for span in spans(slots, c, rate)
    ]
    assert_disjoint(intervals)
    stored = await store.get_document("rate-budgets/kraken")
    assert stored is not None
    assert max(end for _, end in intervals) <= stored["tat_ms"]


async def test_a_storage_error_fails_the_call_that_waited_for_it_only() -> None:
    time, store = FakeTime(), MemoryDocuments()
    budget = SharedRateBudget(store, "binance", 20, clock=time.clock, sleep=time.sleep)
    store.failure = StorageUnavailableError("storage down")
    with pytest.raises(StorageUnavailableError):
        await budget.acquire()
    store.failure = None
    assert await budget.take() == T0  # nothing was reserved, nothing is stuck


async def test_a_tat_far_ahead_from_a_wrong_clock_is_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time, store = FakeTime(), MemoryDocuments()
    store.documents["rate-budgets/binance"] = {"tat_ms": T0 + 3_600_000}
    budget = SharedRateBudget(store, "binance", 20, clock=time.clock, sleep=time.sleep)
    with caplog.at_level(logging.WARNING):
        assert await budget.take() == T0
    assert "rate_budget.reset" in caplog.text


async def test_a_corrupt_tat_counts_as_none() -> None:
    time, store = FakeTime(), MemoryDocuments()
    store.documents["rate-budgets/binance"] = {"tat_ms": "soon"}
    budget = SharedRateBudget(store, "binance", 20, clock=time.clock, sleep=time.sleep)
    assert await budget.take() == T0
    assert store.documents["rate-budgets/binance"]["tat_ms"] == T0 + 50


# The factory and the wiring


def test_the_settings_pick_the_scope_and_the_rate(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryDocuments()
    settings = load_settings(exchange_rate_limits={"binance": 7.5})
    with caplog.at_level(logging.INFO):
        budget = create_rate_budget(settings, "binance", default_rate=20, storage=store)
    assert isinstance(budget, ProcessRateBudget)
    assert budget.rate == 7.5
    assert "rate_budget.created" in caplog.text
    default = create_rate_budget(settings, "kraken", default_rate=0.3)
    assert isinstance(default, ProcessRateBudget)
    assert default.rate == 0.3

    shared = settings.model_copy(update={"rate_budget_scope": "shared"})
    budget = create_rate_budget(shared, "binance", default_rate=20, storage=store)
    assert isinstance(budget, SharedRateBudget)
    assert budget.rate == 7.5
    assert budget.document == "rate-budgets/binance"
    with pytest.raises(ValueError, match="storage"):
        create_rate_budget(shared, "binance", default_rate=20)


def test_the_budget_replaces_ccxts_throttle_with_ccxts_default_rate() -> None:
    made: list[float] = []
    budget = ProcessRateBudget(1)

    def factory(rate: float) -> RateBudget:
        made.append(rate)
        return budget

    client = CCXTExchangeClient("binance", rate_budget=factory)
    exchange = client._create_exchange()
    assert exchange.throttle == budget.acquire
    assert exchange.enableRateLimit is True  # ccxt still computes each request's cost
    assert made == [1000 / exchange.rateLimit] == [20.0]
    assert client.rate_budget is budget

    unpaced = CCXTExchangeClient("binance", rate_budget=factory, enable_rate_limit=False)
    assert unpaced._create_exchange().throttle != budget.acquire
    plain = CCXTExchangeClient("binance")._create_exchange()
    assert plain.throttle == plain.__class__.throttle.__get__(plain)  # ccxt's own
    assert made == [20.0]


def test_the_connector_hands_the_storage_to_the_ccxt_plugins() -> None:
    store = MemoryDocuments()
    settings = load_settings(rate_budget_scope="shared", exchange_rate_limits={"binance": 9})
    client = DataSourceConnectorImpl(settings, storage=store).get_client("binance")
    assert isinstance(client, CCXTExchangeClient)
    client._create_exchange()
    assert isinstance(client.rate_budget, SharedRateBudget)
    assert client.rate_budget.rate == 9
    other = DataSourceConnectorImpl(settings, storage=store).get_client("okx")
    assert isinstance(other, CCXTExchangeClient)
    other._create_exchange()
    assert isinstance(other.rate_budget, SharedRateBudget)
    with pytest.raises(ValueError, match="shared"):
        DataSourceConnectorImpl(settings)
