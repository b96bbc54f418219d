"""Lossless conversion to CRAM 3.1: FASTQ -> unaligned CRAM, BAM -> CRAM against a registered build.

Both conversions run samtools (through htslib.py) into a temporary file beside the destination,
then *prove* the result (verify.py) before it is renamed into place: a converted file that has not
been proven never appears under its final name, and a failed or interrupted conversion leaves
nothing behind. The proof is written next to the CRAM as `<out>.proof.json`.

* FASTQ: `fastqfmt.sniff` decides how the header lines can be restored (plain names, `/1` `/2`,
  CASAVA comments) or refuses; `samtools import` writes the CRAM; the restore recipe is stored in
  the CRAM header as `@CO wgsvault-fastq: {json}` (`fastqfmt.read_recipe`), so the CRAM alone says
  how to give the FASTQ back (restore.py).
* BAM: the BAM's `@SQ` lines must match the registered build (names, lengths, and `M5` where
  present); `samtools view -C` encodes against the registry's copy of the build, and every record,
  the header and the order are kept. The CRAM is indexed (`.crai`).

Profiles are htslib's CRAM 3.1 profiles; the default, `small`, was chosen by measurement (see
README and bench/codec.py): within 1 % of `archive` at a quarter of its time, 6 % smaller than
`normal`.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgsvault import faults
from wgsvault.codec import htslib
from wgsvault.codec.fastqfmt import RECIPE_TAG, FastqFormat, sniff
from wgsvault.codec.refs import Registry, read_header_sq
from wgsvault.codec.verify import file_entry, prove_alignment, prove_fastq, record_checksums
from wgsvault.errors import InputError, IntegrityError
from wgsvault.fsutil import atomic_write_text, land

PROFILES = ("fast", "normal", "small", "archive")
DEFAULT_PROFILE = "small"


@dataclass
class Converted:
    output: Path
    proof: dict[str, Any]
    seconds_convert: float
    seconds_verify: float


def _format_args(profile: str) -> list[str]:
    if profile not in PROFILES:
        raise InputError(f"profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return ["-O", f"cram,version=3.1,{profile}"]


def _check_output(out: Path, inputs: list[Path]) -> None:
    if out.suffix != ".cram":
        raise InputError(f"{out}: the output must end in .cram")
    if out.exists():
        raise InputError(f"{out}: exists already; refusing to overwrite")
    for p in inputs:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        if p.resolve() == out.resolve():
            raise InputError(f"{out}: output would overwrite an input")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`; removed (with its index) unless the caller renamed it."""
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp.cram", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        for p in (tmp, Path(f"{tmp}.crai"), Path(f"{tmp}.hdr")):
            p.unlink(missing_ok=True)


def _land(tmp: Path, out: Path, proof: dict[str, Any], index: bool) -> None:
    """fsync and rename the proven file (and its index) into place, then write the proof."""
    index_move = [(Path(f"{tmp}.crai"), Path(f"{out}.crai"))] if index else []
    land([*index_move, (tmp, out)])
    atomic_write_text(Path(f"{out}.proof.json"), json.dumps(proof, indent=2) + "\n")


