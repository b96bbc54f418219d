"""A catalog made by the release before the package moved (schema revision 0004) opens with this
code: every row written then is read back now, the audit chain written then still verifies, and
the schema is upgraded to the current head.

The old catalog is built by alembic from the migration scripts alone (`upgrade 0004`) and filled
with plain SQL, so nothing of this code's models or modules writes it. Audit hashes are computed
here by the documented recipe (sha256 of the previous hash, a newline and the canonical JSON
payload), independently of `wgsvault.audit`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from wgsvault import access, audit
from wgsvault.apply import status
from wgsvault.catalog import open_catalog
from wgsvault.catalog.db import HEAD_REVISION, alembic_config, normalise_url
from wgsvault.catalog.models import File, Genome, Quarantine
from wgsvault.config import DEFAULT_PRICE_DKK_PER_TB_YEAR
from wgsvault.errors import CatalogError
from wgsvault.report.footprint import footprint

AT = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
TOKEN = "wgv_" + "A" * 43


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _audit_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    prev, rows = "0" * 64, []
    for seq, e in enumerate(entries, 1):
        at = AT + dt.timedelta(seconds=seq)
        payload = {"seq": seq, "at": at.isoformat(timespec="microseconds"), **e}
        digest = hashlib.sha256((prev + "\n" + _canonical(payload)).encode()).hexdigest()
        detail = _canonical(e["detail"])
        rows.append({**e, "seq": seq, "at": at, "detail": detail, "prev": prev, "hash": digest})
        prev = digest
    return rows


def _build_revision_0004(url: str) -> None:
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0004")
        sql = [
            "INSERT INTO controller (id, name, kind) VALUES (1, 'region-east', 'region'),"
            " (2, 'national', 'national')",
            "INSERT INTO genome (id, name, patient_group, requisition_region, sequencing_date)"
            " VALUES (1, 'NGC00001', 'rare disease', 'region-east', '2026-01-15')",
            "INSERT INTO scan (id, started_at, status, roots, layout, files_seen, bytes_seen,"
            " added, changed, vanished, issues) VALUES (1, :at, 'done', '[\"/estate\"]',"
            " 'default', 3, 6000000000, 3, 0, 0, 0)",
            "INSERT INTO root (id, path, last_scan_id) VALUES (1, '/estate', 1)",
            "INSERT INTO file (id, root_id, path, unit, type, controller_id, genome_id, size,"
            " mtime_ns, inode, n_files, status, first_scan_id, last_change_scan_id) VALUES"
            " (1, 1, '/estate/region-east/NGC00001/NGC00001.cram', '/estate/region-east/NGC00001/"
            "NGC00001.cram', 'cram', 1, 1, 3000000000, 1, 11, 1, 'present', 1, 1),"
            " (2, 1, '/estate/national/NGC00001/NGC00001.cram', '/estate/national/NGC00001/"
            "NGC00001.cram', 'cram', 2, 1, 3000000000, 1, 12, 1, 'present', 1, 1),"
            " (3, 1, '/estate/region-east/NGC00001/NGC00001.bam', '/estate/region-east/NGC00001/"
            "NGC00001.bam', 'bam', 1, 1, 9000000000, 1, 13, 1, 'quarantined', 1, 1)",
            "INSERT INTO apply_run (id, plan_sha256, plan_path, actor, host, pid, executor, status,"
            " started_at) VALUES (1, :plan, '/p.json', 'steward', 'h', 1, 'local', 'done', :at)",
            "INSERT INTO journal (id, run_id, plan_sha256, action_id, genome, step, state, detail,"
            " at) VALUES (1, 1, :plan, 'a1', 'NGC00001', 'action', 'done', '{}', :at)",
            "INSERT INTO quarantine (id, file_id, genome, controller, original_path,"
            " quarantine_path, size, mtime_ns, plan_sha256, action_id, state, quarantined_at,"
            " expires_at) VALUES (1, 3, 'NGC00001', 'region-east', '/estate/region-east/NGC00001/"
            "NGC00001.bam', '/estate/.wgsvault-quarantine/x/a1/NGC00001.bam', 9000000000, 1,"
            " :plan, 'a1', 'quarantined', :at, :at)",
            "INSERT INTO principal (id, name, created_at) VALUES (1, 'ann', :at)",
            "INSERT INTO api_token (id, principal_id, token_sha256, prefix, created_at) VALUES"
            " (1, 1, :tok, :prefix, :at)",
            "INSERT INTO access_grant (id, principal_id, kind, value, granted_by, created_at)"
            " VALUES (1, 1, 'genome', 'NGC00001', 'dr.grant', :at)",
        ]
        params = {
            "at": AT,
            "plan": "ab" * 32,
            "tok": hashlib.sha256(TOKEN.encode()).hexdigest(),
            "prefix": TOKEN[:12],
        }
        for stmt in sql:
            conn.execute(text(stmt), params)
        entries = [
            {"actor": "steward", "event": "approve", "genome": None, "controller": "region-east",
             "detail": {"plan": "ab" * 32, "actions": 1}},
            {"actor": "wgsvault", "event": "quarantine", "genome": "NGC00001",
             "controller": "region-east", "detail": {"path": "/x/NGC00001.bam", "size": 9}},
            {"actor": "principal:ann", "event": "access", "genome": "NGC00001",
             "controller": None, "detail": {"kind": "ticket", "bytes": 38, "ø": "ü"}},
        ]  # fmt: skip
        rows = _audit_rows(entries)
        for r in rows:
            conn.execute(
                text(
                    "INSERT INTO audit (seq, at, actor, event, genome, controller, detail,"
                    " prev_hash, hash) VALUES (:seq, :at, :actor, :event, :genome, :controller,"
                    " :detail, :prev, :hash)"
                ),
                r,
            )
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"), rows[-1]
        )
    engine.dispose()


def test_catalog_of_revision_0004_opens_and_upgrades(catalog_url: str) -> None:
    _build_revision_0004(catalog_url)
    cat = open_catalog(catalog_url)  # migrates to this code's head
    try:
        assert cat.revision() == HEAD_REVISION
        with cat.session() as s:
            g = s.scalars(select(Genome).where(Genome.name == "NGC00001")).one()
            assert (g.patient_group, g.sequencing_date) == ("rare disease", dt.date(2026, 1, 15))
            assert s.scalars(select(File.status).order_by(File.id)).all() == [
                "present",
                "present",
                "quarantined",
            ]
            q = s.scalars(select(Quarantine)).one()
            assert q.expires_at == AT and q.state == "quarantined"
        fp = footprint(cat, price=DEFAULT_PRICE_DKK_PER_TB_YEAR, projection=10)
        assert fp.total_bytes == 6_000_000_000 and fp.genomes == 1
        check = audit.verify(cat)
        assert check.ok, check.problems
        assert (check.entries, check.head_seq) == (3, 3)
        assert access.authenticate(cat, TOKEN).name == "ann"
        assert access.authorize(cat, "ann", "NGC00001").allowed
        assert [r["state"] for r in status(cat)] == ["done"]
        audit.record(cat, actor="test", event="access", genome="NGC00001")  # the chain goes on
        assert audit.verify(cat).ok
    finally:
        cat.close()


def test_catalog_of_a_newer_release_is_refused_in_one_line(catalog_url: str) -> None:
    """A catalog stamped with a revision this code does not know (written by a newer release)
    is refused with a CatalogError naming the revision, and left as it was."""
    open_catalog(catalog_url).close()
    engine = create_engine(normalise_url(catalog_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CatalogError, match="revision 9999, which this wgsvault does not know"):
        open_catalog(catalog_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()
