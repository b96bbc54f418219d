"""One genome's ready actions of a plan, step by step: convert -> prove -> register -> quarantine.

Invariants, enforced here and not by convention:

* An original is never removed unless what replaces it is proven, fsync'd and recorded: the new
  CRAM lands only after its proof (codec.convert) and is registered with the proof in the catalog
  (register.py) before any original moves; a delete goes only after its preconditions are proven
  on content (prove.py).
* A file that changed on disk since the plan (size, mtime) is not touched: the action is skipped.
* Originals are renamed into quarantine (quarantine.py), never deleted here; `purge` does that
  after the quarantine period.

Conversions run first (BAM before FASTQ, so an aligned CRAM made from a BAM can cover the FASTQ).
Every step is journaled write-ahead (journal.py). After a crash the genome is simply run again:
finished steps are skipped, an interrupted step is completed from what the disk shows (a
conversion whose output already landed is proven again; a quarantine rename that happened is
recorded), so every step is idempotent.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from wgsvault import faults
from wgsvault.apply.journal import Action, Journal, quarantine_step, where
from wgsvault.apply.prove import Prover, unit_stem
from wgsvault.apply.quarantine import DEFAULT_DAYS, move, target_for
from wgsvault.apply.register import data_files, register, register_beside
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import File, Quarantine, Root
from wgsvault.codec.convert import convert_bam, convert_fastq
from wgsvault.codec.fastqfmt import read_recipe
from wgsvault.codec.refs import Registry, read_header_sq
from wgsvault.codec.verify import prove_alignment, prove_fastq
from wgsvault.errors import IntegrityError, VaultError
from wgsvault.fsutil import clear_leftovers
from wgsvault.inventory.walk import folder_totals


class Changed(VaultError):
    """A file changed (or vanished) since the plan was made: its action is skipped."""


@dataclass
class GenomeTask:
    """The unit of work an executor runs: one genome's ready actions of an approved plan."""

    catalog_url: str
    refs_root: str
    plan_sha: str
    run_id: int
    genome: str
    actions: list[Action]
    actor: str
    holder: str
    quarantine_days: int = DEFAULT_DAYS
    #: seconds to wait for the genome's lock when another holder has it (0: give up at once).
    #: A cluster task waits: the holder is then most often an earlier attempt of its own, still
    #: dying after a time limit or a lost node, whose lock frees when it is gone or stale.
    wait_lock: float = 0.0


@dataclass
class GenomeResult:
    genome: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    bytes_freed: int = 0
    bytes_written: int = 0
    locked_by: str | None = None
    seconds: float = 0.0


def _order(a: Action) -> tuple[int, int]:
    first = {"bam": 0, "cram": 1, "fastq": 2}
    return (0 if a["action"] == "convert" else 1, first.get(a["type"], 3))


def _stat(path: Path, is_dir: bool) -> tuple[int, int]:
    if is_dir:
        t = folder_totals(str(path))
        return t.size, t.mtime_ns
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


