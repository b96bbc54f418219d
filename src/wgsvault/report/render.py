"""Presenting results: rich tables for people, CSV/JSON for machines, PNG charts for reports.

Sizes are shown in decimal units (GB, TB), as storage is sold and as the owners' figures are given.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from wgsvault.fsutil import atomic_write_bytes
from wgsvault.report.footprint import Footprint

if TYPE_CHECKING:
    from wgsvault.apply import ApplySummary

SCENARIO_FIGURES = {"A": 64.0, "B": 91.0, "C": 99.0}  # owners' % freed of the regional flow


def human(n: float) -> str:
    for unit, div in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{int(n)} B"


def dkk(x: float) -> str:
    return f"{x:,.0f} DKK"


def footprint_table(fp: Footprint) -> Table:
    """File types down, data controllers across: stays readable at 80 columns with many regions."""
    t = Table(title="Footprint by file type and data controller", title_justify="left")
    t.add_column("")
    for ctrl in fp.controllers:
        t.add_column(ctrl, justify="right")
    t.add_column("all", justify="right", style="bold")
    cells = {(c.controller, c.type): c.bytes for c in fp.cells}
    by_type = fp.bytes_by("type")
    for ty in fp.types:
        t.add_row(
            ty,
            *(human(cells.get((ctrl, ty), 0)) for ctrl in fp.controllers),
            human(by_type.get(ty, 0)),
        )
    by_ctrl = fp.bytes_by("controller")
    t.add_section()
    t.add_row(
        "total",
        *(human(by_ctrl[ctrl]) for ctrl in fp.controllers),
        human(fp.total_bytes),
        style="bold",
    )
    t.add_row(
        "genomes",
        *(str(fp.genomes_by_controller.get(c, 0)) for c in fp.controllers),
        str(fp.genomes),
    )
    t.add_row(
        "per genome",
        *(
            human(by_ctrl[c] / fp.genomes_by_controller[c])
            if fp.genomes_by_controller.get(c)
            else "-"
            for c in fp.controllers
        ),
        human(fp.mean_per_genome),
    )
    t.add_row(
        "cost/year",
        *(dkk(fp.cost_per_year(by_ctrl[c])) for c in fp.controllers),
        dkk(fp.cost_per_year(fp.total_bytes)),
    )
    proj = fp.mean_per_genome * fp.projection_genomes
    t.caption = (
        f"{fp.total_files:,} files; price {fp.price_dkk_per_tb_year:,.0f} DKK per TB-year; "
        f"projected to {fp.projection_genomes:,} genomes: {human(proj)}, "
        f"{dkk(fp.cost_per_year(round(proj)))} per year"
    )
    return t


def footprint_csv(fp: Footprint) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["controller", "kind", "type", "files", "bytes", "genomes", "cost_dkk_per_year"])
    for c in fp.cells:
        w.writerow(
            [
                c.controller,
                c.kind,
                c.type,
                c.files,
                c.bytes,
                c.genomes,
                f"{fp.cost_per_year(c.bytes):.2f}",
            ]
        )
    return out.getvalue()


def footprint_png(fp: Footprint, path: Path) -> None:
    """Stacked bars: bytes per controller, one colour per file type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {(c.controller, c.type): c.bytes / 1e12 for c in fp.cells}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(fp.controllers) + 2), 4.5))
    bottom = [0.0] * len(fp.controllers)
    for ftype in fp.types:
        vals = [cells.get((c, ftype), 0.0) for c in fp.controllers]
        ax.bar(fp.controllers, vals, bottom=bottom, label=ftype)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("TB")
    ax.set_title(f"Footprint: {human(fp.total_bytes)} for {fp.genomes} genomes")
    ax.legend(title="file type", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


#: what each check a plan leaves to apply does, as the plan table names it
CHECKS = {
    "callable": "callable regions stored before a gVCF goes",
    "sha256": "identical copy (sha256)",
    "verify-covers": "FASTQ covered by the aligned CRAM",
}


def plan_table(plan: dict[str, Any]) -> Table:
    s = plan["summary"]
    t = Table(
        title=f"Plan {plan['policy']['name']}: {plan['policy']['description'].split('.')[0]}",
        title_justify="left",
    )
    for col in ("controller", "before", "after", "freed", "freed %", "saved/year"):
        t.add_column(col, justify="left" if col == "controller" else "right")
    for name, c in s["by_controller"].items():
        t.add_row(
            name,
            human(c["bytes_before"]),
            human(c["bytes_after"]),
            human(c["bytes_freed"]),
            f"{c['pct_freed']:.1f} %",
            dkk(c["cost_dkk_per_year_saved"]),
        )
    t.add_section()
    for label, c in (("all regions", s["regions"]), ("total", s)):
        t.add_row(
            label,
            human(c["bytes_before"]),
            human(c["bytes_after"]),
            human(c["bytes_freed"]),
            f"{c['pct_freed']:.1f} %",
            dkk(c["cost_dkk_per_year_saved"]),
            style="bold",
        )
    acts = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in s["actions"].items()) or "none"
    t.caption = f"actions: {acts}; blocked would free {human(s['blocked_bytes'])}"
    checks: dict[str, int] = {}
    for a in plan["actions"]:
        if a["status"] == "ready":
            for c in a["preconditions"]:
                if c["status"] == "verify":
                    checks[c["check"]] = checks.get(c["check"], 0) + 1
    if checks:
        shown = ", ".join(f"{CHECKS.get(k, k)}: {n}" for k, n in sorted(checks.items()))
        t.caption += f"\napply proves first: {shown}"
    return t


