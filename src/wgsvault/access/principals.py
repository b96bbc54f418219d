"""Principals: the people, groups and services that may be granted access.

Principals
    A `Principal` is a person, group or service that may be granted access (`add_principal`,
    unique name). Disabling one (`disable_principal`) stops all of its tokens and grants at once
    without deleting anything, so the record of who had access stays.

Every change to principals, tokens and grants is audited (event ``access``, `detail.change`
saying what changed); `changes` holds the helpers the other modules of this stage share.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wgsvault import audit
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Principal
from wgsvault.errors import InputError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}\Z")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_text(what: str, value: str | None, *, required: bool = True, limit: int = 200) -> None:
    if value is None:
        if required:
            raise InputError(f"{what} is required")
        return
    if not value.strip():
        raise InputError(f"{what} must not be empty")
    if len(value) > limit:
        raise InputError(f"{what} is longer than {limit} characters: {value[:40]!r}...")


def audit_change(
    session: Session,
    actor: str,
    change: str,
    *,
    genome: str | None = None,
    controller: str | None = None,
    **detail: Any,
) -> None:
    audit.append(
        session,
        actor=actor,
        event="access",
        genome=genome,
        controller=controller,
        detail={"change": change, **{k: v for k, v in detail.items() if v is not None}},
    )


def find_principal(session: Session, principal: Principal | str) -> Principal:
    name = principal.name if isinstance(principal, Principal) else principal
    row = session.scalar(select(Principal).where(Principal.name == name))
    if row is None:
        raise InputError(f"principal {name!r} is unknown; add it with `wgsvault principal add`")
    return row


#: what a principal is for: `data` (genomes, as its grants decide), `reporting` (aggregate
#: reports and the dashboard, counts 1-4 suppressed), `admin` (a data-controller administrator:
#: reports with exact counts)
ROLES = ("data", "reporting", "admin")


def add_principal(
    catalog: Catalog,
    name: str,
    description: str | None = None,
    *,
    actor: str | None = None,
    role: str = "data",
) -> Principal:
    """Add a principal; `InputError` if the name is taken or not a plain name."""
    if role not in ROLES:
        raise InputError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if not _NAME.match(name or ""):
        raise InputError(
            f"principal name {name!r}: use letters, digits and . _ @ + - (at most 200 characters,"
            " starting with a letter or digit)"
        )
    check_text("description", description, required=False, limit=2000)
    with catalog.session() as s:
        if s.scalar(select(Principal.id).where(Principal.name == name)) is not None:
            raise InputError(f"principal {name!r} exists already")
        row = Principal(name=name, description=description, role=role)
        s.add(row)
        s.flush()
        audit_change(s, actor or audit.default_actor(), "principal-add", principal=name, role=role)
        return row


def disable_principal(
    catalog: Catalog, principal: Principal | str, *, actor: str | None = None
) -> Principal:
    """Disable a principal: its tokens stop authenticating and its grants stop allowing."""
    with catalog.session() as s:
        row = find_principal(s, principal)
        if row.disabled_at is not None:
            raise InputError(f"principal {row.name!r} is disabled already")
        row.disabled_at = utcnow()
        audit_change(s, actor or audit.default_actor(), "principal-disable", principal=row.name)
        return row


def list_principals(catalog: Catalog) -> list[Principal]:
    """All principals, by name."""
    with catalog.session() as s:
        return list(s.scalars(select(Principal).order_by(Principal.name)))
