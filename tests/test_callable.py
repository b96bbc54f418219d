"""Callable regions: extraction from real gVCFs (pysam-written), the BED contract, the depth
fallback on real reads, and the plan/apply precondition that keeps them before a gVCF goes."""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pysam
import pytest
from rich.console import Console
from sqlalchemy import select
from test_apply import Estate, approve_all, build_estate, check_intact, sha
from test_plan import planned, regional

from wgsvault import audit
from wgsvault.apply import apply_plan
from wgsvault.apply.callable import register_callable
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import File, Genome, Proof, Quarantine
from wgsvault.codec import callable_depth
from wgsvault.codec import callable_regions as cr
from wgsvault.errors import InputError, PolicyError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.plan.planner import make_plan
from wgsvault.plan.policy import load_policy
from wgsvault.report import render

from conftest import shared, unavailable


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


FORMATS = (
    ("GT", "1", "String"),
    ("GQ", "1", "Integer"),
    ("DP", "1", "Integer"),
    ("MIN_DP", "1", "Integer"),
    ("AD", "R", "Integer"),
)

#: (contig, pos 1-based, ref, alts, END or None, GT, GQ, DP, MIN_DP) of a hand-made gVCF
HAND = [
    ("chr1", 1, "A", ("<NON_REF>",), 100, (0, 0), 30, 15, 12),  # block: [0,100)
    ("chr1", 101, "C", ("<NON_REF>",), 150, (0, 0), 10, 25, 20),  # GQ 10: not callable
    ("chr1", 151, "A", ("G", "<NON_REF>"), None, (0, 1), 99, 30, None),  # SNV: [150,151)
    ("chr1", 152, "T", ("<NON_REF>",), 200, (0, 0), 50, 30, 8),  # MIN_DP 8 rules, not DP 30
    ("chr1", 201, "G", ("<NON_REF>",), 300, (0, 0), 40, 12, 10),  # [200,300)
    ("chr1", 301, "ACGT", ("A", "<NON_REF>"), None, (1, 1), 60, 20, None),  # del: [300,304)
    ("chr1", 302, "C", ("<NON_REF>",), 304, (0, 0), 3, 20, 20),  # under the deletion, low GQ
    ("chr1", 305, "T", ("<NON_REF>",), 400, (0, 0), 99, 35, 30),  # [304,400): merges to 200-400
    ("chr1", 401, "A", ("C", "<NON_REF>"), None, (0, 1), None, 30, None),  # no GQ: not callable
    ("chr1", 402, "G", ("<NON_REF>",), 500, (0, 0), 20, 10, 10),  # thresholds inclusive
    ("chr2", 1, "A", ("<NON_REF>",), 50, (0, 0), 25, 12, None),  # no MIN_DP: DP decides
    ("chr2", 51, "C", ("T", "<NON_REF>"), None, (0, 1), 99, 9, None),  # DP 9: not callable
    ("chrX", 10, "G", ("A", "<NON_REF>"), None, (1,), 20, 10, None),  # haploid call, callable
]
EXPECTED = [
    ("chr1", 0, 100),
    ("chr1", 150, 151),
    ("chr1", 200, 400),
    ("chr1", 401, 500),
    ("chr2", 0, 50),
    ("chrX", 9, 10),
]
Record = tuple[
    str, int, str, tuple[str, ...], int | None, tuple[int, ...], int | None, int, int | None
]


