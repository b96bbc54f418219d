"""Building the frequency database and changing it one genome at a time: build, add, remove.

`build` counts every genome of the catalog that has a kept VCF and callable regions (per-genome
jobs, `genome.py`; the callable regions of genomes that keep a gVCF and have none yet are
extracted first, extract.py) and aggregates every contig (per-contig jobs, `aggregate.py`), all
on one of apply's executors. `add` counts one more genome and adds its figures to the contigs
it covers; `remove` subtracts exactly what `add` added (the genome's stored contribution, with
the strata it had then), which is how a withdrawal of consent is honoured: adding then removing
a genome leaves every count as it was, and a later `build` leaves a withdrawn genome out (the
state file lists withdrawals) until `add` names it again. Each writes a new data generation and
then the state file (state.py), under the store's lock, and leaves one `variants` entry in the
audit log (no clinical context in it: the genome id, counts and the store).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgsvault import audit
from wgsvault.apply.executors import Executor, LocalExecutor
from wgsvault.catalog import Catalog
from wgsvault.codec.refs import Registry
from wgsvault.errors import InputError
from wgsvault.variants import state as st
from wgsvault.variants.aggregate import Change, ContigResult, ContigTask, aggregate
from wgsvault.variants.cohort import Member, members
from wgsvault.variants.delta import apply_change
from wgsvault.variants.extract import extract_missing, tasks_for
from wgsvault.variants.genome import GenomeSummary, GenomeTask, count_genome
from wgsvault.variants.jobs import RESOURCES
from wgsvault.variants.ploidy import assembly_of

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Reference:
    build: str
    fasta: Path
    contigs: dict[str, int]
    assembly: str | None


@dataclass
class Outcome:
    """What a build, add or remove did."""

    action: str
    genomes: int  # members after the change
    alleles: int  # rows of the allele table after the change
    counted: list[GenomeSummary] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # genome -> why it is not counted
    without_vcf: int = 0  # genomes of the catalog with no kept VCF (not candidates)


def reference(
    catalog: Catalog, build: str | None, store: Path | None = None, *, refs: Path | None = None
) -> Reference:
    """The registered build VCFs are normalised against: `build`, else the store's, else the
    only one registered; `refs` is the registry's folder (default: the vault home's)."""
    registry = Registry(catalog, refs)
    if build is None and store is not None:
        state = st.read_state(store)
        build = state.get("build") if state else None
    if build is None:
        builds = registry.builds()
        if len(builds) != 1:
            names = ", ".join(b.name for b in builds) or "none registered"
            raise InputError(f"name the reference build with --reference ({names})")
        build = builds[0].name
    got = registry.get(build)
    assert got is not None
    contigs = {s.name: s.length for s in got.sequences}
    return Reference(got.name, got.fasta, contigs, assembly_of(got.name, contigs))


def build(
    catalog: Catalog,
    store: Path,
    ref: Reference,
    *,
    executor: Executor | None = None,
    actor: str | None = None,
    progress: Progress | None = None,
    extract: bool = True,
) -> Outcome:
    """Count every genome with a kept VCF and callable regions, from nothing; first (unless
    `extract` is False) extract the callable regions of those that have a gVCF and none yet."""
    executor = executor or LocalExecutor()
    with st.lock(store):
        old = st.read_state(store)
        outcome = Outcome("build", 0, 0)
        everyone = members(catalog)
        if extract:
            want = [m for m in everyone if m.vcf is not None and m.gvcf is not None]
            tasks_x, _ = tasks_for(catalog, want)
            _say(progress, f"extracting the callable regions of {len(tasks_x)} genomes")
            _, outcome.skipped = extract_missing(catalog, tasks_x, executor=executor, actor=actor)
            everyone = members(catalog) if tasks_x else everyone
        rel, gen = st.new_generation(store, old)
        cohort: list[Member] = []
        for m in everyone:
            if m.vcf is None:  # sequenced but no VCF kept (or not yet): nothing to count
                outcome.without_vcf += 1
                continue
            withdrawn = (old or {}).get("withdrawn", {}).get(m.genome)
            why = (
                f"withdrawn on {withdrawn} (wgsvault variants add GENOME counts it again)"
                if withdrawn
                else outcome.skipped.get(m.genome) or _unusable(m)
            )
            if why:
                outcome.skipped[m.genome] = why
            else:
                cohort.append(m)
        st.strata_ids(s for m in cohort for s in m.strata)  # refuse clashing names first
        tasks = [_genome_task(m, ref, store, gen.name, executor) for m in cohort]
        _say(progress, f"counting {len(tasks)} genomes")
        summaries = {s.genome: s for s in executor.run(count_genome, tasks)}
        outcome.counted = [summaries[m.genome] for m in cohort]
        changes = tuple(Change(t.out, m.strata, +1) for t, m in zip(tasks, cohort, strict=True))
        _say(progress, f"aggregating {len(ref.contigs)} contigs")
        results = _aggregate(executor, list(ref.contigs), None, gen, changes)
        new = {
            "build": ref.build,
            "assembly": ref.assembly,
            "contigs": ref.contigs,
            "strata": st.strata_ids(s for m in cohort for s in m.strata),
            "releases": (old or {}).get("releases", []),
            "withdrawn": (old or {}).get("withdrawn", {}),
            "members": {
                m.genome: _member_record(m, t.out.relative_to(store), s)
                for m, t, s in zip(cohort, tasks, outcome.counted, strict=True)
            },
        }
        outcome.alleles = _commit(store, new, rel, results, old)
        outcome.genomes = len(cohort)
    _audit(catalog, actor, None, outcome, store)
    return outcome


def add(
    catalog: Catalog,
    store: Path,
    genome: str,
    *,
    executor: Executor | None = None,
    actor: str | None = None,
) -> Outcome:
    """Count one more genome: its figures are added to the store's."""
    executor = executor or LocalExecutor()
    with st.lock(store):
        old = _existing(store)
        if genome in old["members"]:
            raise InputError(f"genome {genome} is already counted in {store}")
        (m,) = members(catalog, genome)
        why = _unusable(m)
        if why:
            raise InputError(f"genome {genome}: {why}")
        ref = reference(catalog, old["build"])
        strata = st.strata_ids([*old.get("strata", {}).values(), *m.strata])
        rel, gen = st.new_generation(store, old)
        task = _genome_task(m, ref, store, gen.name, executor)
        summary = count_genome(task)
        change = Change(task.out, m.strata, +1)
        results = _change(executor, store, old, gen, change)
        new = dict(old)
        new["strata"] = strata
        new["withdrawn"] = {g: w for g, w in old.get("withdrawn", {}).items() if g != genome}
        new["members"] = {
            **old["members"],
            genome: _member_record(m, task.out.relative_to(store), summary),
        }
        outcome = Outcome("add", len(new["members"]), 0, [summary])
        outcome.alleles = _commit(store, new, rel, results, old)
    _audit(catalog, actor, genome, outcome, store)
    return outcome


