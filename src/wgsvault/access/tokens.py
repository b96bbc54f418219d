"""Bearer tokens of principals, hashed at rest, and authentication.

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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from wgsvault import audit
from wgsvault.access.principals import audit_change, find_principal, utcnow
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import ApiToken, Principal
from wgsvault.errors import AccessDenied, InputError

#: every token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "wgv_"
#: characters of a token kept in clear (`ApiToken.prefix`): the marker and 8 random characters.
PREFIX_CHARS = len(TOKEN_PREFIX) + 8
_TOKEN_BYTES = 32
_TOKEN_MAX = 200  # longer "tokens" are not ours; refused without hashing


class Unauthenticated(AccessDenied):
    """No valid bearer token: missing, unknown, expired, revoked, or its principal disabled.

    `reason` is one of "missing", "unknown", "expired", "revoked", "disabled" (for logs; the
    server answers 401 whatever the reason).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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
        p = find_principal(s, principal)
        if p.disabled_at is not None:
            raise InputError(f"principal {p.name!r} is disabled: no token can be issued")
        while True:  # a prefix shared with another token would make revoking by prefix ambiguous
            token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
            prefix = token[:PREFIX_CHARS]
            if s.scalar(select(ApiToken.id).where(ApiToken.prefix == prefix)) is None:
                break
        expires = None if expires_in is None else utcnow() + expires_in
        s.add(
            ApiToken(
                principal_id=p.id,
                token_sha256=token_sha256(token),
                prefix=prefix,
                expires_at=expires,
            )
        )
        s.flush()
        audit_change(
            s,
            actor or audit.default_actor(),
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
        row.revoked_at = utcnow()
        name = s.get_one(Principal, row.principal_id).name
        actor = actor or audit.default_actor()
        audit_change(s, actor, "token-revoke", principal=name, token=row.prefix)
        return row


def list_tokens(catalog: Catalog, principal: Principal | str | None = None) -> list[ApiToken]:
    """Tokens (never their plaintext, which is not stored), oldest first."""
    with catalog.session() as s:
        stmt = select(ApiToken).order_by(ApiToken.id)
        if principal is not None:
            stmt = stmt.where(ApiToken.principal_id == find_principal(s, principal).id)
        return list(s.scalars(stmt))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an HTTP `Authorization: Bearer <token>` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Credential:
    """Who a valid bearer token authenticates, and which token it was (for signed URLs)."""

    principal: Principal
    token_id: int


def authenticate_token(catalog: Catalog, token: str | None) -> Credential:
    """The principal and token row of a bearer token; `Unauthenticated` if it is not valid now.

    Lookup is by the token's sha256 (see the module docstring: no constant-time comparison is
    needed). Messages never repeat the token, its prefix or its expiry.
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
            raise Unauthenticated("the token is revoked", "revoked")
        if tok.expires_at is not None and tok.expires_at <= utcnow():
            raise Unauthenticated("the token has expired", "expired")
        if principal.disabled_at is not None:
            raise Unauthenticated("the token's principal is disabled", "disabled")
        return Credential(principal, tok.id)


def authenticate(catalog: Catalog, token: str | None) -> Principal:
    """The principal a bearer token belongs to; `Unauthenticated` if it is not valid now."""
    return authenticate_token(catalog, token).principal
