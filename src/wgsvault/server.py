"""The access service: GA4GH htsget 1.3 over the catalog's files, with grants and audit.

Endpoints (FastAPI, served by `wgsvault serve`):

* `GET|POST /reads/{id}`, `GET|POST /variants/{id}`: a ticket for genome `id` (its CRAM, or its
  VCF), whole or for regions, `class=header` for the header only (htsget.py computes the ranges).
* `GET /reads/service-info`, `/variants/service-info`: GA4GH service-info.
* `GET /blocks/{token}`: the bytes of one ticket range. The token is signed (HMAC-SHA256 with the
  server's secret) over catalog file id, byte range, file size, principal and expiry: it cannot be
  used after expiry, for another range or another file, and it never carries the API token.
* `POST /restore/{id}`: restore-on-demand of a genome's FASTQ from its CRAM (+ sidecar), written
  to the server's scratch space and returned as signed download URLs.

Every request needs `Authorization: Bearer <token>` (except blocks, which carry their own signed
token); the principal's grants decide (access.py). No path from a request reaches the
filesystem: ids are validated, then looked up in the catalog, and only catalog paths are opened.
Every ticket, every block and every refusal is written to the audit log. Errors use the htsget
JSON shape `{"htsget": {"error": NAME, "message": TEXT}}` with the spec's status codes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from wgsvault import access, audit
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import Controller, File, Genome
from wgsvault.errors import AccessDenied, InputError
from wgsvault.htsget import CRAM_EOF_LEN, Ticket, TicketError, cram_ticket, union, vcf_ticket

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
STATUS = {
    "InvalidAuthentication": 401,
    "PermissionDenied": 403,
    "NotFound": 404,
    "PayloadTooLarge": 413,
    "UnsupportedFormat": 400,
    "InvalidInput": 400,
    "InvalidRange": 400,
}
CHUNK = 1 << 20
HTSGET_JSON = "application/vnd.ga4gh.htsget.v1.3.0+json; charset=utf-8"


class HtsgetError(Exception):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass
class Settings:
    catalog_url: str
    home: Path
    base_url: str  # how clients reach this server, e.g. http://127.0.0.1:8080
    block_ttl: int = 900  # seconds a block URL stays valid


def _secret(home: Path) -> bytes:
    """The server's signing key, created once (0600) in the vault home."""
    path = home / "serve.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def sign(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        mac = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def verify(self, token: str) -> dict[str, Any]:
        body, _, mac = token.partition(".")
        want = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        if not mac or not hmac.compare_digest(mac, want):
            raise HtsgetError("InvalidAuthentication", "block URL signature is not valid")
        payload: dict[str, Any] = json.loads(_unb64(body))
        if payload["x"] < time.time():
            raise HtsgetError(
                "InvalidAuthentication", "block URL has expired; ask for a new ticket"
            )
        return payload


def _error(e: HtsgetError) -> JSONResponse:
    return JSONResponse(
        {"htsget": {"error": e.error, "message": str(e)}},
        status_code=STATUS.get(e.error, 400),
        media_type="application/json",
    )


