"""htsget 1.3 ticket routes: `GET|POST /reads/{id}`, `GET|POST /variants/{id}`, service-info.

A ticket for genome `id` (its CRAM, or its VCF), whole or for regions, `class=header` for the
header only; the byte ranges come from `access.htsget` and are handed out as signed block URLs
(blocks.py), the EOF block as a `data:` URL. The request is authenticated, then every region is
authorised (`access.authorize`) before any file is opened; each ticket and each refusal is audited.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wgsvault import __version__, access, audit
from wgsvault.access.htsget import Ticket, TicketError, cram_ticket, union, vcf_ticket
from wgsvault.catalog.models import Genome
from wgsvault.errors import InputError
from wgsvault.serve.context import GENOME_ID, Context
from wgsvault.serve.errors import HtsgetError, error_response

HTSGET_JSON = "application/vnd.ga4gh.htsget.v1.3.0+json; charset=utf-8"

Regions = list[tuple[str | None, int | None, int | None]]


def parse(request_params: dict[str, Any]) -> tuple[Regions, bool, str]:
    """(regions, header only, format) of a ticket request's parameters."""
    fmt = (request_params.get("format") or "").upper()
    cls = request_params.get("class")
    if cls not in (None, "header"):
        raise HtsgetError("InvalidInput", f"class {cls!r}: only 'header' is known")
    regions: Regions = []
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


async def _post_params(request: Request) -> dict[str, Any] | HtsgetError:
    try:
        data = await request.json() if await request.body() else {}
    except ValueError:
        return HtsgetError("InvalidInput", "the request body is not JSON")
    if not isinstance(data, dict):
        return HtsgetError("InvalidInput", "the request body must be a JSON object")
    return data


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


def router(ctx: Context) -> APIRouter:
    """The htsget routes over `ctx`."""
    api = APIRouter()
    catalog, settings = ctx.catalog, ctx.settings

    def ticket(
        request: Request, genome: str, params: dict[str, Any], endpoint: str
    ) -> JSONResponse:
        who = "anonymous"
        try:
            principal = ctx.principal_of(request)
            who = f"principal:{principal.name}"
            if not GENOME_ID.match(genome):
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
            f, controller = ctx.locate(genome, kind)
            path = Path(f.path)
            tickets: list[Ticket] = []
            for name, start, end in regions:
                make = cram_ticket if kind == "cram" else vcf_ticket
                tickets.append(make(path, name, start, end, header_only=header_only))
        except TicketError as exc:
            return ctx.refuse(request, who, genome, HtsgetError(exc.error, str(exc)))
        except HtsgetError as exc:
            return ctx.refuse(request, who, genome, exc)
        merged = union([r for t in tickets for r in t.ranges])  # across regions, in file order
        size = path.stat().st_size
        expiry = int(time.time()) + settings.block_ttl
        urls = []
        for r in merged:
            token = ctx.signer.sign(
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

    @api.get("/reads/service-info")
    def reads_info() -> JSONResponse:
        return JSONResponse(service_info("reads", ["CRAM"]))

    @api.get("/variants/service-info")
    def variants_info() -> JSONResponse:
        return JSONResponse(service_info("variants", ["VCF"]))

    # tickets are short CPU-bound work (index lookup, catalog queries): answered on the event
    # loop rather than handed to a thread, which measured faster under concurrency (bench)
    @api.get("/reads/{genome}")
    async def reads_get(genome: str, request: Request) -> JSONResponse:
        return ticket(request, genome, _get_params(request), "reads")

    @api.get("/variants/{genome}")
    async def variants_get(genome: str, request: Request) -> JSONResponse:
        return ticket(request, genome, _get_params(request), "variants")

    @api.post("/reads/{genome}")
    async def reads_post(genome: str, request: Request) -> JSONResponse:
        params = await _post_params(request)
        if isinstance(params, HtsgetError):
            return error_response(params)
        return ticket(request, genome, params, "reads")

    @api.post("/variants/{genome}")
    async def variants_post(genome: str, request: Request) -> JSONResponse:
        params = await _post_params(request)
        if isinstance(params, HtsgetError):
            return error_response(params)
        return ticket(request, genome, params, "variants")

    return api
