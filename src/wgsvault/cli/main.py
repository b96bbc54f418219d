"""The `wgsvault` command: the root of the command line, and its error handling.

The commands live in one module per stage (inventory, plan, apply, codec, access, variants,
reports, demo), each a typer app whose commands are merged here in the order of the data flow,
so that `wgsvault --help` lists them in panels by stage. Those modules share `common.py`, never
this one.

Every error a user can cause is a VaultError: printed as one line `wgsvault: error: ...` on stderr
with the error's exit code (see errors.py). Progress bars go to stderr and only to a terminal.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from wgsvault.cli import (
    access,
    apply,
    audit,
    codec,
    demo,
    inventory,
    plan,
    report,
    serve,
    variants,
)
from wgsvault.cli.common import err, state
from wgsvault.errors import VaultError

app = typer.Typer(
    help="wgsvault: inventory, minimise, convert losslessly and serve a national genome store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for group in (inventory, plan, apply, audit, codec, access, serve, variants, report, demo):
    app.add_typer(group.app)


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
    state["catalog"] = catalog


def main() -> None:
    try:
        app()
    except VaultError as exc:
        err.print(f"wgsvault: error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("wgsvault: interrupted")
        sys.exit(130)
