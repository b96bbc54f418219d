"""Slices: only the records of some regions of a stored CRAM or VCF, as a new file with a
header that keeps what a reader needs and nothing about the server.

A principal whose grant covers regions of a genome must receive those regions' records and
nothing else: not the neighbouring records that share a CRAM container or a BGZF block with them
(which is what byte ranges of the stored file would give away), and not the header's server paths
and command lines. A slice is written by htslib:

* CRAM: `samtools view -C -M` over the stored CRAM and its index, with the registry's references
  (REF_PATH/REF_CACHE, as every codec command), then `samtools reheader` with the public header;
  records overlapping any of the regions, each once, in coordinate order.
* VCF: pysam (htslib) reads the records overlapping the regions through the tabix index and
  writes them, each once, in order, as BGZF VCF under the public header.

The public header (`public_sam_header`, `_public_vcf_header`) keeps, by an allow-list, what
decoding and interpretation need: for SAM `@HD`, `@SQ` (name, length, M5, assembly, species;
never `UR`, a path or URL) and `@RG` (identifiers, sample, library, platform); for VCF the
file format, contigs (ID, length, md5, assembly), INFO, FORMAT, FILTER, ALT and the samples.
`@PG` and `@CO` lines, `##...Command` lines, `##reference` and anything unknown are dropped.
With `header_only`, the slice is the public header alone (an empty, valid file).

Slices are written to a temporary name beside `out` and renamed into place complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pysam

from wgsvault.codec import htslib
from wgsvault.codec.samtools import SEPARATOR
from wgsvault.errors import InputError
from wgsvault.fsutil import land

#: SAM header tags a slice keeps, per record type (everything else is dropped)
PUBLIC_SAM_TAGS: dict[str, frozenset[str]] = {
    "HD": frozenset({"VN", "SO", "GO", "SS"}),
    "SQ": frozenset({"SN", "LN", "M5", "AS", "SP", "AN", "TP", "AH"}),
    "RG": frozenset({"ID", "SM", "LB", "PL", "PU", "CN", "DT", "PI", "PM", "BC", "FO", "KS"}),
}
#: VCF header lines a slice keeps (structured ones by key, their attributes as listed)
PUBLIC_VCF_KEYS = frozenset({"INFO", "FORMAT", "FILTER", "ALT"})
PUBLIC_CONTIG_ATTRS = ("ID", "length", "md5", "assembly")


class UnknownReference(InputError):
    """A region names a reference sequence the file does not have."""


@dataclass(frozen=True)
class Span:
    """A requested region in htsget coordinates: 0-based `start`, exclusive `end`, None = from
    the beginning / to the end; `name` "*" is the unplaced unmapped reads (CRAM only)."""

    name: str
    start: int | None = None
    end: int | None = None

    def region(self) -> str:
        """The region in htslib's syntax (1-based, inclusive; `{name}` when it holds a colon)."""
        name = f"{{{self.name}}}" if ":" in self.name else self.name
        if self.name == "*" or (self.start is None and self.end is None):
            return name
        first = (self.start or 0) + 1
        return f"{name}:{first}-" if self.end is None else f"{name}:{first}-{self.end}"


def public_sam_header(text: str) -> str:
    """The allow-listed lines and tags of a SAM header text (see the module docstring)."""
    out = []
    for line in text.splitlines():
        kind = line[1:3]
        keep = PUBLIC_SAM_TAGS.get(kind)
        if not line.startswith("@") or keep is None:
            continue
        fields = [f for f in line.split("\t")[1:] if f[:2] in keep]
        out.append("\t".join([f"@{kind}", *fields]) + "\n")
    return "".join(out)


