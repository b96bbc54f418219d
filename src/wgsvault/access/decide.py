"""Decisions: may this principal read this genome, or this region of it?

How a decision is made (`authorize`)
    1. The principal must exist and not be disabled.
    2. The matching grants are the principal's active (unrevoked, unexpired) grants whose cohort
       contains the genome.
    3. None, or the genome is unknown to the catalog: refused as ``NOT_FOUND`` (404). A principal
       cannot tell a genome it holds no grant for from one that does not exist, since that a
       genome id is in the national store already says something about a person; the refusal's
       audit entry still records which (`Decision.known`).
    4. Any matching grant without a region allows the whole file and any region.
    5. Otherwise every matching grant is region-limited: the request must name a reference
       sequence (and optionally start/end), and the requested interval must lie inside one
       granted region; the decision is then `limited`, and the server serves only the records
       of the requested regions, never bytes of the stored file around them. A whole-file
       request, or one outside the granted regions, is refused with 403 naming the granted
       regions: the principal was granted the genome, so it learns nothing by it.
    6. The header alone (`header_only`) is allowed by any matching grant; by a region-limited
       one, `limited` (the server then serves the public header of a slice).

    `Decision.http_status` maps a decision to 200 / 403 / 404.

Authorisation is re-checked live (`still_allowed`)
    A signed block or download URL names the principal, the token and the grant it was issued
    under. Each time one is used, the principal must still be enabled, the token unrevoked and
    unexpired, and the grant unrevoked, unexpired and still covering the genome: revoking any of
    them takes effect on the next request, not when the URL expires.

No filesystem path ever comes from a request
    A request names a genome id (and a region); `authorize` decides on the id alone and the
    server resolves files from the catalog's `file` rows of that genome. Nothing a client sends
    is ever joined to a path, so no request can reach a file outside the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from wgsvault import audit
from wgsvault.access.grants import active_grants, matching_grants
from wgsvault.access.principals import utcnow
from wgsvault.access.regions import Region, check_request, parse_region
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import AccessGrant, ApiToken, Genome, Principal

#: `Decision.reason` of a genome id the principal may not know of (unknown, or not granted): 404.
NOT_FOUND = "not found"


@dataclass(frozen=True)
class Decision:
    """The answer of `authorize`: `grant_id` is the grant that allowed it (None if refused).

    `limited`: allowed by a region-limited grant, so only the requested regions' records may be
    served. `known`: the genome exists (for the audit log only; a response never tells).
    """

    allowed: bool
    reason: str
    grant_id: int | None = None
    limited: bool = False
    known: bool = True

    @property
    def http_status(self) -> int:
        """200 allowed, 404 unknown or not granted at all, 403 outside a region grant."""
        if self.allowed:
            return 200
        return 404 if self.reason == NOT_FOUND else 403


def authorize(
    catalog: Catalog,
    principal: Principal | str,
    genome: str,
    reference_name: str | None = None,
    start: int | None = None,
    end: int | None = None,
    *,
    header_only: bool = False,
) -> Decision:
    """May `principal` read `genome` (whole file, or `reference_name`[`start`:`end`], or with
    `header_only` its header)?

    Coordinates as htsget sends them: 0-based `start`, exclusive `end`, both optional.
    `InputError` for a malformed request (start/end without a reference name, end before start):
    the server answers 400 InvalidInput. The rules are in the module docstring.
    """
    check_request(reference_name, start, end)
    with catalog.session() as s:
        name = principal.name if isinstance(principal, Principal) else principal
        p = s.scalar(select(Principal).where(Principal.name == name))
        if p is None or p.disabled_at is not None:
            return Decision(False, f"principal {name} is unknown or disabled")
        if p.role == "reporting":  # aggregates only, whatever grants it may hold
            return Decision(False, f"principal {name} has the reporting role: reports only")
        g = s.scalar(select(Genome).where(Genome.name == genome))
        if g is None:
            return Decision(False, NOT_FOUND, known=False)
        matching = matching_grants(s, active_grants(s, p.id), g)
    if not matching:
        return Decision(False, NOT_FOUND)
    for grant in matching:
        if grant.region is None:
            return Decision(True, f"granted by grant {grant.id} ({grant.kind})", grant.id)
    regions = [(grant, parse_region(grant.region)) for grant in matching if grant.region]
    granted = ", ".join(sorted({str(r) for _, r in regions}))
    if header_only:
        grant = regions[0][0]
        return Decision(True, f"header, granted by grant {grant.id} ({grant.kind})", grant.id, True)
    if reference_name is None:
        return Decision(
            False,
            f"access to genome {genome} is limited to region(s) {granted}:"
            " request a region (referenceName, start, end) inside one",
        )
    for grant, r in regions:
        if r.covers(reference_name, start, end):
            reason = f"granted by grant {grant.id} ({grant.kind}, {r})"
            return Decision(True, reason, grant.id, limited=True)
    asked = str(Region(reference_name, 0 if start is None else start, end))
    return Decision(
        False, f"region {asked} of genome {genome} is outside the granted region(s) {granted}"
    )


def still_allowed(
    catalog: Catalog, *, principal_id: int, token_id: int, grant_id: int, genome: str
) -> tuple[int, str] | None:
    """None while a URL issued under (principal, token, grant) for `genome` may still be used;
    else (HTTP status, reason): 401 for the principal or token, 403 for the grant."""
    now = utcnow()
    with catalog.session() as s:
        p = s.get(Principal, principal_id)
        if p is None or p.disabled_at is not None:
            return 401, "the principal this URL was issued to is disabled"
        tok = s.get(ApiToken, token_id)
        if tok is None or tok.principal_id != principal_id or tok.revoked_at is not None:
            return 401, "the token this URL was issued under is revoked"
        if tok.expires_at is not None and tok.expires_at <= now:
            return 401, "the token this URL was issued under has expired"
        grant = s.get(AccessGrant, grant_id)
        g = s.scalar(select(Genome).where(Genome.name == genome))
        if (
            grant is None
            or grant.principal_id != principal_id
            or grant.revoked_at is not None
            or (grant.expires_at is not None and grant.expires_at <= now)
            or g is None
            or not matching_grants(s, [grant], g)
        ):
            return 403, "the grant this URL was issued under is revoked, expired or changed"
    return None


def record_decision(
    catalog: Catalog,
    principal: Principal | str,
    genome: str,
    decision: Decision,
    *,
    reference_name: str | None = None,
    start: int | None = None,
    end: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Audit a decision: event "access" if allowed, else "refuse" (for the server to call).

    The genome column holds the requested id only when the catalog knows it; an unknown id is
    kept in `detail.requested` (truncated) so probing is visible without polluting the genome
    index.
    """
    name = principal.name if isinstance(principal, Principal) else principal
    known = decision.known
    info: dict[str, Any] = {
        "principal": name,
        "reason": decision.reason,
        "grant": decision.grant_id,
        "reference_name": reference_name,
        "start": start,
        "end": end,
        **(detail or {}),
    }
    if not known:
        info["requested"] = genome[:200]
    audit.record(
        catalog,
        actor=name,
        event="access" if decision.allowed else "refuse",
        genome=genome if known else None,
        detail={k: v for k, v in info.items() if v is not None},
    )
