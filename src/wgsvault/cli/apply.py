"""Command line of the main job: approve, apply, status, purge, undo, audit.

Parsing and printing only; the work is in `wgsvault.apply` and `wgsvault.audit`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from wgsvault import audit
from wgsvault.apply.runner import GenomeResult
from wgsvault.cli.common import APPLY, err, open_selected, out
from wgsvault.config import site_config, vault_home
from wgsvault.errors import IntegrityError
from wgsvault.report import render

app = typer.Typer()


@app.command(rich_help_panel=APPLY)
def approve(
    plan: Annotated[Path, typer.Argument(help="Plan JSON from wgsvault plan")],
    controller: Annotated[str, typer.Option(help="The data controller approving its actions")],
    by: Annotated[str, typer.Option("--by", help="Person approving")],
    reference: Annotated[str, typer.Option(help="Case or decision id")],
) -> None:
    """Record a data controller's approval of its actions in a plan."""
    from wgsvault.apply.approval import approve as run

    row = run(open_selected(), plan, controller=controller, by=by, reference=reference)
    n = len(json.loads(row.action_ids))
    out.print(
        f"{controller}: {n} actions of plan {row.plan_sha256[:12]} approved by {row.approved_by} "
        f"({row.reference}) at {row.approved_at:%Y-%m-%d %H:%M}"
    )


def parse_mem(text: str) -> int:
    """Slurm's memory syntax (`8G`, `8000M`, `8000` = MB, `1T`) in MB."""
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    t = text.strip().upper().removesuffix("B")
    unit = t[-1] if t and t[-1] in units else "M"
    number = t[:-1] if t and t[-1] in units else t
    try:
        mb = float(number) * units[unit]
    except ValueError:
        raise typer.BadParameter(f"--mem {text!r}: e.g. 8G or 8000M") from None
    if mb < 1:
        raise typer.BadParameter(f"--mem {text!r} is too small")
    return int(mb)


def parse_time(text: str) -> int:
    """Slurm's time syntax (`720`, `12:00:00`, `1-00:00:00`, `30:00`) in whole minutes."""
    days, _, rest = text.strip().rpartition("-")
    parts = rest.split(":")
    try:
        nums = [int(p) for p in parts]
        d = int(days) if days else 0
    except ValueError:
        raise typer.BadParameter(f"--time {text!r}: e.g. 720, 12:00:00 or 1-00:00:00") from None
    if len(nums) == 1:
        minutes = nums[0] if not days else nums[0] * 60  # D-H
    elif len(nums) == 2:
        minutes = nums[0] + (nums[1] > 0) if not days else nums[0] * 60 + nums[1]  # M:S, D-H:M
    else:
        minutes = nums[0] * 60 + nums[1] + (nums[2] > 0)
    minutes += d * 24 * 60
    if minutes < 1:
        raise typer.BadParameter(f"--time {text!r} is too short")
    return minutes


@app.command(rich_help_panel=APPLY)
def apply(
    plan: Annotated[Path | None, typer.Argument(help="Approved plan JSON")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Genomes in parallel (local)")] = 1,
    executor: Annotated[str, typer.Option(help="local, or slurm (returns once submitted)")] = (
        "local"
    ),
    quarantine_days: Annotated[int, typer.Option(help="Days before purge may delete")] = 30,
    genome: Annotated[list[str] | None, typer.Option(help="Only these genomes")] = None,
    actor: Annotated[str | None, typer.Option(help="Who runs it (default user@host)")] = None,
    cpus: Annotated[int | None, typer.Option(help="Slurm: CPUs per genome (default: model)")] = (
        None
    ),
    mem: Annotated[str | None, typer.Option(help="Slurm: memory per genome, e.g. 8G")] = None,
    time: Annotated[
        str | None, typer.Option("--time", help="Slurm: time limit per genome, e.g. 12:00:00")
    ] = None,
    partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
    account: Annotated[str | None, typer.Option(help="Slurm account")] = None,
    qos: Annotated[str | None, typer.Option(help="Slurm QoS")] = None,
    max_running: Annotated[
        int | None, typer.Option(help="Slurm: genomes running at once (array %N)")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Slurm: tries per genome")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Slurm: follow the run to its end")] = False,
    resume: Annotated[
        int | None, typer.Option("--resume", help="Slurm: submit again what run N has not done")
    ] = None,
) -> None:
    """Apply an approved plan: convert, prove, register, quarantine; resumable after any stop.

    With --executor slurm the plan is submitted to the cluster as job arrays and the command
    returns; a supervisor job retries what ran out of memory or time, and `status --run N`,
    `cancel N` and `apply --resume N` follow, stop and restart the run.
    """
    if resume is not None:
        from wgsvault.apply import cluster

        st = cluster.resume(open_selected(), resume)
        _print_run(st)
        if wait:
            _follow(resume)
        return
    if plan is None:
        raise typer.BadParameter("give the approved PLAN (or --resume RUN)")
    if executor == "slurm":
        _submit(plan, genome, actor, quarantine_days, cpus, mem, time, partition, account, qos,
                max_running, max_attempts, wait)  # fmt: skip
        return
    if executor != "local":
        raise typer.BadParameter(f"--executor {executor}: choose local or slurm")
    _apply_local(plan, jobs, quarantine_days, genome, actor)


