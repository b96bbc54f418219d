"""Every data-safety guard, each proven by a test that fails when the guard is removed.

The paths that run only when something goes wrong: scenario C end to end (identical copies go,
different bytes stay), a failed proof that must leave nothing landed, FASTQ -> unaligned CRAM in
apply, a CRAM that does not cover its FASTQ, refusals to overwrite (quarantine, restore), purge
and undo when the disk disagrees with the catalog, stale-lock take-over, and a block asked for
after its file changed. `tests/safety_mutants.py` switches each guard off and checks that these
tests (and the others it names) catch it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from test_apply import Estate, approve_all, build_estate, check_intact, sha

from wgsvault import audit
from wgsvault.apply import apply_plan
from wgsvault.apply.locks import GenomeLocks
from wgsvault.apply.quarantine import move, purge, target_for, undo
from wgsvault.catalog.models import GenomeLock, Quarantine
from wgsvault.codec import convert as codec_convert
from wgsvault.codec import htslib
from wgsvault.codec.convert import convert_bam
from wgsvault.codec.covers_restore import restore_fastq
from wgsvault.codec.restore import restore
from wgsvault.codec.verify import record_checksums
from wgsvault.demo.synth import write_genome
from wgsvault.errors import InputError, IntegrityError
from wgsvault.serve import Settings, create_app

from served import build_store, free_port, running


def _apply(e: Estate) -> Any:
    approve_all(e)
    return apply_plan(e.catalog, e.plan, registry=e.registry, actor="guard-test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


# ------------------------------------------------------------------- scenario C, end to end


def test_policy_c_lets_identical_copies_go_and_keeps_different_ones(
    tmp_path: Path, catalog_url: str
) -> None:
    def national_vcf_differs(root: Path, _ref: Path) -> None:
        nat = root / "national" / "G1" / "G1.vcf.gz"
        data = bytearray(nat.read_bytes())
        data[len(data) // 2] ^= 0x40  # the same size, other bytes: only sha256 can tell
        nat.write_bytes(bytes(data))

    e = build_estate(tmp_path, catalog_url, policy="C", prepare=national_vcf_differs)
    g1, nat = e.root / "region-east" / "G1", e.root / "national" / "G1"
    s = _apply(e)
    assert not (g1 / "G1.cram").exists()  # the national database holds the same bytes
    (kept_cram,) = (e.root / ".wgsvault-quarantine").rglob("G1.cram")
    assert sha(kept_cram) == sha(nat / "G1.cram")
    assert (g1 / "G1.vcf.gz").exists()  # other bytes in the national copy: stays, reported
    assert [why for why in s.failed.values() if "G1.vcf.gz: differs from" in why]
    assert "(sha256); kept" in next(iter(s.failed.values()))
    # the regional FASTQ went only with its reads provable from the copy that stays
    assert not (g1 / "G1_R1.fastq.gz").exists()
    sidecar = nat / "G1.fastq.wgsvault-sidecar"
    assert sidecar.exists()
    (r1_orig,) = (e.root / ".wgsvault-quarantine").rglob("G1_R1.fastq.gz")
    with htslib.reference_env(e.registry.cache):
        r1, _ = restore_fastq(nat / "G1.cram", sidecar, tmp_path / "back", keep_order=True)
    assert gzip.decompress(r1.read_bytes()) == gzip.decompress(r1_orig.read_bytes())
    check_intact(e)
    assert audit.verify(e.catalog).ok
    e.catalog.close()


# ------------------------------------------------------------- conversions and their proofs


def _failing_alignment_proof(real: Any) -> Any:
    def prove(*args: Any, **kwargs: Any) -> dict[str, Any]:
        proof: dict[str, Any] = real(*args, **kwargs)
        return {**proof, "ok": False, "failure": "record checksums differ (injected)"}

    return prove


def test_failed_bam_proof_lands_nothing(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = build_estate(tmp_path, sqlite_url)
    g2 = e.root / "region-east" / "G2"
    monkeypatch.setattr(
        codec_convert, "prove_alignment", _failing_alignment_proof(codec_convert.prove_alignment)
    )
    out = tmp_path / "direct.cram"
    with pytest.raises(IntegrityError, match="not proven"):
        convert_bam(g2 / "G2.bam", out, registry=e.registry, build="synth31")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(("direct", ".direct"))] == []
    s = _apply(e)  # inside apply: the BAM stays, no CRAM appears, and nothing it would cover goes
    assert any("not proven" in why for why in s.failed.values())
    assert (g2 / "G2.bam").exists() and not (g2 / "G2.cram").exists()
    assert not list(g2.glob(".G2.cram*")) and not (g2 / "G2.cram.proof.json").exists()
    assert (g2 / "G2_R1.fastq.gz").exists()
    check_intact(e)
    e.catalog.close()


def test_fastq_without_any_alignment_becomes_unaligned_cram(
    tmp_path: Path, sqlite_url: str
) -> None:
    def fastq_only(root: Path, ref: Path) -> None:
        g = write_genome(root / "region-east" / "G3", "G3", ref, seed=3, n_pairs=200)
        for p in (g.bam, Path(f"{g.bam}.bai"), g.cram, Path(f"{g.cram}.crai")):
            p.unlink()

    e = build_estate(tmp_path, sqlite_url, prepare=fastq_only)
    g3 = e.root / "region-east" / "G3"
    names = ("G3_R1.fastq.gz", "G3_R2.fastq.gz")
    originals = {n: gzip.decompress((g3 / n).read_bytes()) for n in names}
    s = _apply(e)
    assert s.failed == {}
    cram = g3 / "G3.unaligned.cram"
    assert cram.exists() and (g3 / "G3.unaligned.cram.proof.json").exists()
    assert not (g3 / "G3_R1.fastq.gz").exists() and not (g3 / "G3_R2.fastq.gz").exists()
    outs = restore(cram, "fastq", tmp_path / "G3", registry=e.registry)
    assert [gzip.decompress(o.read_bytes()) for o in outs] == list(originals.values())
    check_intact(e)
    e.catalog.close()


def test_cram_that_does_not_cover_the_fastq_keeps_it(tmp_path: Path, sqlite_url: str) -> None:
    def drop_some_reads(root: Path, ref: Path) -> None:
        g1 = root / "region-east" / "G1"
        cram = g1 / "G1.cram"
        # an aligned CRAM of all but every 50th read (by name hash): it covers not every read
        htslib.run(
            ["view", "-C", "-T", str(ref), "--subsample", "0.98", "--subsample-seed", "7",
             "-o", str(cram), str(g1 / "G1.bam")],
            cache=None, what="test",
        )  # fmt: skip
        Path(f"{cram}.crai").unlink()
        htslib.run(["index", str(cram)], cache=None, what="test")

    e = build_estate(tmp_path, sqlite_url, prepare=drop_some_reads)
    g1 = e.root / "region-east" / "G1"
    s = _apply(e)
    assert (g1 / "G1_R1.fastq.gz").exists() and (g1 / "G1_R2.fastq.gz").exists()
    assert any("does not cover G1_R1.fastq.gz" in why for why in s.failed.values())
    assert not (g1 / "G1.fastq.wgsvault-sidecar").exists()
    assert (g1 / "G1.bam").exists()  # nor is the BAM let go for a CRAM that lacks its reads
    check_intact(e)
    e.catalog.close()


# ------------------------------------------------------------------- refusals to overwrite


def test_quarantine_never_overwrites(tmp_path: Path, sqlite_url: str) -> None:
    src, dst = tmp_path / "a.bam", tmp_path / "q" / "a.bam"
    src.write_bytes(b"original")
    dst.parent.mkdir()
    dst.write_bytes(b"already here")
    with pytest.raises(IntegrityError, match="exists already"):
        move(src, dst)
    assert src.read_bytes() == b"original" and dst.read_bytes() == b"already here"
    # inside apply: the original stays where it is, and the file in the way is untouched
    e = build_estate(tmp_path / "estate", sqlite_url)
    plan = e.plan.read_text()
    import json

    (bam_action,) = [a for a in json.loads(plan)["actions"] if a["unit"].endswith("G1.bam")]
    from wgsvault.apply import load_plan

    target = target_for(e.root, Path(bam_action["unit"]), load_plan(e.plan).sha256,
                        bam_action["id"])  # fmt: skip
    target.parent.mkdir(parents=True)
    target.write_bytes(b"in the way")
    s = _apply(e)
    assert any("exists already; refusing to overwrite" in why for why in s.failed.values())
    assert (e.root / "region-east" / "G1" / "G1.bam").exists()
    assert target.read_bytes() == b"in the way"
    e.catalog.close()


def test_restore_never_overwrites(tmp_path: Path, sqlite_url: str) -> None:
    e = build_estate(tmp_path, sqlite_url)
    _apply(e)
    g1, g2 = e.root / "region-east" / "G1", e.root / "region-east" / "G2"
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "G1_R1.fastq.gz"
    existing.write_bytes(b"keep me")
    with pytest.raises(InputError, match="exists already"):  # from an aligned CRAM + sidecar
        restore(g1 / "G1.cram", "fastq", out / "G1", registry=e.registry,
                sidecar=g1 / "G1.fastq.wgsvault-sidecar")  # fmt: skip
    assert existing.read_bytes() == b"keep me" and not (out / "G1_R2.fastq.gz").exists()
    unaligned = tmp_path / "G1.unaligned.cram"
    (r1,) = (e.root / ".wgsvault-quarantine").rglob("G1_R1.fastq.gz")
    (r2,) = (e.root / ".wgsvault-quarantine").rglob("G1_R2.fastq.gz")
    codec_convert.convert_fastq(r1, r2, unaligned)
    with pytest.raises(InputError, match="exists already"):  # from an unaligned CRAM
        restore(unaligned, "fastq", out / "G1", registry=e.registry)
    assert existing.read_bytes() == b"keep me"
    bam = out / "G2.bam"
    bam.write_bytes(b"keep me too")
    with pytest.raises(InputError, match="exists already"):
        restore(g2 / "G2.cram", "bam", bam, registry=e.registry)
    assert bam.read_bytes() == b"keep me too"
    e.catalog.close()


# ---------------------------------------------------------------- when disk and catalog differ


def test_purge_with_a_quarantined_file_already_gone(tmp_path: Path, sqlite_url: str) -> None:
    e = build_estate(tmp_path, sqlite_url)
    _apply(e)
    (gone,) = (e.root / ".wgsvault-quarantine").rglob("G1.bam")
    gone.unlink()
    assert purge(e.catalog, actor="t").purged == 0  # nothing expired: nothing deleted
    r = purge(e.catalog, actor="t", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=31))
    assert any("G1.bam: missing from quarantine" in p for p in r.problems)
    assert r.purged > 1 and not list((e.root / ".wgsvault-quarantine").rglob("*.gz"))
    with e.catalog.session() as s:
        assert {q.state for q in s.query(Quarantine)} == {"purged"}
    assert audit.verify(e.catalog).ok
    e.catalog.close()


def test_undo_never_overwrites_an_original_that_reappeared(
    tmp_path: Path, sqlite_url: str
) -> None:
    e = build_estate(tmp_path, sqlite_url)
    _apply(e)
    bam = e.root / "region-east" / "G2" / "G2.bam"
    bam.write_bytes(b"a new file under the old name")
    (quarantined,) = (e.root / ".wgsvault-quarantine").rglob("G2.bam")
    before = sha(quarantined)
    with pytest.raises(IntegrityError, match="exists again"):
        undo(e.catalog, "G2", actor="t")
    assert bam.read_bytes() == b"a new file under the old name"
    assert sha(quarantined) == before
    e.catalog.close()


def test_stale_lock_is_taken_over_by_age_only(sqlite_url: str) -> None:
    from wgsvault.catalog import open_catalog

    cat = open_catalog(sqlite_url)
    other = GenomeLocks(cat, "node-17.cluster:4242:run7")  # another host: its pid means nothing
    mine = GenomeLocks(cat, "here:1:run8")
    assert other.acquire("G1") is None
    assert mine.acquire("G1") == "node-17.cluster:4242:run7"  # fresh: refused
    with cat.session() as s:
        s.execute(
            update(GenomeLock).values(
                heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)
            )
        )
    assert mine.acquire("G1") is None  # no heartbeat for longer than stale_after: taken over
    assert mine.held() == [("G1", "here:1:run8")]
    assert other.acquire("G1") == "here:1:run8"
    cat.close()


# ------------------------------------------------------------------------ the access service


def test_block_of_a_file_changed_since_the_ticket_is_refused(tmp_path: Path) -> None:
    store = build_store(tmp_path)
    port = free_port()
    store.base = f"http://127.0.0.1:{port}"
    with running(create_app(Settings(store.catalog.url, store.home, store.base)), port):
        ticket = store.get("/reads/NGC1", format="CRAM").json()
        url = next(u["url"] for u in ticket["htsget"]["urls"] if u["url"].startswith("http"))
        assert httpx.get(url).status_code == 200
        data = bytearray(store.cram.read_bytes())
        data[100] ^= 1  # same size, other bytes (and a new mtime)
        store.cram.write_bytes(bytes(data))
        r = httpx.get(url)
        assert r.status_code == 404 and "changed since the ticket" in r.json()["htsget"]["message"]
        with open(store.cram, "ab") as fh:  # and a different size
            fh.write(b"\0")
        assert httpx.get(url).status_code == 404
    store.catalog.close()


def test_record_checksums_tell_a_changed_cram(tmp_path: Path, sqlite_url: str) -> None:
    """The checksum the BAM->CRAM proof relies on sees one changed base."""
    e = build_estate(tmp_path, sqlite_url)
    g1 = e.root / "region-east" / "G1"
    copy = tmp_path / "copy.bam"
    shutil.copy(g1 / "G1.bam", copy)
    assert record_checksums(copy, cache=None) == record_checksums(g1 / "G1.bam", cache=None)
    import pysam

    altered = tmp_path / "altered.bam"
    with pysam.AlignmentFile(str(copy)) as src, pysam.AlignmentFile(
        str(altered), "wb", template=src
    ) as dst:
        for i, rec in enumerate(src):
            if i == 5:
                seq = rec.query_sequence or ""
                q = rec.query_qualities
                rec.query_sequence = ("A" if seq[0] != "A" else "C") + seq[1:]
                rec.query_qualities = q
            dst.write(rec)
    assert record_checksums(altered, cache=None) != record_checksums(copy, cache=None)
    e.catalog.close()
