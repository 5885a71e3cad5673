"""Per-exchange rate budgets: how fast one exchange client may send its requests.

ccxt gives every request a cost in its units (on Binance spot, the market list costs 4 and a
kline call 0.4) and, with ``enableRateLimit``, awaits ``exchange.throttle(cost)`` before sending
it. The ccxt plugin replaces that throttle with :meth:`RateBudget.acquire`, so every request
ccxt makes (market loads, retries, candles) is paced here, with ccxt's costs.

The pace is GCRA (virtual scheduling): a budget of ``rate`` units per second keeps a
theoretical arrival time (TAT); a request of cost ``c`` gets the slot ``max(TAT, now)`` and
moves the TAT on by ``c / rate`` seconds, then waits for its slot. So there is no burst beyond
one request, and requests go first come, first served.

:class:`ProcessRateBudget` keeps the TAT in memory: each process keeps to the rate, so N
instances of the function app send N times it. :class:`SharedRateBudget` keeps it in a
service document of the storage (``rate-budgets/<exchange>``), so every instance on the same
store draws from one budget. A process reserves a few slots at once (as many as it has
requests waiting, at most about 0.2 s of the rate) with one ETag-conditional
read-modify-write of the document, then hands them out in order, sleeping until each. Slots
are wall-clock epoch milliseconds, so they mean the same on every instance. A slot that is
already well in the past when its turn comes (the process stalled) is discarded rather than
used late, so requests never bunch; a reservation starts at least as far ahead as the last
one took to come back, so its first slot is not already past when it arrives.

Why a conditional counter: it lives in the storage account the service already uses, adapts
to any number of instances and costs one small conditional write per batch. A blob lease
would let one holder at a time send, a lease round trip per request; dividing the rate
statically by the instance count breaks whenever Azure scales out or in. A failed
reservation (storage down) fails the request that waited for it; its caller retries it.

Clock skew: instances' clocks are NTP-synchronised, but an instance whose clock is off by
``s`` sends its requests ``s`` early or late against the others', so set the rate a little
under the exchange's documented limit (``CBTRADE_EXCHANGE_RATE_LIMITS``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from cbtrade.config import Settings
from cbtrade.telemetry import log_event

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Milliseconds, as a float."""
Sleep = Callable[[float], Awaitable[None]]
"""Sleep for the given seconds."""

DOCUMENT_PREFIX = "rate-budgets"
BATCH_SECONDS = 0.2
"""A shared budget reserves at most about this much of the rate at once (at least one call)."""
LATE_TOLERANCE_SECONDS = 0.05
"""A slot is discarded when its call would start later than this (or than the slot's own
length, if shorter) after it."""
MAX_AHEAD_MS = 60_000.0
"""A stored TAT further ahead than this (and than 100 calls) is a clock far off: reset."""
MAX_LEAD_MS = 1_000.0
_EPSILON_MS = 0.01
"""Slack for float rounding: epoch milliseconds (~1.7e12) carry about 2e-4 ms of it."""


def _wall_clock_ms() -> float:
    return time.time() * 1000.0


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


