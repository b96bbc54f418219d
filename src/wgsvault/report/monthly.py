"""The monthly report: the document a steering-group meeting reads, as one PDF.

`monthly()` computes the four governance reports (governance.py) as of the end of the month (or
today, while the month runs): genomes sequenced in the month, the quotas and the turnaround of
its year, and storage as it is now. Counts from 1 to 4 are suppressed (`exact=False`,
suppress.py) whoever runs it, because the document leaves the vault. `render_html` fills
`templates/monthly.html` (Jinja2, autoescaped) with the key figures, a few sentences per section
(`summaries`, written here so that they can be tested), the tables the CLI and the dashboard show
(figures.rows) and the charts as SVG (charts.svg: the very Vega-Lite specs the dashboard draws).
`write_pdf` lays the HTML out with WeasyPrint (Pango underneath; no network: the charts are
inline `data:` images and the fonts are the system's) and writes the file atomically, so a
reader never opens half a report.

The document carries its format (`wgsvault-monthly/1`) and provenance (tool version, catalog
without its password, targets file and its sha256, when it was made) in its last section and in
the PDF's metadata.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from wgsvault import __version__
from wgsvault.catalog import Catalog
from wgsvault.errors import InputError
from wgsvault.fsutil import atomic_write_bytes
from wgsvault.report import charts, figures, governance
from wgsvault.report.suppress import SUPPRESSED
from wgsvault.report.targets import DEFAULT as DEFAULT_TARGETS
from wgsvault.report.targets import load_targets

FORMAT = "wgsvault-monthly/1"
TEMPLATES = Path(__file__).with_name("templates")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip
_SVG_SIZE = re.compile(r'<svg[^>]* width="([^"]+)" height="([^"]+)"')
FONT = "DejaVu Sans"  # Debian's fonts-dejavu-core; the template asks for it too


@dataclass
class Monthly:
    """The month's reports and where they came from."""

    month: str  # YYYY-MM
    as_of: dt.date  # the figures are as of this day: the month's last, or today
    generated_at: dt.datetime
    reports: dict[str, dict[str, Any]]
    provenance: dict[str, str]

    @property
    def title(self) -> str:
        first = dt.date.fromisoformat(f"{self.month}-01")
        return f"{MONTHS[first.month - 1]} {first.year}"


def _month_end(first: dt.date) -> dt.date:
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def monthly(
    catalog: Catalog,
    *,
    month: str,
    price: float,
    targets: Path | None = None,
    today: dt.date | None = None,
) -> Monthly:
    """The four reports of `month` (YYYY-MM), small cells suppressed; InputError for a bad or
    future month, PolicyError for a bad targets file."""
    today = today or dt.date.today()
    first = governance.parse_month(month, today)
    as_of = min(today, _month_end(first))
    goals = load_targets(targets)
    reports = {
        "genomes": governance.genomes(
            catalog, targets=goals, month=month, exact=False, today=as_of
        ),
        "quotas": governance.quotas(
            catalog, targets=goals, year=first.year, exact=False, today=as_of
        ),
        "turnaround": governance.turnaround(
            catalog, targets=goals, year=first.year, exact=False, today=as_of
        ),
        "storage": governance.storage(catalog, price=price, exact=False),
    }
    source = Path(targets) if targets else DEFAULT_TARGETS
    provenance = {
        "format": FORMAT,
        "tool": f"wgsvault {__version__}",
        "catalog": make_url(catalog.url).render_as_string(hide_password=True),
        "targets": f"{'shipped default' if targets is None else source} "
        f"(sha256 {hashlib.sha256(source.read_bytes()).hexdigest()[:16]}…)",
        "price": f"{price:,.0f} DKK per TB-year",
    }
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return Monthly(f"{first:%Y-%m}", as_of, now, reports, provenance)


# --------------------------------------------------------------------------- words


def fmt(value: Any) -> str:
    """A figure as the document prints it: thousands separated, "<5" and "–" for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    return str(value)


def _n(value: Any) -> float:
    """A count for ranking: "<5" ranks as 0."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _plural(value: Any, word: str) -> str:
    return f"{fmt(value)} {word}{'' if value == 1 else 's'}"


