#!/usr/bin/env python3
"""Variant frequency bench: build rate, lookups, add/remove and Beacon latency (issue 15).

Four parts, one table, the peers measured in the same run. Nothing is asserted.

1. **Build rate.** A synthetic cohort of `--genomes` genomes over a random reference of
   `--genome-mb` Mb (three autosomes): population sites about one per 200 bp (85 % SNVs, some
   multi-allelic, 15 % indels), allele frequencies skewed to rare (af = 0.5 u^3), genotypes drawn
   per genome (about one variant per 1.2 kb, as in a human genome); per genome a VCF and a
   GATK-style gVCF (reference blocks of mean 150 bp with GQ/DP/MIN_DP, 8 % below GQ 20, 0.3 %
   of blocks missing, variant records with <NON_REF>), bgzipped and indexed. A catalog knows them
   (scan, manifest with patient groups and regions, reference registered). Measured as child
   processes (wall, and CPU of the process tree from `getrusage(RUSAGE_CHILDREN)`):
   `wgsvault variants callable --all` (callable-region extraction alone) and
   `wgsvault variants build --no-extract` (normalise, count, aggregate), both `--jobs 2`; the
   build rate is given with extraction included (the sum) and without. Genomes per hour per
   core = 3600 / CPU-seconds per genome. Peers on the same gVCFs, Debian's bcftools:
   `merge --gvcf REF | +fill-tags -t AC,AN,AF,AC_Hom,AC_Hemi` (the issue's peer) and the
   pipeline that also does what the engine does (`+setGT` GQ<20 | DP<10 to missing, `norm -m
   -any -f REF`), written as BCF.
2. **Lookups at scale.** A store of `--alleles` allele rows (default 50 million) is synthesised at
   the engine's on-disk layout, partition by partition with the engine's own writer
   (`aggregate.write_outputs`: the Parquet partitions and the DuckDB lookup files) and state file
   (`state.write_state`): 22 autosomes of GRCh38's lengths, alleles in proportion to length, one
   allele per position (88 % SNVs, indels), AC skewed to rare (1 + (AN-1) u^12), nhomalt by
   Hardy-Weinberg, AN of 20,000 genomes and two strata (a patient group, a region) with one AN
   segment per stratum and contig. The column layout is compared with the store part 1 built.
   Point lookups (existing alleles at random, 10 % absent) and 100 kb regions through
   `FrequencyStore`, warm (each contig opened once first). Peers, same rows, same run: a
   bgzipped, tabix-indexed sites VCF of every row (written by DuckDB, Debian `bgzip -@2`,
   `tabix`), read in-process with `pysam.TabixFile` and per query with Debian's `tabix` and
   `bcftools view -H -r` (a process per query); and DuckDB over the bare Parquet partition.
3. **Add and remove a genome of `--genome-variants` variants** (default 5 million: 90 % alleles
   already in the store, 10 % new ones at its sites; 40 % homozygous) over the synthesised
   store. Its counted calls and coverage (callable intervals of 10 kb with 50 bp gaps) are
   written at the engine's per-genome layout (`genomes/<id>/<gen>/calls.parquet`,
   `coverage.parquet`), so `add` here is the engine's add without `count_genome` (normalising
   the genome's VCF: part 1 gives its per-genome cost): the store update (`engine._change` on
   a new generation, one `delta.apply_change` per contig) and `engine._commit`. `remove` is the
   engine's own `engine.remove`. Then every allele and coverage partition is compared with the
   store before the add (row count and a hash sum of every column, per contig).
4. **Beacon.** The store is released (`variants.release`) and served by a real `wgsvault serve`
   process (uvicorn, one process) on loopback; a registered principal sends `g_variants` GET
   count queries for alleles in the store, one client with a kept-alive connection, then four
   clients; p50 and p95. The in-process `FrequencyStore.lookup` of part 2 is the peer.

Targets (issue 15): lookup p50 <= 2 ms, p99 <= 10 ms; Beacon p95 <= 25 ms; add or remove one
genome of 5 million variants <= 60 s.

    python bench/variants.py [--quick] [--genomes 40] [--genome-mb 20] [--alleles 50000000]
                             [--genome-variants 5000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pysam
from rich.console import Console
from rich.table import Table

from wgsvault import access
from wgsvault.apply.executors import LocalExecutor
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.codec.refs import Registry
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.variants import engine
from wgsvault.variants import state as st
from wgsvault.variants.aggregate import Change, ContigTask, write_outputs
from wgsvault.variants.release import release
from wgsvault.variants.store import FrequencyStore

from loopback import free_port, wait_up

BUILD = "GRCh38-bench"
GROUPS = ("rare disease", "oncology", "cardiology")
REGIONS = ("region-north", "region-south")
GRCH38 = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
    "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
    "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622, "chr12": 133_275_309,
    "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189, "chr16": 90_338_345,
    "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468,
}  # fmt: skip
#: the synthesised store: genomes behind its AN, and its two strata (name, genomes)
STORE_GENOMES = 20_000
STORE_STRATA = (("group:rare disease", 8_000), ("region:region-north", 10_000))
DEBIAN_BCFTOOLS = "/usr/bin/bcftools"
STRATUM_COL = re.compile(r"(ac|an|nhomalt|nhemi)_(.+)")
MEM = "6GB"  # DuckDB memory limit of this bench's own connections

Row = tuple[str, str, str, str]  # measure, result, target, note


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def ms(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5) * 1e3:.2f} ms, p95 {pct(values, 0.95) * 1e3:.2f} ms, "
        f"p99 {pct(values, 0.99) * 1e3:.2f} ms"
    )


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the child processes run (and waited for) inside the block."""
    got: dict[str, float] = {}
    t0, c0 = time.perf_counter(), children_cpu()
    yield got
    got["wall"], got["cpu"] = time.perf_counter() - t0, children_cpu() - c0


