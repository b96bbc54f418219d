"""The dashboard over a running server (httpx): access by role, the session cookie, audit, the
CSV and JSON each page offers, suppression, filters, caching and security headers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from wgsvault import access
from wgsvault.catalog.manifest import import_manifest
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.report import figures
from wgsvault.serve import Settings, create_app
from wgsvault.serve.dashboard import PAGES, cell, tables
from wgsvault.serve.session import COOKIE, SESSION_MAX
from wgsvault.serve.signing import Signer, secret_key

from conftest import make_files
from dashboard_site import SMALL_GROUP, Site, served_site
from served import free_port, running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("dashboard")) as s:
        yield s


@contextmanager
def _login(site: Site, who: str = "board") -> Iterator[httpx.Client]:
    """A client with `who`'s session cookie (set by the login form)."""
    with httpx.Client(base_url=site.base, timeout=60) as client:
        r = client.post("/dashboard/login", data={"token": site.tokens[who]})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard", r.text
        yield client


def _cookie(site: Site, **payload: object) -> str:
    return Signer(secret_key(site.home)).sign(payload)


@pytest.mark.parametrize("page", ["", *(f"/{p}" for p in PAGES)])
def test_each_page_draws_for_reporting_and_admin(site: Site, page: str) -> None:
    for who in ("board", "steward"):
        r = site.get(f"/dashboard{page}", who)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert 'data-chart="spec-' in r.text and 'type="application/json"' in r.text
        assert "<script>" not in r.text  # no inline script: CSP script-src 'self'


def test_without_credentials_pages_go_to_login_and_data_is_401(site: Site) -> None:
    r = site.get("/dashboard/quotas", None, year=2025)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fquotas%3Fyear%3D2025"
    for fmt in ("json", "csv"):
        r = site.get("/dashboard/quotas", None, format=fmt)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["htsget"]["error"] == "InvalidAuthentication"
    r = httpx.get(f"{site.base}/dashboard", headers={"Authorization": "Bearer wgv_nope"})
    assert r.status_code == 303  # a bad token is no credential at all
    login = httpx.get(f"{site.base}{r.headers['location']}")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert 'value="/dashboard"' in login.text


def test_a_data_principal_is_refused_and_that_is_audited(site: Site) -> None:
    before = site.audit_count()
    r = site.get("/dashboard/genomes", "clinician")
    assert r.status_code == 403 and "reporting or admin" in r.text
    r = site.get("/dashboard/genomes", "clinician", format="json")
    assert r.status_code == 403 and r.json()["htsget"]["error"] == "PermissionDenied"
    assert site.audit_count() == before + 2
    last = site.last_audit()
    assert (last.event, last.actor) == ("refuse", "principal:clinician")
    assert json.loads(last.detail)["status"] == 403


def test_reporting_sees_small_counts_suppressed_admin_exact(site: Site) -> None:
    board = site.get("/dashboard/genomes", "board", format="json").json()
    steward = site.get("/dashboard/genomes", "steward", format="json").json()
    assert board["by_patient_group"][SMALL_GROUP]["all_time"] == "<5"
    assert steward["by_patient_group"][SMALL_GROUP]["all_time"] == 3
    page = site.get("/dashboard/genomes", "board").text
    assert "counts from 1 to 4 shown as &lt;5" in page and ">3<" not in page.split("<tbody>")[1]
    assert "exact counts" in site.get("/dashboard/genomes", "steward").text


