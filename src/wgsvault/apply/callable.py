"""A gVCF goes only after its callable regions are stored: extracting, landing, registering them.

The policy's `callable` requirement (presets A, B, C on every gVCF they delete) is proven here,
immediately before the gVCF moves into quarantine:

* a callable-regions file that is this gVCF's (its header names the gVCF's sha256, `method=gvcf`,
  thresholds at least those the plan asks for) already beside it or named by the plan as
  evidence: nothing to write (one that an interrupted run landed but did not register is
  registered now);
* otherwise the regions are extracted (`codec.callable_regions.extract`), land beside the gVCF
  with their index, and are registered as a catalog file of type `callable` of the gVCF's root,
  controller and genome, with a Proof (`gvcf->callable`: thresholds, intervals, bases, sha256 of
  the gVCF and of the BED) and an audit entry, all before the gVCF moves.

A gVCF that cannot be read (corrupt, truncated, no GQ) raises, so its action fails and the gVCF
stays; nothing half-written is left. A depth-derived file (`method=depth`) never stands in for a
gVCF's own regions: it is replaced by them.

`register_callable` records a callable file made outside apply (the variants engine's `variants
callable`, the depth fallback) the same way, with an audit entry of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from wgsvault import audit, faults
from wgsvault.apply.journal import Action, Journal, where
from wgsvault.apply.register import register, upsert_file
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File, Genome, Proof, Root
from wgsvault.codec.callable_regions import (
    CallableSummary,
    callable_path,
    check_gvcf,
    extract,
    read_header,
    summarise,
)
from wgsvault.errors import InputError, IntegrityError
from wgsvault.inventory.digest import sha256_file


def is_of(bed: Path, gvcf_sha256: str, thresholds: dict[str, int]) -> bool:
    """Whether `bed` holds the callable regions of the gVCF with this sha256, at thresholds at
    least as strict as `thresholds`."""
    try:
        head = read_header(bed)
    except InputError:
        return False
    if head.get("method") != "gvcf" or head.get("sha256") != gvcf_sha256:
        return False
    return all(int(head.get(k, "-1")) >= v for k, v in thresholds.items())


def store_callable(
    catalog: Catalog, journal: Journal, a: Action, gvcf: Path, pc: dict[str, Any], ev: list[Path]
) -> Path:
    """Prove the `callable` precondition of the delete of `gvcf`; the callable file that holds."""
    thresholds = {"min_gq": int(pc.get("min_gq", 20)), "min_dp": int(pc.get("min_dp", 10))}
    out = callable_path(gvcf)
    if out == gvcf:
        raise IntegrityError(f"{gvcf}: its callable regions would overwrite it")
    check_gvcf(gvcf)  # a file that is no gVCF at all fails before it is hashed in full
    sha = sha256_file(str(gvcf))
    for bed in ev:
        if is_of(bed, sha, thresholds):
            return bed  # registered already: the plan found it in the catalog
    if out.exists() and is_of(out, sha, thresholds):
        summary = summarise(out)  # landed by a run interrupted before it registered it
    else:
        if out.exists():
            try:
                read_header(out)
            except InputError:
                raise IntegrityError(
                    f"{out}: exists and is not a callable-regions file; {gvcf.name} kept"
                ) from None
        summary = extract(gvcf, out, **thresholds)
        faults.point("callable:landed", where(a))
    register(catalog, journal, a, out, "callable", summary.proof(gvcf), "register", like=gvcf)
    _register_index(catalog, out)
    return out


def _register_index(catalog: Catalog, bed: Path) -> None:
    tbi = Path(f"{bed}.tbi")
    with catalog.session() as s:
        main = s.scalars(select(File).where(File.path == str(bed))).one()
        upsert_file(
            s, tbi, like=main, source=bed, ftype="index", unit=str(bed), scan_id=main.first_scan_id
        )


def register_callable(
    catalog: Catalog,
    genome: str,
    bed: Path,
    summary: CallableSummary,
    *,
    actor: str | None = None,
) -> int:
    """Record the callable-regions file `bed` of `genome` (and its `.tbi`) in the catalog, with
    its proof and an audit entry (idempotent); the file's id.

    The row takes the root and controller of the genome's file it was made from (the gVCF or
    CRAM named in its header, beside it), else of another file of the genome in the same folder.
    """
    bed = Path(bed).absolute()
    source = bed.parent / summary.source
    with catalog.session() as s:
        gid = s.scalars(select(Genome.id).where(Genome.name == genome)).first()
        if gid is None:
            raise InputError(f"{genome}: no such genome in the catalog")
        like = s.scalars(select(File).where(File.path == str(source))).first()
        if like is None or like.genome_id != gid:
            like = s.scalars(
                select(File)
                .where(File.genome_id == gid, File.path.startswith(f"{bed.parent}{os.sep}"))
                .order_by(File.path)
            ).first()
        if like is None:
            raise InputError(
                f"{bed}: no catalogued file of genome {genome} in its folder; scan it first"
            )
        root = s.get(Root, like.root_id)
        scan_id = (root.last_scan_id if root else None) or like.last_change_scan_id
        row = upsert_file(
            s, bed, like=like, source=source, ftype="callable", unit=str(bed), scan_id=scan_id
        )
        st = os.stat(bed)
        row.type, row.genome_id = "callable", gid
        row.sha256, row.sha256_size = summary.sha256, st.st_size
        row.sha256_mtime_ns = st.st_mtime_ns
        s.flush()
        tbi = Path(f"{bed}.tbi")
        if tbi.exists():
            upsert_file(s, tbi, like=row, source=bed, ftype="index", unit=str(bed), scan_id=scan_id)
        proof = summary.proof(source)
        s.add(
            Proof(
                file_id=row.id,
                path=str(bed),
                kind=str(proof["kind"]),
                sha256=summary.sha256,
                document=json.dumps(proof, sort_keys=True, default=str),
            )
        )
        ctrl = s.get(Controller, row.controller_id) if row.controller_id is not None else None
        audit.append(
            s,
            actor=actor or audit.default_actor(),
            event="register",
            genome=genome,
            controller=ctrl.name if ctrl else None,
            detail={
                "output": str(bed),
                "sha256": summary.sha256,
                "size": st.st_size,
                "proof": proof["kind"],
                "inputs": proof["inputs"],
                "intervals": summary.intervals,
                "bases": summary.bases,
            },
        )
        s.flush()
        return row.id
