#!/usr/bin/env python3
"""Reports bench: the steering group's reports and dashboard on a national-scale case history.

A synthetic case history of G genomes (default 60,000: demo/cases.py, the demo's generator at
national scale, requisitioned 2019-2026, trios, open cases) is imported through the manifest into
a fresh catalog on SQLite and on PostgreSQL (WGSVAULT_TEST_PG, default
postgresql://postgres@127.0.0.1:5432/test; a database of its own is created and dropped), with
what the storage report reads at that scale: a CRAM, a VCF and their indexes per genome at the
national database and a FASTQ pair for a fifth of them at the regions, monthly footprint
snapshots since 2019, and the journal of the national run (three rows per genome). Measured in
one run per backend:

1. each report function (report/governance.py) as the CLI calls it, next to the SELECT of the rows
   it reads and to the plain SQL aggregate it stands for (GROUP BY per patient group and region,
   COUNT DISTINCT of cases, AVG of days, SUM per controller and type), each without Python around
   it; target <= 1 s per report;
2. each dashboard page (`/dashboard`, `/dashboard/{genomes,quotas,turnaround,storage}`, the page
   and its `?format=json`) answered in process by FastAPI's TestClient to a reporting principal's
   bearer token, every view audited as in service: computed (a genome's case data changed and a
   scan recorded before each view, as after an import and a scan, so the page's report cache
   cannot answer) and from that
   cache (the same view again); target <= 300 ms of server time;
3. the monthly PDF (report/monthly.py): its four reports, the HTML with four SVG charts, the layout.

Each figure is the median of --repeat runs after one warm-up. Nothing is asserted.

    python bench/reports.py [--genomes 60000] [--repeat 5] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import (
    Select,
    and_,
    case,
    distinct,
    func,
    insert,
    select,
    text,
)

from wgsvault import access
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.catalog.models import (
    ApplyRun,
    Controller,
    File,
    FootprintSnapshot,
    Genome,
    JournalEntry,
    Root,
    Scan,
)
from wgsvault.demo.cases import write_case_manifest
from wgsvault.report import governance, monthly
from wgsvault.report.targets import Targets, load_targets

from pgdb import PG, pg_database, pg_reachable

PRICE = 1500.0
REGIONS = ["region-hovedstaden", "region-midtjylland", "region-syddanmark", "region-sjaelland",
           "region-nordjylland"]  # fmt: skip
REPORT_TARGET, PAGE_TARGET = 1.0, 0.3
console = Console(width=160)


def median_time(
    fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None
) -> float:
    """Median wall seconds of `repeat` calls after one warm-up (`before` each, not timed)."""
    fn()
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- the catalog -------------------------------------------------------------------------------


def fill(cat: Catalog, manifest: Path) -> dict[str, float]:
    """The case history through the manifest import, then the storage a national store holds."""
    t0 = time.perf_counter()
    import_manifest(cat, manifest)
    imported = time.perf_counter() - t0
    t0 = time.perf_counter()
    with cat.engine.begin() as conn:
        genomes = list(conn.execute(select(Genome.id, Genome.name).order_by(Genome.id)))
        scan_id = conn.execute(insert(Scan).values(roots="[]", layout="bench", status="done",
                                                   finished_at=dt.datetime.now(dt.UTC))
                               .returning(Scan.id)).scalar_one()  # fmt: skip
        ids: dict[str, tuple[int, int]] = {}
        for name in ["national", *REGIONS]:
            kind = "national" if name == "national" else "region"
            c = conn.execute(insert(Controller).values(name=name, kind=kind)
                             .returning(Controller.id)).scalar_one()  # fmt: skip
            r = conn.execute(insert(Root).values(path=f"/bench/{name}", last_scan_id=scan_id)
                             .returning(Root.id)).scalar_one()  # fmt: skip
            ids[name] = (c, r)
        files: list[dict[str, Any]] = []

        def add(ctrl: str, gid: int, name: str, rel: str, ftype: str, size: int,
                unit: str | None = None, read_no: int | None = None) -> None:  # fmt: skip
            c, r = ids[ctrl]
            path = f"/bench/{ctrl}/{name}/{rel}"
            files.append({"root_id": r, "path": path, "unit": unit or path, "type": ftype,
                          "read_no": read_no, "controller_id": c, "genome_id": gid,
                          "size": size, "mtime_ns": 0, "inode": len(files), "n_files": 1,
                          "status": "present", "first_scan_id": scan_id,
                          "last_change_scan_id": scan_id})  # fmt: skip

        for i, (gid, name) in enumerate(genomes):
            cram = f"/bench/national/{name}/{name}.cram"
            vcf = f"/bench/national/{name}/{name}.vcf.gz"
            add("national", gid, name, f"{name}.cram", "cram", 27 * 10**9)
            add("national", gid, name, f"{name}.cram.crai", "index", 1_500_000, unit=cram)
            add("national", gid, name, f"{name}.vcf.gz", "vcf", 4 * 10**9)
            add("national", gid, name, f"{name}.vcf.gz.tbi", "index", 2_000_000, unit=vcf)
            if i % 5 == 0:
                region = REGIONS[i % len(REGIONS)]
                pair = f"/bench/{region}/{name}/{name}_R"
                for read in (1, 2):
                    add(region, gid, name, f"{name}_R{read}.fastq.gz", "fastq", 45 * 10**9,
                        unit=pair, read_no=read)  # fmt: skip
            if len(files) >= 20_000:
                conn.execute(insert(File), files)
                files.clear()
        if files:
            conn.execute(insert(File), files)
        snapshots = []
        month = dt.date(2019, 1, 1)
        n, step = 0, max(1, len(genomes) // 95)
        while month <= dt.date.today():
            n = min(len(genomes), n + step)
            at = dt.datetime(month.year, month.month, 1, 6, tzinfo=dt.UTC)
            for ctrl, ftype, size in (("national", "cram", 27e9), ("national", "vcf", 4e9),
                                      ("national", "index", 3.5e6),
                                      *((r, "fastq", 90e9 / 25) for r in REGIONS)):  # fmt: skip
                snapshots.append({"scan_id": scan_id, "at": at, "controller": ctrl,
                                  "type": ftype, "files": n, "bytes": int(n * size),
                                  "genomes": n})  # fmt: skip
            month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        conn.execute(insert(FootprintSnapshot), snapshots)
        runs = [conn.execute(insert(ApplyRun).values(
                    plan_sha256=f"{r:064x}", plan_path="plan-B.json", actor="bench", host="bench",
                    pid=1, executor="slurm", status="done", finished_at=dt.datetime.now(dt.UTC),
                    promised_bytes=len(genomes) // 12 * 75 * 10**9,
                    freed_bytes=len(genomes) // 12 * 72 * 10**9)  # as a run records it at its end
                .returning(ApplyRun.id)).scalar_one() for r in range(12)]  # fmt: skip
        journal: list[dict[str, Any]] = []
        for i, (_, name) in enumerate(genomes):
            run = runs[i % len(runs)]
            for step_name, detail in (("convert", '{"bytes_written": 27000000000}'),
                                      ("quarantine:bcl", '{"path": "x"}'),
                                      ("action", '{"bytes_freed": 75000000000}')):  # fmt: skip
                journal.append({"run_id": run, "plan_sha256": f"{run:064x}",
                                "action_id": f"{i:024x}", "genome": name, "step": step_name,
                                "state": "done", "detail": detail})  # fmt: skip
            if len(journal) >= 30_000:
                conn.execute(insert(JournalEntry), journal)
                journal.clear()
        if journal:
            conn.execute(insert(JournalEntry), journal)
    if cat.backend == "postgresql":
        with cat.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return {"import": imported, "storage": time.perf_counter() - t0, "genomes": len(genomes)}


# -- plain SQL ---------------------------------------------------------------------------------


def _days(cat: Catalog, later: Any, earlier: Any) -> Any:
    if cat.backend == "sqlite":
        return func.julianday(later) - func.julianday(earlier)
    return later - earlier  # PostgreSQL: date - date is an integer of days


Statements = list[Select[Any]]


def plain_sql(cat: Catalog, targets: Targets, month: dt.date) -> dict[str, tuple[Statements, ...]]:
    """Per report: (the SELECTs of the rows the function reads, the SQL aggregates it is)."""
    year = dt.date(month.year, 1, 1)
    end = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1) - dt.timedelta(days=1)
    seq = Genome.sequencing_date

    def periods(key: Any) -> Select[Any]:
        return (select(key, func.sum(case((seq >= month, 1), else_=0)),
                       func.sum(case((seq >= year, 1), else_=0)), func.count())
                .where(seq <= end).group_by(key))  # fmt: skip

    cases_rows = select(Genome.name, Genome.patient_group, Genome.requisition_region, seq,
                        Genome.requisition_date, Genome.delivery_date, Genome.report_date,
                        Genome.urgency, Genome.family_id)  # fmt: skip
    quotas = (select(Genome.patient_group,
                     func.count(distinct(func.coalesce(Genome.family_id, Genome.name))))
              .where(Genome.patient_group.in_(list(targets.quotas)), seq >= year, seq <= end)
              .group_by(Genome.patient_group))  # fmt: skip
    days = _days(cat, Genome.report_date, Genome.requisition_date)
    turnaround = (select(Genome.urgency, Genome.patient_group, func.count(), func.avg(days),
                         func.sum(case((Genome.report_date.is_(None), 1), else_=0)))
                  .where(and_(Genome.requisition_date >= year, Genome.requisition_date <= end))
                  .group_by(Genome.urgency, Genome.patient_group))  # fmt: skip
    ctrl = func.coalesce(Controller.name, "(unassigned)")
    footprint = (select(ctrl, File.type, func.sum(File.n_files), func.sum(File.size))
                 .select_from(File).outerjoin(Controller, Controller.id == File.controller_id)
                 .where(File.status == "present").group_by(ctrl, File.type))  # fmt: skip
    storage_rows = [
        footprint,
        select(func.count(distinct(File.genome_id))).where(File.status == "present"),
        select(FootprintSnapshot.at, FootprintSnapshot.controller, FootprintSnapshot.type,
               FootprintSnapshot.bytes),
        select(JournalEntry.run_id, JournalEntry.detail).where(
            JournalEntry.state == "done", JournalEntry.detail.like('%"bytes_freed"%')),
    ]  # fmt: skip
    return {
        "genomes": ([cases_rows],
                    [periods(Genome.patient_group), periods(Genome.requisition_region)]),
        "quotas": ([cases_rows], [quotas]),
        "turnaround": ([cases_rows], [turnaround]),
        "storage": (storage_rows, [footprint]),
    }  # fmt: skip


def run_sql(cat: Catalog, statements: list[Select[Any]]) -> None:
    with cat.engine.connect() as conn:
        for stmt in statements:
            conn.execute(stmt).all()


# -- one backend -------------------------------------------------------------------------------


def measure(cat: Catalog, home: Path, repeat: int, row: Callable[..., None]) -> None:
    targets = load_targets()
    today = dt.date.today()
    month = today.replace(day=1)
    calls: dict[str, Callable[[], Any]] = {
        "genomes": lambda: governance.genomes(cat, targets=targets, month=f"{month:%Y-%m}"),
        "quotas": lambda: governance.quotas(cat, targets=targets),
        "turnaround": lambda: governance.turnaround(cat, targets=targets),
        "storage": lambda: governance.storage(cat, price=PRICE),
    }
    sql = plain_sql(cat, targets, month)
    for name, call in calls.items():
        t_fn = median_time(call, repeat)
        fetch, aggregate = sql[name]
        t_fetch = median_time(lambda f=fetch: run_sql(cat, f), repeat)
        t_sql = median_time(lambda a=aggregate: run_sql(cat, a), repeat)
        row(f"report {name}", t_fn, REPORT_TARGET,
            f"rows it reads {t_fetch * 1e3:,.0f} ms; "
            f"plain SQL aggregate {t_sql * 1e3:,.0f} ms")  # fmt: skip
    dashboard(cat, home, repeat, row)
    t0 = time.perf_counter()
    m = monthly.monthly(cat, month=f"{month:%Y-%m}", price=PRICE)
    t_reports = time.perf_counter() - t0
    t0 = time.perf_counter()
    html = monthly.render_html(m)
    t_html = time.perf_counter() - t0
    t0 = time.perf_counter()
    pdf = monthly.write_pdf(m, home / "monthly.pdf")
    t_all = time.perf_counter() - t0  # write_pdf renders the HTML again
    row("monthly PDF", t_reports + t_all, None,
        f"reports {t_reports:.2f} s, HTML + 4 SVG charts {t_html:.2f} s, layout "
        f"{t_all - t_html:.2f} s; {pdf.stat().st_size / 1e3:,.0f} kB, {len(html) / 1e3:,.0f} kB "
        "of HTML")  # fmt: skip


def dashboard(cat: Catalog, home: Path, repeat: int, row: Callable[..., None]) -> None:
    with warnings.catch_warnings():  # starlette's notice about its httpx client: not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    from wgsvault.serve import Settings, create_app

    name = f"bench-{uuid.uuid4().hex[:6]}"
    access.add_principal(cat, name, "steering group (bench)", role="reporting", actor="bench")
    token = access.issue_token(cat, name, actor="bench")
    settings = Settings(catalog_url=cat.url, home=home, base_url="http://testserver")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        for page in ("", "/genomes", "/quotas", "/turnaround", "/storage"):
            for fmt in ("html", "json") if page else ("html",):
                params = {"format": fmt} if fmt != "html" else {}

                def get(page: str = page, params: dict[str, str] = params) -> None:
                    r = client.get(f"/dashboard{page}", params=params, headers=auth)
                    if r.status_code != 200:
                        raise SystemExit(f"/dashboard{page}: {r.status_code} {r.text[:200]}")

                cold = median_time(get, repeat, before=lambda: touch(cat))
                warm = median_time(get, repeat)
                size = len(client.get(f"/dashboard{page}", params=params, headers=auth).content)
                row(f"page /dashboard{page}" + (f"?format={fmt}" if params else ""), cold,
                    PAGE_TARGET, f"computed; viewed again {warm * 1e3:,.0f} ms (cached case "
                    f"reports); {size / 1e3:,.0f} kB")  # fmt: skip


def touch(cat: Catalog) -> None:
    """Change a genome's case data, as an import does, and record a scan, as a scan does: the
    dashboard computes its case reports and its storage report anew."""
    now = dt.datetime.now(dt.UTC)
    with cat.engine.begin() as conn:
        first = conn.execute(select(func.min(Genome.id))).scalar_one()
        conn.execute(Genome.__table__.update().where(Genome.id == first)
                     .values(updated_at=now))  # fmt: skip
        conn.execute(Scan.__table__.insert().values(  # type: ignore[attr-defined]
            started_at=now, finished_at=now, status="done", roots="[]", layout="bench",
            files_seen=0, bytes_seen=0, added=0, changed=0, vanished=0, issues=0))  # fmt: skip


# -- the table ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--genomes", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backends", default="sqlite,postgresql")
    a = ap.parse_args()
    backends = a.backends.split(",")
    t = Table(title=f"wgsvault reports bench: {a.genomes:,}-genome case history "
                    f"({socket.gethostname()}, {os.cpu_count()} cores)")  # fmt: skip
    for c in ("backend", "what", "median", "target", "", "notes"):
        t.add_column(c, justify="right" if c in ("median", "target") else "left")

    def row_for(backend: str) -> Callable[..., None]:
        def row(what: str, secs: float, target: float | None, notes: str) -> None:
            ok = "" if target is None else ("yes" if secs <= target else "NO")
            cells = (backend, what, f"{secs * 1e3:,.0f} ms",
                     "" if target is None else f"≤ {target * 1e3:,.0f} ms", ok, notes)  # fmt: skip
            t.add_row(*cells)
            console.print(" | ".join(cells), style="dim", highlight=False)

        return row

    with tempfile.TemporaryDirectory(prefix="wgsvault-bench-reports-") as tmpd:
        work = Path(tmpd)
        t0 = time.perf_counter()
        history = write_case_manifest(work / "cases.csv", n=a.genomes)
        made = time.perf_counter() - t0
        console.print(f"case history: {history.genomes:,} genomes, {history.cases:,} cases, "
                      f"{history.open_cases:,} open, written in {made:.1f} s",
                      highlight=False)  # fmt: skip
        for backend in backends:
            if backend == "postgresql" and not pg_reachable():
                console.print(f"PostgreSQL not reachable at {PG}: skipped", style="yellow")
                continue
            home = work / backend
            home.mkdir()
            with (pg_database("reports") if backend == "postgresql"
                  else nullcontext(f"sqlite:///{home / 'catalog.sqlite'}")) as url:  # fmt: skip
                cat = open_catalog(url)
                row = row_for(backend)
                filled = fill(cat, work / "cases.csv")
                row(f"import the manifest ({history.genomes:,} rows)", filled["import"], None,
                    "validated whole, one transaction (catalog/manifest.py)")  # fmt: skip
                row("storage rows (bench set-up)", filled["storage"], None,
                    "4 national files per genome, FASTQ pairs for a fifth, monthly snapshots, "
                    "3 journal rows per genome")  # fmt: skip
                measure(cat, home, a.repeat, row)
                cat.close()
    t.caption = (f"targets: each report ≤ {REPORT_TARGET:.0f} s, each dashboard page ≤ "
                 f"{PAGE_TARGET * 1e3:.0f} ms server time; "
                 f"medians of {a.repeat} after a warm-up")  # fmt: skip
    console.print(t)


if __name__ == "__main__":
    main()
