"""Proving an action's preconditions before its originals may go.

Existence alone suffices only where no content proof exists (a BCL run folder once its reads are
kept, a gVCF once the VCF is kept), as the policy states. Otherwise the evidence the plan named is
checked for content, here, immediately before the originals move:

* `sha256`: a regional copy goes only when its bytes equal the national copy's;
* `verify-covers`: a FASTQ goes only when the genome's aligned CRAM holds every read, proven by
  `codec.covers.verify_covers`, whose sidecar (what the CRAM lacks to give the FASTQ back byte for
  byte) is written and registered first;
* a BAM or CRAM that "a CRAM of the genome" replaces goes only when the record checksums of the
  two are equal;
* `callable`: a gVCF goes only once its callable regions are stored and registered (extracted
  from it now unless a file that is its own already is; `callable.py`).

Evidence that a conversion of the same plan is to produce counts only once that conversion has
succeeded: the original it comes from is no substitute, since it goes once converted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from wgsvault import faults
from wgsvault.apply.callable import store_callable
from wgsvault.apply.journal import Action, Journal, where
from wgsvault.apply.register import data_files, register
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import File
from wgsvault.codec.covers import verify_covers
from wgsvault.codec.htslib import check_magic, reference_env
from wgsvault.codec.refs import Registry
from wgsvault.codec.sidecar import SUFFIX as SIDECAR_SUFFIX
from wgsvault.codec.verify import prove_alignment
from wgsvault.errors import IntegrityError
from wgsvault.fsutil import clear_leftovers
from wgsvault.inventory.digest import sha256_path


def unit_stem(a: Action) -> str:
    """The name a FASTQ unit's derived files share (`G1_R{1,2}.fastq.gz` -> `G1`)."""
    return Path(a["unit"]).name.split("_R{1,2}")[0].split(".f")[0]


class Prover:
    """Proves the preconditions of one genome's delete actions."""

    def __init__(
        self,
        catalog: Catalog,
        registry: Registry,
        journal: Journal,
        converted: dict[str, str],
        to_convert: set[str],
    ) -> None:
        self.cat, self.reg, self.journal = catalog, registry, journal
        self.converted = converted  # source unit -> the CRAM that replaced it (this run)
        self.to_convert = to_convert  # units this plan converts

    def unit_files(self, key: str) -> list[Path]:
        """The data files of a unit as they are now: what a conversion of this run made of it,
        else its present catalogued files (a FASTQ pair's two, R1 first), else the key itself."""
        if key in self.converted:
            return [Path(self.converted[key])]
        with self.cat.session() as s:
            rows = s.execute(
                select(File.path, File.read_no)
                .where(File.unit == key, File.type != "index", File.status == "present")
                .order_by(File.read_no, File.path)
            ).all()
        return [Path(p) for p, _ in rows] or [Path(key)]

    def evidence(self, pc: dict[str, Any]) -> list[Path]:
        """The files of the unit a precondition's evidence ends with: the unit that stays.

        The evidence names the unit the planner found and, when that unit itself goes in favour
        of an identical copy (scenario C: a regional CRAM the national database holds), the copy
        last: what is proven against is the copy that stays, wherever the plan has got to.
        """
        keys = pc.get("evidence", [])
        for e in keys:
            if e in self.to_convert and e not in self.converted:
                # the evidence is what a conversion of this plan makes, and it has not been made:
                # the original it comes from is no substitute (it goes once converted)
                raise IntegrityError(f"{e}: waits for its conversion, which has not succeeded")
        if not keys:
            return []
        paths = self.unit_files(keys[-1])
        for p in paths:
            if not p.exists():
                raise IntegrityError(f"{p}: the evidence this action depends on is missing")
        return paths

    def prove(self, a: Action) -> list[str]:
        """Prove every precondition of `a`; the evidence used. Raises IntegrityError if not."""
        data = [Path(f["path"]) for f in data_files(a)]
        shown: list[str] = []
        for pc in a["preconditions"]:
            ev = self.evidence(pc)
            shown += [str(p) for p in ev]
            check = pc.get("check")
            if check == "sha256":
                if len(ev) != len(data):
                    missing = f"its copy has {len(ev)} files, not {len(data)}"
                    raise IntegrityError(f"{data[0]}: {missing}")
                for original, copy in zip(data, ev, strict=True):  # files, or run folders
                    h1, h2 = sha256_path(str(original)), sha256_path(str(copy))
                    if h1 != h2:
                        raise IntegrityError(f"{original}: differs from {copy} (sha256); kept")
            elif check == "verify-covers":
                self.covers(a, data, ev[0])
            elif pc["kind"] == "callable":
                bed = store_callable(self.cat, self.journal, a, data[0], pc, ev)
                shown.append(str(bed))
            elif pc["kind"] == "exists":
                if a["type"] in ("bam", "cram") and ev and ev[0].suffix == ".cram":
                    proof = prove_alignment(data[0], ev[0], registry=self.reg)
                    if not proof["ok"]:
                        raise IntegrityError(
                            f"{data[0]}: {ev[0]} is not proven to hold its records: "
                            f"{proof['failure']}"
                        )
            else:
                raise IntegrityError(f"{data[0]}: precondition {pc['kind']} cannot be proven")
            faults.point("prove:checked", where(a, str(check or pc["kind"])))
        return shown

    def covers(self, a: Action, fastqs: list[Path], cram: Path) -> None:
        """verify-covers of the FASTQ in `cram`; its sidecar is written and registered."""
        for fq in fastqs:
            check_magic(fq, "fastq")
        check_magic(cram, "cram", "bam")
        sidecar = cram.parent / f"{unit_stem(a)}{SIDECAR_SUFFIX}"
        if sidecar.exists():  # from an interrupted earlier run: verify-covers writes it again
            sidecar.unlink()
        clear_leftovers(sidecar)
        with reference_env(self.reg.cache):
            rep = verify_covers(fastqs, cram, sidecar=sidecar, keep_order=True)
        if not rep.covered:
            raise IntegrityError(f"{cram}: does not cover {fastqs[0].name}: {rep.reason}")
        faults.point("covers:proven", where(a))  # the sidecar is written, not yet registered
        proof = {"kind": "covers", **rep.to_dict()}
        register(self.cat, self.journal, a, sidecar, "other", proof, "sidecar", like=cram)
