"""Charts of the governance reports: Vega-Lite v5 specs built from the report dicts, drawn the same
way in a browser (vega-embed) and in files (PNG, SVG through vl-convert).

`spec(name, report)` turns the JSON-able dict of a governance report (`genomes`, `quotas`,
`turnaround`, `storage`, see governance.py) into one self-contained Vega-Lite spec: the data are
inline values taken from the report and nothing else, so whoever receives the spec sees exactly
what the report says. The web dashboard embeds that spec and the CLI writes it to PNG with
`png`, so a chart in the browser and a chart in a file never differ. Each spec carries a
`description` (the accessible text screen readers announce; the dashboard also prints it as the
chart's caption) that states the headline figures in words.

Suppressed cells
    A count from 1 to 4 arrives as the string "<5" for anyone who may not see exact counts. A
    chart never guesses it: such a cell is drawn as a bar of length 0 labelled "<5", and the
    description says that cells below 5 are suppressed. Every mark's data row carries `value`
    (the number drawn, 0 when suppressed or missing), `label` (the text shown: the report's value
    as written, "<5" included, or "–" when there is none) and `suppressed` (true or false), so a
    chart, its tooltip and its text agree. Figures derived from counts (percentages, medians)
    that a report withholds (None or "<5") are drawn as missing in the same way.

One module owns vl-convert (`svg`, `png`, `javascript`): the Vega-Lite version the specs are
compiled with (`VL_VERSION`) is the same for files and for the JavaScript the dashboard serves,
and no conversion may fetch anything from a network (`allowed_base_urls=[]`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import vl_convert

from wgsvault.fsutil import atomic_write_bytes
from wgsvault.report.chart_cases import _genomes, _quotas, _turnaround
from wgsvault.report.chart_parts import NAMES, SCHEMA, SUPPRESSED, VL_VERSION
from wgsvault.report.chart_storage import _storage

BUILDERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "genomes": _genomes,
    "quotas": _quotas,
    "turnaround": _turnaround,
    "storage": _storage,
}

__all__ = ["NAMES", "SCHEMA", "SUPPRESSED", "VL_VERSION", "javascript", "png", "spec", "svg"]


def spec(name: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """The Vega-Lite v5 spec of report `name` ("genomes", "quotas", "turnaround", "storage")."""
    try:
        build = BUILDERS[name]
    except KeyError:
        raise ValueError(f"no chart named {name!r}: choose one of {', '.join(NAMES)}") from None
    return build(report)


# --------------------------------------------------------------------------- drawing


def svg(chart: Mapping[str, Any]) -> str:
    """The chart as an SVG document (no network: inline data only)."""
    return vl_convert.vegalite_to_svg(dict(chart), vl_version=VL_VERSION, allowed_base_urls=[])


def png(chart: Mapping[str, Any], path: Path, *, scale: float = 2.0) -> Path:
    """The chart written to `path` as PNG (`scale` 2: sharp on screens and in print)."""
    data = vl_convert.vegalite_to_png(
        dict(chart), vl_version=VL_VERSION, scale=scale, allowed_base_urls=[]
    )
    atomic_write_bytes(Path(path), data)
    return Path(path)


def javascript() -> str:
    """One script defining `vegaEmbed`, `vega` and `vegaLite` (VL_VERSION) on `window`: all the
    JavaScript a browser needs to draw these specs, with no network."""
    return vl_convert.javascript_bundle(None, vl_version=VL_VERSION)  # type: ignore[arg-type]