# --------------------------------------------------------------------------- 1. the cohort


def write_reference(path: Path, lengths: dict[str, int], rng: random.Random) -> dict[str, bytes]:
    table = bytes.maketrans(bytes(range(256)), bytes(b"ACGT"[i % 4] for i in range(256)))
    seqs = {c: rng.randbytes(n).translate(table) for c, n in lengths.items()}
    with open(path, "wb") as fh:
        for name, seq in seqs.items():
            fh.write(b">" + name.encode() + b"\n")
            fh.writelines(seq[i : i + 60] + b"\n" for i in range(0, len(seq), 60))
    pysam.faidx(str(path))
    return seqs


def make_sites(seqs: dict[str, bytes], rng: random.Random) -> dict[str, list[Any]]:
    """Per contig: sorted (pos, ref, [alts], [afs]) population sites, about one per 200 bp."""
    out: dict[str, list[Any]] = {}
    for c, seq in seqs.items():
        n = len(seq) // 200
        raw = sorted(rng.sample(range(200, len(seq) - 200), n))
        sites, last = [], -10
        for pos in raw:
            if pos - last < 8:
                continue
            last = pos
            base = chr(seq[pos - 1])
            kind = rng.random()
            af = 0.5 * rng.random() ** 3
            if kind < 0.85:
                others = [b for b in "ACGT" if b != base]
                if rng.random() < 0.05:
                    sites.append((pos, base, rng.sample(others, 2), [af / 2, af / 2]))
                else:
                    sites.append((pos, base, [rng.choice(others)], [af]))
            elif kind < 0.93:
                k = rng.randint(1, 3)
                sites.append((pos, seq[pos - 1 : pos + k].decode(), [base], [af]))
            else:
                ins = "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 3)))
                sites.append((pos, base, [base + ins], [af]))
        out[c] = sites
    return out


VCF_HEAD = [
    "##fileformat=VCFv4.2",
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
]
GVCF_HEAD = [
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End of the reference block">',
    '##FORMAT=<ID=MIN_DP,Number=1,Type=Integer,Description="Minimum depth in the block">',
    '##ALT=<ID=NON_REF,Description="Any other allele">',
]


def write_genome(
    name: str,
    seqs: dict[str, bytes],
    sites: dict[str, list[Any]],
    folder: Path,
    rng: random.Random,
) -> tuple[int, int]:
    """`<name>.vcf.gz` and `<name>.g.vcf.gz` (+ .tbi) in `folder`: (variants, gVCF records)."""
    folder.mkdir(parents=True, exist_ok=True)
    contigs = [f"##contig=<ID={c},length={len(s)}>" for c, s in seqs.items()]
    cols = f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{name}"
    vcf = [*VCF_HEAD, *contigs, cols]
    gvcf = [*VCF_HEAD, *GVCF_HEAD, *contigs, cols]
    n_var = 0
    rand, expo = rng.random, rng.expovariate

    def blocks(c: str, seq: bytes, start: int, end: int) -> None:
        at = start
        while at <= end:
            stop = min(end, at + int(expo(1 / 150)))
            r = rand()
            if r >= 0.003:  # else: no record, the genome is not covered here
                gq = (99, 99, 60, 45, 30, 21)[int(r * 6)] if r > 0.08 else int(r * 240)
                dp = 10 + int(rand() * 40) if gq >= 20 else int(rand() * 30)
                mdp = max(0, dp - int(rand() * 6))
                gvcf.append(
                    f"{c}\t{at}\t.\t{chr(seq[at - 1])}\t<NON_REF>\t.\t.\tEND={stop}\t"
                    f"GT:DP:GQ:MIN_DP\t0/0:{dp}:{gq}:{mdp}"
                )
            at = stop + 1

    for c, seq in seqs.items():
        at = 1
        for pos, ref, alts, afs in sites[c]:
            gt = []
            for _ in range(2):
                r, allele = rand(), 0
                for j, af in enumerate(afs):
                    if r < af:
                        allele = j + 1
                        break
                    r -= af
                gt.append(allele)
            if not any(gt):
                continue
            gt.sort()
            carried = sorted({a for a in gt if a})
            code = {a: i + 1 for i, a in enumerate(carried)}
            g = "/".join(str(code.get(a, 0)) for a in gt)
            alt = ",".join(alts[a - 1] for a in carried)
            gq, dp = (12, 25) if rand() < 0.05 else (99, 20 + int(rand() * 30))
            vcf.append(f"{c}\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT:GQ:DP\t{g}:{gq}:{dp}")
            if at < pos:
                blocks(c, seq, at, pos - 1)
            gvcf.append(f"{c}\t{pos}\t.\t{ref}\t{alt},<NON_REF>\t50\t.\t.\tGT:DP:GQ\t{g}:{dp}:{gq}")
            at = pos + len(ref)
            n_var += len(carried)
        blocks(c, seq, at, len(seq))
    for suffix, lines in ((".vcf", vcf), (".g.vcf", gvcf)):
        path = folder / f"{name}{suffix}"
        path.write_text("\n".join(lines) + "\n")
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return n_var, len(gvcf) - len(GVCF_HEAD) - len(VCF_HEAD) - len(contigs) - 1


