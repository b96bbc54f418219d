"""Grants: which cohort of genomes (and which regions) a principal may read.

Grants to cohorts
    An `AccessGrant` gives a principal a cohort of genomes, one of:

    - ``genome``: one genome id (`add_grant(genomes=[...])` makes one grant per genome);
    - ``patient_group``: every genome whose `patient_group` (from a manifest) is the value, now
      or later;
    - ``controller``: every genome with a present file held by that data controller.

    `project` names the research project or clinical case the grant was given for; it may
    accompany any kind and is informational (no cohort is defined by a project alone, and grants
    of kind ``project`` never match). A grant may expire (`expires_at`); an expired grant allows
    nothing, exactly like a revoked one. A grant is never edited: it is revoked (`revoked_at`) and
    a new one made. Grants, revocations and changes to principals and tokens are audited (event
    ``access``, `detail.change` saying what changed). A patient group's name appears in such an
    entry as the granted cohort, never next to a genome id, so the log never links a person to
    clinical context.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from wgsvault import audit
from wgsvault.access.principals import audit_change, check_text, find_principal, utcnow
from wgsvault.access.regions import Region, parse_region
from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import GENOME_ID
from wgsvault.catalog.models import AccessGrant, Controller, File, Genome, Principal
from wgsvault.errors import InputError

KINDS = ("genome", "patient_group", "controller")


def _cohort_known(s: Session, kind: str, value: str) -> bool:
    if kind == "genome":
        return s.scalar(select(Genome.id).where(Genome.name == value)) is not None
    if kind == "patient_group":
        return s.scalar(select(Genome.id).where(Genome.patient_group == value).limit(1)) is not None
    return s.scalar(select(Controller.id).where(Controller.name == value)) is not None


def add_grant(
    catalog: Catalog,
    principal: Principal | str,
    *,
    genomes: Sequence[str] | None = None,
    patient_group: str | None = None,
    controller: str | None = None,
    project: str | None = None,
    region: str | Region | None = None,
    expires_in: dt.timedelta | None = None,
    granted_by: str,
) -> list[AccessGrant]:
    """Grant a cohort (exactly one of `genomes`, `patient_group`, `controller`) to a principal.

    One grant per genome of an explicit list. The cohort must be known to the catalog (a typo
    must not silently grant nothing, or later something else). An identical active grant is
    not duplicated: it is returned as it is. Each new grant is audited. `expires_in` None: until
    revoked.
    """
    given = [genomes is not None, patient_group is not None, controller is not None]
    if sum(given) != 1:
        raise InputError("grant exactly one of: genomes, a patient group, a controller")
    check_text("granted by", granted_by)
    check_text("project", project, required=False)
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InputError(f"grant lifetime must be positive, not {expires_in}")
    expires = None if expires_in is None else utcnow() + expires_in
    region_text = (
        None
        if region is None
        else str(region if isinstance(region, Region) else parse_region(region))
    )
    if genomes is not None:
        if not genomes:
            raise InputError("grant: the list of genomes is empty")
        bad = [g for g in genomes if not GENOME_ID.match(g)]
        if bad:
            raise InputError(f"grant: bad genome id(s): {', '.join(map(repr, bad[:5]))}")
        wanted = [("genome", g) for g in dict.fromkeys(genomes)]
    elif patient_group is not None:
        check_text("patient group", patient_group)
        wanted = [("patient_group", patient_group)]
    else:
        assert controller is not None
        check_text("controller", controller)
        wanted = [("controller", controller)]

    with catalog.session() as s:
        p = find_principal(s, principal)
        if p.disabled_at is not None:
            raise InputError(f"principal {p.name!r} is disabled: enable a new one to grant")
        unknown = [v for k, v in wanted if not _cohort_known(s, k, v)]
        if unknown:
            what = {"genome": "genome(s)", "patient_group": "patient group"}
            raise InputError(
                f"grant: unknown {what.get(wanted[0][0], 'controller')}"
                f" {', '.join(map(repr, unknown[:5]))}"
                + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
            )
        out: list[AccessGrant] = []
        for kind, value in wanted:
            existing = s.scalar(
                select(AccessGrant).where(
                    AccessGrant.principal_id == p.id,
                    AccessGrant.kind == kind,
                    AccessGrant.value == value,
                    AccessGrant.revoked_at.is_(None),
                    AccessGrant.expires_at.is_(None),
                    _eq_or_null(AccessGrant.project, project),
                    _eq_or_null(AccessGrant.region, region_text),
                )
            )
            if existing is not None and expires is None:  # a grant with an end is always new
                out.append(existing)
                continue
            row = AccessGrant(
                principal_id=p.id,
                kind=kind,
                value=value,
                project=project,
                region=region_text,
                granted_by=granted_by,
                expires_at=expires,
            )
            s.add(row)
            s.flush()
            _audit_grant(s, granted_by, "grant", p.name, row)
            out.append(row)
        return out


def _eq_or_null(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def _audit_grant(s: Session, actor: str, change: str, principal: str, g: AccessGrant) -> None:
    audit_change(
        s,
        actor,
        change,
        genome=g.value if g.kind == "genome" else None,
        controller=g.value if g.kind == "controller" else None,
        grant=g.id,
        principal=principal,
        kind=g.kind,
        value=g.value,  # a patient group's name is the cohort here, linked to no genome
        project=g.project,
        region=g.region,
        expires_at=None if g.expires_at is None else g.expires_at.isoformat(),
        granted_by=g.granted_by,
    )


def revoke_grant(
    catalog: Catalog,
    grant_id: int | None = None,
    *,
    principal: Principal | str | None = None,
    genome: str | None = None,
    patient_group: str | None = None,
    controller: str | None = None,
    by: str | None = None,
) -> list[AccessGrant]:
    """Revoke one grant by id, or every active grant of `principal` for the cohort selected by
    exactly one of `genome`, `patient_group`, `controller` (any project, any region).

    `InputError` when nothing active matches. Each revocation is audited.
    """
    actor = by or audit.default_actor()
    check_text("revoked by", actor)
    with catalog.session() as s:
        if grant_id is not None:
            if principal is not None or genome or patient_group or controller:
                raise InputError("revoke a grant by its id or by principal and cohort, not both")
            row = s.get(AccessGrant, grant_id)
            if row is None:
                raise InputError(f"no grant {grant_id}")
            if row.revoked_at is not None:
                raise InputError(f"grant {grant_id} is revoked already")
            rows = [row]
        else:
            selectors = {"genome": genome, "patient_group": patient_group, "controller": controller}
            chosen = [(k, v) for k, v in selectors.items() if v is not None]
            if principal is None or len(chosen) != 1:
                raise InputError(
                    "revoke: give a grant id, or a principal and one of genome, patient group,"
                    " controller"
                )
            p = find_principal(s, principal)
            kind, value = chosen[0]
            rows = list(
                s.scalars(
                    select(AccessGrant).where(
                        AccessGrant.principal_id == p.id,
                        AccessGrant.kind == kind,
                        AccessGrant.value == value,
                        AccessGrant.revoked_at.is_(None),
                    )
                )
            )
            if not rows:
                raise InputError(f"principal {p.name!r} has no active {kind} grant {value!r}")
        now = utcnow()
        for row in rows:
            row.revoked_at = now
            name = s.get_one(Principal, row.principal_id).name
            _audit_grant(s, actor, "revoke", name, row)
        return rows


def list_grants(
    catalog: Catalog, principal: Principal | str | None = None, *, include_revoked: bool = False
) -> list[AccessGrant]:
    """Grants (active only unless `include_revoked`), of one principal or all, oldest first."""
    with catalog.session() as s:
        stmt = select(AccessGrant).order_by(AccessGrant.id)
        if principal is not None:
            stmt = stmt.where(AccessGrant.principal_id == find_principal(s, principal).id)
        if not include_revoked:
            stmt = stmt.where(AccessGrant.revoked_at.is_(None))
        return list(s.scalars(stmt))


def active_grants(s: Session, principal_id: int) -> list[AccessGrant]:
    return list(
        s.scalars(
            select(AccessGrant)
            .where(
                AccessGrant.principal_id == principal_id,
                AccessGrant.revoked_at.is_(None),
                or_(AccessGrant.expires_at.is_(None), AccessGrant.expires_at > utcnow()),
            )
            .order_by(AccessGrant.id)
        )
    )


def _controllers_of(s: Session, genome_id: int) -> set[str]:
    """Controllers holding a present file of the genome."""
    return set(
        s.scalars(
            select(Controller.name)
            .join(File, File.controller_id == Controller.id)
            .where(File.genome_id == genome_id, File.status == "present")
            .distinct()
        )
    )


def matching_grants(s: Session, grants: list[AccessGrant], genome: Genome) -> list[AccessGrant]:
    controllers: set[str] | None = None
    found = []
    for g in grants:
        if g.kind == "genome":
            ok = g.value == genome.name
        elif g.kind == "patient_group":
            ok = genome.patient_group is not None and g.value == genome.patient_group
        elif g.kind == "controller":
            if controllers is None:
                controllers = _controllers_of(s, genome.id)
            ok = g.value in controllers
        else:  # "project" alone defines no cohort
            ok = False
        if ok:
            found.append(g)
    return found


def cohort(catalog: Catalog, principal: Principal | str) -> list[str]:
    """Genome ids (sorted) the principal may read, wholly or in granted regions only."""
    with catalog.session() as s:
        name = principal.name if isinstance(principal, Principal) else principal
        p = s.scalar(select(Principal).where(Principal.name == name))
        if p is None or p.disabled_at is not None:
            return []
        by_kind: dict[str, set[str]] = {k: set() for k in KINDS}
        for g in active_grants(s, p.id):
            if g.kind in by_kind:
                by_kind[g.kind].add(g.value)
        ids: set[str] = set()
        if by_kind["genome"]:
            ids.update(s.scalars(select(Genome.name).where(Genome.name.in_(by_kind["genome"]))))
        if by_kind["patient_group"]:
            ids.update(
                s.scalars(
                    select(Genome.name).where(Genome.patient_group.in_(by_kind["patient_group"]))
                )
            )
        if by_kind["controller"]:
            ids.update(
                s.scalars(
                    select(Genome.name)
                    .join(File, File.genome_id == Genome.id)
                    .join(Controller, Controller.id == File.controller_id)
                    .where(Controller.name.in_(by_kind["controller"]), File.status == "present")
                    .distinct()
                )
            )
        return sorted(ids)
