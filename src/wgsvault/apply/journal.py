"""The write-ahead journal of apply: every step of an action, before it runs and after.

A step's `started` row is committed before the step runs; its `done` row (with what it produced)
commits after, in the same transaction as the step's catalog change and audit entry, so the
catalog, the audit log and the journal never disagree. After a crash the last row of each step
tells a resumed run what was finished, and what must be completed from what the disk shows.
`faults.point` marks the places a test kills the process.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wgsvault import audit, faults
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import JournalEntry

#: one action of a plan file, as `plan` wrote it (JSON object)
Action = dict[str, Any]


def quarantine_step(path: Path) -> str:
    """The journal step of one file's quarantine move (paths are too long for a step name)."""
    return "quarantine:" + hashlib.sha1(str(path).encode()).hexdigest()[:16]


def where(a: Action, extra: str = "") -> str:
    """Which action a fault point is at: genome, unit name and action (stable across estates,
    unlike action ids, which derive from full paths), and optionally which file."""
    at = f"{a['genome']}/{PurePath(a['unit']).name}/{a['action']}"
    return f"{at}/{extra}" if extra else at


class Journal:
    """The journal (and audit entries) of one apply run's actions of one plan."""

    def __init__(self, catalog: Catalog, *, plan_sha: str, run_id: int, actor: str) -> None:
        self.cat, self.plan_sha, self.run_id, self.actor = catalog, plan_sha, run_id, actor

    def last(self, action_id: str, step: str) -> tuple[str, dict[str, Any]] | None:
        """(state, detail) of the newest row of `step` of an action, in any run of the plan."""
        with self.cat.session() as s:
            row = s.scalars(
                select(JournalEntry)
                .where(
                    JournalEntry.plan_sha256 == self.plan_sha,
                    JournalEntry.action_id == action_id,
                    JournalEntry.step == step,
                )
                .order_by(JournalEntry.id.desc())
                .limit(1)
            ).first()
            return (row.state, json.loads(row.detail)) if row else None

    def write(
        self,
        s: Session,
        a: Action,
        step: str,
        state: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Add a row in the caller's transaction (with the catalog change it records)."""
        s.add(
            JournalEntry(
                run_id=self.run_id,
                plan_sha256=self.plan_sha,
                action_id=a["id"],
                genome=a["genome"],
                step=step,
                state=state,
                detail=json.dumps(detail or {}, sort_keys=True),
            )
        )

    def started(self, a: Action, step: str, detail: dict[str, Any] | None = None) -> None:
        """Commit that `step` starts, before it runs."""
        with self.cat.session() as s:
            self.write(s, a, step, "started", detail)
        kind, _, _ = step.partition(":")  # quarantine steps: one per file
        extra = PurePath(str((detail or {}).get("path", ""))).name if kind != step else ""
        faults.point(f"{kind}:started", where(a, extra))

    def audit(self, s: Session, a: Action, event: str, detail: dict[str, Any]) -> None:
        """An audit entry of an action, in the caller's transaction."""
        audit.append(
            s,
            actor=self.actor,
            event=event,
            genome=a["genome"],
            controller=a["controller"],
            detail={"plan": self.plan_sha, "action": a["id"], **detail},
        )

    def end(self, a: Action, state: str, reason: str) -> None:
        """An action that failed or was skipped: journaled and audited with its reason."""
        with self.cat.session() as s:
            self.write(s, a, "action", state, {"reason": reason})
            self.audit(
                s,
                a,
                "verify" if state == "failed" else "refuse",
                {"outcome": state, "reason": reason},
            )

    def finish(self, a: Action, detail: dict[str, Any]) -> None:
        """An action that is done: every step of it finished."""
        with self.cat.session() as s:
            self.write(s, a, "action", "done", detail)
        faults.point("action:done", where(a))
