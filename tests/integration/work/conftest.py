"""Fixtures shared by the work-queue tests; each module defines its own ``queue``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cbtrade.work.queue import WorkQueueClient


@pytest.fixture
async def poison(queue: WorkQueueClient) -> AsyncIterator[WorkQueueClient]:
    """The queue's poison queue, ``<queue>-poison``."""
    client = queue.poison_queue()
    yield client
    await client.close()
