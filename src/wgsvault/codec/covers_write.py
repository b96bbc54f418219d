"""Restore from CRAM + sidecar, stage 3: FASTQ text, the original order, the output files.

`fastq_text` turns one mate's sorted records (covers_sort.py) into FASTQ text with one
`bytes.join` over a list filled by slice assignment: no Python loop over records.

`FastqOut` writes one output file under a temporary name next to it; a thread hashes (sha256 of
the plain text, when the restore checks it) and writes (through python-isal's threaded gzip, or
plain), so that the main thread sorts the next batch meanwhile: hashlib, isal and file writes
release the GIL.

`Reorder` gives the original order back for `keep_order` with a stored permutation. The records
come in canonical order; the r-th unit (pair or read) goes to original position `inverse[r]`
(a numpy array of 4 bytes per unit, 8 beyond 2**32 - 1 units). Each record's FASTQ text is put
in the position bucket `position // span` (a contiguous range of positions; `span` chosen so
that a bucket holds about `limit` bytes), with its position and length, in memory until `limit`
bytes wait, then appended to the bucket's files; the buckets are then read in order, each sorted
by position (numpy) and written. Memory: the inverse permutation, `limit` bytes of waiting
records, and one position bucket (twice: as read and as written) at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from isal import igzip_threaded  # python-isal (xopen needs it): gzip at several times zlib's speed

from wgsvault.codec.covers_sort import Sorted
from wgsvault.errors import IntegrityError

#: gzip level of restored FASTQ: a working copy, where speed matters more than size
GZ_LEVEL = 2
_DEPTH = 4  # texts queued for the writer thread


def fastq_text(rec: Sorted, two_headers: bool) -> bytes:
    """The records as FASTQ (`+NAME TAIL` on the third line when `two_headers`)."""
    n = len(rec.names)
    if two_headers:
        parts: list[bytes] = [b""] * (8 * n)
        parts[0::8] = rec.names
        parts[1::8] = rec.tails
        parts[2::8] = rec.seqs
        parts[3::8] = [b"\n+"] * n
        parts[4::8] = [name[1:] for name in rec.names]
        parts[5::8] = rec.tails
        parts[6::8] = rec.quals
        parts[7::8] = [b"\n"] * n
    else:
        parts = [b""] * (6 * n)
        parts[0::6] = rec.names
        parts[1::6] = rec.tails
        parts[2::6] = rec.seqs
        parts[3::6] = [b"\n+\n"] * n
        parts[4::6] = rec.quals
        parts[5::6] = [b"\n"] * n
    return b"".join(parts)


class FastqOut:
    """One output FASTQ under a temporary name next to `out`, hashed (when `digest`) and written
    by a thread."""

    def __init__(self, out: Path, *, gzip: bool, digest: bool = True) -> None:
        self.out = out
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        self.tmp = Path(tmp)
        os.fchmod(fd, 0o644)
        self._fd = fd
        self._raw = os.fdopen(os.dup(fd), "wb")
        self._out: Any = self._raw
        if gzip:  # compressed in isal's own background thread
            self._out = igzip_threaded.open(  # type: ignore[no-untyped-call]
                self._raw, "wb", compresslevel=GZ_LEVEL, threads=1
            )
        self._sha = hashlib.sha256() if digest else None
        self.records = 0
        self._q: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="restore-write", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while True:
            data = self._q.get()
            if data is None:
                return
            if self._error is None:
                try:
                    if self._sha is not None:
                        self._sha.update(data)
                    self._out.write(data)
                except BaseException as exc:  # raised in the main thread by put()/close()
                    self._error = exc

    def put(self, text: bytes, records: int) -> None:
        if self._error is not None:
            raise self._error
        self.records += records
        self._q.put(text)

    def close(self) -> str:
        """Flush, fsync and close; the sha256 of the uncompressed stream ('' if not taken)."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._out.close()
        if not self._raw.closed:
            self._raw.close()
        os.fsync(self._fd)
        os.close(self._fd)
        self._closed = True
        return self._sha.hexdigest() if self._sha is not None else ""

    def discard(self) -> None:
        if not self._closed:
            with contextlib.suppress(queue.Full):
                self._q.put(None, timeout=5)
            self._thread.join(timeout=5)
            for fh in (self._out, self._raw):
                with contextlib.suppress(OSError, ValueError):
                    fh.close()
            os.close(self._fd)
            self._closed = True
        self.tmp.unlink(missing_ok=True)


