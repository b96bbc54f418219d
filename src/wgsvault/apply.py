"""Apply a plan: convert -> prove -> register -> quarantine, journaled, resumable, per genome.

`apply_plan` refuses a plan that is not approved, in its exact content, by the data controller of
every action it would run (approve.py). It then hands one task per genome to an executor
(executors.py); `apply_genome` takes the genome's lock (locks.py) and runs its ready actions,
conversions first (BAM before FASTQ, so an aligned CRAM made from a BAM can cover the FASTQ).

Invariants, enforced here and not by convention:

* An original is never removed unless what replaces it is proven, fsync'd and recorded: the new
  CRAM lands only after its proof (convert.py) and is registered with the proof in the catalog
  before any original moves; a FASTQ goes only after verify-covers proves the aligned CRAM holds
  every read (its sidecar registered); a regional copy only after its sha256 equals the national
  copy's; a BAM or CRAM that "a CRAM of the genome" replaces only after the record checksums of
  the two are equal. Existence alone suffices only where no content proof exists (a BCL run
  folder once its reads are kept, a gVCF once the VCF is kept), as the policy states.
* A file that changed on disk since the plan (size, mtime) is not touched: the action is skipped.
* Originals are renamed into quarantine (quarantine.py), never deleted here; `purge` does that
  after the quarantine period.

Every step is journaled write-ahead (`journal` table): `started` is committed before the step
runs, `done` (with what it produced) after, in the same transaction as the catalog change and the
audit entry of that step. After a crash `apply` is simply run again: finished steps are skipped,
an interrupted step is completed from what the disk shows (a conversion whose output already
landed is proven again; a quarantine rename that happened is recorded), so every step is
idempotent. `faults.point` marks the places a test kills the process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from wgsvault import audit, faults
from wgsvault.approve import LoadedPlan, load_plan, require_approval
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.models import (
    ApplyRun,
    File,
    GenomeLock,
    JournalEntry,
    Proof,
    Quarantine,
    Root,
)
from wgsvault.convert import convert_bam, convert_fastq
from wgsvault.digest import sha256_file
from wgsvault.errors import IntegrityError, VaultError
from wgsvault.executors import Executor, LocalExecutor
from wgsvault.htslib import check_magic, reference_env
from wgsvault.locks import GenomeLocks, holder_dead
from wgsvault.quarantine import DEFAULT_DAYS, move, target_for
from wgsvault.refs import Registry, read_header_sq
from wgsvault.verify import prove_alignment
from wgsvault.walk import folder_totals

SIDECAR_SUFFIX = ".fastq.wgsvault-sidecar"


class Changed(VaultError):
    """A file changed (or vanished) since the plan was made: its action is skipped."""


@dataclass
class GenomeTask:
    catalog_url: str
    refs_root: str
    plan_sha: str
    run_id: int
    genome: str
    actions: list[dict]  # type: ignore[type-arg]
    actor: str
    holder: str
    quarantine_days: int = DEFAULT_DAYS


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


def _order(a: dict) -> tuple[int, int]:  # type: ignore[type-arg]
    first = {"bam": 0, "cram": 1, "fastq": 2}
    return (0 if a["action"] == "convert" else 1, first.get(a["type"], 3))


def _data_files(a: dict) -> list[dict]:  # type: ignore[type-arg]
    files = [f for f in a["files"] if f["type"] != "index"]
    return sorted(files, key=lambda f: (f.get("read") or 0, f["path"]))


def _stat(path: Path, is_dir: bool) -> tuple[int, int]:
    if is_dir:
        t = folder_totals(str(path))
        return t.size, t.mtime_ns
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _qstep(path: Path) -> str:
    """The journal step of one file's quarantine move (paths are too long for a step name)."""
    return "quarantine:" + hashlib.sha1(str(path).encode()).hexdigest()[:16]


def _clear_leftovers(out: Path) -> None:
    """Temporary files of a run that was killed while writing `out` (never the file itself)."""
    for tmp in out.parent.glob(f".{out.name}.*"):
        if tmp.name.endswith((".tmp", ".tmp.cram", ".tmp.cram.crai", ".tmp.cram.hdr")):
            tmp.unlink(missing_ok=True)


