"""Who may read which genomes: principals, bearer tokens, grants, regions and decisions.

Clinicians and approved researchers read genomes over GA4GH htsget. The server authenticates the
request, asks `authorize` and serves, or refuses, what this module decides. The model:

Principals
    A `Principal` is a person, group or service that may be granted access (`add_principal`,
    unique name). Disabling one (`disable_principal`) stops all of its tokens and grants at once
    without deleting anything, so the record of who had access stays.

Bearer tokens, hashed at rest
    `issue_token` makes ``wgv_`` + `secrets.token_urlsafe(32)` (256 random bits) and returns the
    plaintext exactly once. The catalog keeps only its sha256 and its first characters (the
    `prefix`, e.g. ``wgv_Ab3dEf9h``, to recognise and revoke a token without holding it). A stolen
    catalog therefore yields no usable token. `authenticate` hashes the presented token and looks
    the digest up: the comparison is an indexed equality on a digest, never a character-by-
    character comparison of a secret, so no constant-time comparison is needed (timing reveals at
    most something about a sha256, which does not help to forge a token). Missing, unknown,
    expired and revoked tokens and disabled principals all raise `Unauthenticated` (an
    `AccessDenied`): the server answers 401.

Grants to cohorts
    An `AccessGrant` gives a principal a cohort of genomes, one of:

    - ``genome``: one genome id (`add_grant(genomes=[...])` makes one grant per genome);
    - ``patient_group``: every genome whose `patient_group` (from a manifest) is the value, now
      or later;
    - ``controller``: every genome with a present file held by that data controller.

    `project` names the research project or clinical case the grant was given for; it may
    accompany any kind and is informational (no cohort is defined by a project alone, and grants
    of kind ``project`` never match). A grant is never edited: it is revoked (`revoked_at`) and a
    new one made. Grants, revocations and changes to principals and tokens are audited (event
    ``access``, `detail.change` saying what changed). A patient group's name appears in such an
    entry as the granted cohort, never next to a genome id, so the log never links a person to
    clinical context.

Region restrictions
    A grant may be limited to one region, given as text ``chr1:100-200`` (1-based, inclusive, as
    samtools and htsget users write it), ``chr1:100`` (to the end) or ``chr1`` (the whole
    sequence); ``{name}:start-end`` quotes a sequence name containing ``:``. In memory `Region`
    is 0-based half-open (`start`, `end`; `end` None = to the end of the sequence), the
    coordinates htsget requests use. Sequence names are compared exactly as the file's header
    spells them (``chr1`` and ``1`` are different sequences), so a mismatch refuses, never
    widens.

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

import datetime as dt
import getpass
import hashlib
import re
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wgsvault import audit
from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import GENOME_ID
from wgsvault.catalog.models import (
    AccessGrant,
    ApiToken,
    Controller,
    File,
    Genome,
    Principal,
)
from wgsvault.errors import AccessDenied, InputError

#: every token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "wgv_"
#: characters of a token kept in clear (`ApiToken.prefix`): the marker and 8 random characters.
PREFIX_CHARS = len(TOKEN_PREFIX) + 8
_TOKEN_BYTES = 32
_TOKEN_MAX = 200  # longer "tokens" are not ours; refused without hashing

#: `Decision.reason` of a genome id the catalog does not know (the server answers 404).
NOT_FOUND = "not found"

KINDS = ("genome", "patient_group", "controller")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}\Z")
#: a reference sequence name as the SAM specification allows it
_SEQ_NAME = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*\Z")
_COORD = re.compile(r"[0-9][0-9,]*\Z")


class Unauthenticated(AccessDenied):
    """No valid bearer token: missing, unknown, expired, revoked, or its principal disabled.

    `reason` is one of "missing", "unknown", "expired", "revoked", "disabled" (for logs; the
    server answers 401 whatever the reason).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_actor() -> str:
    """`user@host` of this process: the actor of a change when none is given."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _text(what: str, value: str | None, *, required: bool = True, limit: int = 200) -> None:
    if value is None:
        if required:
            raise InputError(f"{what} is required")
        return
    if not value.strip():
        raise InputError(f"{what} must not be empty")
    if len(value) > limit:
        raise InputError(f"{what} is longer than {limit} characters: {value[:40]!r}...")


def _audit_change(
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


# --------------------------------------------------------------------------- principals


def _principal(session: Session, principal: Principal | str) -> Principal:
    name = principal.name if isinstance(principal, Principal) else principal
    row = session.scalar(select(Principal).where(Principal.name == name))
    if row is None:
        raise InputError(f"principal {name!r} is unknown; add it with `wgsvault principal add`")
    return row


def add_principal(
    catalog: Catalog, name: str, description: str | None = None, *, actor: str | None = None
) -> Principal:
    """Add a principal; `InputError` if the name is taken or not a plain name."""
    if not _NAME.match(name or ""):
        raise InputError(
            f"principal name {name!r}: use letters, digits and . _ @ + - (at most 200 characters,"
            " starting with a letter or digit)"
        )
    _text("description", description, required=False, limit=2000)
    with catalog.session() as s:
        if s.scalar(select(Principal.id).where(Principal.name == name)) is not None:
            raise InputError(f"principal {name!r} exists already")
        row = Principal(name=name, description=description)
        s.add(row)
        s.flush()
        _audit_change(s, actor or default_actor(), "principal-add", principal=name)
        return row


def disable_principal(
    catalog: Catalog, principal: Principal | str, *, actor: str | None = None
) -> Principal:
    """Disable a principal: its tokens stop authenticating and its grants stop allowing."""
    with catalog.session() as s:
        row = _principal(s, principal)
        if row.disabled_at is not None:
            raise InputError(f"principal {row.name!r} is disabled already")
        row.disabled_at = _now()
        _audit_change(s, actor or default_actor(), "principal-disable", principal=row.name)
        return row


def list_principals(catalog: Catalog) -> list[Principal]:
    """All principals, by name."""
    with catalog.session() as s:
        return list(s.scalars(select(Principal).order_by(Principal.name)))


# --------------------------------------------------------------------------- tokens


def token_sha256(token: str) -> str:
    """The digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    catalog: Catalog,
    principal: Principal | str,
    *,
    expires_in: dt.timedelta | None = None,
    actor: str | None = None,
) -> str:
    """A new bearer token of `principal`; the plaintext is returned here and never stored.

    `expires_in` None: valid until revoked.
    """
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InputError(f"token lifetime must be positive, not {expires_in}")
    with catalog.session() as s:
        p = _principal(s, principal)
        if p.disabled_at is not None:
            raise InputError(f"principal {p.name!r} is disabled: no token can be issued")
        while True:  # a prefix shared with another token would make revoking by prefix ambiguous
            token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
            prefix = token[:PREFIX_CHARS]
            if s.scalar(select(ApiToken.id).where(ApiToken.prefix == prefix)) is None:
                break
        expires = None if expires_in is None else _now() + expires_in
        s.add(
            ApiToken(
                principal_id=p.id,
                token_sha256=token_sha256(token),
                prefix=prefix,
                expires_at=expires,
            )
        )
        s.flush()
        _audit_change(
            s,
            actor or default_actor(),
            "token-issue",
            principal=p.name,
            token=prefix,
            expires_at=None if expires is None else expires.isoformat(),
        )
    return token


