"""Callable regions for the genomes that lack them, as per-genome jobs before counting.

A genome with a kept VCF and no callable-regions file gets one: from its gVCF
(`codec.callable_regions.extract`, thresholds GQ >= 20 and depth >= 10 unless given), or, with
`from_depth`, from its CRAM/BAM's depth where the gVCF is gone (`from_depth`, the documented
approximation). The file lands beside its source and is registered in the catalog with its proof
and an audit entry (`apply.callable.register_callable`, as apply does before a gVCF goes). A
genome whose extraction fails is reported and left out; the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wgsvault.apply.callable import register_callable
from wgsvault.apply.executors import Executor, LocalExecutor
from wgsvault.catalog import Catalog
from wgsvault.codec import callable_depth, callable_regions
from wgsvault.codec.refs import Registry
from wgsvault.errors import InputError
from wgsvault.variants.cohort import Member


@dataclass(frozen=True)
class CallableTask:
    genome: str
    source: Path  # gVCF, or CRAM/BAM for the depth method
    method: str  # gvcf | depth
    min_gq: int = 20
    min_dp: int = 10
    cache: Path | None = None  # the reference cache a CRAM is decoded with
    fasta: Path | None = None


@dataclass(frozen=True)
class CallableResult:
    genome: str
    summary: callable_regions.CallableSummary | None
    error: str | None


def extract_one(task: CallableTask) -> CallableResult:
    """One genome's callable regions, written beside their source (a failure is returned)."""
    out = callable_regions.callable_path(task.source)
    try:
        if task.method == "gvcf":
            summary = callable_regions.extract(
                task.source, out, min_gq=task.min_gq, min_dp=task.min_dp
            )
        else:
            summary = callable_depth.from_depth(
                task.source, out, cache=task.cache, fasta=task.fasta, min_dp=task.min_dp
            )
    except InputError as exc:
        return CallableResult(task.genome, None, str(exc))
    return CallableResult(task.genome, summary, None)


def tasks_for(
    catalog: Catalog,
    cohort: list[Member],
    *,
    from_depth: bool = False,
    min_gq: int = 20,
    min_dp: int = 10,
    force: bool = False,
) -> tuple[list[CallableTask], dict[str, str]]:
    """The extraction jobs of the genomes that need callable regions (all given with `force`),
    and the genomes that cannot have them, with why."""
    tasks: list[CallableTask] = []
    cannot: dict[str, str] = {}
    cache = Registry(catalog).cache
    for m in cohort:
        if m.callable is not None and not force:
            continue
        if m.gvcf is not None and not from_depth:
            tasks.append(CallableTask(m.genome, m.gvcf, "gvcf", min_gq, min_dp))
        elif from_depth and m.alignment is not None:
            tasks.append(CallableTask(m.genome, m.alignment, "depth", min_gq, min_dp, cache))
        else:
            cannot[m.genome] = (
                "no CRAM/BAM to derive callable regions from" if from_depth
                else "no gVCF to extract callable regions from (try --from-depth)"
            )  # fmt: skip
    return tasks, cannot


def extract_missing(
    catalog: Catalog,
    tasks: list[CallableTask],
    *,
    executor: Executor | None = None,
    actor: str | None = None,
) -> tuple[list[callable_regions.CallableSummary], dict[str, str]]:
    """Run the jobs and register what they wrote; (summaries, failures by genome)."""
    done: list[callable_regions.CallableSummary] = []
    failed: dict[str, str] = {}
    for result in (executor or LocalExecutor()).run(extract_one, tasks):
        if result.summary is None:
            failed[result.genome] = result.error or "failed"
            continue
        register_callable(catalog, result.genome, result.summary.path, result.summary, actor=actor)
        done.append(result.summary)
    return done, failed
