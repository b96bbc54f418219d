"""The steering group's dashboard: `/dashboard`, an overview and one page per governance report.

Pages (server-rendered from templates/, Jinja2 with autoescaping):

* `GET /dashboard`: the overview, the four charts of this month and year;
* `GET /dashboard/{genomes,quotas,turnaround,storage}`: one report (report/governance.py), its
  chart and, beside it, its table (report/figures.py: the rows the CLI prints, shown as they
  are, thousands separated). `?format=json` answers the report itself, `?format=csv` its table
  (`&table=applied` or `history` for the storage page's other tables). Filters are query
  parameters: `year`, `month` (YYYY-MM), `group` (patient group), `region`; a page takes those
  its report has (`FILTERS`) and ignores others. For genomes, a `year` without a `month` means
  December of a past year, or the current month;
* `GET|POST /dashboard/login`, `POST /dashboard/logout`: the session cookie (session.py);
* `GET /dashboard/static/{name}`: the JavaScript and CSS (assets.py).

Charts are Vega-Lite specs built by the server (report/charts.py: the spec the CLI writes to
PNG), embedded in the page as JSON data blocks and drawn by vega-embed from the bundle the app
serves itself: no CDN, the page works on a closed network. static/dashboard.js draws them with
Vega's expression interpreter, so the Content-Security-Policy allows scripts from this origin
only (no `eval`, no inline script) and styles from this origin only (vega-embed's and
vega-tooltip's injected styles are off; dashboard.css has their rules).

Access (session.py): principals with the role `reporting` (counts of 1 to 4 as "<5") or `admin`
(exact counts), by bearer token or session cookie. Without credentials a page redirects to the
login form, and JSON or CSV answers 401 (counted as an anonymous refusal, refusals.py, as is a
bad token at the login form); another role gets 403, audited as that principal's refusal.

Every page view, download and login is one audit entry: event `access`, `detail.dashboard` the
page, with the format, the filters and whether counts were exact. The patient-group filter is
recorded as `group`: a cohort the reader chose, never a person's data. Everything but the static
files is `Cache-Control: no-store` (app.py).

A report takes hundreds of milliseconds at national scale and the overview shows four, so the
process remembers the reports it computed while the catalog's case data stay the same
(`dashboard_data.Reports`): a view after an import recomputes, a view of the same figures
does not.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from wgsvault import __version__, access, audit
from wgsvault.errors import InputError
from wgsvault.report import charts, figures
from wgsvault.serve import session
from wgsvault.serve.assets import IMMUTABLE, assets
from wgsvault.serve.context import Context
from wgsvault.serve.dashboard_data import (
    PAGES,
    Filters,
    Reports,
    cell,
    options,
    parse_filters,
    tables,
)
from wgsvault.serve.errors import NO_STORE, HtsgetError, error_response
from wgsvault.serve.session import NOT_ALLOWED, PREFIX, Viewer

STATIC = f"{PREFIX}/static/"
FILTERS = {
    "genomes": ("year", "month", "group", "region"),
    "quotas": ("year", "region"),
    "turnaround": ("year", "group", "region"),
    "storage": (),
}
#: what each page shows, in a sentence a steering-group member reads above the chart
ABOUT = {
    "genomes": "Genomes with a sequencing date in the month, in the year up to the end of the "
    "month, and in all; per patient group, per requisitioning region and per 100,000 "
    "inhabitants.",
    "quotas": "Genomes (or cases: a trio is one) delivered this year per patient group with a "
    "quota, against the quota plus any backlog, what is expected by today, and the year-end "
    "forecast at the pace so far.",
    "turnaround": "Days from requisition to report for the cases requisitioned in the year, per "
    "urgency class and patient group, against the target of each class; open cases past it.",
    "storage": "What the stored files take per data controller and file type, over time from "
    "the scans, what applied plans freed against what they promised, and what it costs.",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
TEMPLATES = Path(__file__).parent / "templates"
FORM_MAX = 4096  # bytes of a login form (a token is about 50)


def _json_block(data: Any) -> str:
    """JSON that is safe inside a `<script type="application/json">` element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --------------------------------------------------------------------------- the router


