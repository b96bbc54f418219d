"""The governance reports as flat tables: one header and rows per report, for the CLI's rich
tables and CSV, and the dashboard's tables (which must show what the JSON report says)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from rich.table import Table

from wgsvault.report.suppress import SUPPRESSED

Rows = tuple[list[str], list[list[Any]]]
THREE = ("month", "year_to_date", "all_time")


def rows(name: str, report: dict[str, Any]) -> Rows:
    """(header, rows) of report `name` (genomes, quotas, turnaround, storage)."""
    if name == "genomes":
        out: list[list[Any]] = [["total", "all", *(report["total"][k] for k in THREE), "", "", ""]]
        for g, c in report["by_patient_group"].items():
            out.append(["patient group", g, *(c[k] for k in THREE), "", "", ""])
        for r, c in report["by_region"].items():
            rate = c.get("per_100k") or {}
            out.append(["region", r, *(c[k] for k in THREE), *(rate.get(k, "") for k in THREE)])
        head = ["scope", "name", *THREE, *(f"{k}_per_100k" for k in THREE)]
        return head, out
    if name == "quotas":
        head = [
            "patient_group",
            "unit",
            "quota",
            "backlog",
            "delivered",
            "expected",
            "fulfilment_pct",
            "forecast",
        ]
        return head, [[g[k] for k in head] for g in report["groups"]]
    if name == "turnaround":
        head = [
            "urgency",
            "patient_group",
            "target_days",
            "cases",
            "reported",
            "median_days",
            "p90_days",
            "delivery_median_days",
            "delivery_p90_days",
            "within_target_pct",
            "open",
            "open_past_target",
            "oldest_open_days",
        ]
        return head, [[r[k] for k in head] for r in report["rows"]]
    if name == "storage":
        head = ["controller", "type", "files", "bytes"]
        return head, [[r[k] for k in head] for r in report["current"]]
    raise ValueError(f"no report {name!r}")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def to_csv(name: str, report: dict[str, Any]) -> str:
    head, body = rows(name, report)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows([["" if v is None else v for v in r] for r in body])
    return buf.getvalue()


def to_table(name: str, report: dict[str, Any], title: str) -> Table:
    head, body = rows(name, report)
    table = Table(title=title)
    for h in head:
        numeric = h not in (
            "scope",
            "name",
            "patient_group",
            "unit",
            "urgency",
            "controller",
            "type",
        )
        table.add_column(h.replace("_", " "), justify="right" if numeric else "left")
    for r in body:
        table.add_row(*(_cell(v) for v in r))
    return table


def numeric(value: Any) -> bool:
    """Whether a table cell holds a figure (a number, or a suppressed count): right-aligned."""
    return (isinstance(value, int | float) and not isinstance(value, bool)) or value == SUPPRESSED


def environment(templates: Path, cell: Callable[[Any], str]) -> jinja2.Environment:
    """The Jinja2 environment of the report pages and documents: autoescaped, strict, with the
    `cell` and `heading` filters and the `numeric` test the table templates use."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    env.filters["heading"] = lambda h: str(h).replace("_", " ")
    env.tests["numeric"] = numeric
    return env
