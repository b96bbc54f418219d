"""verify-covers: proofs that FASTQ ⊆ aligned CRAM, the sidecar, restoring FASTQ from both."""

from __future__ import annotations

import gzip
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dnaio
import numpy as np
import pysam
import pytest

from wgsvault.codec import (
    covers_batches,
    covers_scatter,
    covers_sort,
    covers_write,
    htslib,
    records,
)
from wgsvault.codec import sidecar as sidecar_fmt
from wgsvault.codec.covers import verify_covers
from wgsvault.codec.covers_restore import restore_fastq
from wgsvault.codec.records import canonical_key, order_key
from wgsvault.codec.sidecar import read as read_sidecar
from wgsvault.demo import synth
from wgsvault.errors import InputError, IntegrityError

from conftest import shared


@pytest.fixture(scope="module")
def genome(tmp_path_factory: pytest.TempPathFactory) -> synth.GenomeFiles:
    root = tmp_path_factory.mktemp("covers")
    ref = synth.write_reference(root / "ref.fa", seed=7)
    return synth.write_genome(root / "G1", "G1", ref, seed=1, n_pairs=400)


def _records(path: Path) -> list[tuple[str, str, str]]:
    with dnaio.open(path) as r:
        return [(rec.name, rec.sequence, rec.qualities) for rec in r]


def _write_fastq(path: Path, recs: list[tuple[str, str, str]]) -> Path:
    with dnaio.open(path, mode="w") as w:
        for name, seq, qual in recs:
            w.write(dnaio.SequenceRecord(name, seq, qual))
    return path


def _copy_alignments(
    src: Path, dst: Path, ref: Path, edit: Callable[[pysam.AlignedSegment], object]
) -> Path:
    """Write a CRAM copy of `src`, records passed through `edit` (falsy result: dropped)."""
    with (
        pysam.AlignmentFile(str(src), reference_filename=str(ref)) as inp,
        pysam.AlignmentFile(str(dst), "wc", template=inp, reference_filename=str(ref)) as out,
    ):
        for a in inp:
            if edit(a):
                out.write(a)
    return dst


def _gunzip(path: Path) -> bytes:
    with gzip.open(path) as fh:
        return fh.read()


# ------------------------------------------------------------------------------ synthetic data


def test_covered_restore_keep_order_and_canonical(genome: synth.GenomeFiles, tmp_path: Path):
    fq = [genome.fastq_r1, genome.fastq_r2]
    sc = tmp_path / "G1.sidecar"
    rep = verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc, keep_order=True)
    assert rep.covered, rep.reason
    assert (rep.fastq_records, rep.cram_primary_records, rep.matched) == (800, 800, 800)
    assert (rep.missing, rep.altered, rep.extra) == (0, 0, 0)
    assert rep.restore_verified and rep.order == "identity"
    assert sc.stat().st_size == rep.sidecar_bytes < 2000  # template comments: no per-read data
    assert rep.to_dict()["sha256"][str(genome.cram)] == read_sidecar(sc).cram_sha256

    outs = restore_fastq(
        genome.cram, sc, tmp_path / "ko" / "G1", reference=genome.reference, keep_order=True
    )
    assert [p.name for p in outs] == ["G1_R1.fastq.gz", "G1_R2.fastq.gz"]
    for out, orig in zip(outs, fq, strict=True):
        assert _gunzip(out) == _gunzip(orig)

    canon = restore_fastq(
        genome.cram, sc, tmp_path / "c" / "G1", reference=genome.reference, gzip=False
    )
    assert [p.name for p in canon] == ["G1_R1.fastq", "G1_R2.fastq"]
    for out, orig in zip(canon, fq, strict=True):
        got = _records(out)
        assert sorted(got) == sorted(_records(orig))  # every record, with its CASAVA comment
        keys = [canonical_key(n.split()[0]) for n, _, _ in got]
        assert keys == sorted(keys)
    assert not list((tmp_path / "c").glob(".*.tmp"))


def test_bam_is_accepted_without_reference(genome: synth.GenomeFiles):
    rep = verify_covers([genome.fastq_r1, genome.fastq_r2], genome.bam)
    assert rep.covered and rep.matched == 800 and rep.sidecar_path is None


