"""Scan: walk storage roots and bring the catalog up to date with what is on disk.

The walk (walk.py) runs in a process pool over batches of second-level directories of every root,
so two cores walk while the main process writes; small trees are walked in-process. The catalog is
brought up to date in one transaction per scan: a rescan loads the catalogued signature of every
file under its roots (path, size, mtime, inode, classification) and writes only what was added,
changed or vanished, so an unchanged estate costs a walk and no writes. Files under a directory
that could not be listed are not marked vanished: not seeing a file is not proof it is gone.

Digests (`digest=True`) are computed after the walk for every file whose catalogued sha256 is not
valid for its current size and mtime, so a digest is reused for as long as the file is unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    distinct,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from wgsvault.bulk import paused_gc
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import (
    Controller,
    File,
    FootprintSnapshot,
    Genome,
    Root,
    Scan,
    ScanIssue,
    table_of,
)
from wgsvault.errors import InputError
from wgsvault.inventory.digest import sha256_path
from wgsvault.inventory.layout import Layout
from wgsvault.inventory.walk import DirResult, Issue, Record, scan_dir, walk_dirs

F = table_of(File)
BATCH = 5000
#: below this many second-level directories the walk runs in-process
POOL_THRESHOLD = 64

ProgressFn = Callable[[str, int, int | None], None]  # (phase, done, total)


@dataclass
class ScanResult:
    scan_id: int
    roots: list[str]
    files_seen: int = 0
    entries: int = 0  # catalog entries: a run folder is one entry of many files
    bytes_seen: int = 0
    added: int = 0
    changed: int = 0
    vanished: int = 0
    digested: int = 0
    digest_bytes: int = 0
    issues: list[Issue] = field(default_factory=list)
    seconds: float = 0.0

    def issue_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for issue in self.issues:
            counts[issue.kind] = counts.get(issue.kind, 0) + 1
        return counts


def _noop(_phase: str, _done: int, _total: int | None) -> None:
    pass


def check_roots(catalog: Catalog, roots: Iterable[str]) -> list[str]:
    """Absolute, real root paths; refuses missing roots and roots nested in catalogued ones."""
    out: list[str] = []
    for r in roots:
        real = os.path.realpath(r)
        if not os.path.isdir(real):
            raise InputError(f"{r}: not a directory")
        out.append(real)
    with catalog.engine.connect() as conn:
        known = [p for (p,) in conn.execute(select(Root.path))]
    for a in out:
        for b in known + [x for x in out if x != a]:
            if a != b and (a.startswith(b + os.sep) or b.startswith(a + os.sep)):
                raise InputError(f"{a}: overlaps the root {b}; scan one root that holds both")
    return sorted(set(out))


def scan(
    catalog: Catalog,
    roots: Iterable[str],
    layout: Layout,
    *,
    jobs: int | None = None,
    digest: bool = False,
    progress: ProgressFn = _noop,
) -> ScanResult:
    """Walk `roots`, update the catalog, optionally digest; returns what changed."""
    t0 = time.perf_counter()
    root_paths = check_roots(catalog, roots)
    jobs = jobs or os.cpu_count() or 1
    with catalog.session() as s:
        scan_row = Scan(roots=json.dumps(root_paths), layout=layout.name)
        s.add(scan_row)
        s.flush()
        result = ScanResult(scan_row.id, root_paths)
    try:
        with paused_gc(), catalog.engine.begin() as conn:
            sync = _Sync(conn, layout, result)
            for root in root_paths:
                root_id = sync.root_id(root)
                existing = sync.load(root_id)
                unreadable: list[str] = []
                for res in _walk_root(root, layout, jobs, progress):
                    sync.apply(root_id, existing, res.records)
                    result.issues.extend(res.issues)
                    unreadable.extend(res.unreadable)
                sync.flush()
                sync.mark_vanished(existing, unreadable)
        if digest:
            _digest(catalog, result, jobs, progress)
        _save_issues(catalog, result)
    except BaseException:
        with catalog.session() as s:
            s.get_one(Scan, result.scan_id).status = "failed"
        raise
    result.seconds = time.perf_counter() - t0
    with catalog.session() as s:
        row = s.get_one(Scan, result.scan_id)
        row.status = "done"
        row.finished_at = dt.datetime.now(dt.UTC)
        for attr in ("files_seen", "bytes_seen", "added", "changed", "vanished"):
            setattr(row, attr, getattr(result, attr))
        row.issues = len(result.issues)
        _snapshot(s, result.scan_id, row.finished_at)
        for root in root_paths:
            s.execute(update(Root).where(Root.path == root).values(last_scan_id=result.scan_id))
    return result


def _walk_root(root: str, layout: Layout, jobs: int, progress: ProgressFn) -> Iterator[DirResult]:
    """Walk one root; yields results batch by batch (in-process or from a process pool)."""
    top = scan_dir(root, "", layout)
    yield top._replace(subdirs=[])
    second: list[str] = []
    for rel in top.subdirs:
        res = scan_dir(root, rel, layout)
        yield res._replace(subdirs=[])
        second.extend(res.subdirs)
    if jobs <= 1 or len(second) < POOL_THRESHOLD:
        for i, rel in enumerate(second, 1):
            yield walk_dirs(root, [rel], layout)
            progress("walk", i, len(second))
        return
    size = max(1, min(256, len(second) // (jobs * 16)))
    batches = [second[i : i + size] for i in range(0, len(second), size)]
    done = 0
    with ProcessPoolExecutor(jobs, mp_context=get_context("forkserver")) as pool:
        futures = [pool.submit(walk_dirs, root, batch, layout) for batch in batches]
        for fut, batch in zip(futures, batches, strict=True):
            yield fut.result()
            done += len(batch)
            progress("walk", done, len(second))


class _Sync:
    """Writes walk records into the catalog within one connection/transaction."""

    def __init__(self, conn: Connection, layout: Layout, result: ScanResult) -> None:
        self.conn = conn
        self.layout = layout
        self.result = result
        self.controllers = {n: i for i, n in conn.execute(select(Controller.id, Controller.name))}
        self.genomes = {n: i for i, n in conn.execute(select(Genome.id, Genome.name))}
        self.inserts: list[dict[str, object]] = []
        self.updates: list[dict[str, object]] = []

    def root_id(self, path: str) -> int:
        rid = self.conn.execute(select(Root.id).where(Root.path == path)).scalar()
        if rid is None:
            rid = self.conn.execute(insert(Root).values(path=path).returning(Root.id)).scalar_one()
        return rid

    def load(self, root_id: int) -> dict[str, tuple[Any, ...]]:
        cols = (
            F.c.path,
            F.c.id,
            F.c.unit,
            F.c.type,
            F.c.read_no,
            F.c.controller_id,
            F.c.genome_id,
            F.c.size,
            F.c.mtime_ns,
            F.c.inode,
            F.c.n_files,
            F.c.status,
        )
        rows = self.conn.execute(select(*cols).where(F.c.root_id == root_id))
        return {r[0]: tuple(r[1:]) for r in rows}

    def _controller(self, name: str | None) -> int | None:
        if name is None:
            return None
        cid = self.controllers.get(name)
        if cid is None:
            kind = self.layout.controller_kind(name)
            stmt = insert(Controller).values(name=name, kind=kind).returning(Controller.id)
            cid = self.controllers[name] = self.conn.execute(stmt).scalar_one()
        return cid

    def _genome(self, name: str | None) -> int | None:
        if name is None:
            return None
        gid = self.genomes.get(name)
        if gid is None:
            stmt = insert(Genome).values(name=name).returning(Genome.id)
            gid = self.genomes[name] = self.conn.execute(stmt).scalar_one()
        return gid

    def apply(
        self, root_id: int, existing: dict[str, tuple[Any, ...]], records: list[Record]
    ) -> None:
        res = self.result
        scan_id = res.scan_id
        for rec in records:
            res.files_seen += rec.n_files
            res.entries += 1
            res.bytes_seen += rec.size
            cid = self._controller(rec.controller)
            gid = self._genome(rec.genome)
            sig = (
                rec.unit,
                rec.type,
                rec.read_no,
                cid,
                gid,
                rec.size,
                rec.mtime_ns,
                rec.inode,
                rec.n_files,
                "present",
            )
            old = existing.pop(rec.path, None)
            if old is None:
                self.inserts.append(
                    {
                        "root_id": root_id,
                        "path": rec.path,
                        "unit": rec.unit,
                        "type": rec.type,
                        "read_no": rec.read_no,
                        "controller_id": cid,
                        "genome_id": gid,
                        "size": rec.size,
                        "mtime_ns": rec.mtime_ns,
                        "inode": rec.inode,
                        "n_files": rec.n_files,
                        "status": "present",
                        "first_scan_id": scan_id,
                        "last_change_scan_id": scan_id,
                    }
                )
                res.added += 1
            elif old[1:] != sig:
                self.updates.append(
                    {
                        "b_id": old[0],
                        "unit": rec.unit,
                        "type": rec.type,
                        "read_no": rec.read_no,
                        "controller_id": cid,
                        "genome_id": gid,
                        "size": rec.size,
                        "mtime_ns": rec.mtime_ns,
                        "inode": rec.inode,
                        "n_files": rec.n_files,
                        "status": "present",
                        "last_change_scan_id": scan_id,
                    }
                )
                res.changed += 1
        if len(self.inserts) >= BATCH or len(self.updates) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.inserts:
            self.conn.execute(insert(F), self.inserts)
            self.inserts = []
        if self.updates:
            cols: dict[str, Any] = {k: bindparam(k) for k in self.updates[0] if k != "b_id"}
            stmt = update(F).where(F.c.id == bindparam("b_id")).values(cols)
            self.conn.execute(stmt, self.updates)
            self.updates = []

    def mark_vanished(self, existing: dict[str, tuple[Any, ...]], unreadable: list[str]) -> None:
        prefixes = tuple(p.rstrip(os.sep) + os.sep for p in unreadable)
        gone = [
            {"b_id": old[0], "status": "vanished", "last_change_scan_id": self.result.scan_id}
            for path, old in existing.items()
            if old[-1] == "present" and not (prefixes and path.startswith(prefixes))
        ]
        for i in range(0, len(gone), BATCH):
            stmt = (
                update(F)
                .where(F.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("status"), last_change_scan_id=bindparam("last_change_scan_id")
                )
            )
            self.conn.execute(stmt, gone[i : i + BATCH])
        self.result.vanished += len(gone)


def _save_issues(catalog: Catalog, result: ScanResult) -> None:
    rows = [
        {"scan_id": result.scan_id, "path": i.path, "kind": i.kind, "detail": i.detail}
        for i in result.issues
    ]
    with catalog.engine.begin() as conn:
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(ScanIssue), rows[i : i + BATCH])


def stale_digest_clause() -> ColumnElement[bool]:
    """SQL condition: the file's catalogued sha256 is missing or not valid for its size/mtime."""
    return or_(
        F.c.sha256.is_(None),
        F.c.sha256_size != F.c.size,
        F.c.sha256_mtime_ns != F.c.mtime_ns,
    )


