"""Per-genome locks in the catalog: two applies never work on the same genome.

A lock is a row keyed by genome id; taking it is an INSERT, which the database's primary key makes
atomic across processes and machines (PostgreSQL in production). The holder (`host:pid:run`)
refreshes a heartbeat from a background thread while it works. A lock can be taken over when its
holder is dead: at once when the holder ran on this host and its process is gone (a killed run),
else when its heartbeat is older than `stale_after`. Take-over is a compare-and-delete on the old
holder and heartbeat, so two waiters cannot both win.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import GenomeLock


def holder_dead(holder: str) -> bool:
    """True when `holder` ran on this host and its process no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class GenomeLocks:
    def __init__(
        self,
        catalog: Catalog,
        holder: str,
        stale_after: dt.timedelta = dt.timedelta(minutes=10),
        beat_every: float = 60.0,
    ) -> None:
        self.catalog = catalog
        self.holder = holder
        self.stale_after = stale_after
        self.beat_every = beat_every

    def acquire(self, genome: str) -> str | None:
        """Take the lock; None on success, else who holds it."""
        for _ in range(2):
            now = dt.datetime.now(dt.UTC)
            try:
                with self.catalog.session() as s:
                    s.add(
                        GenomeLock(
                            genome=genome, holder=self.holder, acquired_at=now, heartbeat_at=now
                        )
                    )
                return None
            except DBIntegrityError:
                pass
            with self.catalog.session() as s:
                row = s.get(GenomeLock, genome)
                if row is None:
                    continue  # released meanwhile: try again
                if row.holder == self.holder:
                    return None  # ours already (a resumed step in the same run)
                fresh = now - row.heartbeat_at < self.stale_after
                if fresh and not holder_dead(row.holder):
                    return row.holder
                # stale: remove exactly that lock (compare-and-delete), then race for a new one
                s.execute(
                    delete(GenomeLock).where(
                        GenomeLock.genome == genome,
                        GenomeLock.holder == row.holder,
                        GenomeLock.heartbeat_at == row.heartbeat_at,
                    )
                )
        with self.catalog.session() as s:
            row = s.get(GenomeLock, genome)
            return row.holder if row else "unknown"

    @contextmanager
    def beating(self, genome: str) -> Iterator[None]:
        """Refresh the lock's heartbeat in the background while the caller works."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.beat_every):
                self.heartbeat(genome)

        t = threading.Thread(target=beat, name=f"lock-{genome}", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()

    def heartbeat(self, genome: str) -> None:
        with self.catalog.session() as s:
            s.execute(
                update(GenomeLock)
                .where(GenomeLock.genome == genome, GenomeLock.holder == self.holder)
                .values(heartbeat_at=dt.datetime.now(dt.UTC))
            )

    def release(self, genome: str) -> None:
        with self.catalog.session() as s:
            s.execute(
                delete(GenomeLock).where(
                    GenomeLock.genome == genome, GenomeLock.holder == self.holder
                )
            )

    def held(self) -> list[tuple[str, str]]:
        with self.catalog.session() as s:
            return [(r.genome, r.holder) for r in s.scalars(select(GenomeLock))]
