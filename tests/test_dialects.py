"""Every FASTQ dialect round-trips byte for byte: convert -> proof -> restore -> compare, and
`verify` proves it again; what cannot be a FASTQ record is refused by line, leaving nothing."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pysam
import pytest

from wgsvault.catalog import Catalog
from wgsvault.codec.convert import convert_fastq
from wgsvault.codec.fastq_encode import Encoder
from wgsvault.codec.fastqfmt import read_recipe
from wgsvault.codec.refs import Registry
from wgsvault.codec.restore import restore
from wgsvault.codec.verify import verify
from wgsvault.demo.dialects import Dialect, write_corpus
from wgsvault.errors import InputError

from conftest import shared


def plain(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dialect]:
    return {d.name: d for d in write_corpus(tmp_path_factory.mktemp("dialects"))}


@pytest.fixture
def registry(sqlite_catalog: Catalog, tmp_path: Path) -> Registry:
    return Registry(sqlite_catalog, tmp_path / "refs")


NAMES = [
    "casava", "casava_numeric", "bclconvert_umi", "illumina_old", "suffix_only", "mgi", "sra",
    "free_text", "key_value", "pacbio", "mixed", "bases", "empty_reads", "odd_bytes", "crlf",
    "no_final_newline", "blank_tail", "interleaved", "plain", "bgzf", "multimember",
]  # fmt: skip


def test_corpus_has_every_dialect(corpus: dict[str, Dialect]) -> None:
    assert sorted(corpus) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_dialect_round_trips_byte_for_byte(
    name: str, corpus: dict[str, Dialect], registry: Registry, tmp_path: Path
) -> None:
    d = corpus[name]
    out = tmp_path / f"{name}.cram"
    r2 = d.files[1] if d.layout == "paired" else None
    res = convert_fastq(d.files[0], r2, out, interleaved=d.layout == "interleaved")
    assert res.proof["ok"] and all(c["ok"] for c in res.proof["checks"]["restore_sha256"])
    recipe = read_recipe(out)
    assert recipe is not None and recipe.layout == d.layout
    for gz in (False, True):
        backs = restore(out, "fastq", tmp_path / f"back{gz}", registry=registry, gz=gz)
        assert len(backs) == len(d.files)
        for orig, back in zip(d.files, backs, strict=True):
            assert plain(back) == plain(orig), f"{name}: {back.name} differs from {orig.name}"
    again = verify(list(d.files), out, registry=registry)
    assert again["ok"], again
    assert leftovers(tmp_path) == []


def test_comments_live_in_standard_tags_any_reader_sees(
    corpus: dict[str, Dialect], tmp_path: Path
) -> None:
    """The CASAVA comment is the record's CO tag; a soft-masked base run its zc tag."""
    out = tmp_path / "c.cram"
    convert_fastq(corpus["casava"].files[0], corpus["casava"].files[1], out)
    with pysam.AlignmentFile(str(out), "rc", check_sq=False) as fh:
        rec = next(fh.fetch(until_eof=True))
        assert rec.get_tag("CO") == " 1:N:0:ACGTACGT+TTGACCAA" and rec.is_read1
        assert rec.query_name.startswith("A00531:443:HKTLJDSXY:2:1101:")
    recipe = read_recipe(out)
    assert recipe is not None and recipe.tags == {"CO": 400}
    out2 = tmp_path / "b.cram"
    convert_fastq(corpus["bases"].files[0], None, out2)
    with pysam.AlignmentFile(str(out2), "rc", check_sq=False) as fh:
        first = next(fh.fetch(until_eof=True))
    assert first.query_sequence == "ACGTACGTNNNNACGT" and list(first.get_tag("zc")) == [4, 4, 10, 2]


