"""`GET /blocks/{signed token}`: the bytes a ticket or a restore handed out, on live authority.

The token is signed (signing.py) over what may be fetched (a catalog file and byte range, a
slice, or a restored file), its size, and the principal, token and grant it was issued under,
until an expiry. Each use is checked again, in this order:

1. the signature and the expiry (else 401, counted as an anonymous refusal);
2. the authority it was issued under (`access.still_allowed`): the principal enabled, the token
   unrevoked and unexpired, the grant unrevoked, unexpired and still covering the genome (else
   401 or 403, audited as that principal's refusal), so a revocation takes effect at the next
   block, not when the URL expires;
3. the file: still present in the catalog with the size and mtime the ticket saw (a stored file
   that changed since is refused), or a slice / restored file that still exists inside the
   service's own directories (names are bare file names, resolved and checked to stay inside).

Then the range is audited and streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from wgsvault import access, audit
from wgsvault.catalog.models import File
from wgsvault.serve.context import Context
from wgsvault.serve.errors import NO_STORE, HtsgetError
from wgsvault.serve.slices import SliceCache

CHUNK = 1 << 20


def read_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of `path`, in chunks."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def _inside(root: Path, name: object) -> Path | None:
    """`root / name` when `name` is a plain name of an existing file directly inside `root`."""
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        return None
    path = (root / name).resolve()
    return path if path.parent == root.resolve() and path.is_file() else None


def router(ctx: Context, slices: SliceCache) -> APIRouter:
    """The block route over `ctx`."""
    api = APIRouter()
    catalog = ctx.catalog

    def locate(p: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
        kind = p.get("k")
        if kind == "file":
            with catalog.session() as s:
                f = s.get(File, int(p["f"]))
                path = Path(f.path) if f is not None and f.status == "present" else None
            return path, {"kind": "block", "file": int(p["f"])}
        if kind == "slice":
            named = slices.path_of(str(p["r"]))
            path = _inside(slices.root, p["r"]) if named is not None else None
            return path, {"kind": "slice", "name": str(p["r"])}
        if kind == "scratch":
            rel = str(p["r"])
            path = (ctx.scratch / rel).resolve()
            ok = ctx.scratch.resolve() in path.parents and path.is_file()
            return (path if ok else None), {"kind": "restored-file", "name": path.name}
        raise ValueError(f"unknown block kind {kind!r}")

    @api.get("/blocks/{token}")
    def block(token: str, request: Request) -> Response:
        try:
            p = ctx.signer.verify(token)
            principal_id, token_id, grant_id = int(p["p"]), int(p["t"]), int(p["a"])
            genome, start, end, size = str(p["g"]), int(p["s"]), int(p["e"]), int(p["n"])
        except HtsgetError as exc:
            return ctx.refuse_anonymous(request, exc)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            return ctx.refuse_anonymous(
                request, HtsgetError("InvalidAuthentication", "bad block URL")
            )
        actor = f"principal#{principal_id}"
        stale = access.still_allowed(
            catalog, principal_id=principal_id, token_id=token_id, grant_id=grant_id, genome=genome
        )
        if stale is not None:
            status, reason = stale
            error = "InvalidAuthentication" if status == 401 else "PermissionDenied"
            return ctx.refuse(request, actor, genome, HtsgetError(error, reason))
        try:
            path, what = locate(p)
        except (ValueError, KeyError, TypeError):
            return ctx.refuse(request, actor, genome, HtsgetError("InvalidInput", "bad block URL"))
        st = path.stat() if path is not None and path.exists() else None
        if (
            path is None
            or st is None
            or st.st_size != size
            or int(p.get("m", st.st_mtime_ns)) != st.st_mtime_ns
        ):
            gone = "the file changed since the ticket; ask for a new one"
            return ctx.refuse(request, actor, genome, HtsgetError("NotFound", gone))
        detail = {**what, "start": start, "end": end, "grant": grant_id}
        audit.record(
            catalog,
            actor=actor,
            event="access",
            genome=genome,
            detail={**detail, "bytes": end - start, "outcome": "served"},
        )
        return StreamingResponse(
            read_range(path, start, end),
            media_type="application/octet-stream",
            headers={"Content-Length": str(end - start), **NO_STORE},
        )

    return api
