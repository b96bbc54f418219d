"""Planning: from catalog facts and a policy to a list of actions, without touching any file.

The catalog's present files are grouped into units (a data file with its index, a FASTQ pair, a
run folder). Each unit gets the first policy rule that matches it; `delete` units stay *pending*
while every requirement holds against the state after the plan, and fall back (`otherwise`) when
one does not. Evaluation goes in rounds until nothing changes: each round first checks every
pending unit against the state the previous round left, then applies the fallbacks, so the result
does not depend on the order of units, and units that each need the other all stay rather than
all go. Evidence only grows from round to round (a blocked unit stays, a converted one provides its
CRAM), so a requirement once met stays met. Conversions that are fallbacks wait until no other
change is pending and run by source type in the policy's `convert_order` (BAM first), so an aligned
CRAM made from a BAM covers the genome's FASTQ and no unaligned CRAM is planned beside it; other
fallbacks in a genome wait until its conversions are settled. After the first round only genomes
whose units changed are checked again.

Whatever needs content proof is marked `verify` with the check apply must pass first: identical
copies by sha256 (already `met` when both digests are catalogued and equal), FASTQ coverage by
verify-covers, and a gVCF's callable regions (`callable`: met when a callable file of the genome
stays in scope, else extracted from the gVCF at apply before it goes; never blocking, so the
presets keep their savings). Blocked actions are listed with their unmet requirement, never
dropped.

The plan is JSON (`wgsvault-plan/1`): stable action ids (from action and unit path), the files with
the size/mtime/inode/digest they had, expected bytes freed, and a summary by controller.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import select

from wgsvault.bulk import paused_gc
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File, Genome, table_of
from wgsvault.config import TB
from wgsvault.fsutil import atomic_write_bytes
from wgsvault.inventory.filetypes import FileType
from wgsvault.plan.policy import Policy, Requirement

PLAN_FORMAT = "wgsvault-plan/1"
_WHERE = {
    "controller": "at {controller}",
    "national": "in the national database",
    "any": "anywhere",
}
SURVIVING = ("keep", "blocked")


@dataclass(slots=True, eq=False)
class Unit:
    key: str
    type: str
    controller: str | None
    kind: str
    genome: str | None
    files: list[FileFact] = field(default_factory=list)
    size: int = 0
    sig: tuple[int, ...] = ()
    digests: tuple[str, ...] | None = None
    rule: int = -1
    state: str = "keep"  # keep | pending | convert | blocked
    twin: Unit | None = None  # the identical copy this unit is deleted in favour of
    checks: list[dict[str, Any]] = field(default_factory=list)


class FileFact(NamedTuple):
    path: str
    type: str
    read: int | None
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None  # only when valid for this size and mtime


def load_units(catalog: Catalog) -> list[Unit]:
    """Present files of the catalog grouped into units."""
    F = table_of(File)
    stmt = select(
        F.c.unit, F.c.path, F.c.type, F.c.read_no, F.c.size, F.c.mtime_ns, F.c.inode,
        F.c.sha256, F.c.sha256_size, F.c.sha256_mtime_ns, F.c.controller_id, F.c.genome_id,
    ).where(F.c.status == "present")  # fmt: skip
    units: dict[str, Unit] = {}
    index = FileType.INDEX.value
    with catalog.engine.connect() as conn:
        ctrl: dict[int | None, tuple[str | None, str]] = {
            i: (n, k) for i, n, k in conn.execute(select(Controller.id, Controller.name,
                                                         Controller.kind))}  # fmt: skip
        ctrl[None] = (None, "")
        genome: dict[int | None, str | None] = {
            i: n for i, n in conn.execute(select(Genome.id, Genome.name))
        }
        genome[None] = None
        result = conn.execute(stmt)
        for rows in result.partitions(20_000):
            for key, path, ftype, rd, size, mtime, inode, sha, s_size, s_mtime, cid, gid in rows:
                unit = units.get(key)
                if unit is None:
                    c, k = ctrl[cid]
                    unit = units[key] = Unit(key, ftype, c, k, genome[gid])
                elif unit.type == index and ftype != index:
                    c, k = ctrl[cid]
                    unit.type, unit.controller, unit.kind, unit.genome = ftype, c, k, genome[gid]
                valid = sha if (sha and s_size == size and s_mtime == mtime) else None
                unit.files.append(FileFact(path, ftype, rd, size, mtime, inode, valid))
                unit.size += size
    for unit in units.values():
        files = unit.files
        if len(files) == 1:
            f = files[0]
            if f.type != index:
                unit.sig = (f.size,)
                unit.digests = (f.sha256,) if f.sha256 else None
            continue
        files.sort()
        data = [f for f in files if f.type != index]
        if len(data) > 1:
            data.sort(key=lambda f: (f.read or 0, f.path))
        unit.sig = tuple(f.size for f in data)
        shas = [f.sha256 for f in data]
        digests = tuple(s for s in shas if s)
        unit.digests = digests if shas and len(digests) == len(shas) else None
    return sorted(units.values(), key=lambda u: (u.controller or "", u.genome or "", u.key))


def _resolve(unit: Unit) -> Unit | None:
    """The unit that will stand for `unit` after the plan (itself, or its identical twin)."""
    hops = 0
    while unit is not None and hops < 8:
        if unit.state in SURVIVING or unit.state == "convert":
            return unit
        if unit.state == "pending" and unit.twin is not None:
            unit, hops = unit.twin, hops + 1
            continue
        return None
    return None


def _provides(unit: Unit) -> set[str]:
    """The data types a unit will provide after the plan."""
    if unit.state == "convert":
        # a BAM becomes an aligned CRAM; a FASTQ an unaligned CRAM, which keeps the reads only
        return {FileType.CRAM} if unit.type == FileType.BAM else {FileType.FASTQ}
    return {unit.type}


class Planner:
    def __init__(self, policy: Policy, units: list[Unit]) -> None:
        self.policy = policy
        self.units = units
        self.by_genome: dict[str, list[Unit]] = defaultdict(list)
        for u in units:
            if u.genome is not None:
                self.by_genome[u.genome].append(u)

    def _candidates(self, unit: Unit, scope: str) -> list[Unit]:
        """The other units of the unit's genome within `scope`."""
        assert unit.genome is not None  # _check answers genome-less units itself
        units = self.by_genome[unit.genome]
        if scope == "controller":
            ctrl = unit.controller
            return [o for o in units if o.controller == ctrl and o is not unit]
        if scope == "national":
            return [o for o in units if o.kind == "national" and o is not unit]
        return [o for o in units if o is not unit]

    def _check(self, unit: Unit, req: Requirement) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": req.kind, "scope": req.scope}
        if unit.genome is None:
            return out | {"status": "unmet", "text": "the layout gives this file no genome id"}
        cands = self._candidates(unit, req.scope)
        if req.kind == "identical":
            return out | self._identical(unit, cands, _WHERE[req.scope])
        if req.kind == "callable":
            return out | self._callable(cands, req)
        wanted = req.type_values
        for cand in cands:
            final = _resolve(cand)
            if final is not None and not _provides(final).isdisjoint(wanted):
                evidence = [cand.key] + ([final.key] if final is not cand else [])
                pending = " (to be converted)" if final.state == "convert" else ""
                if req.kind == "covered":
                    text = f"aligned CRAM {final.key}{pending} must hold every read of this FASTQ"
                    return out | {
                        "status": "verify",
                        "text": text,
                        "evidence": evidence,
                        "check": "verify-covers",
                    }
                return out | {
                    "status": "met",
                    "evidence": evidence,
                    "text": f"{final.type} {final.key}{pending} stays",
                }
        types = "/".join(sorted(wanted))
        where = _WHERE[req.scope].format(controller=unit.controller)
        return out | {
            "status": "unmet",
            "text": f"no {types} of genome {unit.genome} stays {where}",
        }

    def _callable(self, cands: list[Unit], req: Requirement) -> dict[str, Any]:
        thresholds = {"min_gq": req.min_gq, "min_dp": req.min_dp}
        for cand in cands:
            final = _resolve(cand)
            if final is cand and cand.type == FileType.CALLABLE:
                return thresholds | {
                    "status": "met",
                    "evidence": [cand.key],
                    "text": f"callable regions {cand.key} stay (apply checks they are this gVCF's)",
                }
        return thresholds | {
            "status": "verify",
            "check": "callable",
            "text": f"callable regions (GQ >= {req.min_gq}, depth >= {req.min_dp}) to be "
            "extracted from this gVCF and registered before it goes",
        }

    def _identical(self, unit: Unit, cands: list[Unit], where: str) -> dict[str, Any]:
        differ = None
        where = where.format(controller=unit.controller)
        for cand in cands:
            if cand.type != unit.type or cand.sig != unit.sig or _resolve(cand) is not cand:
                continue
            if unit.digests and cand.digests:
                if unit.digests != cand.digests:
                    differ = cand
                    continue
                unit.twin = cand
                return {
                    "status": "met",
                    "text": f"same sha256 as {cand.key}",
                    "evidence": [cand.key],
                }
            unit.twin = cand
            return {
                "status": "verify",
                "check": "sha256",
                "evidence": [cand.key],
                "text": f"same size as {cand.key}; sha256 to be proven equal",
            }
        if differ is not None:
            return {"status": "unmet", "text": f"{differ.key} {where} has other content (sha256)"}
        return {"status": "unmet", "text": f"no copy of this {unit.type} {where}"}

    def _assign(self, unit: Unit, start: int) -> None:
        i = self.policy.first_rule(unit.controller, unit.kind, unit.type, start)
        unit.rule, unit.twin, unit.checks = i, None, []
        action = self.policy.rule[i].action if i >= 0 else "keep"
        unit.state = {"delete": "pending", "convert": "convert", "keep": "keep"}[action]

    def run(self) -> None:
        for u in self.units:
            self._assign(u, 0)
        dirty: set[str | None] | None = None  # None: every genome
        waiting: dict[int, Unit] = {}  # failing units whose fallback is a conversion
        while True:
            # pass 1: check every pending unit against the state as the last round left it
            failing: list[Unit] = []
            for u in self.units:
                if u.state != "pending" or (dirty is not None and u.genome not in dirty):
                    continue
                rule = self.policy.rule[u.rule]
                u.twin = None
                u.checks = [self._check(u, r) for r in rule.require]
                if all(c["status"] != "unmet" for c in u.checks):
                    waiting.pop(id(u), None)
                elif rule.otherwise == "convert":
                    waiting[id(u)] = u
                else:
                    failing.append(u)
            # pass 2: fall back; conversions in a genome are settled before anything else there
            # falls back (a unit waiting to become a CRAM will provide its reads)
            waiting_genomes = {u.genome for u in waiting.values()}
            changed: set[str | None] = set()
            for u in failing:
                if u.genome in waiting_genomes:
                    continue
                changed.add(u.genome)
                otherwise = self.policy.rule[u.rule].otherwise
                if otherwise == "next":
                    self._assign(u, u.rule + 1)
                else:
                    u.state = "blocked" if otherwise == "block" else "keep"
            if not changed and waiting:
                order = [t.value for t in self.policy.convert_order]
                rank = {t: order.index(t) if t in order else len(order) for t in order}
                first = min((u.type for u in waiting.values()), key=lambda t: rank.get(t, 99))
                for key, u in list(waiting.items()):
                    if u.type == first:
                        u.state = "convert"
                        changed.add(u.genome)
                        del waiting[key]
            if not changed:
                return
            dirty = changed


