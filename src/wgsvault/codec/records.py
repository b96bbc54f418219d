"""Reading a CRAM's primary records as sequenced, and the canonical order of reads.

What proving (covers.py) and restoring (covers_restore.py) FASTQ from an aligned CRAM share:

* `primary_records`, the one reader of a CRAM's primary records (`samtools view -F 0x900` in a
  child process, SAM text parsed here by `parse_record`: reverse-strand records reverse-
  complemented back, qualities from `OQ` when present); `view_fastq`, the same records as
  htslib's FASTQ writer gives them, which the restore reads (checked against `parse_record`);
* the record digests (`core_digest` of name+mate, sequence, qualities; `full_digest` with the
  header tail);
* `SamSort`, `samtools sort -t TAG` of records fed from Python, which sorts out of core (the
  proof's order ranks; the restore sorts by itself, covers_batches.py);
* the canonical order: read pairs (or single reads) sorted by `canonical_key`: Illumina names
  `PREFIX:LANE:TILE:X:Y` (e.g. `INSTR:RUN:FC:LANE:TILE:X:Y`) by (prefix, lane, tile, y, x), which
  is the order bcl2fastq writes within a tile; other names after them, by name; ties (equal names)
  by the records' full digests. `order_key` is a string that sorts byte-wise (`strcmp`) exactly
  like `canonical_key`, so that samtools can sort by it (covers_sort.py sorts by the same key,
  read from the names with numpy). With `keep_order` the sidecar holds each original record's
  rank in that order (`identity` when the input already is canonical).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from wgsvault.codec import htslib
from wgsvault.errors import InputError, IntegrityError
from wgsvault.inventory import digest

_B2 = hashlib.blake2b
#: multiset checksums are sums of 128-bit record digests modulo 2**128
MASK = (1 << 128) - 1
_COMPLEMENT = str.maketrans("ACGTRYKMBVDHNacgtrykmbvdhn", "TGCAYRMKVBHDNtgcayrmkvbhdn")
_SHOW_SUFFIX = {"0": "", "1": "/1", "2": "/2"}
#: default memory of each samtools sort thread (samtools' own default is 768M)
SORT_MEMORY = "512M"
#: SAM FLAG of a record handed to samtools sort, by mate code (unmapped; paired READ1/READ2)
_FLAG = {"0": "4", "1": "77", "2": "141"}
_BATCH = 8192


def canonical_key(name: str) -> tuple[int, str, int, int, int, int, str]:
    """Sort key of a read name: Illumina `PREFIX:LANE:TILE:X:Y` by (prefix, lane, tile, y, x)."""
    f = name.split(":")
    if len(f) >= 5:
        try:
            return (0, ":".join(f[:-4]), int(f[-4]), int(f[-3]), int(f[-1]), int(f[-2]), name)
        except ValueError:
            pass
    return (1, name, 0, 0, 0, 0, name)


def _int_key(n: int) -> str:
    """An order-preserving, self-delimiting string for any int: sign, digit count, digits.

    `P` + one-digit count for 0 <= n < 10**9 (the usual case), `Q` + four-digit count for
    bigger, `N` + the count's complement to 9999 and the digits' complement to 9 for negatives.
    """
    if n >= 0:
        d = str(n)
        return f"P{len(d)}{d}" if len(d) < 10 else f"Q{len(d):04d}{d}"
    d = str(-n).translate(_NINES)
    return f"N{9999 - len(d):04d}{d}"


_NINES = str.maketrans("0123456789", "9876543210")
_HEADS: dict[str, str | None] = {}  # "PREFIX:LANE:TILE" -> its encoded part (None: not Illumina)


def order_key(name: str) -> str:
    """`canonical_key(name)` as a string that sorts byte-wise in the same order (for samtools).

    Read names hold no whitespace, so a space ends the variable-length parts (prefix, name): it
    sorts before every character a name can hold, as the end of a shorter string does. The
    encoded `PREFIX:LANE:TILE` part is cached (a run has few tiles; the cache is bounded).
    """
    f = name.rsplit(":", 4)
    if len(f) == 5:
        head = name[: len(name) - len(f[3]) - len(f[4]) - 2]
        enc = _HEADS.get(head, "")
        if enc == "":
            try:
                enc = f"0{f[0]} {_int_key(int(f[1]))}{_int_key(int(f[2]))}"
            except ValueError:
                enc = None
            if len(_HEADS) > 100_000:
                _HEADS.clear()
            _HEADS[head] = enc
        if enc is not None:
            try:
                return f"{enc}{_int_key(int(f[4]))}{_int_key(int(f[3]))}{name} "
            except ValueError:
                pass
    return f"1{name} "


def core_digest(key: str, seq: str, qual: str) -> bytes:
    """Digest of what the CRAM must hold: name+mate, sequence, qualities."""
    return _B2(f"{key}\x00{seq}\x00{qual}".encode(), digest_size=16).digest()


def full_digest(key: str, seq: str, qual: str, tail: str) -> bytes:
    """Digest of a full FASTQ record: name+mate, sequence, qualities and header tail."""
    return _B2(f"{key}\x00{seq}\x00{qual}\x00{tail}".encode(), digest_size=16).digest()


def show(key: str) -> str:
    """A key (bare name + mate code) as a FASTQ name: `NAME/1`, `NAME/2` or `NAME`."""
    return key[:-1] + _SHOW_SUFFIX.get(key[-1], "")


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes; InputError when it cannot be read."""
    try:
        return digest.sha256_file(str(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


class _Child:
    """A samtools child process whose stdout is read as text lines; stderr goes to a temp file."""

    def __init__(self, args: list[str], what: str, error: type[Exception], stdin: bool) -> None:
        self.what, self.error = what, error
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()/kill()
        if stdin:  # htslib.popen() has no stdin pipe: the same argv and environment, with one
            self.proc = subprocess.Popen(
                htslib.samtools_argv(*args),
                env=htslib.child_env(None),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
            )
        else:
            self.proc = htslib.popen(args, cache=None, stderr=self._err)
        assert self.proc.stdout is not None
        self.stdout: IO[bytes] = self.proc.stdout  # as bytes (read either this or `lines`)
        self.lines: IO[str] = io.TextIOWrapper(self.proc.stdout, encoding="utf-8", newline="\n")

    def message(self) -> str:
        self._err.seek(0)
        return htslib.first_error(self._err.read().decode(errors="replace"))

    def finish(self) -> None:
        """Wait for a clean exit; raise `error` with samtools' message otherwise."""
        self.lines.close()
        rc = self.proc.wait()
        self._err.seek(0)
        self.log = self._err.read().decode(errors="replace")
        msg = htslib.first_error(self.log) if rc else ""
        self._err.close()
        if rc:
            raise self.error(f"{self.what}: {msg}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for fh in (self.proc.stdin, self.proc.stdout):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()
        self._err.close()


def parse_record(line: str) -> tuple[str, str, str, str]:
    """(name, mate code, sequence, qualities) of a SAM line, as sequenced.

    Reverse-strand records are reverse-complemented back; qualities come from `OQ` when it is
    the first tag (the CRAM is read with `--keep-tag OQ`, and later tags are appended after it).
    `*` SEQ/QUAL become ''.
    """
    f = line.split("\t", 11)
    flag = int(f[1])
    seq, qual = f[9], f[10]
    if seq == "*":
        seq = ""
    if len(f) > 11:
        tags = f[11]
        if tags.startswith("OQ:Z:"):
            end = tags.find("\t")
            qual = tags[5:end] if end >= 0 else tags[5:-1]
    else:
        qual = qual[:-1]  # the line's newline
    if qual == "*" and len(seq) != 1:  # '*' is both "absent" and the quality Q9 of one base
        qual = ""
    if flag & 0x10:
        seq = seq.translate(_COMPLEMENT)[::-1]
        qual = qual[::-1]
    return f[0], "1" if flag & 0x40 else "2" if flag & 0x80 else "0", seq, qual


def view_records(cram: Path, reference: Path | None, header: bool) -> _Child:
    """`samtools view` of the primary records (OQ the only tag kept), as SAM text lines."""
    args = ["view", "--no-PG", "-@", "1", "-F", "0x900", "--keep-tag", "OQ"]
    if reference is not None:
        args += ["-T", str(reference)]
    if header:
        args.append("-h")
    return _Child([*args, str(cram)], f"{cram}: cannot read alignments", InputError, False)


def view_fastq(cram: Path, reference: Path | None, threads: int) -> _Child:
    """`samtools view -O fastq` of the primary records (htslib's FASTQ writer), read as bytes.

    Reverse-strand records come reverse-complemented back, as `parse_record` gives them; the
    comment is CASAVA's, whose first character is the mate code (1 if READ1, else 2 if READ2,
    else 0: `parse_record`'s rule); an `OQ` tag, if any, follows the comment after a tab. Only
    the fields a FASTQ needs are decoded (no MD/NM). Every record is written (`samtools fastq`
    keeps one record per name and mate of the records of one name that follow each other).
    """
    args = ["view", "--no-PG", "-@", str(threads), "-F", "0x900", "--keep-tag", "OQ"]
    # CRAM fields decoded: SAM_QNAME | SAM_FLAG | SAM_SEQ | SAM_QUAL | SAM_AUX (htslib/sam.h)
    args += ["--input-fmt-option", "decode_md=0", "--input-fmt-option", "required_fields=0xE03"]
    args += ["-O", "fastq", "--output-fmt-option", "fastq_casava"]
    args += ["--output-fmt-option", "fastq_aux=OQ"]
    if reference is not None:
        args += ["-T", str(reference)]
    return _Child([*args, str(cram)], f"{cram}: cannot read alignments", InputError, False)


def primary_records(cram: Path, reference: Path | None) -> Iterator[tuple[str, str, str]]:
    """Yield (name+mate key, sequence, qualities) of each primary record, as sequenced.

    The CRAM is decoded by `samtools view -F 0x900` in a child process (no network: a reference
    not given is not fetched); an unreadable file raises InputError naming it.
    """
    child = view_records(cram, reference, False)
    parse = parse_record
    try:
        for line in child.lines:
            name, m, seq, qual = parse(line)
            yield name + m, seq, qual
        child.finish()
    except BaseException:
        child.kill()
        raise


class SamSort:
    """`samtools sort -t TAG` of SAM records fed by Python: `add()` them, then iterate `sorted()`.

    Sorts out of core: at most `memory` per thread, temporary files under `tmpdir`.
    """

    def __init__(
        self,
        tag: str,
        tmpdir: Path,
        what: str,
        *,
        memory: str,
        threads: int,
        header: bool = True,
    ) -> None:
        args = ["sort", "--no-PG", "-t", tag, "-O", "SAM", "-m", memory]
        self.prefix = tmpdir / f"sort{tag}"  # samtools' temporary files: PREFIX.NNNN.bam
        args += ["-T", str(self.prefix), *(["-@", str(threads)] if threads else [])]
        self.child = _Child([*args, "-"], what, IntegrityError, True)
        assert self.child.proc.stdin is not None
        self._in = self.child.proc.stdin
        self._batch: list[str] = []
        if header:  # else the caller passes the input's header lines with `raw()`
            self._batch.append("@HD\tVN:1.6\tSO:unsorted\n")
        self.log = ""

    def raw(self, line: str) -> None:
        """Pass a SAM line (header or record, with its newline) on as it is."""
        self._batch.append(line)
        if len(self._batch) >= _BATCH:
            self._flush()

    def add(self, name: str, mate: str, seq: str, qual: str, value: str) -> None:
        self._batch.append(
            f"{name}\t{_FLAG[mate]}\t*\t0\t0\t*\t*\t0\t0\t{seq or '*'}\t{qual or '*'}\t{value}\n"
        )
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        try:
            self._in.write("".join(self._batch).encode())
        except BrokenPipeError:
            self.child.kill()
            raise IntegrityError(f"{self.child.what}: {self.child.message()}") from None
        self._batch = []

    def sorted(self) -> Iterator[str]:
        """The sorted SAM lines (header lines skipped)."""
        self._flush()
        self._in.close()
        for line in self.child.lines:
            if line[0] != "@":
                yield line
        self.child.finish()
        self.log = self.child.log

    def kill(self) -> None:
        self.child.kill()
