"""A run on a Slurm cluster that the operator can leave: submit, supervise, follow, cancel, resume.

`submit_plan` checks the approvals as a local apply does, records the run, and submits one array
task per genome (`run.apply_genome`, as the local executor runs it), grouped by the resources the
model of resources.py gives each genome (a few tiers), in arrays of at most `chunk` tasks
(the cluster's MaxArraySize), then returns. At most `max_running` genomes of the run run at once:
the arrays of different resources share it, and the chunks of one are chained. It
also submits a *supervisor*: a small job that starts when every array of the run has ended
(`--dependency=afterany`) and `reconcile`s:

* a genome is finished when the journal has a final state (done, failed, skipped) for each of
  its actions: the journal, not Slurm, decides what is done, so a job that died at any point
  leaves its genome done or untouched and a new attempt completes it;
* an unfinished genome whose job is over is submitted again, up to `max_attempts`, with twice
  the memory or time when Slurm says it ran out of that, as it was after a node failure or an
  error; a job a person cancelled is left to `resume`;
* if anything was submitted again, a new supervisor waits for it; otherwise the run is over:
  `done` when every genome finished, else `incomplete` (see status: what gave up, and why).

`status` reconciles without submitting and reports each genome with its Slurm state, log,
throughput and the time left; `cancel` cancels every job of the run; `resume` submits what is not
finished (cancelled jobs included) with a fresh attempt budget. Every step writes the catalog
(`apply_run`, `cluster_job`) and the audit log; the run row is locked while a reconcile submits,
so two supervisors never submit the same genome twice. Only PostgreSQL catalogs are accepted:
jobs on many nodes share the catalog, and SQLite's file locks are not safe over a network
filesystem. How each genome stands and how a run ends is cluster_status.py.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from wgsvault import audit
from wgsvault.apply import slurm
from wgsvault.apply.approval import LoadedPlan, expected_freed, load_plan, require_approval
from wgsvault.apply.cluster_status import (
    SUPERVISOR,
    Job,
    RunStatus,
    assess,
    end,
    finished_genomes,
    now,
    set_state,
    summary,
)
from wgsvault.apply.journal import Action
from wgsvault.apply.quarantine import DEFAULT_DAYS
from wgsvault.apply.resources import Resources, estimate
from wgsvault.apply.run import apply_genome
from wgsvault.apply.runner import GenomeTask
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import ApplyRun, ClusterJob
from wgsvault.errors import InputError

SUPERVISOR_RESOURCES = Resources(cpus=1, mem_mb=1024, time_min=60)
#: how long a genome's job waits for the genome's lock: past the 10 minutes after which a holder
#: without heartbeat is taken over (locks.py), so an earlier attempt's lock never costs an attempt
LOCK_WAIT_S = 11 * 60.0


@dataclass(frozen=True)
class ClusterOptions:
    """What an operator chose for a cluster run (kept with the run, for supervisors and resume)."""

    cpus: int | None = None
    mem_mb: int | None = None
    time_min: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    max_running: int = 256
    max_attempts: int = 3
    chunk: int | None = None  # tasks per array; default: the cluster's MaxArraySize - 1
    quarantine_days: int = DEFAULT_DAYS
    folder: str = ""
    refs_root: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    actor: str = ""
    genomes: list[str] | None = None

    def slurm(self) -> slurm.SlurmOptions:
        return slurm.SlurmOptions(
            folder=Path(self.folder),
            partition=self.partition,
            account=self.account,
            qos=self.qos,
            max_running=self.max_running,
            extra=dict(self.extra),
        )


def _require_postgresql(catalog: Catalog) -> None:
    if catalog.backend != "postgresql":
        raise InputError(
            f"the Slurm executor needs a PostgreSQL catalog, not {catalog.backend}: jobs on many "
            "nodes write it at once, and SQLite's file locks are not safe over a network "
            "filesystem (give --catalog postgresql://...)"
        )


def _plan_actions(plan: LoadedPlan, genomes: list[str] | None) -> dict[str, list[Action]]:
    wanted = set(genomes or ())
    by_genome: dict[str, list[Action]] = defaultdict(list)
    for a in plan.actions:
        if a["status"] == "ready" and (not wanted or a["genome"] in wanted):
            by_genome[a["genome"] or "(none)"].append(a)
    return dict(sorted(by_genome.items()))


def submit_plan(
    catalog: Catalog,
    plan_path: Path,
    *,
    actor: str,
    options: ClusterOptions,
    work: Callable[[GenomeTask], Any] = apply_genome,
) -> int:
    """Record a cluster run of an approved plan and submit it; its run id (returns at once).

    `work` is what each array task runs (a benchmark may put its own; retries run
    `apply_genome`)."""
    _require_postgresql(catalog)
    if not slurm.available():
        raise InputError("no Slurm here: sbatch, sacct, squeue and scancel must be on PATH")
    plan = load_plan(plan_path)
    actions = _plan_actions(plan, options.genomes)
    ready = [a for acts in actions.values() for a in acts]
    require_approval(catalog, plan, sorted({a["controller"] or "(unassigned)" for a in ready}))
    opts = ClusterOptions(**{**asdict(options), "actor": actor})
    with catalog.session() as s:
        run = ApplyRun(
            plan_sha256=plan.sha256,
            plan_path=str(Path(plan_path).resolve()),
            actor=actor,
            host=socket.gethostname(),
            pid=os.getpid(),
            executor="slurm",
            status="submitted",
            options=json.dumps(asdict(opts), sort_keys=True),
            promised_bytes=expected_freed(ready),
        )
        s.add(run)
        s.flush()
        run_id = run.id
        audit.append(
            s,
            actor=actor,
            event="apply_start",
            detail={"plan": plan.sha256, "run": run_id, "actions": len(ready),
                    "genomes": len(actions), "executor": "slurm"},
        )  # fmt: skip
    with catalog.session() as s:
        run_row = s.get_one(ApplyRun, run_id, with_for_update=True)
        todo = {g: _resources(acts, opts) for g, acts in actions.items()}
        _submit(s, catalog, run_row, plan, opts, todo, dict.fromkeys(todo, 1), work)
    return run_id


def _resources(actions: list[Action], opts: ClusterOptions) -> Resources:
    return estimate(actions, cpus=opts.cpus, mem_mb=opts.mem_mb, time_min=opts.time_min)


def _task(catalog: Catalog, run: ApplyRun, plan: LoadedPlan, opts: ClusterOptions,
          genome: str, actions: list[Action]) -> GenomeTask:  # fmt: skip
    return GenomeTask(
        catalog.url, opts.refs_root, plan.sha256, run.id, genome, actions, opts.actor or run.actor,
        f"run{run.id}", opts.quarantine_days, wait_lock=LOCK_WAIT_S,
    )  # fmt: skip


def _submit(
    s: Session,
    catalog: Catalog,
    run: ApplyRun,
    plan: LoadedPlan,
    opts: ClusterOptions,
    todo: dict[str, Resources],
    attempts: dict[str, int],
    work: Callable[[GenomeTask], Any] = apply_genome,
) -> list[str]:
    """Submit `todo` (genome -> resources) as arrays, then a supervisor after them; job ids."""
    actions = _plan_actions(plan, list(todo))
    groups: dict[Resources, list[str]] = defaultdict(list)
    for genome, res in todo.items():
        groups[res].append(genome)
    sl = opts.slurm()
    arrays: list[str] = []
    at = now()
    size = opts.chunk or max(1, slurm.max_array_size() - 1)
    # the throttle holds for the whole run: the groups' arrays run side by side and share
    # max_running; a group's next chunk starts when its previous one is over (afterany)
    share = slurm.shares([len(g) for g in groups.values()], opts.max_running)
    for (res, genomes), parallel in zip(groups.items(), share, strict=True):
        previous: str | None = None
        for i in range(0, len(genomes), size):
            chunk = genomes[i : i + size]
            tasks = [_task(catalog, run, plan, opts, g, actions[g]) for g in chunk]
            jobs = slurm.submit_array(
                work, tasks, res, sl, name=f"wgsvault-run{run.id}", parallel=parallel,
                dependency=f"afterany:{previous}" if previous else None,
            )  # fmt: skip
            previous = jobs[0][0].split("_")[0]
            arrays.append(previous)
            s.execute(
                insert(ClusterJob),
                [{"run_id": run.id, "genome": g, "attempt": attempts[g], "job_id": job,
                  "cpus": res.cpus, "mem_mb": res.mem_mb, "time_min": res.time_min,
                  "state": "SUBMITTED", "log": log, "submitted_at": at, "updated_at": at}
                 for g, (job, log) in zip(chunk, jobs, strict=True)],
            )  # fmt: skip
    if arrays:
        _add_supervisor(s, catalog, run.id, sl, arrays)
    return arrays


def _add_supervisor(
    s: Session, catalog: Catalog, run_id: int, sl: slurm.SlurmOptions, after: list[str]
) -> None:
    """Submit (and record) a supervisor that starts once every job of `after` has ended."""
    arrays = sorted({j.split("_")[0] for j in after})  # a whole array: one dependency each
    job, log = slurm.submit_one(
        supervise, catalog.url, run_id, res=SUPERVISOR_RESOURCES, opts=sl,
        name=f"wgsvault-run{run_id}-supervisor", dependency="afterany:" + ":".join(arrays),
    )  # fmt: skip
    r, at = SUPERVISOR_RESOURCES, now()
    s.add(ClusterJob(run_id=run_id, genome=SUPERVISOR, attempt=0, job_id=job, cpus=r.cpus,
                     mem_mb=r.mem_mb, time_min=r.time_min, state="SUBMITTED", log=log,
                     submitted_at=at, updated_at=at))  # fmt: skip


def supervise(catalog_url: str, run_id: int, patience: float = 60.0) -> str:
    """The supervisor job: reconcile the run, submitting again what must be (see the docstring).

    It starts when every job it waits for has ended, but accounting may not have recorded the
    last of them yet: while a job still looks alive and nothing was to be submitted, it asks
    again for `patience` seconds, then leaves a new supervisor waiting for those jobs."""
    catalog = open_catalog(catalog_url, migrate=False)
    try:
        deadline = time.monotonic() + patience
        while True:
            st = reconcile(catalog, run_id, submit=True)
            live = [g for g in st.genomes if g.state in ("pending", "running")]
            if st.status != "submitted" or st.resubmitted or not live:
                return st.status
            if time.monotonic() >= deadline:
                _supervise_later(catalog, run_id, [g.job_id for g in live])
                return st.status
            time.sleep(5)
    finally:
        catalog.close()


def _supervise_later(catalog: Catalog, run_id: int, jobs: list[str]) -> None:
    """A new supervisor, after `jobs` (which accounting still shows alive)."""
    with catalog.session() as s:
        run, opts, _ = _load(s, run_id)
        _add_supervisor(s, catalog, run_id, opts.slurm(), jobs)


def _load(s: Session, run_id: int) -> tuple[ApplyRun, ClusterOptions, LoadedPlan]:
    run = s.get(ApplyRun, run_id)
    if run is None or run.executor != "slurm":
        raise InputError(f"no cluster run {run_id} (see `wgsvault status --runs`)")
    opts = ClusterOptions(**json.loads(run.options or "{}"))
    plan = load_plan(Path(run.plan_path))
    if plan.sha256 != run.plan_sha256:
        raise InputError(f"{run.plan_path}: no longer the plan run {run_id} was started with")
    return run, opts, plan


def reconcile(catalog: Catalog, run_id: int, *, submit: bool, resume: bool = False) -> RunStatus:
    """Bring the run's rows up to date with Slurm and the journal; with `submit`, submit again
    what is to be retried (`resume`: also what was cancelled, with a fresh attempt budget)."""
    _require_postgresql(catalog)
    with catalog.session() as s:
        run, opts, plan = _load(s, run_id)
        if submit:  # one reconcile at a time submits for a run
            run = s.get_one(ApplyRun, run_id, with_for_update=True, populate_existing=True)
        rows = [Job(*r) for r in s.execute(select(*Job.COLUMNS)
                .where(ClusterJob.run_id == run_id).order_by(ClusterJob.id))]  # fmt: skip
        live = [r.job_id for r in rows if r.state not in slurm.FINAL or r.state in slurm.REQUEUABLE]
        at = now()
        by_job = {r.job_id: r for r in rows}
        changed: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        for st in slurm.states(live).values():
            r = by_job[st.job_id]
            if (r.state, r.reason) != (st.state, st.reason):
                r.state, r.reason = st.state, st.reason
                changed[r.state, r.reason].append(r.id)
        latest: dict[str, Job] = {}
        for r in rows:
            latest[r.genome] = r  # rows are in submission order
        sup = latest.pop(SUPERVISOR, None)
        set_state(s, changed, at)
        finished = finished_genomes(s, run, plan)
        planned = _plan_actions(plan, opts.genomes)
        genomes, retry, attempts = assess(
            planned, latest, finished, submit=submit, resume=resume,
            max_attempts=opts.max_attempts, first=lambda acts: _resources(acts, opts),
        )  # fmt: skip
        if submit and retry and run.status != "cancelled":
            if resume and sup is not None and sup.state not in slurm.FINAL:
                slurm.cancel([sup.job_id])  # the old supervisor must not act again
                sup.state = "CANCELLED"
                set_state(s, {(sup.state, sup.reason): [sup.id]}, at)
            _submit(s, catalog, run, plan, opts, retry, attempts)
            run.status = "submitted"
            for g in genomes:
                if g.genome in retry:
                    g.state = "pending"
        elif submit and not any(g.state in ("pending", "running") for g in genomes):
            end(s, run, genomes)
        status = summary(run, genomes, sup)
        status.resubmitted = sorted(retry) if submit and run.status == "submitted" else []
    return status


def status(catalog: Catalog, run_id: int) -> RunStatus:
    """Where a cluster run is: each genome from the journal and Slurm (nothing is submitted)."""
    return reconcile(catalog, run_id, submit=False)


def resume(catalog: Catalog, run_id: int) -> RunStatus:
    """Submit again whatever of the run is not finished, cancelled jobs included."""
    with catalog.session() as s:
        s.execute(update(ApplyRun).where(ApplyRun.id == run_id, ApplyRun.executor == "slurm")
                  .values(status="submitted", finished_at=None))  # fmt: skip
    return reconcile(catalog, run_id, submit=True, resume=True)


def cancel(catalog: Catalog, run_id: int, *, actor: str) -> int:
    """Cancel every job of the run that is not over; the number cancelled."""
    _require_postgresql(catalog)
    with catalog.session() as s:
        run = s.get(ApplyRun, run_id)
        if run is None or run.executor != "slurm":
            raise InputError(f"no cluster run {run_id}")
        alive = (ClusterJob.run_id == run_id) & ClusterJob.state.not_in(slurm.FINAL)
        live = s.scalars(select(ClusterJob.job_id).where(alive)).all()
        # whole arrays (one scancel argument each, not one per task): every task of an array
        # belongs to this run, and tasks already over are left as they are
        slurm.cancel(sorted({j.split("_")[0] for j in live}))
        at = now()
        s.execute(update(ClusterJob).where(alive).values(
            state="CANCELLED", reason=f"cancelled by {actor}", updated_at=at))  # fmt: skip
        run.status, run.finished_at = "cancelled", at
        audit.append(s, actor=actor, event="apply_end",
                     detail={"plan": run.plan_sha256, "run": run_id, "status": "cancelled",
                             "jobs": len(live), "executor": "slurm"})  # fmt: skip
    return len(live)
