"""verify-covers: proofs that FASTQ ⊆ aligned CRAM, the sidecar, restoring FASTQ from both."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import dnaio
import numpy as np
import pysam
import pytest

from wgsvault.codec import htslib, records
from wgsvault.codec import sidecar as sidecar_fmt
from wgsvault.codec.covers import verify_covers
from wgsvault.codec.covers_restore import restore_fastq
from wgsvault.codec.records import canonical_key, order_key
from wgsvault.codec.sidecar import read as read_sidecar
from wgsvault.demo import synth
from wgsvault.errors import InputError

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
    """For every samtools sort that covers/covers_restore run: its temporary files at merge time."""
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


def test_tiny_sort_memory_spills_and_gives_identical_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """With samtools sort limited to 1M it merges temporary files; the output is the same."""
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
    outs = {}
    for mem in ("1M", "512M"):
        for ko in (False, True):
            got = restore_fastq(
                g.cram,
                sc,
                tmp_path / mem / str(ko) / "P",
                reference=ref,
                keep_order=ko,
                gzip=False,
                sort_memory=mem,
            )
            outs[mem, ko] = [p.read_bytes() for p in got]
    assert outs["1M", False] == outs["512M", False]
    assert outs["1M", True] == outs["512M", True] == [_gunzip(p) for p in fq]
    # verify's order sort, then per restore (canonical, canonical + original order) at 1M, 512M
    assert len(spills) == 1 + 3 + 3
    assert min(spills[:4]) >= 1 and max(spills[4:]) == 0, spills  # 1M spills, 512M does not
    assert not list(tmp_path.rglob(".*.restore.*")) and not list(tmp_path.rglob(".*.tmp"))
    # canonical order, every record once
    canon = [_records(tmp_path / "1M" / "False" / f"P_R{i}.fastq") for i in (1, 2)]
    keys = [canonical_key(n.split()[0]) for n, _, _ in canon[0]]
    assert (
        keys == sorted(keys) and sorted(canon[0]) == sorted(r1) and sorted(canon[1]) == sorted(r2)
    )


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
