"""htsget 1.3 ticket routes: `GET|POST /reads/{id}`, `GET|POST /variants/{id}`, service-info.

Order of work, so that nothing is read, parsed or looked up for someone who may not have it:
the bearer token is checked first (a body is not even read without one), then the id and every
parameter (params.py), then each requested region is authorised (`access.authorize`).

What the ticket points at follows the grant:

* a principal granted the whole genome gets byte ranges of the stored file itself, computed from
  its index (`access.htsget`): zero copies, the EOF block as a `data:` URL;
* a principal granted only regions gets a *slice* (slices.py): a new file holding only the
  records overlapping the requested regions, under a header without server paths (also for
  `class=header`), written off the event loop. No byte of the stored file around those records
  leaves the server.

Every URL is signed (signing.py) with the principal, token and grant it was issued under, which
the block route checks again on every use. Each ticket and each refusal is audited once.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from wgsvault import __version__, access, audit
from wgsvault.access import Credential
from wgsvault.access.htsget import ByteRange, TicketError, cram_ticket, union, vcf_ticket
from wgsvault.catalog.models import File
from wgsvault.codec.slice import UnknownReference
from wgsvault.errors import InputError, VaultError
from wgsvault.serve import params
from wgsvault.serve.context import Context, denied, who
from wgsvault.serve.errors import NO_STORE, HtsgetError
from wgsvault.serve.params import TicketRequest
from wgsvault.serve.slices import SliceCache

HTSGET_JSON = "application/vnd.ga4gh.htsget.v1.3.0+json; charset=utf-8"
KINDS = {"reads": "cram", "variants": "vcf"}


def service_info(datatype: str, formats: list[str]) -> dict[str, Any]:
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


def decide(ctx: Context, cred: Credential, genome: str, req: TicketRequest) -> access.Decision:
    """The decision covering every region of the request (the first refusal, if any)."""
    if not req.spans or req.header_only:
        return access.authorize(ctx.catalog, cred.principal, genome, header_only=req.header_only)
    decisions = []
    for span in req.spans:
        try:
            d = access.authorize(
                ctx.catalog, cred.principal, genome, span.name, span.start, span.end
            )
        except InputError as exc:
            raise params.invalid(str(exc)) from None
        if not d.allowed:
            return d
        decisions.append(d)
    # one unrestricted grant allows every region unlimited; without one, every decision is limited
    return decisions[0]


def router(ctx: Context, slices: SliceCache) -> APIRouter:
    """The htsget routes over `ctx`."""
    api = APIRouter()
    catalog, settings = ctx.catalog, ctx.settings

    def sign(cred: Credential, grant_id: int, genome: str, fields: dict[str, Any]) -> str:
        payload = {
            **fields,
            "p": cred.principal.id,
            "t": cred.token_id,
            "a": grant_id,
            "g": genome,
            "x": int(time.time()) + settings.block_ttl,
        }
        return ctx.url(ctx.signer.sign(payload))

    def ranges_ticket(
        cred: Credential, d: access.Decision, genome: str, f: File, req: TicketRequest
    ) -> tuple[list[dict[str, str]], int]:
        """Byte ranges of the stored file (whole-genome grants)."""
        make = cram_ticket if f.type == "cram" else vcf_ticket
        t = make(Path(f.path), req.spans, header_only=req.header_only)
        st = Path(f.path).stat()
        assert d.grant_id is not None
        urls = [
            {"url": sign(cred, d.grant_id, genome, {"k": "file", "f": f.id, "s": r.start,
                                                     "e": r.end, "n": st.st_size,
                                                     "m": st.st_mtime_ns}),
             "class": r.cls}
            for r in t.ranges
        ]  # fmt: skip
        data = "data:application/octet-stream;base64," + base64.b64encode(t.eof).decode()
        urls.append({"url": data, "class": "header" if req.header_only else "body"})
        return urls, sum(r.end - r.start for r in t.ranges) + len(t.eof)

    def slice_ticket(
        cred: Credential, d: access.Decision, genome: str, f: File, req: TicketRequest
    ) -> tuple[list[dict[str, str]], int]:
        """A slice of only the requested regions' records (region-limited grants)."""
        try:
            path = slices.get(f, req.spans, req.header_only)
        except UnknownReference as exc:
            raise HtsgetError("NotFound", str(exc)) from None
        except VaultError as exc:
            raise HtsgetError("InternalError", f"the slice could not be made: {exc}") from None
        size = path.stat().st_size
        cls = "header" if req.header_only else "body"
        assert d.grant_id is not None
        urls = [
            {"url": sign(cred, d.grant_id, genome, {"k": "slice", "r": path.name, "s": r.start,
                                                     "e": r.end, "n": size}),
             "class": cls}
            for r in union([ByteRange(0, size, cls)])
        ]  # fmt: skip
        return urls, size

    async def ticket(request: Request, genome: str, endpoint: str, post: bool) -> JSONResponse:
        try:
            cred = ctx.authenticate(request)
        except HtsgetError as exc:
            return ctx.refuse_anonymous(request, exc)
        try:
            params.check_genome_id(genome)
            if post:
                body = await params.read_json(request, settings.limits)
                req = params.from_body(body, endpoint, settings.limits)
            else:
                q = request.query_params
                repeated = len(q.keys()) != len(set(q.keys()))
                req = params.from_query(q, repeated, endpoint)
            d = decide(ctx, cred, genome, req)
            if not d.allowed:
                raise denied(d, genome)
            f, controller = ctx.locate(genome, KINDS[endpoint])
            if d.limited:  # slicing runs samtools: off the event loop
                urls, nbytes = await run_in_threadpool(slice_ticket, cred, d, genome, f, req)
            else:  # bounded: at most `max_regions` regions over a cached index
                urls, nbytes = ranges_ticket(cred, d, genome, f, req)
        except TicketError as exc:
            return ctx.refuse(request, who(cred), genome, HtsgetError(exc.error, str(exc)))
        except HtsgetError as exc:
            return ctx.refuse(request, who(cred), genome, exc)
        audit.record(
            catalog,
            actor=who(cred),
            event="access",
            genome=genome,
            controller=controller or None,
            detail={
                "kind": "ticket",
                "endpoint": endpoint,
                "regions": [
                    {"referenceName": s.name, "start": s.start, "end": s.end} for s in req.spans
                ],
                "class": "header" if req.header_only else "full",
                "slice": d.limited,
                "grant": d.grant_id,
                "bytes": nbytes,
                "outcome": "granted",
            },
        )
        body = {"htsget": {"format": req.format, "urls": urls}}
        return JSONResponse(body, media_type=HTSGET_JSON, headers=NO_STORE)

    @api.get("/reads/service-info")
    def reads_info() -> JSONResponse:
        return JSONResponse(service_info("reads", ["CRAM"]))

    @api.get("/variants/service-info")
    def variants_info() -> JSONResponse:
        return JSONResponse(service_info("variants", ["VCF"]))

    @api.get("/reads/{genome}")
    async def reads_get(genome: str, request: Request) -> JSONResponse:
        return await ticket(request, genome, "reads", post=False)

    @api.get("/variants/{genome}")
    async def variants_get(genome: str, request: Request) -> JSONResponse:
        return await ticket(request, genome, "variants", post=False)

    @api.post("/reads/{genome}")
    async def reads_post(genome: str, request: Request) -> JSONResponse:
        return await ticket(request, genome, "reads", post=True)

    @api.post("/variants/{genome}")
    async def variants_post(genome: str, request: Request) -> JSONResponse:
        return await ticket(request, genome, "variants", post=True)

    return api