def _genomes_text(r: Mapping[str, Any], year: str) -> list[str]:
    t = r["total"]
    text = [
        f"{_plural(t['month'], 'genome')} sequenced in the month, {fmt(t['year_to_date'])} "
        f"in {year} so far and {fmt(t['all_time'])} since records began."
    ]
    groups = r["by_patient_group"]
    if groups:
        top = max(groups, key=lambda g: _n(groups[g]["month"]))
        text.append(
            f"The largest patient group of the month was {top} "
            f"({fmt(groups[top]['month'])} genomes)."
        )
    rated = {
        k: v["per_100k"]["year_to_date"]
        for k, v in r["by_region"].items()
        if isinstance((v.get("per_100k") or {}).get("year_to_date"), int | float)
    }
    if len(rated) > 1:
        hi, lo = max(rated, key=rated.__getitem__), min(rated, key=rated.__getitem__)
        text.append(
            f"Per 100,000 inhabitants, {hi} requisitioned the most genomes in {year} "
            f"({fmt(rated[hi])}) and {lo} the fewest ({fmt(rated[lo])})."
        )
    return text


def _quotas_text(r: Mapping[str, Any]) -> list[str]:
    rows = r["groups"]
    if not rows:
        return ["The targets file sets no quotas."]
    ahead = [g for g in rows if isinstance(g["fulfilment_pct"], int | float)]
    on = [g["patient_group"] for g in ahead if g["fulfilment_pct"] >= 100]
    behind = [g for g in ahead if g["fulfilment_pct"] < 100]
    text = [
        f"{len(on)} of {len(rows)} patient groups with a quota "
        f"{'is' if len(on) == 1 else 'are'} at or above the pro-rata expectation"
        + (f" ({', '.join(on)})." if on else ".")
    ]
    for g in behind:
        owed = g["quota"] + g["backlog"]
        text.append(
            f"{g['patient_group'].capitalize()} is behind: {fmt(g['delivered'])} {g['unit']} "
            f"delivered of {fmt(round(g['expected']))} expected by {r['as_of']} "
            f"({fmt(g['fulfilment_pct'])} %); at this pace the year ends at "
            f"{fmt(g['forecast'])} of {fmt(owed)}."
        )
    hidden = [g["patient_group"] for g in rows if g["fulfilment_pct"] is None]
    if hidden:
        text.append(f"No fulfilment is shown for {', '.join(hidden)} (too few to show).")
    return text


def _turnaround_text(r: Mapping[str, Any]) -> list[str]:
    text = []
    for row in r["rows"]:
        if row["patient_group"] != "all":
            continue
        sentence = (
            f"{row['urgency'].capitalize()} (target {row['target_days']} days): "
            f"{_plural(row['cases'], 'case')}, "
        )
        if row["within_target_pct"] is None:
            sentence += "too few reported to show times"
        else:
            sentence += (
                f"{fmt(row['within_target_pct'])} % of those reported within target, median "
                f"{fmt(row['median_days'])} days, 90th percentile {fmt(row['p90_days'])}"
            )
        late = row["open_past_target"]
        if late not in (0, None):
            oldest = row["oldest_open_days"]
            sentence += f"; {fmt(late)} open past target" + (
                f", the oldest {fmt(oldest)} days" if oldest is not None else ""
            )
        text.append(sentence + ".")
    return text or [f"No case was requisitioned in {r['year']} by {r['as_of']}."]


def _bytes(n: float) -> str:
    for unit, div in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{n:,.0f} bytes"


def _storage_text(r: Mapping[str, Any]) -> list[str]:
    text = [
        f"On {r['as_of']} the vault stores {_bytes(r['total_bytes'])} for "
        f"{_plural(r['genomes'], 'genome')}: {fmt(r['cost_per_year_dkk'])} DKK a year at "
        f"{fmt(r['price_dkk_per_tb_year'])} DKK per TB-year"
        + (
            f", {fmt(r['cost_per_genome_dkk'])} DKK per genome."
            if r["cost_per_genome_dkk"] is not None
            else "."
        )
    ]
    applied = r["applied"]
    if applied:
        promised = sum(int(a["promised_bytes"] or 0) for a in applied)
        freed = sum(int(a["freed_bytes"] or 0) for a in applied)
        text.append(
            f"{_plural(len(applied), 'applied plan run')} freed {_bytes(freed)}"
            + (f" of the {_bytes(promised)} the plans promised." if promised else ".")
        )
    return text


