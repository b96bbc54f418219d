"""Command line of the audit log: verify, show.

Parsing and printing only; the work is in `wgsvault.audit`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from wgsvault.cli.common import APPLY, open_selected, out
from wgsvault.errors import IntegrityError

app = typer.Typer()
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit", rich_help_panel=APPLY)


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