def _submit(
    plan: Path,
    genome: list[str] | None,
    actor: str | None,
    quarantine_days: int,
    cpus: int | None,
    mem: str | None,
    time: str | None,
    partition: str | None,
    account: str | None,
    qos: str | None,
    max_running: int | None,
    max_attempts: int | None,
    wait: bool,
) -> None:
    from wgsvault.apply import cluster
    from wgsvault.codec.refs import Registry

    site = site_config().slurm
    cat = open_selected()
    opts = cluster.ClusterOptions(
        cpus=cpus,
        mem_mb=parse_mem(mem) if mem else None,
        time_min=parse_time(time) if time else None,
        partition=partition or site.partition,
        account=account or site.account,
        qos=qos or site.qos,
        max_running=max_running or site.max_running,
        max_attempts=max_attempts or site.max_attempts,
        quarantine_days=quarantine_days,
        folder=str(site.folder or vault_home() / "slurm"),
        refs_root=str(Registry(cat).root),
        extra=dict(site.extra),
        genomes=genome,
    )
    run_id = cluster.submit_plan(cat, plan, actor=actor or audit.default_actor(), options=opts)
    st = cluster.status(cat, run_id)
    out.print(
        f"cluster run {run_id}: {len(st.genomes)} genomes submitted to Slurm (supervisor"
        f" {st.supervisor.split()[0]}); follow with `wgsvault status --run {run_id}`, stop with"
        f" `wgsvault cancel {run_id}`, restart with `wgsvault apply --resume {run_id}`",
        highlight=False,
    )
    if wait:
        _follow(run_id)


def _follow(run_id: int) -> None:
    import time as clock

    from wgsvault.apply import cluster

    cat = open_selected()
    while True:
        st = cluster.status(cat, run_id)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(st.counts().items()))
        err.print(f"run {run_id} {st.status}: {counts}", highlight=False)
        if st.status in ("done", "incomplete", "cancelled"):
            break
        clock.sleep(10)
    _print_run(st)
    if st.status != "done":
        raise typer.Exit(IntegrityError.exit_code)


#: genomes listed by `status --run` without --all: a national run has tens of thousands
RUN_ROWS = 200


def _print_run(st: Any, all_rows: bool = False) -> None:
    t = Table(title=f"Cluster run {st.run_id}: {st.status}", title_justify="left")
    for c in ("genome", "state", "attempts", "job", "slurm", "resources", "reason", "log"):
        t.add_column(c)
    # what needs a look first (gave up, failed, retrying, running), done genomes last
    order = {"gave up": 0, "failed": 1, "cancelled": 2, "retrying": 3, "skipped": 4,
             "running": 5, "pending": 6, "waiting": 7, "done": 8}  # fmt: skip
    shown = sorted(st.genomes, key=lambda g: (order.get(g.state, 0), g.genome))
    if not all_rows and len(shown) > RUN_ROWS:
        shown = shown[:RUN_ROWS]
    for g in shown:
        t.add_row(g.genome, g.state, str(g.attempts), g.job_id, g.slurm_state, g.resources,
                  g.reason, g.log)  # fmt: skip
    if len(shown) < len(st.genomes):
        t.add_row(f"... {len(st.genomes) - len(shown)} more (--all lists every genome)")
    eta = "-" if st.eta_seconds is None else f"{st.eta_seconds / 3600:.1f} h"
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(st.counts().items()))
    t.caption = (
        f"{counts}; {st.finished} finished in {st.seconds / 3600:.2f} h,"
        f" {st.per_hour:,.1f} genomes/h, time left {eta}; supervisor {st.supervisor or '-'}"
    )
    out.print(t)