def revoke_token(catalog: Catalog, token_or_prefix: str, *, actor: str | None = None) -> ApiToken:
    """Revoke a token, given in full or by its prefix (as `token list` shows it)."""
    key = (token_or_prefix or "").strip()
    if len(key) > PREFIX_CHARS:
        stmt = select(ApiToken).where(ApiToken.token_sha256 == token_sha256(key))
    elif len(key) == PREFIX_CHARS:
        stmt = select(ApiToken).where(ApiToken.prefix == key)
    else:
        raise InputError(
            f"token {key!r}: give the whole token or its {PREFIX_CHARS}-character prefix"
            f" ({TOKEN_PREFIX}...)"
        )
    with catalog.session() as s:
        rows = list(s.scalars(stmt))
        if not rows:
            raise InputError(f"no token {key[:PREFIX_CHARS]!r}")
        if len(rows) > 1:  # pragma: no cover - issue_token keeps prefixes unique
            raise InputError(f"several tokens start with {key!r}: revoke with the whole token")
        row = rows[0]
        if row.revoked_at is not None:
            raise InputError(f"token {row.prefix} is revoked already")
        row.revoked_at = _now()
        name = s.get_one(Principal, row.principal_id).name
        _audit_change(s, actor or default_actor(), "token-revoke", principal=name, token=row.prefix)
        return row


