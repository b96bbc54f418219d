"""cli: the `wgsvault` command line. It parses arguments, calls the library and prints.

Top layer: it may use every stage and nothing uses it. `main` assembles the command groups (one
module per stage: `inventory`, `plan`, `apply`, `codec`, `access`, `serve`, `report`, `demo`),
which share `common` (consoles, the selected catalog, progress bars) and never import `main`.
"""
