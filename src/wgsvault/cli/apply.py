"""Command line of the main job: approve, apply, status, purge, undo, audit.

Parsing and printing only; the work is in `wgsvault.apply` and `wgsvault.audit`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from wgsvault import audit
from wgsvault.apply.runner import GenomeResult
from wgsvault.cli.common import APPLY, err, open_selected, out
from wgsvault.config import vault_home
from wgsvault.errors import IntegrityError
from wgsvault.report import render

app = typer.Typer()
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit", rich_help_panel=APPLY)


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


@app.command(rich_help_panel=APPLY)
def apply(
    plan: Annotated[Path, typer.Argument(help="Approved plan JSON")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Genomes in parallel")] = 1,
    executor: Annotated[str, typer.Option(help="local or slurm")] = "local",
    cluster: Annotated[
        str | None, typer.Option(help="submitit cluster for --executor slurm (slurm/local/debug)")
    ] = None,
    quarantine_days: Annotated[int, typer.Option(help="Days before purge may delete")] = 30,
    genome: Annotated[list[str] | None, typer.Option(help="Only these genomes")] = None,
    actor: Annotated[str | None, typer.Option(help="Who runs it (default user@host)")] = None,
) -> None:
    """Apply an approved plan: convert, prove, register, quarantine; resumable after any stop."""
    from wgsvault.apply import apply_plan
    from wgsvault.apply.executors import make_executor
    from wgsvault.codec.refs import Registry

    cat = open_selected()
    ex = make_executor(executor, jobs=jobs, home=vault_home(), cluster=cluster)
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
    all_states: Annotated[bool, typer.Option("--all", help="Also list done actions")] = False,
) -> None:
    """Running, failed, skipped (and with --all done) actions with their reasons."""
    from wgsvault.apply import status as run
    from wgsvault.apply.approval import load_plan

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


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH printed by an earlier verify and kept outside the database"),
    ] = None,
) -> None:
    """Check the hash chain: any edited, removed or reordered entry is reported.

    Keep the printed head (SEQ:HASH) outside the database (a signed report, another system);
    passing it back with --anchor also detects a rewrite of the log's tail together with its head.
    """
    from wgsvault import audit

    pinned = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise typer.BadParameter("--anchor takes SEQ:HASH as printed by audit verify")
        pinned = (int(seq), digest)
    check = audit.verify(open_selected(), anchor=pinned)
    if check.ok:
        out.print(
            f"audit log intact: {check.entries:,} entries; head {check.head_seq}:{check.head_hash}"
        )
        return
    for p in check.problems:
        out.print(f"audit: {p}", highlight=False)
    raise typer.Exit(IntegrityError.exit_code)


@audit_app.command("show")
def audit_show(
    genome: Annotated[str | None, typer.Option(help="Only this genome")] = None,
    controller: Annotated[str | None, typer.Option(help="Only this controller")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event")] = None,
    since: Annotated[str | None, typer.Option(help="From this date (YYYY-MM-DD)")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date (YYYY-MM-DD)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many")] = None,
) -> None:
    """Show audit entries, filtered by genome, controller, event and date."""
    from wgsvault import audit

    def day(s: str | None) -> dt.datetime | None:
        return dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC) if s else None

    rows = audit.show(
        open_selected(),
        genome=genome,
        controller=controller,
        event=event,
        since=day(since),
        until=day(until),
        limit=limit,
    )
    if as_json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return
    t = Table()
    for c in ("seq", "at", "actor", "event", "genome", "controller", "detail"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            str(r["seq"]),
            r["at"][:19],
            r["actor"],
            r["event"],
            r["genome"] or "",
            r["controller"] or "",
            json.dumps(r["detail"], sort_keys=True)[:120],
        )
    out.print(t)