def convert_fastq(
    r1: Path,
    r2: Path | None,
    out: Path,
    *,
    profile: str = DEFAULT_PROFILE,
    threads: int = 0,
) -> Converted:
    """FASTQ (single or pair, plain or gzip) -> unaligned CRAM 3.1, proven to restore exactly."""
    inputs = [Path(r1)] + ([Path(r2)] if r2 else [])
    out = Path(out)
    _check_output(out, inputs)
    fmt = sniff(inputs[0], inputs[1] if r2 else None)
    fmt_args = _format_args(profile)
    # the originals' digests are computed while samtools converts (the proof needs them after)
    with staged(out) as tmp, ThreadPoolExecutor(max_workers=len(inputs)) as pool:
        originals = [pool.submit(file_entry, p, True) for p in inputs]
        t0 = time.perf_counter()
        reads = ["-1", str(inputs[0]), "-2", str(inputs[1])] if r2 else ["-0", str(inputs[0])]
        raw = Path(f"{tmp}.hdr")  # import output before the recipe goes into its header
        htslib.run(
            ["import", *fmt.import_args(), *reads, *fmt_args, "-o", str(raw)],
            cache=None,
            what=f"{inputs[0]}: samtools import",
            threads=threads,
            error=InputError,  # import fails on its input (count mismatch, bad record)
            writes=raw,
        )
        _add_recipe(raw, tmp, fmt, inputs)
        raw.unlink()
        faults.point("convert:encoded", out.name)
        t1 = time.perf_counter()
        proof = prove_fastq(inputs, tmp, fmt, threads=threads, originals=originals)
        t2 = time.perf_counter()
        proof["conversion"] = {"profile": profile, "seconds": round(t1 - t0, 3)}
        proof["output"]["path"] = str(out.resolve())
        faults.point("convert:proven", out.name)
        _land(tmp, out, proof, index=False)
    return Converted(out, proof, t1 - t0, t2 - t1)


def _add_recipe(src: Path, dst: Path, fmt: FastqFormat, inputs: list[Path]) -> None:
    """Append the restore recipe to the CRAM header (`samtools reheader`, no re-encoding)."""
    recipe = {"v": 1, **fmt.to_dict(), "files": [p.name for p in inputs]}
    line = f"@CO\t{RECIPE_TAG} {json.dumps(recipe, separators=(',', ':'))}\n"
    with tempfile.NamedTemporaryFile(
        "w", prefix="wgsvault-hdr-", suffix=".sam", delete=False
    ) as fh:
        fh.write(line)
        extra = Path(fh.name)
    try:
        with open(dst, "wb") as out:
            htslib.run(
                ["reheader", "-c", f"cat; cat {shlex.quote(str(extra))}", str(src)],
                cache=None,
                what=f"{src}: samtools reheader",
                writes=dst,
                stdout=out.fileno(),
            )
    finally:
        extra.unlink(missing_ok=True)


def convert_bam(
    bam: Path,
    out: Path,
    *,
    registry: Registry,
    build: str,
    profile: str = DEFAULT_PROFILE,
    threads: int = 0,
) -> Converted:
    """BAM -> CRAM 3.1 against a registered build; every record, header and order kept, proven."""
    bam, out = Path(bam), Path(out)
    _check_output(out, [bam])
    htslib.check_magic(bam, "bam", "sam", "cram")
    ref = registry.get(build)
    assert ref is not None
    registry.match_header(ref, read_header_sq(bam), bam)
    with staged(out) as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        t0 = time.perf_counter()
        # the original's record checksums are computed while samtools converts
        original_sums = pool.submit(record_checksums, bam, cache=registry.cache)
        htslib.run(
            ["view", "-C", "-T", str(ref.fasta), *_format_args(profile), "-o", str(tmp), str(bam)],
            cache=registry.cache,
            what=f"{bam}: samtools view -C",
            threads=threads,
            writes=tmp,
        )
        htslib.run(
            ["index", str(tmp)], cache=registry.cache, what=f"{tmp}: samtools index",
            writes=Path(f"{tmp}.crai"),
        )
        faults.point("convert:encoded", out.name)
        t1 = time.perf_counter()
        proof = prove_alignment(
            bam, tmp, registry=registry, build=build, threads=threads, original_sums=original_sums
        )
        t2 = time.perf_counter()
        if not proof["ok"]:
            raise IntegrityError(f"{out}: conversion of {bam} not proven: {proof['failure']}")
        proof["conversion"] = {"profile": profile, "seconds": round(t1 - t0, 3)}
        proof["output"]["path"] = str(out.resolve())
        faults.point("convert:proven", out.name)
        _land(tmp, out, proof, index=True)
    return Converted(out, proof, t1 - t0, t2 - t1)
