"""Lossless conversion to CRAM 3.1: FASTQ -> unaligned CRAM, BAM -> CRAM against a registered build.

Both conversions run samtools (through htslib.py) into a temporary file beside the destination,
then *prove* the result (verify.py) before it is renamed into place: a converted file that has not
been proven never appears under its final name, and a failed or interrupted conversion leaves
nothing behind. The proof is written next to the CRAM as `<out>.proof.json`.

* FASTQ: `fastq_reader` reads each file exactly (hashing it as it goes), `fastq_encode` turns every
  record into an unaligned SAM record whose aux tags keep whatever CRAM fields cannot (comments,
  odd names, lower-case or `.` bases, odd `+` lines), `samtools view -C` encodes it; the restore
  recipe (layout, per-file line ends and conventions) goes into the CRAM header as
  `@CO wgsvault-fastq: {json}` (`fastqfmt.read_recipe`), so the CRAM alone, plus nothing, gives
  the FASTQ back (fastq_decode.py, restore.py).
* BAM: the BAM's `@SQ` lines must match the registered build (names, lengths, and `M5` where
  present); `samtools view -C` encodes against the registry's copy of the build, and every record,
  the header and the order are kept. The CRAM is indexed (`.crai`).

Profiles are htslib's CRAM 3.1 profiles; the default, `small`, was chosen by measurement (see
README and bench/codec.py): within 1 % of `archive` at a quarter of its time, 6 % smaller than
`normal`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import subprocess
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
from wgsvault.codec.fastq_encode import Encoder, encode
from wgsvault.codec.fastq_reader import FastqReader
from wgsvault.codec.fastqfmt import FileStyle, Recipe
from wgsvault.codec.refs import Registry, read_header_sq
from wgsvault.codec.verify import prove_alignment, prove_fastq, record_checksums
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
    interleaved: bool = False,
) -> Converted:
    """FASTQ (single, pair or interleaved; plain or gzip) -> unaligned CRAM 3.1, proven to
    restore byte for byte."""
    inputs = [Path(r1)] + ([Path(r2)] if r2 else [])
    out = Path(out)
    _check_output(out, inputs)
    if interleaved and r2:
        raise InputError(f"{r2}: an interleaved FASTQ is one file; give R2 only for a pair")
    layout = "paired" if r2 else "interleaved" if interleaved else "single"
    fmt_args = _format_args(profile)
    with staged(out) as tmp:
        t0 = time.perf_counter()
        raw = Path(f"{tmp}.hdr")  # the CRAM before the recipe goes into its header
        readers = [FastqReader(p) for p in inputs]
        try:
            enc = _encode(readers, layout, raw, fmt_args, threads)
            originals = [r.entry() for r in readers]
        finally:
            for r in readers:
                r.close()
        styles = tuple(
            FileStyle(
                name=r.path.name,
                records=r.records,
                crlf=r.crlf,
                final_newline=r.final_newline,
                plus_repeats=r.plus_repeats,
                trailer=r.trailer,
            )
            for r in readers
        )
        recipe = Recipe(layout=layout, files=styles, tags=dict(enc.tags))
        _add_recipe(raw, tmp, recipe)
        raw.unlink()
        faults.point("convert:encoded", out.name)
        t1 = time.perf_counter()
        proof = prove_fastq(inputs, tmp, recipe, threads=threads, originals=originals)
        t2 = time.perf_counter()
        proof["conversion"] = {"profile": profile, "seconds": round(t1 - t0, 3)}
        proof["output"]["path"] = str(out.resolve())
        faults.point("convert:proven", out.name)
        _land(tmp, out, proof, index=False)
    return Converted(out, proof, t1 - t0, t2 - t1)


def _encode(
    readers: list[FastqReader], layout: str, raw: Path, fmt_args: list[str], threads: int
) -> Encoder:
    """Stream the FASTQ records as SAM into `samtools view -C` (fastq_encode)."""
    with tempfile.TemporaryFile() as errf:
        proc = htslib.popen(
            ["view", "-C", *fmt_args, "-o", str(raw), "-"],
            cache=None,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errf,
            threads=threads,
        )
        assert proc.stdin is not None
        enc: Encoder | None = None
        try:
            enc = encode(readers, layout, proc.stdin)
        except BrokenPipeError:
            pass  # samtools stopped reading: its own error says why
        except BaseException:
            proc.kill()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait()
        if proc.returncode != 0:
            errf.seek(0)
            message = htslib.first_error(errf.read().decode(errors="replace"))
            if htslib.disk_full(raw.parent):
                raise OSError(errno.ENOSPC, f"{raw}: {os.strerror(errno.ENOSPC)} ({message})")
            raise IntegrityError(f"{readers[0].path}: samtools view -C: {message}")
    if enc is None:
        raise IntegrityError(f"{readers[0].path}: samtools view -C stopped reading its input")
    return enc


def _add_recipe(src: Path, dst: Path, recipe: Recipe) -> None:
    """Append the restore recipe to the CRAM header (`samtools reheader`, no re-encoding)."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="wgsvault-hdr-", suffix=".sam", delete=False
    ) as fh:
        fh.write(recipe.header_line())
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
            ["index", str(tmp)],
            cache=registry.cache,
            what=f"{tmp}: samtools index",
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