def _action(unit: Unit, policy: Policy) -> dict[str, Any]:
    rule = policy.rule[unit.rule]
    if unit.state == "convert":
        ratio = policy.convert_ratio.get(FileType(unit.type), 1.0)
        new = round(unit.size * ratio)
        kind = "convert"
        freed = unit.size - new
        checks = [c for c in unit.checks if c["status"] != "unmet"] + [
            {
                "kind": "lossless",
                "status": "verify",
                "check": "verify",
                "text": f"the new CRAM must decode to exactly this {unit.type} before it goes",
            }
        ]
    else:
        kind, new, freed, checks = "delete", 0, unit.size, unit.checks
    status = "blocked" if unit.state == "blocked" else "ready"
    ident = hashlib.sha256(f"{kind}\0{unit.key}".encode()).hexdigest()[:16]
    act: dict[str, Any] = {
        "id": ident,
        "action": kind,
        "status": status,
        "genome": unit.genome,
        "controller": unit.controller,
        "type": unit.type,
        "unit": unit.key,
        "files": [dict(zip(FileFact._fields, f, strict=True)) for f in unit.files],
        "bytes": unit.size,
        "expected_bytes_freed": freed,
        "preconditions": checks,
        "rule": rule.note or f"rule {unit.rule + 1}",
    }
    if kind == "convert":
        act["convert"] = {"to": "cram", "expected_bytes": new}
    if status == "blocked":
        act["reason"] = "; ".join(str(c["text"]) for c in checks if c["status"] == "unmet")
    return act