def create_app(settings: Settings) -> FastAPI:
    catalog: Catalog = open_catalog(settings.catalog_url)
    signer = Signer(_secret(settings.home))
    app = FastAPI(title="wgsvault htsget", version="1.3.0", docs_url=None, redoc_url=None)

    def principal_of(request: Request) -> Any:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            return access.authenticate(catalog, token)
        except AccessDenied as exc:
            raise HtsgetError("InvalidAuthentication", str(exc)) from None

    def refuse(request: Request, who: str, genome: str | None, e: HtsgetError) -> JSONResponse:
        audit.record(
            catalog,
            actor=who,
            event="refuse",
            genome=genome if genome and _ID.match(genome) else None,
            detail={
                "path": request.url.path[:300],
                "error": e.error,
                "status": STATUS.get(e.error, 400),
                "reason": str(e)[:300],
            },
        )
        return _error(e)

    def locate(genome: str, kind: str) -> tuple[File, str]:
        """The genome's stored file of `kind` (national copy first) from the catalog."""
        with catalog.session() as s:
            rows = s.execute(
                select(File, Controller.name, Controller.kind)
                .join(Genome, Genome.id == File.genome_id)
                .outerjoin(Controller, Controller.id == File.controller_id)
                .where(Genome.name == genome, File.type == kind, File.status == "present")
            ).all()
        if not rows:
            raise HtsgetError("NotFound", f"no {kind.upper()} stored for {genome}")
        rows.sort(key=lambda r: (r[2] != "national", r[0].path))
        f, ctrl, _ = rows[0]
        return f, ctrl or ""

    def parse(
        request_params: dict[str, Any],
    ) -> tuple[list[tuple[str | None, int | None, int | None]], bool, str]:
        fmt = (request_params.get("format") or "").upper()
        cls = request_params.get("class")
        if cls not in (None, "header"):
            raise HtsgetError("InvalidInput", f"class {cls!r}: only 'header' is known")
        regions: list[tuple[str | None, int | None, int | None]] = []
        for r in request_params.get("regions") or [{}]:
            name, start, end = r.get("referenceName"), r.get("start"), r.get("end")
            try:
                start = int(start) if start is not None else None
                end = int(end) if end is not None else None
            except (TypeError, ValueError):
                raise HtsgetError("InvalidInput", "start and end must be integers") from None
            if (start is not None or end is not None) and name is None:
                raise HtsgetError("InvalidInput", "start/end need a referenceName")
            if name == "*" and (start is not None or end is not None):
                raise HtsgetError("InvalidInput", "unplaced reads ('*') take no start/end")
            if start is not None and start < 0 or (end is not None and end < 0):
                raise HtsgetError("InvalidRange", "start and end must not be negative")
            if start is not None and end is not None and start > end:
                raise HtsgetError("InvalidRange", f"start {start} > end {end}")
            regions.append((name, start, end))
        return regions, cls == "header", fmt

    def ticket(
        request: Request, genome: str, params: dict[str, Any], endpoint: str
    ) -> JSONResponse:
        who = "anonymous"
        try:
            principal = principal_of(request)
            who = f"principal:{principal.name}"
            if not _ID.match(genome):
                raise HtsgetError("InvalidInput", "not a valid id")
            regions, header_only, fmt = parse(params)
            kind, default = ("cram", "CRAM") if endpoint == "reads" else ("vcf", "VCF")
            fmt = fmt or ("BAM" if endpoint == "reads" else "VCF")
            if fmt != default:
                raise HtsgetError(
                    "UnsupportedFormat", f"{fmt}: this server stores and serves {default}"
                )
            with catalog.session() as s:
                known = s.scalars(select(Genome.id).where(Genome.name == genome)).first()
            if known is None:
                raise HtsgetError("NotFound", f"no genome {genome}")
            for name, start, end in regions:
                try:
                    d = access.authorize(catalog, principal, genome, name, start, end)
                except InputError as exc:
                    raise HtsgetError("InvalidInput", str(exc)) from None
                if not d.allowed:
                    code = "NotFound" if d.http_status == 404 else "PermissionDenied"
                    raise HtsgetError(code, d.reason)
            f, controller = locate(genome, kind)
            path = Path(f.path)
            tickets: list[Ticket] = []
            for name, start, end in regions:
                make = cram_ticket if kind == "cram" else vcf_ticket
                tickets.append(make(path, name, start, end, header_only=header_only))
        except TicketError as exc:
            return refuse(request, who, genome, HtsgetError(exc.error, str(exc)))
        except HtsgetError as exc:
            return refuse(request, who, genome, exc)
        merged = union([r for t in tickets for r in t.ranges])  # across regions, in file order
        size = path.stat().st_size
        expiry = int(time.time()) + settings.block_ttl
        urls = []
        for r in merged:
            token = signer.sign(
                {
                    "f": f.id,
                    "s": r.start,
                    "e": r.end,
                    "n": size,
                    "p": principal.id,
                    "g": genome,
                    "x": expiry,
                }
            )
            urls.append({"url": f"{settings.base_url}/blocks/{token}", "class": r.cls})
        eof = tickets[0].eof
        urls.append(
            {
                "url": "data:application/octet-stream;base64," + base64.b64encode(eof).decode(),
                "class": "body",
            }
        )
        if header_only:
            urls[-1]["class"] = "header"
        nbytes = sum(r.end - r.start for r in merged) + len(eof)
        audit.record(
            catalog,
            actor=who,
            event="access",
            genome=genome,
            controller=controller or None,
            detail={
                "kind": "ticket",
                "endpoint": endpoint,
                "regions": [{"referenceName": n, "start": s0, "end": e0} for n, s0, e0 in regions],
                "class": "header" if header_only else "full",
                "bytes": nbytes,
                "outcome": "granted",
            },
        )
        body = {"htsget": {"format": default, "urls": urls}}
        return JSONResponse(body, media_type=HTSGET_JSON)

    @app.get("/reads/service-info")
    def reads_info() -> JSONResponse:
        return JSONResponse(_service_info("reads", ["CRAM"]))

    @app.get("/variants/service-info")
    def variants_info() -> JSONResponse:
        return JSONResponse(_service_info("variants", ["VCF"]))

    def _get_params(request: Request) -> dict[str, Any]:
        q = request.query_params
        params: dict[str, Any] = {"format": q.get("format"), "class": q.get("class")}
        if any(k in q for k in ("referenceName", "start", "end")):
            params["regions"] = [
                {
                    "referenceName": q.get("referenceName"),
                    "start": q.get("start"),
                    "end": q.get("end"),
                }
            ]
        return params

    # tickets are short CPU-bound work (index lookup, catalog queries): answered on the event
    # loop rather than handed to a thread, which measured faster under concurrency (bench)
    @app.get("/reads/{genome}")
    async def reads_get(genome: str, request: Request) -> JSONResponse:
        return ticket(request, genome, _get_params(request), "reads")

    @app.get("/variants/{genome}")
    async def variants_get(genome: str, request: Request) -> JSONResponse:
        return ticket(request, genome, _get_params(request), "variants")

    async def _post_params(request: Request) -> dict[str, Any] | HtsgetError:
        try:
            data = await request.json() if await request.body() else {}
        except ValueError:
            return HtsgetError("InvalidInput", "the request body is not JSON")
        if not isinstance(data, dict):
            return HtsgetError("InvalidInput", "the request body must be a JSON object")
        return data

    @app.post("/reads/{genome}")
    async def reads_post(genome: str, request: Request) -> JSONResponse:
        params = await _post_params(request)
        if isinstance(params, HtsgetError):
            return _error(params)
        return ticket(request, genome, params, "reads")

    @app.post("/variants/{genome}")
    async def variants_post(genome: str, request: Request) -> JSONResponse:
        params = await _post_params(request)
        if isinstance(params, HtsgetError):
            return _error(params)
        return ticket(request, genome, params, "variants")

    scratch = settings.home / "restore-scratch"

    def restore_genome(request: Request, genome: str) -> JSONResponse:
        """Restore a genome's FASTQ from its CRAM (+ sidecar) for download (whole genome only)."""
        import shutil
        import tempfile

        from wgsvault.apply import SIDECAR_SUFFIX
        from wgsvault.convert import read_recipe
        from wgsvault.refs import Registry
        from wgsvault.restore import restore

        who = "anonymous"
        try:
            principal = principal_of(request)
            who = f"principal:{principal.name}"
            if not _ID.match(genome):
                raise HtsgetError("InvalidInput", "not a valid id")
            d = access.authorize(catalog, principal, genome, None, None, None)
            if not d.allowed:
                raise HtsgetError(
                    "NotFound" if d.http_status == 404 else "PermissionDenied", d.reason
                )
            f, controller = locate(genome, "cram")
            cram = Path(f.path)
            sidecar = None
            if read_recipe(cram) is None:
                with catalog.session() as s:
                    paths = s.scalars(
                        select(File.path)
                        .join(Genome, Genome.id == File.genome_id)
                        .where(Genome.name == genome, File.status == "present")
                    ).all()
                sidecar = next((Path(p) for p in paths if p.endswith(SIDECAR_SUFFIX)), None)
                if sidecar is None:
                    raise HtsgetError(
                        "NotFound", f"{genome}: no FASTQ restore data (sidecar) stored"
                    )
        except HtsgetError as exc:
            return refuse(request, who, genome, exc)
        for old in scratch.glob("*") if scratch.exists() else []:  # expired restores
            if old.stat().st_mtime < time.time() - 2 * settings.block_ttl:
                shutil.rmtree(old, ignore_errors=True)
        scratch.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="r-", dir=scratch))
        outs = restore(
            cram,
            "fastq",
            work / genome,
            registry=Registry(catalog, settings.home / "refs"),
            sidecar=sidecar,
            keep_order=False,
        )
        expiry = int(time.time()) + settings.block_ttl
        files = []
        for o in outs:
            token = signer.sign(
                {
                    "k": "scratch",
                    "r": str(o.relative_to(scratch)),
                    "n": o.stat().st_size,
                    "p": principal.id,
                    "g": genome,
                    "x": expiry,
                }
            )
            files.append(
                {
                    "name": o.name,
                    "bytes": o.stat().st_size,
                    "url": f"{settings.base_url}/blocks/{token}",
                }
            )
        audit.record(
            catalog,
            actor=who,
            event="restore",
            genome=genome,
            controller=controller or None,
            detail={
                "from": str(cram),
                "files": [{"name": x["name"], "size": x["bytes"]} for x in files],
                "outcome": "restored",
            },
        )
        return JSONResponse({"restore": {"genome": genome, "format": "fastq", "files": files}})

    @app.post("/restore/{genome}")
    async def restore_post(genome: str, request: Request) -> JSONResponse:
        return await run_in_threadpool(restore_genome, request, genome)  # long: off the loop

    def serve_bytes(
        p: dict[str, Any], path: Path, start: int, end: int, what: dict[str, Any]
    ) -> StreamingResponse:
        """Stream bytes [start, end) of a file a signed token named, after auditing it."""
        detail = {**what, "bytes": end - start, "outcome": "served"}
        audit.record(
            catalog, actor=f"principal#{p['p']}", event="access", genome=p["g"], detail=detail
        )
        return StreamingResponse(
            _read_range(path, start, end),
            media_type="application/octet-stream",
            headers={"Content-Length": str(end - start)},
        )

    def scratch_block(request: Request, p: dict[str, Any]) -> Any:
        path = (scratch / p["r"]).resolve()
        if (
            scratch.resolve() not in path.parents
            or not path.exists()
            or path.stat().st_size != p["n"]
        ):
            return refuse(
                request,
                f"principal#{p['p']}",
                p["g"],
                HtsgetError("NotFound", "the restored file is gone; restore again"),
            )
        return serve_bytes(p, path, 0, p["n"], {"kind": "restored-file", "name": path.name})

    @app.get("/blocks/{token}")
    def block(token: str, request: Request) -> Any:
        try:
            p = signer.verify(token)
        except HtsgetError as exc:
            return refuse(request, "anonymous", None, exc)
        except (ValueError, KeyError, json.JSONDecodeError):
            return refuse(
                request, "anonymous", None, HtsgetError("InvalidAuthentication", "bad block URL")
            )
        if p.get("k") == "scratch":
            return scratch_block(request, p)
        with catalog.session() as s:
            f = s.get(File, int(p["f"]))
            path = Path(f.path) if f is not None and f.status == "present" else None
        if path is None or not path.exists() or path.stat().st_size != p["n"]:
            return refuse(
                request,
                f"principal#{p['p']}",
                p["g"],
                HtsgetError("NotFound", "the file changed since the ticket"),
            )
        start, end = int(p["s"]), int(p["e"])
        what = {"kind": "block", "file": f.id if f else None, "start": start, "end": end}
        return serve_bytes(p, path, start, end, what)

    @app.exception_handler(HtsgetError)
    def _handler(request: Request, exc: HtsgetError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # unknown routes (e.g. ids with encoded separators) answer in the htsget shape, audited
        error = "NotFound" if exc.status_code == 404 else "InvalidInput"
        return refuse(request, "anonymous", None, HtsgetError(error, str(exc.detail)))

    app.state.catalog = catalog
    app.state.signer = signer
    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket every server process binds on its own (SO_REUSEPORT: the kernel
    spreads connections); TCP_NODELAY is inherited by accepted connections, without which
    keep-alive responses wait ~40 ms for delayed ACKs."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _serve_one(settings: Settings, host: str, port: int, parent: int | None = None) -> None:
    """One server process; a child (`parent` given) stops when the main process is gone."""
    import threading

    import uvicorn

    sock = _listen(host, port)
    config = uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if parent is not None:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            server.should_exit = True  # orphaned: the main process ended, however it ended

        threading.Thread(target=watch, daemon=True).start()
    server.run(sockets=[sock])


def serve(settings: Settings, host: str, port: int, processes: int = 1) -> None:
    """Run the service in `processes` processes sharing the port (one per core is typical)."""
    import multiprocessing

    open_catalog(settings.catalog_url).close()  # migrate once, before the processes start
    _secret(settings.home)
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_serve_one, args=(settings, host, port, os.getpid()), daemon=True)
        for _ in range(max(0, processes - 1))
    ]
    for c in children:
        c.start()
    try:
        _serve_one(settings, host, port)
    finally:
        for c in children:
            c.terminate()
            c.join(5)


def _read_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def _service_info(datatype: str, formats: list[str]) -> dict[str, Any]:
    from wgsvault import __version__

    return {
        "id": f"dk.wgsvault.htsget.{datatype}",
        "name": f"wgsvault htsget ({datatype})",
        "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
        "description": "Controlled access to the national genome store (grants, audit)",
        "organization": {"name": "wgsvault", "url": "https://example.invalid/wgsvault"},
        "version": __version__,
        "htsget": {
            "datatype": datatype,
            "formats": formats,
            "fieldsParametersEffective": False,
            "tagsParametersEffective": False,
        },
        "createdAt": dt.datetime(2026, 11, 29, tzinfo=dt.UTC).isoformat(),
    }


__all__ = ["CRAM_EOF_LEN", "Settings", "Signer", "create_app"]
