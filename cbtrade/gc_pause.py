"""Pausing the cyclic garbage collector around bulk allocation of acyclic objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block.

    Decoding a stored object or encoding a page allocates many thousands of tuples, lists and
    dicts of numbers. They cannot form cycles, yet they trigger collections that scan the
    whole heap: half the time of a warm read, and most of an Arrow page's, went there.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