def _staged(out: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
    os.close(fd)
    return Path(name)


def slice_cram(
    src: Path, spans: Sequence[Span], out: Path, *, cache: Path | None, header_only: bool = False
) -> None:
    """Write to `out` a CRAM of `src`'s records overlapping `spans`, under the public header."""
    level = pysam.set_verbosity(0)
    try:
        with pysam.AlignmentFile(str(src), "rc", check_sq=False) as fh:
            header, names = str(fh.header), set(fh.references)
    except (OSError, ValueError) as exc:
        raise InputError(f"{src}: cannot read CRAM header: {exc}") from None
    finally:
        pysam.set_verbosity(level)
    for s in spans:
        if s.name != "*" and s.name not in names:
            raise UnknownReference(f"reference {s.name!r} is not in this file")
    body, hdr, final = _staged(out, ".cram"), _staged(out, ".sam"), _staged(out, ".tmp")
    try:
        hdr.write_text(public_sam_header(header))
        select = ["-H"] if header_only else ["-M", str(src), *(s.region() for s in spans)]
        if header_only:
            select.append(str(src))
        view = ["view", "-C", "--no-PG", "-o", str(body), *select]
        reheader = ["reheader", "--no-PG", str(hdr), str(body)]
        with open(final, "wb") as fh:  # both in one child: its start-up costs more than a slice
            htslib.run(
                [*view, SEPARATOR, *reheader],
                cache=cache,
                what=f"{src}: slice",
                stdout=fh.fileno(),
            )
        land([(final, out)])
    finally:
        for p in (body, hdr, final):
            p.unlink(missing_ok=True)


def _public_vcf_header(src: pysam.VariantHeader) -> pysam.VariantHeader:
    hdr = pysam.VariantHeader()
    for rec in src.records:
        if rec.key == "contig":
            attrs = {k: v for k, v in rec.items() if k in PUBLIC_CONTIG_ATTRS}
            fields = ",".join(f"{k}={attrs[k]}" for k in PUBLIC_CONTIG_ATTRS if k in attrs)
            hdr.add_line(f"##contig=<{fields}>")
        elif rec.key in PUBLIC_VCF_KEYS:
            hdr.add_line(str(rec).rstrip("\n"))
    for sample in src.samples:
        hdr.add_sample(sample)
    return hdr


def _merged(spans: Sequence[Span], order: list[str]) -> list[tuple[str, int, int | None]]:
    """Spans as disjoint intervals per contig, in the file's contig order."""
    out: list[tuple[str, int, int | None]] = []
    for name in order:
        ivs = sorted(((s.start or 0, s.end) for s in spans if s.name == name), key=lambda i: i[0])
        merged: list[tuple[int, int | None]] = []
        for lo, hi in ivs:
            if merged and (merged[-1][1] is None or lo <= merged[-1][1]):
                last_lo, last_hi = merged[-1]
                merged[-1] = (last_lo, None if hi is None or last_hi is None else max(hi, last_hi))
            else:
                merged.append((lo, hi))
        out += [(name, lo, hi) for lo, hi in merged]
    return out


def slice_vcf(src: Path, spans: Sequence[Span], out: Path, *, header_only: bool = False) -> None:
    """Write to `out` a BGZF VCF of `src`'s records overlapping `spans`, under the public
    header (each record once, in file order)."""
    final = _staged(out, ".tmp")
    try:
        with pysam.VariantFile(str(src)) as vin:
            contigs = [str(c) for c in vin.header.contigs]
            for s in spans:
                if s.name not in contigs:
                    raise UnknownReference(f"reference {s.name!r} is not in this file")
            hdr = _public_vcf_header(vin.header)
            with pysam.VariantFile(str(final), "wz", header=hdr) as vout:
                contig, carried = "", set[str]()  # records written that reach past their interval
                for name, lo, hi in [] if header_only else _merged(spans, contigs):
                    if name != contig:
                        contig, carried = name, set()
                    reaching = set()
                    for rec in vin.fetch(name, lo, hi):
                        key = str(rec)
                        if hi is not None and rec.stop > hi:
                            reaching.add(key)
                        if rec.start < lo and key in carried:
                            continue  # written with an earlier interval
                        rec.translate(hdr)
                        vout.write(rec)
                    carried = reaching
        land([(final, out)])
    except (OSError, ValueError) as exc:
        raise InputError(f"{src}: cannot slice VCF: {exc}") from None
    finally:
        final.unlink(missing_ok=True)
