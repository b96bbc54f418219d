"""`wgsvault variants ...`: the national variant frequency database.

Parsing and printing only; the work is in `wgsvault.variants` (engine, release, export, store)
and, for `variants callable`, `codec.callable_regions` with `apply.callable`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated

import typer

from wgsvault.cli.common import VARIANTS, catalog_session, err, out
from wgsvault.config import site_config
from wgsvault.errors import InputError

app = typer.Typer()
variants_app = typer.Typer(
    help="The variant frequency database: build, add/remove genomes, release, query, export.",
    no_args_is_help=True,
)
app.add_typer(variants_app, name="variants", rich_help_panel=VARIANTS)

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="The frequency store (default: [variants] store, else <home>)"),
]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="Where the per-genome jobs run: local or slurm")
]
JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", help="Local jobs at once (default: this machine's cores)")
]
#: local jobs at once by default: one per core (each job's DuckDB then uses one thread)
CORES = os.cpu_count() or 1
ReleaseOpt = Annotated[
    int | None, typer.Option("--release", help="Read this release instead of the live database")
]
_LOCUS = re.compile(r"^([^:\s]+):([0-9][0-9,]*)$")
_REGION = re.compile(r"^([^:\s]+):([0-9][0-9,]*)-([0-9][0-9,]*)$")


def _store(store: Path | None) -> Path:
    from wgsvault.variants.state import default_store

    return store or default_store()


def _read(store: Path | None, release: int | None) -> Path:
    path = _store(store)
    if release is not None:
        path = path / "releases" / f"{release:04d}"
        if not path.is_dir():
            raise InputError(f"{path}: no release {release}")
    return path


@variants_app.command()
def build(
    store: StoreOpt = None,
    reference: Annotated[
        str | None, typer.Option("--reference", help="Registered build the VCFs are called on")
    ] = None,
    executor: ExecutorOpt = "local",
    jobs: JobsOpt = CORES,
    extract: Annotated[
        bool, typer.Option(help="Extract missing callable regions from kept gVCFs first")
    ] = True,
) -> None:
    """Count every genome with a kept VCF and callable regions, from nothing."""
    from wgsvault.variants import engine
    from wgsvault.variants.jobs import executor as pick

    path = _store(store)
    with catalog_session() as cat:
        ref = engine.reference(cat, reference, path)
        result = engine.build(
            cat,
            path,
            ref,
            executor=pick(executor, jobs),
            extract=extract,
            progress=lambda m: err.print(m, highlight=False),
        )
    for genome, why in sorted(result.skipped.items()):
        err.print(f"{genome}: not counted: {why}", highlight=False, markup=False)
    if result.without_vcf:
        err.print(f"{result.without_vcf} genomes of the catalog have no kept VCF", highlight=False)
    out.print(
        f"{path}: {result.genomes} genomes, {result.alleles} alleles "
        f"(reference {ref.build}, assembly {ref.assembly or 'unknown'})",
        highlight=False,
    )


@variants_app.command()
def add(
    genome: Annotated[str, typer.Argument(help="National genome id")],
    store: StoreOpt = None,
    executor: ExecutorOpt = "local",
    jobs: JobsOpt = CORES,
) -> None:
    """Count one more genome (its VCF and callable regions from the catalog)."""
    from wgsvault.variants import engine
    from wgsvault.variants.jobs import executor as pick

    path = _store(store)
    with catalog_session() as cat:
        result = engine.add(cat, path, genome, executor=pick(executor, jobs))
    out.print(f"{genome} added: {result.genomes} genomes, {result.alleles} alleles")


@variants_app.command()
def remove(
    genome: Annotated[str, typer.Argument(help="National genome id")],
    store: StoreOpt = None,
    executor: ExecutorOpt = "local",
    jobs: JobsOpt = CORES,
) -> None:
    """Withdraw a genome: subtract exactly what adding it added (audited)."""
    from wgsvault.variants import engine
    from wgsvault.variants.jobs import executor as pick

    path = _store(store)
    with catalog_session() as cat:
        result = engine.remove(cat, path, genome, executor=pick(executor, jobs))
    out.print(f"{genome} removed: {result.genomes} genomes, {result.alleles} alleles")


@variants_app.command("release")
def release_cmd(
    store: StoreOpt = None,
    min_new_genomes: Annotated[
        int | None,
        typer.Option(help="Refuse below this many new genomes (default: site config, 20)"),
    ] = None,
) -> None:
    """Snapshot the database as the next immutable, numbered release."""
    from wgsvault.variants.release import release

    minimum = min_new_genomes or site_config().variants.min_new_genomes
    with catalog_session() as cat:
        r = release(cat, _store(store), min_new_genomes=minimum)
    out.print(
        f"release {r.number}: {r.genomes} genomes ({r.new} new, {r.withdrawn} withdrawn), "
        f"{r.alleles} alleles in {r.path}",
        highlight=False,
    )


@variants_app.command()
def query(
    locus: Annotated[str | None, typer.Argument(help="CHR:POS (1-based)")] = None,
    ref: Annotated[str | None, typer.Argument(help="Reference allele")] = None,
    alt: Annotated[str | None, typer.Argument(help="Alternate allele")] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="CHR:START-END (1-based, inclusive)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
    store: StoreOpt = None,
    release: ReleaseOpt = None,
) -> None:
    """Allele counts and frequencies of one allele, or of every allele in a region."""
    from wgsvault.variants.render import frequency_table
    from wgsvault.variants.store import FrequencyStore

    if (region is None) == (locus is None):
        raise InputError("give CHR:POS REF ALT, or --region CHR:START-END")
    with FrequencyStore(_read(store, release)) as fs:
        if region is not None:
            m = _REGION.match(region.strip())
            if m is None:
                raise InputError(f"--region {region!r}: use CHR:START-END, e.g. chr1:1000-2000")
            found = fs.region(m[1], _int(m[2]), _int(m[3]))
        else:
            assert locus is not None
            m = _LOCUS.match(locus.strip())
            if m is None or not ref or not alt:
                raise InputError(f"{locus!r}: use CHR:POS REF ALT, e.g. chr1:12345 A G")
            found = fs.lookup(m[1], _int(m[2]), ref.upper(), alt.upper())
    if as_json:
        print(json.dumps([a.as_json() for a in found], indent=1))
        return
    if not found:
        out.print("not in the database")
        return
    out.print(frequency_table(found))


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@variants_app.command()
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="sites.vcf.gz to write")],
    store: StoreOpt = None,
    release: ReleaseOpt = None,
) -> None:
    """Write a sites-only, bgzipped, tabix-indexed VCF with AC/AN/AF/nhomalt/nhemi per stratum."""
    from wgsvault.variants.export import export as run

    n = run(_read(store, release), output)
    out.print(f"{output}: {n} alleles (+ .tbi)", highlight=False)


@variants_app.command()
def status(
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The database: reference, genomes, alleles, releases, genomes new since the last."""
    from wgsvault.variants.release import status as run

    s = run(_store(store))
    if as_json:
        print(json.dumps(s, indent=1))
    elif not s["built"]:
        out.print(f"{s['store']}: not built yet (wgsvault variants build)", highlight=False)
    else:
        last = s["releases"][-1] if s["releases"] else "none"
        out.print(
            f"{s['store']}: {s['genomes']} genomes, {s['alleles']} alleles, reference "
            f"{s['build']} ({s['assembly'] or 'assembly unknown'}); last release {last}; "
            f"since then {s['new_since_release']} new, {s['withdrawn_since_release']} withdrawn",
            highlight=False,
        )


