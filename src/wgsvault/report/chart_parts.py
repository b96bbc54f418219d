"""What every governance chart shares (report/charts.py): the Vega-Lite version, the base spec
with its accessible description, and how report values (numbers, "<5", None) become marks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

VL_VERSION = "5.21"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.21.0.json"
NAMES = ("genomes", "quotas", "turnaround", "storage")
SUPPRESSED = "<5"
WIDTH = 520

# colour-blind safe pairs (ColorBrewer blues/oranges), readable on white and in greyscale
DARK, LIGHT, PALE = "#2b5c8a", "#8fb8de", "#d9d9d9"
ACCENT, TARGET = "#d9730d", "#b3261e"


def _number(value: Any) -> float | None:
    """The number a report value plots as: None for "<5", None and anything not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _label(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(value: Any) -> dict[str, Any]:
    """`value`, `label` and `suppressed` of one report value (see the module docstring)."""
    n = _number(value)
    return {"value": n or 0, "label": _label(value), "suppressed": value == SUPPRESSED}


def _base(description: str, title: str, subtitle: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"text": title, "anchor": "start", "offset": 14}
    if subtitle:
        t["subtitle"] = subtitle
    return {
        "$schema": SCHEMA,
        "description": description,
        "title": t,
        "config": {
            "view": {"stroke": None},
            "axis": {"labelFontSize": 12, "titleFontSize": 12, "labelLimit": 220},
            "legend": {
                "labelFontSize": 12,
                "titleFontSize": 12,
                "orient": "top",
                "symbolType": "square",
                "symbolOpacity": 1,
            },
            "title": {
                "fontSize": 15,
                "subtitleFontSize": 12,
                "subtitleColor": "#444",
                "offset": 12,
            },
        },
    }


def _any_suppressed(rows: Iterable[Mapping[str, Any]]) -> bool:
    return any(r.get("suppressed") for r in rows)


SUPPRESSION_NOTE = " Counts from 1 to 4 are suppressed: shown as <5, drawn as empty bars."


# --------------------------------------------------------------------------- genomes
