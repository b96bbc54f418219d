"""What a dashboard page shows (serve/dashboard.py): its filters, the reports of this process
remembered while the catalog's data are unchanged, and the tables beside the charts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from wgsvault.catalog.models import ApplyRun, Genome, JournalEntry, Quarantine, Scan
from wgsvault.config import site_config
from wgsvault.errors import InputError
from wgsvault.report import figures, governance
from wgsvault.report.targets import load_targets
from wgsvault.serve.context import Context

PAGES = {
    "genomes": "Genomes sequenced",
    "quotas": "Quotas",
    "turnaround": "Turnaround",
    "storage": "Storage",
}
#: the storage page's other tables: (report key, title, columns)
STORAGE_TABLES = (
    ("applied", "Applied plans", ["run", "finished_at", "promised_bytes", "freed_bytes"]),
    ("history", "Footprint history", ["at", "controller", "type", "bytes"]),
)
MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])\Z")


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


def options(ctx: Context, today: dt.date) -> dict[str, list[Any]]:
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
    back shows by then). Storage is remembered likewise, keyed by what moves when stored files
    change (scans, apply steps, quarantine, runs)."""

    def __init__(self, ctx: Context, size: int = 64, ttl: float = 600.0) -> None:
        self.ctx, self.size, self.ttl = ctx, size, ttl
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple[Any, ...], tuple[float, dict[str, Any]]] = OrderedDict()

    def _fingerprint(self) -> tuple[Any, ...]:
        stmt = select(func.count(), func.max(Genome.id), func.max(Genome.updated_at))
        with self.ctx.catalog.engine.connect() as conn:
            return tuple(conn.execute(stmt).one())

    def _files_fingerprint(self) -> tuple[Any, ...]:
        """What moves when stored files change: a scan, an apply step, a quarantine entry
        made or ended (undo, purge), an apply run."""
        marks = (
            Scan.id,
            Scan.finished_at,
            JournalEntry.id,
            Quarantine.id,
            Quarantine.ended_at,
            ApplyRun.id,
            ApplyRun.finished_at,
        )
        stmt = select(*(select(func.max(c)).scalar_subquery() for c in marks))
        with self.ctx.catalog.engine.connect() as conn:
            return tuple(conn.execute(stmt).one())

    def get(self, name: str, f: Filters, exact: bool, today: dt.date) -> dict[str, Any]:
        if name == "storage":
            price = site_config(self.ctx.settings.home).price_dkk_per_tb_year
            key: tuple[Any, ...] = (name, today, price, self._files_fingerprint())
        else:
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
