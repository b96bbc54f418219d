"""Restore from CRAM + sidecar, stage 2 in bounded memory: which buckets are sorted together.

Buckets (covers_scatter.py) are taken in canonical order: the Illumina heads by (prefix, lane,
tile), then the bucket of other names. Consecutive small buckets are sorted together, as one
batch of about `BATCH` bytes of records (each record keeps its head's rank, so the batch sorts
by (rank, y, x)): enough to amortise numpy's cost per call, small enough for the records to stay
in the processor's caches while they are sorted and joined (twice as fast as one large sort).

A bucket larger than `limit` (a tile of a deep run) is split first. Its first records (in
coordinate order: a fair sample) give split points, key quantiles cutting it into parts of about
half the limit; the bucket is then read block by block and each record appended to the
sub-bucket its key falls in (`y << 30 | x` through numpy's searchsorted; other keys through
bisect). A sub-bucket still too large is split again. Only records of one key cannot be split:
one read name (a tie) of more than `limit` bytes is sorted whole.
"""

from __future__ import annotations

import bisect
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wgsvault.codec.covers_scatter import Bucket, BucketStore, Scatter
from wgsvault.codec.covers_sort import (
    LOW,
    Rules,
    Sorted,
    Source,
    int_yx,
    parse_heads,
    sort_batch,
)

#: bytes of records of consecutive small buckets sorted together: enough to amortise numpy's
#: per-call costs, small enough to stay in the processor's caches while sorted and joined
BATCH = 2 << 20
_SAMPLE, _SAMPLE_MAX = 1 << 20, 64 << 20  # bytes of records whose keys give the split points
_MAX_DEPTH = 8  # splits of splits


def sorted_buckets(
    scatter: Scatter, rules: Rules, limit: int, work: Path
) -> Iterator[dict[int, Sorted]]:
    """Every record of `scatter` in canonical order: batches of records, per mate code."""
    store = scatter.store
    batch: list[Source] = []
    held = 0
    for rank, group in enumerate(sorted(scatter.groups)):
        buckets = scatter.groups[group]
        size = sum(store.size(b) for b in buckets)
        if batch and (held + size > min(limit, BATCH)):
            yield sort_batch(batch, True, scatter, rules)
            batch, held = [], 0
        if size > limit:
            yield from _split_sorted(store, buckets, True, scatter, rules, limit, work, 0)
            continue
        batch += [Source(store.take(b), b.head, rank) for b in buckets]
        held += size
    if batch:
        yield sort_batch(batch, True, scatter, rules)
    other = scatter.other
    if store.size(other) > limit:
        yield from _split_sorted(store, [other], False, scatter, rules, limit, work, 0)
    else:
        yield sort_batch([Source(store.take(other), None, 0)], False, scatter, rules)


def _split_sorted(
    store: BucketStore,
    buckets: list[Bucket],
    illumina: bool,
    scatter: Scatter,
    rules: Rules,
    limit: int,
    work: Path,
    depth: int,
) -> Iterator[dict[int, Sorted]]:
    size = sum(store.size(b) for b in buckets)
    # half the budget: with what the parent store still holds, at most twice `sort_memory`
    into = BucketStore(Path(tempfile.mkdtemp(prefix="split.", dir=work)), store.budget // 2)
    into.line_bytes = store.line_bytes
    subs = _split(store, buckets, illumina, into, scatter, rules, size, limit)
    if len(subs) == 1 or depth >= _MAX_DEPTH:  # one key holds it all: sorted whole
        batch = [Source(into.take(s), s.head, 0) for s in subs]
        yield sort_batch(batch, illumina, scatter, rules)
        return
    for sub in subs:
        if into.size(sub) > limit:
            yield from _split_sorted(into, [sub], illumina, scatter, rules, limit, work, depth + 1)
        else:
            yield sort_batch([Source(into.take(sub), sub.head, 0)], illumina, scatter, rules)


def _split(
    store: BucketStore,
    sources: list[Bucket],
    illumina: bool,
    into: BucketStore,
    scatter: Scatter,
    rules: Rules,
    size: int,
    limit: int,
) -> list[Bucket]:
    """The records of `sources` in sub-buckets of `into`, in key order (see the module doc)."""
    head = sources[0].head if len(sources) == 1 else None
    sample: list[Any] = []
    sample_bytes = min(_SAMPLE_MAX, max(_SAMPLE, size // 16))  # ~100 records a split point
    for b in sources:
        for block in store.blocks(b, sample_bytes):
            comp, slow = _split_keys(block, illumina, None, rules)
            sample = [(c >> 30, c & LOW) for c in comp[comp >= 0].tolist()]
            sample += [k for k in slow.values() if k is not None]
            break
        if sample:
            break
    sample.sort()
    parts = max(2, -(-2 * size // limit))  # sub-buckets of about half the limit
    points = sorted({sample[len(sample) * j // parts] for j in range(1, parts)} if sample else ())
    plain = illumina and all(0 <= y <= LOW and 0 <= x <= LOW for y, x in points)
    at = np.array([y << 30 | x for y, x in points] if plain else [], dtype=np.int64)
    subs = [into.new(head) for _ in range(len(points) + 1)]
    for b in sources:
        for block in store.blocks(b):
            comp, slow = _split_keys(block, illumina, scatter, rules)
            where = np.full(len(comp), -1, dtype=np.int64)
            if plain:
                simple = comp >= 0
                where[simple] = np.searchsorted(at, comp[simple], "right")
            else:
                slow.update({i: (c >> 30, c & LOW) for i, c in enumerate(comp.tolist()) if c >= 0})
            for i, k in slow.items():
                if k is not None:
                    where[i] = bisect.bisect_right(points, k)
            order = np.argsort(where, kind="stable")
            bounds = np.searchsorted(where[order], np.arange(len(subs) + 1)).tolist()
            order_list = order.tolist()
            for j, sub in enumerate(subs):
                sel = order_list[bounds[j] : bounds[j + 1]]
                got: list[bytes] = [b""] * (3 * len(sel))
                for f in range(3):
                    got[f::3] = [block[3 * i + f] for i in sel]
                sub.parts += got
            into.grew(sum(map(len, block)), len(block))
        store.drop(b)
    return [sub for sub in subs if sub.parts or sub.path is not None]


def _split_keys(
    block: list[bytes], illumina: bool, scatter: Scatter | None, rules: Rules
) -> tuple[np.ndarray, dict[int, Any]]:
    """Keys to split a block's records by: `y << 30 | x` where plain (-1 elsewhere), and for
    the other records (y, x) as ints, or the name (other names' bucket), or None for a record
    that is no Illumina name after all (moved to the other names' bucket if `scatter`)."""
    heads = block[0::3]
    comp = np.full(len(heads), -1, dtype=np.int64)
    if not illumina:
        return comp, {i: h[: h.find(b" ")] for i, h in enumerate(heads)}
    if heads:
        comp = parse_heads(heads, rules.cram).key
    slow: dict[int, Any] = {}
    for i in np.flatnonzero(comp < 0).tolist():
        h = heads[i]
        yx = int_yx(h[: h.find(b" ")])
        if yx is None and scatter is not None:
            scatter.other.parts.extend(block[3 * i : 3 * i + 3])
            scatter.store.grew(sum(map(len, block[3 * i : 3 * i + 3])), 3)
        slow[i] = yx
    return comp, slow
