"""Scan: classification on disk, odd files, incremental rescans, digests; both catalog backends."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File, Genome, Scan, ScanIssue
from wgsvault.errors import InputError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan

from conftest import make_files, run_cli

GENOME = {
    "region-east/G1/run1/RunInfo.xml": 100,
    "region-east/G1/run1/Data/Intensities/BaseCalls/L001/C1.1/s_1_1101.bcl.gz": 1000,
    "region-east/G1/run1/Data/Intensities/BaseCalls/L001/C2.1/s_1_1101.bcl.gz": 1000,
    "region-east/G1/G1_R1.fastq.gz": 500,
    "region-east/G1/G1_R2.fastq.gz": 600,
    "region-east/G1/G1.bam": 700,
    "region-east/G1/G1.bam.bai": 7,
    "region-east/G1/G1.cram": 300,
    "region-east/G1/G1.cram.crai": 3,
    "region-east/G1/G1.g.vcf.gz": 200,
    "region-east/G1/G1.g.vcf.gz.tbi": 2,
    "region-east/G1/G1.vcf.gz": 40,
    "region-east/G1/G1.vcf.gz.tbi": 1,
    "region-east/G1/qc.html": 10,
    "national/G1/G1.cram": 300,
}


def files(cat: Catalog) -> dict[str, tuple]:  # type: ignore[type-arg]
    with cat.session() as s:
        rows = s.execute(
            select(
                File.path,
                File.type,
                File.unit,
                File.read_no,
                Controller.name,
                Genome.name,
                File.size,
                File.n_files,
                File.status,
            )
            .outerjoin(Controller, Controller.id == File.controller_id)
            .outerjoin(Genome, Genome.id == File.genome_id)
        )
        return {r[0]: tuple(r[1:]) for r in rows}


def test_classifies_each_type(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "estate"
    make_files(root, GENOME)
    res = scan(catalog, [str(root)], DEFAULT_LAYOUT)
    got = files(catalog)
    d = f"{root}/region-east/G1"
    assert got[f"{d}/run1"] == ("bcl", f"{d}/run1", None, "region-east", "G1", 2100, 3, "present")
    assert got[f"{d}/G1_R1.fastq.gz"][:3] == ("fastq", f"{d}/G1_R{{1,2}}.fastq.gz", 1)
    assert got[f"{d}/G1_R2.fastq.gz"][:3] == ("fastq", f"{d}/G1_R{{1,2}}.fastq.gz", 2)
    assert got[f"{d}/G1.bam"][:2] == ("bam", f"{d}/G1.bam")
    assert got[f"{d}/G1.bam.bai"][:2] == ("index", f"{d}/G1.bam")
    assert got[f"{d}/G1.cram.crai"][:2] == ("index", f"{d}/G1.cram")
    assert got[f"{d}/G1.g.vcf.gz"][0] == "gvcf"
    assert got[f"{d}/G1.g.vcf.gz.tbi"][:2] == ("index", f"{d}/G1.g.vcf.gz")
    assert got[f"{d}/G1.vcf.gz.tbi"][:2] == ("index", f"{d}/G1.vcf.gz")
    assert got[f"{d}/qc.html"][0] == "other"
    assert got[f"{root}/national/G1/G1.cram"][3:5] == ("national", "G1")
    assert len(got) == 13  # the run folder's 3 files are one unit
    assert res.files_seen == 15 and res.added == 13 and res.issues == []
    with catalog.session() as s:
        kinds = dict(s.execute(select(Controller.name, Controller.kind)).all())
    assert kinds == {"region-east": "region", "national": "national"}


def test_odd_files_are_reported_not_fatal(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "estate"
    make_files(
        root,
        {
            "region-east/G2/G2_R1.fastq.gz": 5,
            "region-east/G2/core.12345": 9,
            "region-east/G2/G2.bam.bai": 1,
            "loose.bam": 4,
        },
    )
    (root / "region-east/G2/gone.cram").symlink_to(root / "nowhere.cram")
    (root / "region-east/G2/alias.fastq.gz").symlink_to(root / "region-east/G2/G2_R1.fastq.gz")
    os.mkfifo(root / "region-east/G2/pipe")
    res = scan(catalog, [str(root)], DEFAULT_LAYOUT)
    kinds = {(os.path.basename(i.path), i.kind) for i in res.issues}
    assert kinds == {
        ("G2_R1.fastq.gz", "fastq_without_mate"),
        ("core.12345", "unknown_type"),
        ("G2.bam.bai", "orphan_index"),
        ("loose.bam", "unmapped"),
        ("gone.cram", "broken_link"),
        ("alias.fastq.gz", "symlink"),
        ("pipe", "special"),
    }
    got = files(catalog)
    assert got[f"{root}/region-east/G2/core.12345"][0] == "unknown"
    assert got[f"{root}/loose.bam"][3:5] == (None, None)
    assert f"{root}/region-east/G2/gone.cram" not in got  # links are never catalogued
    with catalog.session() as s:
        saved = s.scalars(select(ScanIssue.kind).where(ScanIssue.scan_id == res.scan_id)).all()
        assert sorted(saved) == sorted(k for _, k in kinds)


def test_incremental_rescan(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "estate"
    make_files(root, GENOME)
    scan(catalog, [str(root)], DEFAULT_LAYOUT)
    again = scan(catalog, [str(root)], DEFAULT_LAYOUT)
    assert (again.added, again.changed, again.vanished) == (0, 0, 0)

    bam = root / "region-east/G1/G1.bam"
    with open(bam, "ab") as fh:
        fh.write(b"more")
    (root / "region-east/G1/G1.vcf.gz").unlink()
    make_files(
        root,
        {
            "region-west/G3/G3.cram": 77,
            "region-east/G1/run1/Data/Intensities/BaseCalls/L001/C3.1/s_1_1101.bcl.gz": 5,
        },
    )
    res = scan(catalog, [str(root)], DEFAULT_LAYOUT)
    # changed: the BAM, the run folder, and the VCF's index (now an orphan: its own unit)
    assert (res.added, res.changed, res.vanished) == (1, 3, 1)
    got = files(catalog)
    assert got[str(bam)][5] == 704
    assert got[f"{root}/region-east/G1/run1"][5:7] == (2105, 4)
    assert got[f"{root}/region-east/G1/G1.vcf.gz"][-1] == "vanished"
    assert got[f"{root}/region-east/G1/G1.vcf.gz.tbi"][1] == f"{root}/region-east/G1/G1.vcf.gz.tbi"
    # a vanished file that comes back is present again
    make_files(root, {"region-east/G1/G1.vcf.gz": 40})
    back = scan(catalog, [str(root)], DEFAULT_LAYOUT)
    assert (back.added, back.changed, back.vanished) == (0, 2, 0)
    assert files(catalog)[f"{root}/region-east/G1/G1.vcf.gz"][-1] == "present"
    with catalog.session() as s:
        assert s.scalar(select(Scan.status).where(Scan.id == back.scan_id)) == "done"


def test_digest_computed_on_demand_and_reused(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "estate"
    (root / "national/G1").mkdir(parents=True)
    cram = root / "national/G1/G1.cram"
    cram.write_bytes(b"CRAM" * 1000)
    res = scan(catalog, [str(root)], DEFAULT_LAYOUT)
    assert res.digested == 0
    res = scan(catalog, [str(root)], DEFAULT_LAYOUT, digest=True)
    assert res.digested == 1
    with catalog.session() as s:
        sha = s.scalar(select(File.sha256))
    assert sha == hashlib.sha256(b"CRAM" * 1000).hexdigest()
    assert scan(catalog, [str(root)], DEFAULT_LAYOUT, digest=True).digested == 0  # reused
    cram.write_bytes(b"CRAM" * 1001)
    os.utime(cram, ns=(1, 10**18))
    res = scan(catalog, [str(root)], DEFAULT_LAYOUT, digest=True)
    assert (res.changed, res.digested) == (1, 1)
    with catalog.session() as s:
        assert s.scalar(select(File.sha256)) == hashlib.sha256(b"CRAM" * 1001).hexdigest()


def test_run_folder_digest_is_content_manifest(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root, payload in ((a, b"x"), (b, b"y")):
        run = root / "region-east/G1/run"
        (run / "Data").mkdir(parents=True)
        (run / "RunInfo.xml").write_text("<RunInfo/>")
        (run / "Data/s_1_1101.bcl.gz").write_bytes(payload)
    scan(sqlite_catalog, [str(a), str(b)], DEFAULT_LAYOUT, digest=True)
    with sqlite_catalog.session() as s:
        shas = s.scalars(select(File.sha256).where(File.type == "bcl")).all()
    assert len(shas) == 2 and shas[0] != shas[1] and all(len(x) == 64 for x in shas)


def test_roots_are_checked(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        scan(sqlite_catalog, [str(tmp_path / "missing")], DEFAULT_LAYOUT)
    (tmp_path / "estate/region-east").mkdir(parents=True)
    scan(sqlite_catalog, [str(tmp_path / "estate")], DEFAULT_LAYOUT)
    with pytest.raises(InputError, match="overlaps"):
        scan(sqlite_catalog, [str(tmp_path / "estate/region-east")], DEFAULT_LAYOUT)


def test_parallel_walk_equals_serial(tmp_path: Path) -> None:
    from wgsvault.catalog import open_catalog

    root = tmp_path / "estate"
    tree = {}
    for g in range(80):  # above the pool threshold of second-level directories
        tree.update({f"region-{g % 2}/G{g}/G{g}.cram": g, f"region-{g % 2}/G{g}/G{g}.cram.crai": 1})
    make_files(root, tree)
    results = []
    for jobs in (1, 2):
        cat = open_catalog(f"sqlite:///{tmp_path / f'c{jobs}.sqlite'}")
        res = scan(cat, [str(root)], DEFAULT_LAYOUT, jobs=jobs)
        results.append((res.files_seen, res.bytes_seen, sorted(files(cat).items())))
        cat.close()
    assert results[0] == results[1]
    assert results[0][0] == 160


def test_unreadable_paths_reported_and_not_marked_vanished(tmp_path: Path) -> None:
    """Real permission denials (root's bypass capabilities are dropped for the scan)."""
    root = tmp_path / "estate"
    make_files(
        root,
        {
            "region-east/G1/G1.cram": 5,
            "region-east/G1/G1_R1.fastq.gz": 3,
            "region-east/G1/G1_R2.fastq.gz": 3,
            "region-east/G2/G2.cram": 4,
        },
    )
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o777)
    run_cli("scan", str(root), home=home, unprivileged=True)
    os.chmod(root / "region-east/G1/G1_R1.fastq.gz", 0)
    os.chmod(root / "region-east/G2", 0)
    try:
        proc = run_cli("scan", str(root), home=home, unprivileged=True)
    finally:
        os.chmod(root / "region-east/G2", 0o755)
    assert "unreadable: " in proc.stdout
    assert f"{root}/region-east/G1/G1_R1.fastq.gz no read permission" in proc.stdout
    assert f"{root}/region-east/G2 Permission denied" in proc.stdout
    assert "vanished 0" in proc.stdout  # G2.cram was not seen, but is not declared gone
