"""Commands of the plan stage: plan.

Parsing and printing only; the work is in `wgsvault.plan`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from wgsvault.cli.common import PLAN, open_selected, out
from wgsvault.config import site_config
from wgsvault.report import render

app = typer.Typer()


@app.command(rich_help_panel=PLAN)
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
    from wgsvault.plan.planner import make_plan, write_plan
    from wgsvault.plan.policy import load_policy

    pol = load_policy(policy)
    price = price or site_config().price_dkk_per_tb_year
    result = make_plan(open_selected(), pol, price=price, controllers=controller)
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
        out.print(f"plan: {out_path} ({len(result['actions'])} actions)")
