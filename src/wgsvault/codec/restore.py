"""Restore: give the original back from a CRAM, streamed, atomically.

* `--to fastq` from an unaligned CRAM written by `convert fastq`: `samtools fastq` and the decoder
  (fastq_decode.py), with the recipe the CRAM carries in its header, give back the exact FASTQ
  file(s): every byte of every record, the order, the R1/R2 split or the interleaved file, line
  ends; gzip output is gzip level 1 and decompresses to those bytes.
* `--to fastq` from an aligned CRAM: with the sidecar that `verify-covers` wrote (covers.py), every
  original FASTQ record comes back; without one the restore is refused (names' comments would be
  lost).
* `--to bam`: every record, the header and the order, decoded with the registry's references.

Output files are written under temporary names in the destination directory, fsync'd and renamed
when complete; a failed restore leaves nothing at the destination.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from isal import igzip_threaded

from wgsvault.codec import htslib
from wgsvault.codec.fastq_decode import decode_cram
from wgsvault.codec.fastqfmt import Recipe, read_recipe
from wgsvault.codec.refs import Registry
from wgsvault.errors import InputError, IntegrityError
from wgsvault.fsutil import land

ProgressFn = Callable[[int], None]  # bytes written so far


def fastq_outputs(prefix: Path, paired: bool, gz: bool) -> list[Path]:
    ext = ".fastq.gz" if gz else ".fastq"
    if paired:
        return [Path(f"{prefix}_R1{ext}"), Path(f"{prefix}_R2{ext}")]
    return [Path(f"{prefix}{ext}")]


def _temps(finals: list[Path]) -> list[Path]:
    out = []
    for f in finals:
        fd, name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=f.suffix, dir=f.parent)
        os.close(fd)
        out.append(Path(name))
    return out


def _run_watched(
    args: list[str], cache: Path | None, temps: list[Path], progress: ProgressFn | None, what: str
) -> None:
    """Run samtools, reporting bytes written while it works (stderr kept in a file, not a pipe
    that could fill up while we poll)."""
    with tempfile.TemporaryFile() as errf:
        proc = htslib.popen(args, cache=cache, stdout=subprocess.DEVNULL, stderr=errf)
        while proc.poll() is None:
            if progress:
                progress(sum(t.stat().st_size for t in temps if t.exists()))
            time.sleep(0.2)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    if proc.returncode != 0:
        raise IntegrityError(f"{what}: {htslib.first_error(err)}")
    if progress:
        progress(sum(t.stat().st_size for t in temps))


def restore(
    cram: Path,
    to: str,
    out: Path,
    *,
    registry: Registry,
    gz: bool = True,
    sidecar: Path | None = None,
    keep_order: bool = False,
    progress: ProgressFn | None = None,
    threads: int | None = None,
) -> list[Path]:
    """Restore `cram` as FASTQ (`out` is a prefix) or BAM (`out` is the file); returns outputs."""
    cram, out = Path(cram), Path(out)
    if threads is None:  # someone is waiting for this data: decode on every core
        threads = max(0, (os.cpu_count() or 1) - 1)
    if not cram.is_file():
        raise InputError(f"{cram}: no such file")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")
    if to == "bam":
        finals = [out]
    elif to == "fastq":
        recipe = read_recipe(cram)
        if recipe is None:
            if sidecar is None:
                raise InputError(
                    f"{cram}: an aligned CRAM; restoring its FASTQ exactly needs the sidecar "
                    "written by verify-covers (--sidecar)"
                )
            from wgsvault.codec.covers_restore import restore_fastq

            return restore_fastq(cram, sidecar, out, gzip=gz, keep_order=keep_order)
        finals = fastq_outputs(out, recipe.layout == "paired", gz)
    else:
        raise InputError(f"--to {to}: choose fastq or bam")
    for f in finals:
        if f.exists():
            raise InputError(f"{f}: exists already; refusing to overwrite")
    temps = _temps(finals)
    try:
        if to == "bam":
            args = ["view", *(["-@", str(threads)] if threads else []), "-b", "-o", str(temps[0])]
            _run_watched([*args, str(cram)], registry.cache, temps, progress, f"{cram}: restore")
        else:
            assert recipe is not None
            _restore_fastq(cram, recipe, temps, gz, registry.cache, threads, progress)
        land(list(zip(temps, finals, strict=True)))
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    return finals


def _restore_fastq(
    cram: Path,
    recipe: Recipe,
    temps: list[Path],
    gz: bool,
    cache: Path | None,
    threads: int,
    progress: ProgressFn | None,
) -> None:
    """Decode the original FASTQ file(s) into `temps` (fastq_decode); gzip is python-isal at
    level 1 (a restored FASTQ is a working copy: compression would bound the restore rate)."""
    written = [0]
    lock = threading.Lock()

    def counted(data: bytes | memoryview) -> None:
        if progress is None:
            return
        with lock:
            written[0] += len(data)
            progress(written[0])

    with contextlib.ExitStack() as stack:
        files: list[Any] = []
        for t in temps:
            if gz:
                files.append(
                    stack.enter_context(
                        igzip_threaded.open(t, "wb", compresslevel=1, threads=1)  # type: ignore[no-untyped-call]
                    )
                )
            else:
                files.append(stack.enter_context(open(t, "wb", buffering=1 << 20)))
        decode_cram(cram, recipe, [[f.write, counted] for f in files], cache=cache, threads=threads)