def test_shuffled_fastq_keeps_order_via_permutation(genome: synth.GenomeFiles, tmp_path: Path):
    r1, r2 = _records(genome.fastq_r1), _records(genome.fastq_r2)
    perm = list(range(len(r1)))
    random.Random(3).shuffle(perm)
    fq = [
        _write_fastq(tmp_path / "S_R1.fastq.gz", [r1[i] for i in perm]),
        _write_fastq(tmp_path / "S_R2.fastq.gz", [r2[i] for i in perm]),
    ]
    sc = tmp_path / "S.sidecar"
    rep = verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc, keep_order=True)
    assert rep.covered and rep.order == "permutation"
    assert rep.sidecar_order_bytes > 300  # a random order of 400 pairs costs ~8.6 bits a pair
    outs = restore_fastq(
        genome.cram, sc, tmp_path / "R", reference=genome.reference, keep_order=True
    )
    for out, orig in zip(outs, fq, strict=True):
        assert _gunzip(out) == _gunzip(orig)

    # the same proof without order: smaller sidecar, and restore refuses keep_order
    sc2 = tmp_path / "S2.sidecar"
    rep2 = verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc2)
    assert rep2.covered and rep2.sidecar_bytes < rep.sidecar_bytes
    with pytest.raises(InputError, match="no record order"):
        restore_fastq(genome.cram, sc2, tmp_path / "X", reference=genome.reference, keep_order=True)
    assert not list(tmp_path.glob("X*"))


def test_trimmed_read_is_altered(genome: synth.GenomeFiles, tmp_path: Path):
    recs = _records(genome.fastq_r1)
    name, seq, qual = recs[5]
    recs[5] = (name, seq[:-10], qual[:-10])
    r1 = _write_fastq(tmp_path / "T_R1.fastq.gz", recs)
    sc = tmp_path / "T.sidecar"
    rep = verify_covers([r1, genome.fastq_r2], genome.cram, reference=genome.reference, sidecar=sc)
    assert not rep.covered
    assert (rep.altered, rep.missing, rep.extra, rep.matched) == (1, 0, 0, 799)
    bare = name.split()[0]
    assert rep.first_difference is not None
    assert rep.first_difference["record"] == f"{bare}/1"
    assert rep.first_difference["record_number"] == 6
    assert (rep.first_difference["fastq_length"], rep.first_difference["cram_length"]) == (140, 150)
    assert rep.reason.startswith("reads are trimmed/altered: 1 records differ; first: " + bare)
    assert not sc.exists()


def test_cram_missing_a_pair(genome: synth.GenomeFiles, tmp_path: Path):
    drop = _records(genome.fastq_r1)[17][0].split()[0]
    cram = _copy_alignments(
        genome.cram, tmp_path / "M.cram", genome.reference, lambda a: a.query_name != drop
    )
    rep = verify_covers([genome.fastq_r1, genome.fastq_r2], cram, reference=genome.reference)
    assert not rep.covered
    assert (rep.missing, rep.altered, rep.extra, rep.cram_primary_records) == (2, 0, 0, 798)
    assert rep.first_difference == {
        "kind": "missing",
        "record": f"{drop}/1",
        "file": genome.fastq_r1.name,
        "record_number": 18,
    }
    assert "2 FASTQ records are not primary records of the CRAM" in rep.reason


def test_fastq_subset_of_cram_restores_the_subset(genome: synth.GenomeFiles, tmp_path: Path):
    """CRAM records absent from the FASTQ (e.g. dropped singletons) are excluded on restore."""
    fq = [
        _write_fastq(tmp_path / f"U_R{i}.fastq.gz", _records(p)[3:])
        for i, p in ((1, genome.fastq_r1), (2, genome.fastq_r2))
    ]
    sc = tmp_path / "U.sidecar"
    rep = verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc, keep_order=True)
    assert rep.covered, rep.reason
    assert (rep.matched, rep.extra, rep.detail_passes) == (794, 6, 1)
    outs = restore_fastq(  # (into the FASTQ's own folder it would be refused: exists already)
        genome.cram, sc, tmp_path / "back" / "U", reference=genome.reference, keep_order=True
    )
    for out, orig in zip(outs, fq, strict=True):
        assert out != orig and _gunzip(out) == _gunzip(orig)


def test_secondary_and_supplementary_are_ignored(genome: synth.GenomeFiles, tmp_path: Path):
    src = pysam.AlignmentFile(str(genome.bam))
    dst = tmp_path / "S.bam"
    with pysam.AlignmentFile(str(dst), "wb", template=src) as out:
        for i, a in enumerate(src):
            out.write(a)
            if i % 50 == 0 and not a.is_unmapped:
                b = pysam.AlignedSegment.fromstring(a.to_string(), src.header)
                b.flag |= 0x100 if i % 100 else 0x800
                b.query_sequence = b.query_sequence[::-1]  # differs: must not matter
                out.write(b)
    src.close()
    rep = verify_covers([genome.fastq_r1, genome.fastq_r2], dst)
    assert rep.covered and rep.cram_primary_records == 800


