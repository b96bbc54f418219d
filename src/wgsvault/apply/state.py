"""The state of each action of the plans applied so far, from the journal and the locks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from wgsvault.apply.locks import holder_dead
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import GenomeLock, JournalEntry


def status(catalog: Catalog, plan_sha: str | None = None) -> list[dict[str, Any]]:
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
    out: list[dict[str, Any]] = []
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