def _apply_local(
    plan: Path, jobs: int, quarantine_days: int, genome: list[str] | None, actor: str | None
) -> None:
    from wgsvault.apply import apply_plan
    from wgsvault.apply.executors import LocalExecutor
    from wgsvault.codec.refs import Registry

    cat = open_selected()
    ex = LocalExecutor(jobs=max(1, jobs))
    with Progress(
        TextColumn("[bold]apply"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} genomes"),
        TextColumn("{task.fields[freed]} freed, {task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task("apply", total=None, freed="0 B", rate="")
        freed = [0]
        t0 = dt.datetime.now()

        def cb(res: GenomeResult, n: int, total: int) -> None:
            freed[0] += res.bytes_freed
            secs = max((dt.datetime.now() - t0).total_seconds(), 1e-6)
            bar.update(
                task,
                completed=n,
                total=total,
                freed=render.human(freed[0]),
                rate=f"{n / secs * 3600:,.0f} genomes/h",
            )

        s = apply_plan(
            cat,
            plan,
            registry=Registry(cat),
            actor=actor or audit.default_actor(),
            executor=ex,
            quarantine_days=quarantine_days,
            genomes=genome,
            progress=cb,
        )
    out.print(
        f"apply run {s.run_id}: {s.genomes} genomes, {s.done} actions done, "
        f"{len(s.failed)} failed, {len(s.skipped)} skipped, {s.blocked} blocked in the plan; "
        f"{render.human(s.bytes_freed)} freed into quarantine, "
        f"{render.human(s.bytes_written)} written, {s.seconds:.1f} s"
    )
    for g, holder in s.locked.items():
        out.print(f"  genome {g}: locked by {holder}; not touched", highlight=False)
    for aid, why in list(s.failed.items())[:20]:
        out.print(f"  failed {aid}: {why}", highlight=False)
    for aid, why in list(s.skipped.items())[:20]:
        out.print(f"  skipped {aid}: {why}", highlight=False)
    if s.failed:
        raise typer.Exit(IntegrityError.exit_code)


@app.command(rich_help_panel=APPLY)
def status(
    plan: Annotated[Path | None, typer.Argument(help="Only this plan")] = None,
    all_states: Annotated[
        bool, typer.Option("--all", help="Also list done actions (with --run: every genome)")
    ] = False,
    run_id: Annotated[
        int | None, typer.Option("--run", help="A cluster run: each genome, Slurm, time left")
    ] = None,
    runs: Annotated[bool, typer.Option("--runs", help="List the cluster runs")] = False,
) -> None:
    """Running, failed, skipped (and with --all done) actions with their reasons."""
    from wgsvault.apply import status as run
    from wgsvault.apply.approval import load_plan

    if run_id is not None or runs:
        from wgsvault.apply import cluster, cluster_status

        if runs:
            t = Table()
            for c in ("run", "status", "plan", "started", "finished"):
                t.add_column(c)
            for r in cluster_status.runs(open_selected()):
                t.add_row(str(r["run"]), r["status"], r["plan"], f"{r['started']:%Y-%m-%d %H:%M}",
                          f"{r['finished']:%Y-%m-%d %H:%M}" if r["finished"] else "")  # fmt: skip
            out.print(t)
        if run_id is not None:
            _print_run(cluster.status(open_selected(), run_id), all_rows=all_states)
        return

    loaded = load_plan(plan) if plan else None
    sha = loaded.sha256 if loaded else None
    t = Table()
    for c in ("state", "genome", "action", "plan", "reason"):
        t.add_column(c)
    for row in run(open_selected(), sha):
        if all_states or row["state"] != "done":
            t.add_row(
                row["state"], row["genome"] or "", row["action"], row["plan"][:12], row["reason"]
            )
    if loaded:  # blocked in the plan itself: never journaled, listed with their reason
        for a in loaded.actions:
            if a["status"] == "blocked":
                t.add_row("blocked", a["genome"] or "", a["id"], loaded.sha256[:12], a["reason"])
    out.print(t)


@app.command(rich_help_panel=APPLY)
def cancel(
    run_id: Annotated[int, typer.Argument(help="Cluster run")],
    actor: Annotated[str | None, typer.Option(help="Who cancels (default user@host)")] = None,
) -> None:
    """Cancel every job of a cluster run (`apply --resume RUN` restarts what is not done)."""
    from wgsvault.apply import cluster

    n = cluster.cancel(open_selected(), run_id, actor=actor or audit.default_actor())
    out.print(f"cluster run {run_id}: {n} jobs cancelled; `wgsvault apply --resume {run_id}`"
              " submits again what is not done")  # fmt: skip


@app.command(rich_help_panel=APPLY)
def purge(
    actor: Annotated[str | None, typer.Option(help="Who purges (default user@host)")] = None,
) -> None:
    """Delete quarantined originals whose quarantine period has expired (never earlier)."""
    from wgsvault.apply.quarantine import purge as run

    r = run(open_selected(), actor=actor or audit.default_actor())
    out.print(f"purged {r.purged} ({render.human(r.bytes)}); {r.kept} still in quarantine")
    for p in r.problems:
        out.print(f"  {p}", highlight=False)


@app.command(rich_help_panel=APPLY)
def undo(
    genome: Annotated[str, typer.Argument(help="Genome whose quarantined originals go back")],
    actor: Annotated[str | None, typer.Option(help="Who undoes (default user@host)")] = None,
) -> None:
    """Put a genome's quarantined originals back (before they are purged)."""
    from wgsvault.apply.quarantine import undo as run

    for p in run(open_selected(), genome, actor=actor or audit.default_actor()):
        out.print(f"restored {p}", highlight=False)
