"""Checking the audit chain: every entry against its hash and its predecessor, and the head.

What `verify` detects, and what it cannot
    Streaming all entries in `seq` order, `verify` recomputes each hash and reports the first bad
    `seq` of every break: an edited entry (its hash no longer matches its content, or its detail
    is not in canonical form), a removed entry (a gap in `seq`, and the next entry's `prev_hash`
    not matching), reordered entries (`seq` is hashed, so swapped numbers break both hashes),
    an inserted or forged entry (its hash, or its successor's `prev_hash`, does not match), and
    a head that does not match the last entry (entries after the head, or the tail removed).
    Removing the tail AND rewinding the head, or rewriting the tail and recomputing every hash
    after it, leaves a self-consistent chain that no check inside the database can tell apart
    from the real one: only an external anchor detects it. `wgsvault audit verify` prints the
    head (`seq` and `hash`); kept elsewhere (a ticket, a signed mail, another system), it is
    checked with `verify(catalog, anchor=(seq, hash))`: the entry at that `seq` must still have
    that hash, and the chain must still reach it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from wgsvault.audit.chain import GENESIS, canonical_json, entry_hash
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import AuditEntry, AuditHead, table_of

_HEAD_ID = 1
_MAX_PROBLEMS = 100
_BATCH = 2000
_audit = table_of(AuditEntry)
_head = table_of(AuditHead)



@dataclass
class AuditCheck:
    """The outcome of `verify`: `ok` when every entry and the head agree.

    `problems` name the first bad `seq` of each break and what is wrong; `first_bad` is the
    lowest of them. `head_seq` / `head_hash` are the head as stored: the anchor to keep
    outside the database.
    """

    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    problems: list[str] = field(default_factory=list)
    first_bad: int | None = None


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.dropped = 0
        self.first_bad: int | None = None

    def add(self, seq: int | None, message: str) -> None:
        if seq is not None and (self.first_bad is None or seq < self.first_bad):
            self.first_bad = seq
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(f"seq {seq}: {message}" if seq is not None else message)
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.items, f"... and {self.dropped} more problems"]
        return self.items


def _snapshot(conn: Connection) -> None:
    """Make the statements of `conn`'s transaction see one snapshot of the catalog."""
    if conn.dialect.name == "sqlite":
        # pysqlite starts transactions only before DML; a read transaction spans statements
        # only if begun explicitly (WAL readers never block the writers).
        conn.exec_driver_sql("BEGIN")


def _rows(conn: Connection) -> Iterator[Any]:
    stmt = select(_audit).order_by(_audit.c.seq).execution_options(yield_per=_BATCH)
    for partition in conn.execute(stmt).partitions():
        yield from partition


def verify(catalog: Catalog, *, anchor: tuple[int, str] | None = None) -> AuditCheck:
    """Check the whole chain and the head, streaming entries in `seq` order.

    `anchor` is a head (`seq`, `hash`) recorded outside the database earlier: the entry with
    that `seq` must still exist and have that hash.
    """
    problems = _Problems()
    count = 0
    with catalog.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            _snapshot(conn)
            head = conn.execute(
                select(_head.c.seq, _head.c.hash).where(_head.c.id == _HEAD_ID)
            ).one_or_none()
            extra_heads = conn.execute(
                select(func.count()).select_from(_head).where(_head.c.id != _HEAD_ID)
            ).scalar_one()
            if extra_heads:
                problems.add(None, f"audit_head has {extra_heads} rows besides id {_HEAD_ID}")

            expect_seq, expect_prev = 1, GENESIS
            last_seq: int | None = None
            last_hash = GENESIS
            anchor_seen = False
            for row in _rows(conn):
                count += 1
                seq = int(row.seq)
                if seq != expect_seq:
                    if seq > expect_seq:
                        missing = (
                            f"seq {expect_seq}"
                            if seq == expect_seq + 1
                            else f"seq {expect_seq}..{seq - 1}"
                        )
                        problems.add(seq, f"{missing} missing before it (entries removed)")
                    else:  # pragma: no cover - seq is the primary key and rows come ordered
                        problems.add(seq, f"out of order after seq {expect_seq - 1}")
                if row.prev_hash != expect_prev:
                    problems.add(
                        seq,
                        f"prev_hash {row.prev_hash[:16]}... does not match the hash of the entry"
                        f" before it ({expect_prev[:16]}...): an entry was removed, inserted"
                        " or reordered",
                    )
                problem = _entry_problem(row)
                if problem:
                    problems.add(seq, problem)
                if anchor is not None and seq == anchor[0]:
                    anchor_seen = True
                    if row.hash != anchor[1]:
                        problems.add(
                            seq,
                            f"hash {row.hash[:16]}... differs from the anchor {anchor[1][:16]}...:"
                            " the log was rewritten since the anchor was taken",
                        )
                # carry on from what is stored, so one break is reported once, not for all after
                expect_seq, expect_prev = seq + 1, row.hash
                last_seq, last_hash = seq, row.hash

    _check_head(problems, head, last_seq, last_hash, count)
    if anchor is not None and not anchor_seen:
        problems.add(anchor[0], "the anchored entry is missing: the log was truncated")
    found = problems.result()
    return AuditCheck(
        ok=not found,
        entries=count,
        head_seq=None if head is None else int(head.seq),
        head_hash=None if head is None else str(head.hash),
        problems=found,
        first_bad=problems.first_bad,
    )


def _entry_problem(row: Any) -> str | None:
    """What is wrong with one entry on its own (content vs. its hash), or None."""
    try:
        detail = orjson.loads(row.detail)
    except orjson.JSONDecodeError:
        return "detail is not valid JSON (edited)"
    if not isinstance(detail, dict):
        return "detail is not a JSON object (edited)"
    if canonical_json(detail) != row.detail:
        return "detail is not in canonical form (edited)"
    digest = entry_hash(
        row.prev_hash,
        seq=int(row.seq),
        at=row.at,
        actor=row.actor,
        event=row.event,
        genome=row.genome,
        controller=row.controller,
        detail=detail,
    )
    if digest != row.hash:
        return "content does not match its hash (entry edited)"
    return None


def _check_head(
    problems: _Problems, head: Any, last_seq: int | None, last_hash: str, count: int
) -> None:
    if head is None:
        if count:
            problems.add(last_seq, "the audit head row is missing (removed)")
        return
    head_seq, head_hash = int(head.seq), str(head.hash)
    if last_seq is None:
        if head_seq != 0 or head_hash != GENESIS:
            problems.add(1, f"the log is empty but the head is at seq {head_seq}: all removed")
        return
    if head_seq > last_seq:
        problems.add(
            last_seq + 1,
            f"missing: the head is at seq {head_seq} but the last entry is seq {last_seq}"
            " (tail removed)",
        )
    elif head_seq < last_seq:
        problems.add(
            head_seq + 1,
            f"entries after the head (seq {head_seq}) up to seq {last_seq} (added behind"
            " the head's back)",
        )
    elif head_hash != last_hash:
        problems.add(
            last_seq,
            f"the head's hash {head_hash[:16]}... differs from the last entry's"
            f" {last_hash[:16]}... (last entry or head replaced)",
        )
