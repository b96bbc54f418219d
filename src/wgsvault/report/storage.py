"""Storage over time, for the steering group: what is stored, what applied plans freed, cost.

* `current`: present files per controller and type;
* `history`: the footprint recorded at the end of every scan (catalog `footprint_snapshot`; the
  last scan of a day stands for the day);
* `applied`: per finished apply run, the bytes its plan promised (`expected_bytes_freed` of the
  actions it took on) and the bytes it freed (recorded when a local run ends; summed from the
  journal for cluster runs);
* cost per year at the site's price (DKK per TB-year) and per genome stored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from sqlalchemy import distinct, func, select

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import ApplyRun, Controller, File, FootprintSnapshot, JournalEntry

UNASSIGNED = "(unassigned)"


def storage(catalog: Catalog, *, price: float, exact: bool = True) -> dict[str, Any]:
    """Footprint now and over time, bytes freed against promised, cost per year and genome.

    (No counts of people here: `exact` is accepted for a uniform signature.)"""
    ctrl = func.coalesce(Controller.name, UNASSIGNED)
    now_stmt = (
        select(ctrl, File.type, func.sum(File.n_files), func.sum(File.size))
        .select_from(File)
        .outerjoin(Controller, Controller.id == File.controller_id)
        .where(File.status == "present")
        .group_by(ctrl, File.type)
        .order_by(ctrl, File.type)
    )
    genomes_stmt = select(func.count(distinct(File.genome_id))).where(File.status == "present")
    hist_stmt = select(
        FootprintSnapshot.at,
        FootprintSnapshot.controller,
        FootprintSnapshot.type,
        FootprintSnapshot.bytes,
    ).order_by(FootprintSnapshot.at)
    runs_stmt = (
        select(ApplyRun.id, ApplyRun.finished_at, ApplyRun.promised_bytes, ApplyRun.freed_bytes)
        .where(ApplyRun.finished_at.is_not(None))
        .order_by(ApplyRun.id)
    )
    with catalog.engine.connect() as conn:
        current: list[dict[str, Any]] = [
            {"controller": c, "type": t, "files": int(n or 0), "bytes": int(b or 0)}
            for c, t, n, b in conn.execute(now_stmt)
        ]
        n_genomes = int(conn.scalar(genomes_stmt) or 0)
        day: dict[tuple[str, str, str], int] = {}
        for at, c, t, b in conn.execute(hist_stmt):
            day[(f"{at:%Y-%m-%d}", c, t)] = int(b)  # later scans of a day replace earlier ones
        runs = list(conn.execute(runs_stmt))
        freed: Counter[int] = Counter({r: int(f) for r, _, _, f in runs if f is not None})
        unknown = [r for r, _, _, f in runs if f is None]  # cluster runs: from their journal
        if unknown:
            freed_stmt = select(JournalEntry.run_id, JournalEntry.detail).where(
                JournalEntry.run_id.in_(unknown),
                JournalEntry.state == "done",
                JournalEntry.detail.like('%"bytes_freed"%'),
            )
            for run_id, detail in conn.execute(freed_stmt):
                freed[int(run_id or 0)] += int(json.loads(detail).get("bytes_freed") or 0)
        applied = [
            {
                "run": r,
                "finished_at": f"{at:%Y-%m-%d %H:%M}",
                "promised_bytes": p,
                "freed_bytes": freed[r],
            }
            for r, at, p, _ in runs
        ]
    total = sum(int(row["bytes"]) for row in current)
    cost = total / 1e12 * price
    return {
        "as_of": dt.date.today().isoformat(),
        "price_dkk_per_tb_year": price,
        "current": current,
        "total_bytes": total,
        "genomes": n_genomes,
        "history": [
            {"at": d, "controller": c, "type": t, "bytes": b} for (d, c, t), b in day.items()
        ],
        "applied": applied,
        "cost_per_year_dkk": round(cost),
        "cost_per_genome_dkk": round(cost / n_genomes, 2) if n_genomes else None,
    }
