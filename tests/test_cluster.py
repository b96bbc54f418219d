"""The national run on a real Slurm cluster (Debian's slurmctld, slurmd, slurmdbd and munge).

`.ci/run` starts a private single-node cluster (`.ci/slurm start`) and exports `SLURM_CONF`;
without one, the `slurm` fixture starts its own where Slurm is installed, and is unavailable
(skipped, or a failure in CI) where it is not. Every run here is a real sbatch submission on a
PostgreSQL catalog, followed to its end by `status` as an operator would: submit and return,
follow, cancel half a run and resume it, kill slurmd while genomes convert, out-of-memory and
time-limit retries with more, eight workers appending to one audit chain, and a disk that fills
up for real (a small tmpfs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_apply import Estate, approve_all, build_estate, check_intact

from wgsvault import audit
from wgsvault.apply import apply_plan, cluster
from wgsvault.apply.resources import Resources
from wgsvault.apply.slurm import SlurmOptions, submit_array
from wgsvault.catalog import open_catalog
from wgsvault.catalog.models import ApplyRun, ClusterJob
from wgsvault.demo.synth import write_genome
from wgsvault.errors import InputError
from wgsvault.variants.store import FrequencyStore

import variants_cohort as vc
from conftest import run_cli, unavailable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "slurm"


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cluster's directory (SLURM_CONF set): the one CI started, or one of our own."""
    if os.environ.get("SLURM_CONF") and subprocess.run(
        ["scontrol", "ping"], capture_output=True, timeout=20, check=False
    ).returncode == 0:
        yield Path(os.environ["SLURM_CONF"]).parent
        return
    if not shutil.which("slurmctld") or not shutil.which("sbatch"):
        unavailable("Slurm is not installed (apt-get install slurmctld slurmd slurmdbd munge)")
    d = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "WGSVAULT_SLURM_DIR": str(d), "WGSVAULT_SLURM_PORT": "26817"}
    res = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True,
                         timeout=300, check=False)  # fmt: skip
    if res.returncode != 0:
        unavailable(f"a Slurm cluster could not be started here: {res.stderr.strip()[-300:]}")
    os.environ["SLURM_CONF"] = str(d / "slurm.conf")
    try:
        yield d
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, timeout=120, check=False)
        os.environ.pop("SLURM_CONF", None)


def _options(e: Estate, **kw: Any) -> cluster.ClusterOptions:
    return cluster.ClusterOptions(
        folder=str(e.home / "slurm"), refs_root=str(e.registry.root), **kw
    )


def _follow(e: Estate, run_id: int, limit: float = 600, step: float = 1.0) -> cluster.RunStatus:
    t0 = time.monotonic()
    while True:
        st = cluster.status(e.catalog, run_id)
        if st.status in ("done", "incomplete", "cancelled"):
            return st
        assert time.monotonic() - t0 < limit, f"run {run_id} still {st.status}: {st.counts()}"
        time.sleep(step)


def _more_genomes(n: int) -> Callable[[Path, Path], None]:
    def add(root: Path, ref: Path) -> None:
        for i in range(3, 3 + n):
            g = write_genome(root / "region-east" / f"G{i}", f"G{i}", ref, seed=i, n_pairs=200)
            for p in (g.cram, Path(f"{g.cram}.crai")):
                p.unlink()

    return add


def _history(arrays: list[str]) -> str:
    """Every state the jobs of these arrays went through (requeued ones included)."""
    return subprocess.run(["sacct", "-D", "-n", "-X", "-P", "-o", "JobID,State", "-j",
                           ",".join(arrays)], capture_output=True, text=True, check=True).stdout


def _jobs(e: Estate, run_id: int) -> list[ClusterJob]:
    with e.catalog.session() as s:
        return list(s.scalars(select(ClusterJob).where(ClusterJob.run_id == run_id)
                              .order_by(ClusterJob.id)))  # fmt: skip


def test_submit_returns_and_the_run_completes(
    slurm: Path, tmp_path: Path, pg_database: str
) -> None:
    e = build_estate(tmp_path, pg_database)
    approve_all(e)
    res = run_cli("--catalog", pg_database, "apply", str(e.plan), "--executor", "slurm",
                  "--max-running", "4", home=e.home)  # fmt: skip
    assert "cluster run 1: 2 genomes submitted to Slurm" in res.stdout
    first = cluster.status(e.catalog, 1)
    assert first.status == "submitted"  # the command returned while the jobs run
    st = _follow(e, 1)
    assert st.status == "done" and {g.state for g in st.genomes} == {"done"}
    assert all(Path(g.log).exists() for g in st.genomes)  # each job's log, linked from status
    check_intact(e)
    assert audit.verify(e.catalog).ok
    shown = run_cli("--catalog", pg_database, "status", "--run", "1", home=e.home).stdout
    assert "Cluster run 1: done" in shown and "COMPLETED" in shown and "genomes/h" in shown
    listed = run_cli("--catalog", pg_database, "status", "--runs", home=e.home).stdout
    assert re.search(r"\b1\s.*\bdone\b", listed), listed  # the run list names the run
    with e.catalog.session() as s:  # what the run freed, for the storage report
        run = s.get_one(ApplyRun, 1)
        assert run.promised_bytes and run.freed_bytes and run.freed_bytes > 0
    e.catalog.close()