def blocked_table(plan: dict[str, Any], limit: int = 20) -> Table | None:
    blocked = [a for a in plan["actions"] if a["status"] == "blocked"]
    if not blocked:
        return None
    t = Table(title=f"Blocked actions ({len(blocked)})", title_justify="left")
    for col in ("id", "controller", "genome", "type", "action", "reason"):
        t.add_column(col)
    for a in blocked[:limit]:
        t.add_row(
            a["id"], a["controller"] or "-", a["genome"] or "-", a["type"], a["action"], a["reason"]
        )
    if len(blocked) > limit:
        t.caption = f"... and {len(blocked) - limit} more in the plan file"
    return t


def scenario_table(plans: dict[str, dict[str, Any]]) -> Table:
    t = Table(
        title="Scenarios on this estate vs the owners' figures (regional production flow)",
        title_justify="left",
    )
    for col in (
        "plan",
        "regions freed",
        "%",
        "owners",
        "total freed",
        "%",
        "saved DKK/yr",
        "blocked",
    ):
        t.add_column(col, justify="left" if col == "plan" else "right")
    for name, plan in plans.items():
        s = plan["summary"]
        t.add_row(
            name,
            human(s["regions"]["bytes_freed"]),
            f"{s['regions']['pct_freed']:.1f} %",
            f"{SCENARIO_FIGURES.get(name, float('nan')):.0f} %",
            human(s["bytes_freed"]),
            f"{s['pct_freed']:.1f} %",
            f"{s['cost_dkk_per_year_saved']:,.0f}",
            str(sum(v for k, v in s["actions"].items() if k.endswith("blocked"))),
        )
    return t


def apply_table(s: ApplySummary) -> Table:
    """Outcome of an apply run, failures grouped by reason."""
    t = Table(title=f"Apply run {s.run_id}: {s.genomes} genomes", title_justify="left")
    t.add_column("outcome")
    t.add_column("actions", justify="right")
    t.add_column("detail")
    t.add_row("done", str(s.done), f"{human(s.bytes_freed)} moved to quarantine (freed at purge)")
    reasons: dict[str, int] = {}
    for why in s.failed.values():
        key = why.split(": ", 1)[-1][:70]
        reasons[key] = reasons.get(key, 0) + 1
    for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        t.add_row("failed (kept)", str(n), why)
    if s.skipped:
        t.add_row("skipped (changed)", str(len(s.skipped)), "")
    if s.blocked:
        t.add_row("blocked in plan", str(s.blocked), "")
    for g, holder in s.locked.items():
        t.add_row("locked", "", f"{g} by {holder}")
    t.caption = f"{human(s.bytes_written)} written; {s.seconds:.1f} s"
    return t
