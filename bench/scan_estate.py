#!/usr/bin/env python3
"""Scan and plan at national scale: a synthetic estate of 60,000 genomes (~21 files each).

Every file is sparse (no data blocks), so the estate costs inodes, not disk. The script times, in
one run: GNU `find` walking the same tree with the same `stat` fields (the C baseline for a
metadata walk), wgsvault's cold scan into an empty catalog, an incremental rescan with nothing
changed, a rescan after 1 % of genomes changed (a file grown, one added, one removed), and the
plans of scenarios B and C. It prints one table; nothing is asserted.

    python bench/scan_estate.py [--genomes 60000] [--dir /tmp/wgsvault-bench] [--catalog URL]

Targets (issue 2, this 2-core machine): full scan <= 120 s, plan <= 30 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wgsvault.catalog import open_catalog
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.plan.planner import make_plan, write_plan
from wgsvault.plan.policy import load_policy

GB = 10**9
REGIONS = (
    "region-hovedstaden",
    "region-sjaelland",
    "region-syddanmark",
    "region-midtjylland",
    "region-nordjylland",
)
REGIONAL = {  # name template -> size; the run folder's 6 files count as one catalog unit
    "{r}/RunInfo.xml": 2_000,
    "{r}/RTAComplete.txt": 40,
    "{r}/Data/Intensities/BaseCalls/L001/L001_1.cbcl": 19 * GB,
    "{r}/Data/Intensities/BaseCalls/L002/L002_1.cbcl": 19 * GB,
    "{r}/Data/Intensities/BaseCalls/L003/L003_1.cbcl": 19 * GB,
    "{r}/Data/Intensities/BaseCalls/L004/L004_1.cbcl": 18 * GB,
    "{g}_R1.fastq.gz": 45 * GB,
    "{g}_R2.fastq.gz": 45 * GB,
    "{g}.bam": 110 * GB,
    "{g}.bam.bai": 9_000_000,
    "{g}.cram": 27 * GB,
    "{g}.cram.crai": 1_500_000,
    "{g}.g.vcf.gz": 30 * GB,
    "{g}.g.vcf.gz.tbi": 3_000_000,
    "{g}.vcf.gz": 4 * GB,
    "{g}.vcf.gz.tbi": 2_000_000,
    "md5sums.txt": 900,
}
NATIONAL = {
    "{g}.cram": 27 * GB,
    "{g}.cram.crai": 1_500_000,
    "{g}.vcf.gz": 4 * GB,
    "{g}.vcf.gz.tbi": 2_000_000,
}


def _sparse(path: str, size: int) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _make(args: tuple[str, int, int]) -> int:
    root, start, stop = args
    n = 0
    for i in range(start, stop):
        g = f"NGC{i:06d}"
        run = f"2611{i % 28 + 1:02d}_A00531_{i // 400:04d}_AHKTLJDSXY"
        gdir = os.path.join(root, REGIONS[i % len(REGIONS)], g)
        ndir = os.path.join(root, "national", g)
        for base, spec in ((gdir, REGIONAL), (ndir, NATIONAL)):
            for tmpl, size in spec.items():
                path = os.path.join(base, tmpl.format(g=g, r=run))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _sparse(path, size)
                n += 1
    return n


def build(root: Path, genomes: int) -> int:
    marker = root.parent / f".estate-{genomes}"
    if marker.exists():
        return int(marker.read_text())
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    step = 500
    chunks = [(str(root), i, min(i + step, genomes)) for i in range(0, genomes, step)]
    with Pool(os.cpu_count()) as pool:
        n = sum(pool.map(_make, chunks))
    marker.write_text(str(n))
    return n


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed(fn):  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--genomes", type=int, default=60_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/wgsvault-bench"))
    ap.add_argument("--catalog", help="catalog URL (default: a fresh SQLite file in --dir)")
    ap.add_argument("--keep", action="store_true", help="keep the estate for another run")
    a = ap.parse_args()
    con = Console()
    root = a.dir / "estate"
    a.dir.mkdir(parents=True, exist_ok=True)
    con.print(f"building {a.genomes:,} genomes in {root} ...")
    nfiles, t_build, _ = timed(lambda: build(root, a.genomes))
    con.print(f"{nfiles:,} sparse files in {t_build:.0f} s")

    rows: list[tuple[str, int, float, float, str]] = []
    cold = drop_caches()
    _, t, c = timed(
        lambda: subprocess.run(
            ["find", str(root), "-printf", "%s %T@ %i %y %p\n"],
            stdout=subprocess.DEVNULL,
            check=True,
        )
    )
    rows.append(("find -printf (GNU, C)" + (" cold" if cold else ""), nfiles, t, c, ""))

    db = a.dir / "catalog.sqlite"
    for p in a.dir.glob("catalog.sqlite*"):
        p.unlink()
    url = a.catalog or f"sqlite:///{db}"
    cat = open_catalog(url)
    drop_caches()
    res, t, c = timed(lambda: scan(cat, [str(root)], DEFAULT_LAYOUT))
    rows.append(
        (
            "wgsvault scan, empty catalog" + (" cold" if cold else ""),
            res.files_seen,
            t,
            c,
            f"{res.added:,} rows added",
        )
    )
    res, t, c = timed(lambda: scan(cat, [str(root)], DEFAULT_LAYOUT))
    rows.append(
        (
            "wgsvault rescan, nothing changed",
            res.files_seen,
            t,
            c,
            f"{res.added + res.changed + res.vanished} rows written",
        )
    )
    step = max(1, a.genomes // (a.genomes // 100 or 1))
    for i in range(0, a.genomes, step):
        g = f"NGC{i:06d}"
        d = root / REGIONS[i % len(REGIONS)] / g
        with open(d / f"{g}.vcf.gz", "r+b") as fh:
            fh.truncate(4 * GB + 1)
        _sparse(str(d / "extra_qc.html"), 10)
        (d / "md5sums.txt").unlink(missing_ok=True)
    res, t, c = timed(lambda: scan(cat, [str(root)], DEFAULT_LAYOUT))
    rows.append(
        (
            "wgsvault rescan, 1 % genomes changed",
            res.files_seen,
            t,
            c,
            f"+{res.added:,} ~{res.changed:,} -{res.vanished:,}",
        )
    )
    for name in ("B", "C"):
        plan, t, c = timed(lambda n=name: make_plan(cat, load_policy(n), price=1500.0))  # type: ignore[misc]
        s = plan["summary"]
        out = a.dir / f"plan-{name}.json"
        _, tw, cw = timed(lambda p=plan, o=out: write_plan(p, o))  # type: ignore[misc]
        rows.append(
            (
                f"wgsvault plan {name}",
                nfiles,
                t,
                c,
                f"{len(plan['actions']):,} actions, {s['regions']['pct_freed']:.1f} % regional",
            )
        )
        rows.append(
            (
                f"  + write plan {name} file",
                nfiles,
                tw,
                cw,
                f"{out.stat().st_size / 1e6:,.0f} MB JSON",
            )
        )
    cat.close()

    table = Table(
        title=f"Scan and plan: {a.genomes:,} genomes, {nfiles:,} files "
        f"({os.cpu_count()} cores, catalog {url.split(':')[0]})"
    )
    for col in ("step", "files", "wall s", "cpu s", "files/s", "note"):
        table.add_column(col, justify="left" if col in ("step", "note") else "right")
    for step_name, n, t, c, note in rows:
        table.add_row(step_name, f"{n:,}", f"{t:.1f}", f"{c:.1f}", f"{n / t:,.0f}", note)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table.caption = (
        f"peak RSS {rss:,.0f} MB; caches dropped before cold runs: {cold}; "
        "targets: scan <= 120 s, plan <= 30 s"
    )
    con.print(table)
    if not a.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())
