#!/usr/bin/env python3
"""Codec bench: sizes and times of wgsvault's lossless conversions next to the peer tools.

For each corpus of ../shared/data (the simulated 30X `bench/` corpus and the `real/` NA12878
reads), measured in one run on this machine:

* FASTQ pair: gzip -6 of the decompressed FASTQ; samtools import to CRAM 3.0 (samtools' default)
  and to CRAM 3.1 with each profile; `wgsvault convert fastq` (conversion, then its proof);
  `wgsvault restore` to plain FASTQ (MB/s of FASTQ, wall and per CPU-second).
* Aligned BAM: samtools view -C to CRAM 3.0 and 3.1 profiles; `wgsvault convert bam` (+ proof);
  `verify-covers` of the FASTQ against that CRAM (+ sidecar bytes) and restore from CRAM + sidecar
  (original and canonical order, plain and gzip) beside `samtools fastq` of the same CRAM: each
  the best of 3 runs in a fresh process, with the peak RSS of Python and of samtools.

CPU seconds include child processes. Nothing is asserted; targets are printed beside the table.

    python bench/codec.py [--shared ../shared/data] [--corpus bench real] [--aligned-only]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
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
    small = w / "u-cram_version=3.1_small.cram"
    add(
        "fastq",
        "  size against samtools import CRAM 3.1 small",
        None,
        0,
        0,
        f"{100 * (ucram.stat().st_size / small.stat().st_size - 1):+.2f} % (target within 1 %)",
    )
    for threads in (0, 1):
        at = f", -@ {threads}" if threads else ""
        _, t, c = timed(
            lambda n=threads: samtools(
                "fastq", *(["-@", str(n)] if n else []), "-1", str(w / "peer_R1.fastq"),
                "-2", str(w / "peer_R2.fastq"), "-0", "/dev/null", str(ucram),
            )
        )  # type: ignore[misc]
        add("fastq", f"samtools fastq (plain FASTQ, peer{at})", None, t, c, _rate(mb, t, c))
        for gz in (False, True):
            what = "FASTQ.gz, level 1" if gz else "plain FASTQ"
            _, t, c = timed(
                lambda g=gz, n=threads: restore(
                    ucram, "fastq", w / f"back{g}{n}", registry=reg, gz=g, threads=n
                )
            )  # type: ignore[misc]
            add("fastq", f"wgsvault restore ({what}{at})", None, t, c, _rate(mb, t, c))
    rows += comment_dialect(corpus, r1, reg, w)

    rows += measure_aligned(corpus, r1, r2, bam, ref, reg, w, mb)
    return rows


def measure_aligned(
    corpus: str, r1: Path, r2: Path, bam: Path, ref: Path, reg: Registry, w: Path, mb: float
) -> list[Row]:
    """The aligned rows: CRAM sizes, convert bam, verify-covers, and the restore of the FASTQ
    (`mb` MB of it) from CRAM + sidecar beside `samtools fastq` of the same CRAM."""
    rows: list[Row] = []

    def add(
        kind: str, method: str, size: int | None, wall: float, c: float, note: str = ""
    ) -> None:
        rows.append((corpus, kind, method, size, wall, c, note))

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
    if not sc.exists():
        return rows
    # the restore and its peer, each the best of 3 runs in a fresh process (peak memory)
    peer = {"kind": "peer", "cram": str(acram), "cache": str(reg.cache), "out": str(w / "pf")}
    for label, spec in [
        ("samtools fastq -@ 2 of the same CRAM (peer; coordinate order, /1 /2 names)", peer),
    ] + [
        (
            f"wgsvault restore from CRAM + sidecar ({what})",
            {
                "kind": "restore",
                "cram": str(acram),
                "sidecar": str(sc),
                "catalog": f"sqlite:///{w.parent / 'c.sqlite'}",
                "refs": str(w.parent / "refs"),
                "out": str(w / "fromal"),
                "keep_order": ko,
                "gz": gz,
            },
        )
        for what, ko, gz in [
            ("original order, plain", True, False),
            ("canonical order, plain", False, False),
            ("original order, FASTQ.gz level 2", True, True),
        ]
    ]:
        runs = [_in_fresh_process(spec) for _ in range(3)]
        best = min(runs, key=lambda r: r["wall"])
        add(
            "aligned",
            label,
            None,
            best["wall"],
            best["cpu"],
            f"{_rate(mb, best['wall'], best['cpu'])}; peak RSS "
            f"{max(r['rss'] for r in runs):.0f} MB python + "
            f"{max(r['rss_children'] for r in runs):.0f} MB samtools (best of 3)",
        )
    return rows


def _in_fresh_process(spec: dict[str, Any]) -> dict[str, float]:
    """Run one restore (or its peer) in a new Python process: its wall and CPU seconds (with
    samtools') and the peak RSS (MB) of Python (VmHWM) and of samtools (ru_maxrss of the
    children: at least the Python process's size when it started samtools, which is smaller)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _worker(spec: dict[str, Any]) -> None:
    """The measured run of `_in_fresh_process` (prints its figures as JSON)."""
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    if spec["kind"] == "peer":
        _, t, c = timed(
            lambda: htslib.run(
                ["fastq", "-@", "2", "-o", str(out / "peer.fastq"), spec["cram"]],
                cache=Path(spec["cache"]),
                what="bench",
            )
        )
    else:
        reg = Registry(open_catalog(spec["catalog"]), Path(spec["refs"]))
        with htslib.reference_env(reg.cache):
            _, t, c = timed(
                lambda: restore(
                    Path(spec["cram"]),
                    "fastq",
                    out / "x",
                    registry=reg,
                    sidecar=Path(spec["sidecar"]),
                    keep_order=spec["keep_order"],
                    gz=spec["gz"],
                )
            )
    shutil.rmtree(out, ignore_errors=True)
    # VmHWM: this process's own peak (ru_maxrss would also count the parent it was forked from)
    status = Path("/proc/self/status").read_text()
    rss = int(status.split("VmHWM:")[1].split()[0]) / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall": t, "cpu": c, "rss": rss, "rss_children": rss_children}))


def _rate(mb: float, wall: float, cpu_s: float) -> str:
    return f"{mb / wall:.0f} MB/s, {mb / cpu_s:.0f} MB/cpu-s"


def comment_dialect(corpus: str, r1: Path, reg: Registry, w: Path) -> list[Row]:
    """What preserved comments cost: R1 rewritten as an SRA/ENA dump (`@SRR.N original-name
    length=L` on every record, the `+` line repeating the header), gzip -6 against
    `convert fastq`, and samtools import of the same reads (which drops the comments)."""
    src = w / "sra.fastq"
    with open(src, "wb") as out, gzip.open(r1, "rb") as fh:
        for i, line in enumerate(fh):
            if i % 4 == 0:
                name = line[1:].split(maxsplit=1)[0]
                head = b"SRR9999999.%d %s length=" % (i // 4 + 1, name)
            elif i % 4 == 1:
                head += b"%d" % (len(line) - 1)
                out.write(b"@" + head + b"\n" + line)
            elif i % 4 == 2:
                out.write(b"+" + head + b"\n")
            else:
                out.write(line)
    rows: list[Row] = []
    mb = src.stat().st_size / 1e6
    rows.append((corpus, "fastq, SRA", "R1 as an SRA dump (comments, '+' repeats)",
                 src.stat().st_size, 0, 0, ""))
    gz = w / "sra.fastq.gz"

    def gzip6() -> None:
        with open(src, "rb") as fin, open(gz, "wb") as fo:
            subprocess.run(["gzip", "-6", "-c"], stdin=fin, stdout=fo, check=True)

    _, t, c = timed(gzip6)
    rows.append((corpus, "fastq, SRA", "gzip -6", gz.stat().st_size, t, c, ""))
    bare = w / "sra-import.cram"
    _, t, c = timed(lambda: samtools("import", "-0", str(src), "-O", "cram,version=3.1,small",
                                     "-o", str(bare)))
    rows.append((corpus, "fastq, SRA", "samtools import CRAM 3.1 small (drops comments)",
                 bare.stat().st_size, t, c, ""))
    kept = w / "sra-wgs.cram"
    _, t, c = timed(lambda: convert_fastq(src, None, kept))
    cost = kept.stat().st_size - bare.stat().st_size
    rows.append((corpus, "fastq, SRA", "wgsvault convert fastq (small) + proof",
                 kept.stat().st_size, t, c,
                 f"comments cost {cost / 1e6:.2f} MB = "
                 f"{100 * cost / gz.stat().st_size:.1f} % of the gzip -6 file; "
                 f"{100 * kept.stat().st_size / gz.stat().st_size:.0f} % of gzip -6 in all"))
    _, t, c = timed(lambda: restore(kept, "fastq", w / "sra-back", registry=reg, gz=False))
    rows.append((corpus, "fastq, SRA", "wgsvault restore (plain, record path)", None, t, c,
                 _rate(mb, t, c)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    ap.add_argument(
        "--aligned-only",
        action="store_true",
        help="only the aligned rows (CRAM sizes, convert bam, verify-covers, restore + peer)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # one measured run (JSON spec)
    a = ap.parse_args()
    if a.worker:
        _worker(json.loads(a.worker))
        return
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
            if a.aligned_only:
                mb = sum(len(gzip.decompress(p.read_bytes())) for p in (r1, r2)) / 1e6
                rows += measure_aligned(corpus, r1, r2, bam, ref, reg, w, mb)
            else:
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
