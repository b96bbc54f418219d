"""Command line of access control: principals, tokens and grants.

Parsing and printing only; the model and the rules are in `wgsvault.access`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from wgsvault import access
from wgsvault.catalog.models import AccessGrant
from wgsvault.cli.common import ACCESS, catalog_session, out
from wgsvault.errors import AccessDenied, InputError

app = typer.Typer()
principal_app = typer.Typer(help="Who may be granted access to genomes.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens of principals (htsget).", no_args_is_help=True)
grant_app = typer.Typer(help="Grants of cohorts (and regions) to principals.", no_args_is_help=True)
app.add_typer(principal_app, name="principal", rich_help_panel=ACCESS)
app.add_typer(token_app, name="token", rich_help_panel=ACCESS)
app.add_typer(grant_app, name="grant", rich_help_panel=ACCESS)

By = Annotated[
    str | None, typer.Option("--by", help="Person making the change (default user@host)")
]


def _when(t: dt.datetime | None) -> str:
    return "" if t is None else f"{t:%Y-%m-%d %H:%M}"


@principal_app.command("add")
def principal_add(
    name: Annotated[str, typer.Argument(help="Unique name (e.g. ann@hospital.dk)")],
    description: Annotated[str | None, typer.Option(help="Who this is, role, affiliation")] = None,
    role: Annotated[
        str,
        typer.Option(
            help="data (genomes, by grants), reporting (aggregate reports, dashboard), "
            "admin (reports with exact counts)"
        ),
    ] = "data",
    by: By = None,
) -> None:
    """Add a principal (a clinician, researcher, steering-group member or service)."""
    with catalog_session() as cat:
        p = access.add_principal(cat, name, description, actor=by, role=role)
    out.print(f"principal {p.name} added ({p.role})", highlight=False)


@principal_app.command("list")
def principal_list() -> None:
    """Principals with their active tokens and grants."""
    with catalog_session() as cat:
        principals = access.list_principals(cat)
        all_tokens = access.list_tokens(cat)
        all_grants = access.list_grants(cat)
    tokens: dict[int, int] = {}
    for tok in all_tokens:
        if tok.revoked_at is None:
            tokens[tok.principal_id] = tokens.get(tok.principal_id, 0) + 1
    grants: dict[int, int] = {}
    for g in all_grants:
        grants[g.principal_id] = grants.get(g.principal_id, 0) + 1
    t = Table()
    for c in ("name", "description", "created", "disabled", "tokens", "grants"):
        t.add_column(c)
    for p in principals:
        t.add_row(
            p.name,
            p.description or "",
            _when(p.created_at),
            _when(p.disabled_at),
            str(tokens.get(p.id, 0)),
            str(grants.get(p.id, 0)),
        )
    out.print(t)


@principal_app.command("disable")
def principal_disable(name: Annotated[str, typer.Argument()], by: By = None) -> None:
    """Disable a principal: its tokens and grants stop working at once."""
    with catalog_session() as cat:
        p = access.disable_principal(cat, name, actor=by)
    out.print(f"principal {p.name} disabled", highlight=False)


@token_app.command("issue")
def token_issue(
    name: Annotated[str, typer.Argument(help="Principal the token is for")],
    expires_days: Annotated[
        int | None, typer.Option(help="Valid for N days (default: until revoked)")
    ] = None,
    by: By = None,
) -> None:
    """Issue a bearer token; it is printed once, alone on the last line, and never stored."""
    if expires_days is not None and expires_days <= 0:
        raise InputError(f"--expires-days must be positive, not {expires_days}")
    expires = None if expires_days is None else dt.timedelta(days=expires_days)
    with catalog_session() as cat:
        token = access.issue_token(cat, name, expires_in=expires, actor=by)
    until = "until revoked" if expires_days is None else f"for {expires_days} days"
    out.print(
        f"token {token[: access.PREFIX_CHARS]} for {name}, valid {until}. It is shown only now"
        " (the catalog keeps its sha256); hand it over securely. Revoke with"
        f" `wgsvault token revoke {token[: access.PREFIX_CHARS]}`.",
        highlight=False,
        markup=False,
    )
    out.print(token, highlight=False, markup=False)


@token_app.command("revoke")
def token_revoke(
    prefix: Annotated[str, typer.Argument(help="Token prefix (as `token list` shows) or token")],
    by: By = None,
) -> None:
    """Revoke a token."""
    with catalog_session() as cat:
        t = access.revoke_token(cat, prefix, actor=by)
    out.print(f"token {t.prefix} revoked", highlight=False)


@token_app.command("list")
def token_list(
    name: Annotated[str | None, typer.Argument(help="Only this principal")] = None,
) -> None:
    """Tokens (prefix, expiry, revocation); the tokens themselves are not stored."""
    with catalog_session() as cat:
        names = {p.id: p.name for p in access.list_principals(cat)}
        rows = access.list_tokens(cat, name)
    t = Table()
    for c in ("prefix", "principal", "created", "expires", "revoked"):
        t.add_column(c)
    for tok in rows:
        t.add_row(
            tok.prefix,
            names.get(tok.principal_id, ""),
            _when(tok.created_at),
            _when(tok.expires_at),
            _when(tok.revoked_at),
        )
    out.print(t)


@grant_app.command("add")
def grant_add(
    name: Annotated[str, typer.Argument(help="Principal")],
    by: Annotated[str, typer.Option("--by", help="Person granting (who approved the access)")],
    genome: Annotated[
        list[str] | None, typer.Option("--genome", help="Genome id (repeatable)")
    ] = None,
    patient_group: Annotated[str | None, typer.Option(help="Every genome of this group")] = None,
    controller: Annotated[
        str | None, typer.Option(help="Every genome this controller holds")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Research project / case reference")] = None,
    region: Annotated[
        str | None, typer.Option(help="Only this region, chr:start-end (1-based, inclusive)")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(help="Valid for N days (default: until revoked)")
    ] = None,
) -> None:
    """Grant a principal genomes, a patient group or a controller's genomes (maybe one region)."""
    if expires_days is not None and expires_days <= 0:
        raise InputError(f"--expires-days must be positive, not {expires_days}")
    expires = None if expires_days is None else dt.timedelta(days=expires_days)
    with catalog_session() as cat:
        rows = access.add_grant(
            cat,
            name,
            genomes=genome or None,
            patient_group=patient_group,
            controller=controller,
            project=project,
            region=region,
            expires_in=expires,
            granted_by=by,
        )
    for g in rows:
        out.print(f"grant {g.id}: {name} {_describe(g)}", highlight=False, markup=False)