class Reorder:
    """Records in canonical order -> the original order (see the module doc)."""

    def __init__(self, inverse: np.ndarray, work: Path, limit: int, mates: int, cram: Path):
        self.inverse, self.work, self.limit, self.cram = inverse, work, limit, cram
        self.count = [0] * mates
        self.span = 0  # positions per bucket; set from the first records' size
        self._buckets: list[dict[int, tuple[list[bytes], list[np.ndarray]]]] = [
            {} for _ in range(mates)
        ]
        self._held = 0

    def add(self, mate: int, rec: Sorted, two_headers: bool) -> None:
        """Records of mate number `mate` (0, 1), next in canonical order."""
        n = len(rec.names)
        r0 = self.count[mate]
        if r0 + n > len(self.inverse):
            raise IntegrityError(
                f"{self.cram}: gives more records than the sidecar's order holds "
                f"({len(self.inverse):,})"
            )
        self.count[mate] = r0 + n
        if n == 0:
            return
        text = fastq_text(rec, two_headers)
        newlines = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)
        if len(newlines) != 4 * n:
            raise IntegrityError(f"{self.cram}: a record's FASTQ text holds a stray newline")
        ends = newlines[3::4] + 1  # each record: 4 lines
        lengths = np.diff(ends, prepend=0)
        if not self.span:
            self.span = max(1, self.limit // max(1, int(lengths.mean())))
        pos = self.inverse[r0 : r0 + n].astype(np.int64)
        bucket = pos // self.span
        order = np.argsort(bucket, kind="stable")
        cuts = np.flatnonzero(np.diff(bucket[order])) + 1
        for sel in np.split(order, cuts):
            if len(sel) == n:  # all in one position bucket: the text as it is
                piece = text
            else:
                at = zip((ends[sel] - lengths[sel]).tolist(), ends[sel].tolist(), strict=True)
                piece = b"".join([text[a:b] for a, b in at])
            meta = np.stack([pos[sel], lengths[sel]], axis=1)
            texts, metas = self._buckets[mate].setdefault(int(bucket[sel[0]]), ([], []))
            texts.append(piece)
            metas.append(meta)
            self._held += len(piece) + meta.nbytes
        if self._held > self.limit:
            self._spill()

    def _spill(self) -> None:
        for mate, buckets in enumerate(self._buckets):
            for b, (texts, metas) in buckets.items():
                if texts:
                    stem = self.work / f"order{mate}.{b:08d}"
                    with open(f"{stem}.fq", "ab") as fh:
                        fh.write(b"".join(texts))
                    with open(f"{stem}.pos", "ab") as fh:
                        fh.write(np.concatenate(metas).astype("<i8").tobytes())
                    texts.clear()
                    metas.clear()
        self._held = 0

    def write(self, mate: int, out: FastqOut) -> None:
        """Write mate `mate`'s records in original order (each position exactly once)."""
        total = self.count[mate]
        if total != len(self.inverse):
            raise IntegrityError(
                f"{self.cram}: gives {total:,} records, the sidecar's order holds "
                f"{len(self.inverse):,}"
            )
        nb = -(-total // self.span) if self.span else 0
        for b in range(nb):
            texts, metas = self._buckets[mate].pop(b, ([], []))
            stem = self.work / f"order{mate}.{b:08d}"
            fq, pos_file = Path(f"{stem}.fq"), Path(f"{stem}.pos")
            if fq.exists():
                texts.insert(0, fq.read_bytes())
                metas.insert(0, np.frombuffer(pos_file.read_bytes(), "<i8").reshape(-1, 2))
                fq.unlink()
                pos_file.unlink()
            text = b"".join(texts)
            meta = np.concatenate(metas) if metas else np.empty((0, 2), dtype=np.int64)
            pos, lengths = meta[:, 0], meta[:, 1]
            order = np.argsort(pos)
            lo = b * self.span
            if not np.array_equal(pos[order], np.arange(lo, min(lo + self.span, total))):
                raise IntegrityError(f"{self.cram}: records do not fill the sidecar's order")
            ends = np.cumsum(lengths)[order]
            at = zip((ends - lengths[order]).tolist(), ends.tolist(), strict=True)
            out.put(b"".join([text[a:b] for a, b in at]), len(order))
