"""Who is looking at the dashboard: a bearer token or the session cookie, and the role it has.

Browsers cannot send a bearer header when a person follows a link, so the dashboard's login
form (dashboard.py) exchanges an API token for a session cookie:

* the cookie holds a signed payload (signing.py, the service's key) naming the principal and the
  token it was made from, never the token itself, with `k` "dashboard" so that no other signed
  token of the service (block URLs) passes for a session, nor a session for one;
* it is valid for `SESSION_TTL` seconds after the last page view (each view sets a fresh one)
  and never more than `SESSION_MAX` after the login;
* the principal and the token are checked again on every request: disabling the one or
  revoking or expiring the other ends the session at once;
* HttpOnly, SameSite=Strict, scoped to the dashboard's path, and Secure when the service's base
  URL (or the request) is https.

`Authorization: Bearer <token>` works as everywhere else in the service and takes precedence: a
request with a bad header is refused even if it also carries a good cookie. `ROLES` says who may
see the dashboard and whether counts are exact (report/suppress.py): `reporting` sees counts of
1 to 4 as "<5", `admin` (a data-controller administrator) exact counts; principals of any other
role are refused.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from dataclasses import dataclass

from fastapi import Request, Response

from wgsvault import access
from wgsvault.catalog.models import ApiToken, Principal
from wgsvault.serve.context import Context
from wgsvault.serve.errors import HtsgetError

PREFIX = "/dashboard"  # where the dashboard is mounted: the cookie's path
COOKIE = "wgsvault_dashboard"
SESSION_TTL = 30 * 60  # seconds a session lives after the last page view
SESSION_MAX = 8 * 3600  # seconds a session lives after login, however busy
ROLES = {"reporting": False, "admin": True}  # role -> sees exact counts
NOT_ALLOWED = "the dashboard is for principals with the role reporting or admin"


@dataclass(frozen=True)
class Viewer:
    """An authenticated principal; `issued` is when its session began (now for a bearer)."""

    name: str
    role: str
    principal_id: int
    token_id: int
    issued: float
    cookie: bool

    @property
    def allowed(self) -> bool:
        return self.role in ROLES

    @property
    def exact(self) -> bool:
        return ROLES.get(self.role, False)

    @property
    def actor(self) -> str:
        return f"principal:{self.name}"


class Unauthenticated(Exception):
    """No valid credentials: no header or cookie, or a bad, expired or revoked one."""


def login(ctx: Context, token: str | None) -> Viewer:
    """The viewer a token authenticates (for a new session); access.Unauthenticated if none."""
    cred = access.authenticate_token(ctx.catalog, token)
    p = cred.principal
    return Viewer(p.name, p.role, p.id, cred.token_id, time.time(), cookie=True)


def _live(ctx: Context, principal_id: int, token_id: int) -> Principal | None:
    """The principal while the token a session was made from is still valid, else None."""
    with ctx.catalog.session() as s:
        p, tok = s.get(Principal, principal_id), s.get(ApiToken, token_id)
        if p is None or tok is None or tok.principal_id != p.id:
            return None
        expired = tok.expires_at is not None and tok.expires_at <= dt.datetime.now(dt.UTC)
        if p.disabled_at is not None or tok.revoked_at is not None or expired:
            return None
        return p


def viewer(ctx: Context, request: Request) -> Viewer:
    """Who asks, by bearer token or session cookie; Unauthenticated if no one (valid)."""
    header = request.headers.get("authorization")
    if header is not None:
        try:
            v = login(ctx, access.bearer_token(header))
        except access.Unauthenticated:
            raise Unauthenticated from None
        return Viewer(v.name, v.role, v.principal_id, v.token_id, v.issued, cookie=False)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise Unauthenticated
    try:
        data = ctx.signer.verify(cookie)
        if data.get("k") != "dashboard":
            raise Unauthenticated
        pid, tid, issued = int(data["p"]), int(data["t"]), float(data["i"])
    except (HtsgetError, ValueError, KeyError, TypeError):
        raise Unauthenticated from None
    if issued + SESSION_MAX < time.time():
        raise Unauthenticated
    live = _live(ctx, pid, tid)
    if live is None:
        raise Unauthenticated
    return Viewer(live.name, live.role, live.id, tid, issued, cookie=True)


def set_cookie(ctx: Context, request: Request, response: Response, v: Viewer) -> None:
    """Give `v` a session cookie valid for the next `SESSION_TTL` seconds."""
    expires = min(time.time() + SESSION_TTL, v.issued + SESSION_MAX)
    payload = {"k": "dashboard", "p": v.principal_id, "t": v.token_id, "i": v.issued}
    secure = ctx.settings.base_url.startswith("https://") or request.url.scheme == "https"
    response.set_cookie(
        COOKIE,
        ctx.signer.sign({**payload, "x": expires}),
        max_age=SESSION_TTL,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX)


def same_origin(ctx: Context, request: Request) -> bool:
    """Whether a form POST comes from this service's own pages (a browser's cross-site POST
    always carries an Origin header; a request without one is not a browser's)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = urllib.parse.urlsplit(ctx.settings.base_url)
    here = f"{request.url.scheme}://{request.url.netloc}"
    return origin in (f"{own.scheme}://{own.netloc}", here)


def next_path(target: str | None) -> str:
    """Where to go after login: a dashboard path of this service, never another site."""
    if not target or any(c in target for c in "\\\r\n"):
        return PREFIX
    if target == PREFIX or target.startswith((f"{PREFIX}/", f"{PREFIX}?")):
        return target
    return PREFIX
