"""Reading the frequency database: point lookups and regions, for the CLI and the Beacon.

`FrequencyStore(path)` opens a store (`<vault>/variants`) or one of its releases
(`<vault>/variants/releases/0003`) read-only. Positions are 1-based; contig names are accepted
as `chr1` or `1`, `chrM` or `MT` (mapped onto the name the store uses). An allele that is not in
the store is simply absent (an empty list).

One embedded DuckDB connection per store reads the allele table's Parquet partition of the
contig asked for. The rows are sorted by position in small row groups and DuckDB keeps the files'
metadata cached, so a point lookup reads one row group; the prepared statement of each contig
is kept too. A store object is not shared between threads (the Beacon opens one per worker).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from wgsvault.errors import InputError
from wgsvault.variants.ploidy import alias
from wgsvault.variants.state import data_dir, partition, read_state

_COLUMNS = "chrom, pos, ref, alt, ac, an, nhomalt, nhemi, strata"


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
        self._con = duckdb.connect(config={"threads": 1})
        self._con.execute("SET enable_object_cache = true")
        self._lock = threading.Lock()

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
        path = self._partition(chrom)
        if path is None:
            return []
        return self._select(path, "pos = ? AND ref = ? AND alt = ?", [pos, ref, alt])

    def region(self, chrom: str, start: int, end: int) -> list[AlleleFrequency]:
        """Every allele with 1-based `start` <= pos <= `end`, by position."""
        if end < start:
            raise InputError(f"region {chrom}:{start}-{end}: end is before start")
        path = self._partition(chrom)
        if path is None:
            return []
        return self._select(path, "pos BETWEEN ? AND ?", [start, end])

    def _partition(self, chrom: str) -> Path | None:
        name = alias(chrom, self._contigs)
        if name is None:
            return None
        path = partition(self._data, "alleles", name)
        return path if path.exists() else None

    def _select(self, path: Path, where: str, params: list[Any]) -> list[AlleleFrequency]:
        sql = (
            f"SELECT {_COLUMNS} FROM read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
            f" WHERE {where} ORDER BY pos, ref, alt"
        )
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
        return [_allele(r) for r in rows]


def _allele(row: tuple[Any, ...]) -> AlleleFrequency:
    chrom, pos, ref, alt, ac, an, nhomalt, nhemi, strata = row
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
        strata={
            s["name"]: StratumFrequency(
                int(s["ac"]),
                int(s["an"]),
                _af(int(s["ac"]), int(s["an"])),
                int(s["nhomalt"]),
                int(s["nhemi"]),
            )
            for s in strata
        },  # fmt: skip
    )
