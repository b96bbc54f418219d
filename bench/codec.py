#!/usr/bin/env python3
"""Codec bench: sizes and times of wgsvault's lossless conversions next to the peer tools.

For each corpus of ../shared/data (the simulated 30X `bench/` corpus and the `real/` NA12878
reads), measured in one run on this machine:

* FASTQ pair: gzip -6 of the decompressed FASTQ; samtools import to CRAM 3.0 (samtools' default)
  and to CRAM 3.1 with each profile; `wgsvault convert fastq` (conversion, then its proof);
  `wgsvault restore` to plain FASTQ (MB/s of FASTQ, wall and per CPU-second).
* Aligned BAM: samtools view -C to CRAM 3.0 and 3.1 profiles; `wgsvault convert bam` (+ proof);
  `verify-covers` of the FASTQ against that CRAM (+ sidecar bytes) and restore from CRAM + sidecar.

CPU seconds include child processes. Nothing is asserted; targets are printed beside the table.

    python bench/codec.py [--shared ../shared/data] [--corpus bench real]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from wgsvault.catalog import open_catalog
from wgsvault.codec import htslib
from wgsvault.codec.convert import DEFAULT_PROFILE, PROFILES, convert_bam, convert_fastq
from wgsvault.codec.covers import verify_covers
from wgsvault.codec.refs import Registry
from wgsvault.codec.restore import restore

CORPORA = {
    "bench": ("bench/hsx_R1.fastq.gz", "bench/hsx_R2.fastq.gz", "bench/hsx.bam"),
    "real": (
        "real/NA12878_chr20_region_R1.fastq.gz",
        "real/NA12878_chr20_region_R2.fastq.gz",
        "real/NA12878_chr20_region.bam",
    ),
}
REFERENCE = "real/chr20_region.fa"
Row = tuple[str, str, str, int | None, float, float, str]


def cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), cpu()
    out = fn()
    return out, time.perf_counter() - t0, cpu() - c0


def samtools(*args: str) -> None:
    htslib.run(list(args), cache=None, what="bench")


def measure(
    corpus: str, r1: Path, r2: Path, bam: Path, ref: Path, reg: Registry, w: Path
) -> list[Row]:
    """Every row of one corpus, measured in this process (children included in CPU)."""
    rows: list[Row] = []
    fq_bytes = 0
    for i, src in enumerate((r1, r2), 1):
        data = gzip.decompress(src.read_bytes())
        (w / f"plain_R{i}.fastq").write_bytes(data)
        fq_bytes += len(data)
    mb = fq_bytes / 1e6

    def add(
        kind: str, method: str, size: int | None, wall: float, c: float, note: str = ""
    ) -> None:
        rows.append((corpus, kind, method, size, wall, c, note))

    add("fastq", "FASTQ, uncompressed (input)", fq_bytes, 0, 0)

    def gz6() -> int:
        n = 0
        for i in (1, 2):
            with (
                open(w / f"plain_R{i}.fastq", "rb") as fin,
                open(w / f"g{i}.gz", "wb") as fo,
            ):
                subprocess.run(["gzip", "-6", "-c"], stdin=fin, stdout=fo, check=True)
            n += (w / f"g{i}.gz").stat().st_size
        return n

    n, t, c = timed(gz6)
    add("fastq", "gzip -6", n, t, c)
    for label, fmt in [("samtools import, CRAM 3.0 (default)", "cram,version=3.0")] + [
        (f"samtools import, CRAM 3.1 {p}", f"cram,version=3.1,{p}") for p in PROFILES
    ]:
        out = w / f"u-{fmt.replace(',', '_')}.cram"
        _, t, c = timed(
            lambda o=out, f=fmt: samtools(
                "import", "-i", "-1", str(r1), "-2", str(r2), "-O", f, "-o", str(o)
            )
        )  # type: ignore[misc]
        add("fastq", label, out.stat().st_size, t, c)
    ucram = w / "wgs-u.cram"
    res, t, c = timed(lambda: convert_fastq(r1, r2, ucram))
    add(
        "fastq",
        f"wgsvault convert fastq ({DEFAULT_PROFILE}) + proof",
        ucram.stat().st_size,
        t,
        c,
        f"convert {res.seconds_convert:.2f} s + proof {res.seconds_verify:.2f} s = "
        f"{(res.seconds_convert + res.seconds_verify) / res.seconds_convert:.2f} x",
    )
    _, t, c = timed(lambda: restore(ucram, "fastq", w / "back", registry=reg, gz=False))
    add(
        "fastq",
        "wgsvault restore (plain FASTQ)",
        None,
        t,
        c,
        f"{mb / t:.0f} MB/s, {mb / c:.0f} MB/cpu-s",
    )
    _, t, c = timed(lambda: restore(ucram, "fastq", w / "backgz", registry=reg, gz=True))
    add(
        "fastq",
        "wgsvault restore (FASTQ.gz, level 1)",
        None,
        t,
        c,
        f"{mb / t:.0f} MB/s, {mb / c:.0f} MB/cpu-s",
    )

    add("aligned", "BAM (input)", bam.stat().st_size, 0, 0)
    for label, fmt in [("samtools view -C, CRAM 3.0 (default)", "cram,version=3.0")] + [
        (f"samtools view -C, CRAM 3.1 {p}", f"cram,version=3.1,{p}") for p in PROFILES
    ]:
        out = w / f"a-{fmt.replace(',', '_')}.cram"
        _, t, c = timed(
            lambda o=out, f=fmt: samtools(
                "view", "-C", "-T", str(ref), "-O", f, "-o", str(o), str(bam)
            )
        )  # type: ignore[misc]
        add("aligned", label, out.stat().st_size, t, c)
    acram = w / "wgs-a.cram"
    res, t, c = timed(lambda: convert_bam(bam, acram, registry=reg, build="hg19-chr20"))
    add(
        "aligned",
        f"wgsvault convert bam ({DEFAULT_PROFILE}) + proof",
        acram.stat().st_size,
        t,
        c,
        f"convert {res.seconds_convert:.2f} s + proof {res.seconds_verify:.2f} s = "
        f"{(res.seconds_convert + res.seconds_verify) / res.seconds_convert:.2f} x",
    )
    sc = w / "sidecar"
    with htslib.reference_env(reg.cache):
        rep, t, c = timed(lambda: verify_covers([r1, r2], acram, sidecar=sc, keep_order=True))
    add(
        "aligned",
        "wgsvault verify-covers FASTQ in CRAM (+ sidecar, keep order)",
        sc.stat().st_size if sc.exists() else None,
        t,
        c,
        f"covered={rep.covered}: {rep.matched:,} matched, {rep.extra:,} extra in CRAM",
    )
    if sc.exists():
        with htslib.reference_env(reg.cache):
            _, t, c = timed(
                lambda: restore(
                    acram,
                    "fastq",
                    w / "fromal",
                    registry=reg,
                    sidecar=sc,
                    keep_order=True,
                    gz=False,
                )
            )
        add(
            "aligned",
            "wgsvault restore from CRAM + sidecar",
            None,
            t,
            c,
            f"{mb / t:.0f} MB/s",
        )
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    a = ap.parse_args()
    con = Console()
    ref = a.shared / REFERENCE
    if not ref.exists():
        raise SystemExit(f"{a.shared}: shared data absent; nothing to measure")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="wgsvault-bench-") as tmpd:
        d = Path(tmpd)
        reg = Registry(open_catalog(f"sqlite:///{d / 'c.sqlite'}"), d / "refs")
        reg.add(ref, "hg19-chr20")
        for corpus in a.corpus:
            r1, r2, bam = (a.shared / p for p in CORPORA[corpus])
            w = d / corpus
            w.mkdir()
            rows += measure(corpus, r1, r2, bam, ref, reg, w)
            shutil.rmtree(w)

    table = Table(title="Lossless codec: sizes and times (one run, this machine)")
    for col in ("corpus", "input", "method", "bytes", "MB", "wall s", "cpu s", "note"):
        table.add_column(
            col, justify="right" if col in ("bytes", "MB", "wall s", "cpu s") else "left"
        )
    for corpus, kind, method, size, wall, c, note in rows:
        table.add_row(
            corpus,
            kind,
            method,
            f"{size:,}" if size is not None else "",
            f"{size / 1e6:.2f}" if size is not None else "",
            f"{wall:.2f}" if wall else "",
            f"{c:.2f}" if c else "",
            note,
        )
    table.caption = (
        "targets: default output <= samtools CRAM 3.1 small; convert+proof <= 1.3 x convert; "
        "restore >= 100 MB/s of FASTQ per core"
    )
    con.print(table)


if __name__ == "__main__":
    main()
