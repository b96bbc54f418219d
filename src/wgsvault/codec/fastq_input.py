"""Reading the FASTQ files a proof is about: records of one file or a pair in lockstep.

`open_sources` opens one FASTQ (single-end) or two (R1, R2), plain or gzip (decompressed in a
background thread by python-isal), hashing both the file's bytes and its decompressed stream as
they pass; `fastq_records` yields every record with its key (bare name + mate code `0`, `1`,
`2`) and *tail* (the rest of the header line after the bare name), checking that R1 and R2 names
and counts agree. Malformed input raises InputError naming the file and the record.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

import dnaio
from isal import igzip_threaded  # python-isal (xopen needs it): gzip at several times zlib's speed

from wgsvault.codec.fastq_reader import HashingReader
from wgsvault.errors import InputError

_SUFFIX = {"1": ("/1",), "2": ("/2",), "0": ("/1", "/2")}


_READ_ERRORS = (EOFError, OSError, ValueError, zlib.error, dnaio.exceptions.FileFormatError)


class Source:
    """One FASTQ file opened for a pass: sha256 of its bytes and of its decompressed stream."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open FASTQ ({exc.strerror})") from None
        self.gzip = self._raw.read(2) == b"\x1f\x8b"
        self._raw.seek(0)
        self.data_sha = hashlib.sha256()
        stream: Any = self._raw
        if self.gzip:  # decompressed in a background thread
            stream = igzip_threaded.open(self._raw, "rb", threads=1)  # type: ignore[no-untyped-call]
        self._inner = stream
        self._stream = io.BufferedReader(HashingReader(stream, self.data_sha), 1 << 20)
        try:  # dnaio reads the first record here
            self.reader = dnaio.open(self._stream, fileformat="fastq", mode="r")
        except _READ_ERRORS as exc:
            self._inner.close()
            self._raw.close()
            raise _fastq_error(self.path, 0, exc) from None

    @property
    def two_headers(self) -> bool:
        """Whether the file's '+' lines repeat the read name (known once a record was read)."""
        return bool(getattr(self.reader, "two_headers", False))

    def finish(self) -> None:
        """Hash any bytes after the last record and close."""
        while self._stream.read(1 << 20):
            pass
        self.close()

    def close(self) -> None:
        self.reader.close()
        self._inner.close()
        self._raw.close()


def _fastq_error(path: Path, n: int, exc: BaseException) -> InputError:
    if isinstance(exc, EOFError | zlib.error) or "gzip" in str(exc).lower() or "crc" in str(exc):
        what = "truncated or corrupt gzip"
    else:
        what = "malformed FASTQ"
    return InputError(f"{path}: {what} at record {n + 1}: {exc}")


def _guarded(src: Source) -> Iterator[Any]:
    """The records of one file; read errors become InputError naming that file."""
    try:
        yield from src.reader
    except _READ_ERRORS as exc:
        raise _fastq_error(src.path, src.reader.number_of_records, exc) from None


def fastq_records(sources: list[Source], mates: list[str]) -> Iterator[tuple[int, str, str, Any]]:
    """Yield (file index, key, tail, record) over the FASTQ files, pairs in lockstep.

    Checks R1/R2 names and counts; malformed input raises InputError naming file and record.
    """
    bare1 = ""
    for n, recs in enumerate(zip_longest(*(_guarded(s) for s in sources))):
        for fi, rec in enumerate(recs):
            if rec is None:
                raise InputError(
                    f"{sources[fi].path}: ends after {n} records but "
                    f"{sources[1 - fi].path.name} has more (R1/R2 record counts differ)"
                )
            m = mates[fi]
            rid = rec.id
            bare = rid[:-2] if rid.endswith(_SUFFIX[m]) else rid
            if fi == 0:
                bare1 = bare
            elif bare != bare1:
                raise InputError(
                    f"{sources[fi].path}: record {n + 1} is {rid!r} but {sources[0].path.name} "
                    f"has {recs[0].id!r} (R1/R2 names differ)"
                )
            yield fi, bare + m, rec.name[len(bare) :], rec


def open_sources(fastqs: list[Path]) -> tuple[list[Source], list[str]]:
    if len(fastqs) not in (1, 2):
        raise InputError(f"give one FASTQ (single-end) or two (R1 R2), not {len(fastqs)}")
    sources: list[Source] = []
    try:
        for p in fastqs:
            sources.append(Source(p))
    except BaseException:
        for s in sources:
            s.close()
        raise
    return sources, (["0"] if len(fastqs) == 1 else ["1", "2"])
