"""The steering group's figures: genomes sequenced, quotas, turnaround, storage.

Each report is a function of the catalog (and the targets) returning a JSON-able dict in the
shape the CLI prints with `--json`, the dashboard tables show and the charts draw
(report/charts.py). Definitions, so that a figure can be computed by hand:

* **genomes**: genomes with a `sequencing_date`, counted in the month, the year up to the end of
  the month, and all time up to the end of the month; per patient group, per requisitioning
  region, and per 100,000 inhabitants where the targets know the region's population.
* **quotas**: genomes sequenced in the year up to `as_of` (today for the running year, 31
  December for a past one), in the group's unit: `genomes`, or `cases` (genomes sharing a
  `family_id` are one case, counted when its first genome is sequenced). `expected` is the
  year's quota (plus the backlog in its first year) pro rata to `as_of`; `forecast` the
  year-end figure at the pace so far.
* **turnaround**: cases requisitioned in the year (a trio is one case: its earliest
  requisition, its latest delivery and report, its most urgent class). Days from requisition to
  report (and to delivery): median, and 90th percentile by nearest rank (the smallest value with
  at least 90 % of the cases at or below it); `within_target_pct` of the reported cases; open
  cases (no report) older than the target at `as_of`, and the age of the oldest. One row per
  urgency and patient group, and one per urgency for all groups (`patient_group` "all").
* **storage** (report/storage.py, re-exported here): footprint now and over time, bytes freed
  against promised, cost.

Counts of people pass through `suppress` (report/suppress.py): `exact=False` shows 1 to 4 as
"<5" and hides what is derived from them.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Genome
from wgsvault.errors import InputError
from wgsvault.report.storage import storage
from wgsvault.report.suppress import Count, hidden, suppress
from wgsvault.report.targets import URGENCIES, Targets

__all__ = ["genomes", "load_cases", "quotas", "storage", "turnaround"]

NO_GROUP = "(none)"
NO_REGION = "(unknown)"


@dataclass(frozen=True)
class Case:
    """One genome's case data (one row of the catalog)."""

    genome: str
    group: str
    region: str
    sequenced: dt.date | None
    requisition: dt.date | None
    delivery: dt.date | None
    report: dt.date | None
    urgency: str | None
    family: str | None


