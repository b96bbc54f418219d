"""Prove that FASTQ files are contained in an aligned CRAM, and write the sidecar to restore them.

What is proven (`verify_covers`)
    Every FASTQ record (single-end, or R1+R2 in lockstep) is a PRIMARY record of the CRAM/BAM
    (secondary 0x100 and supplementary 0x800 are ignored) with the same name, mate (R1 <-> 0x40,
    R2 <-> 0x80, single-end <-> neither), sequence and qualities. A reverse-strand record (0x10)
    is reverse-complemented back; original qualities come from the `OQ` tag when present (BQSR).
    The FASTQ name is the header up to the first space/tab, without the `/1` `/2` suffix; the rest
    of the header (suffix, CASAVA comment) is the record's *tail*, which the sidecar
    (`codec.sidecar`) stores as a template per file plus exceptions.
    The proof also checks that restoring from CRAM + sidecar reproduces every full record (header
    line with its comment, sequence, qualities, mate), and with `keep_order` that the restored
    decompressed stream has the original's sha256. Restoring is `covers_restore.restore_fastq`;
    the canonical order and the CRAM reader both sides share live in `records.py`.

How
    Each record is hashed to 128 bits: `core = blake2b(name+mate, seq, qual)` and
    `full = blake2b(core, tail)`. The FASTQ stream and the CRAM's primary records (read by
    `records.primary_records`, the same reader the restore uses) are each reduced to
    order-independent multiset checksums (count, sum of `full` mod 2**128); on the CRAM side
    `full` uses the tail the sidecar would give back. Equal counts and sums prove the two
    multisets equal (a false match needs a 128-bit collision). Only when the sums differ, a detail
    pass (covers_detail.py) keys the FASTQ records by (name, mate) in a dict (`DETAIL_LIMIT`
    records at a time; bigger inputs are split into hash partitions, one re-read of FASTQ and CRAM
    per partition) to count missing, altered and extra records and name the first difference.
    Extra CRAM records (e.g. singletons dropped when the FASTQ was made) do not break coverage:
    the sidecar lists them so a restore skips them.

    With `keep_order`, the scan compares each unit's (pair's) canonical sort key with the
    previous one only: an input already in canonical order (usual) is stored as `identity`.
    Otherwise a second pass over the FASTQ hands samtools sort one small record per unit (its
    index and `order_key` + digests), which sorts out of core (`sort_memory` per thread, temporary
    files next to the sidecar), and the sorted indices give each unit's canonical rank.

Memory per read
    None on the fast path (O(1) beyond the tail exceptions, the excluded records and, in a detail
    pass, at most `DETAIL_LIMIT` records). With `keep_order` and a non-canonical input order: the
    rank array, 4 bytes per pair (8 beyond 2**32 pairs), plus while the sidecar is encoded its
    rank stream (1 to 4 bytes per pair) and its compressed form: at most about 10 bytes per pair,
    5 per read (4 GB for 800 million reads in a random order; far less for near-canonical ones).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wgsvault.codec import sidecar as sidecar_fmt
from wgsvault.codec.covers_detail import detail_pass, reason
from wgsvault.codec.fastq_input import fastq_records, open_sources
from wgsvault.codec.records import (
    MASK,
    SORT_MEMORY,
    SamSort,
    canonical_key,
    full_digest,
    order_key,
    primary_records,
    sha256_file,
)
from wgsvault.errors import InputError
from wgsvault.fsutil import atomic_write_bytes

#: records per file looked at before the tail template is chosen (the most common tail)
TEMPLATE_WINDOW = 4096
_B2 = hashlib.blake2b


@dataclass
class CoverReport:
    """Outcome of `verify_covers`; `covered` is the verdict, `reason` says why in one line."""

    fastqs: list[str]
    cram: str
    fastq_records: int = 0
    cram_primary_records: int = 0
    matched: int = 0
    missing: int = 0
    altered: int = 0
    extra: int = 0
    covered: bool = False
    reason: str = ""
    first_difference: dict[str, Any] | None = None
    restore_verified: bool = False
    keep_order: bool = False
    order: str | None = None
    sidecar_path: str | None = None
    sidecar_bytes: int = 0
    sidecar_order_bytes: int = 0
    tail_exceptions: int = 0
    detail_passes: int = 0
    sha256: dict[str, str] = field(default_factory=dict)
    fastq_sha256_decompressed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Tails:
    """Tail template of one file (its most common tail) and the records that differ from it."""

    def __init__(self, exceptions: dict[str, str]) -> None:
        self.template: str | None = None
        self.pending: list[tuple[str, str]] = []
        self.exceptions = exceptions

    def add(self, key: str, tail: str) -> None:
        if self.template is not None:
            self.exceptions[key] = tail
            return
        self.pending.append((key, tail))
        if len(self.pending) >= TEMPLATE_WINDOW:
            self.settle()

    def settle(self) -> None:
        if self.template is None:
            counts = Counter(t for _, t in self.pending)
            self.template = counts.most_common(1)[0][0] if counts else ""
            for k, t in self.pending:
                if t != self.template:
                    self.exceptions[k] = t
            self.pending = []


@dataclass
class _FastqScan:
    records: list[int]
    count: int
    full: int
    tails: list[_Tails]
    exceptions: dict[str, str]
    two_headers: list[bool]
    gzip: list[bool]
    data_sha: list[str]
    serial_sha: list[str]
    units: int
    canonical: bool  # the units are in canonical order (checked only with keep_order)


def _scan_fastqs(fastqs: list[Path], keep_order: bool) -> _FastqScan:
    """The one full pass over the FASTQ files: checksum, tail model, order check, sha256s.

    In O(1) memory besides the tail exceptions: with `keep_order` each unit's sort key is only
    compared with the previous one's.
    """
    sources, mates = open_sources(fastqs)
    exceptions: dict[str, str] = {}
    tails = [_Tails(exceptions) for _ in sources]
    counts = [0] * len(sources)
    serial = [hashlib.sha256() for _ in sources]
    prev: tuple[Any, ...] = ()
    canonical = True
    units = 0
    full_sum = 0
    last = len(sources) - 1
    unit: list[Any] = []
    b2, from_bytes = _B2, int.from_bytes
    try:
        for fi, key, tail, rec in fastq_records(sources, mates):
            d = b2(
                f"{key}\x00{rec.sequence}\x00{rec.qualities}\x00{tail}".encode(), digest_size=16
            ).digest()
            full_sum += from_bytes(d, "little")
            t = tails[fi]
            if tail != t.template:
                t.add(key, tail)
            counts[fi] += 1
            if keep_order:
                serial[fi].update(rec.fastq_bytes(sources[fi].two_headers))
                unit.append(d)
                if fi == last:
                    units += 1
                    cur = (canonical_key(key[:-1]), *unit)
                    if canonical and cur < prev:
                        canonical = False
                    prev = cur
                    unit = []
        for s in sources:
            s.finish()
    finally:
        for s in sources:
            s.close()
    for t in tails:
        t.settle()
    return _FastqScan(
        records=counts,
        count=sum(counts),
        full=full_sum & MASK,
        tails=tails,
        exceptions=exceptions,
        two_headers=[s.two_headers for s in sources],
        gzip=[s.gzip for s in sources],
        data_sha=[s.data_sha.hexdigest() for s in sources],
        serial_sha=[h.hexdigest() for h in serial],
        units=units,
        canonical=canonical,
    )


def _ranks(
    fastqs: list[Path], units: int, tmpdir: Path, *, sort_memory: str, sort_threads: int
) -> np.ndarray:
    """Canonical rank of each unit (pair or read) in original order, sorted out of core.

    A second pass over the FASTQ hands samtools sort one small record per unit: its index and
    its sort key (`order_key` of the name, then the units' full digests in hex, which is the
    order of `(canonical_key, digest, ...)`). Holds the ranks: 4 bytes per unit (8 beyond
    2**32 units).
    """
    sort = SamSort("XK", tmpdir, "keep_order: sort", memory=sort_memory, threads=sort_threads)
    try:
        sources, mates = open_sources(fastqs)
        last = len(sources) - 1
        hexes: list[str] = []
        index = 0
        try:
            for fi, key, tail, rec in fastq_records(sources, mates):
                hexes.append(full_digest(key, rec.sequence, rec.qualities, tail).hex())
                if fi == last:
                    sort.add(str(index), "0", "", "", f"XK:Z:{order_key(key[:-1])}{''.join(hexes)}")
                    index += 1
                    hexes = []
        finally:
            for s in sources:
                s.close()
        ranks = np.empty(units, dtype=np.uint32 if units < 2**32 else np.int64)
        rank = 0
        batch: list[int] = []
        for line in sort.sorted():
            batch.append(int(line[: line.index("\t")]))
            if len(batch) >= 1 << 16:
                ranks[np.asarray(batch)] = np.arange(rank, rank + len(batch), dtype=ranks.dtype)
                rank += len(batch)
                batch = []
        ranks[np.asarray(batch, dtype=np.int64)] = np.arange(
            rank, rank + len(batch), dtype=ranks.dtype
        )
        rank += len(batch)
    finally:
        sort.kill()
    if rank != units or index != units:
        raise InputError(f"{fastqs[0]}: changed while being verified ({index:,} != {units:,})")
    return ranks


def verify_covers(
    fastqs: list[Path],
    cram: Path,
    *,
    reference: Path | None = None,
    sidecar: Path | None = None,
    keep_order: bool = False,
    sort_memory: str = SORT_MEMORY,
    sort_threads: int = 1,
) -> CoverReport:
    """Prove that the FASTQ file(s) are contained in `cram`; write `sidecar` when they are.

    Not provable cases (trimmed, missing, altered reads) are reported in the CoverReport; malformed
    input (bad gzip, bad FASTQ, R1/R2 mismatch, unreadable CRAM) raises InputError.
    """
    t0 = time.perf_counter()
    fastqs = [Path(p) for p in fastqs]
    cram = Path(cram)
    report = CoverReport(fastqs=[str(p) for p in fastqs], cram=str(cram), keep_order=keep_order)
    # sha256 of the input files in background threads (hashlib releases the GIL)
    with ThreadPoolExecutor(max_workers=len(fastqs) + 1) as pool:
        shas = [pool.submit(sha256_file, p) for p in [*fastqs, cram]]
        fq = _scan_fastqs(fastqs, keep_order)
        file_sha = [f.result() for f in shas]
    cram_sha = file_sha.pop()
    report.fastq_records = fq.count
    report.tail_exceptions = len(fq.exceptions)
    for p, fs, ds in zip(fastqs, file_sha, fq.data_sha, strict=True):
        report.sha256[str(p)] = fs
        report.fastq_sha256_decompressed[str(p)] = ds
    report.sha256[str(cram)] = cram_sha

    mates = ["0"] if len(fastqs) == 1 else ["1", "2"]
    templates = {m: t.template or "" for m, t in zip(mates, fq.tails, strict=True)}
    exceptions = fq.exceptions

    def tail_of(key: str) -> str:
        t = exceptions.get(key)
        return templates.get(key[-1], "") if t is None else t

    # the CRAM as the restore would see it: each record with the tail the sidecar gives it
    count = full_sum = 0
    b2, from_bytes, get = _B2, int.from_bytes, exceptions.get
    for key, seq, qual in primary_records(cram, reference):
        count += 1
        t = get(key)
        if t is None:
            t = templates.get(key[-1], "")
        full_sum += from_bytes(
            b2(f"{key}\x00{seq}\x00{qual}\x00{t}".encode(), digest_size=16).digest(), "little"
        )
    report.cram_primary_records = count
    extras: list[tuple[str, bytes]] = []
    matched_full = full_sum & MASK
    if count == fq.count and matched_full == fq.full:
        report.matched = count
    else:
        matched_full, extras = detail_pass(fastqs, cram, reference, fq.count, tail_of, report)

    if report.missing or report.altered:
        report.reason = reason(report)
    elif report.matched != fq.count:
        report.reason = (
            f"duplicate read names: {fq.count:,} FASTQ records but only "
            f"{report.matched:,} distinct name/mate matches"
        )
    elif matched_full != fq.full:
        report.reason = (
            "restore check failed: CRAM + sidecar would not reproduce the FASTQ header lines"
        )
    elif keep_order and fq.serial_sha != fq.data_sha:
        report.reason = (
            "FASTQ is not in plain 4-line form (e.g. CRLF or wrapped lines): "
            "a byte-identical restore is impossible; verify without keep_order"
        )
    else:
        report.restore_verified = True
        report.covered = True
        report.reason = (
            f"every FASTQ record ({fq.count:,}) is a primary CRAM record with identical name, "
            "sequence and qualities; CRAM + sidecar restore every record"
            + (" in original order" if keep_order else "")
            + (
                f" ({report.extra:,} extra CRAM records are listed in the sidecar)"
                if extras
                else ""
            )
        )

    if report.covered:
        order, ranks = None, None
        if keep_order and fq.canonical:
            order = "identity"
        elif keep_order:
            order = "permutation"
            where = Path(sidecar).parent if sidecar is not None else None
            tmpdir = Path(tempfile.mkdtemp(prefix=".wgsvault-order.", dir=where))
            try:
                ranks = _ranks(
                    fastqs,
                    fq.units,
                    tmpdir,
                    sort_memory=sort_memory,
                    sort_threads=sort_threads,
                )
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)
        report.order = order
        sc = sidecar_fmt.Sidecar(
            cram_sha256=cram_sha,
            cram_name=cram.name,
            layout="single" if len(fastqs) == 1 else "paired",
            files=[
                sidecar_fmt.FileMeta(
                    name=p.name,
                    records=n,
                    sha256_decompressed=ds,
                    sha256_file=fs,
                    gzip=gz,
                    two_headers=th,
                    tail_template=templates[m],
                )
                for p, n, ds, fs, gz, th, m in zip(
                    fastqs,
                    fq.records,
                    fq.data_sha,
                    file_sha,
                    fq.gzip,
                    fq.two_headers,
                    mates,
                    strict=True,
                )
            ],
            tail_exceptions=exceptions,
            excluded=extras,
            order=order,
            ranks=ranks,
        )
        data = sidecar_fmt.encode(sc)
        report.sidecar_bytes = len(data)
        if keep_order:
            without = len(sidecar_fmt.encode(sc, with_order=False))
            report.sidecar_order_bytes = max(0, len(data) - without)
        if sidecar is not None:
            atomic_write_bytes(Path(sidecar), data)
            report.sidecar_path = str(sidecar)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
