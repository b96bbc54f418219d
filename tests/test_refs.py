"""Reference registry: digests checked against htslib, REF_CACHE layout used for real decoding."""

from __future__ import annotations

from pathlib import Path

import pysam
import pytest

from wgsvault.catalog import Catalog
from wgsvault.codec.refs import Registry, refget_digest
from wgsvault.codec.verify import record_checksums
from wgsvault.demo.synth import write_genome, write_reference
from wgsvault.errors import InputError


def test_refget_digest_matches_the_ga4gh_example() -> None:
    # GA4GH refget/VRS documentation: sha512t24u("ACGT")
    assert refget_digest(b"ACGT") == "SQ.aKF498dAxcJAqme6QYQ7EZ07-fiw8Kw2"


def test_add_computes_the_m5_htslib_computes(catalog: Catalog, tmp_path: Path) -> None:
    fa = tmp_path / "two.fa"
    fa.write_text(">chrA desc\nACGTacgtNN\nACG\n>chrB\nTTTT\n")
    reg = Registry(catalog, tmp_path / "refs")
    build = reg.add(fa, "test1")
    # samtools dict computes M5 with htslib's rules (upper case, whitespace dropped)
    d = pysam.samtools.dict(str(fa))
    m5 = {
        f.split(":")[1]: g.split(":")[1]
        for line in d.splitlines()
        if line.startswith("@SQ")
        for f in line.split("\t")
        if f.startswith("SN:")
        for g in line.split("\t")
        if g.startswith("M5:")
    }
    assert {s.name: s.md5 for s in build.sequences} == m5
    assert [s.length for s in build.sequences] == [13, 4]
    a = build.sequences[0]
    assert reg.cache_path(a.md5).read_bytes() == b"ACGTACGTNNACG"
    assert a.refget == refget_digest(b"ACGTACGTNNACG")
    assert reg.add(fa, "test1") == build  # idempotent
    assert [b.name for b in reg.builds()] == ["test1"]


def test_a_build_is_immutable(catalog: Catalog, tmp_path: Path) -> None:
    reg = Registry(catalog, tmp_path / "refs")
    a, b = tmp_path / "a.fa", tmp_path / "b.fa"
    a.write_text(">chr1\nACGT\n")
    b.write_text(">chr1\nACGA\n")
    reg.add(a, "B1")
    with pytest.raises(InputError, match="already registered with other sequences"):
        reg.add(b, "B1")
    assert not list((tmp_path / "refs" / "builds").glob(".B1.*"))  # no temporary left


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "no sequences"), (b"ACGT\n", "not a valid FASTA"), (b">a\nAC\n>a\nGT\n", "repeated")],
)
def test_bad_fasta(sqlite_catalog: Catalog, tmp_path: Path, content: bytes, message: str) -> None:
    fa = tmp_path / "bad.fa"
    fa.write_bytes(content)
    with pytest.raises(InputError, match=message) as exc:
        Registry(sqlite_catalog, tmp_path / "refs").add(fa, "X")
    assert str(fa) in str(exc.value)
    assert not list((tmp_path / "refs" / "builds").iterdir())


def test_cram_decodes_with_the_registry_alone(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    ref = write_reference(tmp_path / "ref" / "r.fa", seed=3)
    g = write_genome(tmp_path / "g", "G1", ref, seed=4, n_pairs=200)
    reg = Registry(sqlite_catalog, tmp_path / "refs")
    assert [n for n, _ in reg.check_file(g.cram)] == ["chrS"]  # not registered yet
    reg.add(ref, "synth")
    assert reg.check_file(g.cram) == []
    ref.unlink()  # the FASTA the CRAM was written with is gone: the registry must suffice
    Path(f"{ref}.fai").unlink()
    assert record_checksums(g.cram, cache=reg.cache)["count"] == "400"


def test_unknown_build(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not registered"):
        Registry(sqlite_catalog, tmp_path / "refs").get("GRCh38")
