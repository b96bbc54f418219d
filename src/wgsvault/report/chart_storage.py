"""Vega-Lite spec of the storage report: bytes stored over time per controller and file type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wgsvault.report.chart_parts import (
    DARK,
    LIGHT,
    WIDTH,
    _base,
    _label,
)

UNITS = (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))


def _unit(peak: float) -> tuple[str, float]:
    """The decimal unit the largest figure reads best in (storage is sold in TB, not TiB)."""
    return next(((u, d) for u, d in UNITS if peak >= d), ("B", 1.0))


def _storage(report: Mapping[str, Any]) -> dict[str, Any]:
    as_of = str(report.get("as_of") or "")
    history = list(report.get("history") or [])
    if not history:  # no scan history yet: today's footprint is the one point there is
        history = [{"at": as_of, **c} for c in report.get("current") or []]
    totals: dict[str, float] = {}
    for h in history:
        totals[h["at"]] = totals.get(h["at"], 0) + float(h.get("bytes") or 0)
    unit, div = _unit(max(totals.values(), default=0.0))
    rows = [
        {
            "at": h["at"],
            "controller": h.get("controller"),
            "type": h.get("type"),
            "value": round(float(h.get("bytes") or 0) / div, 3),
        }
        for h in history
    ]
    applied = [
        {
            "run": f"run {a.get('run')}",
            "what": what,
            "value": round(float(a.get(key) or 0) / div, 3),
        }
        for a in report.get("applied") or []
        for what, key in (("promised", "promised_bytes"), ("freed", "freed_bytes"))
    ]
    cost, per_genome = report.get("cost_per_year_dkk"), report.get("cost_per_genome_dkk")
    price = report.get("price_dkk_per_tb_year")
    latest = totals[max(totals)] / div if totals else 0.0
    subtitle = (
        f"{latest:,.1f} {unit} stored on {as_of}; {_label(cost)} DKK a year"
        f" ({_label(per_genome)} DKK per genome) at {_label(price)} DKK per TB-year"
    )
    dates = len(totals)
    description = (
        f"Stacked {'area' if dates > 2 else 'bar'} charts of bytes stored over time, by data"
        f" controller and by file type, from {dates} scan(s). {subtitle}."
        + (
            f" A bar chart compares the bytes {len(applied) // 2} applied plan run(s) freed with"
            " what the plans promised."
            if applied
            else ""
        )
    )
    if not rows:  # nothing catalogued yet: a sized chart that says so, not an empty scale
        return {
            **_base(description, "Storage", subtitle),
            "width": WIDTH,
            "height": 60,
            "data": {"values": [{"text": "No files catalogued yet: run wgsvault scan."}]},
            "mark": {"type": "text", "align": "left", "x": 0, "y": 30, "fontSize": 13},
            "encoding": {"text": {"field": "text", "type": "nominal"}},
        }
    mark: dict[str, Any] = (
        {"type": "area", "tooltip": True}
        if dates > 2
        else {"type": "bar", "tooltip": True, "width": {"band": 0.5}}
    )
    x: dict[str, Any] = (
        {"field": "at", "type": "temporal", "title": "scan date"}
        if dates > 2
        else {"field": "at", "type": "ordinal", "title": "scan date", "axis": {"labelAngle": 0}}
    )

    def panel(by: str, title: str) -> dict[str, Any]:
        return {
            "title": {"text": title, "anchor": "start", "fontSize": 13},
            "width": WIDTH,
            "height": 180,
            "mark": mark,
            "encoding": {
                "x": x,
                "y": {
                    "aggregate": "sum",
                    "field": "value",
                    "type": "quantitative",
                    "title": f"stored ({unit})",
                    "stack": "zero",
                },
                "color": {
                    "field": by,
                    "type": "nominal",
                    "title": None,
                    "scale": {"scheme": "tableau10"},
                },
                "tooltip": [
                    {"field": "at", "title": "scan"},
                    {"field": by},
                    {"aggregate": "sum", "field": "value", "title": unit, "format": ",.2f"},
                ],
            },
            "resolve": {"scale": {"color": "independent"}},
        }

    panels = [panel("controller", "By data controller"), panel("type", "By file type")]
    if applied:
        panels.append(
            {
                "title": {
                    "text": "Applied plans: freed against promised",
                    "anchor": "start",
                    "fontSize": 13,
                },
                "width": WIDTH,
                "data": {"values": applied},
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "y": {"field": "run", "type": "nominal", "title": None, "sort": None},
                    "yOffset": {"field": "what", "sort": ["promised", "freed"]},
                    "x": {"field": "value", "type": "quantitative", "title": unit},
                    "color": {
                        "field": "what",
                        "type": "nominal",
                        "title": None,
                        "scale": {"domain": ["promised", "freed"], "range": [LIGHT, DARK]},
                    },
                },
            }
        )
    return {
        **_base(description, "Storage", subtitle),
        "data": {"values": rows},
        "vconcat": panels,
        "resolve": {"scale": {"color": "independent"}},
    }
