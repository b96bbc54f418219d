"""Read a FASTQ file exactly as it is: every byte accounted for, every problem named by line.

`FastqReader` opens a FASTQ file (plain, gzip, BGZF or multi-member gzip; decompressed in a
background thread by python-isal) and yields its records as the four lines' raw bytes (header
without `@`, sequence, `+` line without `+`, qualities; line ends removed). While it reads it
hashes the file's bytes and the decompressed stream (the proof compares the latter with what the
CRAM gives back) and learns the file's *layout*, which the restore recipe records:

* `crlf`: lines end in CR LF (decided by the first line; a file that mixes LF and CR LF is
  refused at the first line that differs);
* `final_newline`: whether the last line ends with a line end at all;
* `plus_repeats`: whether the first record's `+` line repeats its header (records that differ
  from their file's convention are kept per record by the encoder).

Whatever cannot be a four-line FASTQ record is refused with the file and the line: a header not
starting with `@`, a `+` line missing (as in wrapped, multi-line FASTQ), sequence and quality
lengths that differ, a record cut short at the end of the file, blank lines between records, and
binary data. Truncated or corrupt gzip is refused likewise.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from isal import igzip_threaded  # python-isal (xopen needs it): gzip at several times zlib's speed

from wgsvault.errors import InputError

CHUNK = 1 << 22
#: at most this many bytes of blank lines after the last record are kept (recipe `trailer`)
MAX_TRAILER = 4096
Record = tuple[bytes, bytes, bytes, bytes]


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through it."""

    def __init__(self, inner: BinaryIO, digest: Any) -> None:
        super().__init__()
        self._inner = inner
        self.digest = digest
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        self.digest.update(data)
        self.bytes += n
        return n


class FastqReader:
    """One FASTQ file, read once: records, digests and layout (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open FASTQ ({exc.strerror})") from None
        self.gzip = self._raw.read(2) == b"\x1f\x8b"
        self._raw.seek(0)
        self.file_digest = HashingReader(self._raw, hashlib.sha256())
        stream: Any = self.file_digest
        if self.gzip:
            stream = igzip_threaded.open(self.file_digest, "rb", threads=1)  # type: ignore[no-untyped-call]
        self._inner = stream
        self.data_digest = hashlib.sha256()
        self.data_bytes = 0
        self.records = 0
        self.crlf = False
        self.final_newline = True
        self.plus_repeats = False
        self.trailer = b""

    # -- errors -----------------------------------------------------------------------------

    def _error(self, line: int, what: str) -> InputError:
        return InputError(f"{self.path}: line {line:,} (record {(line - 1) // 4 + 1:,}): {what}")

    def _read(self) -> bytes:
        try:
            data: bytes = self._inner.read(CHUNK)
        except (EOFError, OSError, ValueError, zlib.error) as exc:
            raise InputError(
                f"{self.path}: truncated or corrupt gzip after record {self.records:,}: {exc}"
            ) from None
        self.data_digest.update(data)
        self.data_bytes += len(data)
        return data

    # -- records ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        rest = b""
        line = 0  # lines consumed before `lines[0]`
        first = True
        while True:
            data = self._read()
            if not data:
                break
            if first:
                self._sniff(data)
                first = False
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            usable = len(lines) - len(lines) % 4
            if usable:
                yield from self._records(lines, usable, line)
                line += usable
            if usable < len(lines):  # an incomplete record: keep its lines for the next chunk
                rest = b"\n".join([*lines[usable:], rest])
        if first:
            raise InputError(f"{self.path}: empty file, no FASTQ records")
        yield from self._finish(rest, line)

    def _sniff(self, data: bytes) -> None:
        if data[:1] != b"@":
            what = "binary data" if b"\0" in data[:4096] else f"{data[:20]!r}"
            raise InputError(f"{self.path}: line 1: not FASTQ (starts with {what}, not '@')")
        end = data.find(b"\n")
        self.crlf = end > 0 and data[end - 1 : end] == b"\r"

    def _records(self, lines: list[bytes], usable: int, line: int) -> Iterator[Record]:
        crlf = self.crlf
        if crlf:
            for i in range(usable):
                s = lines[i]
                if s[-1:] != b"\r":
                    raise self._error(line + i + 1, "LF line end in a file of CR LF line ends")
                lines[i] = s[:-1]
        for i in range(0, usable, 4):
            h, s, p, q = lines[i], lines[i + 1], lines[i + 2], lines[i + 3]
            if h[:1] != b"@":
                raise self._error(line + i + 1, self._no_header(h))
            if p[:1] != b"+":
                raise self._error(
                    line + i + 3,
                    "no '+' line after the sequence (wrapped, multi-line FASTQ is not supported)",
                )
            if len(s) != len(q):
                raise self._error(
                    line + i + 4,
                    f"{len(q):,} quality values for {len(s):,} bases (lengths differ)",
                )
            if not crlf and (h[-1:] == b"\r" or s[-1:] == b"\r"):
                raise self._error(line + i + 1, "CR LF line end in a file of LF line ends")
            if self.records == 0:
                self.plus_repeats = len(p) > 1 and p[1:] == h[1:]
            self.records += 1
            yield h[1:], s, p[1:], q

    def _no_header(self, h: bytes) -> str:
        if not h.strip():
            return "blank line between records"
        if b"\0" in h:
            return "binary data"
        return f"expected a header line starting with '@', found {h[:30]!r}"

    def _finish(self, rest: bytes, line: int) -> Iterator[Record]:
        """The bytes after the last complete record: nothing, a last record whose final line has
        no line end, or blank lines (kept as the trailer); anything else is a record cut short."""
        if not rest:
            return
        parts = rest.split(b"\n")
        if len(parts) == 4 and parts[3]:
            if self.crlf:
                parts[3] += b"\r"  # checked and removed with the other line ends
            yield from self._records(parts, 4, line)
            self.final_newline = False
            return
        if not rest.strip(b"\r\n") and len(rest) <= MAX_TRAILER:
            self.trailer = rest
            return
        raise self._error(line + 1, "the file ends inside a record (truncated)")

    def entry(self) -> dict[str, object]:
        """The proof's description of this file, once every record was read: its size, the
        sha256 of its bytes and of its decompressed content."""
        self._inner.close()
        while chunk := self._raw.read(CHUNK):  # bytes after the gzip stream (if any) count too
            self.file_digest.digest.update(chunk)
            self.file_digest.bytes += len(chunk)
        return {
            "path": str(self.path.resolve()),
            "bytes": self.file_digest.bytes,
            "sha256": self.file_digest.digest.hexdigest(),
            "decompressed_sha256": self.data_digest.hexdigest(),
            "decompressed_bytes": self.data_bytes,
        }

    def close(self) -> None:
        self._inner.close()
        self._raw.close()