class DocumentStore(Protocol):
    """The storage's service documents, as the shared budget uses them."""

    async def update_document(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None: ...


class RateBudget(ABC):
    """Paces one exchange's requests to a rate in ccxt's cost units per second."""

    @abstractmethod
    async def acquire(self, cost: float | None = None) -> None:
        """Return when a request of ``cost`` units (None: 1) may be sent."""


@dataclass(eq=False)
class _Waiter:
    units: float
    turn: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _SlottedBudget(RateBudget):
    """GCRA over reserved intervals of a timeline: the waiting calls queue first come, first
    served; the one at the head takes the next slot of the interval reserved last (reserving
    a new one when it does not fit), sleeps until it, and hands the turn on. A call cancelled
    before its slot leaves the slot to the next one."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        late_tolerance: float = LATE_TOLERANCE_SECONDS,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of units per second, not {rate!r}")
        self._rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._late_tolerance_ms = late_tolerance * 1000.0
        self._queue: deque[_Waiter] = deque()
        self._next_ms = 0.0
        self._end_ms = 0.0

    @property
    def rate(self) -> float:
        """Cost units per second."""
        return self._rate

    async def acquire(self, cost: float | None = None) -> None:
        """Return when a request of ``cost`` units (None: 1) may be sent."""
        await self.take(cost)

    async def take(self, cost: float | None = None) -> float:
        """Like :meth:`acquire`; returns the slot (ms on the budget's clock) the call got. A
        call of no cost gets no slot and returns at once."""
        units = 1.0 if cost is None else float(cost)
        if not units > 0:
            return self._clock()
        waiter = _Waiter(units)
        self._queue.append(waiter)
        try:
            if self._queue[0] is not waiter:
                await waiter.turn
            return await self._take(units)
        finally:
            self._leave(waiter)

    def _leave(self, waiter: _Waiter) -> None:
        was_head = self._queue[0] is waiter
        self._queue.remove(waiter)
        if was_head and self._queue and not self._queue[0].turn.done():
            self._queue[0].turn.set_result(None)

    async def _take(self, units: float) -> float:
        """The head's slot: the next free moment of the reserved interval, once it comes."""
        length = units / self._rate * 1000.0
        late_after = min(length, self._late_tolerance_ms)
        fresh = False  # a reservation just made is used even if it came back late
        while True:
            now = self._clock()
            if not fresh and now - self._next_ms > late_after:
                self._next_ms = now  # the past part of the interval is discarded
            if self._next_ms + length > self._end_ms + _EPSILON_MS:
                batch = partial(self._batch_units, units)
                self._next_ms, self._end_ms = await self._reserve(batch)
                fresh = True
                continue
            slot = self._next_ms
            if slot > now:
                await self._sleep((slot - now) / 1000.0)
                if self._clock() - slot > late_after:
                    fresh = False
                    continue  # overslept (the process stalled): not used late
            self._next_ms = slot + length
            return slot

    def _batch_units(self, head_units: float) -> float:
        """How many units to reserve for the head call (and those queued behind it)."""
        return head_units

    @abstractmethod
    async def _reserve(self, batch: Callable[[], float]) -> tuple[float, float]:
        """Reserve ``batch()`` units of the rate on the timeline (``batch`` is asked as late
        as possible, so calls queued meanwhile count): the interval ``(start, end)``, ms."""


class ProcessRateBudget(_SlottedBudget):
    """A rate budget for this process alone (the TAT in memory)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock = _monotonic_ms,
        sleep: Sleep = asyncio.sleep,
        late_tolerance: float = LATE_TOLERANCE_SECONDS,
    ) -> None:
        super().__init__(rate, clock=clock, sleep=sleep, late_tolerance=late_tolerance)
        self._tat_ms = 0.0

    async def _reserve(self, batch: Callable[[], float]) -> tuple[float, float]:
        start = max(self._tat_ms, self._clock())
        self._tat_ms = start + batch() / self._rate * 1000.0
        return start, self._tat_ms


class SharedRateBudget(_SlottedBudget):
    """A rate budget shared by every process on the same store: the TAT (wall-clock epoch
    ms) is the document ``rate-budgets/<exchange>``, advanced by conditional writes."""

    def __init__(
        self,
        store: DocumentStore,
        exchange_id: str,
        rate: float,
        *,
        batch_seconds: float = BATCH_SECONDS,
        clock: Clock = _wall_clock_ms,
        sleep: Sleep = asyncio.sleep,
        late_tolerance: float = LATE_TOLERANCE_SECONDS,
    ) -> None:
        super().__init__(rate, clock=clock, sleep=sleep, late_tolerance=late_tolerance)
        self._store = store
        self._exchange_id = exchange_id
        self._batch_units_cap = self._rate * batch_seconds
        self.document = f"{DOCUMENT_PREFIX}/{exchange_id}"
        self.reservations = 0
        """Reservations written so far (one conditional write each, lost races aside)."""
        self._lead_ms = 0.0
        """How long a reservation takes to come back (the last, decaying): reservations start
        at least this far ahead, so their first slot is not already past when it arrives."""

    def _batch_units(self, head_units: float) -> float:
        total = 0.0
        for waiter in self._queue:
            if total and total + waiter.units > self._batch_units_cap:
                break
            total += waiter.units
        return max(total, head_units)

    async def _reserve(self, batch: Callable[[], float]) -> tuple[float, float]:
        granted: list[float] = []
        reset: list[float] = []
        lead = self._lead_ms

        def change(stored: dict[str, Any] | None) -> dict[str, Any]:
            now = self._clock()
            length = batch() / self._rate * 1000.0
            tat = _stored_tat(stored)
            reset.clear()
            if tat - now > max(MAX_AHEAD_MS, 100 * length):
                reset.append(tat)
                tat = now
            start = max(tat, now + lead)
            granted[:] = [now, start, length]
            return {"tat_ms": start + length, "rate": self._rate, "updated_ms": now}

        await self._store.update_document(self.document, change)
        self.reservations += 1
        changed_at, start, length = granted
        took = self._clock() - changed_at
        self._lead_ms = min(max(took, self._lead_ms / 2), MAX_LEAD_MS)
        if reset:
            log_event(
                logger,
                "rate_budget.reset",
                level=logging.WARNING,
                exchange=self._exchange_id,
                document=self.document,
                stored_tat_ms=reset[0],
                ahead_ms=reset[0] - self._clock(),
            )
        return start, start + length


def _stored_tat(stored: dict[str, Any] | None) -> float:
    value = None if stored is None else stored.get("tat_ms")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


def create_rate_budget(
    settings: Settings,
    exchange_id: str,
    *,
    default_rate: float,
    storage: DocumentStore | None = None,
) -> RateBudget:
    """The budget the settings choose for ``exchange_id``: ``rate_budget_scope`` picks process
    or shared (which needs ``storage``); ``exchange_rate_limits`` overrides ``default_rate``
    (ccxt's own, ``1000 / rateLimit``)."""
    configured = settings.exchange_rate_limits.get(exchange_id)
    rate = default_rate if configured is None else configured
    budget: RateBudget
    if settings.rate_budget_scope == "shared":
        if storage is None:
            raise ValueError("a shared rate budget needs the storage for its document")
        budget = SharedRateBudget(storage, exchange_id, rate)
    else:
        budget = ProcessRateBudget(rate)
    log_event(
        logger,
        "rate_budget.created",
        exchange=exchange_id,
        scope=settings.rate_budget_scope,
        units_per_second=rate,
        source="settings" if configured is not None else "ccxt",
    )
    return budget