def remove(
    catalog: Catalog,
    store: Path,
    genome: str,
    *,
    executor: Executor | None = None,
    actor: str | None = None,
) -> Outcome:
    """Withdraw a genome: subtract exactly what adding it added."""
    executor = executor or LocalExecutor()
    with st.lock(store):
        old = _existing(store)
        record = old["members"].get(genome)
        if record is None:
            raise InputError(f"genome {genome} is not counted in {store}")
        rel, gen = st.new_generation(store, old)
        change = Change(store / record["dir"], tuple(record["strata"]), -1)
        results = _change(executor, store, old, gen, change)
        new = dict(old)
        new["members"] = {g: r for g, r in old["members"].items() if g != genome}
        new["withdrawn"] = {**old.get("withdrawn", {}), genome: st.now()}
        new["strata"] = st.strata_ids(s for r in new["members"].values() for s in r["strata"])
        outcome = Outcome("remove", len(new["members"]), 0)
        outcome.alleles = _commit(store, new, rel, results, old)
    _audit(catalog, actor, genome, outcome, store)
    return outcome


# --------------------------------------------------------------------------- steps


def _unusable(m: Member) -> str | None:
    if m.vcf is None:
        return "no kept VCF"
    if m.callable is None:
        if m.gvcf is not None:
            return "no callable regions yet (extract them: wgsvault variants callable GENOME)"
        return "no callable regions and no gVCF (derive them: variants callable --from-depth)"
    return None


