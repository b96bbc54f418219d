"""The frequency store on disk: where each file lives, its state file, and the writers' lock.

    <store>/state.json                  format, assembly, contigs, members, current data, releases
    <store>/genomes/<genome>/calls.parquet     a member's counted calls (what `add` added)
    <store>/genomes/<genome>/coverage.parquet  its callable intervals with their ploidy
    <store>/data/<generation>/alleles/chrom=<contig>/data.parquet   the allele table
    <store>/data/<generation>/coverage/chrom=<contig>/data.parquet  AN segments per stratum
    <store>/data/<generation>/lookup/chrom=<contig>/alleles.duckdb  the allele table for lookups
    <store>/releases/<NNNN>/            an immutable snapshot: state.json, alleles/, coverage/,
                                        lookup/, release.json

The Parquet files are the database (any engine reads them). The lookup files hold the same
allele rows in DuckDB's own format, sorted by position: DuckDB skips to the one row group that
can hold a position by its min/max statistics without parsing a Parquet footer, which makes a
point lookup a millisecond instead of tens (measured in bench/variants.py); they are derived:
`build` and `release` write them, `add` and `remove` do not (it would cost a quarter of their time)
and the live store reads those contigs' Parquet files until the next release; a reader falls
back to the Parquet file wherever a lookup file is missing.

Every change writes a new generation (unchanged partitions are hard links of the previous one)
and then replaces `state.json`, which names it, atomically: a reader sees the old database or
the new one, never half of each, and a crash leaves the store as it was. Parquet files are
never changed in place, so a release is hard links too. One writer at a time (`lock`).
A member's files keep exactly what was added (its strata at the time included), so that
removing it subtracts the same figures even if the catalog has changed since.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from wgsvault.config import site_config, vault_home
from wgsvault.errors import InputError
from wgsvault.fsutil import atomic_write_text

FORMAT = "wgsvault-variants/1"
STATE = "state.json"


def default_store() -> Path:
    """`store` of `[variants]` in the site config, else `<vault home>/variants`."""
    return site_config().variants.store or vault_home() / "variants"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


#: the tables of a data generation: the Parquet partitions and the allele lookup files
TABLES = ("alleles", "coverage", "lookup")


def partition(data: Path, table: str, contig: str) -> Path:
    """The file of one contig of `table` in a data directory: the Parquet partition of
    `alleles` or `coverage`, or the DuckDB file of `lookup` (the allele table again, for point
    lookups)."""
    name = "alleles.duckdb" if table == "lookup" else "data.parquet"
    return data / table / f"chrom={contig}" / name


def stratum_id(stratum: str) -> str:
    """The column / INFO id of a stratum: its name with non-alphanumerics as `_`."""
    return re.sub(r"[^A-Za-z0-9]", "_", stratum)


def strata_ids(strata: Iterable[str]) -> dict[str, str]:
    """{id: stratum} of these strata (the total aside); two strata with one id are refused."""
    out: dict[str, str] = {}
    for s in sorted(set(strata) - {"total"}):
        sid = stratum_id(s)
        if sid in out and out[sid] != s:
            raise InputError(
                f"strata {out[sid]!r} and {s!r} would share the column name {sid}: rename one"
                " (patient group or requisitioning region) in the manifest"
            )
        out[sid] = s
    return out


def genome_dir(store: Path, genome: str) -> Path:
    return store / "genomes" / genome


def read_state(store: Path) -> dict[str, Any] | None:
    """The state of a store or release directory, None where there is none yet."""
    path = store / STATE
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the frequency store's state: {exc}") from None
    if state.get("format") != FORMAT:
        raise InputError(f"{path}: not a {FORMAT} store (format {state.get('format')!r})")
    return state


def write_state(store: Path, state: dict[str, Any]) -> None:
    state["format"] = FORMAT
    state["updated_at"] = now()
    atomic_write_text(store / STATE, json.dumps(state, indent=1, sort_keys=True) + "\n")


def data_dir(store: Path, state: dict[str, Any]) -> Path:
    return store / str(state.get("data", "."))


def new_generation(store: Path, state: dict[str, Any] | None) -> tuple[str, Path]:
    """(relative name, path) of the next data generation (created empty)."""
    gen = int(state.get("generation", 0)) + 1 if state else 1
    rel = f"data/{gen:06d}"
    path = store / rel
    if path.exists():  # a crashed writer's leftover: never named by the state file
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return rel, path


def drop_old_generations(store: Path, keep: str) -> None:
    """Remove data generations other than `keep` (releases hold hard links of their own)."""
    for old in (store / "data").glob("*"):
        if old.is_dir() and f"data/{old.name}" != keep:
            shutil.rmtree(old, ignore_errors=True)


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link every file of `src` into `dst` (same filesystem), keeping the layout."""
    for f in sorted(src.rglob("*")):
        target = dst / f.relative_to(src)
        if f.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, target)


@contextmanager
def lock(store: Path) -> Iterator[None]:
    """Hold the store's writer lock; a second writer is refused at once, not queued."""
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{store}: another variants command is changing it; try later"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for the engine's work: `threads` threads (default: all),
    and no progress bar (DuckDB draws one for long queries, also in a job's log or a pool's
    worker, where it only garbles the command's output)."""
    con = duckdb.connect() if threads is None else duckdb.connect(config={"threads": threads})
    con.execute("SET enable_progress_bar = false")
    return con
