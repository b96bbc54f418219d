"""Reference registry: the genome builds a CRAM may depend on, kept known and available.

A CRAM stores reads as differences from a reference, so the reference is part of the clinical
interpretation basis: losing it loses the reads. `wgsvault ref add FASTA --build GRCh38` therefore

* computes, per sequence, the MD5 that CRAM headers carry (`@SQ M5`, over the upper-cased
  sequence) and the GA4GH refget digest (`SQ.` + sha512t24u), and records both in the catalog;
* stores every sequence in an htslib REF_CACHE tree (`<data>/refs/cache/ab/cd/<rest of md5>`),
  which is the only place htslib is allowed to look for references (see htslib.py), and keeps a
  FASTA copy of the build (+ .fai) for encoding BAMs whose headers lack `M5`.

Builds are immutable: re-adding a build with different sequences is refused. Countries use
different builds; a sequence is found by its MD5, whichever build it came with.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import dnaio
import pysam
from sqlalchemy import select

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import ReferenceBuild, ReferenceSequence
from wgsvault.config import vault_home
from wgsvault.errors import InputError
from wgsvault.fsutil import atomic_write_bytes, fsync_dir
from wgsvault.inventory.digest import sha256_file

_BUILD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_NOT_BASES = re.compile(rb"[^\x21-\x7e]")  # htslib drops whitespace/non-printables before MD5


@dataclass(frozen=True)
class Sequence:
    name: str
    length: int
    md5: str
    refget: str


@dataclass(frozen=True)
class Build:
    name: str
    description: str | None
    fasta: Path
    source: str | None
    sequences: list[Sequence]

    @property
    def length(self) -> int:
        return sum(s.length for s in self.sequences)


def refget_digest(seq: bytes) -> str:
    """GA4GH refget identifier: `SQ.` + base64url of the first 24 bytes of sha512."""
    return "SQ." + base64.urlsafe_b64encode(hashlib.sha512(seq).digest()[:24]).decode()


def normalise(seq: str) -> bytes:
    return _NOT_BASES.sub(b"", seq.encode("ascii")).upper()


class Registry:
    """The reference registry of one vault: catalog rows plus files under `root`."""

    def __init__(self, catalog: Catalog, root: Path | None = None) -> None:
        self.catalog = catalog
        self.root = Path(root) if root else vault_home() / "refs"
        self.cache = self.root / "cache"

    # -- adding -------------------------------------------------------------------------------

    def add(self, fasta: Path, build: str, description: str | None = None) -> Build:
        """Register the sequences of `fasta` as `build` (idempotent for the same sequences)."""
        fasta = Path(fasta)
        if not _BUILD_NAME.match(build):
            raise InputError(f"build name {build!r}: use letters, digits, '.', '_' or '-'")
        if not fasta.is_file():
            raise InputError(f"{fasta}: no such file")
        self.root.mkdir(parents=True, exist_ok=True)
        builds_dir = self.root / "builds"
        builds_dir.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{build}.", suffix=".fa", dir=builds_dir)
        tmp = Path(tmp_name)
        seqs: list[Sequence] = []
        try:
            with os.fdopen(fd, "wb") as out:
                seqs = self._copy_and_digest(fasta, out)
                out.flush()
                os.fsync(out.fileno())
            existing = self.get(build, missing_ok=True)
            if existing is not None:
                if [(s.name, s.md5) for s in existing.sequences] != [(s.name, s.md5) for s in seqs]:
                    raise InputError(
                        f"{fasta}: build {build} is already registered with other sequences; "
                        "builds are immutable, register this one under another name"
                    )
                tmp.unlink()
                return existing
            final = builds_dir / f"{build}.fa"
            os.replace(tmp, final)
            pysam.faidx(str(final))
            fsync_dir(builds_dir)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self.catalog.session() as s:
            row = ReferenceBuild(
                name=build,
                description=description,
                fasta=str(final.relative_to(self.root)),
                source=str(fasta.resolve()),
                sha256=sha256_file(str(final)),
            )
            s.add(row)
            s.flush()
            s.add_all(
                ReferenceSequence(
                    build_id=row.id, name=q.name, length=q.length, md5=q.md5, refget=q.refget
                )
                for q in seqs
            )
        added = self.get(build)
        assert added is not None
        return added

    def _copy_and_digest(self, fasta: Path, out: BinaryIO) -> list[Sequence]:
        seqs: list[Sequence] = []
        names: set[str] = set()
        try:
            with dnaio.open(fasta, fileformat="fasta") as reader:
                for rec in reader:
                    name = rec.name.split()[0] if rec.name.strip() else ""
                    if not name or name in names:
                        raise InputError(f"{fasta}: sequence name {name!r} empty or repeated")
                    names.add(name)
                    data = normalise(rec.sequence)
                    if not data:
                        raise InputError(f"{fasta}: sequence {name} is empty")
                    md5 = hashlib.md5(data).hexdigest()
                    self._cache_put(md5, data)
                    seqs.append(Sequence(name, len(data), md5, refget_digest(data)))
                    lines = b"\n".join(data[i : i + 60] for i in range(0, len(data), 60))
                    out.write(b">" + name.encode() + b"\n" + lines + b"\n")
        except dnaio.exceptions.FileFormatError as exc:
            raise InputError(f"{fasta}: not a valid FASTA file: {exc}") from None
        except (OSError, EOFError, UnicodeError) as exc:
            raise InputError(f"{fasta}: cannot read: {exc}") from None
        if not seqs:
            raise InputError(f"{fasta}: no sequences")
        return seqs

    def cache_path(self, md5: str) -> Path:
        return self.cache / md5[:2] / md5[2:4] / md5[4:]

    def _cache_put(self, md5: str, data: bytes) -> None:
        path = self.cache_path(md5)
        if path.exists() and path.stat().st_size == len(data):
            return
        atomic_write_bytes(path, data)

    # -- querying ------------------------------------------------------------------------------

    def get(self, build: str, *, missing_ok: bool = False) -> Build | None:
        with self.catalog.session() as s:
            row = s.scalars(select(ReferenceBuild).where(ReferenceBuild.name == build)).first()
            if row is None or row.fasta is None:
                if missing_ok:
                    return None
                known = ", ".join(b.name for b in self.builds()) or "none"
                raise InputError(
                    f"reference build {build!r} is not registered (registered: {known}); "
                    "add it with: wgsvault ref add FASTA --build NAME"
                )
            seqs = s.scalars(
                select(ReferenceSequence)
                .where(ReferenceSequence.build_id == row.id)
                .order_by(ReferenceSequence.id)
            ).all()
            return Build(
                row.name,
                row.description,
                self.root / row.fasta,
                row.source,
                [Sequence(q.name, q.length, q.md5, q.refget) for q in seqs],
            )

    def builds(self) -> list[Build]:
        with self.catalog.session() as s:
            names = s.scalars(
                select(ReferenceBuild.name)
                .where(ReferenceBuild.fasta.is_not(None))
                .order_by(ReferenceBuild.name)
            ).all()
        return [b for n in names if (b := self.get(n)) is not None]

    def known_md5(self) -> set[str]:
        with self.catalog.session() as s:
            return set(s.scalars(select(ReferenceSequence.md5)).all())

    def missing(self, header_sq: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """`(name, problem)` for each @SQ the registry cannot provide (by M5, and on disk)."""
        known = self.known_md5()
        out = []
        for sq in header_sq:
            m5 = sq.get("M5")
            if not m5:
                out.append((sq["SN"], "no M5 in the header"))
            elif m5.lower() not in known:
                out.append((sq["SN"], f"M5 {m5} not in the registry"))
            elif not self.cache_path(m5.lower()).exists():
                out.append((sq["SN"], f"M5 {m5} registered but missing from {self.cache}"))
        return out

    def check_file(self, path: Path) -> list[tuple[str, str]]:
        """`ref check`: the @SQ lines of a SAM/BAM/CRAM that the registry lacks."""
        return self.missing(read_header_sq(path))

    def find_build(self, header_sq: list[dict[str, Any]], source: Path) -> Build:
        """The registered build whose sequences match a header's @SQ lines (M5 where given)."""
        for build in self.builds():
            try:
                self.match_header(build, header_sq, source)
            except InputError:
                continue
            return build
        raise InputError(
            f"{source}: no registered reference build matches its @SQ lines; "
            "register the build it was aligned to with: wgsvault ref add FASTA --build NAME"
        )

    def match_header(self, build: Build, header_sq: list[dict[str, Any]], source: Path) -> None:
        """Refuse when a header's @SQ lines disagree with `build` (name, length, M5)."""
        by_name = {s.name: s for s in build.sequences}
        for sq in header_sq:
            ref = by_name.get(sq["SN"])
            if ref is None:
                raise InputError(
                    f"{source}: @SQ {sq['SN']} is not a sequence of reference build {build.name}"
                )
            if int(sq["LN"]) != ref.length:
                raise InputError(
                    f"{source}: @SQ {sq['SN']} has length {sq['LN']}, reference build "
                    f"{build.name} has {ref.length}: wrong reference"
                )
            m5 = sq.get("M5")
            if m5 and m5.lower() != ref.md5:
                raise InputError(
                    f"{source}: @SQ {sq['SN']} M5 {m5} differs from reference build "
                    f"{build.name} ({ref.md5}): wrong reference"
                )


def read_header_sq(path: Path) -> list[dict[str, Any]]:
    """The @SQ lines of an alignment file's header (no reference needed to read a header)."""
    level = pysam.set_verbosity(0)  # only the header is read: no index warnings
    try:
        with pysam.AlignmentFile(str(path), "r", check_sq=False) as fh:
            return list(fh.header.to_dict().get("SQ", []))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read alignment header: {exc}") from None
    finally:
        pysam.set_verbosity(level)
