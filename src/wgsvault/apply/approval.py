"""Approval: each data controller authorises its own actions of a plan, and nothing else runs.

Regions and the national centre are separate data controllers; each decides over its own data.
`wgsvault approve PLAN --controller region-x --by NAME --reference CASE-ID` records who approved,
when, under which case, and exactly which actions: the plan's digest (`actions_sha256`, over all
actions) and the digest of this controller's actions. `apply` recomputes both from the plan file
and refuses to run any action whose controller has not approved that exact content: an edited
plan, or a plan re-made after the approval, is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from wgsvault import audit
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Approval
from wgsvault.errors import AccessDenied, InputError

PLAN_FORMAT = "wgsvault-plan/1"


@dataclass(frozen=True)
class LoadedPlan:
    path: Path
    sha256: str  # actions_sha256, recomputed
    plan: dict[str, Any]

    @property
    def actions(self) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = self.plan["actions"]
        return actions

    def controllers(self) -> list[str]:
        return sorted({a["controller"] or "(unassigned)" for a in self.actions})


def expected_freed(actions: Iterable[Mapping[str, Any]]) -> int:
    """Bytes the plan says these actions free (their `expected_bytes_freed`)."""
    return sum(int(a.get("expected_bytes_freed") or 0) for a in actions)


def load_plan(path: Path) -> LoadedPlan:
    """Read a plan file and check that its actions are the ones its digest names."""
    path = Path(path)
    try:
        plan = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{path}: no such plan file") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable plan: {exc}") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InputError(f"{path}: not a wgsvault plan ({PLAN_FORMAT})")
    body = orjson.dumps(plan["actions"], option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(body).hexdigest()
    if digest != plan.get("actions_sha256"):
        raise AccessDenied(
            f"{path}: the plan's actions were changed after it was made "
            f"(digest {digest[:12]} != {str(plan.get('actions_sha256'))[:12]}); make a new plan"
        )
    return LoadedPlan(path, digest, plan)


def controller_digest(actions: list[dict[str, Any]], controller: str) -> tuple[str, list[str]]:
    mine = [a for a in actions if (a["controller"] or "(unassigned)") == controller]
    body = orjson.dumps(mine, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest(), [a["id"] for a in mine]


def approve(
    catalog: Catalog, plan_path: Path, *, controller: str, by: str, reference: str
) -> Approval:
    """Record `controller`'s approval of its actions in the plan (idempotent for the same plan)."""
    plan = load_plan(plan_path)
    if controller not in plan.controllers():
        raise InputError(
            f"{plan_path}: no actions for controller {controller!r} "
            f"(controllers in this plan: {', '.join(plan.controllers()) or 'none'})"
        )
    if not by.strip() or not reference.strip():
        raise InputError("approve: --by and --reference must name the person and the case")
    digest, ids = controller_digest(plan.actions, controller)
    mine = set(ids)
    with catalog.session() as s:
        old = s.scalars(
            select(Approval).where(
                Approval.plan_sha256 == plan.sha256, Approval.controller == controller
            )
        ).first()
        if old is not None:
            return old
        row = Approval(
            plan_sha256=plan.sha256,
            controller=controller,
            actions_sha256=digest,
            action_ids=json.dumps(ids),
            approved_by=by,
            reference=reference,
        )
        s.add(row)
        audit.append(
            s,
            actor=by,
            event="approve",
            controller=controller,
            detail={
                "plan": plan.sha256,
                "actions_sha256": digest,
                "actions": len(ids),
                "reference": reference,
                "bytes": expected_freed(a for a in plan.actions if a["id"] in mine),
            },
        )
    return row


def approved_controllers(catalog: Catalog, plan: LoadedPlan) -> dict[str, Approval]:
    """The controllers whose approval matches this plan's content exactly."""
    with catalog.session() as s:
        rows = s.scalars(select(Approval).where(Approval.plan_sha256 == plan.sha256)).all()
    out = {}
    for row in rows:
        digest, _ = controller_digest(plan.actions, row.controller)
        if digest == row.actions_sha256:
            out[row.controller] = row
    return out


def require_approval(catalog: Catalog, plan: LoadedPlan, controllers: list[str]) -> None:
    """Refuse unless every controller in `controllers` approved this exact plan."""
    ok = approved_controllers(catalog, plan)
    missing = [c for c in controllers if c not in ok]
    if missing:
        raise AccessDenied(
            f"{plan.path}: not approved by {', '.join(missing)}; each data controller must run "
            f"'wgsvault approve {plan.path} --controller NAME --by PERSON --reference CASE'"
        )
