"""report: what the estate stores and costs, for people (tables, charts) and machines (CSV, JSON).

Stage: report. `footprint` aggregates the catalog by data controller and file type, with costs
and a projection; `render` presents footprints, plans, scenarios and apply runs as rich tables,
CSV and PNG charts.

May use: apply and plan (their results), inventory, the catalog and the utilities. serve, the
demo and the CLI use it.
"""