@pytest.mark.parametrize("name", PAGES)
def test_csv_and_table_are_the_json_report(site: Site, name: str) -> None:
    report = site.get(f"/dashboard/{name}", format="json").json()
    csv = site.get(f"/dashboard/{name}", format="csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert f'filename="wgsvault-{name}.csv"' in csv.headers["content-disposition"]
    assert csv.text == figures.to_csv(name, report)  # the CLI's --csv of the same report
    head, rows = figures.rows(name, report)
    page = site.get(f"/dashboard/{name}").text
    for row in rows:
        assert "".join(_td(v) for v in row) in page


def _td(v: object) -> str:
    """A table cell as the page must write it: `cell(v)` escaped, numbers right-aligned."""
    numeric = (isinstance(v, int | float) and not isinstance(v, bool)) or v == "<5"
    text = cell(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def test_storage_offers_its_history_and_applied_runs(site: Site) -> None:
    report = site.get("/dashboard/storage", format="json").json()
    history = site.get("/dashboard/storage", format="csv", table="history").text.splitlines()
    assert history[0] == "at,controller,type,bytes"
    assert len(history) == 1 + len(report["history"]) == 1 + 3 * len(report["current"])
    applied = site.get("/dashboard/storage", format="csv", table="applied").text
    assert applied == "run,finished_at,promised_bytes,freed_bytes\n"
    assert [t.key for t in tables("storage", report)] == ["main", "applied", "history"]
    r = site.get("/dashboard/storage", format="csv", table="secrets")
    assert r.status_code == 400


def test_every_view_is_one_audit_entry(site: Site) -> None:
    for params, fmt in (({"group": "kidney", "year": 2025}, "html"), ({}, "json"), ({}, "csv")):
        before = site.audit_count()
        r = site.get("/dashboard/turnaround", "steward", format=fmt, **params)
        assert r.status_code == 200
        assert site.audit_count() == before + 1
        e = site.last_audit()
        assert (e.event, e.actor, e.genome) == ("access", "principal:steward", None)
        detail = json.loads(e.detail)
        assert detail == {"dashboard": "turnaround", "format": fmt, "role": "admin",
                          "exact": True, "filters": params,
                          **({"table": "main"} if fmt == "csv" else {})}  # fmt: skip
    before = site.audit_count()
    assert site.get("/dashboard", "board").status_code == 200
    assert site.audit_count() == before + 1
    assert json.loads(site.last_audit().detail)["dashboard"] == "overview"


def test_filters_narrow_the_report(site: Site) -> None:
    r = site.get("/dashboard/genomes", group="kidney", region="Region Hovedstaden", format="json")
    report = r.json()
    assert list(report["by_patient_group"]) == ["kidney"]
    assert list(report["by_region"]) == ["Region Hovedstaden"]
    assert report["filters"] == {"patient_group": "kidney", "region": "Region Hovedstaden"}
    last_year = site.today.year - 1
    assert site.get("/dashboard/genomes", year=last_year, format="json").json()["month"] == (
        f"{last_year}-12"
    )
    assert site.get("/dashboard/quotas", year=last_year, format="json").json()["year"] == last_year
    # a filter a page does not have is ignored, not passed on
    assert site.get("/dashboard/storage", group="kidney", format="json").status_code == 200


@pytest.mark.parametrize(
    "query",
    [{"year": "abc"}, {"year": "1999"}, {"month": "2024-13"}, {"month": "2999-01"},
     {"group": "x" * 201}, {"format": "xml"}],
)  # fmt: skip
def test_bad_filters_are_400(site: Site, query: dict[str, str]) -> None:
    fmt = query.get("format", "html")
    r = site.get("/dashboard/genomes", **query)
    assert r.status_code == 400
    if fmt == "html":
        assert r.headers["content-type"].startswith("text/html") and "alert" in r.text
    r = site.get("/dashboard/genomes", **{**query, "format": "json"})
    if fmt == "html":
        assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidInput"


def test_login_sets_a_strict_httponly_session_cookie(site: Site) -> None:
    with httpx.Client(base_url=site.base, timeout=60) as client:
        _session_lifecycle(site, client)


def _session_lifecycle(site: Site, client: httpx.Client) -> None:
    r = client.post("/dashboard/login", data={"token": site.tokens["board"],
                                              "next": "/dashboard/quotas?year=2025"})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/quotas?year=2025"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Path=/dashboard", "SameSite=strict", "Max-Age=1800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert site.tokens["board"] not in cookie
    assert json.loads(site.last_audit().detail)["dashboard"] == "login"
    page = client.get("/dashboard/quotas")
    assert page.status_code == 200 and "board" in page.text
    assert COOKIE in page.headers["set-cookie"]  # the session slides on with each view
    assert client.get("/dashboard/quotas", params={"format": "json"}).status_code == 200
    out = client.post("/dashboard/logout")
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert client.get("/dashboard/quotas").status_code == 303


def test_a_session_ends_with_its_token(site: Site) -> None:
    access.add_principal(site.catalog, "auditor", role="reporting")
    token = access.issue_token(site.catalog, "auditor")
    with httpx.Client(base_url=site.base, timeout=60) as client:
        assert client.post("/dashboard/login", data={"token": token}).status_code == 303
        assert client.get("/dashboard/genomes").status_code == 200
        access.revoke_token(site.catalog, token)
        r = client.get("/dashboard/genomes")
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
    assert "Max-Age=0" in r.headers["set-cookie"]  # the dead cookie is dropped


def test_forged_stale_and_foreign_cookies_are_no_session(site: Site) -> None:
    now = time.time()
    good = {"k": "dashboard", "p": 1, "t": 1, "i": now, "x": now + 60}
    cases = {
        "tampered": _cookie(site, **{**good, "p": 2}).split(".")[0]
        + "."
        + _cookie(site, **good).split(".")[1],  # another principal under this one's MAC
        "expired": _cookie(site, **{**good, "x": now - 1}),
        "too old": _cookie(site, **{**good, "i": now - SESSION_MAX - 1}),
        "a block URL": _cookie(site, **{**good, "k": "file"}),
        "other key": Signer(b"k" * 32).sign(good),
    }
    assert httpx.get(f"{site.base}/dashboard", cookies={COOKIE: _cookie(site, **good)},
                     timeout=60).status_code == 200  # fmt: skip
    for what, value in cases.items():
        r = httpx.get(f"{site.base}/dashboard", cookies={COOKIE: value}, timeout=60)
        assert r.status_code == 303, what
    # a session cookie is no block URL either
    r = httpx.get(f"{site.base}/blocks/{_cookie(site, **good)}", timeout=60)
    assert r.status_code == 401


def test_login_refuses_bad_tokens_other_roles_sites_and_redirects(site: Site) -> None:
    r = httpx.post(f"{site.base}/dashboard/login", data={"token": "wgv_guess"})
    assert r.status_code == 401 and "not valid" in r.text and "set-cookie" not in r.headers
    r = httpx.post(f"{site.base}/dashboard/login", data={"token": site.tokens["clinician"]})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    r = httpx.post(f"{site.base}/dashboard/login", data={"token": site.tokens["board"]},
                   headers={"Origin": "https://evil.example"})  # fmt: skip
    assert r.status_code == 403 and "set-cookie" not in r.headers
    for target in ("https://evil.example/", "//evil.example", "/blocks/x", "/dashboardx"):
        r = httpx.post(f"{site.base}/dashboard/login",
                       data={"token": site.tokens["board"], "next": target})  # fmt: skip
        assert r.headers["location"] == "/dashboard", target
    r = httpx.post(f"{site.base}/dashboard/login", content=b"token=" + b"x" * 5000,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 413


def test_a_bad_bearer_header_is_not_saved_by_a_cookie(site: Site) -> None:
    with _login(site) as client:
        assert client.get("/dashboard/quotas", params={"format": "json"}).status_code == 200
        r = client.get("/dashboard/quotas", params={"format": "json"},
                       headers={"Authorization": "Bearer wgv_nope"})  # fmt: skip
    assert r.status_code == 401


def test_static_files_are_cached_and_pages_are_not(site: Site) -> None:
    page = site.get("/dashboard/genomes")
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    scripts = [s.split('"')[0] for s in page.text.split('<script src="')[1:]]
    styles = [s.split('"')[0] for s in page.text.split('<link rel="stylesheet" href="')[1:]]
    assert len(scripts) == 2 and len(styles) == 1
    for url in [*scripts, *styles]:
        assert url.startswith("/dashboard/static/")
        r = httpx.get(f"{site.base}{url}", timeout=60)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["x-content-type-options"] == "nosniff"
    vega = httpx.get(f"{site.base}{scripts[0]}", timeout=60)
    assert vega.headers["content-type"].startswith("text/javascript")
    assert "window.vegaEmbed=" in vega.text
    r = httpx.get(f"{site.base}/dashboard/static/vega-0000000000000000.js", timeout=60)
    assert r.status_code == 404 and r.headers["cache-control"] == "no-store"
    r = httpx.get(f"{site.base}/dashboard/login", timeout=60)
    assert r.headers["cache-control"] == "no-store"


def test_the_cookie_is_secure_behind_https(tmp_path: Path, site: Site) -> None:
    port = free_port()
    settings = Settings(site.catalog.url, site.home, "https://dashboard.example")
    with running(create_app(settings), port):
        r = httpx.post(f"http://127.0.0.1:{port}/dashboard/login",
                       data={"token": site.tokens["board"]})  # fmt: skip
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_an_import_shows_at_the_next_view(site: Site, tmp_path: Path) -> None:
    """Reports are remembered between views only while the case data are unchanged."""
    before = site.get("/dashboard/genomes", "steward", format="json").json()
    assert "neurology" not in before["by_patient_group"]
    manifest = tmp_path / "more.csv"
    day = site.today.isoformat()
    manifest.write_text(f"genome_id,patient_group,sequencing_date\nNEW1,neurology,{day}\n")
    import_manifest(site.catalog, manifest)
    after = site.get("/dashboard/genomes", "steward", format="json").json()
    assert after["by_patient_group"]["neurology"]["all_time"] == 1
    assert after["total"]["all_time"] == before["total"]["all_time"] + 1


def test_a_scan_shows_at_the_next_storage_view(site: Site, tmp_path: Path) -> None:
    """Storage is remembered between views only while no scan, apply or quarantine moved."""
    before = site.get("/dashboard/storage", "steward", format="json").json()
    again = site.get("/dashboard/storage", "steward", format="json").json()
    assert again == before
    estate = tmp_path / "more"
    make_files(estate, {"national/NGC9/NGC9.cram": 5 * 10**9})
    scan(site.catalog, [str(estate)], DEFAULT_LAYOUT)
    after = site.get("/dashboard/storage", "steward", format="json").json()
    assert after["total_bytes"] == before["total_bytes"] + 5 * 10**9