def test_bqsr_qualities_with_oq_are_covered(genome: synth.GenomeFiles, tmp_path: Path):
    def recalibrate(a: pysam.AlignedSegment) -> bool:
        a.set_tag("OQ", a.query_qualities_str)
        a.query_qualities = pysam.qualitystring_to_array("5" * a.query_length)
        return True

    cram = _copy_alignments(genome.cram, tmp_path / "B.cram", genome.reference, recalibrate)
    fq = [genome.fastq_r1, genome.fastq_r2]
    rep = verify_covers(fq, cram, reference=genome.reference, sidecar=tmp_path / "B.sc")
    assert rep.covered, rep.reason

    # the same without OQ: every record's qualities differ
    plain = _copy_alignments(
        cram, tmp_path / "P.cram", genome.reference, lambda a: a.set_tag("OQ", None) or True
    )
    rep = verify_covers(fq, plain, reference=genome.reference)
    assert not rep.covered and rep.altered == 800


def test_single_end(genome: synth.GenomeFiles, tmp_path: Path):
    def single(a: pysam.AlignedSegment) -> bool:
        if not a.is_read1:
            return False
        a.flag &= 0x4 | 0x10
        a.next_reference_id, a.next_reference_start, a.template_length = -1, -1, 0
        return True

    cram = _copy_alignments(genome.cram, tmp_path / "SE.cram", genome.reference, single)
    sc = tmp_path / "SE.sc"
    rep = verify_covers(
        [genome.fastq_r1], cram, reference=genome.reference, sidecar=sc, keep_order=True
    )
    assert rep.covered and rep.matched == 400
    (out,) = restore_fastq(cram, sc, tmp_path / "SE", reference=genome.reference, keep_order=True)
    assert out.name == "SE.fastq.gz" and _gunzip(out) == _gunzip(genome.fastq_r1)
    # the R1 FASTQ against the paired CRAM: READ1 records are not single-end records
    rep = verify_covers([genome.fastq_r1], genome.cram, reference=genome.reference)
    assert not rep.covered and rep.missing == 400 and rep.extra == 800


def _spy_sorts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """For every samtools sort that covers runs: its temporary files at merge time."""
    spills: list[int] = []
    real = records.SamSort.sorted

    def sorted_(self: records.SamSort) -> Iterator[str]:
        it = real(self)
        first = next(it, None)  # samtools merges now: its temporary files still exist
        spills.append(len(list(self.prefix.parent.glob(f"{self.prefix.name}.*"))))
        if first is not None:
            yield first
            yield from it

    monkeypatch.setattr(records.SamSort, "sorted", sorted_)
    return spills


