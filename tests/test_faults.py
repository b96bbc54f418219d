"""Crash safety: apply is SIGKILLed at 50 named points and resumed; nothing is lost.

A counting run of `wgsvault apply` on a small real estate (test_apply.build_estate) lists, in
order, every fault point it passes (faults.py): each step of each action, journaled before and
after, including every step inside a conversion (encoded, proven, landed, registered) and a proof
(started, each check, the cover proven with its sidecar written but not registered, done), the
catalog commits and the quarantine moves. Each case then kills `wgsvault apply` at five of those
points, in their order, resuming after each: a point after the last kill is always reached again
(the resumed run redoes or completes what the disk shows and goes on), so every kill happens and
the test asserts it. The points are chosen so that every case kills at least twice inside a
conversion or a proof, and over all cases every such point is hit. After each kill every original
is on disk or in quarantine with its bytes; at the end every proven CRAM is registered, the CRAM
holds the BAM's records and the FASTQ comes back from CRAM + sidecar byte for byte.
"""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from test_apply import Estate, approve_all, build_estate, check_intact

from wgsvault import audit
from wgsvault.apply import status
from wgsvault.catalog.models import Proof
from wgsvault.codec.covers_restore import restore_fastq
from wgsvault.codec.htslib import reference_env
from wgsvault.codec.verify import record_checksums
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan

KILLS_PER_CASE = 5
CASES = 10  # 50 kills in all
#: points inside a conversion (and the cover proof, which writes a sidecar), and inside a proof;
#: the rest are catalog commits, quarantine moves and action ends
CONVERSION = ("convert:", "covers:", "sidecar:")
PROOF = ("prove:",)
INSIDE = CONVERSION + PROOF


def _apply(e: Estate, url: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WGSVAULT_")}
    env.update(WGSVAULT_HOME=str(e.home), WGSVAULT_CATALOG=url, **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "wgsvault", "apply", str(e.plan), "--actor", "fault-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every fault point of a full run, in order (each once)."""
    d = tmp_path_factory.mktemp("points")
    url = f"sqlite:///{d / 'count.sqlite'}"
    e = build_estate(d / "count", url)
    approve_all(e)
    log = d / "points.log"
    res = _apply(e, url, {"WGSVAULT_FAULT_LOG": str(log)})
    assert res.returncode == 0, res.stderr
    e.catalog.close()
    seen = list(dict.fromkeys(log.read_text().splitlines()))
    assert len(seen) > 40 and sum(p.startswith(INSIDE) for p in seen) >= 15
    return seen


def kill_plan(points: list[str], case: int) -> list[str]:
    """Five points in run order: one inside a conversion and one inside a proof (each in turn,
    so that the cases together hit every conversion step), three others drawn at random."""
    conversion = [p for p in points if p.startswith(CONVERSION)]
    proof = [p for p in points if p.startswith(PROOF)]
    rng = random.Random(1000 + case)
    chosen = {conversion[case % len(conversion)], proof[case % len(proof)]}
    while len(chosen) < KILLS_PER_CASE:
        chosen.add(rng.choice(points))
    return sorted(chosen, key=points.index)


def test_kill_plans_hit_every_conversion_step(points: list[str]) -> None:
    plans = [kill_plan(points, c) for c in range(CASES)]
    assert [len(p) for p in plans] == [KILLS_PER_CASE] * CASES  # 50 kills
    assert sum(p.startswith(INSIDE) for plan in plans for p in plan) >= 2 * CASES
    conversion = {p for p in points if p.startswith(CONVERSION)}
    assert len(conversion) <= CASES and conversion <= {p for plan in plans for p in plan}
    for step in ("convert:encoded", "convert:landed", "covers:proven"):  # the recovery paths
        assert any(p.startswith(step) for plan in plans for p in plan)


@pytest.mark.parametrize("case", range(CASES))
def test_kill_and_resume(
    case: int, points: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if case >= CASES - 2:  # the last cases on PostgreSQL, the production catalog
        url = request.getfixturevalue("pg_database")
    else:
        url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    e = build_estate(tmp_path, url)
    approve_all(e)
    plan = kill_plan(points, case)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"kill-and-resume case {case}: SIGKILL at {', '.join(plan)}")
    for at in plan:
        res = _apply(e, url, {"WGSVAULT_FAULT_AT": at})
        assert res.returncode == -9, f"not killed at {at}: {res.returncode} {res.stderr[-300:]}"
        assert {r["state"] for r in status(e.catalog)} <= {"done", "interrupted"}
        check_intact(e, allow_leftovers=True)  # nothing lost even right after a kill
    res = _apply(e, url, {})
    assert res.returncode == 0, res.stdout + res.stderr
    check_intact(e)
    assert all(r["state"] == "done" for r in status(e.catalog)), [
        (r["action"], r["reason"]) for r in status(e.catalog) if r["state"] != "done"
    ]
    assert audit.verify(e.catalog).ok
    rescan = scan(e.catalog, [str(e.root)], DEFAULT_LAYOUT)  # the catalog agrees with the disk
    assert (rescan.added, rescan.changed, rescan.vanished) == (0, 0, 0)
    with e.catalog.session() as s:  # the converted CRAM is registered with its proof
        assert s.query(Proof).filter(Proof.path.like("%G2.cram")).count() >= 1

    g1, g2 = e.root / "region-east" / "G1", e.root / "region-east" / "G2"
    q = e.root / ".wgsvault-quarantine"
    (bam,) = q.rglob("G2.bam")
    cache = e.registry.cache
    assert record_checksums(g2 / "G2.cram", cache=cache) == record_checksums(bam, cache=cache)
    (orig_r1,) = q.rglob("G1_R1.fastq.gz")
    with reference_env(cache):
        r1, _ = restore_fastq(
            g1 / "G1.cram", g1 / "G1.fastq.wgsvault-sidecar", tmp_path / "back", keep_order=True
        )
    assert gzip.decompress(r1.read_bytes()) == gzip.decompress(orig_r1.read_bytes())
    e.catalog.close()
