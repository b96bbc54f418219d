"""report: what the estate stores and costs, for people (tables, charts) and machines (CSV, JSON).

Stage: report. `footprint` aggregates the catalog by data controller and file type, with costs
and a projection; `render` presents footprints, plans, scenarios and apply runs as rich tables,
CSV and PNG charts. The steering group's reports: `governance` (genomes, quotas, turnaround;
`storage` for the footprint over time) against the `targets` file, with small counts suppressed
by `suppress`; `figures` flattens them into tables (CLI, CSV, dashboard), `charts` builds their
Vega-Lite specs (PNG/SVG by vl-convert; per report in `chart_cases`, `chart_storage`, shared
parts in `chart_parts`), `monthly` writes the monthly PDF.

May use: apply and plan (their results), inventory, the catalog and the utilities. serve, the
demo and the CLI use it.
"""
