"""Unauthenticated refusals, counted: one audit entry per source per time window, not per request.

Every refusal is accountable, but a refusal with no principal behind it (no or a bad token, a bad
block signature, an unknown route) costs its sender nothing, and one hash-chained entry each would
let anyone grow the audit log without bound. They are therefore counted in memory per (window,
source address) with their reasons and statuses, and written as one `refuse` entry per source and
window (`window` seconds, 60 by default) once the window has ended; at shutdown every count is
written. The chain thus accounts for each of them, in bounded space: the entries grow with the
number of sources and windows, not requests. At most `max_sources` sources are kept per window;
the rest are counted together under the source "(other)".

A refusal of an authenticated principal is written at once, as its own entry (serve/context.py).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from wgsvault import audit
from wgsvault.catalog import Catalog


@dataclass
class _Count:
    requests: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)


class RefusalCounter:
    """Counts anonymous refusals; `flush` writes the ended windows to the audit log."""

    def __init__(self, catalog: Catalog, window: float = 60.0, max_sources: int = 1000) -> None:
        self.catalog, self.window, self.max_sources = catalog, window, max_sources
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, str], _Count] = {}
        self._sources: Counter[int] = Counter()

    def add(self, source: str, error: str, status: int, path: str) -> None:
        slot = int(time.time() // self.window)
        with self._lock:
            key = (slot, source)
            if key not in self._counts:
                if self._sources[slot] >= self.max_sources:
                    key = (slot, "(other)")
                else:
                    self._sources[slot] += 1
            c = self._counts.setdefault(key, _Count())
            c.requests += 1
            c.reasons[error] += 1
            c.statuses[str(status)] += 1
            if len(c.paths) < 20 or path[:100] in c.paths:
                c.paths[path[:100]] += 1

    def flush(self, *, everything: bool = False) -> int:
        """Write one entry per source of each ended window (all windows if `everything`);
        the number of entries written."""
        now = int(time.time() // self.window)
        with self._lock:
            done = sorted(k for k in self._counts if everything or k[0] < now)
            taken = [(k, self._counts.pop(k)) for k in done]
            for slot in {k[0] for k in done}:
                if everything or slot < now:
                    self._sources.pop(slot, None)
        for (slot, source), c in taken:
            start = dt.datetime.fromtimestamp(slot * self.window, dt.UTC)
            audit.record(
                self.catalog,
                actor="anonymous",
                event="refuse",
                detail={
                    "kind": "unauthenticated",
                    "source": source,
                    "window_start": start.isoformat(),
                    "window_seconds": self.window,
                    "count": c.requests,
                    "errors": dict(c.reasons),
                    "statuses": dict(c.statuses),
                    "paths": dict(c.paths),
                },
            )
        return len(taken)
