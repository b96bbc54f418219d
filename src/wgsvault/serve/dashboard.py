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
(`Reports`): a view after an import recomputes, a view of the same figures does not.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from wgsvault import __version__, access, audit
from wgsvault.catalog.models import Genome
from wgsvault.config import site_config
from wgsvault.errors import InputError
from wgsvault.report import charts, figures, governance
from wgsvault.report.targets import load_targets
from wgsvault.serve import session
from wgsvault.serve.assets import IMMUTABLE, assets
from wgsvault.serve.context import Context
from wgsvault.serve.errors import NO_STORE, HtsgetError, error_response
from wgsvault.serve.session import NOT_ALLOWED, PREFIX, Viewer

STATIC = f"{PREFIX}/static/"
PAGES = {
    "genomes": "Genomes sequenced",
    "quotas": "Quotas",
    "turnaround": "Turnaround",
    "storage": "Storage",
}
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
#: the storage page's other tables: (report key, title, columns)
STORAGE_TABLES = (
    ("applied", "Applied plans", ["run", "finished_at", "promised_bytes", "freed_bytes"]),
    ("history", "Footprint history", ["at", "controller", "type", "bytes"]),
)
MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])\Z")
TEMPLATES = Path(__file__).parent / "templates"
FORM_MAX = 4096  # bytes of a login form (a token is about 50)


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    year: int | None = None
    month: str | None = None
    group: str | None = None
    region: str | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def query(self) -> str:
        return urllib.parse.urlencode(self.given())


def parse_filters(query: Mapping[str, str], names: tuple[str, ...], today: dt.date) -> Filters:
    """The filters `names` from a query; InputError names a bad one."""
    got: dict[str, Any] = {}
    for name in names:
        raw = (query.get(name) or "").strip()
        if not raw:
            continue
        if len(raw) > 200:
            raise InputError(f"{name}: at most 200 characters")
        if name == "year":
            if not raw.isdigit() or not 2000 <= int(raw) <= today.year:
                raise InputError(f"year {raw!r}: a year from 2000 to {today.year}")
            got[name] = int(raw)
        elif name == "month":
            m = MONTH.match(raw)
            if m is None or (int(m[1]), int(m[2])) > (today.year, today.month):
                raise InputError(f"month {raw!r}: YYYY-MM, not in the future")
            got[name] = raw
        else:
            got[name] = raw
    return Filters(**got)


def _options(ctx: Context, today: dt.date) -> dict[str, list[Any]]:
    """What the filters offer: the catalog's patient groups, regions and years."""
    with ctx.catalog.session() as s:
        group, region = Genome.patient_group, Genome.requisition_region
        groups = s.scalars(select(group).where(group.is_not(None)).distinct()).all()
        regions = s.scalars(select(region).where(region.is_not(None)).distinct()).all()
        firsts = [
            s.scalar(select(func.min(Genome.sequencing_date))),
            s.scalar(select(func.min(Genome.requisition_date))),
        ]
    start = min((d.year for d in firsts if d is not None), default=today.year)
    return {
        "year": list(range(today.year, start - 1, -1)),
        "group": sorted(groups),
        "region": sorted(regions),
    }


# --------------------------------------------------------------------------- reports and tables


def report(ctx: Context, name: str, f: Filters, exact: bool, today: dt.date) -> dict[str, Any]:
    """Report `name` under filters `f`, as the viewer may see it (`exact` counts or not)."""
    targets = load_targets(ctx.settings.targets)
    cat = ctx.catalog
    if name == "genomes":
        month = f.month
        if month is None and f.year is not None and f.year < today.year:
            month = f"{f.year}-12"
        return governance.genomes(
            cat,
            targets=targets,
            month=month,
            exact=exact,
            patient_group=f.group,
            region=f.region,
            today=today,
        )
    if name == "quotas":
        return governance.quotas(
            cat, targets=targets, year=f.year, exact=exact, region=f.region, today=today
        )
    if name == "turnaround":
        return governance.turnaround(
            cat,
            targets=targets,
            year=f.year,
            exact=exact,
            patient_group=f.group,
            region=f.region,
            today=today,
        )
    price = site_config(ctx.settings.home).price_dkk_per_tb_year
    return governance.storage(cat, price=price, exact=exact)