def test_samtools_alone_shows_the_comments(corpus: dict[str, Dialect], tmp_path: Path) -> None:
    """No wgsvault needed to read the comments back: `samtools fastq -T CO` prints them."""
    out = tmp_path / "s.cram"
    convert_fastq(corpus["sra"].files[0], None, out)
    text = subprocess.run(
        [sys.executable, "-m", "wgsvault.codec.samtools", "fastq", "-T", "CO", str(out)],
        check=True, capture_output=True, text=True,
    ).stdout
    assert text.startswith("@SRR1234567.1\tCO:Z: HWI-ST1234:8:1101:0:0 length=100\n")


def test_real_reads(registry: Registry, tmp_path: Path) -> None:
    real = shared("real")
    r1, r2 = real / "NA12878_chr20_region_R1.fastq.gz", real / "NA12878_chr20_region_R2.fastq.gz"
    out = tmp_path / "na.cram"
    convert_fastq(r1, r2, out)
    b1, b2 = restore(out, "fastq", tmp_path / "na", registry=registry, gz=False)
    assert b1.read_bytes() == plain(r1) and b2.read_bytes() == plain(r2)


def _refused(tmp_path: Path, data: bytes, message: str, *, r2: bytes | None = None,
             interleaved: bool = False, name: str = "bad.fastq") -> None:
    a = tmp_path / name
    a.write_bytes(data)
    b = None
    if r2 is not None:
        b = tmp_path / "bad_R2.fastq"
        b.write_bytes(r2)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match=message) as exc:
        convert_fastq(a, b, tmp_path / "bad.cram", interleaved=interleaved)
    assert str(exc.value).count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left behind


REC = b"@r1 c\nACGT\n+\nFFFF\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # what truly cannot be kept as FASTQ records: refused, naming the line
        (b"@r1\nACGT\nACGT\n+\nFFFF\nFFFF\n", r"bad.fastq: line 3 \(record 1\): no '\+' line"),
        (REC.replace(b"\n", b"\r\n") + REC, r"line 5 \(record 2\): LF line end in a file of CR LF"),
        (REC + REC.replace(b"\n", b"\r\n"), r"line 5 \(record 2\): CR LF line end in a file of LF"),
        # broken input
        (REC + b"@r2\nACGT\n+\nFFF\n", r"line 8 \(record 2\): 3 quality values for 4 bases"),
        (REC + b"@r2\nACGT\n", r"line 5 \(record 2\): the file ends inside a record"),
        (b"\x89PNG\r\n\x1a\n\0\0\0", r"bad.fastq: line 1: not FASTQ \(starts with binary data"),
        (b"", r"bad.fastq: empty file"),
        (REC + b"\n" + REC, r"line 5 \(record 2\): blank line between records"),
        (REC + b"r2\nACGT\n+\nFFFF\n", r"line 5 \(record 2\): expected a header line"),
    ],
)
def test_bad_input_is_refused_by_line(tmp_path: Path, data: bytes, message: str) -> None:
    _refused(tmp_path, data, message)


