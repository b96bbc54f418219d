"""Commands of the reports: footprint, and the steering group's genomes, quotas, turnaround,
storage.

Parsing and printing only; the work is in `wgsvault.report`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wgsvault.cli.common import REPORTS, open_selected, out
from wgsvault.config import site_config
from wgsvault.report import render

app = typer.Typer()
#: `wgsvault report ...`: the steering group's reports
report_app = typer.Typer(
    help="The steering group's reports: genomes, quotas, turnaround, storage, monthly PDF.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report", rich_help_panel=REPORTS)


@app.command(rich_help_panel=REPORTS)
def footprint(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
    png: Annotated[Path | None, typer.Option("--png", help="Write a stacked bar chart")] = None,
    price: Annotated[float | None, typer.Option(help="DKK per TB-year")] = None,
    genomes: Annotated[int | None, typer.Option(help="Project to this many genomes")] = None,
) -> None:
    """Totals and mean per genome by file type and controller, cost per year, projection."""
    from wgsvault.report.footprint import footprint as compute

    site = site_config()
    fp = compute(
        open_selected(),
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


AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print the report's table as CSV")]
Png = Annotated[Path | None, typer.Option("--png", help="Write the report's chart as PNG")]
TargetsFile = Annotated[
    Path | None, typer.Option("--targets", help="Targets TOML (default: the shipped file)")
]
Group = Annotated[str | None, typer.Option("--patient-group", help="Only this patient group")]
Region = Annotated[str | None, typer.Option("--region", help="Only this requisitioning region")]
Year = Annotated[int | None, typer.Option("--year", help="Year (default: this year)")]
Suppressed = Annotated[
    bool,
    typer.Option(
        "--suppressed", help="Show counts of 1-4 as <5, as readers outside the vault see them"
    ),
]


def _show(
    name: str, report: dict[str, Any], title: str, as_json: bool, as_csv: bool, png: Path | None
) -> None:
    from wgsvault.report import figures

    if png:
        from wgsvault.report import charts

        charts.png(charts.spec(name, report), png)
    if as_json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
    elif as_csv:
        sys.stdout.write(figures.to_csv(name, report))
    else:
        out.print(figures.to_table(name, report, title))
        if png:
            out.print(f"chart: {png}")


@report_app.command("genomes")
def report_genomes(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month)")] = None,
    patient_group: Group = None,
    region: Region = None,
    targets: TargetsFile = None,
    suppressed: Suppressed = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    png: Png = None,
) -> None:
    """Genomes sequenced in a month, the year to date and all time, per group and region."""
    from wgsvault.report.governance import genomes
    from wgsvault.report.targets import load_targets

    r = genomes(
        open_selected(),
        targets=load_targets(targets),
        month=month,
        exact=not suppressed,
        patient_group=patient_group,
        region=region,
    )
    _show("genomes", r, f"Genomes sequenced, {r['month']}", as_json, as_csv, png)


@report_app.command("quotas")
def report_quotas(
    year: Year = None,
    region: Region = None,
    targets: TargetsFile = None,
    suppressed: Suppressed = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    png: Png = None,
) -> None:
    """Per patient group: delivered against the yearly quota, fulfilment and forecast."""
    from wgsvault.report.governance import quotas
    from wgsvault.report.targets import load_targets

    r = quotas(
        open_selected(),
        targets=load_targets(targets),
        year=year,
        exact=not suppressed,
        region=region,
    )
    _show("quotas", r, f"Quotas {r['year']}, as of {r['as_of']}", as_json, as_csv, png)


@report_app.command("turnaround")
def report_turnaround(
    year: Year = None,
    patient_group: Group = None,
    region: Region = None,
    targets: TargetsFile = None,
    suppressed: Suppressed = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    png: Png = None,
) -> None:
    """Days from requisition to delivery and report per urgency and group; open cases."""
    from wgsvault.report.governance import turnaround
    from wgsvault.report.targets import load_targets

    r = turnaround(
        open_selected(),
        targets=load_targets(targets),
        year=year,
        exact=not suppressed,
        patient_group=patient_group,
        region=region,
    )
    _show("turnaround", r, f"Turnaround {r['year']}, as of {r['as_of']}", as_json, as_csv, png)


@report_app.command("storage")
def report_storage(
    price: Annotated[float | None, typer.Option(help="DKK per TB-year")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    png: Png = None,
) -> None:
    """Footprint per controller and type, its history, bytes freed against promised, cost."""
    from wgsvault.report.governance import storage

    r = storage(open_selected(), price=price or site_config().price_dkk_per_tb_year)
    title = f"Storage: {r['total_bytes'] / 1e12:,.2f} TB, {r['cost_per_year_dkk']:,} DKK a year"
    _show("storage", r, title, as_json, as_csv, png)


@report_app.command("monthly")
def report_monthly(
    month: Annotated[str, typer.Option(help="The month reported, YYYY-MM")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PDF to write")],
    targets: TargetsFile = None,
    price: Annotated[float | None, typer.Option(help="DKK per TB-year")] = None,
) -> None:
    """The steering group's monthly PDF: key figures, text, tables and charts (counts 1-4 <5)."""
    from wgsvault.cli.common import catalog_session
    from wgsvault.report.monthly import monthly, write_pdf

    with catalog_session() as cat:
        m = monthly(
            cat, month=month, price=price or site_config().price_dkk_per_tb_year, targets=targets
        )
    write_pdf(m, output)
    out.print(f"monthly report {m.title} (figures as of {m.as_of}): {output}", highlight=False)
