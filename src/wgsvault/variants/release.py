"""Releases: immutable, numbered snapshots of the frequency database.

`release(store)` hard-links the current data generation into `releases/NNNN/` (Parquet files
are never rewritten in place, so the snapshot costs no copy and cannot change), marks its files
read-only and writes beside them `state.json` (the store's state with the release number, the
members by id only) and `release.json` (`wgsvault-variants-release/1`: number, time, genomes,
genomes new and withdrawn since the previous release, alleles, reference, tool versions and the
sha256 of every Parquet file).

A release is refused unless at least `min_new_genomes` genomes (default 20, `[variants]` in the
site config) are new since the previous release: two consecutive releases that differ by one
genome would publish that person's genotypes by subtraction. Withdrawn genomes leave the next
release that is made; they do not count as new.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

import wgsvault
from wgsvault import audit
from wgsvault.catalog import Catalog
from wgsvault.codec.htslib import versions
from wgsvault.errors import InputError
from wgsvault.fsutil import atomic_write_text, fsync_dir
from wgsvault.inventory.digest import sha256_file
from wgsvault.variants import state as st
from wgsvault.variants.aggregate import ensure_lookup

FORMAT = "wgsvault-variants-release/1"


@dataclass(frozen=True)
class Release:
    number: int
    path: Path
    genomes: int
    new: int
    withdrawn: int
    alleles: int


def releases(store: Path) -> list[int]:
    """The numbers of the store's releases, oldest first."""
    return sorted(int(p.name) for p in (store / "releases").glob("[0-9]" * 4) if p.is_dir())


def release(
    catalog: Catalog, store: Path, *, min_new_genomes: int = 20, actor: str | None = None
) -> Release:
    """Snapshot the current database as the next release (see the module docstring)."""
    with st.lock(store):
        state = st.read_state(store)
        if state is None:
            raise InputError(f"{store}: no frequency database yet; run: wgsvault variants build")
        done = releases(store)
        before = _released_members(store, done)
        now = set(state.get("members", {}))
        new, withdrawn = sorted(now - before), sorted(before - now)
        if len(new) < min_new_genomes:
            since = f"release {done[-1]}" if done else "the start"
            raise InputError(
                f"{store}: {len(new)} new genomes since {since}; a release needs at least "
                f"{min_new_genomes}, so that releases cannot be compared down to one person"
            )
        number = (done[-1] if done else 0) + 1
        final = store / "releases" / f"{number:04d}"
        tmp = store / "releases" / f".{number:04d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        data = st.data_dir(store, state)
        for table in st.TABLES:
            if (data / table).exists():
                st.link_tree(data / table, tmp / table)
        for contig in state.get("contigs", {}):
            ensure_lookup(tmp, contig)  # contigs changed by add/remove since their last build
        files = sorted(f for f in tmp.rglob("*") if f.is_file())
        snapshot = {k: v for k, v in state.items() if k not in ("members", "generation")}
        snapshot.update(
            release=number, data=".", members={g: {} for g in sorted(now)}, format=st.FORMAT
        )
        atomic_write_text(tmp / st.STATE, json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
        alleles = _rows(files)
        manifest = {
            "format": FORMAT,
            "release": number,
            "created_at": st.now(),
            "genomes": len(now),
            "new_genomes": len(new),
            "withdrawn_genomes": len(withdrawn),
            "alleles": alleles,
            "build": state.get("build"),
            "assembly": state.get("assembly"),
            "min_new_genomes": min_new_genomes,
            "tools": {"wgsvault": wgsvault.__version__, "duckdb": duckdb.__version__, **versions()},
            "files": {str(f.relative_to(tmp)): sha256_file(str(f)) for f in files},
        }
        atomic_write_text(tmp / "release.json", json.dumps(manifest, indent=1) + "\n")
        for f in [*files, tmp / st.STATE, tmp / "release.json"]:
            os.chmod(f, 0o444)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        state.setdefault("releases", []).append(
            {"number": number, "at": manifest["created_at"], "genomes": len(now)}
        )
        st.write_state(store, state)
    out = Release(number, final, len(now), len(new), len(withdrawn), alleles)
    _audit(catalog, actor, store, out)
    return out


def _rows(files: list[Path]) -> int:
    alleles = [str(f) for f in files if f.parts[-3] == "alleles"]
    if not alleles:
        return 0
    con = st.connect()
    try:
        row = con.execute(
            "SELECT sum(num_rows) FROM parquet_file_metadata(?)", [alleles]
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row and row[0] is not None else 0


def _audit(catalog: Catalog, actor: str | None, store: Path, r: Release) -> None:
    detail: dict[str, Any] = {
        "action": "release",
        "store": str(store),
        "release": r.number,
        "genomes": r.genomes,
        "new_genomes": r.new,
        "withdrawn_genomes": r.withdrawn,
        "alleles": r.alleles,
    }
    audit.record(catalog, actor=actor or audit.default_actor(), event="variants", detail=detail)


def _released_members(store: Path, done: list[int]) -> set[str]:
    """The genomes of the newest release (none before the first)."""
    if not done:
        return set()
    last = st.read_state(store / "releases" / f"{done[-1]:04d}")
    return set((last or {}).get("members", {}))


def status(store: Path) -> dict[str, Any]:
    """What `variants status` shows: the store, its reference, genomes, alleles, releases."""
    state = st.read_state(store)
    if state is None:
        return {"store": str(store), "built": False}
    done = releases(store)
    before = _released_members(store, done)
    now = set(state.get("members", {}))
    data = st.data_dir(store, state)
    return {
        "store": str(store),
        "built": True,
        "build": state.get("build"),
        "assembly": state.get("assembly"),
        "genomes": len(now),
        "alleles": _rows(sorted(data.glob("alleles/chrom=*/data.parquet"))),
        "updated_at": state.get("updated_at"),
        "releases": done,
        "new_since_release": len(now - before),
        "withdrawn_since_release": len(before - now),
    }
