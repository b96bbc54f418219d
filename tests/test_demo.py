"""The demo estate and the main job on it: the owners' scenario figures from scanned sizes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pysam
import pytest
from rich.console import Console

from wgsvault.demo.estate import GB, check_sparse, run_demo
from wgsvault.errors import InputError

from conftest import run_cli

OWNERS = {"A": 64.0, "B": 91.0, "C": 99.0}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("demo")
    return run_demo(home, fresh=False, console=Console(file=io.StringIO(), width=200))


def test_scenarios_match_the_owners_figures(demo) -> None:  # type: ignore[no-untyped-def]
    for name, figure in OWNERS.items():
        regions = demo.plans[name]["summary"]["regions"]
        assert abs(regions["pct_freed"] - figure) <= 2.0, (name, regions)
        # computed from scanned sizes: bytes_before is what the scan found in the regions
        assert regions["bytes_before"] > 6 * 300 * GB  # six simulated genomes
    a, b, c = (demo.plans[n]["summary"]["bytes_freed"] for n in "ABC")
    assert a < b < c


def test_demo_shows_conversion_and_blocked_actions(demo) -> None:  # type: ignore[no-untyped-def]
    b_actions = demo.plans["B"]["actions"]
    converts = [a for a in b_actions if a["action"] == "convert"]
    assert [a["type"] for a in converts] == ["bam"]  # the real genome without CRAM
    fq = next(a for a in b_actions if a["genome"] == converts[0]["genome"] and a["type"] == "fastq")
    assert fq["action"] == "delete" and fq["preconditions"][0]["check"] == "verify-covers"
    blocked = [a for a in demo.plans["C"]["actions"] if a["status"] == "blocked"]
    assert blocked and all("national database" in a["reason"] for a in blocked)
    assert (demo.home / "plan-C.json").exists()
    assert json.loads((demo.home / "plan-B.json").read_text())["policy"]["name"] == "B"


def test_demo_real_genomes_are_valid_files(demo) -> None:  # type: ignore[no-untyped-def]
    crams = sorted(demo.estate.glob("*/*/*.cram"))
    real = [c for c in crams if c.stat().st_blocks > 0]
    assert real, "the demo holds real, readable CRAMs"
    ref = demo.home / "reference" / "demo_ref.fa"
    with pysam.AlignmentFile(str(real[0]), reference_filename=str(ref)) as fh:
        assert sum(1 for _ in fh) == 2000


def test_demo_main_job_applies_plan_b(demo) -> None:  # type: ignore[no-untyped-def]
    from wgsvault import audit
    from wgsvault.catalog import open_catalog

    s = demo.applied
    assert s.done >= 8 and s.bytes_freed > 400 * GB  # run folders of every genome
    # the simulated genomes' BAM/FASTQ/gVCF are placeholders: their proofs (and the callable
    # regions a gVCF must leave before it goes) fail, and they stay
    assert len(s.failed) == 18 and all("not a" in why for why in s.failed.values())
    assert all(Path(a).exists() for a in demo.estate.glob("region-*/NGC0000[1-3]/*.g.vcf.gz"))
    real = sorted(demo.estate.glob("region-*/*/*.callable.bed.gz"))
    assert real and not [g for g in demo.estate.glob("region-*/*/*.g.vcf.gz") if g.stat().st_blocks]
    assert all(Path(a).exists() for a in demo.estate.glob("region-*/NGC0000[1-3]/*.bam"))
    real = demo.estate / "region-east" / "NGC00004"
    assert (real / "NGC00004.cram").exists() and not (real / "NGC00004.bam").exists()
    assert not (real / "NGC00004_R1.fastq.gz").exists()
    cat = open_catalog(demo.catalog_url)
    assert audit.verify(cat).ok
    cat.close()


def test_demo_counts_variant_frequencies(demo) -> None:  # type: ignore[no-untyped-def]
    """The frequency database the demo builds equals a count by hand of the real genomes' VCFs
    within the callable regions their gVCFs left behind (the gVCFs themselves are gone)."""
    from wgsvault.codec.callable_regions import read
    from wgsvault.variants.store import FrequencyStore

    expected: dict[tuple[int, str, str], list[int]] = {}
    genomes = sorted({p.parent.name for p in demo.estate.glob("region-*/*/*.callable.bed.gz")})
    assert len(genomes) == 2 and not list(demo.estate.glob(f"region-*/{genomes[0]}/*.g.vcf.gz"))
    for g in genomes:
        bed = next(demo.estate.glob(f"region-*/{g}/{g}.callable.bed.gz"))
        spans = list(read(bed))
        vcf = next(demo.estate.glob(f"*/{g}/{g}.vcf.gz"))
        with pysam.VariantFile(str(vcf)) as fh:
            for r in fh:
                if not any(c == r.chrom and s < r.pos <= e for c, s, e in spans):
                    continue
                gt = next(iter(r.samples.values()))["GT"]
                for i, alt in enumerate(r.alts or (), start=1):
                    dose = sum(1 for x in gt if x == i)
                    if dose:
                        cell = expected.setdefault((r.pos, r.ref, alt), [0, 0])
                        cell[0] += dose
                        cell[1] += dose == 2
    with FrequencyStore(demo.home / "variants") as fs:
        assert fs.genomes() == 2
        got = {(a.pos, a.ref, a.alt): [a.ac, a.nhomalt] for a in fs.region("chrS", 1, 40_000)}
        assert got == expected and len(got) > 50
        assert all(a.an <= 4 and a.ac <= a.an for a in fs.region("chrS", 1, 40_000))


def test_demo_rerun_is_incremental(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    again = run_demo(demo.home, fresh=False, console=Console(file=io.StringIO()))
    assert (again.scan.added, again.scan.changed, again.scan.vanished) == (0, 0, 0)
    assert again.applied.done == 0 and again.applied.bytes_freed == 0


def test_fresh_refuses_a_tree_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "estate").mkdir()
    (tmp_path / "estate" / "precious.cram").write_bytes(b"x")
    with pytest.raises(InputError, match="not a demo estate"):
        run_demo(tmp_path, fresh=True, console=Console(file=io.StringIO()))
    assert (tmp_path / "estate" / "precious.cram").exists()


def test_sparse_probe(tmp_path: Path) -> None:
    check_sparse(tmp_path)  # passes here; leaves nothing behind
    assert list(tmp_path.iterdir()) == []


def test_demo_command(tmp_path: Path) -> None:
    out = run_cli("demo", home=tmp_path).stdout
    assert "Scenarios on this estate vs the owners' figures" in out
    assert (tmp_path / "demo" / "catalog.sqlite").exists()
    assert "Variant frequencies" in out and "variants query chrS:" in out


def test_demo_command_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    out = run_cli("--catalog", pg_database, "demo", home=tmp_path).stdout
    assert f"--catalog {pg_database}" in out
    assert not (tmp_path / "demo" / "catalog.sqlite").exists()
    plan = json.loads((tmp_path / "demo" / "plan-B.json").read_text())
    assert abs(plan["summary"]["regions"]["pct_freed"] - OWNERS["B"]) <= 2.0
    assert (
        "audit log intact"
        in run_cli("--catalog", pg_database, "audit", "verify", home=tmp_path).stdout
    )
