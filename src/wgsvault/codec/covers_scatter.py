"""Restore from CRAM + sidecar, stage 1: the primary records scattered into buckets by key range.

The canonical order (records.py) sorts Illumina names `PREFIX:LANE:TILE:X:Y` by (prefix, lane,
tile, y, x, name) and every other name after them, by name. A bucket holds one range of that
order: the records of one *head* `PREFIX:LANE:TILE` (a run has a few thousand tiles), or the
records of every other name. Sorted one at a time and written one after the other
(covers_sort.py), the buckets give the whole order: an external bucket sort, which reads and
writes the data once where two `samtools sort` runs each read, wrote and merged it again.

Decoding
    `samtools view -O fastq` (`records.view_fastq`: htslib's FASTQ writer) decodes the CRAM in a
    child process: reverse-strand records come reverse-complemented back, and the CASAVA comment
    carries the mate code. A reader thread drains its pipe into a short queue of 1 MB blocks, so
    samtools decodes on one core while Python routes on the other. Python touches each record
    once here: `bytes.split` cuts a block into lines, and one short loop looks the record's head
    up in a dict (the text up to the name's second-last colon) and appends (header, sequence,
    qualities) to its bucket. Mates share a bucket; they part when the bucket is sorted.

    htslib's FASTQ writer cannot express three things `records.parse_record` (the reader
    `verify_covers` proved the FASTQ with) does: qualities from `OQ` (kept by BQSR); a one-base
    read without qualities (`*`, which parse_record reads as the Q9 of that base, and htslib
    writes as `B`); the base `=` of a reverse-strand read (parse_record keeps it, htslib writes
    `!`). A block holding any of them (a tab, which only the `OQ` tag brings to the header, a
    quality line `B`, a `!` in a sequence) starts the scatter again from the SAM text of
    `samtools view`, parsed by parse_record itself: slower (about half the speed), and exactly
    what verify saw. (Absent qualities of longer reads, written as `B`s, can only belong to
    records the sidecar excludes, which covers_sort.py recognises.) The FASTQ writer's output
    is otherwise the same, byte for byte (tests/test_covers.py holds every IUPAC code to it).

Memory
    Buckets live in memory (bytes objects: about 120 bytes of overhead per record) until all of
    them together pass `budget` bytes; then each bucket is appended to its own file in the
    restore's private work folder (gzip level 1 members: temporary disk is about a quarter of
    the FASTQ, not all of it) and emptied. Nothing here grows with the input beyond `budget`,
    the dict of heads (one entry per tile) and one file per bucket.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from isal import igzip

from wgsvault.codec.records import parse_record, view_fastq, view_records
from wgsvault.errors import IntegrityError

#: bytes handed from the reader thread to the router at a time
BLOCK = 1 << 20
#: estimated bytes of Python objects per record in a bucket beyond its data (3 bytes objects)
OVERHEAD = 130
_DEPTH = 16  # blocks in flight between the reader thread and the router
_SPILL_LINES = 3 << 15  # lines (of records) joined at a time when a bucket goes to its file
_MAX_OTHER_HEADS = 1 << 16  # heads of other names remembered (they need not be few)
_SPILL_LEVEL = 1
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), absent from older Pythons' fcntl


class Bucket:
    """Records of one key range: a flat list (header, sequence, qualities, ...) and a spill file.

    `head` is the `@PREFIX:LANE:TILE` the headers start with, or None for other names.
    """

    __slots__ = ("head", "parts", "path", "spilled")

    def __init__(self, head: bytes | None) -> None:
        self.head = head
        self.parts: list[bytes] = []
        self.path: Path | None = None
        self.spilled = 0  # bytes of text in the file (which holds them gzip-compressed)


class BucketStore:
    """Buckets in memory up to `budget` bytes in all, then spilled to files under `work`."""

    def __init__(self, work: Path, budget: int) -> None:
        self.work, self.budget = work, budget
        self.buckets: list[Bucket] = []
        self.used = 0
        self._files = 0
        self.line_bytes = 100.0  # mean bytes of a line (header, sequence or qualities) so far
        self._data = self._lines = 0

    def new(self, head: bytes | None) -> Bucket:
        b = Bucket(head)
        self.buckets.append(b)
        return b

    def grew(self, nbytes: int, lines: int) -> None:
        """Account `lines` more lines of `nbytes` in memory; spill every bucket when over budget."""
        self.used += nbytes + OVERHEAD * lines // 3
        self._data += nbytes
        self._lines += lines
        self.line_bytes = self._data / max(1, self._lines)
        if self.used > self.budget:
            self.spill()

    def spill(self) -> None:
        """Append every bucket's records to its file; empty them."""
        for b in self.buckets:
            if b.parts:
                if b.path is None:
                    self._files += 1
                    b.path = self.work / f"bucket{self._files:06d}"
                with open(b.path, "ab") as fh:
                    for i in range(0, len(b.parts), _SPILL_LINES):  # a bounded text at a time
                        text = b"\n".join(b.parts[i : i + _SPILL_LINES]) + b"\n"
                        # one gzip member per write (isal level 1: ~4x smaller at GB/s), so a
                        # 30X genome's temporary files are a fraction of its FASTQ, not all of it
                        fh.write(igzip.compress(text, compresslevel=_SPILL_LEVEL))
                        b.spilled += len(text)
                b.parts.clear()  # in place: the router holds this list
        self.used = 0

    def size(self, b: Bucket) -> int:
        """Bytes of the bucket's records as text (estimated from the mean line for those in
        memory, which costs nothing to count)."""
        return b.spilled + int(len(b.parts) * (self.line_bytes + 1))

    def blocks(self, b: Bucket, size: int = BLOCK) -> Iterator[list[bytes]]:
        """The bucket's records as flat lists (header, sequence, qualities, ...), block by block."""
        if b.path is not None:
            with igzip.open(b.path, "rb") as fh:  # type: ignore[no-untyped-call]
                carry = b""
                for data in iter(lambda: fh.read(size), b""):
                    lines = (carry + data).split(b"\n")
                    k = (len(lines) - 1) // 3 * 3
                    carry = b"\n".join(lines[k:])
                    yield lines[:k]
                if carry:
                    raise IntegrityError(f"{b.path}: temporary bucket file is truncated")
        step = 3 * max(1, int(size / (3 * (self.line_bytes + 1))))
        for i in range(0, len(b.parts), step):
            yield b.parts[i : i + step]

    def take(self, b: Bucket) -> list[bytes]:
        """All records of the bucket as one flat list; the bucket is emptied."""
        if b.path is None:
            out, b.parts = b.parts, []  # (no router appends to a bucket being sorted)
            return out
        out = []
        for block in self.blocks(b, 1 << 30):  # the file's records, then those in memory
            out += block
        self.drop(b)
        return out

    def drop(self, b: Bucket) -> None:
        if b.path is not None:
            b.path.unlink(missing_ok=True)
            b.path = None
            b.spilled = 0
        b.parts.clear()

    def reset(self) -> None:
        for b in self.buckets:
            self.drop(b)
        self.buckets = []
        self.used = 0