def _describe(g: AccessGrant) -> str:
    text = f"{g.kind} {g.value}"
    if g.region:
        text += f" region {g.region}"
    if g.project:
        text += f" project {g.project}"
    if g.expires_at:
        text += f" until {_when(g.expires_at)} UTC"
    return text


@grant_app.command("revoke")
def grant_revoke(grant_id: Annotated[int, typer.Argument(help="Grant id")], by: By = None) -> None:
    """Revoke a grant."""
    with catalog_session() as cat:
        rows = access.revoke_grant(cat, grant_id, by=by)
    for g in rows:
        out.print(f"grant {g.id} revoked: {_describe(g)}", highlight=False, markup=False)


@grant_app.command("list")
def grant_list(
    name: Annotated[str | None, typer.Argument(help="Only this principal")] = None,
    all_grants: Annotated[bool, typer.Option("--all", help="Also revoked grants")] = False,
) -> None:
    """Grants: id, principal, cohort, region, project, who granted, when."""
    with catalog_session() as cat:
        names = {p.id: p.name for p in access.list_principals(cat)}
        rows = access.list_grants(cat, name, include_revoked=all_grants)
    t = Table()
    cols = ("id", "principal", "kind", "value", "region", "project", "by", "at", "expires")
    for c in (*cols, "revoked"):
        t.add_column(c)
    for g in rows:
        t.add_row(
            str(g.id),
            names.get(g.principal_id, ""),
            g.kind,
            g.value,
            g.region or "",
            g.project or "",
            g.granted_by,
            _when(g.created_at),
            _when(g.expires_at),
            _when(g.revoked_at),
        )
    out.print(t)


@grant_app.command("check")
def grant_check(
    name: Annotated[str, typer.Argument(help="Principal")],
    genome: Annotated[str, typer.Argument(help="Genome id")],
    region: Annotated[str | None, typer.Option(help="chr:start-end (1-based, inclusive)")] = None,
) -> None:
    """Would the principal be allowed to read the genome (or a region of it)? Exit 5 if not."""
    r = None if region is None else access.parse_region(region)
    with catalog_session() as cat:
        d = access.authorize(cat, name, genome, *((r.name, r.start, r.end) if r else ()))
    out.print(
        f"{'allowed' if d.allowed else 'refused'} ({d.http_status}): {d.reason}",
        highlight=False,
        markup=False,
    )
    if not d.allowed:
        raise typer.Exit(AccessDenied.exit_code)