def make_cohort(work: Path, genomes: int, genome_mb: float) -> tuple[Catalog, Path, list[Path]]:
    rng = random.Random(15)
    total = int(genome_mb * 1e6)
    lengths = {
        "chr1": total // 2,
        "chr2": total * 3 // 10,
        "chr3": total - total // 2 - total * 3 // 10,
    }
    fasta = work / "ref" / "ref.fa"
    fasta.parent.mkdir(parents=True)
    seqs = write_reference(fasta, lengths, rng)
    sites = make_sites(seqs, rng)
    gvcfs, n_var, n_rec = [], 0, 0
    manifest = ["genome_id,sex,patient_group,requisition_region"]
    for i in range(genomes):
        name = f"NGC{i:05d}"
        v, r = write_genome(name, seqs, sites, work / "estate" / "national" / name, rng)
        n_var, n_rec = n_var + v, n_rec + r
        gvcfs.append(work / "estate" / "national" / name / f"{name}.g.vcf.gz")
        manifest.append(
            f"{name},{('female', 'male')[i % 2]},{GROUPS[i % 3]},{REGIONS[(i // 3) % 2]}"
        )
    (work / "manifest.csv").write_text("\n".join(manifest) + "\n")
    say(
        f"cohort: {genomes} genomes over {genome_mb:g} Mb, {n_var / genomes:,.0f} variants and"
        f" {n_rec / genomes:,.0f} gVCF records per genome"
    )
    home = work / "home"
    cat = open_catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    Registry(cat, home / "refs").add(fasta, BUILD)
    import_manifest(cat, work / "manifest.csv")
    scan(cat, [str(work / "estate")], DEFAULT_LAYOUT)
    return cat, fasta, gvcfs


