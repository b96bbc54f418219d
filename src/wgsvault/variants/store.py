"""Reading the frequency database: point lookups and regions, for the CLI and the Beacon.

`FrequencyStore(path)` opens a store (`<vault>/variants`) or one of its releases
(`<vault>/variants/releases/0003`) read-only. Positions are 1-based; contig names are accepted
as `chr1` or `1`, `chrM` or `MT` (mapped onto the name the store uses). An allele that is not in
the store is simply absent (an empty list).

One embedded DuckDB connection per store reads the contig asked for from its lookup file (the
allele table in DuckDB's format, attached read-only on first use: sorted by position, so its
row-group statistics lead to the one row group that can hold a position), else from its Parquet
partition. Measured at 4 million alleles in a contig (6 strata, 2 busy cores): p50 1.6 ms, p99
2.3 ms per lookup from the DuckDB file; 50-90 ms from a Parquet file of 4096-row row groups
(DuckDB parses its footer each time). Queries are serialised on the connection; the Beacon
opens one store per worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from wgsvault.errors import InputError
from wgsvault.variants.ploidy import alias
from wgsvault.variants.state import connect, data_dir, partition, read_state

_TOTAL = "chrom, pos, ref, alt, ac, an, nhomalt, nhemi"


@dataclass(frozen=True)
class StratumFrequency:
    ac: int
    an: int
    af: float | None
    nhomalt: int
    nhemi: int


@dataclass(frozen=True)
class AlleleFrequency:
    chrom: str
    pos: int  # 1-based
    ref: str
    alt: str
    ac: int
    an: int
    af: float | None  # None where AN is 0
    nhomalt: int
    nhemi: int
    strata: dict[str, StratumFrequency] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The object of `variants query --json`."""
        return {
            "chrom": self.chrom,
            "pos": self.pos,
            "ref": self.ref,
            "alt": self.alt,
            "ac": self.ac,
            "an": self.an,
            "af": self.af,
            "nhomalt": self.nhomalt,
            "nhemi": self.nhemi,
            "strata": {
                name: {"ac": s.ac, "an": s.an, "af": s.af, "nhomalt": s.nhomalt, "nhemi": s.nhemi}
                for name, s in self.strata.items()
            },
        }


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _af(ac: int, an: int) -> float | None:
    return ac / an if an else None


class FrequencyStore:
    """A frequency store, or one release of it, opened for reading."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        state = read_state(self.path)
        if state is None:
            raise InputError(
                f"{self.path}: no frequency database here; build one with: wgsvault variants build"
            )
        self._state = state
        self._data = data_dir(self.path, state)
        self._contigs: list[str] = list(state.get("contigs", {}))
        self._con = connect(1)
        self._con.execute("SET parquet_metadata_cache = true")
        self._lock = threading.RLock()
        self._tables: dict[str, tuple[str, str, list[str]]] = {}  # contig -> table, columns
        self._names: dict[str, str] = dict(state.get("strata", {}))  # column id -> stratum

    # -- what the store holds ------------------------------------------------------------------

    def contigs(self) -> list[str]:
        """The contigs that hold alleles, in the reference's order."""
        return [c for c in self._contigs if partition(self._data, "alleles", c).exists()]

    def assembly(self) -> str | None:
        """GRCh37 / GRCh38 where known (the reference build's assembly), else None."""
        value = self._state.get("assembly")
        return str(value) if value else None

    def build(self) -> str | None:
        """The name of the registered reference build the VCFs were normalised against."""
        value = self._state.get("build")
        return str(value) if value else None

    def genomes(self) -> int:
        """How many genomes are counted."""
        return len(self._state.get("members", {}))

    def release(self) -> int | None:
        """The release number of a release directory; None for the live store."""
        value = self._state.get("release")
        return int(value) if value is not None else None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> FrequencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------------

    def lookup(self, chrom: str, pos: int, ref: str, alt: str) -> list[AlleleFrequency]:
        """The allele `ref`>`alt` at 1-based `pos` (normalised: split, left-aligned), or []."""
        table = self._partition(chrom)
        if table is None:
            return []
        return self._select(*table, "pos = ? AND ref = ? AND alt = ?", [pos, ref, alt], "")

    def region(self, chrom: str, start: int, end: int) -> list[AlleleFrequency]:
        """Every allele with 1-based `start` <= pos <= `end`, by position."""
        if end < start:
            raise InputError(f"region {chrom}:{start}-{end}: end is before start")
        table = self._partition(chrom)
        if table is None:
            return []
        order = " ORDER BY pos, ref, alt"
        return self._select(*table, "pos BETWEEN ? AND ?", [start, end], order)

    def _partition(self, chrom: str) -> tuple[str, str, list[str]] | None:
        """(table expression, column list, stratum names) of a contig's alleles, or None."""
        name = alias(chrom, self._contigs)
        if name is None:
            return None
        with self._lock:
            if name in self._tables:
                return self._tables[name]
            lookup = partition(self._data, "lookup", name)
            parquet = partition(self._data, "alleles", name)
            table = None
            if lookup.exists():
                schema = f"c{len(self._tables)}"
                try:
                    self._con.execute(f"ATTACH '{_quote(lookup)}' AS {schema} (READ_ONLY)")
                    table = f"{schema}.alleles"
                except duckdb.Error:
                    table = None  # written by another DuckDB version: the Parquet file holds
            if table is None and parquet.exists():
                table = f"read_parquet('{_quote(parquet)}')"
            if table is None:
                return None
            cols = [r[0] for r in self._con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
            ids = [c[3:] for c in cols if c.startswith("ac_")]
            select = ", ".join(
                [_TOTAL, *(f"{f}_{i}" for i in ids for f in ("ac", "an", "nhomalt", "nhemi"))]
            )
            self._tables[name] = (table, select, [self._names.get(i, i) for i in ids])
            return self._tables[name]

    def _select(
        self,
        table: str,
        columns: str,
        strata: list[str],
        where: str,
        params: list[Any],
        order: str,
    ) -> list[AlleleFrequency]:
        sql = f"SELECT {columns} FROM {table} WHERE {where}{order}"
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
        return [_allele(r, strata) for r in rows]


def _allele(row: tuple[Any, ...], strata: list[str]) -> AlleleFrequency:
    chrom, pos, ref, alt, ac, an, nhomalt, nhemi = row[:8]
    cells = {}
    for k, name in enumerate(strata):
        s_ac, s_an, s_hom, s_hemi = (int(v) for v in row[8 + 4 * k : 12 + 4 * k])
        if s_an > 0:  # a stratum with no genome callable here has no figures
            cells[name] = StratumFrequency(s_ac, s_an, _af(s_ac, s_an), s_hom, s_hemi)
    return AlleleFrequency(
        chrom=chrom,
        pos=int(pos),
        ref=ref,
        alt=alt,
        ac=int(ac),
        an=int(an),
        af=_af(int(ac), int(an)),
        nhomalt=int(nhomalt),
        nhemi=int(nhemi),
        strata=dict(sorted(cells.items())),
    )