def _filters(patient_group: str | None, region: str | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if patient_group:
        out.append(Genome.patient_group == patient_group)
    if region:
        out.append(Genome.requisition_region == region)
    return out


def load_cases(
    catalog: Catalog,
    *,
    patient_group: str | None = None,
    region: str | None = None,
    where: list[ColumnElement[bool]] | None = None,
) -> list[Case]:
    """Every genome's case data, optionally of one patient group and/or region (and `where`)."""
    stmt = select(
        Genome.name,
        Genome.patient_group,
        Genome.requisition_region,
        Genome.sequencing_date,
        Genome.requisition_date,
        Genome.delivery_date,
        Genome.report_date,
        Genome.urgency,
        Genome.family_id,
    )
    stmt = stmt.where(*_filters(patient_group, region), *(where or []))
    with catalog.engine.connect() as conn:
        return [
            Case(n, g or NO_GROUP, r or NO_REGION, s, q, d, rp, u, f)
            for n, g, r, s, q, d, rp, u, f in conn.execute(stmt)
        ]


def parse_month(month: str | None, today: dt.date) -> dt.date:
    """The first day of `YYYY-MM` (default: the current month); not in the future."""
    if month is None:
        return today.replace(day=1)
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise InputError(f"month {month!r}: expected YYYY-MM") from None
    if first > today:
        raise InputError(f"month {month}: in the future")
    return first


def _month_end(first: dt.date) -> dt.date:
    nxt = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return nxt - dt.timedelta(days=1)


def _three(counts: dict[str, int], exact: bool) -> dict[str, Count]:
    return {k: suppress(v, exact) for k, v in counts.items()}


def genomes(
    catalog: Catalog,
    *,
    targets: Targets,
    month: str | None = None,
    exact: bool = True,
    patient_group: str | None = None,
    region: str | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Genomes sequenced in a month, the year to date and all time; per group and region."""
    today = today or dt.date.today()
    first = parse_month(month, today)
    end = _month_end(first)
    seq = Genome.sequencing_date
    stmt = (
        select(
            Genome.patient_group,
            Genome.requisition_region,
            func.sum(case((seq >= first, 1), else_=0)),
            func.sum(case((seq >= dt.date(end.year, 1, 1), 1), else_=0)),
            func.count(),
        )
        .where(seq <= end, *_filters(patient_group, region))
        .group_by(Genome.patient_group, Genome.requisition_region)
    )
    total: Counter[str] = Counter()
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    regions: dict[str, Counter[str]] = defaultdict(Counter)
    with catalog.engine.connect() as conn:  # one GROUP BY; the rest is a few hundred cells
        for g, r, month_n, ytd, all_time in conn.execute(stmt):
            here = {
                "month": int(month_n or 0),
                "year_to_date": int(ytd or 0),
                "all_time": int(all_time),
            }
            for counter in (total, groups[g or NO_GROUP], regions[r or NO_REGION]):
                counter.update(here)
    names = ("month", "year_to_date", "all_time")

    def cell(counter: Counter[str]) -> dict[str, int]:
        return {k: counter[k] for k in names}

    by_region: dict[str, Any] = {}
    for r in sorted(regions):
        counts = cell(regions[r])
        row: dict[str, Any] = _three(counts, exact)
        people = targets.population.get(r)
        if people:
            row["per_100k"] = {
                k: None if hidden(v, exact) else round(v * 100_000 / people, 2)
                for k, v in counts.items()
            }
        by_region[r] = row
    return {
        "month": f"{first:%Y-%m}",
        "filters": {"patient_group": patient_group, "region": region},
        "total": _three(cell(total), exact),
        "by_patient_group": {g: _three(cell(groups[g]), exact) for g in sorted(groups)},
        "by_region": by_region,
    }


def _as_of(year: int | None, today: dt.date) -> tuple[int, dt.date]:
    year = year or today.year
    if year > today.year:
        raise InputError(f"year {year}: in the future")
    return year, (today if year == today.year else dt.date(year, 12, 31))


def quotas(
    catalog: Catalog,
    *,
    targets: Targets,
    year: int | None = None,
    exact: bool = True,
    region: str | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Per patient group with a quota: delivered against expected, fulfilment, forecast."""
    today = today or dt.date.today()
    year, as_of = _as_of(year, today)
    start = dt.date(year, 1, 1)
    days = (dt.date(year + 1, 1, 1) - start).days
    elapsed = ((as_of - start).days + 1) / days
    delivered = _delivered(catalog, targets, start, as_of, region)
    rows = []
    for group, q in targets.quotas.items():
        n = delivered[group]
        owed = q.owed(year)
        expected = round(owed * elapsed, 1)
        gone = hidden(n, exact)
        rows.append(
            {
                "patient_group": group,
                "unit": q.unit,
                "quota": q.per_year,
                "backlog": q.backlog if year == q.first_year else 0,
                "delivered": suppress(n, exact),
                "expected": expected,
                "fulfilment_pct": None if gone or not expected else round(100 * n / expected, 1),
                "forecast": None if gone else round(n / elapsed),
            }
        )
    return {"year": year, "as_of": as_of.isoformat(), "filters": {"region": region}, "groups": rows}


def _case_key() -> ColumnElement[str]:
    """A case: the genome's family (a trio), or the genome alone."""
    return func.coalesce(Genome.family_id, literal("genome:").concat(Genome.name))


def _delivered(
    catalog: Catalog, targets: Targets, start: dt.date, as_of: dt.date, region: str | None
) -> Counter[str]:
    """Per patient group with a quota: genomes, or cases by their first genome, sequenced
    from `start` to `as_of` (two GROUP BYs)."""
    seq = Genome.sequencing_date
    by_unit = {
        u: [g for g, q in targets.quotas.items() if q.unit == u] for u in ("genomes", "cases")
    }
    out: Counter[str] = Counter()
    with catalog.engine.connect() as conn:
        if by_unit["genomes"]:
            stmt = (
                select(Genome.patient_group, func.count())
                .where(
                    Genome.patient_group.in_(by_unit["genomes"]),
                    seq.between(start, as_of),
                    *_filters(None, region),
                )
                .group_by(Genome.patient_group)
            )
            out.update({str(g): int(n) for g, n in conn.execute(stmt)})
        if by_unit["cases"]:
            key = _case_key().label("case")
            first = (
                select(Genome.patient_group, key, func.min(seq).label("first"))
                .where(
                    Genome.patient_group.in_(by_unit["cases"]),
                    seq.is_not(None),
                    *_filters(None, region),
                )
                .group_by(Genome.patient_group, key)
                .subquery()
            )
            stmt2 = (
                select(first.c.patient_group, func.count())
                .where(first.c.first.between(start, as_of))
                .group_by(first.c.patient_group)
            )
            out.update({str(g): int(n) for g, n in conn.execute(stmt2)})
    return out


def _nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


@dataclass
class _Case:
    group: str
    urgency: str
    requisition: dt.date
    delivery: dt.date | None
    report: dt.date | None
    open: bool


def _cases_of_year(
    catalog: Catalog, year: int, as_of: dt.date, group: str | None, region: str | None
) -> list[_Case]:
    """Cases (families) first requisitioned in `year` up to `as_of`: earliest requisition,
    latest dates, most urgent class; a case is open while any of its genomes has no report by
    `as_of` (a report dated later had not happened then)."""
    known = [Genome.requisition_date.is_not(None), Genome.urgency.in_(URGENCIES)]
    key = _case_key()
    of_year = (  # the cases whose first requisition falls in the year, up to as_of
        select(key)
        .where(*known, *_filters(group, region))
        .group_by(key)
        .having(func.min(Genome.requisition_date).between(dt.date(year, 1, 1), as_of))
    )
    families: dict[str, list[Case]] = defaultdict(list)
    for c in load_cases(
        catalog, patient_group=group, region=region, where=[*known, key.in_(of_year)]
    ):
        families[c.family or f"genome:{c.genome}"].append(c)

    def then(d: dt.date | None) -> dt.date | None:  # what had happened by as_of
        return d if d is not None and d <= as_of else None

    out = []
    for members in families.values():
        req = min(m.requisition for m in members if m.requisition is not None)
        reports = [then(m.report) for m in members]
        deliveries = [then(m.delivery) for m in members]
        is_open = any(r is None for r in reports)
        out.append(
            _Case(
                group=members[0].group,
                urgency=min((m.urgency for m in members if m.urgency), key=URGENCIES.index),
                requisition=req,
                delivery=None
                if any(d is None for d in deliveries)
                else max(d for d in deliveries if d is not None),
                report=None if is_open else max(r for r in reports if r is not None),
                open=is_open,
            )
        )
    return out


def turnaround(
    catalog: Catalog,
    *,
    targets: Targets,
    year: int | None = None,
    exact: bool = True,
    patient_group: str | None = None,
    region: str | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Requisition -> delivery and -> report, per urgency class and patient group."""
    today = today or dt.date.today()
    year, as_of = _as_of(year, today)
    cells: dict[tuple[str, str], list[_Case]] = defaultdict(list)
    for c in _cases_of_year(catalog, year, as_of, patient_group, region):
        cells[(c.urgency, c.group)].append(c)
        cells[(c.urgency, "all")].append(c)
    rows = []
    for urgency in URGENCIES:
        target = targets.turnaround.days(urgency)
        keys = sorted(k for k in cells if k[0] == urgency and k[1] != "all")
        for key in [*keys, (urgency, "all")] if keys else []:
            rows.append(_turnaround_row(key, cells[key], target, as_of, exact))
    return {
        "year": year,
        "as_of": as_of.isoformat(),
        "filters": {"patient_group": patient_group, "region": region},
        "targets": {u: targets.turnaround.days(u) for u in URGENCIES},
        "rows": rows,
    }


def _turnaround_row(
    key: tuple[str, str], cases: list[_Case], target: int, as_of: dt.date, exact: bool
) -> dict[str, Any]:
    reported = [(c.report - c.requisition).days for c in cases if c.report is not None]
    delivered = [(c.delivery - c.requisition).days for c in cases if c.delivery is not None]
    ages = [(as_of - c.requisition).days for c in cases if c.open]
    late = sum(1 for a in ages if a > target)
    gone = hidden(len(cases), exact)

    def stat(values: list[int], p: float | None) -> float | int | None:
        if gone or not values or hidden(len(values), exact):
            return None
        return statistics.median(values) if p is None else _nearest_rank(values, p)

    return {
        "urgency": key[0],
        "patient_group": key[1],
        "target_days": target,
        "cases": suppress(len(cases), exact),
        "reported": suppress(len(reported), exact),
        "median_days": stat(reported, None),
        "p90_days": stat(reported, 0.9),
        "delivery_median_days": stat(delivered, None),
        "delivery_p90_days": stat(delivered, 0.9),
        "within_target_pct": None
        if gone or not reported or hidden(len(reported), exact)
        else round(100 * sum(1 for d in reported if d <= target) / len(reported), 1),
        "open": suppress(len(ages), exact),
        "open_past_target": suppress(late, exact),
        "oldest_open_days": None if not ages or hidden(len(ages), exact) else max(ages),
    }
