"""Vega-Lite specs of the case reports: genomes sequenced, quotas, turnaround (charts.py says
how suppressed cells are drawn)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wgsvault.report.chart_parts import (
    ACCENT,
    DARK,
    LIGHT,
    PALE,
    SUPPRESSED,
    SUPPRESSION_NOTE,
    TARGET,
    WIDTH,
    _any_suppressed,
    _base,
    _cell,
    _label,
    _number,
)


def _genomes(report: Mapping[str, Any]) -> dict[str, Any]:
    month = str(report.get("month") or "")
    year = month[:4]
    periods = [("month", month or "month"), ("year_to_date", f"{year} to date")]
    rows: list[dict[str, Any]] = []
    for which, key in (("patient group", "by_patient_group"), ("region", "by_region")):
        for name, counts in (report.get(key) or {}).items():
            for field_, period in periods:
                rows.append(
                    {"panel": which, "key": name, "period": period, **_cell(counts.get(field_))}
                )
    total = report.get("total") or {}
    subtitle = (
        f"{_label(total.get('month'))} in {month}, {_label(total.get('year_to_date'))} in "
        f"{year} to date, {_label(total.get('all_time'))} in all"
    )
    description = (
        f"Bar charts of genomes sequenced per patient group and per requisitioning region, in "
        f"{month} and in {year} to date. {subtitle}."
        + (SUPPRESSION_NOTE if _any_suppressed(rows) else "")
    )
    order = [p for _, p in periods]
    colour = {"domain": order, "range": [DARK, LIGHT]}

    def panel(which: str, title: str) -> dict[str, Any]:
        y = {"field": "key", "type": "nominal", "title": None, "sort": None}
        yoff = {"field": "period", "sort": order}
        x = {"field": "value", "type": "quantitative", "title": "genomes sequenced"}
        return {
            "title": {"text": title, "anchor": "start", "fontSize": 13},
            "width": WIDTH,
            "transform": [{"filter": {"field": "panel", "equal": which}}],
            "layer": [
                {
                    "mark": {"type": "bar", "tooltip": True},
                    "encoding": {
                        "y": y,
                        "yOffset": yoff,
                        "x": x,
                        "color": {
                            "field": "period",
                            "type": "nominal",
                            "title": None,
                            "scale": colour,
                            "sort": order,
                        },
                        "tooltip": [
                            {"field": "key", "title": which},
                            {"field": "period"},
                            {"field": "label", "title": "genomes"},
                        ],
                    },
                },
                {
                    "mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 11},
                    "encoding": {"y": y, "yOffset": yoff, "x": x, "text": {"field": "label"}},
                },
            ],
        }

    return {
        **_base(description, "Genomes sequenced", subtitle),
        "data": {"values": rows},
        "vconcat": [panel("patient group", "By patient group"), panel("region", "By region")],
        "resolve": {"scale": {"x": "independent"}},
    }


# --------------------------------------------------------------------------- quotas


def _quotas(report: Mapping[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for g in report.get("groups") or []:
        quota, backlog = _number(g.get("quota")) or 0, _number(g.get("backlog")) or 0
        delivered = _cell(g.get("delivered"))
        pct = g.get("fulfilment_pct")
        rows.append(
            {
                "group": f"{g.get('patient_group')} ({g.get('unit')})",
                "owed": quota + backlog,
                "owed_label": _label(quota + backlog),
                "delivered": delivered["value"],
                "delivered_label": delivered["label"],
                "suppressed": delivered["suppressed"],
                "expected": _number(g.get("expected")),
                "forecast": _number(g.get("forecast")),
                "pct_label": f"{_label(pct)} %" if _number(pct) is not None else _label(pct),
            }
        )
    year, as_of = report.get("year"), report.get("as_of")
    summary = "; ".join(
        f"{r['group']}: {r['delivered_label']} delivered of {r['owed_label']} owed"
        f" ({r['pct_label']} of expected)"
        for r in rows
    )
    description = (
        f"Bullet chart of delivered genomes or cases per patient group in {year} as of {as_of},"
        f" against the year's quota plus backlog (grey bar), the pro-rata expectation (black tick)"
        f" and the year-end forecast at the current pace (orange tick). {summary or 'No quotas'}."
        + (SUPPRESSION_NOTE if _any_suppressed(rows) else "")
    )
    y = {"field": "group", "type": "nominal", "title": None, "sort": None}
    legend = {
        "domain": ["quota + backlog", "delivered", "expected to date", "year-end forecast"],
        "range": [PALE, DARK, "#111111", ACCENT],
    }

    def colour(what: str) -> dict[str, Any]:
        return {"datum": what, "type": "nominal", "scale": legend, "title": None}

    return {
        **_base(description, f"Quotas {year}", f"delivered against quota, as of {as_of}"),
        "data": {"values": rows},
        "width": WIDTH,
        "height": {"step": 42},
        "layer": [
            {
                "mark": {"type": "bar", "size": 26},
                "encoding": {
                    "y": y,
                    "x": {"field": "owed", "type": "quantitative", "title": "genomes or cases"},
                    "color": colour("quota + backlog"),
                },
            },
            {
                "mark": {"type": "bar", "size": 12, "tooltip": True},
                "encoding": {
                    "y": y,
                    "x": {"field": "delivered", "type": "quantitative"},
                    "color": colour("delivered"),
                    "tooltip": [
                        {"field": "group"},
                        {"field": "delivered_label", "title": "delivered"},
                        {"field": "owed_label", "title": "quota + backlog"},
                        {"field": "pct_label", "title": "of expected"},
                    ],
                },
            },
            {
                "mark": {"type": "tick", "thickness": 3, "size": 32},
                "encoding": {
                    "y": y,
                    "x": {"field": "expected", "type": "quantitative"},
                    "color": colour("expected to date"),
                },
            },
            {
                "mark": {"type": "tick", "thickness": 2, "size": 32, "strokeDash": [4, 2]},
                "encoding": {
                    "y": y,
                    "x": {"field": "forecast", "type": "quantitative"},
                    "color": colour("year-end forecast"),
                },
            },
            {
                "mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 11},
                "encoding": {
                    "y": y,
                    "x": {"field": "owed", "type": "quantitative"},
                    "text": {"field": "pct_label"},
                },
            },
        ],
    }


# --------------------------------------------------------------------------- turnaround

URGENCY_ORDER = ["acute", "urgent", "standard"]


def _turnaround(report: Mapping[str, Any]) -> dict[str, Any]:
    targets: Mapping[str, Any] = report.get("targets") or {}
    rows: list[dict[str, Any]] = []
    for r in report.get("rows") or []:
        urgency = str(r.get("urgency"))
        median, p90 = _cell(r.get("median_days")), _cell(r.get("p90_days"))
        rows.append(
            {
                "urgency": urgency,
                "group": str(r.get("patient_group") or "all"),
                "median": _number(r.get("median_days")),
                "p90": _number(r.get("p90_days")),
                "median_label": median["label"],
                "p90_label": p90["label"],
                "cases_label": _label(r.get("cases")),
                "within_label": _label(r.get("within_target_pct")),
                "target": _number(targets.get(urgency)),
                "suppressed": r.get("cases") == SUPPRESSED,
            }
        )
    year, as_of = report.get("year"), report.get("as_of")
    named = ", ".join(f"{u} {d} days" for u, d in targets.items())
    description = (
        f"Bar chart of days from requisition to report in {year} as of {as_of}, per urgency class"
        f" (one panel each) and patient group: the median (dark bar) and the 90th percentile"
        f" (light bar), with the target of each class as a red rule ({named or 'no targets'})."
        " Groups without a reported case have no bars."
        + (SUPPRESSION_NOTE if _any_suppressed(rows) else "")
    )
    urgencies = [u for u in URGENCY_ORDER if any(r["urgency"] == u for r in rows)]
    urgencies += sorted({r["urgency"] for r in rows} - set(urgencies))
    y = {"field": "group", "type": "nominal", "title": None, "sort": None}
    tooltip = [
        {"field": "group", "title": "patient group"},
        {"field": "cases_label", "title": "cases"},
        {"field": "median_label", "title": "median days"},
        {"field": "p90_label", "title": "90th percentile days"},
        {"field": "within_label", "title": "% within target"},
    ]
    legend = {"domain": ["90th percentile", "median", "target"], "range": [LIGHT, DARK, TARGET]}

    def colour(what: str) -> dict[str, Any]:
        return {"datum": what, "type": "nominal", "scale": legend, "title": None}

    x = {
        "type": "quantitative",
        "title": "days from requisition to report",
        "scale": {"domainMin": 0},
    }
    return {
        **_base(description, f"Turnaround {year}", f"requisition to report, as of {as_of}"),
        "data": {"values": rows},
        "facet": {
            "row": {
                "field": "urgency",
                "type": "nominal",
                "sort": urgencies,
                "title": None,
                "header": {
                    "labelAngle": 0,
                    "labelAlign": "left",
                    "labelFontSize": 13,
                    "labelFontWeight": "bold",
                    "labelOrient": "top",
                },
            }
        },
        "spec": {
            "width": WIDTH,
            "height": {"step": 22},
            "layer": [
                {
                    "mark": {"type": "bar", "size": 16, "tooltip": True},
                    "encoding": {
                        "y": y,
                        "x": {**x, "field": "p90"},
                        "color": colour("90th percentile"),
                        "tooltip": tooltip,
                    },
                },
                {
                    "mark": {"type": "bar", "size": 8, "tooltip": True},
                    "encoding": {
                        "y": y,
                        "x": {**x, "field": "median"},
                        "color": colour("median"),
                        "tooltip": tooltip,
                    },
                },
                {
                    "mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 11},
                    "encoding": {
                        "y": y,
                        "x": {**x, "field": "p90"},
                        "text": {"field": "p90_label"},
                    },
                },
                {
                    "mark": {"type": "rule", "strokeWidth": 2},
                    "encoding": {
                        "x": {**x, "field": "target", "aggregate": "max"},
                        "color": colour("target"),
                    },
                },
            ],
        },
    }


# --------------------------------------------------------------------------- storage
