"""Restore from CRAM + sidecar, stage 2: a batch of buckets in canonical order, mate by mate.

The records of a bucket (covers_scatter.py) are put in the canonical order of records.py: by
(y, x, name) within an Illumina head `PREFIX:LANE:TILE`, by name among other names; records of
one name (repeated reads) by their full digest (name+mate, sequence, qualities, tail). Each
mate is ordered on its own: for a paired file this gives the very order of today's units (the
READ1 records of a name by digest, and the READ2 records by theirs, the i-th with the i-th), and
it lets the two files be written side by side. The two mates must then hold the same names,
which is checked.

How, without a loop over records in Python
    The headers of a batch are joined into one text; numpy finds in it, for all of them at once,
    the space that ends each name, the mate code after it and the last two colons before it,
    and reads `X` and `Y` as decimals with one step per digit column (not per record). A stable
    sort of (head rank, `y << 30 | x`) gives the order; equal keys (the same name, or `x`/`y`
    spelled with leading zeros) are rare and ordered one run at a time by (name, digest).
    Coordinates that are not plain decimals of at most nine digits (a sign, `_`, very large
    numbers) are read by Python's `int`, as `canonical_key` reads them, and that batch is
    sorted by Python; a record whose `X` or `Y` is no integer at all is no Illumina name, and
    joins the bucket of other names, which comes last. Names, tails, sequences and qualities are
    then gathered into the order by list comprehensions (C loops over pointers).

Records the sidecar excludes (a name and mate it lists, whose core digest matches) are dropped
here, before they take part in the order, and the tails (template, or the record's exception)
are looked up. Which buckets are sorted together, and how large ones are split first, is
covers_batches.py's part.
"""

from __future__ import annotations

import hashlib
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wgsvault.codec import sidecar as sidecar_fmt
from wgsvault.codec.covers_scatter import Scatter
from wgsvault.codec.records import show
from wgsvault.errors import IntegrityError

_B2 = hashlib.blake2b
_MAX_DIGITS = 9  # x and y below 10**9 < 2**30: `y << 30 | x` sorts like (y, x)
LOW = (1 << 30) - 1


@dataclass
class Rules:
    """What the sidecar says about the records, in the form the sort looks it up."""

    cram: Path
    mates: tuple[int, ...]  # mate codes as byte values: (49, 50) READ1, READ2; (48,) single
    tails: dict[int, bytes]  # mate -> template tail + newline
    exceptions: dict[int, dict[bytes, bytes]]  # mate -> {b"@NAME": tail + newline}
    excluded: dict[tuple[bytes, int], Counter[bytes]]  # (b"@NAME", mate) -> digest prefixes
    excluded_names: set[bytes]

    @classmethod
    def of(cls, sc: sidecar_fmt.Sidecar, cram: Path) -> Rules:
        mates = tuple(ord(sc.mate_of_file(i)) for i in range(len(sc.files)))
        tails = {m: f.tail_template.encode() + b"\n" for m, f in zip(mates, sc.files, strict=True)}
        exceptions: dict[int, dict[bytes, bytes]] = {m: {} for m in mates}
        for key, tail in sc.tail_exceptions.items():
            exceptions.setdefault(ord(key[-1]), {})[f"@{key[:-1]}".encode()] = tail.encode() + b"\n"
        excluded: dict[tuple[bytes, int], Counter[bytes]] = {}
        for key, d in sc.excluded:
            excluded.setdefault((f"@{key[:-1]}".encode(), ord(key[-1])), Counter())[d] += 1
        return cls(cram, mates, tails, exceptions, excluded, {name for name, _ in excluded})


class Sorted(NamedTuple):
    """One mate's records of a bucket, in canonical order (names as `@NAME`)."""

    names: Sequence[bytes]
    tails: Sequence[bytes]
    seqs: Sequence[bytes]
    quals: Sequence[bytes]


class Source(NamedTuple):
    """Records of one bucket to sort: flat (header, sequence, qualities, ...), the head all its
    headers start with (`@PREFIX:LANE:TILE`; None: not one), the head's rank in the order."""

    flat: list[bytes]
    head: bytes | None
    rank: int


class Heads(NamedTuple):
    """What the sort reads from headers `@NAME COMMENT`: where the name ends, the mate code
    (the comment's first byte), and `y << 30 | x` (-1 unless `NAME` ends in `:X:Y` of plain
    decimals of 1 to 9 digits)."""

    name_end: np.ndarray
    mate: np.ndarray
    key: np.ndarray


