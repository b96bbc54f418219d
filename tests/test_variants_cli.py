"""`wgsvault variants ...` as a user runs it: build (extracting callable regions first), status,
query (table and --json), release (the minimum batch), export read by Debian's bcftools,
add/remove, callable. The real CLI in a subprocess, on the default SQLite catalog of its home.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from wgsvault.catalog import open_catalog
from wgsvault.catalog.models import AuditEntry, File
from wgsvault.codec.callable_regions import callable_path
from wgsvault.inventory.digest import sha256_file
from wgsvault.variants.store import FrequencyStore

import variants_cohort as vc
from conftest import run_cli, unavailable

N_GENOMES = 12


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[vc.Cohort, Path]:
    """A vault home whose catalog knows a cohort without callable regions, built once."""
    work = tmp_path_factory.mktemp("cli")
    cohort = vc.make_cohort(work, N_GENOMES, 7, callable_regions=False)
    home = work / "home"
    run_cli("scan", str(cohort.root), home=home)
    run_cli("genomes", "import", str(cohort.manifest), home=home)
    run_cli("ref", "add", str(cohort.fasta), "--build", vc.BUILD, home=home)
    built = run_cli("variants", "build", "--jobs", "2", home=home)  # a pool of processes
    assert f"{N_GENOMES} genomes" in built.stdout
    return cohort, home


def _store(home: Path) -> Path:
    return home / "variants"


def _query_json(home: Path, *args: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(
        run_cli("variants", "query", *args, "--json", home=home).stdout
    )
    return result


def test_build_extracts_and_registers_callable_regions(site: tuple[vc.Cohort, Path]) -> None:
    cohort, home = site
    cat = open_catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    try:
        with cat.session() as s:
            beds = s.query(File).filter(File.type == "callable").all()
            events = [e.detail for e in s.query(AuditEntry).filter(AuditEntry.event == "variants")]
        assert len(beds) == N_GENOMES and all(Path(b.path).exists() for b in beds)
        assert json.loads(events[-1])["action"] == "build"
    finally:
        cat.close()
    status = json.loads(run_cli("variants", "status", "--json", home=home).stdout)
    assert status["genomes"] == N_GENOMES and status["assembly"] == "GRCh38"
    assert status["alleles"] > 0 and status["releases"] == []


def test_query_table_and_json(site: tuple[vc.Cohort, Path]) -> None:
    _, home = site
    with FrequencyStore(_store(home)) as fs:
        allele = fs.region("chrX", 2_781_480, 3_000_000)[0]  # outside PAR1: hemizygous males
    locus = f"X:{allele.pos}"  # X is chrX
    got = _query_json(home, locus, allele.ref, allele.alt)
    assert got == [allele.as_json()]
    assert set(got[0]) == {"chrom", "pos", "ref", "alt", "ac", "an", "af", "nhomalt", "nhemi",
                           "strata"}  # fmt: skip
    assert _query_json(home, locus, allele.ref, "N") == []
    region = _query_json(home, "--region", f"chrX:{allele.pos}-{allele.pos + 200}")
    assert region[0] == got[0] and all(r["pos"] <= allele.pos + 200 for r in region)

    table = run_cli("variants", "query", locus, allele.ref, allele.alt, home=home).stdout
    assert "total" in table and f"{allele.ac}" in table and "hemi" in table
    bad = run_cli("variants", "query", "chrX", "A", "G", home=home, check=False)
    assert bad.returncode == 2 and "CHR:POS REF ALT" in bad.stderr


def test_release_minimum_batch_and_immutability(site: tuple[vc.Cohort, Path]) -> None:
    cohort, home = site
    refused = run_cli("variants", "release", home=home, check=False)  # default minimum: 20
    assert refused.returncode == 2
    assert f"{N_GENOMES} new genomes since the start; a release needs at least 20" in (
        refused.stderr
    )
    assert not (_store(home) / "releases" / "0001").exists()

    done = run_cli("variants", "release", "--min-new-genomes", "10", home=home)
    assert "release 1:" in done.stdout
    rel = _store(home) / "releases" / "0001"
    manifest = json.loads((rel / "release.json").read_text())
    assert manifest["format"] == "wgsvault-variants-release/1" and manifest["genomes"] == N_GENOMES
    for name, digest in manifest["files"].items():
        assert sha256_file(str(rel / name)) == digest
        assert not os.stat(rel / name).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    again = run_cli("variants", "release", "--min-new-genomes", "1", home=home, check=False)
    assert again.returncode == 2 and "0 new genomes since release 1" in again.stderr

    gone = cohort.people[1].name
    with FrequencyStore(rel) as fs:
        first = fs.region("chr1", 1, 10**9)[0]
        assert fs.release() == 1 and fs.genomes() == N_GENOMES
    run_cli("variants", "remove", gone, home=home)
    after = _query_json(home, f"chr1:{first.pos}", first.ref, first.alt)
    released = _query_json(home, f"chr1:{first.pos}", first.ref, first.alt, "--release", "1")
    assert released == [first.as_json()]  # the release does not move
    assert not after or after[0]["an"] < first.an  # the live database did
    withdrawn = run_cli("variants", "release", "--min-new-genomes", "1", home=home, check=False)
    assert withdrawn.returncode == 2  # a withdrawal is not a new genome
    run_cli("variants", "add", gone, home=home)
    assert _query_json(home, f"chr1:{first.pos}", first.ref, first.alt) == [first.as_json()]


def test_export_is_read_by_bcftools(site: tuple[vc.Cohort, Path], tmp_path: Path) -> None:
    _, home = site
    bcftools = shutil.which("bcftools")
    if bcftools is None or not bcftools.startswith("/usr/"):
        unavailable("Debian bcftools is not installed (apt-get install bcftools)")
    out = tmp_path / "sites.vcf.gz"
    run_cli("variants", "export", "-o", str(out), home=home)
    assert Path(f"{out}.tbi").exists()
    fmt = "%CHROM\\t%POS\\t%REF\\t%ALT\\t%AC\\t%AN\\t%nhomalt\\t%nhemi\\t%AN_group_oncology\\n"
    text = subprocess.run(
        [bcftools, "query", "-f", fmt, str(out)], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split("\t") for line in text.splitlines()]
    with FrequencyStore(_store(home)) as fs:
        stored = [a for c in fs.contigs() for a in fs.region(c, 1, 10**9)]
        assert len(rows) == len(stored)
        for row, a in zip(rows, stored, strict=True):
            onc = a.strata.get("group:oncology")
            assert row == [a.chrom, str(a.pos), a.ref, a.alt, str(a.ac), str(a.an),
                           str(a.nhomalt), str(a.nhemi), str(onc.an) if onc else "."]  # fmt: skip
    some = stored[len(stored) // 2]
    region = subprocess.run(
        [bcftools, "view", "-H", "-r", f"{some.chrom}:{some.pos}", str(out)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"\t{some.pos}\t.\t{some.ref}\t" in region  # the tabix index answers
    head = subprocess.run(
        [bcftools, "view", "-h", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "##INFO=<ID=AC_group_rare_disease,Number=A,Type=Integer" in head
    assert "stratum group:rare disease" in head and "##reference=GRCh38-test" in head
    assert "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" in head  # sites only


def test_callable_command(site: tuple[vc.Cohort, Path]) -> None:
    cohort, home = site
    genome = cohort.people[0].name
    bed = callable_path(cohort.gvcfs[genome])
    before = sha256_file(str(bed))
    done = run_cli("variants", "callable", genome, "--min-gq", "30", home=home)
    assert str(bed) in done.stdout and sha256_file(str(bed)) != before  # stricter: re-extracted
    nothing = run_cli("variants", "callable", home=home, check=False)
    assert nothing.returncode == 2 and "GENOME or give --all" in nothing.stderr
    unknown = run_cli("variants", "callable", "NGC99999", home=home, check=False)
    assert unknown.returncode == 2 and "not in the catalog" in unknown.stderr


def test_executor_choice(site: tuple[vc.Cohort, Path]) -> None:
    _, home = site
    bad = run_cli("variants", "add", "NGC00000", "--executor", "cloud", home=home, check=False)
    assert bad.returncode == 2 and "use local or slurm" in bad.stderr
    if shutil.which("sbatch") is None:
        none = run_cli("variants", "build", "--executor", "slurm", home=home, check=False)
        assert none.returncode == 2 and "Slurm's commands" in none.stderr