def _spy_restore(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of the restore's out-of-memory steps (bucket spills, bucket splits, spills of the
    original order's buckets) and of its reads of SAM text."""
    seen: Counter[str] = Counter()

    def counted(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[what] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        covers_scatter.BucketStore, "spill", counted("spill", covers_scatter.BucketStore.spill)
    )
    monkeypatch.setattr(covers_batches, "_split", counted("split", covers_batches._split))
    monkeypatch.setattr(covers_scatter, "_scatter_sam", counted("sam", covers_scatter._scatter_sam))
    spill = counted("order spill", covers_write.Reorder._spill)
    monkeypatch.setattr(covers_write.Reorder, "_spill", spill)
    return seen


def _no_temporaries(root: Path) -> None:
    assert not list(root.rglob(".*.restore.*")) and not list(root.rglob(".*.tmp"))


def test_tiny_memory_spills_splits_and_gives_identical_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Buckets spilled to files and split (a 32 KB bucket limit): the very same output."""
    ref = synth.write_reference(tmp_path / "ref.fa", seed=11)
    g = synth.write_genome(tmp_path / "G", "G", ref, seed=5, n_pairs=6000)
    r1, r2 = _records(g.fastq_r1), _records(g.fastq_r2)
    perm = list(range(len(r1)))
    random.Random(9).shuffle(perm)
    fq = [
        _write_fastq(tmp_path / "P_R1.fastq.gz", [r1[i] for i in perm]),
        _write_fastq(tmp_path / "P_R2.fastq.gz", [r2[i] for i in perm]),
    ]
    spills = _spy_sorts(monkeypatch)
    sc = tmp_path / "P.sidecar"
    rep = verify_covers(fq, g.cram, reference=ref, sidecar=sc, keep_order=True, sort_memory="1M")
    assert rep.covered and rep.order == "permutation"
    assert spills and spills[0] >= 1  # verify's order sort, at 1M, merged temporary files
    seen = _spy_restore(monkeypatch)
    outs = {}
    for tiny in (True, False):
        for ko in (False, True):
            got = restore_fastq(
                g.cram,
                sc,
                tmp_path / str(tiny) / str(ko) / "P",
                reference=ref,
                keep_order=ko,
                gzip=False,
                sort_memory="1M" if tiny else "512M",
                bucket_limit=32 << 10 if tiny else 64 << 20,
            )
            outs[tiny, ko] = [p.read_bytes() for p in got]
        if tiny:  # the 4 MB of records went to files, and the one tile was split
            assert seen["spill"] >= 2 and seen["split"] >= 2 and seen["sam"] == 0, seen
            seen.clear()
    assert not seen  # with room enough: in memory and unsplit
    assert outs[True, False] == outs[False, False]
    assert outs[True, True] == outs[False, True] == [_gunzip(p) for p in fq]
    _no_temporaries(tmp_path)
    # canonical order, every record once
    canon = [_records(tmp_path / "True" / "False" / f"P_R{i}.fastq") for i in (1, 2)]
    keys = [canonical_key(n.split()[0]) for n, _, _ in canon[0]]
    assert (
        keys == sorted(keys) and sorted(canon[0]) == sorted(r1) and sorted(canon[1]) == sorted(r2)
    )


def _tricky_names(n: int, rng: random.Random) -> list[str]:
    """Read names of every kind the canonical order tells apart (all distinct)."""
    kinds = [
        "I:R:F:1:1101:{x}:{y}",
        "I:R:F:01:1101:{x}:{y}",  # the same head spelled otherwise: sorted with the above
        "I:R:F:1:1101:{x}:{y:011d}",  # 11 digits: read by int(), equal to its short form
        "I:R:F:1:1101:{x}:1_{y}",  # int() reads `1_5` as 15
        "I:R:F:1:1101:{x}:-{y}",
        "I:R:F:2:2212:{x}:{y}",
        ":1:1101:{x}:{y}",  # empty prefix
        "I:R:F:1:1101:{x}:y{y}",  # no integer Y: not an Illumina name
        "SRR1.{y}",  # no colon
        "a:{y}",
        "q:{x}:{y}",
    ]
    names: set[str] = set()
    while len(names) < n:
        kind = rng.choice(kinds)
        names.add(kind.format(x=rng.randint(1000, 1400), y=rng.randint(1, 60)))
    return sorted(names)


def test_every_kind_of_name_sorts_canonically_in_buckets(tmp_path: Path):
    """Routing, batching, splitting and sorting (no samtools): the order is canonical_key's."""
    rng = random.Random(8)
    names = _tricky_names(3000, rng)
    rng.shuffle(names)
    heads = [f"@{n} 0:N:0:0".encode() for n in names]
    seqs = [b"ACGT"[: 1 + i % 4] for i in range(len(names))]
    quals = [b"IIII"[: 1 + i % 4] for i in range(len(names))]
    rules = covers_sort.Rules(Path("x.cram"), (48,), {48: b"\n"}, {48: {}}, {}, set())
    got = {}
    for budget, limit in ((64 << 20, 64 << 20), (8 << 10, 4 << 10)):
        work = tmp_path / str(limit)
        (work / "s").mkdir(parents=True)
        spread = covers_scatter.Scatter(covers_scatter.BucketStore(work / "s", budget))
        for i in range(0, len(heads), 500):
            spread.add(heads[i : i + 500], seqs[i : i + 500], quals[i : i + 500], 1000)
        order = []
        for batch in covers_batches.sorted_buckets(spread, rules, limit, work):
            order += [name[1:].decode() for name in batch[48].names]
        got[limit] = order
    assert got[4 << 10] == got[64 << 20] == sorted(names, key=canonical_key)


def test_names_of_every_kind_restore(
    genome: synth.GenomeFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Tricky names through samtools and back: original order and canonical order, with and
    without spilled and split buckets."""
    fq_recs = [_records(genome.fastq_r1), _records(genome.fastq_r2)]
    old = [r[0].split()[0] for r in fq_recs[0]]
    new = dict(zip(old, _tricky_names(len(old), random.Random(2)), strict=True))

    def rename(a: pysam.AlignedSegment) -> bool:
        a.query_name = new[a.query_name]
        return True

    cram = _copy_alignments(genome.cram, tmp_path / "N.cram", genome.reference, rename)
    fq = [
        _write_fastq(
            tmp_path / f"N_R{i}.fastq",
            [(f"{new[n.split()[0]]} {n.split()[1]}", s, q) for n, s, q in recs],
        )
        for i, recs in ((1, fq_recs[0]), (2, fq_recs[1]))
    ]
    sc = tmp_path / "N.sidecar"
    rep = verify_covers(fq, cram, reference=genome.reference, sidecar=sc, keep_order=True)
    assert rep.covered and rep.order == "permutation", rep.reason
    seen = _spy_restore(monkeypatch)
    canon = {}
    for tiny in (False, True):
        kw: dict[str, Any] = {"sort_memory": "1M", "bucket_limit": 4 << 10} if tiny else {}
        where = tmp_path / str(tiny)
        outs = restore_fastq(
            cram, sc, where / "K", reference=genome.reference, keep_order=True, **kw
        )
        assert [_gunzip(p) for p in outs] == [p.read_bytes() for p in fq]
        outs = restore_fastq(cram, sc, where / "C", reference=genome.reference, gzip=False, **kw)
        canon[tiny] = [p.read_bytes() for p in outs]
        keys = [canonical_key(n.split()[0]) for n, _, _ in _records(outs[0])]
        assert keys == sorted(keys)
    assert canon[True] == canon[False]
    assert seen["split"] >= 2 and seen["sam"] == 0, seen
    _no_temporaries(tmp_path)


def test_plus_line_repeating_the_header_in_a_permuted_order(
    genome: synth.GenomeFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`+NAME COMMENT` third lines, a shuffled order, the order's buckets spilled to files."""
    recs = [_records(genome.fastq_r1), _records(genome.fastq_r2)]
    perm = list(range(len(recs[0])))
    random.Random(6).shuffle(perm)
    fq = []
    for i, rs in enumerate(recs, 1):
        path = tmp_path / f"T_R{i}.fastq"
        path.write_text(
            "".join(f"@{rs[j][0]}\n{rs[j][1]}\n+{rs[j][0]}\n{rs[j][2]}\n" for j in perm)
        )
        fq.append(path)
    sc = tmp_path / "T.sidecar"
    rep = verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc, keep_order=True)
    assert rep.covered and rep.order == "permutation"
    assert all(f.two_headers for f in read_sidecar(sc).files)
    seen = _spy_restore(monkeypatch)
    for memory in ("64K", "512M"):
        outs = restore_fastq(
            genome.cram,
            sc,
            tmp_path / memory / "T",
            reference=genome.reference,
            keep_order=True,
            gzip=False,
            sort_memory=memory,
        )
        assert [p.read_bytes() for p in outs] == [p.read_bytes() for p in fq]
        if memory == "64K":  # the buckets, and the records in original-order buckets, in files
            assert seen["spill"] >= 1 and seen["order spill"] >= 1, seen
    _no_temporaries(tmp_path)


def test_cram_that_cannot_be_decoded_leaves_nothing(tmp_path: Path):
    """samtools fails (the reference is gone): InputError with its message, nothing written."""
    ref = synth.write_reference(tmp_path / "ref.fa", seed=7)
    g = synth.write_genome(tmp_path / "G", "G", ref, seed=3, n_pairs=50)
    sc = tmp_path / "G.sidecar"
    fq = [g.fastq_r1, g.fastq_r2]
    assert verify_covers(fq, g.cram, reference=ref, sidecar=sc, keep_order=True).covered
    for p in tmp_path.glob("ref.fa*"):
        p.rename(tmp_path / f"gone{p.name[3:]}")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"G\.cram: cannot read alignments: .*ref\.fa"):
        restore_fastq(g.cram, sc, out / "G", keep_order=True)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("bases", "sam"), [("ACMGRSVTWYHKDBN", 0), ("=ACGTN", 1)])
