"""A corpus of FASTQ dialects, one small file (or pair) each, as twenty years of sequencing left.

`write_corpus(folder)` writes every dialect below and returns them; the tests convert, prove,
restore and byte-compare each one, and `wgsvault demo` users can try them. Records are random
but seeded, so the corpus is the same on every machine. What each dialect holds:

* `casava`: bcl2fastq 2 names and comments `1:N:0:ACGTACGT+TTGACCAA`, paired, a few filtered
  reads (`Y`);
* `casava_numeric`: comments with a numeric sample index and control numbers other than 0;
* `bclconvert_umi`: BCL Convert names with a UMI as 8th field;
* `illumina_old`: `#0/1` `#0/2` names (pipeline 1.4), paired; `suffix_only`: `/1` `/2`, no `#0`;
* `mgi`: MGI/DNBSEQ names `V300...L1C001R0010000001/1`;
* `sra`: SRA/ENA dumps, `@SRR.. original-name length=N` with the `+` line repeating the header;
* `free_text`, `key_value` (Nanopore-like `runid=.. read=.. ch=..`, reads of 100 kb and more),
  `pacbio` (`movie/zmw/ccs np=.. rq=..`);
* `mixed`: records with and without comments in one file (as SRA gives some runs);
* `bases`: lower-case (soft-masked), IUPAC codes, `.` and `U`; `empty_reads`: reads of length 0;
* `odd_bytes`: a tab between name and comment, a byte beyond ASCII, a name holding `@`, a name
  of 300 characters, qualities below `!`, a one-base read of quality `*`, a `+` line that
  repeats a different text;
* `crlf`: CR LF line ends; `no_final_newline`; `blank_tail`: blank lines after the last record;
* `interleaved`: mates one after the other in one file;
* compression variants of `casava` R1: plain, gzip, BGZF, multi-member gzip.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pysam

Rec = tuple[bytes, bytes, bytes, bytes]  # header (without @), sequence, plus text, qualities


@dataclass(frozen=True)
class Dialect:
    name: str
    files: tuple[Path, ...]
    layout: str  # single | paired | interleaved
    note: str


def _seq(rng: random.Random, n: int, alphabet: str = "ACGT") -> bytes:
    return "".join(rng.choices(alphabet, k=n)).encode()


def _qual(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(b"FFFF:,#") for _ in range(n))


def _fastq(recs: list[Rec], eol: bytes = b"\n") -> bytes:
    return b"".join(b"@" + h + eol + s + eol + b"+" + p + eol + q + eol for h, s, p, q in recs)


def _pairs(
    rng: random.Random, n: int, header: Callable[[int, int], tuple[bytes, bytes]], length: int = 100
) -> tuple[list[Rec], list[Rec]]:
    r1: list[Rec] = []
    r2: list[Rec] = []
    for i in range(n):
        h1, h2 = header(i, rng.randrange(1 << 30))
        r1.append((h1, _seq(rng, length), b"", _qual(rng, length)))
        r2.append((h2, _seq(rng, length), b"", _qual(rng, length)))
    return r1, r2


def _singles(
    rng: random.Random, n: int, header: Callable[[int], bytes], length: int = 100
) -> list[Rec]:
    return [(header(i), _seq(rng, length), b"", _qual(rng, length)) for i in range(n)]


def _casava(rng: random.Random, n: int) -> tuple[list[Rec], list[Rec]]:
    def h(i: int, r: int) -> tuple[bytes, bytes]:
        name = b"A00531:443:HKTLJDSXY:2:1101:%d:%d" % (1000 + i * 17 % 30000, 1000 + i)
        f = b"Y" if i % 37 == 5 else b"N"
        return (
            name + b" 1:" + f + b":0:ACGTACGT+TTGACCAA",
            name + b" 2:" + f + b":0:ACGTACGT+TTGACCAA",
        )

    return _pairs(rng, n, h, 151)


def write_corpus(folder: Path, n: int = 200, seed: int = 13) -> list[Dialect]:
    """Write every dialect into `folder` (created) and return them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out: list[Dialect] = []

    def put(name: str, data: bytes, *, gz: bool = True) -> Path:
        p = folder / (name + (".fastq.gz" if gz else ".fastq"))
        p.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        return p

    def pair(name: str, recs: tuple[list[Rec], list[Rec]], note: str) -> None:
        files = (put(f"{name}_R1", _fastq(recs[0])), put(f"{name}_R2", _fastq(recs[1])))
        out.append(Dialect(name, files, "paired", note))

    def single(name: str, data: bytes, note: str, *, gz: bool = True) -> None:
        out.append(Dialect(name, (put(name, data, gz=gz),), "single", note))

    casava = _casava(rng, n)
    pair("casava", casava, "bcl2fastq names and CASAVA 1.8 comments, filtered reads")
    pair(
        "casava_numeric",
        _pairs(
            rng,
            n,
            lambda i, r: (
                b"M00123:7:000000000-A1B2C:1:1101:%d:%d 1:N:%d:%d"
                % (i, r % 9999, i % 3 * 9, i % 12 + 1),
                b"M00123:7:000000000-A1B2C:1:1101:%d:%d 2:N:%d:%d"
                % (i, r % 9999, i % 3 * 9, i % 12 + 1),
            ),
        ),
        "CASAVA comments with numeric index and control numbers 0, 9, 18",
    )

    def umi(i: int, r: int) -> tuple[bytes, bytes]:
        name = b"A01234:88:HABCDEFXY:1:1101:%d:%d:%s" % (i, r % 50000, _seq(rng, 8))
        return name + b" 1:N:0:GATCAG+CTGATC", name + b" 2:N:0:GATCAG+CTGATC"

    pair("bclconvert_umi", _pairs(rng, n, umi), "BCL Convert names with UMIs")
    pair(
        "illumina_old",
        _pairs(
            rng,
            n,
            lambda i, r: (
                b"HWI-EAS209_0006_FC706VJ:5:58:%d:%d#0/1" % (i, r % 2000),
                b"HWI-EAS209_0006_FC706VJ:5:58:%d:%d#0/2" % (i, r % 2000),
            ),
            76,
        ),
        "Illumina pipeline 1.4 names with #0/1 and #0/2",
    )
    pair(
        "suffix_only",
        _pairs(rng, n, lambda i, r: (b"read%d/1" % i, b"read%d/2" % i), 50),
        "names differing only by /1 /2",
    )
    pair(
        "mgi",
        _pairs(
            rng, n, lambda i, r: (b"V300012345L1C001R%010d/1" % i, b"V300012345L1C001R%010d/2" % i)
        ),
        "MGI/DNBSEQ names",
    )
    sra = [
        (h, s, h, q)
        for h, s, _, q in _singles(
            rng,
            n,
            lambda i: b"SRR1234567.%d HWI-ST1234:8:1101:%d:%d length=100" % (i + 1, i, i * 3),
        )
    ]
    single("sra", _fastq(sra), "SRA/ENA dump: length= comment, '+' repeating the header")
    single(
        "free_text",
        _fastq(
            _singles(
                rng,
                n,
                lambda i: b"read_%d sample Kidney-12 lane 3, from the 2009 run (re-called)" % i,
            )
        ),
        "free-text comments",
    )
    kv = _singles(
        rng,
        6,
        lambda i: (
            b"%08x-1c2d-4e5f-8a9b-%012x runid=6a8c%dd0 read=%d ch=%d "
            b"start_time=2021-03-0%dT10:11:12Z flow_cell_id=FAQ12345 protocol_group_id=kidney"
            % (i, i * 7919, i, 100 + i, 17 * i + 1, i + 1)
        ),
        0,
    )
    kv = [
        (h, _seq(rng, 100_000 + 997 * i), p, _qual(rng, 100_000 + 997 * i))
        for i, (h, _, p, _) in enumerate(kv)
    ]
    single("key_value", _fastq(kv), "Nanopore-like key=value comments, reads of 100 kb and more")
    single(
        "pacbio",
        _fastq(
            _singles(
                rng,
                20,
                lambda i: b"m64011_190830_220126/%d/ccs np=%d rq=0.99%d" % (i * 131, i + 3, i),
                15_000,
            )
        ),
        "PacBio HiFi names and key=value comments",
    )
    mixed = _singles(rng, n, lambda i: b"SRR0%d" % i + (b" 1:N:0:CAGATC" if i % 7 else b""))
    single("mixed", _fastq(mixed), "some records with a comment, others without")
    bases = [
        (b"b%d" % i, s, b"", _qual(rng, len(s)))
        for i, s in enumerate(
            [
                b"ACGTacgtNNnnACGT",
                b"ACGTRYKMSWBDHVNacgtrykmswbdhvn",
                b"ACGT.ACGT..N",
                b"ACGUUGCAu",
                b"acgtacgtacgt",
                b"ACGT=XACGT",
            ]
        )
    ]
    single("bases", _fastq(bases), "lower-case, IUPAC codes, '.', 'U', '=' and 'X' bases")
    empty = _singles(rng, 10, lambda i: b"e%d" % i, 0) + _singles(rng, 3, lambda i: b"f%d" % i, 5)
    single("empty_reads", _fastq(empty), "reads of length 0 among others")
    odd: list[Rec] = [
        (b"tab1\tcomment after a tab", b"ACGT", b"", b"FFFF"),
        (b"latin1 Pr\xf8ve fra Aalborg", b"ACGT", b"", b"FFFF"),
        (b"name@with@at comment", b"ACGT", b"", b"FFFF"),
        (b"L" * 300 + b" long name", b"ACGT", b"", b"FFFF"),
        (b"lowq", b"ACGT", b"", b'\x1f !"'),
        (b"star", b"A", b"", b"*"),
        (b"plus", b"ACGT", b"something else", b"FFFF"),
        (b"backslash a\\x41\\\\b", b"ACGT", b"", b"FFFF"),
        (b"", b"ACGT", b"", b"FFFF"),
        (b" only a comment", b"ACGT", b"", b"FFFF"),
    ]
    single("odd_bytes", _fastq(odd), "tabs, non-ASCII, '@' in names, 300-byte names, odd qualities")
    plain = _fastq(casava[0][:20])
    single("crlf", plain.replace(b"\n", b"\r\n"), "CR LF line ends", gz=False)
    single("no_final_newline", plain[:-1], "no line end after the last line", gz=False)
    single("blank_tail", plain + b"\n\n", "blank lines after the last record", gz=False)
    inter = [r for ab in zip(casava[0][:50], casava[1][:50], strict=True) for r in ab]
    out.append(
        Dialect(
            "interleaved",
            (put("interleaved", _fastq(inter)),),
            "interleaved",
            "mates one after the other in one file",
        )
    )
    r1 = _fastq(casava[0])
    single("plain", r1, "uncompressed", gz=False)
    bgzf = folder / "bgzf.fastq.gz"
    src = folder / "bgzf.fastq"
    src.write_bytes(r1)
    pysam.tabix_compress(str(src), str(bgzf), force=True)
    src.unlink()
    out.append(Dialect("bgzf", (bgzf,), "single", "BGZF (blocked gzip)"))
    multi = folder / "multimember.fastq.gz"
    half = len(casava[0]) // 2
    multi.write_bytes(
        gzip.compress(_fastq(casava[0][:half]), mtime=0)
        + gzip.compress(_fastq(casava[0][half:]), mtime=0)
    )
    out.append(Dialect("multimember", (multi,), "single", "gzip of several members"))
    return out
