"""What every command-group module shares: the consoles, the catalog named by `--catalog`, and
progress bars. Command-group modules import this, never the root CLI module (main.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wgsvault.catalog import Catalog, open_catalog
from wgsvault.config import catalog_url

out = Console(soft_wrap=True)  # one record per line: long paths are not wrapped
err = Console(stderr=True, soft_wrap=True)  # errors stay one line
#: options of the root command (`--catalog`), set by its callback before any command runs
state: dict[str, str | None] = {"catalog": None}

#: help panels, in the order of the data flow (`wgsvault --help`)
INVENTORY, PLAN, APPLY, CODEC, ACCESS, VARIANTS, REPORTS, DEMO = (
    "inventory",
    "plan",
    "apply",
    "codec",
    "access",
    "variants",
    "reports",
    "demo",
)


def selected_catalog_url() -> str:
    """The catalog URL: `--catalog`, else $WGSVAULT_CATALOG, else SQLite in the vault home."""
    return catalog_url(state["catalog"])


def open_selected() -> Catalog:
    """The catalog the command runs on (migrated to this version on first use)."""
    return open_catalog(selected_catalog_url())


@contextmanager
def catalog_session() -> Iterator[Catalog]:
    """The catalog, closed after the command (its connections are not left to the collector)."""
    cat = open_selected()
    try:
        yield cat
    finally:
        cat.close()


def progress(enabled: bool) -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
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
