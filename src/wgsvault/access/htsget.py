"""GA4GH htsget 1.3 tickets: which bytes of a stored file answer a request.

A ticket lists byte ranges of the stored file, in file order, whose concatenation is a valid file
of the requested format; clients fetch and concatenate them. A region costs only what the index
says overlaps it:

* CRAM (reads): the `.crai` index lists every slice with its reference, span and container
  offset; a region is answered by the file definition and header container (bytes before the
  first container), every container with a slice overlapping the region, and the EOF container.
  Containers are whole units of decoding, so the answer is a superset of the region at container
  granularity, as the spec allows; clients filter.
* VCF.gz (variants): the tabix `.tbi` index gives BGZF chunks per bin; a region is answered by
  the header's blocks, the blocks of the overlapping chunks, and the BGZF EOF block. Ranges are
  merged as a union in file order, so a block shared by header and data is sent once.

These ranges are what a principal granted the whole genome receives; a region-limited principal
receives a slice of only the region's records instead (`codec.slice`, served by `serve.tickets`).
This module only computes ranges from paths the catalog gave; it never sees a request path.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pysam

from wgsvault.codec.slice import Span

CRAM_EOF_PREFIX = b"\x0f\x00\x00\x00\xff\xff\xff\xff\x0f\xe0EOF"  # CRAM 3.x EOF container
CRAM_EOF_LEN = 38
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
BLOCK_LIMIT = 1 << 30  # whole-file tickets are split into blocks of at most 1 GiB


class TicketError(Exception):
    """A request the index cannot answer: (htsget error name, message)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive
    cls: str  # "header" | "body"


@dataclass(frozen=True)
class Ticket:
    ranges: list[ByteRange]
    eof: bytes  # appended as a data: block


def _split(r: ByteRange) -> list[ByteRange]:
    return [
        ByteRange(s, min(s + BLOCK_LIMIT, r.end), r.cls) for s in range(r.start, r.end, BLOCK_LIMIT)
    ] or [r]


def union(ranges: list[ByteRange]) -> list[ByteRange]:
    """Ranges merged into a union in file order (a byte shared by two is sent once), in blocks
    of at most BLOCK_LIMIT."""
    out: list[ByteRange] = []
    for r in sorted(ranges, key=lambda r: (r.start, r.end)):
        if out and r.start <= out[-1].end:
            last = out[-1]
            out[-1] = ByteRange(last.start, max(last.end, r.end), last.cls)
        else:
            out.append(r)
    return [piece for r in out for piece in _split(r)]


# -- CRAM ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CraiSlice:
    ref_id: int
    start: int  # 1-based alignment start
    span: int
    container: int  # byte offset of the container


@dataclass(frozen=True)
class Crai:
    """A `.crai` index, arranged for lookups: per reference id, the slices sorted by start."""

    slices: list[CraiSlice]
    containers: list[int]  # sorted byte offsets
    by_ref: dict[int, tuple[list[int], list[CraiSlice], int]]  # starts, slices, longest span

    def all_of(self, ref_id: int) -> list[CraiSlice]:
        return self.by_ref.get(ref_id, ([], [], 0))[1]

    def overlapping(self, ref_id: int, lo: int, hi: int) -> list[CraiSlice]:
        """Slices of `ref_id` overlapping [lo, hi) (0-based), found by bisection, not a scan."""
        starts, slices, longest = self.by_ref.get(ref_id, ([], [], 0))
        first = bisect.bisect_left(starts, lo - longest + 1)  # 1-based starts: s - 1 + span > lo
        last = bisect.bisect_left(starts, hi + 1)  # s - 1 < hi
        return [s for s in slices[first:last] if s.start - 1 + s.span > lo]


