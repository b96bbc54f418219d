"""The main job: approve -> apply -> quarantine -> purge/undo, on real (small) genome files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from wgsvault import audit
from wgsvault.apply import apply_plan
from wgsvault.apply.approval import approve
from wgsvault.apply.quarantine import purge, undo
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import File, Quarantine
from wgsvault.codec.refs import Registry
from wgsvault.codec.verify import record_checksums
from wgsvault.demo.synth import write_genome, write_reference
from wgsvault.errors import AccessDenied
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.plan.planner import make_plan, write_plan
from wgsvault.plan.policy import load_policy

from conftest import run_cli


@dataclass
class Estate:
    root: Path
    home: Path
    catalog: Catalog
    registry: Registry
    plan: Path
    digests: dict[str, str]  # sha256 of every file before apply


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_estate(
    base: Path, url: str, policy: str = "B", prepare: Callable[[Path, Path], None] | None = None
) -> Estate:
    """Two regional genomes of real files (G1 with CRAM, G2 without) and a national copy of G1.

    `prepare(root, reference)` may change the estate before it is scanned and planned."""
    root, home = base / "estate", base / "home"
    ref = write_reference(base / "ref" / "ref.fa", seed=31)
    g1 = write_genome(root / "region-east" / "G1", "G1", ref, seed=1, n_pairs=300)
    g2 = write_genome(root / "region-east" / "G2", "G2", ref, seed=2, n_pairs=300)
    for p in (g2.cram, Path(f"{g2.cram}.crai")):
        p.unlink()
    nat = root / "national" / "G1"
    nat.mkdir(parents=True)
    for p in (g1.cram, Path(f"{g1.cram}.crai"), g1.vcf, Path(f"{g1.vcf}.tbi")):
        shutil.copy2(p, nat / p.name)
    if prepare is not None:
        prepare(root, ref)
    cat = open_catalog(url)
    reg = Registry(cat, home / "refs")
    reg.add(ref, "synth31")
    scan(cat, [str(root)], DEFAULT_LAYOUT)
    plan = make_plan(cat, load_policy(policy), price=1500.0)
    path = base / f"plan-{policy}.json"
    write_plan(plan, path)
    digests = {
        str(p): sha(p) for p in root.rglob("*") if p.is_file() and ".wgsvault-" not in str(p)
    }
    return Estate(root, home, cat, reg, path, digests)


def approve_all(e: Estate) -> None:
    plan = json.loads(e.plan.read_text())
    for c in sorted({a["controller"] for a in plan["actions"] if a["status"] == "ready"}):
        approve(e.catalog, e.plan, controller=c, by="dr. test", reference="CASE-1")


@pytest.fixture
def estate(tmp_path: Path, catalog_url: str) -> Estate:
    e = build_estate(tmp_path, catalog_url)
    yield e
    e.catalog.close()


def check_intact(e: Estate, *, allow_leftovers: bool = False) -> None:
    """Every original is on disk or in quarantine with its bytes; the catalog agrees with disk.

    Right after a kill, temporary files of the interrupted step may remain (`allow_leftovers`);
    the next run removes them."""
    from wgsvault.catalog.models import JournalEntry

    with e.catalog.session() as s:
        quarantined = {
            q.original_path: q for q in s.query(Quarantine).filter_by(state="quarantined")
        }
        files = list(s.query(File))
        moving = {  # moves the journal announced (write-ahead) that a kill left unrecorded
            d["path"]: Path(d["to"])
            for j in s.query(JournalEntry)
            if j.step.startswith("quarantine:") and j.state == "started"
            for d in [json.loads(j.detail)]
        }
    for path, digest in e.digests.items():
        p = Path(path)
        if p.exists():
            assert sha(p) == digest, path
        elif allow_leftovers and path in moving and moving[path].exists():
            assert sha(moving[path]) == digest, path
        elif allow_leftovers and any(
            path.startswith(o + os.sep) and t.exists() for o, t in moving.items()
        ):
            continue  # inside a run folder being moved: the folder is where the journal says
        else:
            q = quarantined.get(path) or next(
                (q for o, q in quarantined.items() if path.startswith(o + os.sep)), None
            )
            assert q is not None, f"{path} is neither on disk nor in quarantine"
            inside = Path(q.quarantine_path) / Path(path).relative_to(q.original_path)
            assert sha(inside) == digest, path
    for f in files:
        if f.status == "present":
            assert Path(f.path).exists() or (allow_leftovers and f.path in moving), f.path
        elif f.status == "quarantined":
            assert not Path(f.path).exists() and f.path in quarantined
    leftovers = [
        p for p in e.root.rglob(".*") if p.is_file() and ".wgsvault-quarantine" not in str(p)
    ]
    assert allow_leftovers or leftovers == []


def test_apply_b_frees_only_proven_bytes(estate: Estate) -> None:
    e = estate
    approve_all(e)
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    assert s.failed == {} and s.skipped == {}
    g1, g2 = e.root / "region-east" / "G1", e.root / "region-east" / "G2"
    # G1: BAM, FASTQ, gVCF, BCL gone into quarantine; its CRAM and VCF stay; a sidecar was written
    assert not (g1 / "G1.bam").exists() and not (g1 / "G1_R1.fastq.gz").exists()
    assert (g1 / "G1.cram").exists() and (g1 / "G1.fastq.wgsvault-sidecar").exists()
    # G2: its BAM became a proven CRAM, which then covered its FASTQ
    assert (g2 / "G2.cram").exists() and not (g2 / "G2.bam").exists()
    q = e.root / ".wgsvault-quarantine"
    (bam,) = q.rglob("G2.bam")
    assert record_checksums(g2 / "G2.cram", cache=e.registry.cache) == record_checksums(
        bam, cache=e.registry.cache
    )
    assert s.bytes_freed > 0
    # scenario B never writes an unaligned CRAM beside an aligned CRAM that covers the reads
    assert not list(e.root.rglob("*.unaligned.cram"))
    check_intact(e)
    rescan = scan(e.catalog, [str(e.root)], DEFAULT_LAYOUT)  # the catalog agrees with the disk
    assert (rescan.added, rescan.changed, rescan.vanished) == (0, 0, 0)
    assert audit.verify(e.catalog).ok
    events = {r["event"] for r in audit.show(e.catalog, genome="G2")}
    assert {"convert", "verify", "quarantine"} <= events
    # a second apply finds everything done and changes nothing
    again = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    assert again.failed == {} and again.bytes_freed == 0


def test_unapproved_or_changed_plan_is_refused(estate: Estate) -> None:
    e = estate
    with pytest.raises(AccessDenied, match="not approved by region-east"):
        apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    approve_all(e)
    plan = json.loads(e.plan.read_text())
    plan["actions"][0]["files"][0]["path"] = "/etc/passwd"
    e.plan.write_text(json.dumps(plan))
    with pytest.raises(AccessDenied, match="changed after it was made"):
        apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    assert all(Path(p).exists() for p in e.digests)


def test_file_changed_after_planning_is_skipped(estate: Estate) -> None:
    e = estate
    approve_all(e)
    bam = e.root / "region-east" / "G1" / "G1.bam"
    with open(bam, "ab") as fh:
        fh.write(b"\0")
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    assert any("G1.bam: changed since the plan" in why for why in s.skipped.values())
    assert bam.exists()


def test_corrupt_cram_is_caught_before_quarantine(estate: Estate) -> None:
    e = estate
    approve_all(e)
    cram = e.root / "region-east" / "G1" / "G1.cram"
    data = bytearray(cram.read_bytes())
    data[len(data) // 2] ^= 1
    cram.write_bytes(bytes(data))
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    g1 = e.root / "region-east" / "G1"
    assert (g1 / "G1.bam").exists() and (g1 / "G1_R1.fastq.gz").exists()
    assert any("G1.bam" in why for why in s.failed.values())


def test_disk_full_during_conversion(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> None:
    e = estate
    approve_all(e)
    monkeypatch.setenv("WGSVAULT_FAULT", "enospc@convert:started")
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    assert any("No space left on device" in why for why in s.failed.values())
    g2 = e.root / "region-east" / "G2"
    assert (g2 / "G2.bam").exists() and not (g2 / "G2.cram").exists()
    assert (g2 / "G2_R1.fastq.gz").exists()  # its cover never came: the FASTQ stays
    monkeypatch.delenv("WGSVAULT_FAULT")
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
    assert s.failed == {} and not (g2 / "G2.bam").exists()
    check_intact(e)


def test_undo_and_purge(estate: Estate) -> None:
    import datetime as dt

    e = estate
    approve_all(e)
    apply_plan(e.catalog, e.plan, registry=e.registry, actor="test", quarantine_days=30)
    assert purge(e.catalog, actor="test").purged == 0  # nothing expired yet
    back = undo(e.catalog, "G1", actor="test")
    assert back and all(sha(p) == e.digests[str(p)] for p in back if p.is_file())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    r = purge(e.catalog, actor="test", now=later)
    assert r.purged > 0
    assert not list((e.root / ".wgsvault-quarantine").rglob("G2.bam"))
    assert (e.root / "region-east" / "G1" / "G1.bam").exists()  # undone, not purged
    assert audit.verify(e.catalog).ok


def test_concurrent_applies_do_not_overlap(tmp_path: Path, pg_database: str) -> None:
    e = build_estate(tmp_path, pg_database)
    approve_all(e)
    env = {**os.environ, "WGSVAULT_HOME": str(e.home), "WGSVAULT_CATALOG": pg_database}
    cmd = [sys.executable, "-m", "wgsvault", "apply", str(e.plan)]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with e.catalog.session() as s:
        rows = list(s.query(Quarantine))
    paths = [q.original_path for q in rows]
    assert len(paths) == len(set(paths))  # no file quarantined twice
    from wgsvault.catalog.models import JournalEntry

    with e.catalog.session() as s:
        starts = [(j.action_id, j.step) for j in s.query(JournalEntry) if j.state == "started"]
    assert len(starts) == len(set(starts))  # no step started by both runs
    check_intact(e)
    e.catalog.close()


def test_apply_commands(tmp_path: Path) -> None:
    e = build_estate(tmp_path, f"sqlite:///{tmp_path / 'home' / 'catalog.sqlite'}")
    e.catalog.close()
    home = e.home
    res = run_cli("apply", str(e.plan), home=home, check=False)
    assert res.returncode == 5 and "not approved" in res.stderr
    run_cli(
        "approve",
        str(e.plan),
        "--controller",
        "region-east",
        "--by",
        "dr. x",
        "--reference",
        "C-9",
        home=home,
    )
    out = run_cli("apply", str(e.plan), "--jobs", "2", home=home).stdout
    assert "0 failed" in out and "freed" in out
    verified = run_cli("audit", "verify", home=home).stdout
    assert "audit log intact" in verified
    head = verified.split("head ")[1].split()[0]  # SEQ:HASH, to keep outside the database
    assert "audit log intact" in run_cli("audit", "verify", "--anchor", head, home=home).stdout
    import sqlite3

    with sqlite3.connect(home / "catalog.sqlite") as db:  # cut the tail and rewind the head
        seq = int(head.split(":")[0])
        prev = db.execute("SELECT hash FROM audit WHERE seq = ?", (seq - 1,)).fetchone()[0]
        db.execute("DELETE FROM audit WHERE seq = ?", (seq,))
        db.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq - 1, prev))
    assert "audit log intact" in run_cli("audit", "verify", home=home).stdout  # undetectable...
    res = run_cli("audit", "verify", "--anchor", head, home=home, check=False)
    assert res.returncode == 4  # ...except against the anchor
    shown = run_cli("audit", "show", "--genome", "G2", "--json", home=home).stdout
    assert '"event": "quarantine"' in shown
    st = run_cli("status", str(e.plan), "--all", home=home).stdout
    assert "done" in st


def test_status_lists_blocked_actions_of_a_plan(tmp_path: Path) -> None:
    e = build_estate(tmp_path, f"sqlite:///{tmp_path / 'home' / 'catalog.sqlite'}", policy="C")
    e.catalog.close()
    st = run_cli("status", str(e.plan), home=e.home).stdout
    assert "blocked" in st and "national database" in st  # G2 never reached the national copy
