"""`wgsvault serve`: the web service (`wgsvault.serve`) under uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from wgsvault.cli.common import ACCESS, out, selected_catalog_url
from wgsvault.config import vault_home

app = typer.Typer()


@app.command(rich_help_panel=ACCESS)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    base_url: Annotated[
        str | None,
        typer.Option(help="URL clients use to reach this server (default from host/port)"),
    ] = None,
    block_ttl: Annotated[int, typer.Option(help="Seconds a signed block URL stays valid")] = 900,
    processes: Annotated[
        int, typer.Option(help="Server processes sharing the port (default: one per core)")
    ] = 0,
    targets: Annotated[
        Path | None, typer.Option(help="The dashboard's targets TOML (default: the shipped file)")
    ] = None,
    variants: Annotated[
        Path | None,
        typer.Option(
            help="The Beacon's frequency database (default: $WGSVAULT_VARIANTS, else"
            " <home>/variants)"
        ),
    ] = None,
    beacon_anonymous: Annotated[
        bool, typer.Option(help="Answer Beacon queries without a token (boolean answers only)")
    ] = False,
    beacon_budget: Annotated[
        int, typer.Option(help="Beacon queries per principal per window (429 when spent)")
    ] = 1000,
    beacon_live: Annotated[
        bool,
        typer.Option(
            help="Answer from the live frequency database, not its newest release"
            " (only where nobody outside can query: answers around one add differ by"
            " one person)"
        ),
    ] = False,
    beacon_window: Annotated[
        int, typer.Option(help="The Beacon budget's window in seconds (default: a day)")
    ] = 86_400,
) -> None:
    """Serve GA4GH htsget (reads, variants) with bearer-token grants and an audited log, and
    the steering group's dashboard (/dashboard)."""
    from wgsvault.serve import Settings
    from wgsvault.serve.beacon_settings import BeaconSettings
    from wgsvault.serve.run import serve as serve_forever
    from wgsvault.variants.state import default_store

    if beacon_budget < 0 or beacon_window < 1:
        raise typer.BadParameter("the Beacon budget must be >= 0 and its window >= 1 second")

    settings = Settings(
        catalog_url=selected_catalog_url(),
        home=vault_home(),
        base_url=(base_url or f"http://{host}:{port}").rstrip("/"),
        block_ttl=block_ttl,
        targets=targets,
        beacon=BeaconSettings(
            anonymous=beacon_anonymous,
            budget=beacon_budget,
            window=beacon_window,
            live=beacon_live,
            variants=variants or default_store(),
        ),
    )
    if targets is not None:
        from wgsvault.report.targets import load_targets

        load_targets(targets)  # a bad file stops here, with its line, not at the first view
    out.print(f"htsget on {settings.base_url}/reads/{{id}} and /variants/{{id}}")
    out.print(
        f"Beacon v2 on {settings.base_url}/api/beacon (g_variants: tokens only"
        + (", anonymous booleans" if beacon_anonymous else "")
        + ")"
    )
    out.print(f"dashboard on {settings.base_url}/dashboard (principals with role reporting/admin)")
    serve_forever(settings, host, port, processes or os.cpu_count() or 1)
