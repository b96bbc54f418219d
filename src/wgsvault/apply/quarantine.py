"""Quarantine, purge and undo: originals leave in two steps, and the first can be taken back.

An original that apply may let go is first *renamed* into `<storage root>/.wgsvault-quarantine/
<plan>/<action>/<path below the root>`: the same filesystem, so no byte is copied and the move is
atomic; a file on another filesystem than its root's quarantine is refused rather than copied.
The scan never walks the quarantine. It stays there for a configurable period (default 30 days);
`wgsvault purge` deletes only quarantine whose period has expired, and `wgsvault undo GENOME`
renames a genome's quarantined originals back to where they were, byte for byte, until purged.
Every move is recorded in the catalog (`quarantine` table, file status) and the audit log.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update

from wgsvault import audit
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import File, Quarantine
from wgsvault.errors import InputError, IntegrityError
from wgsvault.fsutil import fsync_dir

QUARANTINE_DIR = ".wgsvault-quarantine"
DEFAULT_DAYS = 30


def target_for(root: Path, original: Path, plan_sha: str, action_id: str) -> Path:
    """Where `original` (below `root`) goes in quarantine."""
    rel = Path(original).resolve().relative_to(Path(root).resolve())
    return Path(root) / QUARANTINE_DIR / plan_sha[:16] / action_id / rel


def move(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` on the same filesystem, durably; never overwrite."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(dst.parent).st_dev != os.stat(src).st_dev:
        raise IntegrityError(
            f"{src}: on another filesystem than {dst.parent}; quarantine renames, it never copies"
        )
    if dst.exists() or dst.is_symlink():
        raise IntegrityError(f"{dst}: exists already; refusing to overwrite")
    os.rename(src, dst)
    fsync_dir(dst.parent)
    fsync_dir(src.parent)


def _end(
    catalog: Catalog,
    row: Quarantine,
    state: str,
    file_status: str,
    event: str,
    actor: str,
    now: dt.datetime,
    extra: dict[str, str],
) -> None:
    """Close a quarantine entry (purged or restored), set its file's status, and audit it."""
    with catalog.session() as s:
        s.execute(
            update(Quarantine)
            .where(Quarantine.id == row.id, Quarantine.state == "quarantined")
            .values(state=state, ended_at=now)
        )
        if row.file_id is not None:
            s.execute(update(File).where(File.id == row.file_id).values(status=file_status))
        audit.append(
            s,
            actor=actor,
            event=event,
            genome=row.genome,
            controller=row.controller,
            detail={"path": row.original_path, "size": row.size, "sha256": row.sha256, **extra},
        )


@dataclass
class PurgeResult:
    purged: int = 0
    bytes: int = 0
    kept: int = 0  # not yet expired
    problems: list[str] = field(default_factory=list)


def purge(catalog: Catalog, *, actor: str, now: dt.datetime | None = None) -> PurgeResult:
    """Delete quarantined originals whose quarantine period has expired."""
    now = now or dt.datetime.now(dt.UTC)
    res = PurgeResult()
    with catalog.session() as s:
        rows = s.scalars(select(Quarantine).where(Quarantine.state == "quarantined")).all()
    for row in rows:
        if row.expires_at > now:
            res.kept += 1
            continue
        path = Path(row.quarantine_path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            res.problems.append(f"{path}: missing from quarantine (already removed?)")
        _end(
            catalog,
            row,
            "purged",
            "purged",
            "purge",
            actor,
            now,
            {"plan": row.plan_sha256, "action": row.action_id},
        )
        res.purged += 1
        res.bytes += row.size
    return res


def undo(catalog: Catalog, genome: str, *, actor: str) -> list[Path]:
    """Put a genome's quarantined originals back where they were (before they are purged)."""
    with catalog.session() as s:
        rows = s.scalars(
            select(Quarantine).where(Quarantine.genome == genome, Quarantine.state == "quarantined")
        ).all()
    if not rows:
        raise InputError(f"genome {genome}: nothing in quarantine to undo")
    back = []
    for row in rows:
        src, dst = Path(row.quarantine_path), Path(row.original_path)
        if dst.exists():
            raise IntegrityError(
                f"{dst}: exists again; not overwriting it with the quarantined copy"
            )
        move(src, dst)
        _end(catalog, row, "restored", "present", "undo", actor, dt.datetime.now(dt.UTC), {})
        back.append(dst)
    return back
