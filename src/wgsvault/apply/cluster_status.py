"""Where a cluster run stands: its jobs' rows, each genome's state, and the run's end.

`assess` decides, for each genome of a cluster run, from the journal (finished or not) and the
latest job's Slurm state, whether it is done, still pending or running, to be submitted again
(with twice the memory or time when it ran out of that), cancelled, or given up; `cluster.reconcile`
submits what it says. `end` closes a run once nothing is left alive; `summary` gives its
throughput and time left. The journal, not Slurm, decides what is finished (see cluster.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from wgsvault import audit
from wgsvault.apply import slurm
from wgsvault.apply.approval import LoadedPlan
from wgsvault.apply.journal import Action
from wgsvault.apply.resources import Resources
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import ApplyRun, ClusterJob, JournalEntry

SUPERVISOR = "(supervisor)"
FINISHED = ("done", "failed", "skipped")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Job:
    """A `cluster_job` row as reconcile reads it (plain values: a run has tens of thousands)."""

    id: int
    genome: str
    attempt: int
    job_id: str
    cpus: int
    mem_mb: int
    time_min: int
    state: str
    reason: str | None
    log: str | None

    COLUMNS: ClassVar[tuple[Any, ...]] = (
        ClusterJob.id, ClusterJob.genome, ClusterJob.attempt, ClusterJob.job_id, ClusterJob.cpus,
        ClusterJob.mem_mb, ClusterJob.time_min, ClusterJob.state, ClusterJob.reason,
        ClusterJob.log,
    )  # fmt: skip


@dataclass
class GenomeState:
    genome: str
    state: str  # done | running | pending | retrying | failed | gave up | cancelled | waiting
    attempts: int = 0
    job_id: str = ""
    slurm_state: str = ""
    reason: str = ""
    log: str = ""
    resources: str = ""


@dataclass
class RunStatus:
    run_id: int
    status: str
    genomes: list[GenomeState]
    started_at: dt.datetime
    finished: int = 0
    seconds: float = 0.0
    per_hour: float = 0.0
    eta_seconds: float | None = None
    supervisor: str = ""
    resubmitted: list[str] = field(default_factory=list)  # genomes this reconcile submitted

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for g in self.genomes:
            out[g.state] += 1
        return dict(out)


def assess(
    planned: dict[str, list[Action]],
    latest: dict[str, Job],
    finished: dict[str, str],
    *,
    submit: bool,
    resume: bool,
    max_attempts: int,
    first: Callable[[list[Action]], Resources],
) -> tuple[list[GenomeState], dict[str, Resources], dict[str, int]]:
    """Each planned genome's state, and what to submit (again): genome -> resources, attempt."""
    genomes: list[GenomeState] = []
    retry: dict[str, Resources] = {}
    attempts: dict[str, int] = {}
    for genome in sorted(planned):
        job = latest.get(genome)
        g = GenomeState(genome, "waiting")
        if job is not None:
            g.attempts, g.job_id, g.slurm_state = job.attempt, job.job_id, job.state
            g.log, g.reason = job.log or "", job.reason or ""
            g.resources = f"{job.cpus} cpus, {job.mem_mb} MB, {job.time_min} min"
        if genome in finished:
            g.state = finished[genome]
        elif job is None:  # never submitted (a submission that died half way)
            g.state = "waiting"
            if submit:
                retry[genome] = first(planned[genome])
                attempts[genome] = 1
        elif job.state not in slurm.FINAL:
            g.state = "pending" if job.state in ("SUBMITTED", "PENDING") else "running"
        else:
            state = slurm.JobState(job.job_id, job.state, job.reason or "")
            kind = slurm.classify(state, job.log)
            res = Resources(job.cpus, job.mem_mb, job.time_min)
            if kind == "cancelled" and not resume:
                g.state = "cancelled"
            elif job.attempt >= max_attempts and not resume:
                g.state = "gave up"
                g.reason = g.reason or f"{job.state} after {job.attempt} attempts"
            else:
                g.state = "retrying"
                retry[genome] = res.retried(kind) if kind in ("memory", "time") else res
                attempts[genome] = 1 if resume else job.attempt + 1
                if kind in ("memory", "time"):
                    g.reason = f"ran out of {kind}: {job.state}"
        genomes.append(g)
    return genomes, retry, attempts


