"""Restore on demand: `POST /restore/{id}` gives a genome's FASTQ back as signed downloads.

For an authorised principal with a whole-genome grant, the genome's FASTQ is restored from its
CRAM (the recipe an unaligned CRAM carries, or the sidecar of an aligned one) into the server's
scratch space, and each file is returned as a signed URL that `/blocks/` serves (blocks.py).
The restore is audited.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from wgsvault import access, audit
from wgsvault.catalog.models import File, Genome
from wgsvault.codec.fastqfmt import read_recipe
from wgsvault.codec.refs import Registry
from wgsvault.codec.restore import restore
from wgsvault.codec.sidecar import SUFFIX as SIDECAR_SUFFIX
from wgsvault.serve.context import GENOME_ID, Context
from wgsvault.serve.errors import HtsgetError


def router(ctx: Context) -> APIRouter:
    """The restore-on-demand route over `ctx`."""
    api = APIRouter()
    catalog, settings, scratch = ctx.catalog, ctx.settings, ctx.scratch

    def restore_genome(request: Request, genome: str) -> JSONResponse:
        """Restore a genome's FASTQ from its CRAM (+ sidecar) for download (whole genome only)."""
        who = "anonymous"
        try:
            principal = ctx.principal_of(request)
            who = f"principal:{principal.name}"
            if not GENOME_ID.match(genome):
                raise HtsgetError("InvalidInput", "not a valid id")
            d = access.authorize(catalog, principal, genome, None, None, None)
            if not d.allowed:
                raise HtsgetError(
                    "NotFound" if d.http_status == 404 else "PermissionDenied", d.reason
                )
            f, controller = ctx.locate(genome, "cram")
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
            return ctx.refuse(request, who, genome, exc)
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
            token = ctx.signer.sign(
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

    @api.post("/restore/{genome}")
    async def restore_post(genome: str, request: Request) -> JSONResponse:
        return await run_in_threadpool(restore_genome, request, genome)  # long: off the loop

    return api
