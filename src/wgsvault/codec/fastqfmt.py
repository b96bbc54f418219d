"""What a FASTQ file looks like, and whether CRAM can give it back byte for byte.

An unaligned CRAM keeps a read's name, sequence, qualities and flags. A FASTQ header line can hold
more: a comment after the name, `/1` `/2` suffixes, a `+` line that repeats the name. Before a
FASTQ is converted, `sniff` reads its first records and decides how the conversion must run so
that `samtools fastq` restores the exact bytes:

* names only, or names with `/1` `/2` suffixes (restored with `samtools fastq -N`);
* CASAVA 1.8 comments `1:N:0:ACGT+TGCA` (read number, filter flag, control number 0, index),
  parsed by `samtools import -i` into flags and the BC tag and rebuilt by `samtools fastq -i`.

Anything else that cannot round-trip (another comment, a `+` line repeating the name, lower-case
bases, wrapped sequences, CRLF line ends) is refused with the file and record number. The sniff
sees only the first records; the proof after conversion compares every byte, and `diagnose`
explains the first difference when it fails.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import dnaio
import pysam

from wgsvault.errors import InputError

SNIFF_RECORDS = 10_000
#: starts the header comment that holds a converted CRAM's restore recipe (`@CO`, then JSON)
RECIPE_TAG = "wgsvault-fastq:"
_CASAVA = re.compile(r"^[12]:[YN]:0:[ACGTN]+(\+[ACGTN]+)?$")
_LOWER = re.compile(r"[a-z]")


@dataclass(frozen=True)
class FastqFormat:
    """How the reads of one FASTQ file or pair are named (the restore recipe)."""

    paired: bool
    casava: bool
    suffix: bool  # names end in /1 and /2

    def fastq_args(self) -> list[str]:
        """`samtools fastq` options that rebuild the header lines."""
        args = ["-N" if self.suffix else "-n"]
        if self.casava:
            args += ["-i", "--index-format", "i*i*"]
        return args

    def output_args(self, files: list[str]) -> list[str]:
        """`samtools fastq` options that send every record to `files` (R1, R2 or the one file).

        `samtools import -i` flags CASAVA single-end reads READ1 (mate-less), so they are sent with
        `-o`; plain single-end reads carry neither READ flag and go to `-0`.
        """
        if self.paired:
            return ["-1", files[0], "-2", files[1], "-0", "/dev/null", "-s", "/dev/null"]
        if self.casava:
            return ["-o", files[0], "-0", "/dev/null"]
        return ["-0", files[0], "-s", "/dev/null"]

    def import_args(self) -> list[str]:
        return ["-i"] if self.casava else []

    def to_dict(self) -> dict[str, bool]:
        return {"paired": self.paired, "casava": self.casava, "suffix": self.suffix}


def _records(path: Path, limit: int) -> tuple[list[dnaio.SequenceRecord], bool]:
    """Up to `limit` records and whether the file's '+' lines repeat the name."""
    out: list[dnaio.SequenceRecord] = []
    try:
        with dnaio.open(path, fileformat="fastq") as reader:
            for rec in reader:
                out.append(rec)
                if len(out) >= limit:
                    break
            two_headers = bool(getattr(reader, "two_headers", False))
    except dnaio.exceptions.FileFormatError as exc:
        raise InputError(f"{path}: malformed FASTQ: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if not out:
        raise InputError(f"{path}: no FASTQ records")
    return out, two_headers


def _check(path: Path, records: list[dnaio.SequenceRecord], two_headers: bool) -> None:
    if two_headers:
        raise InputError(
            f"{path}: record 1: the '+' line repeats the read name; CRAM cannot keep it "
            "(rewrite the '+' lines or keep this FASTQ)"
        )
    for i, rec in enumerate(records, 1):
        if _LOWER.search(rec.sequence):
            raise InputError(
                f"{path}: record {i} ({rec.id}): lower-case bases; CRAM stores bases upper-case, "
                "so the FASTQ could not be restored byte for byte"
            )
        if rec.name.endswith("\r"):
            raise InputError(f"{path}: record {i}: CRLF line ends cannot round-trip through CRAM")


def _naming(path: Path, records: list[dnaio.SequenceRecord], read: int | None) -> tuple[bool, bool]:
    """(casava, suffix) of a file's records; mixed conventions are refused."""
    first = records[0]
    casava = " " in first.name
    suffix = read is not None and first.id.endswith(f"/{read}")
    for i, rec in enumerate(records, 1):
        comment = rec.name[len(rec.id) :].strip() if " " in rec.name or "\t" in rec.name else ""
        if comment:
            if not _CASAVA.match(comment) or (read and comment[0] != str(read)):
                raise InputError(
                    f"{path}: record {i} ({rec.id}): header comment {comment!r} is not a "
                    f"CASAVA 1.8 comment for read {read or 1}; it cannot be kept in the CRAM"
                )
            if not casava:
                raise InputError(f"{path}: record {i}: some records have a comment, others not")
        elif casava:
            raise InputError(f"{path}: record {i}: some records have a comment, others not")
        if read is not None and rec.id.endswith(f"/{read}") != suffix:
            raise InputError(f"{path}: record {i}: some names end in /{read}, others not")
    return casava, suffix


def _stem(name: str, suffix: bool) -> str:
    return name[:-2] if suffix else name


def sniff(r1: Path, r2: Path | None = None, limit: int = SNIFF_RECORDS) -> FastqFormat:
    """Decide the restore recipe of a FASTQ file or pair, or refuse with a precise error."""
    recs1, two1 = _records(r1, limit)
    _check(r1, recs1, two1)
    if r2 is None:
        casava, _ = _naming(r1, recs1, None)
        return FastqFormat(paired=False, casava=casava, suffix=False)
    recs2, two2 = _records(r2, limit)
    _check(r2, recs2, two2)
    casava1, suffix1 = _naming(r1, recs1, 1)
    casava2, suffix2 = _naming(r2, recs2, 2)
    if (casava1, suffix1) != (casava2, suffix2):
        raise InputError(f"{r2}: read names are formatted unlike those of {r1}")
    for i, (a, b) in enumerate(zip(recs1, recs2, strict=False), 1):
        if _stem(a.id, suffix1) != _stem(b.id, suffix2):
            raise InputError(
                f"{r2}: record {i}: name {b.id} does not match {a.id} in {r1} (mates out of step)"
            )
    if len(recs1) != len(recs2):
        raise InputError(f"{r2}: {len(recs2):,} records but {len(recs1):,} in {r1}")
    return FastqFormat(paired=True, casava=casava1, suffix=suffix1)


def diagnose(original: Path, restored: Path) -> str:
    """Where and why a restored FASTQ differs from its original (first difference)."""
    try:
        with (
            dnaio.open(original, fileformat="fastq") as a,
            dnaio.open(restored, fileformat="fastq") as b,
        ):
            i = 0
            for i, (x, y) in enumerate(zip(a, b, strict=False), 1):
                if x == y:
                    continue
                what = (
                    "name/comment"
                    if x.name != y.name
                    else "sequence"
                    if x.sequence != y.sequence
                    else "qualities"
                )
                why = ""
                if _LOWER.search(x.sequence):
                    why = " (lower-case bases)"
                return f"record {i} ({x.id}): {what} differs{why}"
            if getattr(a, "two_headers", False):
                return "the '+' lines repeat the read name"
            return f"same {i:,} records, but the bytes differ (line wrapping or line ends)"
    except dnaio.exceptions.FileFormatError as exc:
        return f"malformed FASTQ: {exc}"


def read_recipe(cram: Path) -> FastqFormat | None:
    """The FASTQ restore recipe a converted CRAM carries in its header, if any."""
    level = pysam.set_verbosity(0)  # no "could not retrieve index" noise: only the header is read
    try:
        with pysam.AlignmentFile(str(cram), "rc", check_sq=False) as fh:
            comments = fh.header.to_dict().get("CO", [])
    except (OSError, ValueError) as exc:
        raise InputError(f"{cram}: cannot read CRAM header: {exc}") from None
    finally:
        pysam.set_verbosity(level)
    for co in comments:
        if co.startswith(RECIPE_TAG):
            d = json.loads(co[len(RECIPE_TAG) :])
            return FastqFormat(paired=d["paired"], casava=d["casava"], suffix=d["suffix"])
    return None