def _summary(units: list[Unit], actions: list[dict[str, Any]], price: float) -> dict[str, Any]:
    def block(before: int, freed: int) -> dict[str, Any]:
        return {
            "bytes_before": before,
            "bytes_after": before - freed,
            "bytes_freed": freed,
            "pct_freed": round(100 * freed / before, 2) if before else 0.0,
            "cost_dkk_per_year_saved": round(freed / TB * price, 2),
        }

    before: dict[str, int] = defaultdict(int)
    kinds: dict[str, str] = {}
    for u in units:
        name = u.controller or "(unassigned)"
        before[name] += u.size
        kinds[name] = u.kind
    freed: dict[str, int] = defaultdict(int)
    blocked_bytes = 0
    for a in actions:
        name = str(a["controller"] or "(unassigned)")
        if a["status"] == "ready":
            freed[name] += int(a["expected_bytes_freed"])
        else:
            blocked_bytes += int(a["expected_bytes_freed"])
    total_before, total_freed = sum(before.values()), sum(freed.values())
    by_kind = {
        k: block(
            sum(b for n, b in before.items() if kinds[n] == k),
            sum(f for n, f in freed.items() if kinds[n] == k),
        )
        for k in ("region", "national")
    }
    count: dict[str, int] = defaultdict(int)
    for a in actions:
        count[f"{a['action']}_{a['status']}"] += 1
    return block(total_before, total_freed) | {
        "cost_dkk_per_year_before": round(total_before / TB * price, 2),
        "cost_dkk_per_year_after": round((total_before - total_freed) / TB * price, 2),
        "price_dkk_per_tb_year": price,
        "actions": dict(sorted(count.items())),
        "blocked_bytes": blocked_bytes,
        "regions": by_kind["region"],
        "national": by_kind["national"],
        "by_controller": {
            n: block(before[n], freed[n]) | {"kind": kinds[n]} for n in sorted(before)
        },
    }