def list_tokens(catalog: Catalog, principal: Principal | str | None = None) -> list[ApiToken]:
    """Tokens (never their plaintext, which is not stored), oldest first."""
    with catalog.session() as s:
        stmt = select(ApiToken).order_by(ApiToken.id)
        if principal is not None:
            stmt = stmt.where(ApiToken.principal_id == _principal(s, principal).id)
        return list(s.scalars(stmt))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an HTTP `Authorization: Bearer <token>` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(catalog: Catalog, token: str | None) -> Principal:
    """The principal a bearer token belongs to; `Unauthenticated` if it is not valid now.

    Lookup is by the token's sha256 (see the module docstring: no constant-time comparison is
    needed). The message never repeats the token.
    """
    if not token:
        raise Unauthenticated("a bearer token is required", "missing")
    if len(token) > _TOKEN_MAX or not token.startswith(TOKEN_PREFIX):
        raise Unauthenticated("unknown token", "unknown")
    with catalog.session() as s:
        row = s.execute(
            select(ApiToken, Principal)
            .join(Principal, Principal.id == ApiToken.principal_id)
            .where(ApiToken.token_sha256 == token_sha256(token))
        ).one_or_none()
        if row is None:
            raise Unauthenticated("unknown token", "unknown")
        tok, principal = row
        if tok.revoked_at is not None:
            raise Unauthenticated(f"token {tok.prefix} is revoked", "revoked")
        if tok.expires_at is not None and tok.expires_at <= _now():
            raise Unauthenticated(
                f"token {tok.prefix} expired at {tok.expires_at:%Y-%m-%d %H:%M} UTC",
                "expired",
            )
        if principal.disabled_at is not None:
            raise Unauthenticated(f"principal {principal.name} is disabled", "disabled")
        return principal


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Region:
    """A sequence interval, 0-based half-open; `end` None = to the end of the sequence."""

    name: str
    start: int = 0
    end: int | None = None

    def __str__(self) -> str:
        """1-based inclusive text, as `parse_region` reads it back."""
        name = f"{{{self.name}}}" if ":" in self.name else self.name
        if self.start == 0 and self.end is None:
            return name
        if self.end is None:
            return f"{name}:{self.start + 1}"
        return f"{name}:{self.start + 1}-{self.end}"

    def covers(self, reference_name: str | None, start: int | None, end: int | None) -> bool:
        """Whether a request (htsget coordinates: 0-based `start`, exclusive `end`, None = from
        the beginning / to the end of the sequence) lies wholly inside this region.

        A request without `reference_name` (the whole file) is covered by no region.
        """
        if reference_name is None or reference_name != self.name:
            return False
        lo = 0 if start is None else start
        if lo < self.start:
            return False
        if self.end is None:
            return True
        return end is not None and end <= self.end


def parse_region(text: str) -> Region:
    """`chr1:100-200` (1-based inclusive), `chr1:100` (to the end), `chr1`, `{name:x}:1-9`."""
    raw = (text or "").strip()
    if not raw:
        raise InputError("region is empty: expected chr:start-end, e.g. chr1:100-200")
    if raw.startswith("{"):
        name, brace, rest = raw[1:].partition("}")
        if not brace or (rest and not rest.startswith(":")):
            raise InputError(f"region {text!r}: expected {{name}} or {{name}}:start-end")
        span = rest[1:] if rest else None
    else:
        name, colon, span = raw.rpartition(":")
        if not colon:
            name, span = raw, None
    if not _SEQ_NAME.match(name):
        raise InputError(f"region {text!r}: bad sequence name {name!r}")
    if span is None:
        return Region(name)
    first, dash, last = span.partition("-")
    if not _COORD.match(first) or (dash and not _COORD.match(last)):
        raise InputError(
            f"region {text!r}: expected chr:start-end with 1-based positions, e.g. chr1:100-200"
        )
    start = int(first.replace(",", ""))
    end = int(last.replace(",", "")) if dash else None
    if start < 1:
        raise InputError(f"region {text!r}: positions are 1-based; the first is 1")
    if end is not None and end < start:
        raise InputError(f"region {text!r}: end {end} is before start {start}")
    return Region(name, start - 1, end)