def parse_heads(heads: list[bytes], cram: Path) -> Heads:
    """Parse all headers at once: numpy over their text joined by newlines."""
    n = len(heads)
    text = np.frombuffer(b"\n".join(heads), dtype=np.uint8)
    lengths = np.fromiter(map(len, heads), dtype=np.int64, count=n)
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    spaces = np.flatnonzero(text == 32)
    first = np.searchsorted(spaces, starts)
    sp = spaces[np.minimum(first, len(spaces) - 1)] if len(spaces) else starts
    if not bool(((first < len(spaces)) & (sp + 1 < starts + lengths)).all()):
        raise IntegrityError(f"{cram}: a FASTQ header from samtools has no comment")
    mate = text[sp + 1]
    colons = np.flatnonzero(text == 58)
    last = np.searchsorted(colons, sp) - 1  # the colon of `X:Y`
    c1 = colons[np.clip(last, 0, None)] if len(colons) else starts
    c2 = colons[np.clip(last - 1, 0, None)] if len(colons) else starts
    xl, yl = c1 - c2 - 1, sp - c1 - 1
    ok = (last >= 1) & (c2 > starts) & (xl >= 1) & (xl <= _MAX_DIGITS)
    ok &= (yl >= 1) & (yl <= _MAX_DIGITS)
    x, x_ok = _decimal(text, c2 + 1, xl)
    y, y_ok = _decimal(text, c1 + 1, yl)
    ok &= x_ok & y_ok
    return Heads(sp - starts, mate, np.where(ok, (y << 30) | x, -1))


