"""What every route of the service shares: settings, the catalog, the signer, and the helpers
that authenticate a request, refuse it (audited) and find a genome's stored file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wgsvault import access, audit
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File, Genome, Principal
from wgsvault.errors import AccessDenied
from wgsvault.serve.errors import HtsgetError, error_response
from wgsvault.serve.signing import Signer

#: a genome id as a request may name it; anything else is refused before any lookup
GENOME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass
class Settings:
    catalog_url: str
    home: Path
    base_url: str  # how clients reach this server, e.g. http://127.0.0.1:8080
    block_ttl: int = 900  # seconds a block URL stays valid


@dataclass
class Context:
    settings: Settings
    catalog: Catalog
    signer: Signer

    @property
    def scratch(self) -> Path:
        """Where restore-on-demand writes the files it serves."""
        return self.settings.home / "restore-scratch"

    def principal_of(self, request: Request) -> Principal:
        """The authenticated principal of a request; HtsgetError 401 if there is none."""
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            return access.authenticate(self.catalog, token)
        except AccessDenied as exc:
            raise HtsgetError("InvalidAuthentication", str(exc)) from None

    def refuse(
        self, request: Request, who: str, genome: str | None, e: HtsgetError
    ) -> JSONResponse:
        """Audit a refusal, then answer it."""
        audit.record(
            self.catalog,
            actor=who,
            event="refuse",
            genome=genome if genome and GENOME_ID.match(genome) else None,
            detail={
                "path": request.url.path[:300],
                "error": e.error,
                "status": e.status,
                "reason": str(e)[:300],
            },
        )
        return error_response(e)

    def locate(self, genome: str, kind: str) -> tuple[File, str]:
        """The genome's stored file of `kind` (national copy first) from the catalog."""
        with self.catalog.session() as s:
            rows = s.execute(
                select(File, Controller.name, Controller.kind)
                .join(Genome, Genome.id == File.genome_id)
                .outerjoin(Controller, Controller.id == File.controller_id)
                .where(Genome.name == genome, File.type == kind, File.status == "present")
            ).all()
        if not rows:
            raise HtsgetError("NotFound", f"no {kind.upper()} stored for {genome}")
        ordered = sorted(rows, key=lambda r: (r[2] != "national", r[0].path))
        f, ctrl, _ = ordered[0]
        return f, ctrl or ""
