"""The project's own genome files are valid and mutually consistent (read back with htslib)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import dnaio
import pysam
import pytest

from wgsvault.demo.synth import GenomeFiles, revcomp, write_genome, write_reference


@pytest.fixture(scope="module")
def genome(tmp_path_factory: pytest.TempPathFactory) -> GenomeFiles:
    d = tmp_path_factory.mktemp("synth")
    ref = write_reference(d / "ref" / "ref.fa", seed=7, length=30_000)
    return write_genome(d / "G1", "G1", ref, seed=11, n_pairs=400)


def _fastq(path: Path) -> list[dnaio.SequenceRecord]:
    with dnaio.open(path) as fh:
        return list(fh)


def test_reference(tmp_path: Path) -> None:
    ref = write_reference(tmp_path / "r.fa", seed=1, length=1234, name="chrX")
    with pysam.FastaFile(str(ref)) as fa:
        assert tuple(fa.references) == ("chrX",) and tuple(fa.lengths) == (1234,)
        assert set(fa.fetch("chrX")) <= set("ACGT")
    again = write_reference(tmp_path / "r2.fa", seed=1, length=1234, name="chrX")
    assert again.read_bytes() == ref.read_bytes()


def test_fastq_pairs_with_casava_comments(genome: GenomeFiles) -> None:
    r1, r2 = _fastq(genome.fastq_r1), _fastq(genome.fastq_r2)
    assert len(r1) == len(r2) == genome.n_pairs
    for a, b in zip(r1, r2, strict=True):
        assert a.id == b.id and a.id.startswith("A00531:") and ":HKTLJDSXY:1:1101:" in a.id
        assert a.name.split(" ")[1].startswith("1:N:0:") and b.name.split(" ")[1].startswith(
            "2:N:0:"
        )
        assert len(a.sequence) == len(a.qualities) == 150
    assert len({a.id for a in r1}) == genome.n_pairs


def test_bam_is_sorted_indexed_and_names_its_reference(genome: GenomeFiles) -> None:
    with pysam.FastaFile(str(genome.reference)) as fa:
        md5 = hashlib.md5(fa.fetch(fa.references[0]).encode()).hexdigest()
    with pysam.AlignmentFile(str(genome.bam)) as bam:
        assert bam.header["HD"]["SO"] == "coordinate"
        assert bam.header["SQ"][0]["M5"] == md5
        assert bam.header["RG"][0]["SM"] == "G1"
        records = list(bam)
        assert bam.check_index()
        region = list(bam.fetch(bam.references[0], 1000, 2000))
    assert len(records) == 2 * genome.n_pairs
    mapped = [r.reference_start for r in records if not r.is_unmapped]
    assert mapped == sorted(mapped) and 0 < len(records) - len(mapped) < len(records) // 20
    assert region and all(r.reference_end > 1000 and r.reference_start < 2000 for r in region)
    assert all(r.get_tag("RG") == "HKTLJDSXY.1" for r in records)


def test_bam_holds_every_fastq_read(genome: GenomeFiles) -> None:
    with pysam.AlignmentFile(str(genome.bam)) as bam:
        by_key = {}
        for r in bam:
            seq, qual = r.query_sequence, pysam.qualities_to_qualitystring(r.query_qualities)
            if r.is_reverse:
                seq, qual = revcomp(seq), qual[::-1]
            by_key[(r.query_name, 1 if r.is_read1 else 2)] = (seq, qual)
    for n, path in ((1, genome.fastq_r1), (2, genome.fastq_r2)):
        for rec in _fastq(path):
            assert by_key[(rec.id, n)] == (rec.sequence, rec.qualities)


def test_md_and_nm_agree_with_the_reference(genome: GenomeFiles) -> None:
    # samtools calmd recomputes MD/NM from the reference; unchanged records mean ours were right
    out = pysam.samtools.calmd(str(genome.bam), str(genome.reference), catch_stdout=True)
    assert "MD:Z:" in out
    original = pysam.samtools.view(str(genome.bam), catch_stdout=True)
    assert out.splitlines()[-len(original.splitlines()) :] == original.splitlines()


def test_cram_holds_the_same_records_as_the_bam(genome: GenomeFiles) -> None:
    def records(path: Path) -> list[tuple[str, list[tuple[str, object]]]]:
        # CRAM regenerates MD/NM on decode, in its own tag order: compare tags as a set
        with pysam.AlignmentFile(str(path), reference_filename=str(genome.reference)) as fh:
            return [(r.to_string().split("\t")[:11], sorted(r.get_tags())) for r in fh]

    assert genome.cram.read_bytes()[:4] == b"CRAM"
    assert Path(str(genome.cram) + ".crai").exists()
    assert records(genome.cram) == records(genome.bam)


def test_vcf_and_gvcf(genome: GenomeFiles) -> None:
    with pysam.VariantFile(str(genome.vcf)) as vcf:
        snps = [(r.pos, r.alts[0]) for r in vcf]
        assert list(vcf.header.samples) == ["G1"]
        assert list(vcf.fetch("chrS", 0, 30_000))  # indexed
    assert len(snps) == 30_000 // 400
    with pysam.VariantFile(str(genome.gvcf)) as gvcf:
        covered, variants = 0, []
        for r in gvcf:
            assert r.alts[-1] == "<NON_REF>"
            covered += r.stop - r.start
            if len(r.alts) > 1:
                variants.append((r.pos, r.alts[0]))
    assert covered == 30_000  # reference blocks and variants tile the whole contig
    assert variants == snps


def test_bcl_calls_are_the_fastq_reads(genome: GenomeFiles) -> None:
    run = genome.run_folder
    assert (run / "RunInfo.xml").read_text().count("<Read ") == 4
    assert (run / "RTAComplete.txt").exists()
    lane = run / "Data" / "Intensities" / "BaseCalls" / "L001"
    n = struct.unpack("<III", (lane / "s_1_1101.filter").read_bytes()[:12])[2]
    assert n == genome.n_pairs
    r1 = _fastq(genome.fastq_r1)
    for cycle in (1, 75, 150):
        data = gzip.decompress((lane / f"C{cycle}.1" / "s_1_1101.bcl.gz").read_bytes())
        assert struct.unpack("<I", data[:4])[0] == n
        calls = "".join("N" if b == 0 else "ACGT"[b & 3] for b in data[4:])
        quals = "".join("#" if b == 0 else chr((b >> 2) + 33) for b in data[4:])
        assert calls == "".join(r.sequence[cycle - 1] for r in r1)
        assert quals == "".join(r.qualities[cycle - 1] for r in r1)
    assert len(list(lane.glob("C*.1/*.bcl.gz"))) == 150 + 8 + 8 + 150


def test_same_seed_same_bytes(genome: GenomeFiles, tmp_path: Path) -> None:
    again = write_genome(tmp_path / "G1", "G1", genome.reference, seed=11, n_pairs=400)
    for a, b in ((genome.fastq_r1, again.fastq_r1), (genome.bam, again.bam)):
        assert a.read_bytes() == b.read_bytes()
    other = write_genome(tmp_path / "G2", "G1", genome.reference, seed=12, n_pairs=400)
    assert other.fastq_r1.read_bytes() != genome.fastq_r1.read_bytes()


def test_reference_too_short(tmp_path: Path) -> None:
    ref = write_reference(tmp_path / "r.fa", seed=1, length=500)
    with pytest.raises(ValueError, match="too short"):
        write_genome(tmp_path / "g", "G", ref, seed=1)
