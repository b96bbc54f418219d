"""The cohort as the catalog knows it: each genome's kept VCF, callable regions, sex and strata.

A genome takes part when the catalog has a present VCF of it (type `vcf`); when several copies
exist the national database's is preferred (then the shortest path, for a stable choice). Its
callable regions are a present file of type `callable` (see `codec.callable_regions`); a genome
that has none yet but keeps a gVCF gets them extracted first (`variants build`). The strata of a
genome are `total`, `group:<patient group>` and `region:<requisitioning region>` where the
manifest gave them; its sex (female, male, else unknown) decides its ploidy on X and Y.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File, Genome
from wgsvault.errors import InputError

CALLABLE = "callable"  # File.type of a callable-regions BED (codec.callable_regions)


@dataclass(frozen=True)
class Member:
    genome: str
    sex: str  # female | male | unknown
    strata: tuple[str, ...]  # "total" first, then by name
    vcf: Path | None
    callable: Path | None
    gvcf: Path | None
    alignment: Path | None = None  # CRAM, else BAM: depth-derived callable regions


def strata_of(patient_group: str | None, region: str | None) -> tuple[str, ...]:
    extra = []
    if patient_group:
        extra.append(f"group:{patient_group}")
    if region:
        extra.append(f"region:{region}")
    return ("total", *sorted(extra))


def members(catalog: Catalog, only: str | None = None) -> list[Member]:
    """Every genome of the catalog (or the one named `only`) with its files, by name."""
    with catalog.session() as s:
        q = select(Genome).order_by(Genome.name)
        if only is not None:
            q = q.where(Genome.name == only)
        genomes = list(s.scalars(q))
        if only is not None and not genomes:
            raise InputError(f"genome {only!r} is not in the catalog")
        files = (
            select(File.genome_id, File.type, File.path, Controller.kind)
            .outerjoin(Controller, Controller.id == File.controller_id)
            .where(File.status == "present")
            .where(File.type.in_(("vcf", "gvcf", CALLABLE, "cram", "bam")))
            .where(File.genome_id.is_not(None))
        )
        if only is not None:  # (no IN list of every genome: 60,000 exceed SQLite's variables)
            files = files.where(File.genome_id == genomes[0].id)
        rows = s.execute(files).all()
    best: dict[tuple[int, str], tuple[bool, int, str]] = {}
    for genome_id, ftype, path, kind in rows:
        if genome_id is None:
            continue
        rank = (kind != "national", len(path), path)
        key = (genome_id, ftype)
        if key not in best or rank < best[key]:
            best[key] = rank

    def pick(genome_id: int, ftype: str) -> Path | None:
        found = best.get((genome_id, ftype))
        return Path(found[2]) if found else None

    return [
        Member(
            genome=g.name,
            sex=g.sex if g.sex in ("female", "male") else "unknown",
            strata=strata_of(g.patient_group, g.requisition_region),
            vcf=pick(g.id, "vcf"),
            callable=pick(g.id, CALLABLE),
            gvcf=pick(g.id, "gvcf"),
            alignment=pick(g.id, "cram") or pick(g.id, "bam"),
        )
        for g in genomes
    ]