def router(ctx: Context) -> APIRouter:
    """The dashboard's routes over `ctx`."""
    api = APIRouter()
    env = figures.environment(TEMPLATES, cell)
    files = assets(STATIC)
    reports = Reports(ctx)

    def html(template: str, status: int = 200, **values: Any) -> HTMLResponse:
        values = {"viewer": None, "active": None, "message": None, **values}
        body = env.get_template(template).render(
            static=files.urls(), pages=PAGES, version=__version__, **values
        )
        return HTMLResponse(body, status_code=status, headers={**NO_STORE, **SECURITY})

    def refused(e: HtsgetError) -> JSONResponse:
        r = error_response(e)
        r.headers.update(SECURITY)
        return r

    def anonymous(request: Request, e: HtsgetError) -> None:
        source = request.client.host if request.client else "unknown"
        ctx.refusals.add(source, e.error, e.status, request.url.path)

    def record(v: Viewer, page: str, **detail: Any) -> None:
        audit.record(
            ctx.catalog,
            actor=v.actor,
            event="access",
            detail={"dashboard": page, "role": v.role, "exact": v.exact, **detail},
        )

    def refuse_role(request: Request, v: Viewer) -> None:
        audit.record(
            ctx.catalog,
            actor=v.actor,
            event="refuse",
            detail={
                "path": request.url.path[:300],
                "error": "PermissionDenied",
                "status": 403,
                "reason": NOT_ALLOWED,
            },
        )

    def guarded(request: Request, fmt: str, show: Callable[[Viewer], Response]) -> Response:
        """`show` for an allowed viewer; else the login form or 401, or 403 (audited)."""
        try:
            v = session.viewer(ctx, request)
        except session.Unauthenticated:
            if fmt == "html":
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                login = f"{PREFIX}/login?" + urllib.parse.urlencode({"next": here})
                r = RedirectResponse(login, status_code=303, headers={**NO_STORE, **SECURITY})
                if session.COOKIE in request.cookies:
                    session.clear_cookie(r)
                return r
            e = HtsgetError(
                "InvalidAuthentication",
                "a valid bearer token or session is required",
                {"WWW-Authenticate": "Bearer"},
            )
            anonymous(request, e)
            return refused(e)
        if not v.allowed:
            refuse_role(request, v)
            if fmt == "html":
                return html("error.html", 403, viewer=v, title="Not allowed", message=NOT_ALLOWED)
            return refused(HtsgetError("PermissionDenied", NOT_ALLOWED))
        response = show(v)
        if v.cookie and fmt == "html":
            session.set_cookie(ctx, request, response, v)  # the session slides on
        return response

    # ----------------------------------------------------------------- login, logout, static

    @api.get(f"{PREFIX}/login")
    def login_form(request: Request) -> Response:
        nxt = session.next_path(request.query_params.get("next"))
        return html("login.html", next=nxt, title="Sign in")

    @api.post(f"{PREFIX}/login")
    async def login(request: Request) -> Response:
        if not session.same_origin(ctx, request):
            return html(
                "error.html",
                403,
                title="Not allowed",
                message="sign in from this service's own login page",
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_MAX:
                return html(
                    "error.html",
                    413,
                    title="Too large",
                    message="the sign-in form is larger than a token",
                )
        return await run_in_threadpool(signed_in, request, body)  # the catalog blocks

    def signed_in(request: Request, body: bytes) -> Response:
        """The answer to a login form: a session and the page asked for, or why not."""
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        nxt = session.next_path((form.get("next") or [""])[0])
        try:
            v = session.login(ctx, (form.get("token") or [""])[0].strip())
        except access.Unauthenticated:
            anonymous(request, HtsgetError("InvalidAuthentication", "bad token at login"))
            return html(
                "login.html",
                401,
                next=nxt,
                title="Sign in",
                message="That token is not valid: it is unknown, expired or revoked.",
            )
        if not v.allowed:
            refuse_role(request, v)
            return html(
                "login.html",
                403,
                next=nxt,
                title="Sign in",
                message=f"{v.name} may not see the dashboard: {NOT_ALLOWED}.",
            )
        record(v, "login")
        r = RedirectResponse(nxt, status_code=303, headers={**NO_STORE, **SECURITY})
        session.set_cookie(ctx, request, r, v)
        return r

    @api.post(f"{PREFIX}/logout")
    def logout() -> Response:
        r = RedirectResponse(f"{PREFIX}/login", status_code=303, headers={**NO_STORE, **SECURITY})
        session.clear_cookie(r)
        return r

    @api.get(STATIC + "{name}")
    def static(name: str) -> Response:
        asset = files.get(name)
        if asset is None:
            raise HtsgetError("NotFound", "no such file")
        headers = {**IMMUTABLE, "X-Content-Type-Options": "nosniff"}
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    # ----------------------------------------------------------------- pages

    @api.get(PREFIX)
    def overview(request: Request) -> Response:
        def show(v: Viewer) -> Response:
            today = dt.date.today()
            # the four reports at once: their queries wait on the catalog, not on Python
            with ThreadPoolExecutor(max_workers=len(PAGES)) as pool:
                got = list(pool.map(lambda n: reports.get(n, Filters(), v.exact, today), PAGES))
            cards = []
            for (name, title), rep in zip(PAGES.items(), got, strict=True):
                spec = charts.spec(name, rep)
                cards.append(
                    {
                        "name": name,
                        "title": title,
                        "spec": _json_block(spec),
                        "description": spec["description"],
                    }
                )
            record(v, "overview", format="html")
            return html("overview.html", viewer=v, active="overview", title="Overview", cards=cards)

        return guarded(request, "html", show)

    def page_of(name: str) -> Callable[[Request], Response]:
        def page(request: Request) -> Response:
            fmt = request.query_params.get("format") or "html"

            def show(v: Viewer) -> Response:
                today = dt.date.today()
                try:
                    if fmt not in ("html", "json", "csv"):
                        raise InputError(f"format {fmt[:20]!r}: html, json or csv")
                    f = parse_filters(request.query_params, FILTERS[name], today)
                    rep = reports.get(name, f, v.exact, today)
                except InputError as exc:
                    if fmt in ("json", "csv"):
                        return refused(HtsgetError("InvalidInput", str(exc)))
                    return html(
                        "error.html",
                        400,
                        viewer=v,
                        active=name,
                        title=PAGES[name],
                        message=str(exc),
                    )
                ts = tables(name, rep)
                which = request.query_params.get("table") or "main"
                table = next((t for t in ts if t.key == which), None)
                if fmt == "csv" and table is None:
                    return refused(HtsgetError("InvalidInput", f"no table {which[:20]!r}"))
                extra = {"table": which} if fmt == "csv" else {}
                record(v, name, format=fmt, filters=f.given(), **extra)
                if fmt == "json":
                    return JSONResponse(rep, headers={**NO_STORE, **SECURITY})
                if fmt == "csv" and table is not None:
                    stem = f"wgsvault-{name}" + (f"-{which}" if which != "main" else "")
                    disposition = f'attachment; filename="{stem}.csv"'
                    return Response(
                        table.csv(),
                        media_type="text/csv; charset=utf-8",
                        headers={**NO_STORE, **SECURITY, "Content-Disposition": disposition},
                    )
                spec = charts.spec(name, rep)
                return html(
                    "report.html",
                    viewer=v,
                    active=name,
                    title=PAGES[name],
                    name=name,
                    about=ABOUT[name],
                    tables=ts,
                    spec=_json_block(spec),
                    description=spec["description"],
                    filters=f,
                    names=FILTERS[name],
                    options=options(ctx, today),
                    query=f.query(),
                )

            return guarded(request, fmt if fmt in ("json", "csv") else "html", show)

        return page

    for name in PAGES:
        api.add_api_route(f"{PREFIX}/{name}", page_of(name), methods=["GET"])
    return api
