"""The demo estate: a small national genome store the project builds itself, then the main job.

Two regions and the national database. Most genomes are *simulated at full size*: their files have
the owners' per-genome sizes (BCL 75 GB, FASTQ.gz 90, BAM 110, CRAM 27, gVCF 30, VCF 4) but are
sparse files, so they cost no disk; the national database holds identical copies of their CRAM and
VCF. A few genomes are *real*: small but valid FASTQ/BAM/CRAM/VCF/gVCF and a BCL run folder made by
`synth.py`, including cases a planner must handle: a genome whose BAM has no CRAM yet (converted in
A, then covering the FASTQ in B) and a genome the national database has not received (its regional
copies stay in C, listed as blocked). Planning percentages are computed from the scanned sizes.

The governance reports and the dashboard get a national-looking case history: `cases.py` writes
about 26,000 genomes requisitioned since 2019 (the estate's genomes among them, as the estate's
own manifest says too) to `cases.csv`, imported after the scan, again only when it changed.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import func, select

from wgsvault.apply import ApplySummary, apply_plan
from wgsvault.apply.approval import approve, load_plan
from wgsvault.apply.executors import LocalExecutor
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import Genome
from wgsvault.codec.refs import Registry
from wgsvault.config import site_config, vault_home
from wgsvault.demo.cases import CaseSummary, generate, write_case_manifest
from wgsvault.errors import InputError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import ScanResult, scan
from wgsvault.plan.planner import make_plan, write_plan
from wgsvault.plan.policy import load_policy
from wgsvault.report import render
from wgsvault.report.footprint import footprint

GB = 10**9
#: written beside (not inside) the estate once it is complete, so that a scan does not see it
MARKER = ".wgsvault-demo-estate"
REGIONS = ("region-east", "region-west")
#: the owners' per-genome sizes in the regional production flow (GB)
FIGURES_GB = {"bcl": 75, "fastq": 90, "bam": 110, "cram": 27, "gvcf": 30, "vcf": 4}
SIMULATED_PER_REGION = 3
PATIENT_GROUPS = ("rare disease", "hereditary cancer", "neonatal", "haematological cancer")
#: genomes of the synthetic case history (demo/cases.py) requisitioned 2019-2026
CASES = 26_000
#: the demo reference, as registered
DEMO_BUILD = "demo-chrS"


@dataclass
class DemoResult:
    home: Path
    estate: Path
    catalog_url: str
    plans: dict[str, dict[str, Any]]
    scan: ScanResult
    applied: ApplySummary


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)


def check_sparse(directory: Path) -> None:
    """Refuse to build on a filesystem without sparse files (the demo would write 2 TB)."""
    probe = directory / ".sparse-probe"
    try:
        _sparse(probe, GB)
        allocated = os.stat(probe).st_blocks * 512
    finally:
        probe.unlink(missing_ok=True)
    if allocated > 16 * 2**20:
        raise InputError(
            f"{directory}: filesystem does not support sparse files; "
            "the demo needs them (choose --dir elsewhere)"
        )


def simulated_genome(root: Path, region: str, gid: str, national: bool) -> None:
    """A genome at full size as sparse files, with an identical national copy of CRAM and VCF."""
    d = root / region / gid
    run = d / f"261101_A00531_0{gid[-3:]}_AHKTLJDSXY"
    for name, text in (
        ("RunInfo.xml", "<RunInfo/>\n"),
        ("RTAComplete.txt", "done\n"),
        ("CopyComplete.txt", ""),
    ):
        (run).mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    for lane in (1, 2, 3, 4):
        _sparse(
            run / f"Data/Intensities/BaseCalls/L00{lane}/C1.1/L00{lane}_1.cbcl",
            FIGURES_GB["bcl"] * GB // 4,
        )
    half = FIGURES_GB["fastq"] * GB // 2
    _sparse(d / f"{gid}_R1.fastq.gz", half)
    _sparse(d / f"{gid}_R2.fastq.gz", half)
    for name, size in (
        (f"{gid}.bam", FIGURES_GB["bam"] * GB),
        (f"{gid}.bam.bai", 9_000_000),
        (f"{gid}.g.vcf.gz", FIGURES_GB["gvcf"] * GB),
        (f"{gid}.g.vcf.gz.tbi", 3_000_000),
    ):
        _sparse(d / name, size)
    targets = [d] + ([root / "national" / gid] if national else [])
    for t in targets:
        for name, size in (
            (f"{gid}.cram", FIGURES_GB["cram"] * GB),
            (f"{gid}.cram.crai", 1_500_000),
            (f"{gid}.vcf.gz", FIGURES_GB["vcf"] * GB),
            (f"{gid}.vcf.gz.tbi", 2_000_000),
        ):
            _sparse(t / name, size)


def real_genome(
    root: Path,
    region: str,
    gid: str,
    seed: int,
    *,
    with_cram: bool,
    national: bool,
    reference: Path,
) -> None:
    """A small genome of valid files (synth.py); optionally without CRAM, or not yet national."""
    from wgsvault.demo.synth import write_genome

    d = root / region / gid
    files = write_genome(d, gid, reference, seed=seed, n_pairs=1000)
    if not with_cram:
        files.cram.unlink()
        Path(str(files.cram) + ".crai").unlink()
    if national:
        nat = root / "national" / gid
        nat.mkdir(parents=True, exist_ok=True)
        keep = [files.vcf, Path(str(files.vcf) + ".tbi")]
        if with_cram:
            keep += [files.cram, Path(str(files.cram) + ".crai")]
        for f in keep:
            shutil.copy2(f, nat / f.name)


def build_estate(estate: Path) -> list[dict[str, str]]:
    """Write the demo estate; returns the manifest rows of its genomes."""
    from wgsvault.demo.synth import write_reference

    estate.mkdir(parents=True, exist_ok=True)
    check_sparse(estate)
    reference = write_reference(estate.parent / "reference" / "demo_ref.fa", seed=7)
    rows = []
    n = 0
    for r, region in enumerate(REGIONS):
        for _ in range(SIMULATED_PER_REGION):
            n += 1
            gid = f"NGC{n:05d}"
            simulated_genome(estate, region, gid, national=True)
            rows.append(_manifest_row(gid, n, region))
        n += 1
        gid = f"NGC{n:05d}"
        real_genome(
            estate,
            region,
            gid,
            seed=100 + n,
            with_cram=r == 1,
            national=r == 0,
            reference=reference,
        )
        rows.append(_manifest_row(gid, n, region))
    (estate.parent / MARKER).write_text(
        f"{estate.name}/ was built by wgsvault demo; demo --fresh removes it\n"
    )
    return rows


def _manifest_row(gid: str, n: int, region: str) -> dict[str, str]:
    return {
        "genome_id": gid,
        "patient_group": PATIENT_GROUPS[n % len(PATIENT_GROUPS)],
        "indication": "demo",
        "requisition_region": region,
        "sequencing_date": f"2026-{1 + n % 12:02d}-{1 + n % 27:02d}",
    }


def run_demo(
    directory: Path | None, *, fresh: bool, console: Console, catalog_url: str | None = None
) -> DemoResult:
    home = directory or vault_home() / "demo"
    estate = home / "estate"
    built = (home / MARKER).exists()
    if estate.exists() and any(estate.iterdir()) and not built:
        raise InputError(f"{estate}: not a demo estate (no {home / MARKER}); refusing to touch it")
    if fresh and estate.exists():
        (home / MARKER).unlink(missing_ok=True)
        shutil.rmtree(estate)
        built = False
    manifest = home / "manifest.csv"
    if not built or not estate.is_dir():
        console.print(f"[bold]Building demo estate[/] in {estate}")
        rows = build_estate(estate)
        # the estate's genomes as the case history has them (its first cases, closed within
        # 2019: generating that year is enough), so that both manifests agree
        ids = {r["genome_id"] for r in rows}
        first_year = generate(CASES, genome_ids=sorted(ids), as_of=dt.date(2019, 12, 31))
        rows = [r for r in first_year if r["genome_id"] in ids]
        with open(manifest, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    url = catalog_url or f"sqlite:///{home / 'catalog.sqlite'}"
    catalog = open_catalog(url)
    from wgsvault.catalog.manifest import import_manifest

    imported = import_manifest(catalog, manifest)
    res = scan(catalog, [str(estate)], DEFAULT_LAYOUT)
    console.print(
        f"[bold]Scanned[/] {res.files_seen:,} files, {render.human(res.bytes_seen)} "
        f"as {res.entries:,} catalog entries "
        f"(added {res.added}, changed {res.changed}, vanished {res.vanished}); "
        f"manifest: {imported.added + imported.updated} genomes with clinical context"
    )
    history = import_cases(catalog, home, manifest, console)
    site = site_config(home)
    fp = footprint(catalog, price=site.price_dkk_per_tb_year, projection=site.projection_genomes)
    console.print(render.footprint_table(fp))
    plans = {}
    for name in ("A", "B", "C"):
        plans[name] = make_plan(catalog, load_policy(name), price=site.price_dkk_per_tb_year)
        write_plan(plans[name], home / f"plan-{name}.json")
    console.print(render.plan_table(plans["C"]))
    console.print(render.scenario_table(plans))
    blocked = render.blocked_table(plans["C"])
    if blocked is not None:
        console.print(blocked)
    summary = main_job(catalog, home, console)
    from wgsvault.demo.frequencies import frequency_demo

    frequency_demo(catalog, home, DEMO_BUILD, console)
    where = f"--catalog {url}" if catalog_url else f"WGSVAULT_HOME={home}"
    console.print(
        f"Plans written to {home}/plan-{{A,B,C}}.json. Explore: "
        f"{where} wgsvault footprint | status --all | audit show | undo GENOME",
        soft_wrap=True,
    )
    dashboard_hint(console, where, history)
    catalog.close()
    return DemoResult(home, estate, url, plans, res, summary)


def import_cases(catalog: Catalog, home: Path, manifest: Path, console: Console) -> CaseSummary:
    """The synthetic case history (cases.py) with the estate's genomes in it, as of today, written
    to `cases.csv` and imported; not imported again while the catalog holds that very file."""
    path = home / "cases.csv"
    before = path.read_bytes() if path.exists() else None
    with open(manifest, newline="", encoding="utf-8") as fh:
        estate_rows = list(csv.DictReader(fh))
    history = write_case_manifest(path, [r["genome_id"] for r in estate_rows], n=CASES)
    with catalog.session() as s:
        held = s.scalar(
            select(func.count())
            .select_from(Genome)
            .where(Genome.manifest.in_([str(path), str(manifest)]))
        )
    if before != path.read_bytes() or held != history.genomes or estate_rows != history.given:
        from wgsvault.catalog.manifest import import_manifest

        import_manifest(catalog, path)
    console.print(
        f"[bold]Case history[/] ({path.name}): {history.genomes:,} genomes in "
        f"{history.cases:,} cases requisitioned {history.first:%Y-%m} to {history.last:%Y-%m}, "
        f"{history.open_cases:,} open; "
        + ", ".join(f"{g} {n:,}" for g, n in sorted(history.by_group.items()))
    )
    return history


def dashboard_hint(console: Console, where: str, history: CaseSummary) -> None:
    """How to open the governance dashboard on the demo catalog."""
    last = dt.date.today().replace(day=1) - dt.timedelta(days=1)
    console.print(
        f"Governance reports on the {history.genomes:,}-genome case history: {where} "
        "wgsvault report genomes | quotas | turnaround | storage | "
        f"monthly --month {last:%Y-%m} -o report.pdf. "
        f"Dashboard: {where} wgsvault principal add steering@demo --role reporting; "
        f"{where} wgsvault token issue steering@demo; {where} wgsvault serve; "
        "then open http://127.0.0.1:8080/dashboard and log in with the token.",
        soft_wrap=True,
        highlight=False,
    )


def main_job(catalog: Catalog, home: Path, console: Console) -> ApplySummary:
    """Plan B approved by each data controller, then applied: what the vault is for."""
    registry = Registry(catalog, home / "refs")
    registry.add(home / "reference" / "demo_ref.fa", DEMO_BUILD)
    plan_path = home / "plan-B.json"
    plan = load_plan(plan_path)
    ready = sorted({a["controller"] for a in plan.actions if a["status"] == "ready"})
    for ctrl in ready:
        approve(catalog, plan_path, controller=ctrl, by="demo data steward", reference="DEMO-B")
    console.print(
        f"[bold]Main job[/]: plan B approved by {', '.join(ready)}; applying "
        "(convert, prove, register, quarantine)"
    )
    summary = apply_plan(
        catalog, plan_path, registry=registry, actor="wgsvault-demo", executor=LocalExecutor(2)
    )
    console.print(render.apply_table(summary))
    console.print(
        "The simulated genomes' BAM, FASTQ and gVCF are sparse placeholders, not data: their "
        "proofs fail (a gVCF must first leave its callable regions) and they stay. Nothing "
        "unproven is let go.",
        soft_wrap=True,
    )
    return summary
