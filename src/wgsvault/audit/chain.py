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

No patient data
    Entries name genomes by their national genome id (a pseudonym) and controllers by name, and
    carry digests, sizes, paths and outcomes. `detail` keys that would hold the clinical context
    kept in the `genome` table or identify a person (`PATIENT_KEYS`, compared case-insensitively
    at every nesting level) are refused, since an append-only log could never forget them. This
    denylist is a guard against mistakes, not a filter of values: callers put no patient data
    in any value either.

`verify` (check.py) recomputes the chain; `show` (read.py) reads it back.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import math
import socket
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import AuditEntry, AuditHead, table_of
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
    "variants",  # the variant frequency database was built, changed (add/remove) or released
    "beacon",  # a Beacon v2 query was answered or refused (serve/beacon.py)
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

_audit = table_of(AuditEntry)
_head = table_of(AuditHead)


# --------------------------------------------------------------------------- canonical form


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form entries are hashed in."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def utc_iso(at: dt.datetime) -> str:
    """`at` as UTC ISO 8601 with microseconds; a naive datetime is taken to be UTC."""
    return as_utc(at).isoformat(timespec="microseconds")


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


def as_utc(at: dt.datetime) -> dt.datetime:
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
        session.execute(postgresql.insert(_head).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(_head).values(values).on_conflict_do_nothing())
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise InputError(f"audit log: unsupported catalog backend {dialect!r}")


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


def default_actor() -> str:
    """`user@host` of this process: the actor of a change when none is given."""
    return f"{getpass.getuser()}@{socket.gethostname()}"