class Reports:
    """The case reports of this process, remembered while the catalog's case data are unchanged.

    A report is a function of the genomes' case data, the targets, the filters, `exact` and the
    day. Each view asks the catalog for a fingerprint of the `genome` table (rows, highest id,
    latest `updated_at`: every import and every genome a scan adds moves it; a few ms where the
    reports take hundreds at national scale) and recomputes a report only when that, the
    targets, or the day changed, or after `ttl` seconds (a change made behind the vault's
    back shows by then). Storage is always computed: it is quick, and reads the files."""

    def __init__(self, ctx: Context, size: int = 64, ttl: float = 600.0) -> None:
        self.ctx, self.size, self.ttl = ctx, size, ttl
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple[Any, ...], tuple[float, dict[str, Any]]] = OrderedDict()

    def _fingerprint(self) -> tuple[Any, ...]:
        stmt = select(func.count(), func.max(Genome.id), func.max(Genome.updated_at))
        with self.ctx.catalog.engine.connect() as conn:
            return tuple(conn.execute(stmt).one())

    def get(self, name: str, f: Filters, exact: bool, today: dt.date) -> dict[str, Any]:
        if name == "storage":
            return report(self.ctx, name, f, exact, today)
        targets = load_targets(self.ctx.settings.targets).model_dump_json()
        key = (name, f, exact, today, targets, self._fingerprint())
        now = time.monotonic()
        with self._lock:
            hit = self._done.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._done.move_to_end(key)
                return hit[1]
        fresh = report(self.ctx, name, f, exact, today)
        with self._lock:
            self._done[key] = (now, fresh)
            while len(self._done) > self.size:
                self._done.popitem(last=False)
        return fresh


@dataclass
class Table:
    key: str
    title: str
    head: list[str]
    rows: list[list[Any]]

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.head)
        w.writerows([["" if v is None else v for v in r] for r in self.rows])
        return buf.getvalue()


def tables(name: str, rep: Mapping[str, Any]) -> list[Table]:
    """The tables beside a report's chart: its rows as the CLI prints them (figures.rows), and
    for storage also the applied runs and the history."""
    head, rows = figures.rows(name, dict(rep))
    out = [Table("main", PAGES[name], head, rows)]
    if name == "storage":
        out[0].title = "Stored now"
        for key, title, cols in STORAGE_TABLES:
            records = list(rep.get(key) or [])
            cols = [*cols, *(c for c in (records[0] if records else ()) if c not in cols)]
            out.append(Table(key, title, cols, [[r.get(c) for c in cols] for r in records]))
    return out


def cell(value: Any) -> str:
    """A table cell as the page shows it: numbers thousands separated, text as it is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _json_block(data: Any) -> str:
    """JSON that is safe inside a `<script type="application/json">` element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    env.filters["heading"] = lambda h: str(h).replace("_", " ")
    env.filters["numeric"] = lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    return env


# --------------------------------------------------------------------------- the router


def router(ctx: Context) -> APIRouter:
    """The dashboard's routes over `ctx`."""
    api = APIRouter()
    env = _environment()
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
            cards = []
            for name, title in PAGES.items():
                spec = charts.spec(name, reports.get(name, Filters(), v.exact, today))
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
                    options=_options(ctx, today),
                    query=f.query(),
                )

            return guarded(request, fmt if fmt in ("json", "csv") else "html", show)

        return page

    for name in PAGES:
        api.add_api_route(f"{PREFIX}/{name}", page_of(name), methods=["GET"])
    return api