def _check_request(reference_name: str | None, start: int | None, end: int | None) -> None:
    if reference_name is None:
        if start is not None or end is not None:
            raise InputError("start and end need a reference name")
        return
    if not reference_name:
        raise InputError("reference name must not be empty")
    for what, v in (("start", start), ("end", end)):
        if v is not None and v < 0:
            raise InputError(f"{what} must not be negative, not {v}")
    if start is not None and end is not None and end < start:
        raise InputError(f"end {end} is before start {start}")


# --------------------------------------------------------------------------- grants


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
    granted_by: str,
) -> list[AccessGrant]:
    """Grant a cohort (exactly one of `genomes`, `patient_group`, `controller`) to a principal.

    One grant per genome of an explicit list. The cohort must be known to the catalog (a typo
    must not silently grant nothing, or later something else). An identical active grant is
    not duplicated: it is returned as it is. Each new grant is audited.
    """
    given = [genomes is not None, patient_group is not None, controller is not None]
    if sum(given) != 1:
        raise InputError("grant exactly one of: genomes, a patient group, a controller")
    _text("granted by", granted_by)
    _text("project", project, required=False)
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
        _text("patient group", patient_group)
        wanted = [("patient_group", patient_group)]
    else:
        assert controller is not None
        _text("controller", controller)
        wanted = [("controller", controller)]

    with catalog.session() as s:
        p = _principal(s, principal)
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
                    _eq_or_null(AccessGrant.project, project),
                    _eq_or_null(AccessGrant.region, region_text),
                )
            )
            if existing is not None:
                out.append(existing)
                continue
            row = AccessGrant(
                principal_id=p.id,
                kind=kind,
                value=value,
                project=project,
                region=region_text,
                granted_by=granted_by,
            )
            s.add(row)
            s.flush()
            _audit_grant(s, granted_by, "grant", p.name, row)
            out.append(row)
        return out


def _eq_or_null(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def _audit_grant(s: Session, actor: str, change: str, principal: str, g: AccessGrant) -> None:
    _audit_change(
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
    actor = by or default_actor()
    _text("revoked by", actor)
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
            p = _principal(s, principal)
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
        now = _now()
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
            stmt = stmt.where(AccessGrant.principal_id == _principal(s, principal).id)
        if not include_revoked:
            stmt = stmt.where(AccessGrant.revoked_at.is_(None))
        return list(s.scalars(stmt))


# --------------------------------------------------------------------------- decisions


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


def _active_grants(s: Session, principal_id: int) -> list[AccessGrant]:
    return list(
        s.scalars(
            select(AccessGrant)
            .where(AccessGrant.principal_id == principal_id, AccessGrant.revoked_at.is_(None))
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


def _matching(s: Session, grants: list[AccessGrant], genome: Genome) -> list[AccessGrant]:
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
    _check_request(reference_name, start, end)
    with catalog.session() as s:
        name = principal.name if isinstance(principal, Principal) else principal
        p = s.scalar(select(Principal).where(Principal.name == name))
        if p is None or p.disabled_at is not None:
            return Decision(False, f"principal {name} is unknown or disabled")
        g = s.scalar(select(Genome).where(Genome.name == genome))
        if g is None:
            return Decision(False, NOT_FOUND)
        matching = _matching(s, _active_grants(s, p.id), g)
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


def cohort(catalog: Catalog, principal: Principal | str) -> list[str]:
    """Genome ids (sorted) the principal may read, wholly or in granted regions only."""
    with catalog.session() as s:
        name = principal.name if isinstance(principal, Principal) else principal
        p = s.scalar(select(Principal).where(Principal.name == name))
        if p is None or p.disabled_at is not None:
            return []
        by_kind: dict[str, set[str]] = {k: set() for k in KINDS}
        for g in _active_grants(s, p.id):
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
