"""The dashboard in a real browser: Debian's Chromium driven by Playwright's Python API.

No browser is downloaded: Playwright launches `/usr/bin/chromium` (`apt-get install chromium`).
Where Chromium or Playwright is missing the tests are skipped, and fail in CI (`unavailable`).
A screenshot of each page is written to `$WGSVAULT_ARTEFACTS` (or the test's temporary folder)
and its path printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wgsvault.report import figures
from wgsvault.serve.dashboard import PAGES, cell

from conftest import unavailable
from dashboard_site import Site, served_site

CHROMIUM = os.environ.get("WGSVAULT_CHROMIUM", "/usr/bin/chromium")
DRAWN = "[...document.querySelectorAll('[data-chart]')].every(e => e.dataset.drawn === 'true')"
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("dashboard-browser")) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("WGSVAULT_ARTEFACTS")
    out = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


class Tab:
    """One page of a browser context, recording console errors and uncaught exceptions."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        self.page.wait_for_function(DRAWN)
        return response

    def marks(self) -> list[str]:
        """The drawn bars of the page's charts: one string per SVG mark path."""
        marks: list[str] = self.page.eval_on_selector_all(
            ".vis svg g.mark-rect path", "ps => ps.map(p => p.getAttribute('d'))"
        )
        return marks

    def table(self, key: str = "main") -> tuple[list[str], list[list[str]]]:
        head: list[str] = self.page.eval_on_selector_all(
            f"table[data-table={key}] thead th", "hs => hs.map(h => h.textContent)"
        )
        rows: list[list[str]] = self.page.eval_on_selector_all(
            f"table[data-table={key}] tbody tr",
            "rs => rs.map(r => [...r.cells].map(c => c.textContent))",
        )
        return head, rows


@pytest.fixture(scope="module")
def signed_in(browser: Any, site: Site) -> Iterator[Tab]:
    """A browser signed in as the reporting principal, through the login form."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = Tab(context)
    tab.page.goto(f"{site.base}/dashboard")
    assert tab.page.url.startswith(f"{site.base}/dashboard/login?next=")
    tab.page.fill("#token", site.tokens["board"])
    tab.page.click("form[action='/dashboard/login'] button[type=submit]")
    tab.page.wait_for_url(f"{site.base}/dashboard")
    tab.page.wait_for_function(DRAWN)
    yield tab
    context.close()


def _shot(tab: Tab, artefacts: Path, name: str) -> Path:
    path = artefacts / f"dashboard-{name}.png"
    tab.page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_overview_loads_with_no_console_errors(signed_in: Tab, site: Site, artefacts: Path) -> None:
    tab = signed_in
    response = tab.open(f"{site.base}/dashboard")
    assert response.status == 200
    assert tab.page.locator(".vis svg").count() == len(PAGES)
    labels = tab.page.eval_on_selector_all(
        ".vis", "vs => vs.map(v => v.getAttribute('aria-label'))"
    )
    captions = tab.page.eval_on_selector_all("figcaption", "cs => cs.map(c => c.textContent)")
    assert labels == captions and all(labels)  # each chart announces its description
    assert tab.errors == []  # CSP violations and failed loads are console errors too
    assert _shot(tab, artefacts, "overview").stat().st_size > 10_000


@pytest.mark.parametrize("name", PAGES)
def test_each_page_draws_its_chart_and_a_screenshot(
    signed_in: Tab, site: Site, artefacts: Path, name: str
) -> None:
    tab = signed_in
    assert tab.open(f"{site.base}/dashboard/{name}").status == 200
    assert tab.page.locator(".vis svg").count() == 1
    assert tab.errors == []
    assert _shot(tab, artefacts, name).stat().st_size > 10_000


def test_a_filter_click_redraws_the_chart(signed_in: Tab, site: Site, artefacts: Path) -> None:
    tab = signed_in
    tab.open(f"{site.base}/dashboard/genomes")
    before = tab.marks()
    tab.page.select_option("select[name=group]", "kidney")
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_url(f"{site.base}/dashboard/genomes?group=kidney")  # empty filters left out
    tab.page.wait_for_function(DRAWN)
    after = tab.marks()
    assert after and after != before
    assert len(after) < len(before)  # one patient group's bars instead of four
    assert tab.page.locator("select[name=group] option:checked").text_content() == "kidney"
    assert tab.errors == []
    _shot(tab, artefacts, "genomes-kidney")


@pytest.mark.parametrize("name", PAGES)
def test_the_table_beside_a_chart_equals_the_json_report(
    signed_in: Tab, site: Site, name: str
) -> None:
    tab = signed_in
    tab.open(f"{site.base}/dashboard/{name}?year={site.today.year}")
    got = tab.context.request.get(
        f"{site.base}/dashboard/{name}?year={site.today.year}&format=json"
    )
    assert got.status == 200
    report = got.json()
    head, rows = figures.rows(name, report)
    assert tab.table() == (
        [h.replace("_", " ") for h in head],
        [[cell(v) for v in r] for r in rows],
    )
    if name == "storage":
        history = [[cell(h[k]) for k in ("at", "controller", "type", "bytes")]
                   for h in report["history"]]  # fmt: skip
        assert tab.table("history")[1] == history


def test_an_unauthenticated_visit_is_refused(browser: Any, site: Site, artefacts: Path) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        tab = Tab(context)
        tab.page.goto(f"{site.base}/dashboard/quotas")
        assert tab.page.url == f"{site.base}/dashboard/login?next=%2Fdashboard%2Fquotas"
        assert tab.page.locator(".vis").count() == 0
        assert tab.page.locator("#token").is_visible()
        assert context.request.get(f"{site.base}/dashboard/quotas?format=json").status == 401
        tab.page.fill("#token", site.tokens["clinician"])  # a principal without the role
        tab.page.click("form[action='/dashboard/login'] button[type=submit]")
        assert "may not see the dashboard" in tab.page.locator(".alert").text_content()
        assert context.cookies() == []
        _shot(tab, artefacts, "login-refused")
    finally:
        context.close()


def test_json_for_the_browser_is_what_a_bearer_gets(signed_in: Tab, site: Site) -> None:
    url = f"{site.base}/dashboard/quotas?format=json"
    cookie = signed_in.context.request.get(url).json()
    assert cookie == httpx.get(url, headers=site.headers("board"), timeout=60).json()
