#!/usr/bin/env python3
"""Callable-regions bench: how fast a gVCF's confident intervals are extracted (issue 15).

A GATK HaplotypeCaller-style gVCF is generated (24 contigs; ~92 % reference blocks of mean length
~40 bp with GT:DP:GQ:MIN_DP:PL and GQ drawn from the usual bands, ~8 % variant records with
GT:AD:DP:GQ:PL:SB), bgzipped and indexed. Measured in one run, records of the gVCF per second:

* `wgsvault`: `codec.callable_regions.extract` end to end (pysam's bcftools `query -i` in a child
  process, merging in Python, sha256 of the gVCF, BGZF BED + tabix index landed);
* `pysam.VariantFile`: the same filter in-process, per record and sample (not written);
* the peers, Debian's bcftools 1.16 on the same file with the same filter expression:
  `bcftools view -i EXPR` (VCF text to /dev/null) and `bcftools query -i EXPR -f ...`.

Nothing is asserted.

    python bench/callable.py [--records 2000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pysam
from rich.console import Console
from rich.table import Table

from wgsvault.codec import callable_regions as cr

CONTIGS = [(f"chr{i}", 250_000_000) for i in range(1, 23)] + [
    ("chrX", 156_040_895),
    ("chrY", 57_227_415),
]
FORMATS = [
    ("AD", "R", "Integer"),
    ("DP", "1", "Integer"),
    ("GQ", "1", "Integer"),
    ("GT", "1", "String"),
    ("MIN_DP", "1", "Integer"),
    ("PL", "G", "Integer"),
    ("SB", "4", "Integer"),
]


def write_gvcf(path: Path, n: int, seed: int = 1) -> Path:
    """A GATK-style single-sample gVCF of about `n` records at `path` (.g.vcf), bgzipped."""
    rng = random.Random(seed)
    head = ["##fileformat=VCFv4.2", '##ALT=<ID=NON_REF,Description="Any other allele">']
    head += [f'##FORMAT=<ID={i},Number={n_},Type={t},Description="{i}">' for i, n_, t in FORMATS]
    head += [
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End of the reference block">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##INFO=<ID=MQ,Number=1,Type=Float,Description="Mapping quality">',
    ]
    head += [f"##contig=<ID={c},length={ln}>" for c, ln in CONTIGS]
    head.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12878")
    per = n // len(CONTIGS)
    with open(path, "w") as fh:
        fh.write("\n".join(head) + "\n")
        for c, _ in CONTIGS:
            pos, lines = 10_001, []
            for _ in range(per):
                if rng.random() < 0.08:
                    dp = rng.randint(5, 60)
                    gq = rng.choice([99, 99, 45, 12])
                    a = dp // 2
                    lines.append(
                        f"{c}\t{pos}\t.\tA\tG,<NON_REF>\t{rng.uniform(30, 900):.2f}\t.\t"
                        f"DP={dp};MQ=60.00\tGT:AD:DP:GQ:PL:SB\t0/1:{a},{dp - a},0:{dp}:{gq}:"
                        f"{gq * 9},0,{gq * 11},900,1000,1900:3,4,5,6\n"
                    )
                    pos += 1
                else:
                    ln = int(rng.expovariate(1 / 40)) + 1
                    dp = rng.randint(0, 50)
                    mdp = max(0, dp - rng.randint(0, 8))
                    gq = rng.choice([0, 3, 15, 21, 30, 45, 60, 99, 99, 99])
                    lines.append(
                        f"{c}\t{pos}\t.\tC\t<NON_REF>\t.\t.\tEND={pos + ln - 1}\t"
                        f"GT:DP:GQ:MIN_DP:PL\t0/0:{dp}:{gq}:{mdp}:0,{gq},{gq * 10}\n"
                    )
                    pos += ln
            fh.writelines(lines)
    return Path(pysam.tabix_index(str(path), preset="vcf", force=True))


def variantfile(gvcf: Path, min_gq: int = 20, min_dp: int = 10) -> int:
    kept = 0
    with pysam.VariantFile(str(gvcf)) as vf:
        for rec in vf:
            s = rec.samples[0]
            gq = s.get("GQ")
            d = s.get("MIN_DP") if "MIN_DP" in rec.format else s.get("DP")
            if gq is not None and d is not None and gq >= min_gq and d >= min_dp:
                kept += 1
    return kept


def timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    if fn is subprocess.run:
        fn(args[0], stdout=args[1], check=True)
    else:
        fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="wgsvault-bench-callable-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        gvcf = write_gvcf(work / "NA12878.g.vcf", a.records)
        n = sum(1 for _ in pysam.VariantFile(str(gvcf)))
        took = time.perf_counter() - t0
        print(f"gVCF: {n:,} records, {gvcf.stat().st_size / 1e6:.1f} MB (written in {took:.0f} s)")
        expr = (
            'FMT/GQ>=20 && ((FMT/MIN_DP!="." && FMT/MIN_DP>=10) || (FMT/MIN_DP="." && FMT/DP>=10))'
        )
        rows: list[tuple[str, float, str]] = []
        out = cr.callable_path(gvcf)
        secs = timed(cr.extract, gvcf, out)
        s = cr.summarise(out)
        what = f"{s.intervals:,} intervals, {s.bases / 1e6:.1f} Mb, {s.bytes / 1e6:.2f} MB"
        rows.append(("wgsvault extract (child bcftools query + merge)", secs, what))
        rows.append(("pysam.VariantFile, in-process", timed(variantfile, gvcf), "filter only"))
        debian = shutil.which("bcftools")
        if debian is not None:
            for label, argv in (
                ("Debian bcftools view -i", [debian, "view", "-i", expr, str(gvcf)]),
                ("Debian bcftools query -i", [debian, "query", "-i", expr, "-f",
                                              r"%CHROM\t%POS0\t%END\n", str(gvcf)]),
            ):  # fmt: skip
                secs = timed(subprocess.run, argv, subprocess.DEVNULL)
                rows.append((label, secs, "to /dev/null, no merge"))
        table = Table(title=f"Callable regions of a {n:,}-record gVCF (records/s)")
        for col in ("method", "seconds", "records/s", "note"):
            table.add_column(col, justify="left" if col in ("method", "note") else "right")
        for label, secs, note in rows:
            table.add_row(label, f"{secs:.2f}", f"{n / secs:,.0f}", note)
        Console().print(table)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
