"""Append-only, hash-chained audit log of what was done to clinical genome data.

Deleting (purging) or reading clinical genome data is legally accountable, so every such step
leaves an entry in the `audit` table that cannot be edited, removed or reordered unnoticed.

The chain
    Entries are numbered `seq` = 1, 2, 3, ... without gaps. Each entry stores the hash of the one
    before it (`prev_hash`; `GENESIS`, 64 zeros, for entry 1) and its own hash::

        hash = sha256_hex(prev_hash + "\\n" + canonical_json(payload))
        payload = {"seq", "at", "actor", "event", "genome", "controller", "detail"}

    so each hash covers the entry and, through `prev_hash`, every entry before it. The one-row
    table `audit_head` (id 1) holds the newest `seq` and `hash`.

Canonical form
    `canonical_json` is JSON (RFC 8259) in UTF-8 with object keys sorted, no whitespace and
    non-ASCII characters written as themselves (orjson with `OPT_SORT_KEYS`). `at` is UTC as ISO
    8601 with microseconds and a `+00:00` offset (`2026-11-29T19:46:15.650456+00:00`); `genome`
    and `controller` are strings or null; `detail` is an object of JSON values only (strings,
    64-bit integers, finite floats, booleans, null, lists, objects with string keys). The
    `detail` column stores `canonical_json(detail)` exactly, so an auditor can recompute every
    hash from the table alone with any JSON library that sorts keys (see `entry_hash`).

Serialising writers
    `append` runs in the caller's transaction (a journal step and its audit entry commit or roll
    back together). It FIRST runs ``UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING
    seq, hash``, which on PostgreSQL takes the head's row lock (a concurrent appender blocks on it
    and, under READ COMMITTED, the default, then re-reads the committed head) and on SQLite takes
    the database write lock (deferred transactions start writing at their first DML; others
    wait up to the busy timeout). Only then are `seq` and `prev_hash` known; the entry is
    inserted and the head set to its hash. The lock is held until the caller's transaction ends,
    so append late in a transaction and commit soon. A missing head row (new catalog) is
    created with ``INSERT ... ON CONFLICT DO NOTHING`` (seq 0, `GENESIS`), which two racing
    first writers cannot both do, and the UPDATE is repeated. Callers must not run append under
    REPEATABLE READ / SERIALIZABLE on PostgreSQL (concurrent appends would fail to serialise).

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

No patient data
    Entries name genomes by their national genome id (a pseudonym) and controllers by name, and
    carry digests, sizes, paths and outcomes. `detail` keys that would hold the clinical context
    kept in the `genome` table or identify a person (`PATIENT_KEYS`, compared case-insensitively
    at every nesting level) are refused, since an append-only log could never forget them. This
    denylist is a guard against mistakes, not a filter of values: callers put no patient data
    in any value either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import AuditEntry, AuditHead
from wgsvault.errors import InputError, IntegrityError

GENESIS = "0" * 64

#: the event names wgsvault writes; `append` refuses any other.
EVENTS: tuple[str, ...] = (
    "approve",  # a data controller approved its actions of a plan
    "convert",  # a new file (CRAM, ...) was written from an original
    "verify",  # a conversion / cover was proven (or failed to be)
    "register",  # the new file was registered in the catalog
    "sidecar",  # a sidecar (cover proof of a let-go file) was written and registered
    "quarantine",  # an original was moved aside before it may be purged
    "purge",  # a quarantined original was deleted
    "undo",  # an action was undone (quarantined original put back)
    "restore",  # data was restored (e.g. FASTQ rebuilt from a CRAM)
    "apply_start",  # an `apply` run began
    "apply_end",  # an `apply` run ended (status in detail)
    "access",  # genome data was read / served (htsget, export)
    "refuse",  # an access or action was refused
)

#: detail keys refused as patient data (normalised: lower case, "-" and " " as "_").
PATIENT_KEYS: frozenset[str] = frozenset(
    {
        "patient_group",
        "indication",
        "requisition_region",
        "sequencing_date",
        "patient",
        "cpr",
        "name_of_patient",
    }
)

_HEAD_ID = 1
_INT64 = (-(2**63), 2**63 - 1)
_MAX_PROBLEMS = 100
_BATCH = 2000

_audit = AuditEntry.__table__
_head = AuditHead.__table__


# --------------------------------------------------------------------------- canonical form


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form entries are hashed in."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def utc_iso(at: dt.datetime) -> str:
    """`at` as UTC ISO 8601 with microseconds; a naive datetime is taken to be UTC."""
    return _utc(at).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: dt.datetime | str,
    actor: str,
    event: str,
    genome: str | None,
    controller: str | None,
    detail: Mapping[str, Any],
) -> str:
    """The hash of one entry: sha256 hex of `prev_hash + "\\n" + canonical payload`."""
    payload = {
        "seq": seq,
        "at": at if isinstance(at, str) else utc_iso(at),
        "actor": actor,
        "event": event,
        "genome": genome,
        "controller": controller,
        "detail": detail,
    }
    data = prev_hash.encode("ascii") + b"\n" + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def _utc(at: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; naive values (SQLite returns them) are UTC already."""
    if at.tzinfo is None:
        return at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC)


