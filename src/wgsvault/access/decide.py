"""Decisions: may this principal read this genome, or this region of it?

How a decision is made (`authorize`)
    1. The principal must exist and not be disabled.
    2. The genome id must be known to the catalog, else ``Decision(False, "not found")``: the
       server answers 404 NotFound. A genome that is known but not granted gets 403
       PermissionDenied. (Only authenticated principals, all vetted, can tell the two apart;
       unauthenticated requests get 401 before any lookup and learn nothing.)
    3. The matching grants are the principal's active grants whose cohort contains the genome.
       None: refused (403).
    4. Any matching grant without a region allows the whole file and any region.
    5. Otherwise every matching grant is region-limited: the request must name a reference
       sequence (and optionally start/end), and the requested interval must lie inside one
       granted region. A whole-file request is refused with a reason naming the granted regions.

    `Decision.http_status` maps a decision to 200 / 403 / 404.

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
from wgsvault.access.regions import Region, check_request, parse_region
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Genome, Principal

#: `Decision.reason` of a genome id the catalog does not know (the server answers 404).
NOT_FOUND = "not found"


@dataclass(frozen=True)
class Decision:
    """The answer of `authorize`: `grant_id` is the grant that allowed it (None if refused)."""

    allowed: bool
    reason: str
    grant_id: int | None = None

    @property
    def http_status(self) -> int:
        """200 allowed, 404 unknown genome, 403 otherwise (htsget NotFound / PermissionDenied)."""
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
) -> Decision:
    """May `principal` read `genome` (whole file, or `reference_name`[`start`:`end`])?

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
        g = s.scalar(select(Genome).where(Genome.name == genome))
        if g is None:
            return Decision(False, NOT_FOUND)
        matching = matching_grants(s, active_grants(s, p.id), g)
    if not matching:
        return Decision(False, f"no grant gives {name} access to genome {genome}")
    for grant in matching:
        if grant.region is None:
            return Decision(True, f"granted by grant {grant.id} ({grant.kind})", grant.id)
    regions = [(grant, parse_region(grant.region)) for grant in matching if grant.region]
    granted = ", ".join(sorted({str(r) for _, r in regions}))
    if reference_name is None:
        return Decision(
            False,
            f"access to genome {genome} is limited to region(s) {granted}:"
            " request a region (referenceName, start, end) inside one",
        )
    for grant, r in regions:
        if r.covers(reference_name, start, end):
            return Decision(True, f"granted by grant {grant.id} ({grant.kind}, {r})", grant.id)
    asked = str(
        Region(
            reference_name,
            0 if start is None else start,
            end,
        )
    )
    return Decision(
        False, f"region {asked} of genome {genome} is outside the granted region(s) {granted}"
    )


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
    known = decision.reason != NOT_FOUND
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