def read_crai(path: Path) -> Crai:
    """A `.crai` index (kept for the file's size and mtime: the index of a 30X genome has ~10^5
    lines, read once, not once per ticket)."""
    st = path.stat()
    return _read_crai(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_crai(path: str, size: int, mtime_ns: int) -> Crai:
    slices = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            f = line.split("\t")
            if len(f) >= 6:
                slices.append(CraiSlice(int(f[0]), int(f[1]), int(f[2]), int(f[3])))
    by_ref: dict[int, tuple[list[int], list[CraiSlice], int]] = {}
    for ref_id in {s.ref_id for s in slices}:
        mine = sorted((s for s in slices if s.ref_id == ref_id), key=lambda s: s.start)
        longest = max(s.span for s in mine)
        by_ref[ref_id] = ([s.start for s in mine], mine, longest)
    return Crai(slices, sorted({s.container for s in slices}), by_ref)


def cram_ticket(cram: Path, spans: Sequence[Span], *, header_only: bool = False) -> Ticket:
    """Byte ranges of `cram` for regions (`spans`, htsget coordinates) or, with none, the whole
    file."""
    size = cram.stat().st_size
    with open(cram, "rb") as fh:
        fh.seek(size - CRAM_EOF_LEN)
        eof = fh.read(CRAM_EOF_LEN)
    if not eof.startswith(CRAM_EOF_PREFIX):
        raise TicketError("NotFound", "the stored CRAM has no EOF container (truncated?)")
    crai = Path(f"{cram}.crai")
    if not crai.exists():
        raise TicketError("NotFound", "the stored CRAM has no index")
    index = read_crai(crai)
    containers = index.containers
    first = containers[0] if containers else size - CRAM_EOF_LEN
    header = ByteRange(0, first, "header")
    if header_only:
        return Ticket([header], eof)
    if not spans:
        return Ticket(union([header, ByteRange(first, size - CRAM_EOF_LEN, "body")]), eof)
    pysam_level = pysam.set_verbosity(0)
    try:
        with pysam.AlignmentFile(str(cram), "rc", check_sq=False) as fh:
            names = list(fh.references)
    finally:
        pysam.set_verbosity(pysam_level)
    ends = {c: n for c, n in zip(containers, [*containers[1:], size - CRAM_EOF_LEN], strict=True)}
    body: list[ByteRange] = []
    for span in spans:
        if span.name == "*":
            rid = -1
        elif span.name in names:
            rid = names.index(span.name)
        else:
            raise TicketError("NotFound", f"reference {span.name!r} is not in this file")
        lo, hi = (span.start or 0), (span.end if span.end is not None else 1 << 62)
        found = index.all_of(-1) if rid == -1 else index.overlapping(rid, lo, hi)
        body += [ByteRange(s.container, ends[s.container], "body") for s in found]
    # multi-reference containers (ref_id -2) may hold the regions too: include them
    body += [ByteRange(s.container, ends[s.container], "body") for s in index.all_of(-2)]
    return Ticket(union([header, *body]), eof)


# -- VCF.gz + tabix ------------------------------------------------------------------------------


def _reg2bins(beg: int, end: int) -> list[int]:
    """Bins (UCSC binning, as in tabix) overlapping [beg, end), 0-based."""
    end -= 1
    bins = [0]
    for shift, offset in ((26, 1), (23, 9), (20, 73), (17, 585), (14, 4681)):
        bins.extend(range(offset + (beg >> shift), offset + (end >> shift) + 1))
    return bins


def _read_tbi(
    path: Path,
) -> tuple[list[str], list[dict[int, list[tuple[int, int]]]], list[list[int]]]:
    data = gzip.decompress(path.read_bytes())
    if data[:4] != b"TBI\x01":
        raise TicketError("NotFound", "the stored VCF index is not a tabix index")
    n_ref, _fmt, _cs, _cb, _ce, _meta, _skip, l_nm = struct.unpack_from("<8i", data, 4)
    pos = 36
    names = [n.decode() for n in data[pos : pos + l_nm].split(b"\0") if n]
    pos += l_nm
    bins_per_ref, linear_per_ref = [], []
    for _ in range(n_ref):
        (n_bin,) = struct.unpack_from("<i", data, pos)
        pos += 4
        bins: dict[int, list[tuple[int, int]]] = {}
        for _ in range(n_bin):
            b, n_chunk = struct.unpack_from("<Ii", data, pos)
            pos += 8
            chunks = list(struct.iter_unpack("<QQ", data[pos : pos + 16 * n_chunk]))
            pos += 16 * n_chunk
            bins[b] = chunks
        (n_intv,) = struct.unpack_from("<i", data, pos)
        pos += 4
        linear = list(struct.unpack_from(f"<{n_intv}Q", data, pos))
        pos += 8 * n_intv
        bins_per_ref.append(bins)
        linear_per_ref.append(linear)
    return names, bins_per_ref, linear_per_ref


def _block_end(fh: BinaryIO, offset: int) -> int:
    """End of the BGZF block starting at `offset`."""
    fh.seek(offset)
    head = fh.read(18)
    if len(head) < 18 or head[:4] != b"\x1f\x8b\x08\x04":
        raise TicketError("NotFound", "the stored VCF is not BGZF-compressed")
    (bsize,) = struct.unpack_from("<H", head, 16)
    return offset + int(bsize) + 1


def _first_record_offset(vcf: Path) -> int:
    """Virtual offset of the first non-header line (the header ends there)."""
    with open(vcf, "rb") as fh:
        coffset = 0
        while True:
            fh.seek(coffset)
            end = _block_end(fh, coffset)
            fh.seek(coffset)
            block = fh.read(end - coffset)
            text = zlib.decompress(block[18:-8], -15)
            start_of_line = 0
            for line in text.split(b"\n"):
                if line and not line.startswith(b"#"):
                    return (coffset << 16) | start_of_line
                start_of_line += len(line) + 1
            if not text:
                return coffset << 16
            coffset = end


def vcf_ticket(vcf: Path, spans: Sequence[Span], *, header_only: bool = False) -> Ticket:
    """Byte ranges of a bgzipped, tabix-indexed VCF for regions or, with none, the whole file."""
    size = vcf.stat().st_size
    with open(vcf, "rb") as fh:
        fh.seek(max(0, size - len(BGZF_EOF)))
        has_eof = fh.read() == BGZF_EOF
    data_end = size - len(BGZF_EOF) if has_eof else size
    first = _first_record_offset(vcf)
    with open(vcf, "rb") as fh:
        header_end = _block_end(fh, first >> 16) if first & 0xFFFF else first >> 16
    header = ByteRange(0, header_end, "header")
    if header_only:
        return Ticket([header], BGZF_EOF)
    if not spans:
        return Ticket(union([header, ByteRange(0, data_end, "body")]), BGZF_EOF)
    tbi = Path(f"{vcf}.tbi")
    if not tbi.exists():
        raise TicketError("NotFound", "the stored VCF has no tabix index")
    names, bins, linear = _read_tbi(tbi)
    body = []
    with open(vcf, "rb") as fh:
        for span in spans:
            if span.name not in names:
                raise TicketError("NotFound", f"reference {span.name!r} is not in this file")
            rid = names.index(span.name)
            lo, hi = (span.start or 0), (span.end if span.end is not None else 1 << 29)
            min_off = linear[rid][min(lo >> 14, len(linear[rid]) - 1)] if linear[rid] else 0
            for b in _reg2bins(lo, min(hi, 1 << 29)):
                for cbeg, cend in bins[rid].get(b, []):
                    if cend <= min_off:
                        continue
                    stop = _block_end(fh, cend >> 16) if cend & 0xFFFF else cend >> 16
                    body.append(ByteRange(cbeg >> 16, min(stop, data_end), "body"))
    return Ticket(union([header, *body]), BGZF_EOF)
