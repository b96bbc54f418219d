"""Reading the audit log back: entries filtered by genome, controller, event and time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import select

from wgsvault.audit.chain import as_utc, utc_iso
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import AuditEntry, table_of
from wgsvault.errors import InputError

_audit = table_of(AuditEntry)


def _as_dict(row: Any) -> dict[str, Any]:
    return {
        "seq": int(row.seq),
        "at": utc_iso(row.at),
        "actor": row.actor,
        "event": row.event,
        "genome": row.genome,
        "controller": row.controller,
        "detail": orjson.loads(row.detail),
        "hash": row.hash,
    }


def show(
    catalog: Catalog,
    *,
    genome: str | None = None,
    controller: str | None = None,
    event: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Entries matching every filter given, oldest first.

    `since` is inclusive, `until` exclusive; naive datetimes are taken as UTC. `limit` keeps the
    newest `limit` matches (like `tail`), still oldest first.
    """
    stmt = select(_audit)
    if genome is not None:
        stmt = stmt.where(_audit.c.genome == genome)
    if controller is not None:
        stmt = stmt.where(_audit.c.controller == controller)
    if event is not None:
        stmt = stmt.where(_audit.c.event == event)
    if since is not None:
        stmt = stmt.where(_audit.c.at >= as_utc(since))
    if until is not None:
        stmt = stmt.where(_audit.c.at < as_utc(until))
    if limit is not None:
        if limit < 0:
            raise InputError(f"audit show: limit must not be negative, not {limit}")
        stmt = stmt.order_by(_audit.c.seq.desc()).limit(limit)
    else:
        stmt = stmt.order_by(_audit.c.seq)
    with catalog.engine.connect() as conn:
        rows = [_as_dict(r) for r in conn.execute(stmt)]
    if limit is not None:
        rows.reverse()
    return rows