class Scatter:
    """Routes records (header, sequence, qualities) to the bucket of their head."""

    def __init__(self, store: BucketStore) -> None:
        self.store = store
        self._route: dict[bytes, list[bytes]] = {}  # head (as sliced) -> its bucket's parts
        #: Illumina buckets by (prefix, lane, tile): several when a head is spelled differently
        self.groups: dict[tuple[str, int, int], list[Bucket]] = {}
        self.other = store.new(None)

    def reset(self) -> None:
        self.store.reset()
        self._route.clear()
        self.groups.clear()
        self.other = self.store.new(None)

    def add(self, heads: list[bytes], seqs: list[bytes], quals: list[bytes], nbytes: int) -> None:
        """Route a block's records; `nbytes`: the bytes of their lines (without newlines)."""
        get, slow = self._route.get, self._slow
        for h, s, q in zip(heads, seqs, quals, strict=True):
            p = get(h[: h.rfind(b":", 0, h.rfind(b":", 0, h.find(b" ")))])
            if p is None:
                p = slow(h)
            p += (h, s, q)
        self.store.grew(nbytes, 3 * len(heads))

    def _slow(self, h: bytes) -> list[bytes]:
        """The bucket of a head not seen before (or of a name with fewer than two colons)."""
        key = h[: h.rfind(b":", 0, h.rfind(b":", 0, h.find(b" ")))]
        if b" " in key:  # the name has fewer than two colons: `key` is no head
            return self.other.parts
        head = key[1:].decode("utf-8", "surrogateescape").split(":")
        group = None
        if len(head) >= 3:  # PREFIX:LANE:TILE (PREFIX may be empty or hold colons)
            with contextlib.suppress(ValueError):  # int() as canonical_key reads the fields
                group = (":".join(head[:-2]), int(head[-2]), int(head[-1]))
        if group is None:
            if len(self._route) < _MAX_OTHER_HEADS:
                self._route[key] = self.other.parts
            return self.other.parts
        bucket = self.store.new(key)
        self.groups.setdefault(group, []).append(bucket)
        self._route[key] = bucket.parts
        return bucket.parts


