"""Charts of the governance reports: Vega-Lite v5 specs from report dicts, drawn by vl-convert.

The reports here are small literal dicts in the shapes of report/governance.py, so that each
chart's data can be checked against the figures it was given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wgsvault.report import charts

GENOMES: dict[str, Any] = {
    "month": "2024-05",
    "total": {"month": 412, "year_to_date": 2104, "all_time": 22555},
    "by_patient_group": {
        "kidney": {"month": 17, "year_to_date": 80, "all_time": 700},
        "primary immunodeficiency": {"month": "<5", "year_to_date": 66, "all_time": 1200},
    },
    "by_region": {
        "Region Hovedstaden": {"month": 150, "year_to_date": 800, "all_time": 8000,
                               "per_100k": {"month": 7.9, "year_to_date": 42.1,
                                            "all_time": 421.05}},
        "(unknown)": {"month": "<5", "year_to_date": 9, "all_time": 20},
    },
}  # fmt: skip
QUOTAS: dict[str, Any] = {
    "year": 2024,
    "as_of": "2024-05-31",
    "groups": [
        {"patient_group": "kidney", "unit": "genomes", "quota": 195, "backlog": 575,
         "delivered": 80, "expected": 80.9, "fulfilment_pct": 98.9, "forecast": 193},
        {"patient_group": "fetal medicine", "unit": "cases", "quota": 1320, "backlog": 0,
         "delivered": "<5", "expected": 547.5, "fulfilment_pct": None, "forecast": None},
    ],
}  # fmt: skip
TURNAROUND: dict[str, Any] = {
    "year": 2024,
    "as_of": "2024-05-31",
    "targets": {"acute": 14, "urgent": 42, "standard": 84},
    "rows": [
        {"urgency": "acute", "patient_group": "fetal medicine", "cases": 40, "median_days": 9,
         "p90_days": 13, "within_target_pct": 92.5, "open_past_target": 1,
         "oldest_open_days": 20},
        {"urgency": "acute", "patient_group": "kidney", "cases": "<5", "median_days": None,
         "p90_days": None, "within_target_pct": None, "open_past_target": 0,
         "oldest_open_days": None},
        {"urgency": "standard", "patient_group": "all", "cases": 50, "median_days": 70,
         "p90_days": 101, "within_target_pct": 75.0, "open_past_target": 8,
         "oldest_open_days": 150},
    ],
}  # fmt: skip
STORAGE: dict[str, Any] = {
    "as_of": "2024-05-31",
    "price_dkk_per_tb_year": 1500.0,
    "current": [
        {"controller": "national", "type": "cram", "files": 100, "bytes": 2_700_000_000_000},
        {"controller": "region-east", "type": "bam", "files": 50, "bytes": 5_500_000_000_000},
    ],
    "history": [
        {"at": "2024-04-30", "controller": "national", "type": "cram", "bytes": 2_000_000_000_000},
        {"at": "2024-05-31", "controller": "national", "type": "cram", "bytes": 2_700_000_000_000},
        {"at": "2024-05-31", "controller": "region-east", "type": "bam",
         "bytes": 5_500_000_000_000},
    ],
    "applied": [{"run": 1, "finished_at": "2024-05-02 10:00", "promised_bytes": 2 * 10**12,
                 "freed_bytes": 19 * 10**11}],
    "cost_per_year_dkk": 12300,
    "cost_per_genome_dkk": 0.55,
}  # fmt: skip
REPORTS = {"genomes": GENOMES, "quotas": QUOTAS, "turnaround": TURNAROUND, "storage": STORAGE}
EMPTY: dict[str, dict[str, Any]] = {
    "genomes": {"month": "2024-05", "total": {"month": 0, "year_to_date": 0, "all_time": 0},
                "by_patient_group": {}, "by_region": {}},
    "quotas": {"year": 2024, "as_of": "2024-05-31", "groups": []},
    "turnaround": {"year": 2024, "as_of": "2024-05-31", "targets": {}, "rows": []},
    "storage": {"as_of": "2024-05-31", "price_dkk_per_tb_year": 1500.0, "current": [],
                "history": [], "applied": [], "cost_per_year_dkk": 0,
                "cost_per_genome_dkk": None},
}  # fmt: skip


def _values(spec: dict[str, Any]) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = spec["data"]["values"]
    return values


@pytest.mark.parametrize("name", charts.NAMES)
def test_each_report_has_a_described_v5_spec_that_draws(name: str) -> None:
    spec = charts.spec(name, REPORTS[name])
    assert "/vega-lite/v5" in spec["$schema"]
    assert len(spec["description"]) > 80
    assert "url" not in json.dumps(spec["data"])  # inline data only: nothing to fetch
    svg = charts.svg(spec)
    assert svg.startswith("<svg") and "</svg>" in svg


def test_genomes_chart_draws_the_months_and_years_figures() -> None:
    spec = charts.spec("genomes", GENOMES)
    kidney = [v for v in _values(spec) if v["key"] == "kidney"]
    assert [(v["period"], v["value"], v["label"]) for v in kidney] == [
        ("2024-05", 17, "17"),
        ("2024 to date", 80, "80"),
    ]
    assert "412 in 2024-05, 2,104 in 2024 to date, 22,555 in all" in spec["description"]


def test_suppressed_cells_are_empty_bars_labelled_below_five() -> None:
    spec = charts.spec("genomes", GENOMES)
    hidden = [v for v in _values(spec) if v["suppressed"]]
    assert {(v["key"], v["period"]) for v in hidden} == {
        ("primary immunodeficiency", "2024-05"),
        ("(unknown)", "2024-05"),
    }
    assert all(v["value"] == 0 and v["label"] == "<5" for v in hidden)
    assert "suppressed" in spec["description"]
    assert "&lt;5" in charts.svg(spec)  # the label is drawn
    exact = {**GENOMES, "by_patient_group": {"kidney": GENOMES["by_patient_group"]["kidney"]},
             "by_region": {}}  # fmt: skip
    assert "suppressed" not in charts.spec("genomes", exact)["description"]


def test_quotas_chart_withholds_what_a_suppressed_count_implies() -> None:
    spec = charts.spec("quotas", QUOTAS)
    kidney, fetal = _values(spec)
    assert (kidney["owed"], kidney["delivered"], kidney["expected"], kidney["forecast"]) == (
        770, 80, 80.9, 193)  # fmt: skip
    assert kidney["pct_label"] == "98.9 %" and kidney["group"] == "kidney (genomes)"
    assert (fetal["delivered"], fetal["delivered_label"], fetal["forecast"]) == (0, "<5", None)
    assert fetal["pct_label"] == "–"


def test_turnaround_chart_carries_each_classs_target() -> None:
    spec = charts.spec("turnaround", TURNAROUND)
    rows = _values(spec)
    assert [(r["urgency"], r["group"], r["median"], r["p90"], r["target"]) for r in rows] == [
        ("acute", "fetal medicine", 9, 13, 14),
        ("acute", "kidney", None, None, 14),
        ("standard", "all", 70, 101, 84),
    ]
    assert spec["facet"]["row"]["sort"] == ["acute", "standard"]
    assert "acute 14 days, urgent 42 days, standard 84 days" in spec["description"]


def test_storage_chart_reads_in_the_unit_of_its_largest_figure() -> None:
    spec = charts.spec("storage", STORAGE)
    assert {(v["at"], v["controller"], v["value"]) for v in _values(spec)} == {
        ("2024-04-30", "national", 2.0),
        ("2024-05-31", "national", 2.7),
        ("2024-05-31", "region-east", 5.5),
    }
    assert (
        "8.2 TB stored on 2024-05-31; 12,300 DKK a year (0.55 DKK per genome)"
        in (spec["description"])
    )
    assert spec["vconcat"][0]["encoding"]["y"]["title"] == "stored (TB)"
    applied = spec["vconcat"][2]["data"]["values"]
    assert [(a["what"], a["value"]) for a in applied] == [("promised", 2.0), ("freed", 1.9)]


def test_storage_without_history_draws_todays_footprint() -> None:
    spec = charts.spec("storage", {**STORAGE, "history": [], "applied": []})
    assert {v["at"] for v in _values(spec)} == {"2024-05-31"}
    assert len(spec["vconcat"]) == 2
    assert charts.svg(spec).startswith("<svg")


@pytest.mark.parametrize("name", charts.NAMES)
def test_empty_reports_draw(name: str) -> None:
    assert charts.svg(charts.spec(name, EMPTY[name])).startswith("<svg")


def test_png_is_written(tmp_path: Path) -> None:
    out = charts.png(charts.spec("quotas", QUOTAS), tmp_path / "charts" / "quotas.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_unknown_chart_is_refused() -> None:
    with pytest.raises(ValueError, match="no chart named 'costs'"):
        charts.spec("costs", {})


def test_the_browser_bundle_defines_vega_embed() -> None:
    js = charts.javascript()
    assert "window.vegaEmbed=" in js and len(js) > 100_000


def test_storage_chart_of_an_empty_catalog_has_a_size() -> None:
    """No files and no history: a small chart saying so (it once had no bounded size)."""
    import re

    empty = {"as_of": "2026-11-30", "current": [], "history": [], "applied": [],
             "price_dkk_per_tb_year": 1500.0, "cost_per_year_dkk": 0, "cost_per_genome_dkk": None}
    drawn = charts.svg(charts.spec("storage", empty))
    width = float(re.search(r'<svg[^>]*\bwidth="([0-9.]+)"', drawn).group(1))  # type: ignore[union-attr]
    height = float(re.search(r'<svg[^>]*\bheight="([0-9.]+)"', drawn).group(1))  # type: ignore[union-attr]
    assert 100 < width < 2000 and 0 < height < 500
    assert "No files catalogued yet" in drawn
