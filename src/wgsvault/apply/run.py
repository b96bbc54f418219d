"""Apply a plan: approvals checked, one task per genome handed to an executor, a summary back.

`apply_plan` refuses a plan that is not approved, in its exact content, by the data controller of
every action it would run (approve.py). It then hands one task per genome to an executor
(executors.py); `apply_genome`, the executor's unit of work, takes the genome's lock (locks.py)
and runs its ready actions (runner.py). Each run is recorded (`apply_run`) and audited
(`apply_start`, `apply_end`); running `apply` again after any interruption completes what is left.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update

from wgsvault import audit
from wgsvault.apply.approval import expected_freed, load_plan, require_approval
from wgsvault.apply.executors import Executor, LocalExecutor
from wgsvault.apply.journal import Action
from wgsvault.apply.locks import GenomeLocks
from wgsvault.apply.quarantine import DEFAULT_DAYS
from wgsvault.apply.runner import GenomeResult, GenomeRunner, GenomeTask
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import ApplyRun
from wgsvault.codec.refs import Registry


def apply_genome(task: GenomeTask) -> GenomeResult:
    """Run one genome's actions under its lock (the executor's unit of work)."""
    cat = open_catalog(task.catalog_url, migrate=False)
    try:
        # the lock names the process doing the work (a Slurm job's node and pid, not the submitter)
        locks = GenomeLocks(cat, f"{socket.gethostname()}:{os.getpid()}:{task.holder}")
        deadline = time.monotonic() + task.wait_lock
        while (holder := locks.acquire(task.genome)) is not None:
            if time.monotonic() >= deadline:
                return GenomeResult(task.genome, locked_by=holder)
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        try:
            with locks.beating(task.genome):
                return GenomeRunner(cat, Registry(cat, Path(task.refs_root)), task).run()
        finally:
            locks.release(task.genome)
    finally:
        cat.close()


@dataclass
class ApplySummary:
    """What an apply run did, over all its genomes."""

    run_id: int
    genomes: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    locked: dict[str, str] = field(default_factory=dict)
    blocked: int = 0
    bytes_freed: int = 0
    bytes_written: int = 0
    seconds: float = 0.0


ProgressFn = Callable[[GenomeResult, int, int], None]  # (result, genomes done, genomes total)


def apply_plan(
    catalog: Catalog,
    plan_path: Path,
    *,
    registry: Registry,
    actor: str,
    executor: Executor | None = None,
    quarantine_days: int = DEFAULT_DAYS,
    genomes: list[str] | None = None,
    progress: ProgressFn | None = None,
) -> ApplySummary:
    """Apply the approved, ready actions of a plan; safe to run again after any interruption."""
    plan = load_plan(plan_path)
    ready = [a for a in plan.actions if a["status"] == "ready"]
    if genomes:
        wanted = set(genomes)
        ready = [a for a in ready if a["genome"] in wanted]
    require_approval(catalog, plan, sorted({a["controller"] or "(unassigned)" for a in ready}))
    executor = executor or LocalExecutor()
    with catalog.session() as s:
        run = ApplyRun(
            plan_sha256=plan.sha256,
            plan_path=str(Path(plan_path).resolve()),
            actor=actor,
            host=socket.gethostname(),
            pid=os.getpid(),
            executor=executor.name,
            promised_bytes=expected_freed(ready),
        )
        s.add(run)
        s.flush()
        run_id = run.id
        audit.append(
            s,
            actor=actor,
            event="apply_start",
            detail={"plan": plan.sha256, "run": run_id, "actions": len(ready)},
        )
    by_genome: dict[str, list[Action]] = defaultdict(list)
    for a in ready:
        by_genome[a["genome"] or "(none)"].append(a)
    holder = f"run{run_id}"  # apply_genome prefixes host:pid (locks.holder_dead)
    tasks = [
        GenomeTask(
            catalog.url,
            str(registry.root),
            plan.sha256,
            run_id,
            g,
            acts,
            actor,
            holder,
            quarantine_days,
        )
        for g, acts in sorted(by_genome.items())
    ]
    summary = ApplySummary(
        run_id,
        genomes=len(tasks),
        blocked=len(plan.actions) - len([a for a in plan.actions if a["status"] == "ready"]),
    )
    t0 = time.perf_counter()
    status = "failed"
    try:
        for n, res in enumerate(executor.run(apply_genome, tasks), 1):
            summary.done += len(res.done)
            summary.failed.update(res.failed)
            summary.skipped.update(res.skipped)
            if res.locked_by:
                summary.locked[res.genome] = res.locked_by
            summary.bytes_freed += res.bytes_freed
            summary.bytes_written += res.bytes_written
            if progress:
                progress(res, n, len(tasks))
        status = "done"
    finally:
        summary.seconds = time.perf_counter() - t0
        with catalog.session() as s:
            s.execute(
                update(ApplyRun)
                .where(ApplyRun.id == run_id)
                .values(
                    status=status,
                    finished_at=dt.datetime.now(dt.UTC),
                    freed_bytes=summary.bytes_freed,
                )
            )
            audit.append(
                s,
                actor=actor,
                event="apply_end",
                detail={
                    "plan": plan.sha256,
                    "run": run_id,
                    "status": status,
                    "done": summary.done,
                    "failed": len(summary.failed),
                    "skipped": len(summary.skipped),
                    "bytes_freed": summary.bytes_freed,
                },
            )
    return summary