def write_gvcf(
    path: Path,
    records: list[Record],
    *,
    contigs: tuple[tuple[str, int], ...] = (("chr1", 1000), ("chr2", 1000), ("chrX", 1000)),
    formats: tuple[tuple[str, str, str], ...] = FORMATS,
    samples: tuple[str, ...] = ("G1",),
) -> Path:
    """A bgzipped, tabix-indexed gVCF written with pysam (GATK's fields) at `path` (.g.vcf.gz)."""
    header = pysam.VariantHeader()
    for name, length in contigs:
        header.contigs.add(name, length=length)
    header.add_meta("ALT", items=[("ID", "NON_REF"), ("Description", "Any other allele")])
    header.add_meta(
        "INFO", items=[("ID", "END"), ("Number", 1), ("Type", "Integer"), ("Description", "End")]
    )
    ids = {f[0] for f in formats}
    for fid, number, ftype in formats:
        header.formats.add(fid, number, ftype, fid)
    for s in samples:
        header.add_sample(s)
    plain = path.with_suffix("")  # x.g.vcf
    with pysam.VariantFile(str(plain), "w", header=header) as out:
        for chrom, pos, ref, alts, end, gt, gq, dp, min_dp in records:
            stop = end if end is not None else pos - 1 + len(ref)
            rec = out.new_record(contig=chrom, start=pos - 1, stop=stop, alleles=(ref, *alts))
            for s in samples:
                rec.samples[s]["GT"] = gt
                if "GQ" in ids and gq is not None:
                    rec.samples[s]["GQ"] = gq
                if "DP" in ids:
                    rec.samples[s]["DP"] = dp
                if "MIN_DP" in ids and min_dp is not None:
                    rec.samples[s]["MIN_DP"] = min_dp
            out.write(rec)
    return Path(pysam.tabix_index(str(plain), preset="vcf", force=True))


def bed_lines(path: Path) -> list[tuple[str, int, int]]:
    return list(cr.read(path))


def test_extract_hand_made_gvcf(tmp_path: Path) -> None:
    gvcf = write_gvcf(tmp_path / "G1.g.vcf.gz", HAND)
    out = cr.callable_path(gvcf)
    assert out == tmp_path / "G1.callable.bed.gz"
    s = cr.extract(gvcf, out)
    assert bed_lines(out) == EXPECTED
    assert (s.intervals, s.bases) == (len(EXPECTED), sum(e - b for _, b, e in EXPECTED))
    assert s.records == 8 and s.method == "gvcf" and s.contigs == ["chr1", "chr2", "chrX"]
    assert s.thresholds == {"min_gq": 20, "min_dp": 10}
    import hashlib

    assert s.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert s.source_sha256 == hashlib.sha256(gvcf.read_bytes()).hexdigest()
    with gzip.open(out, "rt") as fh:
        first = fh.readline()
    assert first == (
        f"#wgsvault-callable v1 source=G1.g.vcf.gz sha256={s.source_sha256} "
        "min_gq=20 min_dp=10 method=gvcf\n"
    )
    assert cr.read_header(out)["method"] == "gvcf"
    again = cr.summarise(out)
    assert (again.intervals, again.bases, again.sha256) == (s.intervals, s.bases, s.sha256)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    gvcf = write_gvcf(tmp_path / "G1.g.vcf.gz", HAND)
    s = cr.extract(gvcf, tmp_path / "strict.callable.bed.gz", min_gq=30, min_dp=12)
    assert bed_lines(s.path) == [("chr1", 0, 100), ("chr1", 150, 151), ("chr1", 300, 400)]
    assert cr.read_header(s.path) | {"sha256": ""} == {
        "format": "wgsvault-callable v1",
        "source": "G1.g.vcf.gz",
        "sha256": "",
        "min_gq": "30",
        "min_dp": "12",
        "method": "gvcf",
    }


def test_independent_readers_accept_the_bed(tmp_path: Path) -> None:
    tabix, bgzip = shutil.which("tabix"), shutil.which("bgzip")
    if tabix is None or bgzip is None:
        unavailable("Debian tabix/bgzip are not installed (apt-get install tabix)")
    gvcf = write_gvcf(tmp_path / "G1.g.vcf.gz", HAND)
    out = cr.extract(gvcf, tmp_path / "G1.callable.bed.gz").path
    subprocess.run([bgzip, "-t", str(out)], check=True)
    listed = subprocess.run([tabix, "-l", str(out)], check=True, capture_output=True, text=True)
    assert listed.stdout.split() == ["chr1", "chr2", "chrX"]
    hit = subprocess.run(
        [tabix, str(out), "chr1:151-151"], check=True, capture_output=True, text=True
    )
    assert hit.stdout == "chr1\t150\t151\n"
    miss = subprocess.run(
        [tabix, str(out), "chr1:101-150"], check=True, capture_output=True, text=True
    )
    assert miss.stdout == ""