def _digest(catalog: Catalog, result: ScanResult, jobs: int, progress: ProgressFn) -> None:
    """sha256 of every present file under the scanned roots whose digest is not valid."""
    with catalog.engine.connect() as conn:
        root_ids = [i for (i,) in conn.execute(select(Root.id).where(Root.path.in_(result.roots)))]
        todo = conn.execute(
            select(F.c.id, F.c.path, F.c.size, F.c.mtime_ns).where(
                and_(F.c.root_id.in_(root_ids), F.c.status == "present", stale_digest_clause())
            )
        ).all()
    total = sum(r.size for r in todo)
    done = 0

    def one(row: tuple[Any, ...]) -> dict[str, object] | None:
        _id, path, size, mtime_ns = row
        try:
            digest = sha256_path(path)
            st = os.stat(path)
        except OSError as exc:
            result.issues.append(Issue(path, "unreadable", f"digest: {exc.strerror or exc}"))
            return None
        if os.path.isfile(path) and (st.st_size != size or st.st_mtime_ns != mtime_ns):
            result.issues.append(Issue(path, "changed_during_digest", "rescan to catalogue it"))
            return None
        return {"b_id": _id, "sha256": digest, "sha256_size": size, "sha256_mtime_ns": mtime_ns}

    rows: list[dict[str, object]] = []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for row, out in zip(todo, pool.map(one, todo), strict=True):
            done += row.size
            progress("digest", done, total)
            if out is not None:
                rows.append(out)
                result.digest_bytes += row.size
    stmt = (
        update(F)
        .where(F.c.id == bindparam("b_id"))
        .values(
            sha256=bindparam("sha256"),
            sha256_size=bindparam("sha256_size"),
            sha256_mtime_ns=bindparam("sha256_mtime_ns"),
        )
    )
    with catalog.engine.begin() as conn:
        for i in range(0, len(rows), BATCH):
            conn.execute(stmt, rows[i : i + BATCH])
    result.digested = len(rows)


#: the controller name of files outside every controller's roots (as report.footprint shows it)
UNASSIGNED = "(unassigned)"


def _snapshot(s: Session, scan_id: int, at: dt.datetime) -> None:
    """Record what is stored now, per controller and file type: the storage history."""
    ctrl = func.coalesce(Controller.name, UNASSIGNED)
    rows = (
        select(
            literal(scan_id),
            literal(at, FootprintSnapshot.at.type),
            ctrl,
            File.type,
            func.coalesce(func.sum(File.n_files), 0),
            func.coalesce(func.sum(File.size), 0),
            func.count(distinct(File.genome_id)),
        )
        .select_from(File)
        .outerjoin(Controller, Controller.id == File.controller_id)
        .where(File.status == "present")
        .group_by(ctrl, File.type)
    )
    cols = ["scan_id", "at", "controller", "type", "files", "bytes", "genomes"]
    s.execute(insert(FootprintSnapshot).from_select(cols, rows))