def test_sqlite_catalog_is_refused_for_slurm(tmp_path: Path) -> None:
    e = build_estate(tmp_path, f"sqlite:///{tmp_path / 'home' / 'catalog.sqlite'}")
    approve_all(e)
    with pytest.raises(InputError, match="needs a PostgreSQL catalog"):
        cluster.submit_plan(e.catalog, e.plan, actor="t", options=_options(e))
    e.catalog.close()
    res = run_cli("apply", str(e.plan), "--executor", "slurm", home=e.home, check=False)
    assert res.returncode == 2 and "needs a PostgreSQL catalog" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cancel_half_a_run_and_resume_it(slurm: Path, tmp_path: Path, pg_database: str) -> None:
    e = build_estate(tmp_path, pg_database, prepare=_more_genomes(4))  # G1 .. G6
    approve_all(e)
    # arrays of two tasks, chained; one genome at a time over all of them (the run's throttle)
    run_id = cluster.submit_plan(e.catalog, e.plan, actor="t",
                                 options=_options(e, max_running=1, chunk=2))  # fmt: skip
    arrays = sorted({j.job_id.split("_")[0] for j in _jobs(e, run_id) if "_" in j.job_id})
    assert len(arrays) == 3
    t0 = time.monotonic()
    while True:
        st = cluster.status(e.catalog, run_id)
        assert sum(g.state == "running" for g in st.genomes) <= 1, st.counts()
        if sum(g.state == "done" for g in st.genomes) >= 2:
            break
        assert time.monotonic() - t0 < 300
        time.sleep(0.3)
    assert cluster.cancel(e.catalog, run_id, actor="t") >= 1
    st = cluster.status(e.catalog, run_id)
    assert st.status == "cancelled" and "cancelled" in st.counts()
    check_intact(e, allow_leftovers=True)  # whatever the cancel interrupted: nothing lost
    cluster.resume(e.catalog, run_id)
    st = _follow(e, run_id)
    assert st.status == "done", st.counts()
    check_intact(e)
    assert audit.verify(e.catalog).ok
    e.catalog.close()


def test_node_failure_loses_no_genome(slurm: Path, tmp_path: Path, pg_database: str) -> None:
    e = build_estate(tmp_path, pg_database, prepare=_more_genomes(2))
    approve_all(e)
    env = {**os.environ, "WGSVAULT_SLURM_DIR": str(slurm)}
    # a slow conversion, so that slurmd dies while genomes convert
    os.environ["WGSVAULT_FAULT"] = "sleep60once@convert:started"  # not again once requeued
    try:
        run_id = cluster.submit_plan(e.catalog, e.plan, actor="t",
                                     options=_options(e, max_running=4))  # fmt: skip
    finally:
        del os.environ["WGSVAULT_FAULT"]
    t0 = time.monotonic()
    while not any(g.state == "running" for g in cluster.status(e.catalog, run_id).genomes):
        assert time.monotonic() - t0 < 120
        time.sleep(0.3)
    subprocess.run([str(SCRIPT), "kill-slurmd"], env=env, check=True, timeout=60)
    arrays = sorted({j.job_id.split("_")[0] for j in _jobs(e, run_id)})
    try:
        t0 = time.monotonic()
        while "NODE_FAIL" not in _history(arrays):  # no answer for SlurmdTimeout (10 s): the
            assert time.monotonic() - t0 < 120, _history(arrays)  # node is down, its jobs fail
            time.sleep(1)
    finally:
        subprocess.run([str(SCRIPT), "start-slurmd"], env=env, check=True, timeout=120)
    st = _follow(e, run_id)
    assert st.status == "done", [(g.genome, g.state, g.slurm_state, g.reason) for g in st.genomes]
    check_intact(e)
    assert audit.verify(e.catalog).ok
    e.catalog.close()


def test_out_of_memory_is_retried_with_more(slurm: Path, tmp_path: Path, pg_database: str) -> None:
    e = build_estate(tmp_path, pg_database)
    approve_all(e)
    opts = _options(e, mem_mb=40, max_attempts=5)  # far too little for Python and samtools
    # Slurm polls memory every second here (no cgroups): G2's conversion pauses 3 s so that a
    # poll sees it, however fast the job would otherwise be
    os.environ["WGSVAULT_FAULT"] = "sleep3@convert:started"
    try:
        run_id = cluster.submit_plan(e.catalog, e.plan, actor="t", options=opts)
    finally:
        del os.environ["WGSVAULT_FAULT"]
    st = _follow(e, run_id)
    assert st.status == "done", [(g.genome, g.state, g.reason) for g in st.genomes]
    jobs = [j for j in _jobs(e, run_id) if j.genome == "G2"]
    assert len(jobs) > 1 and [j.mem_mb for j in jobs] == [40 * 2**i for i in range(len(jobs))]
    assert jobs[0].state in ("FAILED", "OUT_OF_MEMORY", "CANCELLED")
    check_intact(e)
    e.catalog.close()


