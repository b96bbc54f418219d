"""The demo command.

Parsing and printing only; the work is in `wgsvault.demo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wgsvault.cli.common import DEMO, out, state

app = typer.Typer()


@app.command(rich_help_panel=DEMO)
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Demo home (default: $WGSVAULT_HOME/demo)")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild the demo estate")] = False,
) -> None:
    """Build a demo estate, scan it, show footprint and plans A, B, C, then apply plan B.

    The catalog is a SQLite file in the demo home unless --catalog names another one.
    """
    from wgsvault.demo.estate import run_demo

    run_demo(directory, fresh=fresh, console=out, catalog_url=state["catalog"])
