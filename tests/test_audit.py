"""The hash-chained audit log: appending, tamper detection, filtering, concurrent writers."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import traceback
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text

from wgsvault import audit
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import AuditEntry, AuditHead
from wgsvault.errors import InputError, IntegrityError

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def _fill(catalog: Catalog, n: int = 5) -> list[AuditEntry]:
    return [
        audit.record(
            catalog,
            actor="svc-vault",
            event="purge" if i % 2 else "quarantine",
            genome=f"G{i % 3}",
            controller="Region Nord" if i % 2 else "National",
            detail={"sha256": f"{i:064x}", "size": 1000 + i, "ok": True},
            at=T0 + dt.timedelta(days=i),
        )
        for i in range(n)
    ]


def _sql(catalog: Catalog, *statements: str) -> None:
    with catalog.engine.begin() as conn:
        for stmt in statements:
            conn.exec_driver_sql(stmt)


# --------------------------------------------------------------------------- the chain


def test_chain_verifies(catalog: Catalog) -> None:
    empty = audit.verify(catalog)
    assert empty.ok and empty.entries == 0 and empty.head_seq is None

    entries = _fill(catalog, 5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.hash

    check = audit.verify(catalog)
    assert check.ok, check.problems
    assert check.entries == 5
    assert (check.head_seq, check.head_hash) == (5, entries[-1].hash)
    assert check.problems == [] and check.first_bad is None
    assert audit.verify(catalog, anchor=(5, entries[-1].hash)).ok
    assert audit.verify(catalog, anchor=(3, entries[2].hash)).ok


def test_hash_is_reproducible_from_the_documented_form(catalog: Catalog) -> None:
    """An auditor can recompute a hash from the stored row with plain hashlib + sorted JSON."""
    import hashlib
    import json

    entry = audit.record(
        catalog,
        actor="anna",
        event="access",
        genome="NGC-123",
        detail={"z": [1, 2.5, None], "a": {"é": "ø"}},
        at=T0,
    )
    payload = {
        "seq": 1,
        "at": "2026-03-01T12:00:00.123456+00:00",
        "actor": "anna",
        "event": "access",
        "genome": "NGC-123",
        "controller": None,
        "detail": {"z": [1, 2.5, None], "a": {"é": "ø"}},
    }
    canon = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256((audit.GENESIS + "\n" + canon).encode()).hexdigest()
    assert entry.hash == expected
    with catalog.session() as s:
        row = s.get(AuditEntry, 1)
        assert row is not None
        assert row.detail == '{"a":{"é":"ø"},"z":[1,2.5,null]}'
        assert audit.utc_iso(row.at) == payload["at"]


def test_append_joins_the_callers_transaction(catalog: Catalog) -> None:
    _fill(catalog, 2)
    with pytest.raises(RuntimeError), catalog.session() as s:
        audit.append(s, actor="svc", event="purge", genome="G9")
        raise RuntimeError("the journal step failed")
    with catalog.session() as s:
        assert s.scalars(select(AuditEntry.seq)).all() == [1, 2]
        head = s.get(AuditHead, 1)
        assert head is not None and head.seq == 2
    entry = audit.record(catalog, actor="svc", event="purge", genome="G9")
    assert entry.seq == 3
    assert audit.verify(catalog).ok


def test_non_utc_time_is_stored_as_utc(catalog: Catalog) -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    audit.record(catalog, actor="a", event="access", at=dt.datetime(2026, 1, 1, 13, 0, tzinfo=cet))
    (row,) = audit.show(catalog)
    assert row["at"] == "2026-01-01T12:00:00.000000+00:00"
    assert audit.verify(catalog).ok
    with pytest.raises(InputError, match="time zone"):
        audit.record(catalog, actor="a", event="access", at=dt.datetime(2026, 1, 1))


# --------------------------------------------------------------------------- tampering


def test_edited_detail_is_detected(catalog: Catalog) -> None:
    _fill(catalog, 5)
    _sql(catalog, """UPDATE audit SET detail = '{"ok":false}' WHERE seq = 3""")
    check = audit.verify(catalog)
    assert not check.ok
    assert check.first_bad == 3
    assert any(p.startswith("seq 3:") and "hash" in p for p in check.problems), check.problems
    assert len(check.problems) == 1  # one break, no cascade


def test_reformatted_detail_is_detected(catalog: Catalog) -> None:
    _fill(catalog, 3)
    with catalog.engine.begin() as conn:
        stored = conn.execute(text("SELECT detail FROM audit WHERE seq = 2")).scalar_one()
        spaced = orjson.dumps(orjson.loads(stored), option=orjson.OPT_INDENT_2).decode()
        conn.execute(text("UPDATE audit SET detail = :d WHERE seq = 2"), {"d": spaced})
    check = audit.verify(catalog)
    assert not check.ok and check.first_bad == 2
    assert "canonical" in check.problems[0]


def test_edited_actor_and_time_are_detected(catalog: Catalog) -> None:
    _fill(catalog, 4)
    _sql(catalog, "UPDATE audit SET actor = 'someone else' WHERE seq = 2")
    assert audit.verify(catalog).first_bad == 2
    with catalog.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit SET at = :at WHERE seq = 1"),
            {"at": T0 - dt.timedelta(hours=1)},
        )
    check = audit.verify(catalog)
    assert check.first_bad == 1
    assert [p.split(":")[0] for p in check.problems] == ["seq 1", "seq 2"]


def test_deleted_middle_entry_is_detected(catalog: Catalog) -> None:
    _fill(catalog, 5)
    _sql(catalog, "DELETE FROM audit WHERE seq = 3")
    check = audit.verify(catalog)
    assert not check.ok
    assert check.entries == 4
    assert check.first_bad == 4
    text_ = " ".join(check.problems)
    assert "seq 3 missing" in text_ and "prev_hash" in text_


def test_swapped_entries_are_detected(catalog: Catalog) -> None:
    _fill(catalog, 5)
    _sql(
        catalog,
        "UPDATE audit SET seq = -2 WHERE seq = 2",
        "UPDATE audit SET seq = 2 WHERE seq = 3",
        "UPDATE audit SET seq = 3 WHERE seq = -2",
    )
    check = audit.verify(catalog)
    assert not check.ok
    assert check.first_bad == 2
    assert any(p.startswith("seq 2:") for p in check.problems)
    assert any(p.startswith("seq 3:") for p in check.problems)


def test_deleted_last_entry_is_detected_against_the_head(catalog: Catalog) -> None:
    entries = _fill(catalog, 5)
    _sql(catalog, "DELETE FROM audit WHERE seq = 5")
    check = audit.verify(catalog)
    assert not check.ok
    assert check.head_seq == 5 and check.entries == 4
    assert check.first_bad == 5
    assert "tail removed" in check.problems[0]

    # rewinding the head too makes the chain self-consistent: only the anchor shows it
    _sql(catalog, f"UPDATE audit_head SET seq = 4, hash = '{entries[3].hash}'")
    assert audit.verify(catalog).ok
    anchored = audit.verify(catalog, anchor=(5, entries[4].hash))
    assert not anchored.ok and anchored.first_bad == 5
    assert "truncated" in anchored.problems[0]


def test_entry_added_behind_the_heads_back_is_detected(catalog: Catalog) -> None:
    entries = _fill(catalog, 3)
    forged_at = T0 + dt.timedelta(days=10)
    forged = audit.entry_hash(
        entries[-1].hash,
        seq=4,
        at=forged_at,
        actor="x",
        event="access",
        genome=None,
        controller=None,
        detail={},
    )
    with catalog.engine.begin() as conn:
        conn.execute(
            AuditEntry.__table__.insert().values(
                seq=4,
                at=forged_at,
                actor="x",
                event="access",
                genome=None,
                controller=None,
                detail="{}",
                prev_hash=entries[-1].hash,
                hash=forged,
            )
        )
    check = audit.verify(catalog)
    assert not check.ok and check.first_bad == 4
    assert "after the head" in check.problems[0]


def test_removed_head_is_detected_and_blocks_appending(catalog: Catalog) -> None:
    _fill(catalog, 2)
    _sql(catalog, "DELETE FROM audit_head")
    check = audit.verify(catalog)
    assert not check.ok and "head row is missing" in check.problems[0]
    with pytest.raises(IntegrityError, match="head row is missing"):
        audit.record(catalog, actor="a", event="access")


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "detail",
    [
        {"patient_group": "rare disease"},
        {"Indication": "epilepsy"},
        {"requisition-region": "Nord"},
        {"sequencing_date": "2024-01-01"},
        {"nested": {"list": [{"CPR": "0101011234"}]}},
        {"patient": "x"},
        {"name_of_patient": "x"},
    ],
)
def test_patient_data_keys_are_refused(sqlite_catalog: Catalog, detail: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="patient data"):
        audit.record(sqlite_catalog, actor="a", event="access", genome="G1", detail=detail)
    assert audit.show(sqlite_catalog) == []


@pytest.mark.parametrize(
    "detail",
    [
        {"when": dt.date(2024, 1, 1)},
        {"path": Path("/x")},
        {"n": float("nan")},
        {"n": 2**70},
        {1: "int key"},
        {"s": {1, 2}},
        {"b": b"bytes"},
    ],
)
def test_non_json_detail_is_refused(sqlite_catalog: Catalog, detail: dict[Any, Any]) -> None:
    with pytest.raises(InputError):
        audit.record(sqlite_catalog, actor="a", event="access", detail=detail)


def test_bad_event_and_actor_are_refused(sqlite_catalog: Catalog) -> None:
    with pytest.raises(InputError, match="unknown"):
        audit.record(sqlite_catalog, actor="a", event="delete_everything")
    with pytest.raises(InputError, match="actor"):
        audit.record(sqlite_catalog, actor=" ", event="access")
    with pytest.raises(InputError, match="longer"):
        audit.record(sqlite_catalog, actor="a", event="access", genome="G" * 201)
    assert set(audit.EVENTS) >= {"purge", "access", "refuse", "apply_start", "apply_end"}


# --------------------------------------------------------------------------- show


def test_show_filters(catalog: Catalog) -> None:
    _fill(catalog, 6)  # day i: genome G{i%3}; odd: purge / Region Nord, even: quarantine/National
    rows = audit.show(catalog)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    first = rows[0]
    assert first == {
        "seq": 1,
        "at": "2026-03-01T12:00:00.123456+00:00",
        "actor": "svc-vault",
        "event": "quarantine",
        "genome": "G0",
        "controller": "National",
        "detail": {"sha256": f"{0:064x}", "size": 1000, "ok": True},
        "hash": first["hash"],
    }
    assert [r["seq"] for r in audit.show(catalog, genome="G1")] == [2, 5]
    assert [r["seq"] for r in audit.show(catalog, controller="Region Nord")] == [2, 4, 6]
    assert [r["seq"] for r in audit.show(catalog, event="quarantine")] == [1, 3, 5]
    assert [r["seq"] for r in audit.show(catalog, event="quarantine", genome="G0")] == [1]
    since, until = T0 + dt.timedelta(days=2), T0 + dt.timedelta(days=4)
    assert [r["seq"] for r in audit.show(catalog, since=since)] == [3, 4, 5, 6]
    assert [r["seq"] for r in audit.show(catalog, until=until)] == [1, 2, 3, 4]
    assert [r["seq"] for r in audit.show(catalog, since=since, until=until)] == [3, 4]
    # a naive bound is UTC; another zone is converted
    naive = dt.datetime(2026, 3, 3, 12, 0, 0, 123456)
    assert [r["seq"] for r in audit.show(catalog, since=naive, until=until)] == [3, 4]
    cet = dt.timezone(dt.timedelta(hours=1))
    assert [r["seq"] for r in audit.show(catalog, since=since.astimezone(cet))] == [3, 4, 5, 6]
    assert [r["seq"] for r in audit.show(catalog, limit=2)] == [5, 6]
    assert [r["seq"] for r in audit.show(catalog, event="purge", limit=2)] == [4, 6]
    assert audit.show(catalog, limit=0) == []
    assert audit.show(catalog, genome="nope") == []


def test_verify_streams_many_entries(catalog: Catalog) -> None:
    """More entries than one fetch batch, appended in a few transactions."""
    n = 2 * audit.check._BATCH + 7
    with catalog.session() as s:
        for i in range(n):
            audit.append(s, actor="svc", event="access", genome=f"G{i}", at=T0)
    check = audit.verify(catalog)
    assert check.ok, check.problems
    assert check.entries == n == check.head_seq


# --------------------------------------------------------------------------- concurrency

WRITERS = 4
PER_WRITER = 50


def _writer(url: str, worker: int, barrier: Any, errors: Any) -> None:
    try:
        catalog = open_catalog(url)
        try:
            barrier.wait(timeout=60)
            for i in range(PER_WRITER):
                if i % 2:
                    audit.record(
                        catalog,
                        actor=f"worker-{worker}",
                        event="access",
                        genome=f"G{worker}",
                        detail={"i": i},
                    )
                else:  # within a transaction doing other work too
                    with catalog.session() as s:
                        s.execute(select(AuditEntry.seq).limit(1)).all()
                        audit.append(s, actor=f"worker-{worker}", event="purge", detail={"i": i})
        finally:
            catalog.close()
    except BaseException:
        errors.put(f"worker {worker}:\n{traceback.format_exc()}")
        raise


def _run_writers(url: str) -> None:
    open_catalog(url).close()  # migrate once, before the writers race
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, barrier, errors)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    errors.close()
    errors.join_thread()
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert all(p.exitcode == 0 for p in procs), "\n".join(failures)

    total = WRITERS * PER_WRITER
    catalog = open_catalog(url)
    try:
        check = audit.verify(catalog)
        assert check.ok, check.problems
        assert check.entries == total and check.head_seq == total
        with catalog.session() as s:
            seqs = s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
        assert seqs == list(range(1, total + 1))
        actors = {r["actor"] for r in audit.show(catalog)}
        assert actors == {f"worker-{w}" for w in range(WRITERS)}
    finally:
        catalog.close()


@pytest.mark.timeout(300)
def test_concurrent_writers_postgresql(pg_database: str) -> None:
    _run_writers(pg_database)


@pytest.mark.timeout(300)
def test_concurrent_writers_sqlite(tmp_path: Path) -> None:
    _run_writers(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