def test_fastq_writer_gives_what_parse_record_reads(
    bases: str, sam: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """htslib's FASTQ writer (the restore's reader) and parse_record (verify's) agree on every
    IUPAC code reverse-complemented, empty reads, READ1 and READ2 both set (READ1). A `=` on the
    reverse strand, which htslib writes `!`, sends the restore to the SAM text."""
    rng = random.Random(12)
    out = tmp_path / "iupac.bam"
    with pysam.AlignmentFile(str(out), "wb", header={"HD": {"VN": "1.6"}}) as bam:
        for i in range(300):
            seq = "".join(rng.choices(bases, k=rng.choice([0, 1, 7, 40])))
            name = f"I:R:F:{1 + i % 2}:1101:{rng.randint(1, 999)}:{i}"
            for mate in (0x40 | (0x80 if i % 50 == 0 else 0), 0x80):
                a = pysam.AlignedSegment()
                a.query_name = name
                a.flag = 0x1 | 0x4 | mate | (0x10 if rng.random() < 0.5 else 0)
                a.query_sequence = seq or None
                if seq:
                    a.query_qualities = pysam.qualitystring_to_array(
                        "".join(rng.choices("#-8F<K", k=len(seq)))
                    )
                bam.write(a)
    seen: dict[str, list[tuple[str, str, str]]] = {"1": [], "2": []}
    for key, s, q in records.primary_records(out, None):
        seen[key[-1]].append((key[:-1], s, q))
    fq = [_write_fastq(tmp_path / f"I_R{m}.fastq", seen[m]) for m in ("1", "2")]
    sc = tmp_path / "I.sidecar"
    rep = verify_covers(fq, out, sidecar=sc, keep_order=True)
    assert rep.covered and rep.fastq_records == 600, rep.reason
    spy = _spy_restore(monkeypatch)
    outs = restore_fastq(out, sc, tmp_path / "back" / "I", keep_order=True, gzip=False)
    assert [p.read_bytes() for p in outs] == [p.read_bytes() for p in fq]
    assert spy["sam"] == sam


def test_oq_qualities_restore_through_sam_text(
    genome: synth.GenomeFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """htslib's FASTQ writer ignores OQ: the restore reads the SAM text instead."""

    def recalibrate(a: pysam.AlignedSegment) -> bool:
        a.set_tag("OQ", a.query_qualities_str)
        a.query_qualities = pysam.qualitystring_to_array("5" * a.query_length)
        return True

    cram = _copy_alignments(genome.cram, tmp_path / "B.cram", genome.reference, recalibrate)
    fq = [genome.fastq_r1, genome.fastq_r2]
    sc = tmp_path / "B.sc"
    assert verify_covers(fq, cram, reference=genome.reference, sidecar=sc, keep_order=True).covered
    seen = _spy_restore(monkeypatch)
    outs = restore_fastq(cram, sc, tmp_path / "B", reference=genome.reference, keep_order=True)
    assert [_gunzip(p) for p in outs] == [_gunzip(p) for p in fq]
    assert seen["sam"] == 1


def _unmapped(path: Path, reads: list[tuple[str, str, str | None]]) -> Path:
    """A single-end BAM of unmapped reads; qualities None: absent (0xff)."""
    with pysam.AlignmentFile(str(path), "wb", header={"HD": {"VN": "1.6"}}) as out:
        for name, seq, qual in reads:
            a = pysam.AlignedSegment()
            a.query_name, a.flag, a.query_sequence = name, 4, seq
            if qual is not None:
                a.query_qualities = pysam.qualitystring_to_array(qual)
            out.write(a)
    return path


def test_reads_without_qualities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """htslib writes absent qualities as `B`s; parse_record (which verify uses) as '' or, for
    one base, `*`: an excluded read without them is still recognised, and a one-base read sends
    the restore to the SAM text."""
    rng = random.Random(5)
    reads = [
        (f"I:R:F:1:1101:{rng.randint(1000, 9000)}:{i}", "".join(rng.choices("ACGT", k=30)), None)
        for i in range(60)
    ]
    reads = [(n, s, "".join(rng.choices("#-8F", k=30))) for n, s, _ in reads]
    extra = ("I:R:F:1:1101:5:7000", "ACGTT", None)  # absent qualities, not in the FASTQ
    one = ("I:R:F:1:1101:6:7001", "A", None)  # one base: parse_record reads Q9 `*`
    seen = _spy_restore(monkeypatch)
    for case, cram_reads, fq_reads, sam in (
        ("X", [*reads, extra], reads, 0),
        ("O", [*reads, extra, one], [*reads, (one[0], "A", "*")], 1),
    ):
        bam = _unmapped(tmp_path / f"{case}.bam", cram_reads)
        fq = _write_fastq(tmp_path / f"{case}.fastq", list(reversed(fq_reads)))
        sc = tmp_path / f"{case}.sc"
        rep = verify_covers([fq], bam, sidecar=sc, keep_order=True)
        assert rep.covered and rep.extra == 1, rep.reason
        (out,) = restore_fastq(bam, sc, tmp_path / f"{case}-back", keep_order=True, gzip=False)
        assert out.read_bytes() == fq.read_bytes()
        assert seen["sam"] == sam
        seen.clear()


def test_failed_restore_leaves_nothing(genome: synth.GenomeFiles, tmp_path: Path):
    """A sidecar that does not fit (a record count changed): IntegrityError, no output files,
    no temporary files (the buckets had gone to files)."""
    fq = [genome.fastq_r1, genome.fastq_r2]
    sc = tmp_path / "F.sidecar"
    assert verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc).covered
    bad = read_sidecar(sc)
    bad.files[1].records += 1
    sc.write_bytes(sidecar_fmt.encode(bad))
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=r"gives 400 records for .*_R2.*says 401"):
        restore_fastq(genome.cram, sc, out / "F", reference=genome.reference, sort_memory="64K")
    assert list(out.iterdir()) == []