def _random_gvcf(rng: random.Random) -> tuple[list[Record], dict[str, set[int]]]:
    """Random GATK-like records and, by brute force, the set of callable positions (0-based)."""
    records: list[Record] = []
    truth: dict[str, set[int]] = {}
    for chrom in ("chr1", "chr2", "chrX"):
        pos, called = 1, truth.setdefault(chrom, set())
        while pos < 900:
            gq = rng.choice([None, 0, 5, 19, 20, 21, 45, 99])
            dp = rng.randint(0, 40)
            if rng.random() < 0.2:
                ref = "A" * rng.choice([1, 1, 1, 3])
                rec: Record = (chrom, pos, ref, ("C", "<NON_REF>"), None, (0, 1), gq, dp, None)
                span = range(pos - 1, pos - 1 + len(ref))
                depth = dp
                nxt = pos + 1  # the next record may start under a deletion, as GATK's do
            else:
                end = min(999, pos + rng.randint(0, 60))
                mdp = rng.choice([None, max(0, dp - rng.randint(0, 10))])
                rec = (chrom, pos, "A", ("<NON_REF>",), end, (0, 0), gq, dp, mdp)
                span = range(pos - 1, end)
                depth = dp if mdp is None else mdp
                nxt = end + 1 + rng.choice([0, 0, 0, 5])  # sometimes a gap with no record
            if gq is not None and gq >= 20 and depth >= 10:
                called.update(span)
            records.append(rec)
            pos = nxt
    return records, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_gvcfs_match_brute_force(tmp_path: Path, seed: int) -> None:
    records, truth = _random_gvcf(random.Random(seed))
    gvcf = write_gvcf(tmp_path / "R.g.vcf.gz", records)
    out = cr.extract(gvcf, tmp_path / "R.callable.bed.gz")
    got: dict[str, set[int]] = {c: set() for c in truth}
    last: tuple[str, int] | None = None
    for chrom, start, end in cr.read(out.path):
        assert start < end
        if last is not None and last[0] == chrom:
            assert start > last[1]  # sorted, merged: never adjacent or overlapping
        last = (chrom, end)
        got[chrom].update(range(start, end))
    assert got == truth
    assert out.bases == sum(len(v) for v in truth.values())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("zeros", "not a gVCF file"),
        ("truncated", "truncated"),
        ("flipped", "not a readable gVCF|no callable regions written"),
        ("no_gq", "no FORMAT/GQ"),
        ("two_samples", "holds 2 samples"),
        ("unsorted", "not sorted"),
        ("late_damage", "no callable regions written"),  # header fine, a later block broken
    ],
)
def test_bad_gvcf_writes_nothing(tmp_path: Path, damage: str, message: str) -> None:
    gvcf = tmp_path / "G1.g.vcf.gz"
    if damage == "no_gq":
        write_gvcf(gvcf, HAND, formats=tuple(f for f in FORMATS if f[0] != "GQ"))
    elif damage == "two_samples":
        write_gvcf(gvcf, HAND, samples=("A", "B"))
    elif damage == "unsorted":
        big = tmp_path / "big.g.vcf.gz"
        write_gvcf(big, HAND)
        # a gVCF whose records go back to a contig already left
        text = gzip.decompress(big.read_bytes()).decode()
        head = [ln for ln in text.splitlines() if ln.startswith("#")]
        body = [ln for ln in text.splitlines() if not ln.startswith("#")]
        body.append("chr1\t900\t.\tA\t<NON_REF>\t.\t.\tEND=950\tGT:GQ:DP:MIN_DP\t0/0:99:30:30")
        plain = tmp_path / "G1.g.vcf"
        plain.write_text("\n".join(head + body) + "\n")
        pysam.tabix_compress(str(plain), str(gvcf), force=True)
    elif damage == "late_damage":
        blocks: list[Record] = [
            ("chr1", p, "A", ("<NON_REF>",), p, (0, 0), 99, 30, 30) for p in range(1, 6001)
        ]
        write_gvcf(gvcf, blocks, contigs=(("chr1", 10_000),))
        data = bytearray(gvcf.read_bytes())
        at = len(data) * 4 // 5
        data[at : at + 200] = bytes(b ^ 0x5A for b in data[at : at + 200])
        gvcf.write_bytes(bytes(data))
    else:
        write_gvcf(gvcf, HAND)
        data = bytearray(gvcf.read_bytes())
        if damage == "zeros":
            data = bytearray(len(data))
        elif damage == "truncated":
            data = data[: len(data) * 2 // 3]
        else:
            data[len(data) // 2] ^= 0x55
        gvcf.write_bytes(bytes(data))
    out = tmp_path / "G1.callable.bed.gz"
    with pytest.raises(InputError, match=message) as exc:
        cr.extract(gvcf, out)
    assert str(gvcf) in str(exc.value) and "\n" not in str(exc.value)
    assert not out.exists() and not Path(f"{out}.tbi").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_read_refuses_other_files(tmp_path: Path) -> None:
    other = tmp_path / "x.callable.bed.gz"
    other.write_bytes(gzip.compress(b"chr1\t0\t10\n"))
    with pytest.raises(InputError, match="not a callable-regions file"):
        list(cr.read(other))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("G1.g.vcf.gz", "G1.callable.bed.gz"),
        ("G1.gvcf.gz", "G1.callable.bed.gz"),
        ("G1.hard-filtered.gvcf.gz", "G1.hard-filtered.callable.bed.gz"),
        ("NA12878.g.vcf", "NA12878.callable.bed.gz"),
        ("G1.cram", "G1.callable.bed.gz"),
    ],
)
def test_callable_path(name: str, expected: str) -> None:
    assert cr.callable_path(Path("/d") / name) == Path("/d") / expected


