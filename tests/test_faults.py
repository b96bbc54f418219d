"""Crash safety: apply is SIGKILLed at random points (50 in all) and resumed; nothing is lost.

Each case builds a small real estate (test_apply.build_estate), kills `wgsvault apply` five times
at random fault points (conversion, proof, catalog commits, quarantine moves: faults.py), then
lets it finish. Afterwards every original is on disk or in quarantine with its bytes, the catalog
agrees with the disk, the converted CRAM holds the BAM's records, and the FASTQ comes back from
CRAM + sidecar byte for byte.
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
from wgsvault.codec.covers_restore import restore_fastq
from wgsvault.codec.htslib import reference_env
from wgsvault.codec.verify import record_checksums

KILLS_PER_CASE = 5
CASES = 10  # 50 kills in all


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


def _points(tmp_path: Path) -> int:
    e = build_estate(tmp_path / "count", f"sqlite:///{tmp_path / 'count.sqlite'}")
    approve_all(e)
    log = tmp_path / "points.log"
    res = _apply(e, f"sqlite:///{tmp_path / 'count.sqlite'}", {"WGSVAULT_FAULT_LOG": str(log)})
    assert res.returncode == 0, res.stderr
    e.catalog.close()
    return len(log.read_text().splitlines())


@pytest.fixture(scope="module")
def n_points(tmp_path_factory: pytest.TempPathFactory) -> int:
    n = _points(tmp_path_factory.mktemp("points"))
    assert n > 20  # a full run passes many crash points
    return n


@pytest.mark.parametrize("case", range(CASES))
def test_kill_and_resume(
    case: int, n_points: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if case >= CASES - 2:  # the last cases on PostgreSQL, the production catalog
        url = request.getfixturevalue("pg_database")
    else:
        url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    e = build_estate(tmp_path, url)
    approve_all(e)
    rng = random.Random(1000 + case)
    killed = 0
    for _ in range(KILLS_PER_CASE):
        at = rng.randint(1, n_points)
        res = _apply(e, url, {"WGSVAULT_FAULT_AT": str(at)})
        if res.returncode == -9:
            killed += 1
            assert {r["state"] for r in status(e.catalog)} <= {"done", "interrupted"}
        else:  # the run ended before reaching that point (earlier runs did part of the work)
            assert res.returncode == 0, res.stderr
        check_intact(e, allow_leftovers=True)  # nothing lost even right after a kill
    assert killed >= 1
    res = _apply(e, url, {})
    assert res.returncode == 0, res.stdout + res.stderr
    check_intact(e)
    assert all(r["state"] == "done" for r in status(e.catalog)), [
        (r["action"], r["reason"]) for r in status(e.catalog) if r["state"] != "done"
    ]
    assert audit.verify(e.catalog).ok

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