def make_plan(
    catalog: Catalog, policy: Policy, *, price: float, controllers: list[str] | None = None
) -> dict[str, Any]:
    """The plan (a JSON-ready dict) of `policy` over the catalog's present files."""
    with paused_gc():
        return _make_plan(catalog, policy, price, controllers)


def _make_plan(
    catalog: Catalog, policy: Policy, price: float, controllers: list[str] | None
) -> dict[str, Any]:
    units = load_units(catalog)
    Planner(policy, units).run()
    scoped = [u for u in units if not controllers or u.controller in controllers]
    actions = [_action(u, policy) for u in scoped if u.state in ("pending", "convert", "blocked")]
    body = orjson.dumps(actions, option=orjson.OPT_SORT_KEYS)
    return {
        "format": PLAN_FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "policy": {
            "name": policy.name,
            "description": policy.description,
            "sha256": policy.digest,
        },
        "controllers": controllers or "all",
        "actions_sha256": hashlib.sha256(body).hexdigest(),
        "summary": _summary(scoped, actions, price),
        "actions": actions,
    }


def write_plan(plan: dict[str, Any], path: Path) -> None:
    """Write the plan JSON (indented for people, unless it is national-scale)."""
    big = len(plan["actions"]) > 10_000
    atomic_write_bytes(path, orjson.dumps(plan, option=0 if big else orjson.OPT_INDENT_2) + b"\n")