# ---------------------------------------------------------------- depth-only approximation


def test_from_depth_on_real_reads(tmp_path: Path) -> None:
    if shutil.which("mosdepth") is None:
        unavailable("Debian mosdepth is not installed (apt-get install mosdepth)")
    bam = shared("real", "NA12878_chr20_region.bam")
    ref = shared("real", "chr20_region.fa")
    cram = tmp_path / "NA12878.cram"
    pysam.view("-C", "-T", str(ref), "-o", str(cram), str(bam), catch_stdout=False)
    pysam.index(str(cram))
    s = callable_depth.from_depth(cram, cr.callable_path(cram), fasta=ref, min_dp=3, min_mapq=20)
    assert s.path == tmp_path / "NA12878.callable.bed.gz" and s.method == "depth"
    head = cr.read_header(s.path)
    assert head["method"] == "depth" and head["min_dp"] == "3" and head["min_mapq"] == "20"
    assert head["source"] == "NA12878.cram"
    got = {(c, p) for c, b, e in cr.read(s.path) for p in range(b, e)}
    assert got and s.bases == len(got)
    # oracle: per-base depth by pysam (htslib's pileup, mapq >= 20, the same read filters)
    want: set[tuple[str, int]] = set()
    with pysam.AlignmentFile(str(bam)) as fh:
        for contig in fh.references:
            counts = fh.count_coverage(contig, quality_threshold=0, read_callback=_mosdepth_reads)
            for i in range(len(counts[0])):
                if sum(c[i] for c in counts) >= 3:
                    want.add((contig, i))
    # mosdepth counts a base covered by both mates once and counts deletions; pysam's pileup
    # counts bases: the two agree on all but a sliver of positions
    assert len(got ^ want) <= 0.02 * len(want)


