"""Helpers for bulk passes over millions of catalog rows.

Python's cyclic garbage collector is triggered by allocations, and each full collection walks every
tracked object: building a million small objects (one per file or unit) with it enabled spends more
time in collections than in the work. The objects built here hold no reference cycles, so the
collector is paused for the pass and run once afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk pass (re-entrant)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
