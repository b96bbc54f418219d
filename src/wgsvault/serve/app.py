"""The web app: the routers of the service put together under one FastAPI application.

Endpoints (served by `wgsvault serve`, run.py):

* `GET|POST /reads/{id}`, `GET|POST /variants/{id}`, `.../service-info`: GA4GH htsget 1.3
  tickets (tickets.py);
* `GET /blocks/{token}`: the bytes of one ticket range or restored file (blocks.py);
* `POST /restore/{id}`: restore-on-demand of a genome's FASTQ (restore.py).

Every request needs `Authorization: Bearer <token>` (except blocks, which carry their own signed
token); the principal's grants decide (`wgsvault.access`). No path from a request reaches the
filesystem: ids are validated, then looked up in the catalog, and only catalog paths are opened.
Every ticket, every block and every refusal is written to the audit log. Errors use the htsget
JSON shape (errors.py); unknown routes answer in that shape too, audited.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wgsvault.catalog import open_catalog
from wgsvault.serve import blocks, restore, tickets
from wgsvault.serve.context import Context, Settings
from wgsvault.serve.errors import HtsgetError, error_response
from wgsvault.serve.signing import Signer, secret_key


def create_app(settings: Settings) -> FastAPI:
    """The application over the catalog and key that `settings` name."""
    ctx = Context(settings, open_catalog(settings.catalog_url), Signer(secret_key(settings.home)))
    app = FastAPI(title="wgsvault htsget", version="1.3.0", docs_url=None, redoc_url=None)
    for module in (tickets, restore, blocks):
        app.include_router(module.router(ctx))

    @app.exception_handler(HtsgetError)
    def _handler(request: Request, exc: HtsgetError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # unknown routes (e.g. ids with encoded separators) answer in the htsget shape, audited
        error = "NotFound" if exc.status_code == 404 else "InvalidInput"
        return ctx.refuse(request, "anonymous", None, HtsgetError(error, str(exc.detail)))

    app.state.catalog = ctx.catalog
    app.state.signer = ctx.signer
    return app
