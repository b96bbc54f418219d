"""`GET /blocks/{signed token}`: the bytes a ticket or a restore handed out, audited.

The token is signed (signing.py) over catalog file id, byte range, file size, principal and
expiry, so it cannot be used after expiry, for another range or another file, and it never carries
the API token. A file that changed since the ticket (another size, or no longer present in the
catalog) is refused. Restored files are named relative to the scratch directory and must resolve
inside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from wgsvault import audit
from wgsvault.catalog.models import File
from wgsvault.serve.context import Context
from wgsvault.serve.errors import HtsgetError

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


def router(ctx: Context) -> APIRouter:
    """The block route over `ctx`."""
    api = APIRouter()
    catalog, scratch = ctx.catalog, ctx.scratch

    def serve_bytes(
        p: dict[str, Any], path: Path, start: int, end: int, what: dict[str, Any]
    ) -> StreamingResponse:
        """Stream bytes [start, end) of a file a signed token named, after auditing it."""
        detail = {**what, "bytes": end - start, "outcome": "served"}
        audit.record(
            catalog, actor=f"principal#{p['p']}", event="access", genome=p["g"], detail=detail
        )
        return StreamingResponse(
            read_range(path, start, end),
            media_type="application/octet-stream",
            headers={"Content-Length": str(end - start)},
        )

    def scratch_block(request: Request, p: dict[str, Any]) -> Response:
        path = (scratch / p["r"]).resolve()
        if (
            scratch.resolve() not in path.parents
            or not path.exists()
            or path.stat().st_size != p["n"]
        ):
            return ctx.refuse(
                request,
                f"principal#{p['p']}",
                p["g"],
                HtsgetError("NotFound", "the restored file is gone; restore again"),
            )
        return serve_bytes(p, path, 0, p["n"], {"kind": "restored-file", "name": path.name})

    @api.get("/blocks/{token}")
    def block(token: str, request: Request) -> Response:
        try:
            p = ctx.signer.verify(token)
        except HtsgetError as exc:
            return ctx.refuse(request, "anonymous", None, exc)
        except (ValueError, KeyError, json.JSONDecodeError):
            return ctx.refuse(
                request, "anonymous", None, HtsgetError("InvalidAuthentication", "bad block URL")
            )
        if p.get("k") == "scratch":
            return scratch_block(request, p)
        with catalog.session() as s:
            f = s.get(File, int(p["f"]))
            path = Path(f.path) if f is not None and f.status == "present" else None
        if f is None or path is None or not path.exists() or path.stat().st_size != p["n"]:
            return ctx.refuse(
                request,
                f"principal#{p['p']}",
                p["g"],
                HtsgetError("NotFound", "the file changed since the ticket"),
            )
        start, end = int(p["s"]), int(p["e"])
        what = {"kind": "block", "file": f.id, "start": start, "end": end}
        return serve_bytes(p, path, start, end, what)

    return api
