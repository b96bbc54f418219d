"""What every route of the service shares: settings, the catalog, the signer, the caches, and the
helpers that authenticate a request, refuse it (audited once) and find a genome's stored file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wgsvault import access, audit
from wgsvault.access import Credential
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File, Genome
from wgsvault.errors import AccessDenied
from wgsvault.serve.beacon_settings import BeaconSettings
from wgsvault.serve.errors import HtsgetError, error_response
from wgsvault.serve.params import GENOME_ID, Limits
from wgsvault.serve.refusals import RefusalCounter
from wgsvault.serve.signing import Signer

#: the one message of every 401: it never says which token, why, or until when
UNAUTHENTICATED = "a valid bearer token is required (Authorization: Bearer <token>)"


@dataclass
class Settings:
    catalog_url: str
    home: Path
    base_url: str  # how clients reach this server, e.g. http://127.0.0.1:8080
    block_ttl: int = 900  # seconds a block or download URL stays valid
    limits: Limits = field(default_factory=Limits)
    restores_per_principal: int = 1  # restores one principal may run at once (per process)
    restores_total: int = 2  # restores that may run at once (per process)
    refusal_window: float = 60.0  # seconds over which anonymous refusals are counted
    reap_every: float = 60.0  # seconds between sweeps of expired slices and restores
    targets: Path | None = None  # the dashboard's targets file (report/targets.py); None: shipped
    beacon: BeaconSettings = field(default_factory=BeaconSettings)  # beacon_settings.py


@dataclass
class Context:
    settings: Settings
    catalog: Catalog
    signer: Signer
    refusals: RefusalCounter

    @property
    def scratch(self) -> Path:
        """Where restore-on-demand writes the files it serves."""
        return self.settings.home / "restore-scratch"

    @property
    def slices(self) -> Path:
        """Where the slices for region-limited principals are written."""
        return self.settings.home / "serve-cache" / "slices"

    def url(self, token: str) -> str:
        return f"{self.settings.base_url}/blocks/{token}"

    def authenticate(self, request: Request) -> Credential:
        """The principal and token of a request; HtsgetError 401 if there is none."""
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        try:
            return access.authenticate_token(self.catalog, token)
        except AccessDenied:
            raise HtsgetError("InvalidAuthentication", UNAUTHENTICATED) from None

    def refuse_anonymous(self, request: Request, e: HtsgetError) -> JSONResponse:
        """A refusal without a principal: counted per source (refusals.py), then answered."""
        source = request.client.host if request.client else "unknown"
        self.refusals.add(source, e.error, e.status, request.url.path)
        return error_response(e)

    def refuse(
        self, request: Request, who: str, genome: str | None, e: HtsgetError
    ) -> JSONResponse:
        """A refusal of an authenticated principal (`who`): one audit entry, then the answer."""
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


def denied(d: access.Decision, genome: str) -> HtsgetError:
    """The answer to a refused decision: 404 exactly as for an unknown id, or 403."""
    if d.http_status == 404:
        return HtsgetError("NotFound", f"no genome {genome} that you may read")
    return HtsgetError("PermissionDenied", d.reason)


def who(cred: Credential) -> str:
    """The audit actor of an authenticated request."""
    return f"principal:{cred.principal.name}"
