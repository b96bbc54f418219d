"""The web app: the routers of the service under one FastAPI application, and what every
response shares.

Endpoints (served by `wgsvault serve`, run.py):

* `GET|POST /reads/{id}`, `GET|POST /variants/{id}`, `.../service-info`: GA4GH htsget 1.3
  tickets (tickets.py);
* `GET /blocks/{token}`: the bytes of one ticket range, slice or restored file (blocks.py);
* `POST /restore/{id}`: restore-on-demand of a genome's FASTQ (restore.py);
* `/dashboard...`: the steering group's governance dashboard (dashboard.py);
* `/api/beacon/...`: GA4GH Beacon v2 over the variant frequency database (beacon.py).

For every request and response:

* `Cache-Control: no-store` on everything, errors included, except the dashboard's static files
  (immutable under content-hashed names);
* a path with a trailing slash is redirected to the path without it, built from the configured
  base URL, never from the request's `Host` header;
* errors in the htsget JSON shape (errors.py): 404 for unknown routes, 405 (with `Allow`) for
  a method a route does not serve, 500 for anything unexpected, each a refusal (audited once:
  counted per source when there is no principal, refusals.py);
* in the background, and at start-up, expired slices and restores are reaped; at shutdown the
  counted anonymous refusals are written to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wgsvault.catalog import open_catalog
from wgsvault.serve import beacon, blocks, dashboard, restore, tickets
from wgsvault.serve.context import Context, Settings
from wgsvault.serve.errors import NO_STORE, HtsgetError, error_response
from wgsvault.serve.refusals import RefusalCounter
from wgsvault.serve.restore import Restores
from wgsvault.serve.signing import Signer, secret_key
from wgsvault.serve.slices import SliceCache

log = logging.getLogger("wgsvault.serve")


class NoStoreAndSlashes:
    """ASGI middleware: `Cache-Control: no-store` on every response (but a dashboard static
    file served whole); trailing slashes redirected to `base_url` + the path without them."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app, self.base_url = app, base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            query = scope.get("query_string", b"").decode("latin-1")
            target = self.base_url + path.rstrip("/") + (f"?{query}" if query else "")
            await RedirectResponse(target, status_code=307, headers=NO_STORE)(scope, receive, send)
            return

        static = path.startswith(dashboard.STATIC)

        async def no_store(message: Message) -> None:
            if message["type"] == "http.response.start" and not (
                static and message["status"] == 200
            ):
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"cache-control"]
                message["headers"] = [*headers, (b"cache-control", b"no-store")]
            await send(message)

        await self.app(scope, receive, no_store)


def create_app(settings: Settings) -> FastAPI:
    """The application over the catalog and key that `settings` name."""
    catalog = open_catalog(settings.catalog_url)
    ctx = Context(
        settings,
        catalog,
        Signer(secret_key(settings.home)),
        RefusalCounter(catalog, window=settings.refusal_window),
    )
    slices = SliceCache(ctx.slices, settings.home / "refs" / "cache")
    restores = Restores(ctx)

    def reap() -> None:
        slices.reap(2 * settings.block_ttl)
        restores.reap(2 * settings.block_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def housekeeping() -> None:
            waited = 0.0
            step = min(settings.refusal_window, settings.reap_every, 5.0)
            while True:
                await asyncio.sleep(step)
                waited += step
                await run_in_threadpool(ctx.refusals.flush)
                if waited >= settings.reap_every:
                    waited = 0.0
                    await run_in_threadpool(reap)

        await run_in_threadpool(reap)
        task = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(ctx.refusals.flush, everything=True)

    app = FastAPI(
        title="wgsvault htsget",
        version="1.3.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.include_router(tickets.router(ctx, slices))
    app.include_router(restore.router(ctx, restores))
    app.include_router(blocks.router(ctx, slices))
    app.include_router(dashboard.router(ctx))
    app.include_router(beacon.router(ctx))
    app.add_middleware(NoStoreAndSlashes, base_url=settings.base_url)

    @app.exception_handler(HtsgetError)
    def _htsget(request: Request, exc: HtsgetError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            e = HtsgetError("MethodNotAllowed", "method not allowed", {"Allow": allow})
        elif exc.status_code == 404:
            e = HtsgetError("NotFound", "no such endpoint")
        else:
            e = HtsgetError("InvalidInput", str(exc.detail)[:200])
        return ctx.refuse_anonymous(request, e)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return ctx.refuse_anonymous(request, HtsgetError("InvalidInput", "invalid request"))

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s", request.url.path)
        return ctx.refuse_anonymous(request, HtsgetError("InternalError", "internal error"))

    app.state.catalog = ctx.catalog
    app.state.signer = ctx.signer
    app.state.context = ctx
    return app
