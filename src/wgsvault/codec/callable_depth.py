"""Callable regions from a CRAM/BAM's depth, where a genome's gVCF is gone.

`from_depth` is the documented approximation for genomes whose gVCF is gone: positions where the
CRAM/BAM has depth >= `min_dp` from reads of mapping quality >= `min_mapq` (Debian's mosdepth
`--quantize`, duplicates/secondary/QC-fail reads excluded by its default flags). It knows nothing
of genotype quality, so it over-states what is callable in hard regions (low complexity,
paralogous sequence); its header says `method=depth`.

It writes the file format of `callable_regions` (header `method=depth`, thresholds `min_dp` and
`min_mapq`), through the same writer, so readers need not know which way a file was made.
"""

from __future__ import annotations

import ctypes.util
import gzip
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import IO

from wgsvault.codec.callable_regions import CallableSummary, check_start, write
from wgsvault.codec.htslib import child_env
from wgsvault.errors import InputError
from wgsvault.fsutil import land
from wgsvault.inventory.digest import sha256_file


def _mosdepth() -> list[str]:
    found = shutil.which("mosdepth")
    if found is None:
        raise InputError(
            "mosdepth is not installed (apt-get install mosdepth): it gives the depth that "
            "approximates callable regions where a genome's gVCF is gone"
        )
    return [found]


def _mosdepth_env(base: dict[str, str], shim: Path) -> dict[str, str]:
    """Debian's mosdepth 0.3.3 loads `libhts.so` at run time without depending on the package
    that provides that name (libhts-dev): point it at the libhts.so.N that is installed."""
    lib = ctypes.util.find_library("hts")
    env = dict(base)
    if lib is not None:
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
            if Path(d, lib).exists():
                (shim / "libhts.so").symlink_to(Path(d, lib))
                env["LD_LIBRARY_PATH"] = os.pathsep.join(
                    x for x in (str(shim), base.get("LD_LIBRARY_PATH", "")) if x
                )
                break
    return env


def from_depth(
    alignments: Path,
    out: Path,
    *,
    cache: Path | None = None,
    fasta: Path | None = None,
    min_dp: int = 10,
    min_mapq: int = 20,
    threads: int = 1,
) -> CallableSummary:
    """Approximate callable regions from a CRAM/BAM's depth (see the module doc); `cache` is the
    registry's reference cache (REF_PATH), `fasta` a reference mosdepth may read instead."""
    t0 = time.perf_counter()
    alignments, out = Path(alignments), Path(out)
    check_start(alignments, "CRAM or BAM", (b"CRAM", b"\x1f\x8b\x08\x04"))
    exe = _mosdepth()
    with (
        ThreadPoolExecutor(1) as pool,
        tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work,
    ):
        sha = pool.submit(sha256_file, str(alignments))
        prefix = Path(work) / "depth"
        argv = [*exe, "--no-per-base", "--quantize", f"0:{min_dp}:", "--mapq", str(min_mapq)]
        argv += ["--threads", str(max(0, threads - 1))]
        if fasta is not None:
            argv += ["--fasta", str(fasta)]
        env = child_env(cache) | {"MOSDEPTH_Q0": "LOW", "MOSDEPTH_Q1": "CALLABLE"}
        shim = Path(work) / "lib"
        shim.mkdir()
        proc = subprocess.run(
            [*argv, str(prefix), str(alignments)],
            env=_mosdepth_env(env, shim),
            capture_output=True,
            check=False,
        )
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            raise InputError(f"{alignments}: mosdepth failed: {lines[-1] if lines else '?'}")
        quantized = Path(f"{prefix}.quantized.bed.gz")
        thresholds = {"min_dp": min_dp, "min_mapq": min_mapq}
        with gzip.open(quantized, "rt") as fh:
            summary, _, moves = write(out, "depth", alignments, sha, thresholds, _callable(fh))
    land(moves)
    return replace(summary, seconds=round(time.perf_counter() - t0, 3))


def _callable(fh: IO[str]) -> Iterator[tuple[str, int, int]]:
    for line in fh:
        chrom, start, end, label = line.rstrip("\n").split("\t")
        if label == "CALLABLE":
            yield chrom, int(start), int(end)