def test_restore_whose_bytes_differ_from_the_original_lands_nothing(
    genome: synth.GenomeFiles, tmp_path: Path
):
    """The sha256 of the original stream is the last word before a keep_order restore lands."""
    fq = [genome.fastq_r1, genome.fastq_r2]
    sc = tmp_path / "H.sidecar"
    assert verify_covers(fq, genome.cram, reference=genome.reference, sidecar=sc,
                         keep_order=True).covered
    bad = read_sidecar(sc)
    bad.files[0].sha256_decompressed = "0" * 64
    sc.write_bytes(sidecar_fmt.encode(bad))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match=r"restored stream differs from the original"):
        restore_fastq(genome.cram, sc, out / "H", reference=genome.reference, keep_order=True)
    assert list(out.iterdir()) == []


def test_order_key_sorts_like_canonical_key():
    rng = random.Random(4)
    names = ["A:1:2:3:4", "A:1:2:3:4:5", ":1:2:3:4", "read7", "read", "r/1", "A:-1:2:3:4"]
    names += ["A:01:2:3:4", "A:1:2:3:1_0", "AB:1:2:3:4", "A:B:1:2:3:4", "A:1:2:3:x", "A::1:2:3"]
    names += [
        f"I:R:F:{rng.randint(1, 8)}:{rng.choice([1101, 2228, 11101])}:"
        f"{rng.randint(0, 10 ** rng.randint(1, 12))}:{rng.randint(-5, 40000)}"
        for _ in range(3000)
    ]
    names += [
        "".join(rng.choice("AB:1-09") for _ in range(rng.randint(1, 12))) for _ in range(3000)
    ]
    by_tuple = sorted(names, key=canonical_key)
    by_bytes = sorted(names, key=lambda n: order_key(n).encode())
    assert by_tuple == by_bytes


