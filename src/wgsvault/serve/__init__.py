"""serve: the web service that puts access control in front of the stored data.

Stage: serve. A FastAPI application (`app.create_app`) composed of routers, one per job: GA4GH
htsget tickets (`tickets`, with `params` validating every request), the signed byte ranges and
downloads they point to (`blocks`, `signing`), slices of only the granted regions for
region-limited principals (`slices`), restore-on-demand (`restore`), anonymous refusals counted
per source (`refusals`), the steering group's dashboard (`dashboard`, with `session` for its
login cookie and `assets` for its JavaScript); `run` serves it in several processes. Every route
authenticates the request, asks `wgsvault.access` whether the principal may have what it asks
for, and audits what it served or refused.

May use: report, access, codec, audit, catalog and the utilities (never apply). Only the CLI and
the demo use it.
"""

from wgsvault.serve.app import create_app
from wgsvault.serve.context import Settings

__all__ = ["Settings", "create_app"]