# --------------------------------------------------------------------------- input checks


def _check_detail(value: Any, where: str) -> None:
    """Refuse patient-data keys and anything that is not plain JSON (recursively)."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            if not isinstance(key, str):
                raise InputError(f"audit detail{where}: key {key!r} is not a string")
            norm = key.strip().lower().replace("-", "_").replace(" ", "_")
            if norm in PATIENT_KEYS:
                raise InputError(
                    f"audit detail{where}: key {key!r} would put patient data in the audit log;"
                    " refer to the genome by its id instead"
                )
            _check_detail(sub, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            _check_detail(sub, f"{where}[{i}]")
    elif value is None or isinstance(value, str | bool):
        return
    elif isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise InputError(f"audit detail{where}: integer {value} does not fit 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"audit detail{where}: {value!r} is not a JSON number")
    else:
        raise InputError(
            f"audit detail{where}: {type(value).__name__} {value!r} is not a JSON value"
            " (use strings, numbers, booleans, null, lists and objects)"
        )


def _check_text(name: str, value: str | None, limit: int, *, required: bool) -> None:
    if value is None:
        if required:
            raise InputError(f"audit {name} is required")
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError(f"audit {name} must be a non-empty string, not {value!r}")
    if len(value) > limit:
        raise InputError(f"audit {name} is longer than {limit} characters: {value[:40]!r}...")


# --------------------------------------------------------------------------- writing


def _bump_head(session: Session) -> tuple[int, str] | None:
    stmt = (
        update(_head)
        .where(_head.c.id == _HEAD_ID)
        .values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash)
    )
    row = session.execute(stmt).one_or_none()
    return None if row is None else (int(row.seq), str(row.hash))


def _create_head(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    values = {"id": _HEAD_ID, "seq": 0, "hash": GENESIS}
    if dialect == "postgresql":
        stmt = postgresql.insert(_head).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(_head).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise InputError(f"audit log: unsupported catalog backend {dialect!r}")
    session.execute(stmt)


def append(
    session: Session,
    *,
    actor: str,
    event: str,
    genome: str | None = None,
    controller: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditEntry:
    """Append one entry within the caller's transaction (it commits or rolls back with it).

    Raises `InputError` for an unknown event, bad strings, patient-data keys or non-JSON values
    in `detail`, or a naive `at`; `IntegrityError` if the head row is missing while entries
    exist (someone removed it: the chain cannot be continued safely; run `audit verify`).
    """
    _check_text("actor", actor, 200, required=True)
    _check_text("genome", genome, 200, required=False)
    _check_text("controller", controller, 200, required=False)
    if event not in EVENTS:
        raise InputError(f"audit event {event!r} is unknown; known events: {', '.join(EVENTS)}")
    detail = {} if detail is None else detail
    if not isinstance(detail, Mapping):
        raise InputError(f"audit detail must be an object, not {type(detail).__name__}")
    _check_detail(detail, "")
    detail_json = canonical_json(dict(detail))
    if at is None:
        at = dt.datetime.now(dt.UTC)
    elif at.tzinfo is None:
        raise InputError(f"audit time {at.isoformat()} has no time zone")
    at = at.astimezone(dt.UTC)

    # Serialise: lock the head first (row lock on PostgreSQL, write lock on SQLite).
    bumped = _bump_head(session)
    if bumped is None:
        _create_head(session)
        bumped = _bump_head(session)
        assert bumped is not None  # the row exists now (ours, or a committed concurrent one)
    seq, prev_hash = bumped
    if seq == 1 and session.execute(select(_audit.c.seq).limit(1)).first() is not None:
        raise IntegrityError(
            "the audit head row is missing but the audit log has entries: it was tampered with;"
            " run `wgsvault audit verify`"
        )

    digest = entry_hash(
        prev_hash,
        seq=seq,
        at=at,
        actor=actor,
        event=event,
        genome=genome,
        controller=controller,
        detail=orjson.loads(detail_json),
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        event=event,
        genome=genome,
        controller=controller,
        detail=detail_json,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(entry)
    session.flush()
    session.execute(update(_head).where(_head.c.id == _HEAD_ID).values(hash=digest))
    return entry


def record(
    catalog: Catalog,
    *,
    actor: str,
    event: str,
    genome: str | None = None,
    controller: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditEntry:
    """Append one entry in a transaction of its own."""
    with catalog.session() as session:
        return append(
            session,
            actor=actor,
            event=event,
            genome=genome,
            controller=controller,
            detail=detail,
            at=at,
        )


# --------------------------------------------------------------------------- checking


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


# --------------------------------------------------------------------------- reading


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
        stmt = stmt.where(_audit.c.at >= _utc(since))
    if until is not None:
        stmt = stmt.where(_audit.c.at < _utc(until))
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