def test_sidecar_ranks_decode_in_chunks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sidecar_fmt, "RANK_CHUNK", 7)
    for n, spread in ((50, 3), (1000, 1000), (70_000, 70_000)):
        rng = np.random.default_rng(n)
        ranks = np.argsort(np.arange(n) + rng.integers(0, spread, n)).astype(np.uint32)
        sc = sidecar_fmt.Sidecar("0" * 64, "x.cram", "single", [], order="permutation", ranks=ranks)
        back = sidecar_fmt.decode(sidecar_fmt.encode(sc))
        assert back.order_units == n
        assert np.array_equal(np.concatenate(list(back.rank_chunks(5))), ranks)
        again = sidecar_fmt.decode(sidecar_fmt.encode(back))  # re-encoding the stream
        assert np.array_equal(np.concatenate(list(again.rank_chunks())), ranks)


def test_repeated_names_restore_in_digest_order(genome: synth.GenomeFiles, tmp_path: Path):
    """Single-end reads sharing a name: every record given back, ties ordered by digest."""

    def single(a: pysam.AlignedSegment) -> bool:
        if not a.is_read1:
            return False
        a.flag &= 0x4 | 0x10
        a.next_reference_id, a.next_reference_start, a.template_length = -1, -1, 0
        a.query_name = "dup" if a.query_name[-1] in "02468" else a.query_name
        return True

    cram = _copy_alignments(genome.cram, tmp_path / "D.cram", genome.reference, single)
    with pysam.AlignmentFile(str(cram), reference_filename=str(genome.reference)) as fh:
        recs = [
            (
                a.query_name,
                a.get_forward_sequence(),
                pysam.qualities_to_qualitystring(a.get_forward_qualities()),
            )
            for a in fh
        ]
    rng = random.Random(1)
    rng.shuffle(recs)
    fq = _write_fastq(tmp_path / "D.fastq", recs)
    sc = tmp_path / "D.sc"
    rep = verify_covers([fq], cram, reference=genome.reference, sidecar=sc, keep_order=True)
    assert rep.covered and rep.order == "permutation", rep.reason
    (out,) = restore_fastq(cram, sc, tmp_path / "DO", reference=genome.reference, keep_order=True)
    assert _gunzip(out) == fq.read_bytes()
    (out,) = restore_fastq(cram, sc, tmp_path / "DC", reference=genome.reference, gzip=False)
    got = _records(out)
    assert sorted(got) == sorted(recs) and sum(n == "dup" for n, _, _ in got) > 100
    keys = [canonical_key(n) for n, _, _ in got]
    assert keys == sorted(keys)


# ---------------------------------------------------------------------------------- bad input


def test_count_mismatch_is_input_error(genome: synth.GenomeFiles, tmp_path: Path):
    r2 = _write_fastq(tmp_path / "C_R2.fastq.gz", _records(genome.fastq_r2)[:-1])
    sc = tmp_path / "C.sidecar"
    with pytest.raises(InputError, match=r"C_R2\.fastq\.gz: ends after 399 records"):
        verify_covers([genome.fastq_r1, r2], genome.cram, reference=genome.reference, sidecar=sc)
    assert not list(tmp_path.glob("C.sidecar*")) and not list(tmp_path.glob(".C.sidecar*"))


