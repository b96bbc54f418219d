"""Command line: parses arguments, calls the library, prints. No logic of its own.

Every error a user can cause is a VaultError: printed as one line `wgsvault: error: ...` on stderr
with the error's exit code (see errors.py). Progress bars go to stderr and only to a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wgsvault import render
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.config import catalog_url, site_config
from wgsvault.errors import VaultError

app = typer.Typer(
    help="wgsvault: inventory, minimise, convert losslessly and serve a national genome store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
genomes_app = typer.Typer(help="Genomes and their clinical context.", no_args_is_help=True)
catalog_app = typer.Typer(help="The catalog database.", no_args_is_help=True)
app.add_typer(genomes_app, name="genomes")
app.add_typer(catalog_app, name="catalog")

out = Console(soft_wrap=True)  # one record per line: long paths are not wrapped
err = Console(stderr=True, soft_wrap=True)  # errors stay one line
_state: dict[str, str | None] = {"catalog": None}


@app.callback()
def _main(
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog",
            help="Catalog URL (default: $WGSVAULT_CATALOG, else SQLite in $WGSVAULT_HOME)",
            show_default=False,
        ),
    ] = None,
) -> None:
    _state["catalog"] = catalog


def _catalog() -> Catalog:
    return open_catalog(catalog_url(_state["catalog"]))


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled or not err.is_terminal,
        transient=True,
    )


@app.command()
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
    from wgsvault.layout import load_layout
    from wgsvault.scan import scan as run_scan

    lay = load_layout(layout)
    cat = _catalog()
    with _progress(not quiet) as prog:
        tasks: dict[str, int] = {}

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


@app.command()
def issues(
    kind: Annotated[str | None, typer.Option(help="Only issues of this kind")] = None,
    scan_id: Annotated[int | None, typer.Option("--scan", help="Scan id (default: latest)")] = None,
) -> None:
    """List what the latest scan could not account for (unreadable, broken links, unknown...)."""
    from sqlalchemy import func, select

    from wgsvault.catalog.models import ScanIssue

    cat = _catalog()
    with cat.session() as s:
        sid = scan_id or s.scalar(select(func.max(ScanIssue.scan_id)))
        stmt = select(ScanIssue).where(ScanIssue.scan_id == sid)
        if kind:
            stmt = stmt.where(ScanIssue.kind == kind)
        for issue in s.scalars(stmt.order_by(ScanIssue.id)):
            out.print(f"{issue.kind}\t{issue.path}\t{issue.detail}", highlight=False)


@app.command()
def footprint(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Write a stacked bar chart")] = None,
    price: Annotated[float | None, typer.Option(help="DKK per TB-year")] = None,
    genomes: Annotated[int | None, typer.Option(help="Project to this many genomes")] = None,
) -> None:
    """Totals and mean per genome by file type and controller, cost per year, projection."""
    from wgsvault.footprint import footprint as compute

    site = site_config()
    fp = compute(
        _catalog(),
        price=price or site.price_dkk_per_tb_year,
        projection=genomes or site.projection_genomes,
    )
    if png:
        render.footprint_png(fp, png)
    if as_json:
        print(json.dumps(fp.to_dict(), indent=1))
    elif as_csv:
        sys.stdout.write(render.footprint_csv(fp))
    else:
        out.print(render.footprint_table(fp))
        if png:
            out.print(f"chart: {png}")


@app.command()
def plan(
    policy: Annotated[str, typer.Option(help="Preset A, B, C or a policy TOML file")],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the plan JSON")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    controller: Annotated[
        list[str] | None, typer.Option(help="Plan only these controllers")
    ] = None,
    price: Annotated[float | None, typer.Option(help="DKK per TB-year")] = None,
) -> None:
    """Plan a minimisation policy over the catalog (changes no file)."""
    from wgsvault.plan import make_plan, write_plan
    from wgsvault.policy import load_policy

    pol = load_policy(policy)
    result = make_plan(
        _catalog(), pol, price=price or site_config().price_dkk_per_tb_year, controllers=controller
    )
    if out_path:
        write_plan(result, out_path)
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "actions"}, indent=1))
        return
    out.print(render.plan_table(result))
    blocked = render.blocked_table(result)
    if blocked is not None:
        out.print(blocked)
    if out_path:
        out.print(f"plan: {out_path} ({len(result['actions'])} actions)")  # type: ignore[arg-type]


@genomes_app.command("import")
def genomes_import(manifest: Annotated[Path, typer.Argument(help="CSV manifest")]) -> None:
    """Import clinical context (patient group, indication, ...) from a CSV manifest."""
    from wgsvault.catalog.manifest import ManifestError, import_manifest

    try:
        res = import_manifest(_catalog(), manifest)
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
    with _catalog().session() as s:
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
    cat = open_catalog(catalog_url(_state["catalog"]), migrate=False)
    applied = cat.upgrade()
    out.print(f"catalog at revision {cat.revision()}" + (" (upgraded)" if applied else ""))


@catalog_app.command("info")
def catalog_info() -> None:
    """Show the catalog URL, backend and schema revision."""
    cat = _catalog()
    out.print(
        f"{cat.engine.url.render_as_string(hide_password=True)}\n"
        f"backend {cat.backend}, revision {cat.revision()}"
    )


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Demo home (default: $WGSVAULT_HOME/demo)")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild the demo estate")] = False,
) -> None:
    """Build a demo estate, scan it, show footprint and plans A, B, C, then apply plan B.

    The catalog is a SQLite file in the demo home unless --catalog names another one.
    """
    from wgsvault.demo import run_demo

    run_demo(directory, fresh=fresh, console=out, catalog_url=_state["catalog"])


def main() -> None:
    try:
        app()
    except VaultError as exc:
        err.print(f"wgsvault: error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("wgsvault: interrupted")
        sys.exit(130)


# the codec (ref, convert, verify, verify-covers, restore) and main-job (approve, apply, status,
# purge, undo, audit) commands register themselves on `app`
from wgsvault import cli_access, cli_apply, cli_codec, cli_serve  # noqa: E402,F401,I001
