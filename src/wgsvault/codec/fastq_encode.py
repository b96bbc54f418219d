"""FASTQ records -> unaligned SAM records that keep every byte, in places any htslib reader sees.

A CRAM record holds a name (SAM QNAME), flags, bases and qualities. A FASTQ record can hold more;
`encode` turns each record into one SAM line that `samtools view -C` stores as it is, and puts
whatever the record holds beyond the CRAM fields into aux tags (SAM spec section 1.5: `CO` is the
standard free-text comment; lower-case tags are reserved for local use):

* **the header after the name** (a CASAVA comment ` 1:N:0:ACGT+TGCA`, ` length=150`, key=value
  lists, `/1` `/2` suffixes of paired reads with or without `#0`, any separator): `CO:Z`
  verbatim, with its leading separator, when it is printable ASCII; `zt:Z` escaped otherwise
  (a tab, bytes beyond ASCII);
* **a name that is no valid QNAME** (empty, longer than 254 bytes, holding `@` or bytes beyond
  ASCII), or that repeats the previous fragment's name (`samtools fastq` would drop the second
  of two adjacent pairs of one name, and every record named `*`): QNAME `wgsvault.zn.N` (N the
  fragment's number), the name escaped in `zn:Z`;
* **bases that CRAM would change** (htslib stores IUPAC upper-case codes): lower-case runs as
  `zc:B:I` (start, length pairs); anything else (`.`, `U`, other letters) as the original
  sequence escaped in `zs:Z`;
* **qualities outside `!`..`~`**, or a one-base read whose quality is `*` (SAM's "missing"):
  escaped in `zq:Z`;
* **a `+` line** that does not follow its file's convention (empty, or repeating the header,
  taken from the file's first record): escaped in `zp:Z`.

Escaping (`zt zn zs zq zp`): `\\` becomes `\\\\`, bytes outside 0x20-0x7E become `\\xHH`.
Paired reads (two files, or `interleaved` one) are flagged READ1/READ2 and must name the same
fragment: names equal once a `/1` `/2` suffix is removed. Per-file layout (CR LF, final line
end, `+` convention, blank lines after the last record) goes into the restore recipe
(fastqfmt.Recipe).
`fastq_decode` reverses all of it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import IO

from wgsvault.codec.fastq_reader import FastqReader
from wgsvault.codec.fastqfmt import LAYOUTS
from wgsvault.errors import InputError

_PRINTABLE = bytes(range(0x20, 0x7F))
_QUALS = bytes(range(33, 127))
_QNAME = re.compile(rb"[!-?A-~]{1,254}")
_BATCH = 4096
_UNMAPPED = b"*\t0\t0\t*\t*\t0\t0"


def _nt16() -> bytes:
    """What htslib gives back for each byte of a SAM sequence (seq_nt16_table, then
    seq_nt16_str): IUPAC codes upper-cased, `U` read as `T`, everything else `N`."""
    codes = "=ACMGRSVTWYHKDBN"
    table = bytearray(b"N" * 256)
    for c in codes:
        table[ord(c)] = table[ord(c.lower())] = ord(c)
    table[ord("U")] = table[ord("u")] = ord("T")
    return bytes(table)


NT16 = _nt16()


def escape(value: bytes) -> bytes:
    out = value.replace(b"\\", b"\\\\")
    if out.translate(None, _PRINTABLE):
        out = b"".join(bytes((c,)) if 0x20 <= c < 0x7F else b"\\x%02x" % c for c in out)
    return out


_ESCAPED = re.compile(rb"\\(\\|x[0-9a-f]{2})")


def unescape(value: bytes) -> bytes:
    if b"\\" not in value:
        return value
    return _ESCAPED.sub(lambda m: b"\\" if m[1] == b"\\" else bytes((int(m[1][1:], 16),)), value)


def _case_runs(seq: bytes) -> bytes:
    """`zc:B:I` value: start,length of each lower-case run."""
    runs = []
    for m in re.finditer(rb"[a-z]+", seq):
        runs += [m.start(), m.end() - m.start()]
    return b"I," + b",".join(b"%d" % n for n in runs)


def apply_case(seq: bytes, runs: bytes) -> bytes:
    """Reverse of `_case_runs` on the upper-case sequence."""
    nums = [int(x) for x in runs.split(b",")[1:]]
    out = bytearray(seq)
    for start, length in zip(nums[::2], nums[1::2], strict=True):
        out[start : start + length] = out[start : start + length].lower()
    return bytes(out)


class Encoder:
    """Turns FASTQ records into SAM lines; counts the tags it wrote (for the recipe)."""

    def __init__(self) -> None:
        self.tags: Counter[str] = Counter()
        self.fragments = 0
        self._previous = b""
        self._renamed = False

    def line(
        self, h: bytes, s: bytes, p: bytes, q: bytes, flag: bytes, bare: int, plus_repeats: bool
    ) -> bytes:
        """One SAM line; `bare` is the length of the header's name part that becomes QNAME.

        `flag` 141 (READ2) continues the fragment of the line before (its mate)."""
        name = h[:bare]
        tail = h[bare:]
        tags = []
        if flag == b"141":  # the mate: renamed with its READ1
            rename = self._renamed
        else:
            self.fragments += 1
            rename = name == self._previous or _QNAME.fullmatch(name) is None
            self._previous = name
            self._renamed = rename
        if rename:
            # no valid QNAME, or the previous fragment's (samtools fastq would drop the record):
            # a name of our own, the original kept in zn
            tags.append(b"zn:Z:" + escape(name))
            self.tags["zn"] += 1
            name = b"wgsvault.zn.%d" % self.fragments
        if tail:
            if tail.translate(None, _PRINTABLE):
                tags.append(b"zt:Z:" + escape(tail))
                self.tags["zt"] += 1
            else:
                tags.append(b"CO:Z:" + tail)
                self.tags["CO"] += 1
        seq = s.translate(NT16)
        if seq != s:
            if s.upper() == seq:
                tags.append(b"zc:B:" + _case_runs(s))
                self.tags["zc"] += 1
            else:
                tags.append(b"zs:Z:" + escape(s))
                self.tags["zs"] += 1
        if q.translate(None, _QUALS) or q == b"*":
            tags.append(b"zq:Z:" + escape(q))
            self.tags["zq"] += 1
            q = b"*"
        if p != (h if plus_repeats else b""):
            tags.append(b"zp:Z:" + escape(p))
            self.tags["zp"] += 1
        fields = [name, flag, _UNMAPPED, seq or b"*", q or b"*", *tags]
        return b"\t".join(fields) + b"\n"


def _bare(h: bytes, suffix: bytes | None) -> int:
    """Length of the name: up to the first space or tab, without `suffix` (`/1`, `/2`)."""
    end = len(h)
    for sep in (b" ", b"\t"):
        i = h.find(sep, 0, end)
        if i >= 0:
            end = i
    if suffix is not None and h[end - 2 : end] == suffix:
        end -= 2
    return end


def _id(h: bytes) -> str:
    return h[: _bare(h, None)].decode(errors="replace")


def encode(readers: list[FastqReader], layout: str, out: IO[bytes]) -> Encoder:
    """Write the SAM text (header line and records) of the FASTQ `readers` to `out`."""
    enc = Encoder()
    out.write(b"@HD\tVN:1.6\tSO:unsorted\tGO:query\n")
    batch: list[bytes] = []
    for line in _lines(readers, layout, enc):
        batch.append(line)
        if len(batch) >= _BATCH:
            out.write(b"".join(batch))
            batch.clear()
    out.write(b"".join(batch))
    return enc


def _lines(readers: list[FastqReader], layout: str, enc: Encoder) -> Iterator[bytes]:
    if layout == "single":
        (r,) = readers
        for h, s, p, q in r:
            yield enc.line(h, s, p, q, b"4", _bare(h, None), r.plus_repeats)
        return
    if layout == "interleaved":
        (r,) = readers
        it = iter(r)
        for h1, s1, p1, q1 in it:
            second = next(it, None)
            if second is None:
                raise InputError(
                    f"{r.path}: record {r.records:,} has no mate (an interleaved file holds "
                    "pairs of records)"
                )
            yield from _pair(enc, r, r, r.records - 1, (h1, s1, p1, q1), second)
        return
    if layout != "paired":
        raise InputError(f"layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    r1, r2 = readers
    it2 = iter(r2)
    for rec1 in r1:
        rec2 = next(it2, None)
        if rec2 is None:
            raise InputError(
                f"{r2.path}: ends after {r2.records:,} records but {r1.path.name} has more "
                "(R1/R2 record counts differ)"
            )
        yield from _pair(enc, r1, r2, r1.records, rec1, rec2)
    if next(it2, None) is not None:
        raise InputError(
            f"{r1.path}: ends after {r1.records:,} records but {r2.path.name} has more "
            "(R1/R2 record counts differ)"
        )


def _pair(
    enc: Encoder,
    r1: FastqReader,
    r2: FastqReader,
    n: int,
    rec1: tuple[bytes, bytes, bytes, bytes],
    rec2: tuple[bytes, bytes, bytes, bytes],
) -> Iterator[bytes]:
    b1 = _bare(rec1[0], b"/1")
    b2 = _bare(rec2[0], b"/2")
    if rec1[0][:b1] != rec2[0][:b2]:
        where = f"record {n:,}" if r1 is not r2 else f"records {n:,} and {n + 1:,}"
        raise InputError(
            f"{r2.path}: {where}: name {_id(rec2[0])!r} is not the mate of {_id(rec1[0])!r} "
            "(mates out of step)"
        )
    yield enc.line(*rec1, b"77", b1, r1.plus_repeats)
    yield enc.line(*rec2, b"141", b2, r2.plus_repeats)