def summaries(m: Monthly) -> dict[str, list[str]]:
    """A few plain sentences per section, from the reports' figures."""
    r = m.reports
    return {
        "genomes": _genomes_text(r["genomes"], m.month[:4]),
        "quotas": _quotas_text(r["quotas"]),
        "turnaround": _turnaround_text(r["turnaround"]),
        "storage": _storage_text(r["storage"]),
    }


def key_figures(m: Monthly) -> list[tuple[str, str]]:
    """(label, figure) of the front page's tiles."""
    g, q, t = m.reports["genomes"], m.reports["quotas"], m.reports["turnaround"]
    tiles = [
        (f"genomes sequenced in {m.title}", fmt(g["total"]["month"])),
        (f"genomes in {m.month[:4]} to date", fmt(g["total"]["year_to_date"])),
        ("genomes all time", fmt(g["total"]["all_time"])),
    ]
    for row in q["groups"]:
        pct = row["fulfilment_pct"]
        figure = "–" if pct is None else f"{pct:.0f} %"
        tiles.append((f"{row['patient_group']}: of expected", figure))
    for row in t["rows"]:
        if row["patient_group"] == "all" and row["urgency"] == "acute":
            pct = row["within_target_pct"]
            label = f"acute cases reported within {row['target_days']} days"
            tiles.append((label, "–" if pct is None else f"{pct:.0f} %"))
    tiles.append(("storage, DKK a year", fmt(m.reports["storage"]["cost_per_year_dkk"])))
    return tiles


# --------------------------------------------------------------------------- the document


def _chart(name: str, report: Mapping[str, Any]) -> dict[str, str]:
    spec = charts.spec(name, report)
    # the dashboard's spec, in the font the document is set in: vl-convert measures the labels
    # with the font WeasyPrint then draws them in, so none is cut at the axis
    spec["config"] = {**spec.get("config", {}), "font": FONT}
    svg = charts.svg(spec)
    alt = str(spec.get("description", ""))
    size = _SVG_SIZE.search(svg)
    if size is None or not all(0 < float(x) < 1e5 for x in size.groups()):
        return {"src": "", "alt": alt}  # nothing to draw (no scan yet, say): no empty frame
    return {
        "src": "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(),
        "alt": alt,
    }


def cell(value: Any) -> str:
    """A table cell: like `fmt`, but with one decimal for every fraction, so columns align."""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return "" if value is None else fmt(value)


def _table(title: str, head: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    numeric = [i > 0 and any(figures.numeric(r[i]) for r in rows) for i in range(len(head))]
    return {"title": title, "head": head, "rows": rows, "numeric": numeric}


def _tables(name: str, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    head, rows = figures.rows(name, dict(report))
    if name == "genomes":  # two tables: the rates only mean something per region
        by_group = [r[1:5] for r in rows if r[0] in ("total", "patient group")]
        by_region = [r[1:] for r in rows if r[0] == "region"]
        return [
            _table("Per patient group", ["patient group", *head[2:5]], by_group),
            _table("Per requisitioning region", ["region", *head[2:]], by_region),
        ]
    if name == "turnaround":  # the delivery columns are for the CSV; the meeting reads reports
        keep = [i for i, h in enumerate(head) if not h.startswith("delivery_")]
        return [_table("", [head[i] for i in keep], [[r[i] for i in keep] for r in rows])]
    if name == "storage":  # people read sizes, not byte counts
        return [_table("", [*head, "size"], [[*r, _bytes(r[-1])] for r in rows])]
    return [_table("", head, rows)]


def render_html(m: Monthly) -> str:
    """The report as one self-contained HTML document (charts inline)."""
    r = m.reports
    sections = {
        name: {
            "text": text,
            "chart": _chart(name, r[name]),
            "tables": _tables(name, r[name]),
        }
        for name, text in summaries(m).items()
    }
    template = figures.environment(TEMPLATES, cell).get_template("monthly.html")
    return template.render(m=m, r=r, sections=sections, tiles=key_figures(m), suppressed=SUPPRESSED)


def write_pdf(m: Monthly, path: Path) -> Path:
    """The report as PDF at `path`, written atomically."""
    import weasyprint

    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: no directory {path.parent} to write the report in")
    # everything is inline: refuse any fetch but `data:` URLs, so nothing reaches a network
    fetcher = weasyprint.URLFetcher(allowed_protocols=("data",), fail_on_errors=True)
    html = weasyprint.HTML(string=render_html(m), url_fetcher=fetcher)
    data = html.write_pdf(custom_metadata=True, pdf_tags=True)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None
    return path
