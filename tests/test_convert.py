"""Lossless conversion: FASTQ -> CRAM -> FASTQ byte-identical, BAM -> CRAM checksum-identical,
and every bad input refused with file and record named and nothing left behind."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import dnaio
import pysam
import pytest

from wgsvault.catalog import Catalog
from wgsvault.codec.convert import convert_bam, convert_fastq
from wgsvault.codec.fastqfmt import read_recipe
from wgsvault.codec.refs import Registry
from wgsvault.codec.restore import restore
from wgsvault.codec.verify import record_checksums
from wgsvault.demo.synth import GenomeFiles, write_genome, write_reference
from wgsvault.errors import InputError

from conftest import shared


def plain(path: Path) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def genome(tmp_path_factory: pytest.TempPathFactory) -> GenomeFiles:
    d = tmp_path_factory.mktemp("genome")
    ref = write_reference(d / "ref.fa", seed=7)
    return write_genome(d / "G1", "G1", ref, seed=5, n_pairs=600)


@pytest.fixture
def registry(sqlite_catalog: Catalog, tmp_path: Path) -> Registry:
    return Registry(sqlite_catalog, tmp_path / "refs")


def test_fastq_pair_round_trip_byte_identical(
    genome: GenomeFiles, registry: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "G1.cram"
    res = convert_fastq(genome.fastq_r1, genome.fastq_r2, out)
    assert out.read_bytes()[:4] == b"CRAM" and out.stat().st_mode & 0o777 != 0o600
    proof = json.loads(Path(f"{out}.proof.json").read_text())
    assert proof["ok"] and proof["kind"] == "fastq->cram"
    assert proof["recipe"]["layout"] == "paired" and proof["recipe"]["tags"] == {"CO": 1200}
    assert [f["records"] for f in proof["recipe"]["files"]] == [600, 600]
    assert proof["output"]["sha256"] == res.proof["output"]["sha256"]
    assert proof["tools"]["samtools"] == pysam.__samtools_version__
    assert [c["ok"] for c in proof["checks"]["restore_sha256"]] == [True, True]
    with pysam.AlignmentFile(str(out), check_sq=False) as fh:
        recs = list(fh.fetch(until_eof=True))
    assert len(recs) == 1200 and all(r.is_unmapped for r in recs)
    for gz in (True, False):
        r1, r2 = restore(out, "fastq", tmp_path / f"back{gz}", registry=registry, gz=gz)
        assert r1.name == f"back{gz}_R1.fastq" + (".gz" if gz else "")
        assert plain(r1) == plain(genome.fastq_r1)
        assert plain(r2) == plain(genome.fastq_r2)
    assert leftovers(tmp_path) == []


def test_single_end_fastq(genome: GenomeFiles, registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "se.cram"
    convert_fastq(genome.fastq_r1, None, out)
    assert read_recipe(out) is not None and not read_recipe(out).paired  # type: ignore[union-attr]
    (back,) = restore(out, "fastq", tmp_path / "se", registry=registry, gz=False)
    assert back.name == "se.fastq" and back.read_bytes() == plain(genome.fastq_r1)


def test_real_reads_with_mate_suffixes(registry: Registry, tmp_path: Path) -> None:
    real = shared("real")
    r1, r2 = real / "NA12878_chr20_region_R1.fastq.gz", real / "NA12878_chr20_region_R2.fastq.gz"
    out = tmp_path / "na.cram"
    res = convert_fastq(r1, r2, out, profile="normal")
    assert res.proof["recipe"]["tags"] == {"CO": 2 * res.proof["recipe"]["files"][0]["records"]}
    b1, b2 = restore(out, "fastq", tmp_path / "na", registry=registry)
    assert plain(b1) == plain(r1) and plain(b2) == plain(r2)


def test_bam_to_cram_keeps_every_record(
    genome: GenomeFiles, registry: Registry, tmp_path: Path
) -> None:
    registry.add(genome.reference, "synth7")
    out = tmp_path / "G1.cram"
    res = convert_bam(genome.bam, out, registry=registry, build="synth7")
    assert res.proof["ok"] and res.proof["checks"]["record_checksums"]["equal"]
    assert res.proof["reference"]["build"] == "synth7"
    assert Path(f"{out}.crai").exists()
    want = record_checksums(genome.bam, cache=registry.cache)
    assert record_checksums(out, cache=registry.cache) == want
    (bam,) = restore(out, "bam", tmp_path / "back.bam", registry=registry)
    assert record_checksums(bam, cache=registry.cache) == want
    with pysam.AlignmentFile(str(bam)) as a, pysam.AlignmentFile(str(genome.bam)) as b:
        assert [r.query_name for r in a] == [r.query_name for r in b]  # order kept
        assert a.header.to_dict()["RG"] == b.header.to_dict()["RG"]


def test_real_bam_without_m5(registry: Registry, tmp_path: Path) -> None:
    real = shared("real")
    registry.add(real / "chr20_region.fa", "hg19-chr20")
    bam = real / "NA12878_chr20_region.bam"
    out = tmp_path / "na.cram"
    res = convert_bam(bam, out, registry=registry, build="hg19-chr20", profile="archive")
    assert res.proof["checks"]["record_checksums"]["original"]["count"] == "973"
    with pysam.AlignmentFile(str(out), check_sq=False) as fh:
        assert fh.header.to_dict()["SQ"][0]["M5"] == registry.get("hg19-chr20").sequences[0].md5  # type: ignore[union-attr]


def test_real_reference_mismatch_refused(registry: Registry, tmp_path: Path) -> None:
    real = shared("real")
    # the shared chr17 reference is 4,200 bp: its length does not match the BAM header's 17
    fa = tmp_path / "17.fa"
    with pysam.FastaFile(str(real / "1000G_chr17_ref.fa")) as f:
        fa.write_text(f">1\n{f.fetch(f.references[0])}\n")
    registry.add(fa, "short17")
    with pytest.raises(InputError, match="has length 249250621, reference build short17 has 4200"):
        convert_bam(
            real / "1000G_chr17_1.bam", tmp_path / "x.cram", registry=registry, build="short17"
        )
    assert list(tmp_path.glob("x.cram*")) == [] and leftovers(tmp_path) == []


def test_wrong_reference_refused(genome: GenomeFiles, registry: Registry, tmp_path: Path) -> None:
    other = write_reference(tmp_path / "other.fa", seed=8)  # same name and length, other bases
    registry.add(other, "other")
    with pytest.raises(InputError, match="M5 .* differs from reference build other"):
        convert_bam(genome.bam, tmp_path / "x.cram", registry=registry, build="other")
    with pytest.raises(InputError, match="not registered"):
        convert_bam(genome.bam, tmp_path / "x.cram", registry=registry, build="GRCh38")
    assert not (tmp_path / "x.cram").exists() and leftovers(tmp_path) == []


def _write_fastq(path: Path, records: list[tuple[str, str, str]], plus: str = "") -> None:
    text = "".join(f"@{n}\n{s}\n+{plus and n}\n{q}\n" for n, s, q in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def _reads(n: int, suffix: str = "", comment: str = "") -> list[tuple[str, str, str]]:
    c = f" {comment}" if comment else ""
    return [(f"r{i}{suffix}{c}", "ACGTACGTAC", "FFFFFFFFFF") for i in range(n)]


@pytest.mark.parametrize(
    ("r1", "r2", "message"),
    [
        (_reads(5), _reads(4), "ends after 4 records but a_R1.fastq has more"),
        (
            _reads(3),
            [("x0", "ACGT", "FFFF")] + _reads(3)[1:],
            "record 1: name 'x0' is not the mate of 'r0'",
        ),
    ],
)
def test_pairs_that_are_no_pairs_are_refused(
    tmp_path: Path,
    r1: list,
    r2: list,
    message: str,  # type: ignore[type-arg]
) -> None:
    """(Comments, lower-case bases and the rest round-trip: tests/test_dialects.py.)"""
    a, b = tmp_path / "a_R1.fastq", tmp_path / "a_R2.fastq"
    _write_fastq(a, r1)
    _write_fastq(b, r2)
    with pytest.raises(InputError, match=message) as exc:
        convert_fastq(a, b, tmp_path / "a.cram")
    assert str(a) in str(exc.value) or str(b) in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_R1.fastq", "a_R2.fastq"]


def test_plus_line_with_name_kept_and_wrapped_records_refused(
    registry: Registry, tmp_path: Path
) -> None:
    a = tmp_path / "plus.fastq"
    _write_fastq(a, _reads(3), plus="x")
    convert_fastq(a, None, tmp_path / "p.cram")
    (back,) = restore(tmp_path / "p.cram", "fastq", tmp_path / "p", registry=registry, gz=False)
    assert back.read_bytes() == a.read_bytes() and b"\n+r0\n" in a.read_bytes()
    w = tmp_path / "wrapped.fastq"
    w.write_text("@r1\nACGT\nACGT\n+\nFFFF\nFFFF\n")
    with pytest.raises(InputError, match=r"wrapped.fastq: line 3 \(record 1\): no '\+' line"):
        convert_fastq(w, None, tmp_path / "w.cram")
    assert not list(tmp_path.glob("w.cram*")) and leftovers(tmp_path) == []


def test_truncated_gzip_is_refused(genome: GenomeFiles, tmp_path: Path) -> None:
    cut = tmp_path / "cut_R1.fastq.gz"
    data = genome.fastq_r1.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r2 = tmp_path / "cut_R2.fastq.gz"
    shutil.copy(genome.fastq_r2, r2)
    with pytest.raises(InputError, match="cut_R1.fastq.gz"):
        convert_fastq(cut, r2, tmp_path / "cut.cram")
    assert not (tmp_path / "cut.cram").exists() and leftovers(tmp_path) == []


def test_output_is_never_overwritten(genome: GenomeFiles, tmp_path: Path) -> None:
    out = tmp_path / "x.cram"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="exists already"):
        convert_fastq(genome.fastq_r1, genome.fastq_r2, out)
    assert out.read_bytes() == b"precious"
    with pytest.raises(InputError, match="must end in .cram"):
        convert_fastq(genome.fastq_r1, None, tmp_path / "x.bam")


def test_dnaio_reads_restored_gzip(genome: GenomeFiles, registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "g.cram"
    convert_fastq(genome.fastq_r1, genome.fastq_r2, out, profile="fast")
    r1, _ = restore(out, "fastq", tmp_path / "g", registry=registry)
    with dnaio.open(r1) as fh:
        assert sum(1 for _ in fh) == genome.n_pairs
