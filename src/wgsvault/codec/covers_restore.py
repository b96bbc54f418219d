"""Give back the original FASTQ files from an aligned CRAM and its sidecar, in bounded memory.

What (`restore_fastq`)
    The FASTQ records that `codec.covers.verify_covers` proved to be primary records of the
    CRAM: every primary record (secondary 0x100 and supplementary 0x800 ignored) except the ones
    the sidecar lists as *excluded*, turned back into FASTQ: reverse-strand records (0x10)
    reverse-complemented, qualities from `OQ` when present, the header line rebuilt as bare name +
    the file's *tail* (the sidecar's template, or the record's exception). Records come in the
    canonical order (records.py); with `keep_order` in the original order, as the byte-identical
    decompressed stream (its sha256 is checked before the files are renamed into place).

How: an external bucket sort, on both cores
    1. Scatter (covers_scatter.py): `samtools view -O fastq` decodes the CRAM in a child process
       (one core, and a second thread for slow codecs); Python appends each record to the
       bucket of its `PREFIX:LANE:TILE` (other names share one bucket), in memory until
       `sort_memory` is used, then in files of a private folder next to the outputs.
    2. Sort (covers_batches.py, covers_sort.py): buckets in canonical order, a few small ones
       together or a large one split first, each sorted in memory by (y, x, name) with numpy,
       mate by mate, ties by digest; excluded records dropped, tails looked up.
    3. Write (covers_write.py): FASTQ text joined in C, hashed and written by one thread per
       output file while the next batch is sorted; with `keep_order` and a stored permutation,
       each record first goes to the bucket of its original position, and those buckets are
       sorted by position and written.

    Where two `samtools sort` runs (and SAM text parsed by Python) cost a restore most of its
    time, each record is now touched by Python once per stage, by C loops (bytes.split,
    bytes.join, numpy) except in one short routing loop. The records go to temporary files only
    beyond `sort_memory`: then about their size in text (uncompressed, unlike samtools sort's
    temporary BAM), next to the outputs, freed bucket by bucket as they are written.

Memory bound
    Python holds at most `sort_memory` (default 512M) of records in buckets (data and objects),
    plus half that again while a large bucket is split from its file, plus `sort_memory` / 4
    of records waiting for their original position: about twice `sort_memory` in all, beside
    some 100 MB of code, blocks in flight and the batch being sorted (measured on 81 MB of FASTQ
    with `sort_memory` 64M: 151 MB of Python, 190 MB for an original order that is a random
    permutation). samtools' decoder needs 100 to 260 MB by codec (CRAM 3.1 fqzcomp with 2
    threads the most), whatever the genome's size. Nothing else grows with the reads, except
    what the sidecar holds: its tail exceptions and excluded records, and for a `keep_order`
    restore of a permuted file its decoded rank stream (1 to 4 bytes per pair, freed before the
    scatter) and the inverse permutation (4 bytes per pair; 8 beyond 2**32 - 1 pairs). For a
    30X genome of 400 million pairs: about 1.4 GB with the default `sort_memory` (2 x 512 MB +
    100 MB of Python, 260 MB of samtools), plus 1.6 GB (briefly 3.2 GB) when the order is a
    stored permutation. The only case beyond the bound: the records of one read name (a tie)
    are sorted whole, however many.

Outputs are atomic: temporary names in the destination directory, fsync'd, renamed only when
complete (and, with `keep_order`, checked); nothing is left behind on failure.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from wgsvault.codec import sidecar as sidecar_fmt
from wgsvault.codec.covers_batches import sorted_buckets
from wgsvault.codec.covers_scatter import BucketStore, Scatter, scatter
from wgsvault.codec.covers_sort import Rules
from wgsvault.codec.covers_write import FastqOut, Reorder, fastq_text
from wgsvault.codec.records import SORT_MEMORY, sha256_file
from wgsvault.errors import InputError, IntegrityError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
#: bytes of records above which a bucket is split before it is sorted: small, because a sort
#: whose records stay in the processor's caches runs twice as fast (measured), and the split
#: is one streaming pass
BUCKET_LIMIT = 4 << 20


def restore_fastq(
    cram: Path,
    sidecar: Path,
    out_prefix: Path,
    *,
    reference: Path | None = None,
    gzip: bool = True,
    keep_order: bool = False,
    sort_memory: str = SORT_MEMORY,
    threads: int = 2,
    bucket_limit: int | None = None,
) -> list[Path]:
    """Write the original FASTQ file(s) from `cram` + `sidecar`; return their paths.

    Writes PREFIX_R1.fastq[.gz] and PREFIX_R2.fastq[.gz] (PREFIX.fastq[.gz] single-end), all or
    none, atomically. Records come in canonical order (see the module doc) unless `keep_order`,
    which gives back the original byte stream (checked against its sha256 before renaming).
    `sort_memory` (e.g. `512M`) bounds the records held in memory (see the module doc);
    `threads` are samtools' decoding threads (besides its main one: with the default 2, one
    core decodes while Python routes on the other, and slow codecs such as CRAM 3.1's fqzcomp
    get a second one); `bucket_limit` (bytes) overrides the size above which a bucket is split
    (`BUCKET_LIMIT`).
    """
    cram, out_prefix = Path(cram), Path(out_prefix)
    memory = _size(sort_memory)
    limit = bucket_limit if bucket_limit is not None else BUCKET_LIMIT
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
    writers: list[FastqOut] = []
    done = False
    try:
        for out in outs:
            writers.append(FastqOut(out, gzip=gzip, digest=keep_order))
        rules = Rules.of(sc, cram)
        two = [f.two_headers for f in sc.files]
        reorder = None
        if keep_order and sc.order == "permutation":
            inverse = _inverse(sc, sidecar)
            sc.drop_order()  # the decoded rank stream is not needed any more
            reorder = Reorder(inverse, work, max(1, memory // 4), len(writers), cram)
        (work / "scatter").mkdir()
        spread = Scatter(BucketStore(work / "scatter", memory))
        scatter(cram, reference, spread, threads=threads)
        for bucket in sorted_buckets(spread, rules, limit, work):
            for i, (mate, w) in enumerate(zip(rules.mates, writers, strict=True)):
                rec = bucket[mate]
                if reorder is not None:
                    reorder.add(i, rec, two[i])
                else:
                    w.put(fastq_text(rec, two[i]), len(rec.names))
        if reorder is not None:
            for i, w in enumerate(writers):
                reorder.write(i, w)
        for w, meta in zip(writers, sc.files, strict=True):
            if w.records != meta.records:
                raise IntegrityError(
                    f"{cram}: gives {w.records:,} records for {meta.name}, "
                    f"the sidecar says {meta.records:,}"
                )
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
        if not done:
            for w in writers:
                w.discard()
        shutil.rmtree(work, ignore_errors=True)
    return outs


def _size(text: str) -> int:
    """Bytes of a samtools-style size (`512M`, `2G`, `1000000`)."""
    m = re.fullmatch(r"(\d+)([KMG]?)B?", text.strip().upper())
    if m is None:
        raise InputError(f"sort memory {text!r}: give bytes, or a number with K, M or G")
    return int(m.group(1)) * _UNITS[m.group(2)]


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