def finished_genomes(s: Session, run: ApplyRun, plan: LoadedPlan) -> dict[str, str]:
    """genome -> the worst final state of its actions, for genomes whose every action is final."""
    ids: dict[str, set[str]] = defaultdict(set)
    for a in plan.actions:
        if a["status"] == "ready":
            ids[a["genome"] or "(none)"].add(a["id"])
    last: dict[str, str] = {}
    for action_id, state in s.execute(
        select(JournalEntry.action_id, JournalEntry.state)
        .where(JournalEntry.plan_sha256 == run.plan_sha256, JournalEntry.step == "action")
        .order_by(JournalEntry.id)
    ):
        last[action_id] = state
    out = {}
    for genome, actions in ids.items():
        got = [last.get(a) for a in actions]
        if all(g in FINISHED for g in got):
            out[genome] = "failed" if "failed" in got else "skipped" if "skipped" in got else "done"
    return out


def set_state(
    s: Session, changed: dict[tuple[str, str | None], list[int]], now: dt.datetime
) -> None:
    """Write new job states: one UPDATE per state and 5,000 rows (a whole run goes PENDING at
    once, then RUNNING and COMPLETED in waves)."""
    for (state, reason), ids in changed.items():
        for i in range(0, len(ids), 5000):
            s.execute(update(ClusterJob).where(ClusterJob.id.in_(ids[i : i + 5000]))
                      .values(state=state, reason=reason, updated_at=now))  # fmt: skip


def freed_bytes(s: Session, run_id: int) -> int:
    """Bytes the run's jobs freed, from their journal entries (summed once, when it ends)."""
    rows = s.scalars(
        select(JournalEntry.detail).where(
            JournalEntry.run_id == run_id,
            JournalEntry.state == "done",
            JournalEntry.detail.like('%"bytes_freed"%'),
        )
    )
    return sum(int(json.loads(d).get("bytes_freed") or 0) for d in rows)


def end(s: Session, run: ApplyRun, genomes: list[GenomeState]) -> None:
    if run.status in ("done", "incomplete", "cancelled"):
        return
    ok = all(g.state == "done" for g in genomes)
    run.status = "done" if ok else "incomplete"
    run.finished_at = now()
    run.freed_bytes = freed_bytes(s, run.id)
    counts: dict[str, int] = defaultdict(int)
    for g in genomes:
        counts[g.state] += 1
    audit.append(
        s,
        actor=run.actor,
        event="apply_end",
        detail={"plan": run.plan_sha256, "run": run.id, "status": run.status,
                "genomes": dict(counts), "executor": "slurm"},
    )  # fmt: skip


def summary(run: ApplyRun, genomes: list[GenomeState], sup: Job | None) -> RunStatus:
    seconds = ((run.finished_at or now()) - run.started_at).total_seconds()
    done = sum(g.state in FINISHED for g in genomes)
    per_hour = done / seconds * 3600 if seconds > 0 else 0.0
    left = len(genomes) - done
    eta = left / per_hour * 3600 if per_hour > 0 and left else (0.0 if not left else None)
    return RunStatus(
        run.id, run.status, genomes, run.started_at, done, seconds, per_hour, eta,
        f"{sup.job_id} {sup.state}" if sup is not None else "",
    )  # fmt: skip


def runs(catalog: Catalog) -> list[dict[str, Any]]:
    """The cluster runs, newest first."""
    with catalog.session() as s:
        rows = s.scalars(select(ApplyRun).where(ApplyRun.executor == "slurm")
                         .order_by(ApplyRun.id.desc())).all()  # fmt: skip
        return [{"run": r.id, "status": r.status, "plan": r.plan_sha256[:12],
                 "started": r.started_at, "finished": r.finished_at} for r in rows]  # fmt: skip
