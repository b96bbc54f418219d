"""Proofs fail, with the reason, when a converted file is damaged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wgsvault.catalog import Catalog
from wgsvault.codec.convert import convert_bam, convert_fastq
from wgsvault.codec.refs import Registry
from wgsvault.codec.verify import parse_checksum, verify
from wgsvault.demo.synth import GenomeFiles, write_genome, write_reference


@pytest.fixture(scope="module")
def genome(tmp_path_factory: pytest.TempPathFactory) -> GenomeFiles:
    d = tmp_path_factory.mktemp("vgenome")
    ref = write_reference(d / "ref.fa", seed=9)
    return write_genome(d / "G2", "G2", ref, seed=9, n_pairs=500)


@pytest.fixture
def registry(sqlite_catalog: Catalog, tmp_path: Path, genome: GenomeFiles) -> Registry:
    reg = Registry(sqlite_catalog, tmp_path / "refs")
    reg.add(genome.reference, "synth9")
    return reg


def _flip(path: Path, at: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def test_intact_conversions_verify(genome: GenomeFiles, registry: Registry, tmp_path: Path) -> None:
    fq = tmp_path / "fq.cram"
    convert_fastq(genome.fastq_r1, genome.fastq_r2, fq)
    assert verify([genome.fastq_r1, genome.fastq_r2], fq, registry=registry)["ok"]
    al = tmp_path / "al.cram"
    convert_bam(genome.bam, al, registry=registry, build="synth9")
    proof = verify([genome.bam], al, registry=registry)
    assert proof["ok"] and proof["checks"]["decode_with_registry"]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_unaligned_cram_fails(
    genome: GenomeFiles, registry: Registry, tmp_path: Path, damage: str
) -> None:
    good = tmp_path / "fq.cram"
    convert_fastq(genome.fastq_r1, genome.fastq_r2, good)
    bad = tmp_path / "bad.cram"
    shutil.copy(good, bad)
    if damage == "flip":
        _flip(bad, 0.5)
    else:
        bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    proof = verify([genome.fastq_r1, genome.fastq_r2], bad, registry=registry)
    assert proof["ok"] is False
    assert "restore failed" in proof["failure"]  # the damaged CRAM does not even decode


def test_unaligned_cram_of_other_reads_fails(
    genome: GenomeFiles, registry: Registry, tmp_path: Path
) -> None:
    """A CRAM that decodes cleanly but to other bytes: the proof names the record."""
    import gzip

    lines = gzip.decompress(genome.fastq_r2.read_bytes()).decode().splitlines(keepends=True)
    qual = lines[4 * 6 + 3]
    lines[4 * 6 + 3] = ("#" if qual[0] != "#" else "I") + qual[1:]  # record 7, one quality
    other = tmp_path / "other_R2.fastq.gz"
    other.write_bytes(gzip.compress("".join(lines).encode()))
    cram = tmp_path / "other.cram"
    convert_fastq(genome.fastq_r1, other, cram)
    proof = verify([genome.fastq_r1, genome.fastq_r2], cram, registry=registry)
    assert proof["ok"] is False
    assert "would not give this FASTQ back byte for byte: line 28 (record 7) differs" in (
        proof["failure"]
    )
    assert genome.fastq_r2.name in proof["failure"]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_aligned_cram_fails(
    genome: GenomeFiles, registry: Registry, tmp_path: Path, damage: str
) -> None:
    good = tmp_path / "al.cram"
    convert_bam(genome.bam, good, registry=registry, build="synth9")
    bad = tmp_path / "bad.cram"
    if damage == "flip":
        shutil.copy(good, bad)
        _flip(bad, 0.6)
    else:
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    proof = verify([genome.bam], bad, registry=registry)
    assert proof["ok"] is False
    assert "full decode" in proof["failure"]  # (a CRAM that decodes to other records:
    # test_altered_record_is_named)


def test_missing_reference_fails_the_decode_check(
    genome: GenomeFiles, sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    reg = Registry(sqlite_catalog, tmp_path / "refs")
    reg.add(genome.reference, "synth9")
    out = tmp_path / "al.cram"
    convert_bam(genome.bam, out, registry=reg, build="synth9")
    # the registry lost the sequence (cache and FASTA copy): the CRAM cannot be decoded
    shutil.rmtree(reg.cache)
    shutil.rmtree(reg.root / "builds")
    proof = verify([genome.bam], out, registry=reg)
    assert proof["ok"] is False and proof["checks"]["decode_with_registry"] is False


def test_parse_checksum() -> None:
    text = (
        "# Checksum 1.0\n"
        "# Group    QC  count  flag+seq  +name  combined\n"
        "all        all 10     aa        bb     cc\n"
    )
    assert parse_checksum(text) == {
        "count": "10",
        "flag+seq": "aa",
        "+name": "bb",
        "combined": "cc",
    }


def test_altered_record_is_named(genome: GenomeFiles, registry: Registry, tmp_path: Path) -> None:
    """A CRAM that decodes but holds one changed quality: the proof names the record."""
    import pysam

    good = tmp_path / "al.cram"
    convert_bam(genome.bam, good, registry=registry, build="synth9")
    bad = tmp_path / "altered.bam"
    src = pysam.AlignmentFile(str(genome.bam))
    with src, pysam.AlignmentFile(str(bad), "wb", template=src) as dst:
        for i, rec in enumerate(src):
            if i == 41:
                q = rec.query_qualities
                q[0] = 2 if q[0] != 2 else 12
                rec.query_qualities = q
                name = rec.query_name
            dst.write(rec)
    proof = verify([genome.bam], bad, registry=registry)
    assert proof["ok"] is False
    assert f"first differing record 42 ({name}): qual" in proof["failure"]


def test_restore_of_a_corrupt_cram_leaves_nothing(
    genome: GenomeFiles, registry: Registry, tmp_path: Path
) -> None:
    from wgsvault.codec.restore import restore
    from wgsvault.errors import IntegrityError

    good = tmp_path / "fq.cram"
    convert_fastq(genome.fastq_r1, genome.fastq_r2, good)
    _flip(good, 0.5)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match="fq.cram: restore"):
        restore(good, "fastq", out / "G2", registry=registry)
    assert list(out.iterdir()) == []
