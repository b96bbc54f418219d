"""Restore on demand: `POST /restore/{id}` gives a genome's FASTQ back as signed downloads.

For a principal granted the whole genome, its FASTQ is restored from its CRAM (the recipe an
unaligned CRAM carries, or the sidecar of an aligned one) into the server's scratch space, and
each file is returned as a signed URL that `/blocks/` serves on live authority (blocks.py).

Bounded, and shared:

* one restore per genome and CRAM at a time: concurrent requests in this process await the one
  under way, and other processes wait on its file lock, then reuse the finished directory
  (`<scratch>/<genome>.<key>/`, complete once its `done` marker exists) instead of restoring
  again;
* a principal may start at most `restores_per_principal` restores at once, and the process at
  most `restores_total`; beyond that the answer is 429 TooManyRequests, with Retry-After;
* finished restores are reaped when unused for twice the URL lifetime, at start-up and every
  `reap_every` seconds, as are work directories no process holds the lock of; every removal
  tolerates files another process removed first.

Every restore, and every refusal, is audited.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wgsvault import access, audit
from wgsvault.catalog.models import File, Genome
from wgsvault.codec.fastqfmt import read_recipe
from wgsvault.codec.refs import Registry
from wgsvault.codec.restore import restore
from wgsvault.codec.sidecar import SUFFIX as SIDECAR_SUFFIX
from wgsvault.errors import VaultError
from wgsvault.serve import params
from wgsvault.serve.context import Context, denied, who
from wgsvault.serve.errors import NO_STORE, HtsgetError

DONE = "done.json"


@contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive flock on `path` (created); yields False if `wait` is off and it is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class Restores:
    """Restores of this server process: shared per genome, limited per principal and in total."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.scratch = ctx.scratch
        self.limiter = CapacityLimiter(ctx.settings.restores_total)
        self.running: dict[str, asyncio.Future[list[Path]]] = {}
        self.by_principal: Counter[int] = Counter()

    def _key(self, genome: str, cram: Path, sidecar: Path | None) -> str:
        parts = [str(cram), *((str(sidecar),) if sidecar else ())]
        ident = "|".join(f"{p}:{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}" for p in parts)
        return f"{genome}.{hashlib.sha256(ident.encode()).hexdigest()[:16]}"

    def _restore(self, key: str, cram: Path, sidecar: Path | None, genome: str) -> list[Path]:
        """The finished restore `key`, made now unless a process made it already (blocking)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        final = self.scratch / key
        with _locked(self.scratch / f".{key}.lock"):
            if (final / DONE).exists():
                os.utime(final / DONE)
                return [final / n for n in json.loads((final / DONE).read_text())]
            shutil.rmtree(final, ignore_errors=True)  # an incomplete one (not possible: renamed)
            work = Path(tempfile.mkdtemp(prefix=f".work-{key}-", dir=self.scratch))
            try:
                outs = restore(
                    cram,
                    "fastq",
                    work / genome,
                    registry=Registry(self.ctx.catalog, self.ctx.settings.home / "refs"),
                    sidecar=sidecar,
                    keep_order=False,
                )
                (work / DONE).write_text(json.dumps([o.name for o in outs]))
                os.rename(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return [final / o.name for o in outs]

    async def get(
        self, principal_id: int, genome: str, cram: Path, sidecar: Path | None
    ) -> list[Path]:
        """The restored files, shared with any restore of the same genome under way here."""
        key = self._key(genome, cram, sidecar)
        running = self.running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        s = self.ctx.settings
        if self.by_principal[principal_id] >= s.restores_per_principal:
            raise HtsgetError(
                "TooManyRequests",
                f"at most {s.restores_per_principal} restore(s) at a time; try again later",
                {"Retry-After": "60"},
            )
        if len(self.running) >= s.restores_total:
            busy = "the server is busy restoring; try again later"
            raise HtsgetError("TooManyRequests", busy, {"Retry-After": "60"})
        fut: asyncio.Future[list[Path]] = asyncio.get_running_loop().create_future()
        self.running[key] = fut
        self.by_principal[principal_id] += 1
        try:  # in threads of its own, so that restores never take the request threads
            outs = await to_thread.run_sync(
                self._restore, key, cram, sidecar, genome, limiter=self.limiter
            )
            fut.set_result(outs)
            return outs
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: nobody else may be waiting
            raise
        except BaseException:
            fut.cancel()
            raise
        finally:
            self.running.pop(key, None)
            self.by_principal[principal_id] -= 1

    def reap(self, older_than: float) -> int:
        """Remove finished restores unused for `older_than` seconds, and abandoned work."""
        removed = 0
        cutoff = time.time() - older_than
        for p in self.scratch.glob("*") if self.scratch.exists() else []:
            try:
                if p.name.startswith(".work-"):
                    key = p.name[len(".work-") :].rsplit("-", 1)[0]
                    with _locked(self.scratch / f".{key}.lock", wait=False) as free:
                        if free:  # nobody is restoring it: left by a killed process
                            shutil.rmtree(p, ignore_errors=True)
                            removed += 1
                elif p.is_dir() and (p / DONE).stat().st_mtime < cutoff:
                    with _locked(self.scratch / f".{p.name}.lock", wait=False) as free:
                        if free:
                            shutil.rmtree(p, ignore_errors=True)
                            removed += 1
                elif p.is_dir() and not (p / DONE).exists():
                    shutil.rmtree(p, ignore_errors=True)
            except FileNotFoundError:
                pass  # another process reaped it first
        return removed


def router(ctx: Context, restores: Restores) -> APIRouter:
    """The restore-on-demand route over `ctx`."""
    api = APIRouter()
    catalog, settings = ctx.catalog, ctx.settings

    def sources(cred: access.Credential, genome: str) -> tuple[int, str, Path, Path | None]:
        """(grant, controller, CRAM, sidecar) of an allowed restore; HtsgetError if not."""
        d = access.authorize(catalog, cred.principal, genome)
        if not d.allowed:
            raise denied(d, genome)
        assert d.grant_id is not None
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
                raise HtsgetError("NotFound", f"{genome}: no FASTQ restore data (sidecar) stored")
        return d.grant_id, controller, cram, sidecar

    @api.post("/restore/{genome}")
    async def restore_post(genome: str, request: Request) -> JSONResponse:
        try:
            cred = ctx.authenticate(request)
        except HtsgetError as exc:
            return ctx.refuse_anonymous(request, exc)
        try:
            params.check_genome_id(genome)
            grant_id, controller, cram, sidecar = sources(cred, genome)
            try:
                outs = await restores.get(cred.principal.id, genome, cram, sidecar)
            except VaultError as exc:
                raise HtsgetError("InternalError", f"the restore failed: {exc}") from None
        except HtsgetError as exc:
            return ctx.refuse(request, who(cred), genome, exc)
        expiry = int(time.time()) + settings.block_ttl
        files = []
        for o in outs:
            size = o.stat().st_size
            token = ctx.signer.sign(
                {
                    "k": "scratch",
                    "r": str(o.relative_to(ctx.scratch)),
                    "s": 0,
                    "e": size,
                    "n": size,
                    "p": cred.principal.id,
                    "t": cred.token_id,
                    "a": grant_id,
                    "g": genome,
                    "x": expiry,
                }
            )
            files.append({"name": o.name, "bytes": size, "url": ctx.url(token)})
        audit.record(
            catalog,
            actor=who(cred),
            event="restore",
            genome=genome,
            controller=controller or None,
            detail={
                "from": str(cram),
                "files": [{"name": x["name"], "size": x["bytes"]} for x in files],
                "grant": grant_id,
                "outcome": "restored",
            },
        )
        body = {"restore": {"genome": genome, "format": "fastq", "files": files}}
        return JSONResponse(body, headers=NO_STORE)

    return api