def test_truncated_and_corrupt_gzip(corpus: dict[str, Dialect], tmp_path: Path) -> None:
    data = corpus["casava"].files[0].read_bytes()
    _refused(tmp_path, data[: len(data) // 2], r"bad.fastq.gz: truncated or corrupt gzip after "
             r"record \d+", name="bad.fastq.gz")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    _refused(tmp_path, bytes(flipped), r"bad.fastq.gz: truncated or corrupt gzip",
             name="bad.fastq.gz")


def test_pairs_out_of_step_and_counts(tmp_path: Path) -> None:
    _refused(tmp_path, REC + REC, r"bad_R2.fastq: ends after 1 records but bad.fastq has more",
             r2=REC)
    _refused(tmp_path, REC, r"bad_R2.fastq: record 1: name 'x1' is not the mate of 'r1'",
             r2=b"@x1\nACGT\n+\nFFFF\n")
    _refused(tmp_path, REC * 3, r"bad.fastq: record 3 has no mate", interleaved=True)
    _refused(tmp_path, b"@a/1\nA\n+\nF\n@b/2\nA\n+\nF\n",
             r"records 1 and 2: name 'b/2' is not the mate of 'a/1'", interleaved=True)


def test_a_conversion_whose_proof_fails_lands_nothing(
    corpus: dict[str, Dialect], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encoder that loses one comment is caught by the byte proof, with line and record."""
    line = Encoder.line

    def lossy(self: Encoder, h: bytes, *args: object) -> bytes:
        if h.startswith(b"read_7 "):
            h = h[:6]
        return line(self, h, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Encoder, "line", lossy)
    src = corpus["free_text"].files[0]
    with pytest.raises(InputError, match=r"free_text.fastq.gz: the CRAM would not give this "
                       r"FASTQ back byte for byte: line 29 \(record 8\) differs"):
        convert_fastq(src, None, tmp_path / "lossy.cram")
    assert list(tmp_path.iterdir()) == []


def test_cli_interleaved_round_trip(corpus: dict[str, Dialect], tmp_path: Path) -> None:
    src = corpus["interleaved"].files[0]
    cram = tmp_path / "i.cram"
    cli = [str(Path(sys.executable).parent / "wgsvault")]
    env = {"WGSVAULT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    subprocess.run([*cli, "convert", "fastq", str(src), "--interleaved", "-o", str(cram)],
                   check=True, env=env, capture_output=True)
    subprocess.run([*cli, "restore", str(cram), "--to", "fastq", "-o", str(tmp_path / "i")],
                   check=True, env=env, capture_output=True)
    assert plain(tmp_path / "i.fastq.gz") == plain(src)
    proof = json.loads(Path(f"{cram}.proof.json").read_text())
    assert proof["recipe"]["layout"] == "interleaved"


#: dialects whose records a CRAM made by others holds as they are: covered, restored exactly
COVERED = [
    "casava", "casava_numeric", "bclconvert_umi", "illumina_old", "suffix_only", "mgi", "sra",
    "free_text", "key_value", "pacbio", "mixed", "empty_reads", "plain", "bgzf", "multimember",
]  # fmt: skip


@pytest.mark.parametrize("name", COVERED)
def test_dialect_covered_by_a_cram_and_restored_from_the_sidecar(
    name: str, corpus: dict[str, Dialect], tmp_path: Path
) -> None:
    """verify-covers proves each dialect's records are in a CRAM holding only names, bases and
    qualities (samtools import, no comments); CRAM + sidecar give the files back exactly."""
    from wgsvault.codec.covers import verify_covers
    from wgsvault.codec.covers_restore import restore_fastq

    d = corpus[name]
    cram = tmp_path / "other.cram"
    reads = ["-1", str(d.files[0]), "-2", str(d.files[1])] if len(d.files) == 2 else [
        "-0", str(d.files[0])]
    subprocess.run([sys.executable, "-m", "wgsvault.codec.samtools", "import", *reads,
                    "-o", str(cram)], check=True, capture_output=True)
    sc = tmp_path / "sc"
    rep = verify_covers(list(d.files), cram, sidecar=sc, keep_order=True)
    assert rep.covered and rep.restore_verified, rep.reason
    outs = restore_fastq(cram, sc, tmp_path / "back", gzip=False, keep_order=True)
    for orig, back in zip(d.files, outs, strict=True):
        assert back.read_bytes() == plain(orig)


def test_soft_masked_bases_are_not_covered_by_an_aligned_cram(
    corpus: dict[str, Dialect], tmp_path: Path
) -> None:
    """A CRAM holds bases upper-case: lower-case FASTQ bases are not in it, so verify-covers
    says so (and the FASTQ is kept; `convert fastq` keeps such files whole)."""
    from wgsvault.codec.covers import verify_covers

    src = corpus["bases"].files[0]
    cram = tmp_path / "upper.cram"
    subprocess.run([sys.executable, "-m", "wgsvault.codec.samtools", "import", "-0", str(src),
                    "-o", str(cram)], check=True, capture_output=True)
    rep = verify_covers([src], cram, sidecar=tmp_path / "sc", keep_order=True)
    assert not rep.covered and rep.altered == 6 and "b0" in rep.reason
    assert not (tmp_path / "sc").exists()
