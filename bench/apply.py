#!/usr/bin/env python3
"""Apply bench: genomes per hour through the whole main job, and what the journal costs.

An estate of N regional genomes, each a copy of the shared bench corpus (FASTQ pair with CASAVA
comments + aligned BAM, no CRAM yet), is planned with scenario B: per genome the BAM is converted
to CRAM (proven) and the FASTQ goes once verify-covers proves the new CRAM holds every read.
Measured in one run:

* bare samtools: `samtools view -C` (CRAM 3.1 small) per genome, the conversion alone;
* the same work as library calls without journal, catalog or quarantine: convert_bam (+ proof)
  and verify_covers (+ sidecar);
* `apply` (journal, catalog, audit, locks, quarantine) with 1 and 2 parallel genomes.

The difference between the last two is the overhead of making the job accountable and
crash-safe. Nothing is asserted.

    python bench/apply.py [--genomes 4] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wgsvault.apply import apply_plan
from wgsvault.apply.approval import approve
from wgsvault.apply.executors import LocalExecutor
from wgsvault.catalog import open_catalog
from wgsvault.codec import htslib
from wgsvault.codec.convert import convert_bam
from wgsvault.codec.covers import verify_covers
from wgsvault.codec.refs import Registry
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.plan.planner import make_plan, write_plan
from wgsvault.plan.policy import load_policy


def build(root: Path, shared: Path, n: int) -> None:
    b = shared / "bench"
    for i in range(n):
        g = f"G{i:03d}"
        d = root / "region-east" / g
        d.mkdir(parents=True)
        shutil.copy(b / "hsx_R1.fastq.gz", d / f"{g}_R1.fastq.gz")
        shutil.copy(b / "hsx_R2.fastq.gz", d / f"{g}_R2.fastq.gz")
        shutil.copy(b / "hsx.bam", d / f"{g}.bam")
        shutil.copy(b / "hsx.bam.bai", d / f"{g}.bam.bai")


def run_apply(work: Path, shared: Path, n: int, jobs: int) -> tuple[float, int]:
    root = work / f"apply{jobs}"
    build(root, shared, n)
    cat = open_catalog(f"sqlite:///{work / f'apply{jobs}.sqlite'}")
    reg = Registry(cat, work / f"refs{jobs}")
    reg.add(shared / "real" / "chr20_region.fa", "hg19-chr20")
    scan(cat, [str(root)], DEFAULT_LAYOUT)
    plan = make_plan(cat, load_policy("B"), price=1500.0)
    path = work / f"plan{jobs}.json"
    write_plan(plan, path)
    approve(cat, path, controller="region-east", by="bench", reference="BENCH")
    t0 = time.perf_counter()
    s = apply_plan(cat, path, registry=reg, actor="bench", executor=LocalExecutor(jobs))
    wall = time.perf_counter() - t0
    assert not s.failed, s.failed
    cat.close()
    return wall, s.done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--genomes", type=int, default=4)
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    a = ap.parse_args()
    ref = a.shared / "real" / "chr20_region.fa"
    if not ref.exists():
        raise SystemExit(f"{a.shared}: shared data absent; nothing to measure")
    n = a.genomes
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="wgsvault-bench-apply-") as tmpd:
        work = Path(tmpd)
        bare = work / "bare"
        build(bare, a.shared, n)
        t0 = time.perf_counter()
        for d in sorted((bare / "region-east").iterdir()):
            htslib.run(
                [
                    "view",
                    "-C",
                    "-T",
                    str(ref),
                    "-O",
                    "cram,version=3.1,small",
                    "-o",
                    str(d / "x.cram"),
                    str(d / f"{d.name}.bam"),
                ],
                cache=None,
                what="bench",
            )
        rows.append(
            ("samtools view -C (CRAM 3.1 small), conversion only", time.perf_counter() - t0, "")
        )

        lib = work / "lib"
        build(lib, a.shared, n)
        cat = open_catalog(f"sqlite:///{work / 'lib.sqlite'}")
        reg = Registry(cat, work / "refs")
        reg.add(ref, "hg19-chr20")
        t0 = time.perf_counter()
        for d in sorted((lib / "region-east").iterdir()):
            g = d.name
            convert_bam(d / f"{g}.bam", d / f"{g}.cram", registry=reg, build="hg19-chr20")
            with htslib.reference_env(reg.cache):
                rep = verify_covers(
                    [d / f"{g}_R1.fastq.gz", d / f"{g}_R2.fastq.gz"],
                    d / f"{g}.cram",
                    sidecar=d / f"{g}.fastq.wgsvault-sidecar",
                    keep_order=True,
                )
            assert rep.covered
        lib_wall = time.perf_counter() - t0
        rows.append(("convert_bam + proof, verify_covers + sidecar (no journal)", lib_wall, ""))
        cat.close()
        for jobs in (1, 2):
            wall, done = run_apply(work, a.shared, n, jobs)
            rows.append(
                (
                    f"wgsvault apply, {jobs} genome(s) in parallel",
                    wall,
                    f"{done} actions; journal/catalog/quarantine overhead "
                    f"{(wall / lib_wall - 1) * 100:+.0f} % vs the line above"
                    if jobs == 1
                    else f"{done} actions",
                )
            )
    table = Table(title=f"Apply bench: {n} genomes of the shared bench corpus, scenario B")
    for col in ("step", "wall s", "s/genome", "genomes/hour", "note"):
        table.add_column(col, justify="left" if col in ("step", "note") else "right")
    for name, wall, note in rows:
        table.add_row(name, f"{wall:.1f}", f"{wall / n:.2f}", f"{n / wall * 3600:,.0f}", note)
    table.caption = (
        "per genome: 220k reads (36 MB of FASTQ.gz + BAM); a 30X genome has ~3,600 times more"
    )
    Console().print(table)


if __name__ == "__main__":
    main()