def threads(executor: Executor) -> int:
    """DuckDB threads per job: this machine's cores shared by a local pool's jobs; on Slurm
    the cores a job asks for."""
    if isinstance(executor, LocalExecutor):
        return max(1, (os.cpu_count() or 1) // max(1, executor.jobs))
    return RESOURCES.cpus


def _genome_task(
    m: Member, ref: Reference, store: Path, gen: str, executor: Executor
) -> GenomeTask:
    assert m.vcf is not None and m.callable is not None
    return GenomeTask(
        genome=m.genome,
        vcf=m.vcf,
        callable=m.callable,
        sex=m.sex,
        fasta=ref.fasta,
        contigs=ref.contigs,
        assembly=ref.assembly,
        out=st.genome_dir(store, m.genome) / gen,
        threads=threads(executor),
    )


def _member_record(m: Member, rel: Path, s: GenomeSummary) -> dict[str, Any]:
    return {
        "dir": str(rel),
        "sex": m.sex,
        "strata": list(m.strata),
        "vcf": str(m.vcf),
        "callable": str(m.callable),
        "counted": s.counted,
        "callable_bases": s.callable_bases,
        "added_at": st.now(),
    }


def _existing(store: Path) -> dict[str, Any]:
    state = st.read_state(store)
    if state is None:
        raise InputError(f"{store}: no frequency database yet; run: wgsvault variants build")
    return state


def _contigs_of(genome_dir: Path) -> set[str]:
    con = st.connect()
    try:
        rows = con.execute(
            "SELECT DISTINCT chrom FROM read_parquet(?) UNION SELECT DISTINCT chrom FROM "
            "read_parquet(?)",
            [str(genome_dir / "coverage.parquet"), str(genome_dir / "calls.parquet")],
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def _change(
    executor: Executor, store: Path, old: dict[str, Any], gen: Path, change: Change
) -> list[ContigResult]:
    """Apply one genome's change to the contigs it touches; hard-link the others."""
    prev = st.data_dir(store, old)
    touched = _contigs_of(change.genome_dir)
    for contig in old["contigs"]:
        if contig in touched:
            continue
        for table in st.TABLES:
            src = st.partition(prev, table, contig)
            if src.exists():
                st.link_tree(src.parent, st.partition(gen, table, contig).parent)
    order = [c for c in old["contigs"] if c in touched]
    # no lookup files for the contigs changed: a full pass more per contig (a quarter of an
    # add's time, measured in bench/variants.py); the live store reads their Parquet files until
    # the next release writes them (releases are what the Beacon serves)
    tasks = [ContigTask(c, prev, gen, (change,), threads(executor), lookup=False) for c in order]
    return list(executor.run(apply_change, tasks))


def _aggregate(
    executor: Executor,
    contigs: list[str],
    old: Path | None,
    new: Path,
    changes: tuple[Change, ...],
) -> list[ContigResult]:
    tasks = [ContigTask(c, old, new, changes, threads(executor)) for c in contigs]
    return list(executor.run(aggregate, tasks))


def _commit(
    store: Path,
    new: dict[str, Any],
    rel: str,
    results: Iterable[ContigResult],
    old: dict[str, Any] | None,
) -> int:
    """Point the state at the new generation, then drop what no state names any more."""
    list(results)
    new["generation"] = int(rel.rsplit("/", 1)[1])
    new["data"] = rel
    new.pop("release", None)
    st.write_state(store, new)
    st.drop_old_generations(store, rel)
    keep = {store / r["dir"] for r in new["members"].values()}
    for g in (store / "genomes").glob("*/*"):
        if g.is_dir() and g not in keep:
            _rmtree(g)
    return _count_alleles(st.data_dir(store, new))


def _count_alleles(data: Path) -> int:
    files = sorted((data / "alleles").glob("chrom=*/data.parquet"))
    if not files:
        return 0
    con = st.connect()
    try:
        row = con.execute(
            "SELECT sum(num_rows) FROM parquet_file_metadata(?)", [[str(f) for f in files]]
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row and row[0] is not None else 0


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # the genome's folder, once it holds no generation
        path.parent.rmdir()


def _audit(
    catalog: Catalog, actor: str | None, genome: str | None, outcome: Outcome, store: Path
) -> None:
    detail: dict[str, Any] = {
        "action": outcome.action,
        "store": str(store),
        "genomes": outcome.genomes,
        "alleles": outcome.alleles,
    }
    if outcome.action == "remove":
        detail["withdrawn"] = True
    if outcome.skipped:
        detail["skipped"] = sorted(outcome.skipped)
    audit.record(
        catalog,
        actor=actor or audit.default_actor(),
        event="variants",
        genome=genome,
        detail=detail,
    )


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