def _mosdepth_reads(read: pysam.AlignedSegment) -> bool:
    return read.mapping_quality >= 20 and not (read.flag & 1796)


def test_from_depth_refuses_a_file_that_is_not_alignments(tmp_path: Path) -> None:
    bad = tmp_path / "G1.cram"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="not a CRAM or BAM file"):
        callable_depth.from_depth(bad, tmp_path / "G1.callable.bed.gz")
    assert not (tmp_path / "G1.callable.bed.gz").exists()


# ------------------------------------------------------------------ the plan's precondition


def _gvcf_action(plan: dict[str, Any], genome: str = "G1") -> dict[str, Any]:
    return next(a for a in plan["actions"] if a["type"] == "gvcf" and a["genome"] == genome)


@pytest.mark.parametrize("policy", ["A", "B", "C"])
def test_plan_shows_the_callable_precondition(
    catalog: Catalog, tmp_path: Path, policy: str
) -> None:
    plan = planned(catalog, tmp_path, regional("G1"), policy)
    act = _gvcf_action(plan)
    assert act["action"] == "delete" and act["status"] == "ready"
    (pc,) = [c for c in act["preconditions"] if c["kind"] == "callable"]
    assert pc["status"] == "verify" and pc["check"] == "callable"
    assert (pc["min_gq"], pc["min_dp"]) == (20, 10)
    assert "extracted from this gVCF and registered before it goes" in pc["text"]
    if policy == "A":  # the savings of scenario A stay what they were (64 %)
        assert 63.9 < plan["summary"]["pct_freed"] < 64.1
    console = Console(file=io.StringIO(), width=200)
    console.print(render.plan_table(plan))
    assert "apply proves first:" in console.file.getvalue()  # type: ignore[attr-defined]
    assert "callable regions stored before a gVCF goes: 1" in console.file.getvalue()  # type: ignore[attr-defined]