class _Exact(Exception):
    """The FASTQ writer's output cannot stand for what parse_record reads: read the SAM text."""


def scatter(cram: Path, reference: Path | None, into: Scatter, *, threads: int) -> str:
    """Stage 1: every primary record of `cram` into the buckets of `into`; the reader used.

    Returns "fastq" or, when the FASTQ writer could not express the records exactly, "sam".
    """
    try:
        _scatter_fastq(cram, reference, into, threads)
        return "fastq"
    except _Exact:
        into.reset()
    _scatter_sam(cram, reference, into)
    return "sam"


def _scatter_fastq(cram: Path, reference: Path | None, into: Scatter, threads: int) -> None:
    child = view_fastq(cram, reference, threads)
    drain = _Drain(child.stdout)
    try:
        carry: list[bytes] = []  # the lines of a record the last block ended inside
        for block in drain:
            if block.find(b"\t") >= 0:  # an aux field: the OQ tag (the only one printed)
                raise _Exact
            lines = block.split(b"\n")
            if carry:
                lines[0] = carry[-1] + lines[0]
                lines[:0] = carry[:-1]
            k = (len(lines) - 1) // 4 * 4
            carry = lines[k:]
            seqs, quals = lines[1:k:4], lines[3:k:4]
            if b"B" in quals:  # a one-base read: its quality `B` may stand for `*`
                raise _Exact
            if b"".join(seqs).find(b"!") >= 0:  # `=` reverse-complemented ("!" to htslib)
                raise _Exact
            if lines[2:k:4].count(b"+") != k // 4:
                raise IntegrityError(f"{cram}: samtools wrote FASTQ that is not 4-line records")
            into.add(lines[0:k:4], seqs, quals, len(block) - 6 * (k // 4))
        child.finish()  # first: a failed samtools says why
        if carry not in ([], [b""]):
            raise IntegrityError(f"{cram}: samtools' FASTQ output ends inside a record")
    finally:
        drain.halt()  # first: a reader woken by the child's end must not read again
        child.kill()
        drain.join()


def _scatter_sam(cram: Path, reference: Path | None, into: Scatter) -> None:
    """The same records from SAM text through parse_record, as headers `@NAME M`."""
    child = view_records(cram, reference, False)
    try:
        heads: list[bytes] = []
        seqs: list[bytes] = []
        quals: list[bytes] = []
        size = 0
        for line in child.lines:
            name, m, seq, qual = parse_record(line)
            h, s, q = f"@{name} {m}".encode(), seq.encode(), qual.encode()
            heads.append(h)
            seqs.append(s)
            quals.append(q)
            size += len(h) + len(s) + len(q)
            if size >= BLOCK:
                into.add(heads, seqs, quals, size)
                heads, seqs, quals, size = [], [], [], 0
        into.add(heads, seqs, quals, size)
        child.finish()
    finally:
        child.kill()


class _Drain:
    """Reads a child's stdout into a bounded queue of blocks in a thread: the child never waits
    for Python, and Python gets large blocks whatever the pipe's size."""

    def __init__(self, stream: IO[bytes], block: int = BLOCK) -> None:
        self._fd, self._block = stream.fileno(), block
        with contextlib.suppress(OSError):  # a larger pipe: fewer wake-ups of the reader
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="restore-drain", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            pieces: list[bytes] = []
            n = 0
            while not self._stop.is_set():
                data = os.read(self._fd, _PIPE_SIZE)
                if not data or self._stop.is_set():
                    break
                pieces.append(data)
                n += len(data)
                if n >= self._block:
                    if not self._put(b"".join(pieces)):
                        return
                    pieces, n = [], 0
            if pieces and not self._put(b"".join(pieces)):
                return
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def halt(self) -> None:
        """Stop reading: after its current read (which the child's end makes return)."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join(timeout=5)