def wgsvault(env: dict[str, str], *args: str) -> None:
    argv = [sys.executable, "-m", "wgsvault", *args]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def pipeline(steps: list[list[str]]) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    prev = None
    for argv in steps:
        last = argv is steps[-1]
        p = subprocess.Popen(
            argv, stdin=prev, stdout=None if last else subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append(p)
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{' '.join(p.args)} failed")  # type: ignore[arg-type]


def bench_build(work: Path, a: argparse.Namespace) -> tuple[list[Row], Catalog, Path]:
    t0 = time.perf_counter()
    cat, fasta, gvcfs = make_cohort(work, a.genomes, a.genome_mb)
    say(f"cohort written and catalogued in {time.perf_counter() - t0:.0f} s")
    home = work / "home"
    env = {**os.environ, "WGSVAULT_HOME": str(home), "WGSVAULT_CATALOG": cat.url}
    store = work / "cohort-store"
    with measured() as ext:
        wgsvault(env, "variants", "callable", "--all", "--jobs", "2")
    say(f"callable regions extracted in {ext['wall']:.1f} s")
    with measured() as bld:
        wgsvault(env, "variants", "build", "--store", str(store), "--no-extract", "--jobs", "2")
    say(f"built in {bld['wall']:.1f} s")
    n = a.genomes
    rows: list[Row] = []
    per_mb = a.genome_mb

    def rate(label: str, m: dict[str, float], note: str) -> None:
        cpu_g = m["cpu"] / n
        rows.append(
            (
                label,
                f"{3600 / cpu_g:,.0f} genomes/h/core; {cpu_g:.2f} CPU-s/genome",
                "",
                f"wall {m['wall']:.1f} s, CPU {m['cpu']:.1f} s for {n} genomes of {per_mb:g} Mb"
                f" ({cpu_g / per_mb * 3100:,.0f} CPU-s per 3.1 Gb genome if linear); {note}",
            )
        )

    both = {k: ext[k] + bld[k] for k in ext}
    rate("build, callable extraction included", both, "2 local jobs")
    rate("  of which: variants callable --all", ext, "extraction alone")
    rate("  of which: variants build --no-extract", bld, "normalise, count, aggregate")
    listing = work / "gvcfs.txt"
    listing.write_text("".join(f"{g}\n" for g in gvcfs))
    bt, ref = DEBIAN_BCFTOOLS, str(fasta)
    merge = [bt, "merge", "--gvcf", ref, "-l", str(listing), "-Ou"]
    tags = "AC,AN,AF,AC_Hom,AC_Hemi"
    with measured() as peer:
        pipeline(
            [merge, [bt, "+fill-tags", "-Ob", "-o", str(work / "peer1.bcf"), "--", "-t", tags]]
        )
    rate("peer: bcftools merge --gvcf | +fill-tags", peer, "Debian bcftools 1.16")
    with measured() as peer2:
        pipeline(
            [
                merge,
                [bt, "+setGT", "-Ou", "--", "-t", "q", "-n", ".", "-i", "FMT/GQ<20 | FMT/DP<10"],
                [bt, "norm", "-m", "-any", "-f", ref, "-Ou"],
                [bt, "+fill-tags", "-Ob", "-o", str(work / "peer2.bcf"), "--", "-t", tags],
            ]
        )
    rate("peer: merge | +setGT | norm | +fill-tags", peer2, "what the engine does, in bcftools")
    say(f"peers in {peer['wall']:.1f} s and {peer2['wall']:.1f} s")
    with FrequencyStore(store) as fs:
        rows.append(
            (
                "  cohort store",
                f"{sum(len(fs.region(c, 1, 10**9)) for c in fs.contigs()):,} alleles",
                "",
                f"{fs.genomes()} genomes counted",
            )
        )
    return rows, cat, store


# --------------------------------------------------------------------------- 2. the big store


def allele_sql(contig: str, n: int, length: int, seed: int) -> str:
    """SELECT of `n` allele rows of `contig` at the engine's column layout, sorted by pos."""
    stride = max(2, (length - 20_000) // n)
    an = 2 * STORE_GENOMES
    cols = [
        f"'{contig}' AS chrom", "pos", "ref", "alt", "ac", f"{an}::BIGINT AS an",
        f"ac / {an} AS af", f"(ac * ac // {2 * an})::BIGINT AS nhomalt", "0::BIGINT AS nhemi",
    ]  # fmt: skip
    for name, genomes in STORE_STRATA:
        sid, share = st.stratum_id(name), genomes / STORE_GENOMES
        s_an = 2 * genomes
        cols += [
            f"(ac * {share})::BIGINT AS ac_{sid}",
            f"{s_an}::BIGINT AS an_{sid}",
            f"((ac * {share})::BIGINT * (ac * {share})::BIGINT // {2 * s_an})::BIGINT"
            f" AS nhomalt_{sid}",
            f"0::BIGINT AS nhemi_{sid}",
        ]
    return f"""
    WITH r AS (
        SELECT i, hash(i, {seed}) AS h FROM range({n}) t(i)
    ), b AS (
        SELECT i, h, (10001 + i * {stride} + (h % {stride})::BIGINT)::BIGINT AS pos,
            ((h >> 8) & 127)::INT AS kind,
            ['A', 'C', 'G', 'T'][((h >> 16) & 3)::INT + 1] AS base,
            ['A', 'C', 'G', 'T'][(((h >> 16) & 3)::INT + 1 + ((h >> 20) % 3)::INT) % 4 + 1]
                AS other,
            ((h >> 24) % 1000000) / 1e6 AS u
        FROM r
    ), a AS (
        SELECT pos,
            CASE WHEN kind < 113 THEN base WHEN kind < 120 THEN base || other || 'T'
                 ELSE base END AS ref,
            CASE WHEN kind < 113 THEN other WHEN kind < 120 THEN base
                 ELSE base || other END AS alt,
            (1 + floor(pow(u, 12) * {an - 1}))::BIGINT AS ac
        FROM b
    )
    SELECT {", ".join(cols)} FROM a ORDER BY pos"""


def synth_store(store: Path, alleles: int, contigs: dict[str, int]) -> None:
    """The big store at the engine's layout: state.json + data/000001/{alleles,coverage,lookup}."""
    rel, data = st.new_generation(store, None)
    total_len = sum(contigs.values())
    con = duckdb.connect(config={"threads": os.cpu_count() or 1, "memory_limit": MEM})
    try:
        for k, (contig, length) in enumerate(contigs.items()):
            n = alleles * length // total_len
            n += alleles - sum(alleles * x // total_len for x in contigs.values()) if k == 0 else 0
            t0 = time.perf_counter()
            con.execute("DROP TABLE IF EXISTS alleles; DROP TABLE IF EXISTS cov")
            con.execute(f"CREATE TABLE alleles AS {allele_sql(contig, n, length, k)}")
            strata = [("total", STORE_GENOMES), *STORE_STRATA]
            con.execute(
                "CREATE TABLE cov AS SELECT * FROM (VALUES "
                + ", ".join(
                    f"('{contig}', '{s}', 0::BIGINT, {length}::BIGINT, {2 * g}::BIGINT)"
                    for s, g in sorted(strata)
                )  # fmt: skip
                + ") t(chrom, stratum, start, stop, an)"
            )
            write_outputs(con, ContigTask(contig, None, data))
            say(f"  {contig}: {n:,} alleles in {time.perf_counter() - t0:.1f} s")
    finally:
        con.close()
    st.write_state(
        store,
        {
            "build": "GRCh38-synthetic",
            "assembly": "GRCh38",
            "contigs": contigs,
            "strata": {st.stratum_id(s): s for s, _ in STORE_STRATA},
            "releases": [],
            "withdrawn": {},
            "members": members(),
            "generation": int(rel.rsplit("/", 1)[1]),
            "data": rel,
        },
    )


def members() -> dict[str, Any]:
    """Member records of the synthesised store's genomes (no per-genome files: never removed)."""
    out: dict[str, Any] = {}
    for i in range(STORE_GENOMES):
        strata = ["total"] + [
            s for k, (s, g) in enumerate(STORE_STRATA) if (i + k) % STORE_GENOMES < g
        ]
        out[f"SYN{i:06d}"] = {"dir": f"genomes/SYN{i:06d}/none", "strata": strata}
    return out


def parquet_glob(store: Path, table: str = "alleles") -> str:
    state = st.read_state(store)
    assert state is not None
    return str(st.data_dir(store, state) / table / "chrom=*" / "data.parquet")


def layout_same(big: Path, built: Path) -> str:
    """Whether the synthesised partitions have the columns and types the engine wrote."""
    con = duckdb.connect()
    try:
        got = []
        for store in (built, big):
            desc = con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{parquet_glob(store)}',"
                " hive_partitioning=false)"
            ).fetchall()
            strata = [(r[0], r[1]) for r in desc if STRATUM_COL.match(r[0])]
            total = [(r[0], r[1]) for r in desc if not STRATUM_COL.match(r[0])]
            got.append((total, sorted({(STRATUM_COL.match(c)[1], t) for c, t in strata})))  # type: ignore[index]
    finally:
        con.close()
    return "yes" if got[0] == got[1] else f"NO: engine {got[0]} vs bench {got[1]}"


def sample_keys(store: Path, n: int) -> list[tuple[str, int, str, str]]:
    con = duckdb.connect(config={"memory_limit": MEM})
    try:
        rows = con.execute(
            f"SELECT chrom, pos, ref, alt FROM read_parquet('{parquet_glob(store)}',"
            f" hive_partitioning=false) USING SAMPLE reservoir({n} ROWS) REPEATABLE (7)"
        ).fetchall()
    finally:
        con.close()
    rng = random.Random(3)
    keys = [(c, int(p), r, a) for c, p, r, a in rows]
    for i in range(0, len(keys), 10):  # 10 % absent: another ALT at the same place
        c, p, r, a = keys[i]
        keys[i] = (
            c,
            p,
            r,
            a + "A" if len(a) > 1 else rng.choice([b for b in "ACGT" if b not in (r, a)]),
        )
    rng.shuffle(keys)
    return keys


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sites_vcf(store: Path, work: Path, contigs: dict[str, int]) -> Path:
    """Every allele row as a sites VCF (INFO: the total and per-stratum figures), BGZF+tabix."""
    head = ["##fileformat=VCFv4.2"]
    head += [f"##contig=<ID={c},length={n}>" for c, n in contigs.items()]
    info = ["AC", "AN", "AF", "nhomalt", "nhemi"]
    ids = [st.stratum_id(s) for s, _ in STORE_STRATA]
    for f in info + [f"{f}_{i}" for i in ids for f in ("AC", "AN", "nhomalt", "nhemi")]:
        t = "Float" if f == "AF" else "Integer"
        head.append(f'##INFO=<ID={f},Number={"1" if f.startswith("AN") else "A"},Type={t},'
                    f'Description="{f}">')  # fmt: skip
    head.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    parts = [work / "head.vcf"]
    parts[0].write_text("\n".join(head) + "\n")
    fields = ["'AC=' || ac", "';AN=' || an", "';AF=' || printf('%.4g', af)",
              "';nhomalt=' || nhomalt", "';nhemi=' || nhemi"]  # fmt: skip
    for i in ids:
        fields += [f"';AC_{i}=' || ac_{i}", f"';AN_{i}=' || an_{i}",
                   f"';nhomalt_{i}=' || nhomalt_{i}", f"';nhemi_{i}=' || nhemi_{i}"]  # fmt: skip
    state = st.read_state(store)
    assert state is not None
    con = duckdb.connect(config={"memory_limit": MEM})
    try:
        for c in contigs:  # each partition is in position order already
            parts.append(work / f"body-{c}.vcf")
            con.execute(
                f"""COPY (SELECT chrom, pos, '.', ref, alt, '.', '.', {" || ".join(fields)}
                FROM read_parquet('{st.partition(st.data_dir(store, state), "alleles", c)}'))
                TO '{parts[-1]}' (FORMAT csv, HEADER false, DELIMITER '\t')"""
            )
    finally:
        con.close()
    out = work / "sites.vcf.gz"
    with open(out, "wb") as fh:
        cat = subprocess.Popen(["cat", *map(str, parts)], stdout=subprocess.PIPE)
        subprocess.run(["bgzip", "-@2", "-c"], stdin=cat.stdout, stdout=fh, check=True)
        cat.wait()
    for p in parts:
        p.unlink()
    subprocess.run(["tabix", "-p", "vcf", str(out)], check=True)
    return out


def bench_lookups(store: Path, work: Path, a: argparse.Namespace, built: Path) -> list[Row]:
    contigs = dict(GRCH38) if not a.quick else dict(list(GRCH38.items())[:4])
    t0 = time.perf_counter()
    synth_store(store, a.alleles, contigs)
    took = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    n_rows = engine._count_alleles(st.data_dir(store, st.read_state(store) or {}))
    rows: list[Row] = [
        (
            "synthesised store",
            f"{n_rows:,} allele rows",
            ">= 50,000,000",
            f"{len(contigs)} contigs, 2 strata, {size / 1e9:.1f} GB on disk, written in"
            f" {took:.0f} s; layout as the engine writes it: {layout_same(store, built)}",
        )
    ]
    keys = sample_keys(store, a.lookups)
    with FrequencyStore(store) as fs:
        for c in contigs:  # open every contig's lookup file once
            fs.lookup(c, 1, "A", "C")
        found = 0
        lat = []
        for k in keys:
            t = time.perf_counter()
            found += bool(fs.lookup(*k))
            lat.append(time.perf_counter() - t)
        rows.append(("point lookup, FrequencyStore", ms(lat), "p50 <= 2 ms, p99 <= 10 ms",
                     f"{len(keys)} lookups, {found} found; DuckDB lookup files"))  # fmt: skip
        rng = random.Random(5)
        regions = []
        for _ in range(a.regions):
            c = rng.choice(list(contigs))
            s = rng.randrange(10_001, contigs[c] - 100_000)
            regions.append((c, s, s + 99_999))
        n_rows, rlat = 0, []
        for c, s, e in regions:
            t = time.perf_counter()
            n_rows += len(fs.region(c, s, e))
            rlat.append(time.perf_counter() - t)
        each = f"{len(regions)} regions, {n_rows / len(regions):,.0f} alleles each"
        rows.append(("100 kb region, FrequencyStore", ms(rlat), "", each))
    t0 = time.perf_counter()
    vcf = sites_vcf(store, work, contigs)
    took = time.perf_counter() - t0
    note = f"sites VCF of the same rows, {vcf.stat().st_size / 1e9:.1f} GB, written in {took:.0f} s"
    with pysam.TabixFile(str(vcf)) as tb:
        lat = []
        for c, p, r, alt in keys:
            t = time.perf_counter()
            _ = [ln for ln in tb.fetch(c, p - 1, p) if ln.split("\t", 5)[3:5] == [r, alt]]
            lat.append(time.perf_counter() - t)
        rows.append(("peer: pysam.TabixFile.fetch, in-process", ms(lat), "", note))
        rlat = []
        for c, s, e in regions:
            t = time.perf_counter()
            _ = [ln.split("\t") for ln in tb.fetch(c, s - 1, e)]
            rlat.append(time.perf_counter() - t)
        rows.append(("peer: 100 kb region, pysam.TabixFile", ms(rlat), "", "lines split"))
    few = keys[: a.spawned]
    for label, argv in (
        ("peer: Debian tabix, a process per lookup", ["tabix", str(vcf)]),
        ("peer: Debian bcftools view -H -r, a process per lookup",
         [DEBIAN_BCFTOOLS, "view", "-H", str(vcf), "-r"]),
    ):  # fmt: skip
        lat = [
            timed(lambda k=k, argv=argv: subprocess.run(
                [*argv, f"{k[0]}:{k[1]}-{k[1]}"], stdout=subprocess.DEVNULL, check=True))
            for k in few
        ]  # fmt: skip
        rows.append((label, ms(lat), "", f"{len(few)} lookups"))
    state = st.read_state(store)
    assert state is not None
    con = duckdb.connect(config={"threads": 1})
    con.execute("SET parquet_metadata_cache = true")
    lat = []
    for c, p, r, alt in few:
        path = st.partition(st.data_dir(store, state), "alleles", c)
        sql = f"SELECT * FROM read_parquet('{path}') WHERE pos = ? AND ref = ? AND alt = ?"
        lat.append(
            timed(lambda sql=sql, p=p, r=r, alt=alt: con.execute(sql, [p, r, alt]).fetchall())
        )
    con.close()
    rows.append(("peer: DuckDB over the bare Parquet partition", ms(lat), "",
                 f"{len(few)} lookups, 65,536-row row groups"))  # fmt: skip
    return rows


# --------------------------------------------------------------------------- 3. add / remove


def write_genome_layout(store: Path, gdir: Path, variants: int) -> tuple[int, int]:
    """A genome's counted calls and coverage at the engine's per-genome layout."""
    state = st.read_state(store)
    assert state is not None
    con = duckdb.connect(config={"memory_limit": MEM})
    try:
        src = f"read_parquet('{parquet_glob(store)}', hive_partitioning=false)"
        row = con.execute(f"SELECT count(*) FROM {src}").fetchone()
        n_all = int(row[0]) if row else 0
        old = int(1_000_000 * 0.9 * variants / n_all)
        new = int(1_000_000 * 0.1 * variants / n_all)
        order = " ".join(f"WHEN '{c}' THEN {k}" for k, c in enumerate(state["contigs"]))
        gdir.mkdir(parents=True)
        con.execute(
            f"""COPY (
            WITH pick AS (
                SELECT chrom, pos, ref, alt, hash(pos, alt) % 1000000 AS h FROM {src}
                WHERE (pos - 1) % 10000 < 9950
            ), calls AS (
                SELECT chrom, pos, ref, alt, h FROM pick WHERE h < {old}
                UNION ALL
                SELECT chrom, pos, ref,
                    list_filter(['A', 'C', 'G', 'T'], lambda x: x <> ref AND x <> alt)[1], h
                FROM pick WHERE h >= 500000 AND h < {500_000 + new}
                    AND length(ref) = 1 AND length(alt) = 1
            )
            SELECT chrom, pos, ref, alt, (CASE WHEN h % 5 < 2 THEN 2 ELSE 1 END)::INT AS ac,
                (h % 5 < 2)::INT AS nhomalt, 0::INT AS nhemi
            FROM calls ORDER BY CASE chrom {order} END, pos, ref, alt
            ) TO '{gdir / "calls.parquet"}' (FORMAT parquet, COMPRESSION zstd)"""
        )
        cov = " UNION ALL ".join(
            f"SELECT '{c}' AS chrom, b * 10000 AS start, least(b * 10000 + 9950, {length}) AS stop,"
            f" 2 AS ploidy FROM range({length // 10000 + 1}) t(b)"
            for c, length in state["contigs"].items()
        )
        con.execute(
            f"COPY ({cov}) TO '{gdir / 'coverage.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
        )
        got = con.execute(
            f"SELECT count(*), sum(ac) FROM read_parquet('{gdir / 'calls.parquet'}')"
        ).fetchone()
        n_cov = con.execute(
            f"SELECT count(*) FROM read_parquet('{gdir / 'coverage.parquet'}')"
        ).fetchone()
    finally:
        con.close()
    assert got is not None and n_cov is not None
    return int(got[0]), int(n_cov[0])


def fingerprint(data: Path) -> dict[str, Any]:
    """Per contig and table: row count and a hash sum of every column (order aside)."""
    out: dict[str, Any] = {}
    con = duckdb.connect(config={"memory_limit": MEM})
    try:
        for f in sorted(data.glob("*/chrom=*/data.parquet")):
            if f.parts[-3] == "lookup":
                continue
            src = f"read_parquet('{f}')"
            cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
            sums = ", ".join(f"sum(hash({c})::HUGEINT)" for c in cols)
            out[f"{f.parts[-3]}/{f.parts[-2]}"] = (
                cols,
                con.execute(f"SELECT count(*), {sums} FROM {src}").fetchone(),
            )
    finally:
        con.close()
    return out


def bench_add_remove(store: Path, cat: Catalog, work: Path, a: argparse.Namespace) -> list[Row]:
    genome = "NGC90000"
    import_manifest_row(cat, work, genome)
    state = st.read_state(store)
    assert state is not None
    before = fingerprint(st.data_dir(store, state))
    keep = work / "before"  # hard links: the old generation's files outlive its removal
    st.link_tree(st.data_dir(store, state), keep)
    strata = ("total", *sorted(s for s, _ in STORE_STRATA))
    jobs = LocalExecutor(os.cpu_count() or 1)  # as `variants add/remove` run by default
    t0 = time.perf_counter()
    with st.lock(store):
        old = st.read_state(store)
        assert old is not None
        rel, gen = st.new_generation(store, old)
        gdir = st.genome_dir(store, genome) / gen.name
        n_calls, n_cov = write_genome_layout(store, gdir, a.genome_variants)
        written = time.perf_counter() - t0
        say(f"genome {genome}: {n_calls:,} calls, {n_cov:,} callable intervals ({written:.0f} s)")
        t1 = time.perf_counter()
        results = engine._change(jobs, store, old, gen, Change(gdir, strata, +1))
        new = dict(old)
        new["members"] = {
            **old["members"],
            genome: {"dir": str(gdir.relative_to(store)), "sex": "female",
                     "strata": list(strata), "counted": n_calls},
        }  # fmt: skip
        alleles_after_add = engine._commit(store, new, rel, results, old)
        add_s = time.perf_counter() - t1
    say(f"added in {add_s:.1f} s: {alleles_after_add:,} alleles")
    t2 = time.perf_counter()
    out = engine.remove(cat, store, genome, executor=jobs)
    rem_s = time.perf_counter() - t2
    say(f"removed in {rem_s:.1f} s: {out.alleles:,} alleles")
    state = st.read_state(store)
    assert state is not None
    after = fingerprint(st.data_dir(store, state))
    same = "yes" if after == before else "NO"
    if after != before:
        diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        same += f" (differs: {', '.join(diff[:5])})"
    return [
        ("add one genome (store update)", f"{add_s:.1f} s", "<= 60 s",
         f"{n_calls:,} variants ({a.genome_variants:,} asked), {n_cov:,} callable intervals,"
         f" over {a.alleles:,} alleles -> {alleles_after_add:,}; count_genome not included"),
        ("remove it again (engine.remove)", f"{rem_s:.1f} s", "<= 60 s",
         f"{out.alleles:,} alleles after; audited"),
        ("table identical after add + remove", same, "yes",
         "every allele and coverage partition: rows and a hash sum of every column"),
    ]  # fmt: skip


def import_manifest_row(cat: Catalog, work: Path, genome: str) -> None:
    path = work / "add.csv"
    path.write_text(f"genome_id,sex\n{genome},female\n")
    import_manifest(cat, path)


# --------------------------------------------------------------------------- 4. Beacon


def bench_beacon(store: Path, cat: Catalog, work: Path, a: argparse.Namespace) -> list[Row]:
    r = release(cat, store, min_new_genomes=0)
    access.add_principal(cat, "bench-beacon", role="data")
    token = access.issue_token(cat, "bench-beacon")
    keys = sample_keys(store, a.requests)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home = work / "home"
    env = {**os.environ, "WGSVAULT_HOME": str(home), "WGSVAULT_CATALOG": cat.url}
    server = subprocess.Popen(
        [sys.executable, "-m", "wgsvault", "serve", "--port", str(port), "--processes", "1",
         "--variants", str(store), "--beacon-budget", "100000000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rows: list[Row] = []
    try:
        wait_up(f"{base}/api/beacon/")
        headers = {"Authorization": f"Bearer {token}"}

        def work_(c: httpx.Client, ks: list[tuple[str, int, str, str]]) -> list[float]:
            lat = []
            for chrom, pos, ref, alt in ks:
                params = {"referenceName": chrom, "start": pos - 1, "referenceBases": ref,
                          "alternateBases": alt, "requestedGranularity": "count"}  # fmt: skip
                t = time.perf_counter()
                resp = c.get(f"{base}/api/beacon/g_variants", params=params, headers=headers)
                lat.append(time.perf_counter() - t)
                if resp.status_code != 200:
                    raise SystemExit(f"Beacon answered {resp.status_code}: {resp.text[:300]}")
            return lat

        with httpx.Client(timeout=60) as c:
            work_(c, keys[:20])  # warm: the release's lookup files opened
            lat = work_(c, keys)
        rows.append(("Beacon g_variants count, 1 client", ms(lat), "p95 <= 25 ms",
                     f"{len(keys)} GET queries over release {r.number} ({r.alleles:,} alleles),"
                     " wgsvault serve, 1 process, loopback"))  # fmt: skip
        got: list[float] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            with httpx.Client(timeout=60) as c:
                lat = work_(c, keys[i::4])
            with lock:
                got.extend(lat)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows.append(("Beacon g_variants count, 4 clients", ms(got), "p95 <= 25 ms",
                     "same queries, 4 concurrent connections"))  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)
    return rows


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run (< 3 min)")
    ap.add_argument("--genomes", type=int, help="cohort genomes built (default 40)")
    ap.add_argument("--genome-mb", type=float, help="reference length of the cohort (default 20)")
    ap.add_argument("--alleles", type=int, help="allele rows of the big store (default 50 M)")
    ap.add_argument("--genome-variants", type=int, help="variants of the added genome (5 M)")
    ap.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    a = ap.parse_args()
    quick = {"genomes": 6, "genome_mb": 2, "alleles": 2_000_000, "genome_variants": 200_000}
    full = {"genomes": 40, "genome_mb": 20, "alleles": 50_000_000, "genome_variants": 5_000_000}
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.lookups, a.regions, a.spawned, a.requests = (
        (300, 50, 30, 100) if a.quick else (3000, 300, 200, 400)
    )
    if not Path(DEBIAN_BCFTOOLS).exists() or shutil.which("tabix") is None:
        raise SystemExit("Debian's bcftools and tabix are needed for the peers")
    work = a.keep or Path(tempfile.mkdtemp(prefix="wgsvault-bench-variants-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["WGSVAULT_HOME"] = str(work / "home")
    t0 = time.perf_counter()
    try:
        rows, cat, built = bench_build(work, a)
        big = work / "big-store"
        rows += bench_lookups(big, work, a, built)
        rows += bench_add_remove(big, cat, work, a)
        rows += bench_beacon(big, cat, work, a)
        cat.close()
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"Variant frequency engine ({os.cpu_count()} cores, one run)")
    for col in ("measure", "result", "target", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*r)
    table.caption = f"whole run {time.perf_counter() - t0:.0f} s"
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
