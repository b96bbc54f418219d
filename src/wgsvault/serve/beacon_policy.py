"""Who gets what from the Beacon: access levels, the small-cell floor and the query budget.

Levels (the module docstring of beacon.py says why)
    * anonymous (no token; only when the settings allow it): boolean;
    * registered (a valid token of an enabled principal): at most counts;
    * cohort (an active patient-group or controller grant without a region): records, with
      exact figures for the granted strata (`group:<patient group>` for a patient-group grant;
      a stratum named for a controller, `controller:<name>`, if the database keeps one).

    A request for more than its level allows is answered at the level (`returnedGranularity`
    says which); never refused for it.

Floor
    Every count of people or of the alleles they carry (AC, homozygous and hemizygous counts)
    from 1 to `floor - 1` is shown as `floor`, and any figure derived from it (AF) is computed
    from the shown value (capped at 1); 0 stays 0. Exact figures only for granted strata.

Budget
    Each answered `g_variants` query costs one unit of the asker's budget for the current window
    (`window` seconds aligned to the epoch: a UTC day by default). The count lives in the
    catalog (`beacon_usage`), so every server process and host shares it, and is taken with one
    conditional UPDATE (or the INSERT of the window's first query), in the same transaction as
    the query's audit entry: two concurrent queries cannot both spend the last unit, and a
    query is charged exactly when it is audited as answered. A spent budget is refused with 429
    and `Retry-After` (the seconds until the window ends), audited, and not charged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wgsvault.access.grants import active_grants
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import BeaconUsage, Principal, table_of

RANK = {"boolean": 0, "count": 1, "record": 2}
_usage = table_of(BeaconUsage)


@dataclass(frozen=True)
class Level:
    """What one asker may get: `granularity` at most, exact figures for `strata`."""

    name: str  # anonymous | registered | cohort
    granularity: str
    strata: frozenset[str] = frozenset()


ANONYMOUS = Level("anonymous", "boolean")


def level_of(catalog: Catalog, principal: Principal) -> Level:
    """The level of an authenticated principal (from its active grants, read now)."""
    with catalog.session() as s:
        grants = active_grants(s, principal.id)
    strata = set()
    for g in grants:
        if g.region is not None:
            continue
        if g.kind == "patient_group":
            strata.add(f"group:{g.value}")
        elif g.kind == "controller":
            strata.add(f"controller:{g.value}")
    if strata and principal.role == "data":
        return Level("cohort", "record", frozenset(strata))
    return Level("registered", "count")


def returned(requested: str, level: Level) -> str:
    """The granularity given: the requested one, or the level's if that is less."""
    return requested if RANK[requested] <= RANK[level.granularity] else level.granularity


def floored(n: int, floor: int) -> tuple[int, bool]:
    """`n` as shown under the floor, and whether it was raised."""
    if 0 < n < floor:
        return floor, True
    return n, False


def window_start(window: int, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return int(now // window) * window


def charge(s: Session, who: str, budget: int, window: int, now: float | None = None) -> bool:
    """Spend one unit of `who`'s budget in the current window, in the caller's transaction;
    False (nothing spent) when it is spent already."""
    start = window_start(window, now)
    if budget <= 0:
        return False

    def spend() -> bool:
        done = s.execute(
            update(_usage)
            .where(_usage.c.who == who, _usage.c.window_start == start, _usage.c.used < budget)
            .values(used=_usage.c.used + 1)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    if spend():
        return True
    # the window's first query: make its row (a concurrent first query may make it first:
    # ON CONFLICT DO NOTHING waits for it), then spend as any other query does
    values = {"who": who, "window_start": start, "used": 0}
    if s.get_bind().dialect.name == "postgresql":
        s.execute(postgresql.insert(_usage).values(values).on_conflict_do_nothing())
    else:
        s.execute(sqlite.insert(_usage).values(values).on_conflict_do_nothing())
    return spend()


def used(catalog: Catalog, who: str, window: int, now: float | None = None) -> int:
    """Units `who` has spent in the current window."""
    with catalog.session() as s:
        n = s.scalar(
            select(_usage.c.used).where(
                _usage.c.who == who, _usage.c.window_start == window_start(window, now)
            )
        )
    return int(n or 0)


def retry_after(window: int, now: float | None = None) -> int:
    """Seconds until the current window ends."""
    now = time.time() if now is None else now
    return max(1, int(window_start(window, now) + window - now))