def _upsert_file(
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
        if like is None:
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


class GenomeRunner:
    """The ready actions of one genome, step by step, under the genome's lock."""

    def __init__(self, catalog: Catalog, registry: Registry, task: GenomeTask) -> None:
        self.cat, self.reg, self.t = catalog, registry, task
        self.res = GenomeResult(task.genome)
        self.converted: dict[str, str] = {}  # source unit -> the CRAM that replaced it
        self.to_convert = {a["unit"] for a in task.actions if a["action"] == "convert"}

    # -- journal -------------------------------------------------------------------------------

    def _last(self, action_id: str, step: str) -> tuple[str, dict] | None:  # type: ignore[type-arg]
        with self.cat.session() as s:
            row = s.scalars(
                select(JournalEntry)
                .where(
                    JournalEntry.plan_sha256 == self.t.plan_sha,
                    JournalEntry.action_id == action_id,
                    JournalEntry.step == step,
                )
                .order_by(JournalEntry.id.desc())
                .limit(1)
            ).first()
            return (row.state, json.loads(row.detail)) if row else None

    def _journal(self, s, a: dict, step: str, state: str, detail: dict | None = None) -> None:  # type: ignore[no-untyped-def,type-arg]
        s.add(
            JournalEntry(
                run_id=self.t.run_id,
                plan_sha256=self.t.plan_sha,
                action_id=a["id"],
                genome=a["genome"],
                step=step,
                state=state,
                detail=json.dumps(detail or {}, sort_keys=True),
            )
        )

    def _started(self, a: dict, step: str, detail: dict | None = None) -> None:  # type: ignore[type-arg]
        with self.cat.session() as s:
            self._journal(s, a, step, "started", detail)
        faults.point(f"{step}:started")

    def _audit(self, s, a: dict, event: str, detail: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
        audit.append(
            s,
            actor=self.t.actor,
            event=event,
            genome=a["genome"],
            controller=a["controller"],
            detail={"plan": self.t.plan_sha, "action": a["id"], **detail},
        )

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> GenomeResult:
        t0 = time.perf_counter()
        for a in sorted(self.t.actions, key=_order):
            done = self._last(a["id"], "action")
            if done and done[0] == "done":
                if a["action"] == "convert":
                    self.converted[a["unit"]] = done[1]["output"]
                self.res.done.append(a["id"])
                continue
            try:
                freed = self._convert(a) if a["action"] == "convert" else self._delete(a)
            except Changed as exc:
                self._end(a, "skipped", str(exc))
                self.res.skipped[a["id"]] = str(exc)
            except (VaultError, OSError) as exc:
                self._end(a, "failed", str(exc))
                self.res.failed[a["id"]] = str(exc)
            else:
                self.res.done.append(a["id"])
                self.res.bytes_freed += freed
        self.res.seconds = time.perf_counter() - t0
        return self.res

    def _end(self, a: dict, state: str, reason: str) -> None:  # type: ignore[type-arg]
        with self.cat.session() as s:
            self._journal(s, a, "action", state, {"reason": reason})
            self._audit(
                s,
                a,
                "verify" if state == "failed" else "refuse",
                {"outcome": state, "reason": reason},
            )

    def _finish(self, a: dict, detail: dict) -> None:  # type: ignore[type-arg]
        with self.cat.session() as s:
            self._journal(s, a, "action", "done", detail)
        faults.point("action:done")

    def _check_unchanged(self, a: dict) -> None:  # type: ignore[type-arg]
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

    def _moving(self, a: dict, p: Path) -> bool:  # type: ignore[type-arg]
        """Renamed into quarantine by a run that died before recording it."""
        prior = self._last(a["id"], _qstep(p))
        return bool(prior and prior[0] == "started" and Path(prior[1]["to"]).exists())

    def _quarantined(self, a: dict, p: Path) -> bool:  # type: ignore[type-arg]
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

    def _convert(self, a: dict) -> int:  # type: ignore[type-arg]
        self._check_unchanged(a)
        data = _data_files(a)
        src = Path(data[0]["path"])
        if a["type"] == "bam":
            out = src.with_suffix(".cram")
        elif a["type"] == "fastq":
            stem = Path(a["unit"]).name.split("_R{1,2}")[0].split(".f")[0]
            out = src.parent / f"{stem}.unaligned.cram"
        else:
            raise IntegrityError(f"{src}: no conversion for type {a['type']}")
        prior = self._last(a["id"], "convert")
        if prior and prior[0] == "done" and out.exists():
            new = out.stat().st_size  # converted and registered before an interruption
        else:
            if out.exists() and prior and prior[0] == "started":
                proof = self._reprove(a, data, out)  # landed before the crash: prove it again
            else:
                _clear_leftovers(out)
                self._started(a, "convert", {"output": str(out)})
                if a["type"] == "bam":
                    build = self.reg.find_build(read_header_sq(src), src)
                    res = convert_bam(src, out, registry=self.reg, build=build.name)
                else:
                    paths = [Path(f["path"]) for f in data]
                    res = convert_fastq(paths[0], paths[1] if len(paths) > 1 else None, out)
                proof = res.proof
                faults.point("convert:landed")
            new = self._register(a, out, "cram", proof, "convert")
            self._register_beside(out)
        self.converted[a["unit"]] = str(out)
        self.res.bytes_written += new
        freed = self._quarantine_all(a)
        self._finish(a, {"output": str(out), "bytes_freed": freed - new})
        return freed - new

    def _reprove(self, a: dict, data: list[dict], out: Path) -> dict:  # type: ignore[type-arg]
        from wgsvault.convert import read_recipe
        from wgsvault.verify import prove_fastq

        if a["type"] == "bam":
            proof = prove_alignment(Path(data[0]["path"]), out, registry=self.reg)
            if not proof["ok"]:
                raise IntegrityError(f"{out}: not proven: {proof['failure']}")
            return proof
        fmt = read_recipe(out)
        if fmt is None:
            raise IntegrityError(f"{out}: no restore recipe; not a wgsvault conversion")
        return prove_fastq([Path(f["path"]) for f in data], out, fmt)

    def _register(self, a: dict, path: Path, ftype: str, proof: dict, event: str) -> int:  # type: ignore[type-arg]
        """Record a file the vault wrote, with its proof, in the catalog (idempotent)."""
        st = os.stat(path)
        sha = proof.get("output", {}).get("sha256") or sha256_file(str(path))
        src = Path(_data_files(a)[0]["path"])
        with self.cat.session() as s:
            orig = s.scalars(select(File).where(File.path == str(src))).first()
            root = s.get(Root, orig.root_id) if orig is not None else None
            scan_id = (root.last_scan_id if root else None) or (
                orig.last_change_scan_id if orig is not None else None
            )
            row = _upsert_file(
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
            self._journal(s, a, event, "done", {"output": str(path), "sha256": sha})
            self._audit(
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
        faults.point(f"{event}:registered")
        return st.st_size

    def _register_beside(self, out: Path) -> None:
        """The new CRAM's index and proof file, so that a rescan finds nothing unknown."""
        with self.cat.session() as s:
            main = s.scalars(select(File).where(File.path == str(out))).one()
            for path, ftype in (
                (Path(f"{out}.crai"), "index"),
                (Path(f"{out}.proof.json"), "other"),
            ):
                if path.exists():
                    unit = str(out) if ftype == "index" else str(path)  # as the scan has it
                    _upsert_file(
                        s,
                        path,
                        like=main,
                        source=out,
                        ftype=ftype,
                        unit=unit,
                        scan_id=main.first_scan_id,
                    )

    # -- delete (after proof) --------------------------------------------------------------------

    def _delete(self, a: dict) -> int:  # type: ignore[type-arg]
        self._check_unchanged(a)
        prior = self._last(a["id"], "prove")
        if not (prior and prior[0] == "done"):
            self._started(a, "prove")
            evidence = self._prove(a)
            with self.cat.session() as s:
                self._journal(s, a, "prove", "done", {"evidence": evidence})
                self._audit(s, a, "verify", {"outcome": "proven", "evidence": evidence})
            faults.point("prove:done")
        freed = self._quarantine_all(a)
        self._finish(a, {"bytes_freed": freed})
        return freed

    def _evidence(self, pc: dict) -> list[Path]:  # type: ignore[type-arg]
        for e in pc.get("evidence", []):
            if e in self.to_convert and e not in self.converted:
                # the evidence is what a conversion of this plan makes, and it has not been made:
                # the original it comes from is no substitute (it goes once converted)
                raise IntegrityError(f"{e}: waits for its conversion, which has not succeeded")
        paths = [Path(self.converted.get(e, e)) for e in pc.get("evidence", [])]
        for p in paths:
            if not p.exists():
                raise IntegrityError(f"{p}: the evidence this action depends on is missing")
        return paths

    def _prove(self, a: dict) -> list[str]:  # type: ignore[type-arg]
        data = [Path(f["path"]) for f in _data_files(a)]
        shown: list[str] = []
        for pc in a["preconditions"]:
            ev = self._evidence(pc)
            shown += [str(p) for p in ev]
            check = pc.get("check")
            if check == "sha256":
                for original, copy in zip(data, ev, strict=False):
                    h1, h2 = sha256_file(str(original)), sha256_file(str(copy))
                    if h1 != h2:
                        raise IntegrityError(f"{original}: differs from {copy} (sha256); kept")
            elif check == "verify-covers":
                self._covers(a, data, ev[0])
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
        return shown

    def _covers(self, a: dict, fastqs: list[Path], cram: Path) -> None:  # type: ignore[type-arg]
        from wgsvault.covers import verify_covers

        for fq in fastqs:
            check_magic(fq, "fastq")
        check_magic(cram, "cram", "bam")
        stem = Path(a["unit"]).name.split("_R{1,2}")[0].split(".f")[0]
        sidecar = cram.parent / f"{stem}{SIDECAR_SUFFIX}"
        if sidecar.exists():  # from an interrupted earlier run: verify-covers writes it again
            sidecar.unlink()
        _clear_leftovers(sidecar)
        with reference_env(self.reg.cache):
            rep = verify_covers(fastqs, cram, sidecar=sidecar, keep_order=True)
        if not rep.covered:
            raise IntegrityError(f"{cram}: does not cover {fastqs[0].name}: {rep.reason}")
        self._register(a, sidecar, "other", {"kind": "covers", **rep.to_dict()}, "sidecar")

    # -- quarantine ------------------------------------------------------------------------------

    def _quarantine_all(self, a: dict) -> int:  # type: ignore[type-arg]
        freed = 0
        for f in a["files"]:
            freed += self._quarantine(a, f)
        return freed

    def _quarantine(self, a: dict, f: dict) -> int:  # type: ignore[type-arg]
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
        prior = self._last(a["id"], _qstep(src))
        if not (prior and prior[0] == "started" and dst.exists() and not src.exists()):
            self._started(a, _qstep(src), {"path": str(src), "to": str(dst)})
            move(src, dst)
            faults.point("quarantine:moved")
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
            self._journal(s, a, _qstep(src), "done", {"path": str(src), "to": str(dst)})
            self._audit(
                s,
                a,
                "quarantine",
                {"path": str(src), "to": str(dst), "size": int(f["size"]), "sha256": sha},
            )
        faults.point("quarantine:recorded")
        return int(f["size"])


def apply_genome(task: GenomeTask) -> GenomeResult:
    """Run one genome's actions under its lock (the executor's unit of work)."""
    cat = open_catalog(task.catalog_url, migrate=False)
    try:
        # the lock names the process doing the work (a Slurm job's node and pid, not the submitter)
        locks = GenomeLocks(cat, f"{socket.gethostname()}:{os.getpid()}:{task.holder}")
        holder = locks.acquire(task.genome)
        if holder is not None:
            return GenomeResult(task.genome, locked_by=holder)
        try:
            with locks.beating(task.genome):
                return GenomeRunner(cat, Registry(cat, Path(task.refs_root)), task).run()
        finally:
            locks.release(task.genome)
    finally:
        cat.close()


@dataclass
class ApplySummary:
    run_id: int
    genomes: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    locked: dict[str, str] = field(default_factory=dict)
    blocked: int = 0
    bytes_freed: int = 0
    bytes_written: int = 0
    seconds: float = 0.0


ProgressFn = Callable[[GenomeResult, int, int], None]  # (result, genomes done, genomes total)


def apply_plan(
    catalog: Catalog,
    plan_path: Path,
    *,
    registry: Registry,
    actor: str,
    executor: Executor | None = None,
    quarantine_days: int = DEFAULT_DAYS,
    genomes: list[str] | None = None,
    progress: ProgressFn | None = None,
) -> ApplySummary:
    """Apply the approved, ready actions of a plan; safe to run again after any interruption."""
    plan: LoadedPlan = load_plan(plan_path)
    ready = [a for a in plan.actions if a["status"] == "ready"]
    if genomes:
        ready = [a for a in ready if a["genome"] in set(genomes)]
    require_approval(catalog, plan, sorted({a["controller"] or "(unassigned)" for a in ready}))
    executor = executor or LocalExecutor()
    with catalog.session() as s:
        run = ApplyRun(
            plan_sha256=plan.sha256,
            plan_path=str(Path(plan_path).resolve()),
            actor=actor,
            host=socket.gethostname(),
            pid=os.getpid(),
            executor=executor.name,
        )
        s.add(run)
        s.flush()
        run_id = run.id
        audit.append(
            s,
            actor=actor,
            event="apply_start",
            detail={"plan": plan.sha256, "run": run_id, "actions": len(ready)},
        )
    by_genome: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for a in ready:
        by_genome[a["genome"] or "(none)"].append(a)
    holder = f"run{run_id}"  # apply_genome prefixes host:pid (locks.holder_dead)
    tasks = [
        GenomeTask(
            catalog.url,
            str(registry.root),
            plan.sha256,
            run_id,
            g,
            acts,
            actor,
            holder,
            quarantine_days,
        )
        for g, acts in sorted(by_genome.items())
    ]
    summary = ApplySummary(
        run_id,
        genomes=len(tasks),
        blocked=len(plan.actions) - len([a for a in plan.actions if a["status"] == "ready"]),
    )
    t0 = time.perf_counter()
    status = "failed"
    try:
        for n, res in enumerate(executor.run(apply_genome, tasks), 1):
            summary.done += len(res.done)
            summary.failed.update(res.failed)
            summary.skipped.update(res.skipped)
            if res.locked_by:
                summary.locked[res.genome] = res.locked_by
            summary.bytes_freed += res.bytes_freed
            summary.bytes_written += res.bytes_written
            if progress:
                progress(res, n, len(tasks))
        status = "done"
    finally:
        summary.seconds = time.perf_counter() - t0
        with catalog.session() as s:
            s.execute(
                update(ApplyRun)
                .where(ApplyRun.id == run_id)
                .values(status=status, finished_at=dt.datetime.now(dt.UTC))
            )
            audit.append(
                s,
                actor=actor,
                event="apply_end",
                detail={
                    "plan": plan.sha256,
                    "run": run_id,
                    "status": status,
                    "done": summary.done,
                    "failed": len(summary.failed),
                    "skipped": len(summary.skipped),
                    "bytes_freed": summary.bytes_freed,
                },
            )
    return summary


def status(catalog: Catalog, plan_sha: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    """The latest state of each action (running / done / failed / skipped) with its reason."""
    with catalog.session() as s:
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        locked = {  # genomes someone is working on now (a dead holder's lock does not count)
            lk.genome
            for lk in s.scalars(select(GenomeLock))
            if not holder_dead(lk.holder) and lk.heartbeat_at > stale
        }
        stmt = select(JournalEntry).order_by(JournalEntry.id)
        if plan_sha:
            stmt = stmt.where(JournalEntry.plan_sha256 == plan_sha)
        latest: dict[tuple[str, str], JournalEntry] = {}
        steps: dict[tuple[str, str], JournalEntry] = {}
        for e in s.scalars(stmt):
            key = (e.plan_sha256, e.action_id)
            steps[key] = e
            if e.step == "action":
                latest[key] = e
    out = []
    for key, last in steps.items():
        final = latest.get(key)
        if final is not None and final.id >= last.id:
            state, detail = final.state, json.loads(final.detail)
        elif last.genome in locked:
            state, detail = "running", {"step": last.step}
        else:  # started, never finished, nobody working on it: a run was stopped
            state, detail = "interrupted", {"reason": f"at {last.step}; run apply again"}
        out.append(
            {
                "plan": key[0],
                "action": key[1],
                "genome": last.genome,
                "state": state,
                "reason": detail.get("reason") or detail.get("step", ""),
                "at": last.at.isoformat(),
            }
        )
    return out
