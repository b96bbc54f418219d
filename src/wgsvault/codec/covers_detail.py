"""Where a FASTQ and a CRAM differ, when their multiset checksums say they do (covers.py).

`detail_pass` keys the FASTQ records by (name, mate) in a dict, at most `DETAIL_LIMIT` at a time
(bigger inputs are split into hash partitions, one re-read of FASTQ and CRAM per partition), and
streams the CRAM's primary records against it, counting matched, missing, altered and extra
records and naming the first difference of each kind; `reason` says it in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from wgsvault.codec.fastq_input import fastq_records, open_sources
from wgsvault.codec.records import MASK, core_digest, full_digest, primary_records, show

#: FASTQ records held in one detail-pass partition (about 150 bytes each)
DETAIL_LIMIT = 4_000_000


class Counts(Protocol):
    """What a detail pass fills in (`covers.CoverReport` is one)."""

    matched: int
    missing: int
    altered: int
    extra: int
    detail_passes: int
    first_difference: dict[str, Any] | None


def detail_pass(
    fastqs: list[Path],
    cram: Path,
    reference: Path | None,
    fq_count: int,
    tail_of: Callable[[str], str],
    report: Counts,
) -> tuple[int, list[tuple[str, bytes]]]:
    """Count missing/altered/extra records; return (full checksum of matched CRAM records, extras).

    Holds at most about `DETAIL_LIMIT` FASTQ records; bigger inputs go in hash partitions.
    """
    parts = max(1, -(-fq_count // DETAIL_LIMIT))
    report.detail_passes = parts
    full_sum = 0
    extras: list[tuple[str, bytes]] = []
    first: dict[str, tuple[Any, ...]] = {}
    for p in range(parts):
        table: dict[str, tuple[int, bytes, int]] = {}  # key -> (index, core digest, length)
        sources, mates = open_sources(fastqs)
        try:
            idx = 0
            for _fi, key, _tail, rec in fastq_records(sources, mates):
                idx += 1
                if parts > 1 and hash(key) % parts != p:
                    continue
                table[key] = (idx, core_digest(key, rec.sequence, rec.qualities), len(rec.sequence))
        finally:
            for s in sources:
                s.close()
        for key, seq, qual in primary_records(cram, reference):
            if parts > 1 and hash(key) % parts != p:
                continue
            entry = table.pop(key, None)
            if entry is None:
                report.extra += 1
                extras.append((key, core_digest(key, seq, qual)[:8]))
                if "extra" not in first:
                    first["extra"] = (key,)
                continue
            if core_digest(key, seq, qual) == entry[1]:
                report.matched += 1
                full_sum += int.from_bytes(full_digest(key, seq, qual, tail_of(key)), "little")
            else:
                report.altered += 1
                if "altered" not in first or entry[0] < first["altered"][0]:
                    first["altered"] = (entry[0], key, entry[2], len(seq))
        report.missing += len(table)
        for key, entry in table.items():
            if "missing" not in first or entry[0] < first["missing"][0]:
                first["missing"] = (entry[0], key)
    files = [Path(p).name for p in fastqs]

    def where(i: int, key: str) -> dict[str, Any]:
        fi = 0 if key[-1] in "01" else 1
        return {"record": show(key), "file": files[fi], "record_number": (i + 1) // len(files)}

    if "altered" in first:
        i, key, flen, clen = first["altered"]
        report.first_difference = {"kind": "altered", **where(i, key)}
        report.first_difference.update(fastq_length=flen, cram_length=clen)
    elif "missing" in first:
        i, key = first["missing"]
        report.first_difference = {"kind": "missing", **where(i, key)}
    elif "extra" in first:
        report.first_difference = {"kind": "extra", "record": show(first["extra"][0])}
    return full_sum & MASK, extras


def reason(r: Counts) -> str:
    parts = []
    fd = r.first_difference or {}
    if r.altered:
        extra = ""
        if fd.get("kind") == "altered":
            extra = (
                f"; first: {fd['record']} ({fd['file']} record {fd['record_number']:,}, "
                f"length {fd['fastq_length']} in FASTQ, {fd['cram_length']} in CRAM)"
            )
        parts.append(f"reads are trimmed/altered: {r.altered:,} records differ{extra}")
    if r.missing:
        extra = ""
        if fd.get("kind") == "missing":
            extra = f"; first: {fd['record']} ({fd['file']} record {fd['record_number']:,})"
        parts.append(f"{r.missing:,} FASTQ records are not primary records of the CRAM{extra}")
    return "; ".join(parts)