class GenomeRunner:
    """The ready actions of one genome, step by step, under the genome's lock."""

    def __init__(self, catalog: Catalog, registry: Registry, task: GenomeTask) -> None:
        self.cat, self.reg, self.t = catalog, registry, task
        self.res = GenomeResult(task.genome)
        self.journal = Journal(
            catalog, plan_sha=task.plan_sha, run_id=task.run_id, actor=task.actor
        )
        self.converted: dict[str, str] = {}  # source unit -> the CRAM that replaced it
        to_convert = {a["unit"] for a in task.actions if a["action"] == "convert"}
        self.prover = Prover(catalog, registry, self.journal, self.converted, to_convert)

    def run(self) -> GenomeResult:
        t0 = time.perf_counter()
        for a in sorted(self.t.actions, key=_order):
            done = self.journal.last(a["id"], "action")
            if done and done[0] == "done":
                if a["action"] == "convert":
                    self.converted[a["unit"]] = done[1]["output"]
                self.res.done.append(a["id"])
                continue
            try:
                freed = self._convert(a) if a["action"] == "convert" else self._delete(a)
            except Changed as exc:
                self.journal.end(a, "skipped", str(exc))
                self.res.skipped[a["id"]] = str(exc)
            except (VaultError, OSError) as exc:
                self.journal.end(a, "failed", str(exc))
                self.res.failed[a["id"]] = str(exc)
            else:
                self.res.done.append(a["id"])
                self.res.bytes_freed += freed
        self.res.seconds = time.perf_counter() - t0
        return self.res

    def _check_unchanged(self, a: Action) -> None:
        for f in a["files"]:
            p = Path(f["path"])
            if p.exists():
                size, mtime = _stat(p, f["type"] == "bcl")
                if (size, mtime) != (f["size"], f["mtime_ns"]):
                    raise Changed(
                        f"{p}: changed since the plan (size {f['size']} -> {size}); not touched"
                    )
            elif not self._quarantined(a, p) and not self._moving(a, p):
                raise Changed(f"{p}: vanished since the plan; not touched")

    def _moving(self, a: Action, p: Path) -> bool:
        """Renamed into quarantine by a run that died before recording it."""
        prior = self.journal.last(a["id"], quarantine_step(p))
        return bool(prior and prior[0] == "started" and Path(prior[1]["to"]).exists())

    def _quarantined(self, a: Action, p: Path) -> bool:
        with self.cat.session() as s:
            return (
                s.scalars(
                    select(Quarantine.id).where(
                        Quarantine.plan_sha256 == self.t.plan_sha,
                        Quarantine.action_id == a["id"],
                        Quarantine.original_path == str(p),
                    )
                ).first()
                is not None
            )

    # -- convert -------------------------------------------------------------------------------

    def _convert(self, a: Action) -> int:
        self._check_unchanged(a)
        data = data_files(a)
        src = Path(data[0]["path"])
        if a["type"] == "bam":
            out = src.with_suffix(".cram")
        elif a["type"] == "fastq":
            out = src.parent / f"{unit_stem(a)}.unaligned.cram"
        else:
            raise IntegrityError(f"{src}: no conversion for type {a['type']}")
        prior = self.journal.last(a["id"], "convert")
        if prior and prior[0] == "done" and out.exists():
            new = out.stat().st_size  # converted and registered before an interruption
        else:
            if out.exists() and prior and prior[0] == "started":
                proof = self._reprove(a, data, out)  # landed before the crash: prove it again
            else:
                clear_leftovers(out)
                self.journal.started(a, "convert", {"output": str(out)})
                if a["type"] == "bam":
                    build = self.reg.find_build(read_header_sq(src), src)
                    res = convert_bam(src, out, registry=self.reg, build=build.name)
                else:
                    paths = [Path(f["path"]) for f in data]
                    res = convert_fastq(paths[0], paths[1] if len(paths) > 1 else None, out)
                proof = res.proof
                faults.point("convert:landed", where(a))
            new = register(self.cat, self.journal, a, out, "cram", proof, "convert")
        register_beside(self.cat, out)  # idempotent: also after a kill right after registering
        self.converted[a["unit"]] = str(out)
        self.res.bytes_written += new
        freed = self._quarantine_all(a)
        self.journal.finish(a, {"output": str(out), "bytes_freed": freed - new})
        return freed - new

    def _reprove(self, a: Action, data: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        if a["type"] == "bam":
            proof = prove_alignment(Path(data[0]["path"]), out, registry=self.reg)
            if not proof["ok"]:
                raise IntegrityError(f"{out}: not proven: {proof['failure']}")
            return proof
        fmt = read_recipe(out)
        if fmt is None:
            raise IntegrityError(f"{out}: no restore recipe; not a wgsvault conversion")
        return prove_fastq([Path(f["path"]) for f in data], out, fmt)

    # -- delete (after proof) --------------------------------------------------------------------

    def _delete(self, a: Action) -> int:
        self._check_unchanged(a)
        prior = self.journal.last(a["id"], "prove")
        if not (prior and prior[0] == "done"):
            self.journal.started(a, "prove")
            evidence = self.prover.prove(a)
            with self.cat.session() as s:
                self.journal.write(s, a, "prove", "done", {"evidence": evidence})
                self.journal.audit(s, a, "verify", {"outcome": "proven", "evidence": evidence})
            faults.point("prove:done", where(a))
        freed = self._quarantine_all(a)
        self.journal.finish(a, {"bytes_freed": freed})
        return freed

    # -- quarantine ------------------------------------------------------------------------------

    def _quarantine_all(self, a: Action) -> int:
        return sum(self._quarantine(a, f) for f in a["files"])

    def _quarantine(self, a: Action, f: dict[str, Any]) -> int:
        src = Path(f["path"])
        if self._quarantined(a, src):
            return int(f["size"])
        with self.cat.session() as s:
            row = s.scalars(select(File).where(File.path == str(src))).first()
            root = s.get(Root, row.root_id) if row else None
            if row is None or root is None:
                raise IntegrityError(f"{src}: not in the catalog; rescan before apply")
            file_id, root_path, sha = row.id, Path(root.path), row.sha256
        dst = target_for(root_path, src, self.t.plan_sha, a["id"])
        step = quarantine_step(src)
        prior = self.journal.last(a["id"], step)
        if not (prior and prior[0] == "started" and dst.exists() and not src.exists()):
            self.journal.started(a, step, {"path": str(src), "to": str(dst)})
            move(src, dst)
            faults.point("quarantine:moved", where(a, src.name))
        now = dt.datetime.now(dt.UTC)
        with self.cat.session() as s:
            s.add(
                Quarantine(
                    file_id=file_id,
                    genome=a["genome"],
                    controller=a["controller"],
                    original_path=str(src),
                    quarantine_path=str(dst),
                    size=int(f["size"]),
                    mtime_ns=int(f["mtime_ns"]),
                    sha256=sha,
                    plan_sha256=self.t.plan_sha,
                    action_id=a["id"],
                    state="quarantined",
                    quarantined_at=now,
                    expires_at=now + dt.timedelta(days=self.t.quarantine_days),
                )
            )
            s.execute(update(File).where(File.id == file_id).values(status="quarantined"))
            self.journal.write(s, a, step, "done", {"path": str(src), "to": str(dst)})
            self.journal.audit(
                s,
                a,
                "quarantine",
                {"path": str(src), "to": str(dst), "size": int(f["size"]), "sha256": sha},
            )
        faults.point("quarantine:recorded", where(a, src.name))
        return int(f["size"])
