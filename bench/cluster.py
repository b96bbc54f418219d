#!/usr/bin/env python3
"""Cluster bench: the national run's figures, on the local single-node Slurm cluster.

Needs a running cluster (`eval "$(.ci/slurm start)"` exports SLURM_CONF) and PostgreSQL
(WGSVAULT_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test; a fresh database is
created per part and dropped after). Measured in one run:

1. *Real genomes*: N copies of the shared NA12878 data (aligned BAM + FASTQ pair, reference
   chr20_region.fa) under different genome ids, planned with scenario B (BAM -> CRAM 3.1 proven,
   FASTQ removed once the CRAM is proven to hold every read), applied
   - by the local executor with `--jobs S`, and
   - on Slurm with `--cpus 1 --max-running S` (the same number of CPUs at once),
   each on its own PostgreSQL catalog. Genomes per hour; the CPU-seconds per genome of each;
   the difference is what scheduling costs per genome (sbatch, queue, job start, Python start,
   the supervisor).
2. *Synthetic national plan*: the real plan's actions cloned for G genomes (default 60,000) over
   five regions, submitted to Slurm with a *dry* task that does only the catalog work of a
   genome (lock, journal rows of every step, audit entries; no file is read or written):
   submission time (chained arrays of MaxArraySize - 1, a row per job in `cluster_job`),
   the catalog write rate
   while the jobs run for a window, the time `status` takes on the whole run, then `cancel`.
3. *Catalog ceiling*: the same dry task run by W local processes at once against PostgreSQL,
   with no scheduler in the way: how many genomes per second the catalog (the audit chain's
   lock included) absorbs on this machine.

Nothing is asserted; the table is what the README's projection is made from.

    python bench/cluster.py [--genomes 200] [--slots 2] [--synthetic 60000] [--window 120]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from wgsvault.apply import apply_plan, cluster
from wgsvault.apply.approval import approve, load_plan
from wgsvault.apply.executors import LocalExecutor
from wgsvault.apply.runner import GenomeResult, GenomeTask
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import ApplyRun, AuditEntry, JournalEntry
from wgsvault.codec.refs import Registry
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.plan.planner import PLAN_FORMAT, make_plan, write_plan
from wgsvault.plan.policy import load_policy

from pgdb import pg_database

REGIONS = ["region-north", "region-middle", "region-west", "region-southeast", "region-south"]
console = Console(width=150)


# -- 1. real genomes ---------------------------------------------------------------------------


def build(root: Path, real: Path, n: int) -> None:
    """N genomes, each the NA12878 BAM and FASTQ pair under its own id (hard links: same bytes)."""
    for i in range(n):
        g = f"NA12878-{i:04d}"
        d = root / "region-east" / g
        d.mkdir(parents=True)
        for src, name in (
            ("NA12878_chr20_region.bam", f"{g}.bam"),
            ("NA12878_chr20_region.bam.bai", f"{g}.bam.bai"),
            ("NA12878_chr20_region_R1.fastq.gz", f"{g}_R1.fastq.gz"),
            ("NA12878_chr20_region_R2.fastq.gz", f"{g}_R2.fastq.gz"),
        ):
            shutil.copyfile(real / src, d / name)  # copies: apply moves them into quarantine


def prepared(work: Path, real: Path, n: int, url: str, tag: str) -> tuple[Catalog, Path, Path]:
    root = work / tag / "estate"
    build(root, real, n)
    cat = open_catalog(url)
    reg = Registry(cat, work / tag / "refs")
    reg.add(real / "chr20_region.fa", "hg19-chr20")
    scan(cat, [str(root)], DEFAULT_LAYOUT)
    plan = make_plan(cat, load_policy("B"), price=1500.0)
    path = work / tag / "plan-B.json"
    write_plan(plan, path)
    approve(cat, path, controller="region-east", by="bench", reference="BENCH")
    return cat, path, reg.root


def run_local(work: Path, real: Path, n: int, slots: int) -> dict[str, Any]:
    with pg_database("local") as url:
        cat, plan, refs = prepared(work, real, n, url, "local")
        t0 = time.perf_counter()
        s = apply_plan(cat, plan, registry=Registry(cat, refs), actor="bench",
                       executor=LocalExecutor(slots))  # fmt: skip
        wall = time.perf_counter() - t0
        cat.close()
    if s.failed:
        raise SystemExit(f"local apply failed: {list(s.failed.values())[:3]}")
    return {"wall": wall, "actions": s.done}


def sacct_elapsed(arrays: list[str]) -> list[int]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o",
                          "JobID,ElapsedRaw,State"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [int(f[1]) for f in (ln.split("|") for ln in out.splitlines())
            if len(f) == 3 and f[2] == "COMPLETED" and f[1].isdigit()]  # fmt: skip


def follow(cat: Catalog, run_id: int, limit: float, step: float = 2.0) -> cluster.RunStatus:
    t0 = time.monotonic()
    while True:
        st = cluster.status(cat, run_id)
        if st.finished == len(st.genomes) or st.status in ("done", "incomplete", "cancelled"):
            return st
        if time.monotonic() - t0 > limit:
            raise SystemExit(f"run {run_id} not finished after {limit:.0f} s: {st.counts()}")
        time.sleep(step)


def run_slurm(work: Path, real: Path, n: int, slots: int) -> dict[str, Any]:
    with pg_database("slurm") as url:
        cat, plan, refs = prepared(work, real, n, url, "slurm")
        opts = cluster.ClusterOptions(folder=str(work / "slurm" / "jobs"), refs_root=str(refs),
                                      cpus=1, max_running=slots)  # fmt: skip
        t0 = time.perf_counter()
        run_id = cluster.submit_plan(cat, plan, actor="bench", options=opts)
        submitted = time.perf_counter() - t0
        st = follow(cat, run_id, limit=24 * 3600)
        wall = time.perf_counter() - t0
        jobs = [g.job_id for g in st.genomes]
        elapsed = sacct_elapsed(sorted({j.split("_")[0] for j in jobs}))
        counts = st.counts()
        cat.close()
    if counts.get("done") != n:
        raise SystemExit(f"Slurm run incomplete: {counts}")
    return {"wall": wall, "submit": submitted, "elapsed": elapsed}


# -- 2. and 3. the dry task ----------------------------------------------------------------------


def dry_genome(task: GenomeTask) -> GenomeResult:
    """A genome's catalog work without its data: the lock, every journal step an action takes
    (convert or prove, one quarantine step per file, the action's end), their audit entries."""
    from wgsvault.apply.journal import Journal, quarantine_step
    from wgsvault.apply.locks import GenomeLocks

    cat = open_catalog(task.catalog_url, migrate=False)
    try:
        locks = GenomeLocks(cat, f"{socket.gethostname()}:{os.getpid()}:{task.holder}")
        holder = locks.acquire(task.genome)
        if holder is not None:
            return GenomeResult(task.genome, locked_by=holder)
        try:
            j = Journal(cat, plan_sha=task.plan_sha, run_id=task.run_id, actor=task.actor)
            res = GenomeResult(task.genome)
            for a in task.actions:
                if j.last(a["id"], "action"):
                    continue
                step = "convert" if a["action"] == "convert" else "prove"
                j.started(a, step)
                with cat.session() as s:
                    j.write(s, a, step, "done", {"dry": True})
                    j.audit(s, a, "verify", {"outcome": "dry run"})
                for f in a["files"]:
                    q = quarantine_step(Path(f["path"]))
                    j.started(a, q, {"path": f["path"]})
                    with cat.session() as s:
                        j.write(s, a, q, "done", {"path": f["path"]})
                        j.audit(s, a, "quarantine", {"path": f["path"], "dry": True})
                j.finish(a, {"dry": True})
                res.done.append(a["id"])
            return res
        finally:
            locks.release(task.genome)
    finally:
        cat.close()


def synthetic_plan(template: Path, n: int, out: Path) -> tuple[Path, int]:
    """The template plan's first genome's ready actions, cloned for n genomes over REGIONS."""
    plan = orjson.loads(template.read_bytes())
    ready = [a for a in plan["actions"] if a["status"] == "ready"]
    g0 = ready[0]["genome"]
    mine = [a for a in ready if a["genome"] == g0]
    blob = orjson.dumps(mine).decode()
    actions: list[dict[str, Any]] = []
    for i in range(n):
        g, region = f"NOR{i:06d}", REGIONS[i % len(REGIONS)]
        for a in orjson.loads(blob.replace(g0, g).replace("region-east", region)):
            a["id"] = hashlib.sha256(f"{g}:{a['id']}".encode()).hexdigest()[:24]
            a["controller"] = region
            actions.append(a)
    plan["actions"] = actions
    plan["format"] = PLAN_FORMAT
    plan["actions_sha256"] = hashlib.sha256(
        orjson.dumps(actions, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    plan["summary"] = {"synthetic": True, "genomes": n}
    write_plan(plan, out)
    return out, len(mine)


def rows(cat: Catalog) -> tuple[int, int, int]:
    """(journal rows, audit entries, finished actions) in the catalog."""
    with cat.session() as s:
        j = s.scalar(select(func.count()).select_from(JournalEntry)) or 0
        a = s.scalar(select(func.count()).select_from(AuditEntry)) or 0
        d = s.scalar(select(func.count()).select_from(JournalEntry)
                     .where(JournalEntry.step == "action")) or 0  # fmt: skip
    return j, a, d


def run_synthetic(
    work: Path, template: Path, n: int, window: float, running: int
) -> dict[str, Any]:
    plan, per_genome = synthetic_plan(template, n, work / "synthetic" / "plan.json")
    with pg_database("synth") as url:
        cat = open_catalog(url)
        for region in REGIONS:
            approve(cat, plan, controller=region, by="bench", reference="BENCH")
        opts = cluster.ClusterOptions(folder=str(work / "synthetic" / "jobs"),
                                      refs_root=str(work / "synthetic" / "refs"),
                                      cpus=1, mem_mb=256, time_min=10,
                                      max_running=running)  # fmt: skip
        t0 = time.perf_counter()
        run_id = cluster.submit_plan(cat, plan, actor="bench", options=opts, work=dry_genome)
        submit = time.perf_counter() - t0
        while rows(cat)[2] == 0 and time.perf_counter() - t0 < submit + 300:
            time.sleep(1)  # until the first genome's work landed
        j0, a0, d0 = rows(cat)
        w0 = time.perf_counter()
        time.sleep(window)
        j1, a1, d1 = rows(cat)
        secs = time.perf_counter() - w0
        t1 = time.perf_counter()
        st = cluster.status(cat, run_id)
        status_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        cancelled = cluster.cancel(cat, run_id, actor="bench")
        cancel_s = time.perf_counter() - t1
        st_after = cluster.status(cat, run_id)
        with cat.session() as s:
            run = s.get_one(ApplyRun, run_id)
            plan_sha, actor = run.plan_sha256, run.actor
        ceiling = catalog_ceiling(cat, url, plan, plan_sha, actor, running)
        cat.close()
    return {
        "genomes": n, "per_genome": per_genome, "submit": submit, "window": secs,
        "journal_s": (j1 - j0) / secs, "audit_s": (a1 - a0) / secs,
        "genomes_s": (d1 - d0) / per_genome / secs, "status": status_s, "cancel": cancel_s,
        "cancelled": cancelled, "status_after": st_after.status, "seen": len(st.genomes),
        **ceiling,
    }  # fmt: skip


def catalog_ceiling(cat: Catalog, url: str, plan_path: Path, plan_sha: str, actor: str,
                    workers: int, genomes: int = 600) -> dict[str, Any]:  # fmt: skip
    """The dry task of `genomes` not yet done, run by `workers` local processes at once."""
    plan = load_plan(plan_path)
    with cat.session() as s:
        done = set(s.scalars(select(JournalEntry.genome).where(JournalEntry.step == "action")))
        run = ApplyRun(plan_sha256=plan_sha, plan_path=str(plan_path), actor=actor,
                       host=socket.gethostname(), pid=os.getpid(), executor="local",
                       status="running")  # fmt: skip
        s.add(run)
        s.flush()
        run_id = run.id
    by: dict[str, list[dict[str, Any]]] = {}
    for a in plan.actions:
        if a["status"] == "ready" and a["genome"] not in done:
            by.setdefault(a["genome"], []).append(a)
    chosen = sorted(by)[-genomes:]  # the last genomes of the plan: never started on Slurm
    tasks = [GenomeTask(url, "", plan_sha, run_id, g, by[g], actor, f"ceiling{run_id}")
             for g in chosen]  # fmt: skip
    j0, a0, _ = rows(cat)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(dry_genome, tasks, chunksize=4))
    secs = time.perf_counter() - t0
    j1, a1, _ = rows(cat)
    ok = sum(not r.locked_by for r in results)
    return {"ceil_workers": workers, "ceil_genomes_s": ok / secs,
            "ceil_rows_s": (j1 - j0 + a1 - a0) / secs, "ceil_n": ok}  # fmt: skip


# -- the table -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--genomes", type=int, default=200)
    ap.add_argument("--slots", type=int, default=2, help="CPUs at once, local and on Slurm")
    ap.add_argument("--synthetic", type=int, default=60_000)
    ap.add_argument("--window", type=float, default=120.0)
    ap.add_argument("--running", type=int, default=8,
                    help="dry tasks at once on Slurm, and local writers of the ceiling")
    ap.add_argument("--parts", default="real,synthetic", help="which parts to run")
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    a = ap.parse_args()
    real = a.shared / "real"
    if not (real / "NA12878_chr20_region.bam").exists():
        raise SystemExit(f"{a.shared}: shared data absent; nothing to measure")
    if not os.environ.get("SLURM_CONF") or subprocess.run(["scontrol", "ping"],
                                                          capture_output=True).returncode:
        raise SystemExit('no Slurm cluster: start one with eval "$(.ci/slurm start)"')
    n, slots, parts = a.genomes, a.slots, a.parts.split(",")
    t = Table(title=f"wgsvault cluster bench ({socket.gethostname()}, {os.cpu_count()} cores)")
    for c in ("what", "figure", "notes"):
        t.add_column(c)

    def row(*cells: str) -> None:
        t.add_row(*cells)
        console.print(" | ".join(cells), style="dim", highlight=False)

    with tempfile.TemporaryDirectory(prefix="wgsvault-bench-cluster-") as tmpd:
        work = Path(tmpd)
        if "real" in parts:
            local = run_local(work, real, n, slots)
            lw = local["wall"]
            cpu_local = lw * slots / n
            row(f"local executor, {n} genomes, plan B, {slots} at once",
                f"{n / lw * 3600:,.0f} genomes/h",
                f"{lw:.0f} s wall; {cpu_local:.2f} CPU-s per genome; {local['actions']} actions")
            sl = run_slurm(work, real, n, slots)
            sw = sl["wall"]
            cpu_slurm = sw * slots / n
            inside = sum(sl["elapsed"]) / max(1, len(sl["elapsed"]))
            row(f"Slurm, {n} genomes, --cpus 1 --max-running {slots}",
                f"{n / sw * 3600:,.0f} genomes/h",
                f"{sw:.0f} s wall ({sl['submit']:.1f} s to submit); {cpu_slurm:.2f} CPU-s per "
                f"genome; job elapsed mean {inside:.1f} s (sacct, 1 s resolution)")
            row("scheduling overhead per genome", f"{cpu_slurm - cpu_local:+.2f} CPU-s",
                "Slurm minus local, CPU-seconds per genome at the same CPUs")
        if "synthetic" in parts:
            template = work / "template" / "plan-B.json"
            with pg_database("template") as url:
                prepared(work, real, 1, url, "template")[0].close()
            syn = run_synthetic(work, template, a.synthetic, a.window, a.running)
            row(f"submit {syn['genomes']:,} genomes (synthetic plan B)", f"{syn['submit']:.0f} s",
                f"{syn['genomes'] / syn['submit']:,.0f} genomes/s: a pickle per task, one sbatch "
                "per array (MaxArraySize), cluster_job rows")
            row(f"catalog writes, {a.running} dry jobs at once on Slurm",
                f"{syn['genomes_s']:.2f} genomes/s",
                f"{syn['journal_s']:.0f} journal rows/s, {syn['audit_s']:.0f} audit entries/s "
                f"over {syn['window']:.0f} s; {syn['per_genome']} actions per genome")
            row(f"catalog ceiling, {syn['ceil_workers']} local writers",
                f"{syn['ceil_genomes_s']:.1f} genomes/s",
                f"{syn['ceil_rows_s']:.0f} rows/s (journal + audit) over {syn['ceil_n']} "
                "genomes, no scheduler")
            row(f"status of the {syn['seen']:,}-genome run", f"{syn['status']:.1f} s",
                "sacct of every array + the journal")
            row("cancel the run", f"{syn['cancel']:.1f} s",
                f"{syn['cancelled']:,} jobs; run {syn['status_after']}")
    console.print(t)


if __name__ == "__main__":
    main()