@variants_app.command("callable")
def callable_cmd(
    genome: Annotated[str | None, typer.Argument(help="National genome id")] = None,
    all_genomes: Annotated[bool, typer.Option("--all", help="Every genome lacking them")] = False,
    from_depth: Annotated[
        bool, typer.Option("--from-depth", help="From the CRAM/BAM depth (no gVCF kept)")
    ] = False,
    min_gq: Annotated[int, typer.Option(help="Least genotype quality")] = 20,
    min_dp: Annotated[int, typer.Option(help="Least depth")] = 10,
    executor: ExecutorOpt = "local",
    jobs: JobsOpt = CORES,
) -> None:
    """Extract (and register) the callable regions of a genome, or of all that lack them."""
    from wgsvault.variants.cohort import members
    from wgsvault.variants.extract import extract_missing, tasks_for
    from wgsvault.variants.jobs import executor as pick

    if (genome is None) == (not all_genomes):
        raise InputError("name a GENOME or give --all")
    with catalog_session() as cat:
        cohort = members(cat, genome)
        tasks, cannot = tasks_for(
            cat, cohort, from_depth=from_depth, min_gq=min_gq, min_dp=min_dp, force=bool(genome)
        )
        done, failed = extract_missing(cat, tasks, executor=pick(executor, jobs))
    for s in done:
        out.print(f"{s.path}: {s.intervals} intervals, {s.bases} bases ({s.method})")
    problems = {**cannot, **failed} if genome else failed
    for g, why in sorted(problems.items()):
        err.print(f"{g}: {why}", highlight=False, markup=False)
    if problems:
        raise typer.Exit(1)