def test_time_limit_is_retried_with_more(slurm: Path, tmp_path: Path, pg_database: str) -> None:
    e = build_estate(tmp_path, pg_database)
    approve_all(e)
    # G2's conversion waits 100 s: past a 1-minute limit (Slurm enforces it within ~30 s), not a
    # 2-minute one
    os.environ["WGSVAULT_FAULT"] = "sleep100@convert:started"
    try:
        run_id = cluster.submit_plan(e.catalog, e.plan, actor="t",
                                     options=_options(e, time_min=1, max_attempts=3))  # fmt: skip
    finally:
        del os.environ["WGSVAULT_FAULT"]
    st = _follow(e, run_id, limit=900, step=3)
    assert st.status == "done", [(g.genome, g.state, g.reason) for g in st.genomes]
    jobs = [j for j in _jobs(e, run_id) if j.genome == "G2"]
    assert [(j.state, j.time_min) for j in jobs][:2] == [("TIMEOUT", 1), ("COMPLETED", 2)]
    check_intact(e)
    e.catalog.close()


def test_eight_workers_keep_one_audit_chain(slurm: Path, tmp_path: Path, pg_database: str) -> None:
    url = pg_database

    def append_many(worker: int) -> int:
        cat = open_catalog(url, migrate=False)
        try:
            for i in range(40):
                audit.record(cat, actor=f"worker{worker}", event="access",
                             detail={"worker": worker, "i": i})  # fmt: skip
        finally:
            cat.close()
        return worker

    open_catalog(url).close()  # migrated once, before the workers
    opts = SlurmOptions(folder=tmp_path / "jobs", max_running=8)
    jobs = submit_array(append_many, list(range(8)), Resources(1, 512, 10), opts, name="chain")
    cat = open_catalog(url)
    t0 = time.monotonic()
    from wgsvault.apply import slurm as sl

    while True:
        states = sl.states([j for j, _ in jobs])
        if len(states) == 8 and all(s.state in sl.FINAL for s in states.values()):
            break
        assert time.monotonic() - t0 < 300
        time.sleep(1)
    assert {s.state for s in states.values()} == {"COMPLETED"}
    check = audit.verify(cat)
    assert check.ok and check.entries == 8 * 40, check.problems
    actors = {e["actor"] for e in audit.show(cat)}
    assert actors == {f"worker{w}" for w in range(8)}
    cat.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MB tmpfs to hold an estate (mounting needs root; unavailable where it is refused)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    if res.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_for_real(small_disk: Path, tmp_path: Path) -> None:
    """The estate on a small filesystem that fills up: the conversion stops cleanly, nothing of
    the original or the catalog is harmed, and once space is free apply completes."""
    e = build_estate(small_disk, f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    approve_all(e)
    st = os.statvfs(small_disk)
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:  # leave 16 kB: less than G2's CRAM needs
        fh.write(b"\0" * (st.f_bavail * st.f_frsize - 16 * 1024))
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="t")
    assert any("No space left on device" in why for why in s.failed.values()), s.failed
    g2 = e.root / "region-east" / "G2"
    assert (g2 / "G2.bam").exists() and not (g2 / "G2.cram").exists()
    assert not list(g2.glob(".G2.cram*"))  # no half-written CRAM left behind
    check_intact(e)
    filler.unlink()
    s = apply_plan(e.catalog, e.plan, registry=e.registry, actor="t")
    assert s.failed == {} and (g2 / "G2.cram").exists() and not (g2 / "G2.bam").exists()
    check_intact(e)
    e.catalog.close()


def test_variants_build_runs_as_slurm_jobs(slurm: Path, tmp_path: Path) -> None:
    """`variants build --executor slurm`: the callable-region extractions, the per-genome counts
    and the per-contig aggregations run as Slurm job arrays (their logs are there, sacct knows
    them), and the database equals the one the local pool builds from the same catalog."""
    (tmp_path / "work").mkdir()
    cohort = vc.make_cohort(tmp_path / "work", 6, 11, callable_regions=False)
    home = tmp_path / "home"
    run_cli("scan", str(cohort.root), home=home)
    run_cli("genomes", "import", str(cohort.manifest), home=home)
    run_cli("ref", "add", str(cohort.fasta), "--build", vc.BUILD, home=home)
    on_slurm, local = tmp_path / "on-slurm", tmp_path / "local"
    res = run_cli("variants", "build", "--executor", "slurm", "--store", str(on_slurm), home=home)
    assert "6 genomes" in res.stdout
    logs = sorted((home / "slurm").glob("*_log.out"))
    arrays = {p.name.split("_")[0] for p in logs}
    assert len(arrays) == 3, logs  # extract, count, aggregate: one array each
    states = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", ",".join(arrays)],
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert states and set(states) == {"COMPLETED"}, states
    run_cli("variants", "build", "--store", str(local), "--no-extract", home=home)

    def table(store: Path) -> list[object]:
        with FrequencyStore(store) as fs:
            return [a.as_json() for c in fs.contigs() for a in fs.region(c, 1, 10**9)]

    slurm_rows = table(on_slurm)
    assert slurm_rows and slurm_rows == table(local)