def test_plan_precondition_met_by_a_stored_callable_file(catalog: Catalog, tmp_path: Path) -> None:
    tree = regional("G1") | {
        "region-east/G1/G1.callable.bed.gz": 3_000_000,
        "region-east/G1/G1.callable.bed.gz.tbi": 20_000,
    }
    for policy in ("A", "B", "C"):
        plan = planned(catalog, tmp_path, tree, policy)
        (pc,) = [c for c in _gvcf_action(plan)["preconditions"] if c["kind"] == "callable"]
        bed = str(tmp_path / "estate/region-east/G1/G1.callable.bed.gz")
        assert pc["status"] == "met" and pc["evidence"] == [bed]
        # no preset ever lets callable regions go
        assert all(a["type"] != "callable" for a in plan["actions"])
        assert all(bed not in [f["path"] for f in a["files"]] for a in plan["actions"])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('types = ["bam"]\nrequire = [{ kind = "callable" }]', "gvcf only"),
        ('types = ["gvcf"]\nrequire = [{ kind = "callable", types = ["vcf"] }]', "leave out"),
        ('types = ["gvcf"]\nrequire = [{ kind = "callable", min_gq = -1 }]', "min_gq"),
    ],
)
def test_bad_callable_requirement(tmp_path: Path, rule: str, message: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(f'name = "x"\n[[rule]]\naction = "delete"\n{rule}\n')
    with pytest.raises(PolicyError, match=message):
        load_policy(str(f))


# --------------------------------------------------------------------- apply, on real files


def _events(e: Estate, genome: str) -> list[dict[str, Any]]:
    return [r for r in audit.show(e.catalog, genome=genome) if r["event"] != "apply_start"]


def test_apply_extracts_before_the_gvcf_goes(tmp_path: Path, catalog_url: str) -> None:
    e = build_estate(tmp_path, catalog_url, policy="A")
    try:
        approve_all(e)
        s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
        assert s.failed == {}, s.failed
        for gid in ("G1", "G2"):
            d = e.root / "region-east" / gid
            gvcf, bed = d / f"{gid}.g.vcf.gz", d / f"{gid}.callable.bed.gz"
            assert not gvcf.exists() and bed.exists() and Path(f"{bed}.tbi").exists()
            (kept,) = (e.root / ".wgsvault-quarantine").rglob(gvcf.name)
            head = cr.read_header(bed)
            assert head["sha256"] == sha(kept) and head["method"] == "gvcf"
            with pysam.VariantFile(str(kept)) as vf:
                contig = next(iter(vf.header.contigs.values()))
            assert list(cr.read(bed)) == [(contig.name, 0, contig.length)]  # GQ 99, DP 30
            with e.catalog.session() as ss:
                row = ss.scalars(select(File).where(File.path == str(bed))).one()
                assert (row.type, row.status, row.sha256) == ("callable", "present", sha(bed))
                tbi = ss.scalars(select(File).where(File.path == f"{bed}.tbi")).one()
                assert (tbi.type, tbi.unit) == ("index", str(bed))
                proof = ss.scalars(select(Proof).where(Proof.file_id == row.id)).one()
                doc = json.loads(proof.document)
                assert proof.kind == "gvcf->callable" and doc["thresholds"]["min_gq"] == 20
                assert doc["inputs"][0]["sha256"] == sha(kept)
                assert doc["output"]["sha256"] == sha(bed) and doc["bases"] == contig.length
                q = ss.scalars(select(Quarantine).where(Quarantine.original_path == str(gvcf)))
                quarantined_at = q.one().quarantined_at
                assert proof.created_at <= quarantined_at
            # the audit log says so in order: registered, then the gVCF quarantined
            events = [(r["event"], str(r["detail"])) for r in _events(e, gid)]
            reg = next(i for i, (ev, d) in enumerate(events) if ev == "register" and str(bed) in d)
            moved = next(
                i for i, (ev, d) in enumerate(events) if ev == "quarantine" and str(gvcf) in d
            )
            assert reg < moved
        check_intact(e)
        rescan = scan(e.catalog, [str(e.root)], DEFAULT_LAYOUT)
        assert (rescan.added, rescan.changed, rescan.vanished) == (0, 0, 0)
        assert audit.verify(e.catalog).ok
        # a new plan: the gVCFs are gone, the callable regions stay (no preset deletes them)
        again = make_plan(e.catalog, load_policy("C"), price=1.0)
        assert all(a["type"] != "callable" for a in again["actions"])
    finally:
        e.catalog.close()


def test_corrupt_gvcf_stays(tmp_path: Path, sqlite_url: str) -> None:
    def corrupt(root: Path, _ref: Path) -> None:
        gvcf = root / "region-east" / "G1" / "G1.g.vcf.gz"
        data = bytearray(gvcf.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0x5A
        gvcf.write_bytes(bytes(data))

    e = build_estate(tmp_path, sqlite_url, policy="A", prepare=corrupt)
    try:
        approve_all(e)
        s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
        g1 = e.root / "region-east" / "G1"
        assert (g1 / "G1.g.vcf.gz").exists()  # kept, and reported
        (why,) = [w for w in s.failed.values() if "G1.g.vcf.gz" in w]
        assert "\n" not in why
        assert not list(g1.glob("*callable*")) and not list(g1.glob(".G1.callable*"))
        # the other genome's gVCF went, after its regions were stored
        g2 = e.root / "region-east" / "G2"
        assert not (g2 / "G2.g.vcf.gz").exists() and (g2 / "G2.callable.bed.gz").exists()
        check_intact(e)
    finally:
        e.catalog.close()


def test_stored_regions_of_this_gvcf_are_not_extracted_again(
    tmp_path: Path, sqlite_url: str
) -> None:
    made: dict[str, float] = {}

    def extract_first(root: Path, _ref: Path) -> None:
        g1 = root / "region-east" / "G1"
        cr.extract(g1 / "G1.g.vcf.gz", g1 / "G1.callable.bed.gz")
        made["mtime"] = (g1 / "G1.callable.bed.gz").stat().st_mtime_ns
        # G2's is from depth only: it never stands in for the gVCF's own regions
        g2 = root / "region-east" / "G2"
        text = "#wgsvault-callable v1 source=G2.bam sha256=0 min_dp=10 min_mapq=20 method=depth\n"
        with pysam.BGZFile(str(g2 / "G2.callable.bed.gz"), "wb", index=None) as fh:
            fh.write(text.encode())
        pysam.tabix_index(str(g2 / "G2.callable.bed.gz"), preset="bed", force=True)

    e = build_estate(tmp_path, sqlite_url, policy="A", prepare=extract_first)
    try:
        plan = json.loads(e.plan.read_text())
        for gid in ("G1", "G2"):
            (pc,) = [c for c in _gvcf_action(plan, gid)["preconditions"] if c["kind"] == "callable"]
            assert pc["status"] == "met"
        approve_all(e)
        s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="test")
        assert s.failed == {}, s.failed
        bed1 = e.root / "region-east" / "G1" / "G1.callable.bed.gz"
        assert bed1.stat().st_mtime_ns == made["mtime"]  # its own: kept as it was
        bed2 = e.root / "region-east" / "G2" / "G2.callable.bed.gz"
        assert cr.read_header(bed2)["method"] == "gvcf"  # replaced by the gVCF's regions
        for p in (bed2, Path(f"{bed2}.tbi")):
            del e.digests[str(p)]  # the vault's own derived file, replaced on purpose
        check_intact(e)
        rescan = scan(e.catalog, [str(e.root)], DEFAULT_LAYOUT)
        assert (rescan.added, rescan.changed, rescan.vanished) == (0, 0, 0)
    finally:
        e.catalog.close()


def test_register_callable(tmp_path: Path, catalog_url: str) -> None:
    e = build_estate(tmp_path, catalog_url, policy="A")
    try:
        g1 = e.root / "region-east" / "G1"
        summary = cr.extract(g1 / "G1.g.vcf.gz", g1 / "G1.callable.bed.gz", min_gq=30)
        fid = register_callable(e.catalog, "G1", summary.path, summary, actor="test")
        assert register_callable(e.catalog, "G1", summary.path, summary, actor="test") == fid
        with e.catalog.session() as ss:
            row = ss.get(File, fid)
            assert row is not None and (row.type, row.sha256) == ("callable", summary.sha256)
            assert ss.get(Genome, row.genome_id).name == "G1"  # type: ignore[union-attr]
            assert ss.scalars(select(File).where(File.unit == str(summary.path))).all()
            kinds = {p.kind for p in ss.scalars(select(Proof).where(Proof.file_id == fid))}
            assert kinds == {"gvcf->callable"}
        rescan = scan(e.catalog, [str(e.root)], DEFAULT_LAYOUT)
        assert (rescan.added, rescan.changed, rescan.vanished) == (0, 0, 0)
        assert any(r["event"] == "register" for r in audit.show(e.catalog, genome="G1"))
        assert audit.verify(e.catalog).ok
        with pytest.raises(InputError, match="no such genome"):
            register_callable(e.catalog, "G9", summary.path, summary)
        # the plan now finds it: the precondition is met
        plan = make_plan(e.catalog, load_policy("A"), price=1.0)
        (pc,) = [c for c in _gvcf_action(plan)["preconditions"] if c["kind"] == "callable"]
        assert pc["status"] == "met" and pc["evidence"] == [str(summary.path)]
    finally:
        e.catalog.close()