def _decimal(
    text: np.ndarray, start: np.ndarray, width: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The numbers written at `start` in `width` (<= 9) digits, and whether they are digits:
    one step per digit column (as many as the widest number), over all numbers at once."""
    value = np.zeros(len(start), dtype=np.int64)
    good = np.ones(len(start), dtype=bool)
    top = len(text) - 1
    for k in range(int(np.clip(width, 0, _MAX_DIGITS).max(initial=0))):
        inside = k < width
        d = text[np.minimum(start + k, top)] - np.uint8(48)
        good &= ~inside | (d <= 9)
        value = np.where(inside, value * 10 + d, value)
    return value, good


def sort_batch(
    sources: list[Source], illumina: bool, scatter: Scatter, rules: Rules
) -> dict[int, Sorted]:
    """The records of `sources` (consecutive buckets) in canonical order, per mate code."""
    flat: list[bytes] = []
    for src in sources:
        flat += src.flat
    heads, seqs, quals = flat[0::3], flat[1::3], flat[2::3]
    n = len(heads)
    if n == 0:
        return {m: Sorted([], [], [], []) for m in rules.mates}
    counts = [len(src.flat) // 3 for src in sources]
    rank = np.repeat(np.array([src.rank for src in sources], dtype=np.int64), counts)
    parsed = parse_heads(heads, rules.cram)
    mate = parsed.mate
    names = [h[:e] for h, e in zip(heads, parsed.name_end.tolist(), strict=True)]
    bad = ~np.isin(mate, rules.mates)
    if bad.any():
        i = int(bad.argmax())
        raise IntegrityError(
            f"{rules.cram}: record {show(names[i][1:].decode() + chr(mate[i]))} "
            "is not in the sidecar's FASTQ"
        )
    keep = np.ones(n, dtype=bool)
    if rules.excluded:
        _exclude(names, mate, seqs, quals, rules, keep)
    key: np.ndarray | None = None
    pykeys: list[tuple[int, int, int, bytes]] | None = None
    if illumina:
        key = parsed.key
        if (key < 0).any():  # not plain decimals: Python's int, for the whole batch
            pykeys = _py_keys(flat, names, rank, key, keep, scatter)
            key = None
    out = {}
    for m in rules.mates:
        idx = np.flatnonzero(keep & (mate == m))
        if key is not None:
            idx = idx[np.lexsort((key[idx], rank[idx]))]
            order = idx.tolist()
            k, r = key[idx], rank[idx]
            ties = np.flatnonzero((k[1:] == k[:-1]) & (r[1:] == r[:-1])).tolist()
        elif pykeys is not None:
            order = sorted(idx.tolist(), key=pykeys.__getitem__)
            ties = [j for j in range(len(order) - 1) if pykeys[order[j]] == pykeys[order[j + 1]]]
        else:
            order = sorted(idx.tolist(), key=names.__getitem__)
            ties = [j for j in range(len(order) - 1) if names[order[j]] == names[order[j + 1]]]
        if ties:
            order = _untie(order, ties, names, seqs, quals, m, rules)
        gather = _gatherer(order)
        sorted_names = gather(names)
        out[m] = Sorted(sorted_names, _tails(sorted_names, m, rules), gather(seqs), gather(quals))
    if len(rules.mates) == 2:
        _check_pairs(out[rules.mates[0]].names, out[rules.mates[1]].names, rules.cram)
    return out


def _py_keys(
    flat: list[bytes],
    names: list[bytes],
    rank: np.ndarray,
    key: np.ndarray | None,
    keep: np.ndarray,
    scatter: Scatter,
) -> list[tuple[int, int, int, bytes]]:
    """(head rank, y, x, name), y and x as canonical_key reads them (`int`); a record whose X
    or Y is no integer is no Illumina name: it moves to the other names' bucket (sorted last)."""
    out: list[tuple[int, int, int, bytes]] = []
    for i, (name, r) in enumerate(zip(names, rank.tolist(), strict=True)):
        if key is not None and key[i] >= 0:
            v = int(key[i])
            out.append((r, v >> 30, v & LOW, name))
            continue
        yx = int_yx(name)
        if yx is None:
            out.append((r, 0, 0, name))
            if keep[i]:
                keep[i] = False
                scatter.other.parts.extend(flat[3 * i : 3 * i + 3])
                scatter.store.grew(sum(map(len, flat[3 * i : 3 * i + 3])), 3)
        else:
            out.append((r, *yx, name))
    return out


def int_yx(name: bytes) -> tuple[int, int] | None:
    """(y, x) of `@...:X:Y` read by `int`, or None when they are no integers."""
    text = name.decode("utf-8", "surrogateescape")
    c1 = text.rfind(":")
    c2 = text.rfind(":", 0, c1)
    try:
        return int(text[c1 + 1 :]), int(text[c2 + 1 : c1])
    except ValueError:
        return None


def _exclude(
    names: list[bytes],
    mate: np.ndarray,
    seqs: list[bytes],
    quals: list[bytes],
    rules: Rules,
    keep: np.ndarray,
) -> None:
    """Drop the records the sidecar excludes (name and mate listed, core digest matching).

    A record without qualities comes from samtools as `B`s; parse_record (which the sidecar's
    digests were taken with) reads it as '' (or `*` for one base): both are tried.
    """
    excluded, listed = rules.excluded, rules.excluded_names
    for i in [i for i, name in enumerate(names) if name in listed]:
        name = names[i]
        c = excluded.get((name, int(mate[i])))
        if not c:
            continue
        stem = name[1:] + bytes([mate[i]]) + b"\x00" + seqs[i] + b"\x00"
        q = quals[i]
        tries = [q]
        if q.count(b"B") == len(q):
            tries.append(b"*" if len(seqs[i]) == 1 else b"")
        for qual in tries:
            d = _B2(stem + qual, digest_size=16).digest()[:8]
            if c[d] > 0:
                c[d] -= 1
                keep[i] = False
                break


def _gatherer(order: list[int]) -> Callable[[list[bytes]], Sequence[bytes]]:
    """A function picking the items at `order` from a list (operator.itemgetter: a C loop)."""
    if len(order) > 1:
        return operator.itemgetter(*order)
    return lambda items: [items[i] for i in order]


def _tails(names: Sequence[bytes], m: int, rules: Rules) -> list[bytes]:
    """The tail (+ newline) of each record: its exception, or the mate's template."""
    tails = [rules.tails[m]] * len(names)
    exc = rules.exceptions.get(m)
    if exc:
        for j in [j for j, name in enumerate(names) if name in exc]:
            tails[j] = exc[names[j]]
    return tails


def _untie(
    order: list[int],
    ties: list[int],
    names: list[bytes],
    seqs: list[bytes],
    quals: list[bytes],
    m: int,
    rules: Rules,
) -> list[int]:
    """Order each run of equal keys by (name, full digest: with the record's tail)."""
    mb = bytes([m])
    runs: list[list[int]] = []
    for j in ties:  # j and j + 1 tie
        if runs and runs[-1][-1] == j:
            runs[-1].append(j + 1)
        else:
            runs.append([j, j + 1])

    def sort_key(i: int) -> tuple[bytes, bytes]:
        tail = _tails([names[i]], m, rules)[0][:-1]
        text = names[i][1:] + mb + b"\x00" + seqs[i] + b"\x00" + quals[i] + b"\x00" + tail
        return names[i], _B2(text, digest_size=16).digest()

    for run in runs:
        members = sorted((order[j] for j in run), key=sort_key)
        for j, i in zip(run, members, strict=True):
            order[j] = i
    return order


def _check_pairs(r1: Sequence[bytes], r2: Sequence[bytes], cram: Path) -> None:
    if r1 == r2:
        return
    c1, c2 = Counter(r1), Counter(r2)
    name = min(n for n in c1.keys() | c2.keys() if c1[n] != c2[n])
    raise IntegrityError(
        f"{cram}: read {name[1:].decode()} has {c1[name]} READ1 and {c2[name]} READ2 records; "
        "the sidecar does not fit"
    )