def test_name_mismatch_is_input_error(genome: synth.GenomeFiles, tmp_path: Path):
    recs = _records(genome.fastq_r2)
    recs[0], recs[1] = recs[1], recs[0]
    r2 = _write_fastq(tmp_path / "N_R2.fastq.gz", recs)
    with pytest.raises(InputError, match=r"N_R2\.fastq\.gz: record 1 .*R1/R2 names differ"):
        verify_covers([genome.fastq_r1, r2], genome.cram, reference=genome.reference)


def test_truncated_gzip_is_input_error(genome: synth.GenomeFiles, tmp_path: Path):
    data = genome.fastq_r1.read_bytes()
    r1 = tmp_path / "Z_R1.fastq.gz"
    r1.write_bytes(data[: len(data) // 2])
    sc = tmp_path / "Z.sidecar"
    with pytest.raises(InputError, match=r"Z_R1\.fastq\.gz: truncated or corrupt gzip"):
        verify_covers([r1, genome.fastq_r2], genome.cram, reference=genome.reference, sidecar=sc)
    assert not list(tmp_path.glob("*sidecar*"))


def test_malformed_fastq_is_input_error(genome: synth.GenomeFiles, tmp_path: Path):
    lines = _gunzip(genome.fastq_r1).split(b"\n")
    lines[4 * 10 + 2] = b"-"  # record 11: no '+' line
    r1 = tmp_path / "F_R1.fastq"
    r1.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError, match=r"F_R1\.fastq: malformed FASTQ"):
        verify_covers([r1, genome.fastq_r2], genome.cram, reference=genome.reference)


def test_unreadable_cram_is_input_error(genome: synth.GenomeFiles, tmp_path: Path):
    bad = tmp_path / "bad.cram"
    bad.write_bytes(b"not a cram at all")
    with pytest.raises(InputError, match=r"bad\.cram"):
        verify_covers([genome.fastq_r1, genome.fastq_r2], bad, reference=genome.reference)


def test_wrong_sidecar_for_cram(genome: synth.GenomeFiles, tmp_path: Path):
    other = synth.write_genome(tmp_path / "G2", "G2", genome.reference, seed=2, n_pairs=50)
    sc = tmp_path / "G2.sidecar"
    assert verify_covers(
        [other.fastq_r1, other.fastq_r2], other.cram, reference=genome.reference, sidecar=sc
    ).covered
    with pytest.raises(InputError, match=r"G2\.sidecar: belongs to CRAM G2\.cram"):
        restore_fastq(genome.cram, sc, tmp_path / "out" / "W", reference=genome.reference)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    junk = tmp_path / "junk.sidecar"
    junk.write_bytes(b"hello")
    with pytest.raises(InputError, match="not a wgsvault FASTQ sidecar"):
        restore_fastq(genome.cram, junk, tmp_path / "out" / "W", reference=genome.reference)


# ------------------------------------------------------------------------------ shared data


def test_real_na12878_reads(tmp_path: Path):
    """Real HiSeq reads with /1 /2 names; the BAM also holds 101 records not in the FASTQ."""
    bam = shared("real", "NA12878_chr20_region.bam")
    fq = [shared("real", f"NA12878_chr20_region_R{i}.fastq.gz") for i in (1, 2)]
    sc = tmp_path / "na.sidecar"
    rep = verify_covers(fq, bam, sidecar=sc, keep_order=True)
    assert rep.covered, rep.reason
    assert (rep.fastq_records, rep.cram_primary_records, rep.extra) == (872, 973, 101)
    assert rep.order == "permutation"  # `samtools collate` order: not canonical
    outs = restore_fastq(bam, sc, tmp_path / "na", keep_order=True)
    for out, orig in zip(outs, fq, strict=True):
        assert _gunzip(out) == _gunzip(orig)
    assert _records(outs[0])[0][0].endswith("/1")


def test_bench_corpus_cram(tmp_path: Path):
    bam = shared("bench", "hsx.bam")
    ref = shared("real", "chr20_region.fa")
    fq = [shared("bench", f"hsx_R{i}.fastq.gz") for i in (1, 2)]
    cram = tmp_path / "hsx.cram"
    htslib.run(["view", "-C", "-T", str(ref), "-o", str(cram), str(bam)], cache=None, what=str(bam))
    sc = tmp_path / "hsx.sidecar"
    rep = verify_covers(fq, cram, reference=ref, sidecar=sc, keep_order=True)
    assert rep.covered, rep.reason
    assert rep.matched == rep.fastq_records == 219_990
    assert rep.order == "identity" and rep.tail_exceptions > 0  # the rare `:Y:` filtered reads
    assert rep.sidecar_bytes < 20_000
    outs = restore_fastq(cram, sc, tmp_path / "hsx", reference=ref, keep_order=True)
    for out, orig in zip(outs, fq, strict=True):
        assert _gunzip(out) == _gunzip(orig)
