"""Commands of the reports: footprint.

Parsing and printing only; the work is in `wgsvault.report`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from wgsvault.cli.common import REPORTS, open_selected, out
from wgsvault.config import site_config
from wgsvault.report import render

app = typer.Typer()


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
