"""Commands of the inventory stage: scan, issues, genomes, catalog.

Parsing and printing only; the work is in `wgsvault.inventory` and `wgsvault.catalog`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID
from rich.table import Table

from wgsvault.catalog import open_catalog
from wgsvault.cli.common import (
    INVENTORY,
    err,
    open_selected,
    out,
    progress,
    selected_catalog_url,
)
from wgsvault.report import render

app = typer.Typer()
genomes_app = typer.Typer(help="Genomes and their clinical context.", no_args_is_help=True)
catalog_app = typer.Typer(help="The catalog database.", no_args_is_help=True)


@app.command(rich_help_panel=INVENTORY)
def scan(
    roots: Annotated[list[Path], typer.Argument(help="Storage roots to walk")],
    layout: Annotated[Path | None, typer.Option(help="Layout rules (TOML)")] = None,
    digest: Annotated[
        bool, typer.Option("--digest", help="Compute sha256 of new/changed files")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Walker processes (default: cores)")
    ] = 0,
    show_issues: Annotated[int, typer.Option(help="Print up to N issues")] = 20,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Walk storage roots, classify every file and update the catalog (incrementally)."""
    from wgsvault.inventory.layout import load_layout
    from wgsvault.inventory.scan import scan as run_scan

    lay = load_layout(layout)
    cat = open_selected()
    with progress(not quiet) as prog:
        tasks: dict[str, TaskID] = {}

        def cb(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = prog.add_task(phase, total=total, extra="")
            prog.update(tasks[phase], completed=done, total=total)

        res = run_scan(
            cat, [str(r) for r in roots], lay, jobs=jobs or None, digest=digest, progress=cb
        )
    if quiet:
        return
    out.print(
        f"scan {res.scan_id}: {res.files_seen:,} files, {render.human(res.bytes_seen)} in "
        f"{res.seconds:.1f} s ({res.files_seen / max(res.seconds, 1e-9):,.0f} files/s); "
        f"added {res.added:,}, changed {res.changed:,}, vanished {res.vanished:,}"
        + (f"; digested {res.digested:,} ({render.human(res.digest_bytes)})" if digest else "")
    )
    if res.issues:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(res.issue_counts().items()))
        out.print(f"issues: {counts}")
        for issue in res.issues[:show_issues]:
            out.print(f"  {issue.kind}: {issue.path} {issue.detail}", highlight=False)
        if len(res.issues) > show_issues:
            out.print(f"  ... {len(res.issues) - show_issues} more: wgsvault issues")


@app.command(rich_help_panel=INVENTORY)
def issues(
    kind: Annotated[str | None, typer.Option(help="Only issues of this kind")] = None,
    scan_id: Annotated[int | None, typer.Option("--scan", help="Scan id (default: latest)")] = None,
) -> None:
    """List what the latest scan could not account for (unreadable, broken links, unknown...)."""
    from sqlalchemy import func, select

    from wgsvault.catalog.models import ScanIssue

    cat = open_selected()
    with cat.session() as s:
        sid = scan_id or s.scalar(select(func.max(ScanIssue.scan_id)))
        stmt = select(ScanIssue).where(ScanIssue.scan_id == sid)
        if kind:
            stmt = stmt.where(ScanIssue.kind == kind)
        for issue in s.scalars(stmt.order_by(ScanIssue.id)):
            out.print(f"{issue.kind}\t{issue.path}\t{issue.detail}", highlight=False)


@genomes_app.command("import")
def genomes_import(manifest: Annotated[Path, typer.Argument(help="CSV manifest")]) -> None:
    """Import clinical context (patient group, indication, ...) from a CSV manifest."""
    from wgsvault.catalog.manifest import ManifestError, import_manifest

    try:
        res = import_manifest(open_selected(), manifest)
    except ManifestError as exc:
        for line in exc.errors:
            err.print(f"wgsvault: error: {line}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    out.print(f"{manifest}: {res.added} genomes added, {res.updated} updated")


@genomes_app.command("list")
def genomes_list(
    patient_group: Annotated[str | None, typer.Option(help="Only this patient group")] = None,
) -> None:
    """List genomes with their clinical context."""
    from sqlalchemy import select

    from wgsvault.catalog.models import Genome

    t = Table()
    for col in ("genome", "patient group", "indication", "requisition region", "sequenced"):
        t.add_column(col)
    with open_selected().session() as s:
        stmt = select(Genome).order_by(Genome.name)
        if patient_group:
            stmt = stmt.where(Genome.patient_group == patient_group)
        for g in s.scalars(stmt):
            t.add_row(
                g.name,
                g.patient_group or "",
                g.indication or "",
                g.requisition_region or "",
                str(g.sequencing_date or ""),
            )
    out.print(t)


@catalog_app.command("upgrade")
def catalog_upgrade() -> None:
    """Migrate the catalog schema to this version of wgsvault."""
    cat = open_catalog(selected_catalog_url(), migrate=False)
    applied = cat.upgrade()
    out.print(f"catalog at revision {cat.revision()}" + (" (upgraded)" if applied else ""))


@catalog_app.command("info")
def catalog_info() -> None:
    """Show the catalog URL, backend and schema revision."""
    cat = open_selected()
    out.print(
        f"{cat.engine.url.render_as_string(hide_password=True)}\n"
        f"backend {cat.backend}, revision {cat.revision()}"
    )


app.add_typer(genomes_app, name="genomes", rich_help_panel=INVENTORY)
app.add_typer(catalog_app, name="catalog", rich_help_panel=INVENTORY)
