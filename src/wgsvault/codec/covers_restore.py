"""Give back the original FASTQ files from an aligned CRAM and its sidecar, in bounded memory.

What (`restore_fastq`)
    The FASTQ records that `codec.covers.verify_covers` proved to be primary records of the
    CRAM: every primary record (secondary 0x100 and supplementary 0x800 ignored) except the ones
    the sidecar lists as *excluded*, turned back into FASTQ: reverse-strand records (0x10)
    reverse-complemented, qualities from `OQ` when present, the header line rebuilt as bare name +
    the file's *tail* (the sidecar's template, or the record's exception). Records come in the
    canonical order (records.py); with `keep_order` in the original order, as the byte-identical
    decompressed stream (its sha256 is checked before the files are renamed into place).

How, in bounded memory
    A restore is a pipeline of child processes with Python in between, touching each record once
    per stage:

    1. `samtools view` -> Python drops the excluded records and tags each record with its
       `order_key` (tag `XK`) -> `samtools sort -t XK`, which sorts out of core (at most
       `sort_memory` per sort thread, then temporary files in a private directory next to the
       outputs).
    2. The sorted stream has the mates of a pair (and any reads of the same name) next to each
       other; Python groups them into units, orders ties by digest, applies the tails and writes
       the FASTQ files (identity order, or canonical order).
    3. Only for `keep_order` with a stored permutation: step 2 tags each record with its original
       position instead (`XO`, from the inverse of the sidecar's ranks) and a second
       `samtools sort -t XO` gives the original order, which is written as in step 2.

    Memory per read: none in Python beyond the sidecar's tail exceptions and excluded records
    (proportional to those, not to the reads); samtools sort holds at most `sort_memory` per
    thread. A `keep_order` restore of a permuted file also holds the sidecar's decoded rank stream
    (1 to 4 bytes per pair, by how far the order is from canonical) and the inverse permutation
    as a numpy array (4 bytes per pair; 8 beyond 2**32 - 1 pairs): at most 8 bytes per pair,
    i.e. 4 bytes per read, 3.2 GB for a 30X genome of 800 million reads.

Outputs are atomic: temporary names in the destination directory, fsync'd, renamed only when
complete (and, with `keep_order`, checked); nothing is left behind on failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from isal import igzip_threaded  # python-isal (xopen needs it): gzip at several times zlib's speed

from wgsvault.codec import sidecar as sidecar_fmt
from wgsvault.codec.records import (
    SORT_MEMORY,
    SamSort,
    core_digest,
    full_digest,
    order_key,
    parse_record,
    sha256_file,
    show,
    view_records,
)
from wgsvault.errors import InputError, IntegrityError

#: gzip level of restored FASTQ: a working copy, where speed matters more than size
_GZ_LEVEL = 2

_BATCH = 8192


def restore_fastq(
    cram: Path,
    sidecar: Path,
    out_prefix: Path,
    *,
    reference: Path | None = None,
    gzip: bool = True,
    keep_order: bool = False,
    sort_memory: str = SORT_MEMORY,
    sort_threads: int = 1,
) -> list[Path]:
    """Write the original FASTQ file(s) from `cram` + `sidecar`; return their paths.

    Writes PREFIX_R1.fastq[.gz] and PREFIX_R2.fastq[.gz] (PREFIX.fastq[.gz] single-end), all or
    none, atomically. Records come in canonical order (see the module doc) unless `keep_order`,
    which gives back the original byte stream (checked against its sha256 before renaming).
    `sort_memory` (samtools `-m`, e.g. `512M`) bounds each of `sort_threads` sort threads.
    """
    cram, out_prefix = Path(cram), Path(out_prefix)
    sc = sidecar_fmt.read(Path(sidecar))
    if keep_order and sc.order is None:
        raise InputError(f"{sidecar}: holds no record order (verify again with keep_order)")
    cram_sha = sha256_file(cram)
    if cram_sha != sc.cram_sha256:
        raise InputError(
            f"{sidecar}: belongs to CRAM {sc.cram_name} (sha256 {sc.cram_sha256[:16]}...), "
            f"not to {cram} (sha256 {cram_sha[:16]}...)"
        )
    paired = sc.layout == "paired"
    mates = ["1", "2"] if paired else ["0"]
    templates = {m: f.tail_template for m, f in zip(mates, sc.files, strict=True)}
    exc = sc.tail_exceptions
    suffix = ".fastq.gz" if gzip else ".fastq"
    names = (
        [f"{out_prefix.name}_R{i + 1}{suffix}" for i in range(2)]
        if paired
        else [f"{out_prefix.name}{suffix}"]
    )
    outs = [out_prefix.parent / n for n in names]
    for o in outs:
        if o.exists() or o.is_symlink():
            raise InputError(f"{o}: exists already; refusing to overwrite")
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_prefix.name}.restore.", dir=out_prefix.parent))
    writers: list[_FastqOut] = []
    sorts: list[SamSort] = []
    done = False
    try:
        for out, meta in zip(outs, sc.files, strict=True):
            writers.append(_FastqOut(out, gzip=gzip, two_headers=meta.two_headers))

        def sorter(tag: str, header: bool = True) -> SamSort:
            s = SamSort(
                tag,
                work,
                f"{cram}: restore",
                memory=sort_memory,
                threads=sort_threads,
                header=header,
            )
            sorts.append(s)
            return s

        # 1. primary records minus the excluded ones, by canonical order key
        canon = sorter("XK", header=False)
        _feed_canonical(cram, reference, sc, templates, canon)
        units = _units(canon.sorted(), paired, templates, exc, cram)
        # 2. units in canonical order: written, or re-sorted into the original order
        permuted = keep_order and sc.order == "permutation"
        if permuted:
            inverse = _inverse(sc, sidecar)
            sc.drop_order()  # the decoded rank stream is not needed any more
            orig = sorter("XO")
            n = _tag_original(units, inverse, orig)
            del inverse
            _check_count(n, sc, cram)
            _write_lines(orig.sorted(), writers, mates, templates, exc)
        else:
            n = _write_units(units, writers, templates, exc)
            _check_count(n, sc, cram)
        for w, out, meta in zip(writers, outs, sc.files, strict=True):
            digest = w.close()
            if keep_order and digest != meta.sha256_decompressed:
                raise IntegrityError(
                    f"{out}: restored stream differs from the original {meta.name} "
                    f"(sha256 {digest[:16]}... != {meta.sha256_decompressed[:16]}...)"
                )
        for w in writers:
            os.replace(w.tmp, w.out)
        done = True
        dfd = os.open(out_prefix.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        for s in sorts:
            s.kill()
        if not done:
            for w in writers:
                w.discard()
        shutil.rmtree(work, ignore_errors=True)
    return outs


def _check_count(n: int, sc: sidecar_fmt.Sidecar, cram: Path) -> None:
    for f in sc.files:
        if f.records != n:
            raise IntegrityError(
                f"{cram}: gives {n:,} records for {f.name}, the sidecar says {f.records:,}"
            )


def _feed_canonical(
    cram: Path,
    reference: Path | None,
    sc: sidecar_fmt.Sidecar,
    templates: dict[str, str],
    sort: SamSort,
) -> None:
    """Stage 1: the CRAM's primary records, minus the excluded ones, into `sort` by order key.

    The SAM lines pass on as they are (header included), with the `XK` tag appended; they are
    parsed only in stage 2.
    """
    excluded: dict[str, int] = {}
    for k, d in sc.excluded:
        tag = k + d.hex()
        excluded[tag] = excluded.get(tag, 0) + 1
    excluded_keys = {k for k, _ in sc.excluded}
    raw, okey = sort.raw, order_key
    view = view_records(cram, reference, True)
    try:
        for line in view.lines:
            if line[0] == "@":
                raw(line)
                continue
            name, flag, _ = line.split("\t", 2)
            fl = int(flag)
            m = "1" if fl & 0x40 else "2" if fl & 0x80 else "0"
            if m not in templates:
                raise IntegrityError(
                    f"{cram}: record {show(name + m)} is not in the sidecar's FASTQ"
                )
            if name + m in excluded_keys:
                _, _, seq, qual = parse_record(line)
                tag = name + m + core_digest(name + m, seq, qual)[:8].hex()
                if excluded.get(tag, 0) > 0:
                    excluded[tag] -= 1
                    continue
            raw(f"{line[:-1]}\tXK:Z:{okey(name)}\n")
        view.finish()
    except BaseException:
        view.kill()
        raise


_Rec = tuple[str, str, str, str]  # (bare name, mate code, sequence, qualities)


def _units(
    lines: Iterable[str], paired: bool, templates: dict[str, str], exc: dict[str, str], cram: Path
) -> Iterator[tuple[_Rec, ...]]:
    """Stage 2: the name-grouped sorted records as units ((R1, R2) or (read,)), canonical order."""
    group: list[_Rec] = []
    prev = None
    parse = parse_record
    for line in lines:
        rec = parse(line)
        name = rec[0]
        if name != prev:
            if group:
                yield from _group_units(group, paired, templates, exc, cram)
            group = [rec]
            prev = name
        else:
            group.append(rec)
    if group:
        yield from _group_units(group, paired, templates, exc, cram)


def _group_units(
    group: list[_Rec], paired: bool, templates: dict[str, str], exc: dict[str, str], cram: Path
) -> list[tuple[_Rec, ...]]:
    """The units of the records of one name; ties (repeated names) ordered by full digest."""
    if not paired:
        if len(group) == 1:
            return [(group[0],)]
        return [(r,) for r in sorted(group, key=lambda r: _rec_digest(r, templates, exc))]
    if len(group) == 2 and group[0][1] != group[1][1]:
        return [(group[0], group[1]) if group[0][1] == "1" else (group[1], group[0])]
    # a repeated name: mates paired in digest order (the CRAM does not say which belong together)
    by_mate: dict[str, list[tuple[bytes, _Rec]]] = {"1": [], "2": []}
    for r in group:
        by_mate[r[1]].append((_rec_digest(r, templates, exc), r))
    r1s, r2s = sorted(by_mate["1"]), sorted(by_mate["2"])
    if len(r1s) != len(r2s):
        raise IntegrityError(
            f"{cram}: read {group[0][0]} has {len(r1s)} READ1 and {len(r2s)} READ2 records; "
            "the sidecar does not fit"
        )
    return [(a[1], b[1]) for a, b in sorted(zip(r1s, r2s, strict=True))]


def _rec_digest(r: _Rec, templates: dict[str, str], exc: dict[str, str]) -> bytes:
    key = r[0] + r[1]
    t = exc.get(key)
    return full_digest(key, r[2], r[3], templates[r[1]] if t is None else t)


def _inverse(sc: sidecar_fmt.Sidecar, sidecar: Path) -> np.ndarray:
    """Original position of each canonical rank (the inverse of the sidecar's ranks)."""
    n = sc.order_units
    dtype = np.uint32 if n < 2**32 - 1 else np.uint64
    missing = np.iinfo(dtype).max
    inverse = np.full(n, missing, dtype=dtype)
    start = 0
    for chunk in sc.rank_chunks():
        if len(chunk) and (int(chunk.min()) < 0 or int(chunk.max()) >= n):
            raise IntegrityError(f"{sidecar}: record order out of range")
        inverse[chunk] = np.arange(start, start + len(chunk), dtype=dtype)
        start += len(chunk)
    step = 1 << 24
    if start != n or any((inverse[i : i + step] == missing).any() for i in range(0, n, step)):
        raise IntegrityError(f"{sidecar}: record order is not a permutation")
    return inverse


def _tag_original(units: Iterable[tuple[_Rec, ...]], inverse: np.ndarray, sort: SamSort) -> int:
    """Stage 3 input: each record tagged with its original position (and mate) into `sort`."""
    n = len(inverse)
    width = len(str(max(n - 1, 0)))
    add = sort.add
    count = 0
    for unit in units:
        if count >= n:
            raise IntegrityError("the CRAM gives more records than the sidecar's order holds")
        pos = f"XO:Z:{int(inverse[count]):0{width}d}"
        count += 1
        for name, m, seq, qual in unit:
            add(name, m, seq, qual, pos + m)
    return count


def _write_units(
    units: Iterable[tuple[_Rec, ...]],
    writers: list[_FastqOut],
    templates: dict[str, str],
    exc: dict[str, str],
) -> int:
    """Write the units to the FASTQ writers (R1 to the first, R2 to the second); their count."""
    n = 0
    adds = [w.add for w in writers]
    get = exc.get
    for unit in units:
        n += 1
        for add, (name, m, seq, qual) in zip(adds, unit, strict=True):
            t = get(name + m)
            add(name + (templates[m] if t is None else t), seq, qual)
    return n


def _write_lines(
    lines: Iterable[str],
    writers: list[_FastqOut],
    mates: list[str],
    templates: dict[str, str],
    exc: dict[str, str],
) -> None:
    """Write sorted SAM lines (already in the final order) to the writer of their mate."""
    add = {m: w.add for m, w in zip(mates, writers, strict=True)}
    get = exc.get
    parse = parse_record
    for line in lines:
        name, m, seq, qual = parse(line)
        t = get(name + m)
        add[m](name + (templates[m] if t is None else t), seq, qual)


class _FastqOut:
    """One output FASTQ under a temporary name next to `out`; sha256 of the plain stream."""

    def __init__(self, out: Path, *, gzip: bool, two_headers: bool) -> None:
        self.out = out
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        self.tmp = Path(tmp)
        os.fchmod(fd, 0o644)
        self._fd = fd
        self._raw = os.fdopen(os.dup(fd), "wb")
        self._out: Any = self._raw
        if gzip:  # compressed in a background thread
            self._out = igzip_threaded.open(  # type: ignore[no-untyped-call]
                self._raw, "wb", compresslevel=_GZ_LEVEL, threads=1
            )
        self._sha = hashlib.sha256()
        self._two = two_headers
        self._batch: list[str] = []
        self._closed = False

    def add(self, header: str, seq: str, qual: str) -> None:
        b = self._batch
        b.append(
            f"@{header}\n{seq}\n+{header}\n{qual}\n"
            if self._two
            else f"@{header}\n{seq}\n+\n{qual}\n"
        )
        if len(b) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        data = "".join(self._batch).encode()
        self._sha.update(data)
        self._out.write(data)
        self._batch = []

    def close(self) -> str:
        """Flush, fsync and close; the sha256 of the uncompressed stream."""
        self._flush()
        self._out.close()
        if not self._raw.closed:
            self._raw.close()
        os.fsync(self._fd)
        os.close(self._fd)
        self._closed = True
        return self._sha.hexdigest()

    def discard(self) -> None:
        if not self._closed:
            for fh in (self._out, self._raw):
                with contextlib.suppress(OSError, ValueError):
                    fh.close()
            os.close(self._fd)
            self._closed = True
        self.tmp.unlink(missing_ok=True)
