"""Registering what apply wrote: catalog rows, proofs and audit entries for new files.

A file the vault writes (a CRAM from a conversion, its index and proof file, a FASTQ sidecar) is
recorded in the catalog with the root, controller and genome of the original it comes from, and
with its proof, in the same transaction as its journal row and audit entry, so that the catalog
agrees with the disk after any interruption and a rescan finds nothing unknown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wgsvault import faults
from wgsvault.apply.journal import Action, Journal, where
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import File, Proof, Root
from wgsvault.errors import IntegrityError
from wgsvault.inventory.digest import sha256_file


def data_files(a: Action) -> list[dict[str, Any]]:
    """An action's data files (not its indexes), R1 before R2."""
    files = [f for f in a["files"] if f["type"] != "index"]
    return sorted(files, key=lambda f: (f.get("read") or 0, f["path"]))


def upsert_file(
    s: Session,
    path: Path,
    *,
    like: File | None,
    source: Path,
    ftype: str,
    unit: str,
    scan_id: int | None,
) -> File:
    """The catalog row of a file the vault wrote: created with the root, controller and genome
    of `like` (the row of its `source`), or refreshed from disk; either way present."""
    st = os.stat(path)
    row = s.scalars(select(File).where(File.path == str(path))).first()
    if row is None:
        if like is None or scan_id is None:
            raise IntegrityError(f"{source}: not in the catalog; rescan before apply")
        row = File(
            root_id=like.root_id,
            path=str(path),
            unit=unit,
            type=ftype,
            controller_id=like.controller_id,
            genome_id=like.genome_id,
            first_scan_id=scan_id,
            last_change_scan_id=scan_id,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
        )
        s.add(row)
    row.size, row.mtime_ns, row.inode, row.status = st.st_size, st.st_mtime_ns, st.st_ino, "present"
    return row


def register(
    catalog: Catalog,
    journal: Journal,
    a: Action,
    path: Path,
    ftype: str,
    proof: dict[str, Any],
    event: str,
    like: Path | None = None,
) -> int:
    """Record a file the vault wrote for action `a`, with its proof (idempotent); its size.

    The new row takes the root, controller and genome of the file `like` (default: the action's
    first data file): a sidecar belongs with the CRAM it completes, wherever that is kept.
    """
    st = os.stat(path)
    sha = proof.get("output", {}).get("sha256") or sha256_file(str(path))
    src = like or Path(data_files(a)[0]["path"])
    with catalog.session() as s:
        orig = s.scalars(select(File).where(File.path == str(src))).first()
        root = s.get(Root, orig.root_id) if orig is not None else None
        scan_id = (root.last_scan_id if root else None) or (
            orig.last_change_scan_id if orig is not None else None
        )
        row = upsert_file(
            s, path, like=orig, source=src, ftype=ftype, unit=str(path), scan_id=scan_id
        )
        row.sha256, row.sha256_size, row.sha256_mtime_ns = sha, st.st_size, st.st_mtime_ns
        s.flush()
        s.add(
            Proof(
                file_id=row.id,
                path=str(path),
                kind=str(proof.get("kind", event)),
                sha256=sha,
                document=json.dumps(proof, sort_keys=True, default=str),
            )
        )
        journal.write(s, a, event, "done", {"output": str(path), "sha256": sha})
        journal.audit(
            s,
            a,
            event,
            {
                "output": str(path),
                "sha256": sha,
                "size": st.st_size,
                "inputs": [
                    {"path": i.get("path"), "sha256": i.get("sha256"), "size": i.get("bytes")}
                    for i in proof.get("inputs", [])
                ],
                "proof": proof.get("kind", event),
            },
        )
    faults.point(f"{event}:registered", where(a))
    return st.st_size


def register_beside(catalog: Catalog, out: Path) -> None:
    """The new CRAM's index and proof file, so that a rescan finds nothing unknown."""
    with catalog.session() as s:
        main = s.scalars(select(File).where(File.path == str(out))).one()
        for path, ftype in (
            (Path(f"{out}.crai"), "index"),
            (Path(f"{out}.proof.json"), "other"),
        ):
            if path.exists():
                unit = str(out) if ftype == "index" else str(path)  # as the scan has it
                upsert_file(
                    s,
                    path,
                    like=main,
                    source=out,
                    ftype=ftype,
                    unit=unit,
                    scan_id=main.first_scan_id,
                )
