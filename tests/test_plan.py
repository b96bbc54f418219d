"""Planning: presets, preconditions, blocked actions, conversions, summary figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wgsvault.catalog import Catalog
from wgsvault.errors import PolicyError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.plan.planner import make_plan, write_plan
from wgsvault.plan.policy import load_policy

from conftest import make_files

GB = 10**9


def regional(
    gid: str,
    region: str = "region-east",
    *,
    cram: bool = True,
    bam: bool = True,
    vcf: bool = True,
    gvcf: bool = True,
    fastq: bool = True,
    bcl: bool = True,
) -> dict[str, int]:
    d = f"{region}/{gid}"
    tree: dict[str, int] = {}
    if bcl:
        tree |= {f"{d}/run/RunInfo.xml": 1, f"{d}/run/Data/L001_1.cbcl": 75 * GB}
    if fastq:
        tree |= {f"{d}/{gid}_R1.fastq.gz": 45 * GB, f"{d}/{gid}_R2.fastq.gz": 45 * GB}
    if bam:
        tree |= {f"{d}/{gid}.bam": 110 * GB, f"{d}/{gid}.bam.bai": 1000}
    if cram:
        tree |= {f"{d}/{gid}.cram": 27 * GB, f"{d}/{gid}.cram.crai": 100}
    if gvcf:
        tree |= {f"{d}/{gid}.g.vcf.gz": 30 * GB}
    if vcf:
        tree |= {f"{d}/{gid}.vcf.gz": 4 * GB}
    return tree


def national(gid: str, cram_size: int = 27 * GB) -> dict[str, int]:
    return {
        f"national/{gid}/{gid}.cram": cram_size,
        f"national/{gid}/{gid}.cram.crai": 100,
        f"national/{gid}/{gid}.vcf.gz": 4 * GB,
    }


def planned(
    catalog: Catalog, tmp_path: Path, tree: dict[str, int], policy: str, digest: bool = False
) -> dict:  # type: ignore[type-arg]
    root = tmp_path / "estate"
    make_files(root, tree)
    scan(catalog, [str(root)], DEFAULT_LAYOUT, digest=digest)
    return make_plan(catalog, load_policy(policy), price=1000.0)


def by_type(plan: dict) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    return {(a["controller"], a["type"]): a for a in plan["actions"]}


def test_scenario_a_deletes_bcl_bam_gvcf(catalog: Catalog, tmp_path: Path) -> None:
    plan = planned(catalog, tmp_path, regional("G1"), "A")
    acts = by_type(plan)
    assert set(acts) == {("region-east", t) for t in ("bcl", "bam", "gvcf")}
    assert all(a["action"] == "delete" and a["status"] == "ready" for a in acts.values())
    bam = acts["region-east", "bam"]
    assert len(bam["files"]) == 2  # the BAM goes with its index
    assert bam["expected_bytes_freed"] == 110 * GB + 1000
    assert bam["preconditions"][0]["status"] == "met"
    s = plan["summary"]
    assert s["bytes_freed"] == (75 + 110 + 30) * GB + 1 + 1000  # run folder, BAM + bai, gVCF
    assert s["bytes_before"] == 336 * GB + 1 + 1100
    assert s["bytes_after"] == s["bytes_before"] - s["bytes_freed"]
    assert s["by_controller"]["region-east"]["bytes_freed"] == s["bytes_freed"]
    assert 63.9 < s["pct_freed"] < 64.1


def test_blocked_actions_are_listed_with_reason(catalog: Catalog, tmp_path: Path) -> None:
    # no VCF: the gVCF is the only variant record and must stay; no reads at all: BCL stays
    tree = regional("G1", vcf=False, fastq=False, cram=False, bam=False)
    plan = planned(catalog, tmp_path, tree, "A")
    acts = by_type(plan)
    assert acts["region-east", "gvcf"]["status"] == "blocked"
    assert "no vcf of genome G1 stays at region-east" in acts["region-east", "gvcf"]["reason"]
    assert acts["region-east", "bcl"]["status"] == "blocked"
    assert "no bam/cram/fastq" in acts["region-east", "bcl"]["reason"]
    assert plan["summary"]["bytes_freed"] == 0
    assert plan["summary"]["blocked_bytes"] == (75 + 30) * GB + 1


def test_bam_without_cram_is_converted_and_then_covers_fastq(
    catalog: Catalog, tmp_path: Path
) -> None:
    plan = planned(catalog, tmp_path, regional("G1", cram=False), "B")
    acts = by_type(plan)
    bam, fq = acts["region-east", "bam"], acts["region-east", "fastq"]
    assert bam["action"] == "convert" and bam["status"] == "ready"
    assert bam["convert"]["expected_bytes"] == round((110 * GB + 1000) * 0.40)
    # the FASTQ is not converted to an unaligned CRAM beside the new aligned one: it is covered
    assert fq["action"] == "delete"
    assert fq["preconditions"][0]["check"] == "verify-covers"
    assert fq["preconditions"][0]["status"] == "verify"
    assert len(fq["files"]) == 2


def test_fastq_without_any_cram_becomes_unaligned_cram(catalog: Catalog, tmp_path: Path) -> None:
    plan = planned(catalog, tmp_path, regional("G1", cram=False, bam=False), "B")
    acts = by_type(plan)
    fq = acts["region-east", "fastq"]
    assert fq["action"] == "convert"
    assert fq["expected_bytes_freed"] == 90 * GB - round(90 * GB * 0.63)
    # the BCL may go: the reads stay, as the lossless CRAM
    assert acts["region-east", "bcl"]["status"] == "ready"


def test_scenario_c_needs_an_identical_national_copy(catalog: Catalog, tmp_path: Path) -> None:
    tree = regional("G1") | regional("G2") | regional("G3") | national("G1")
    tree |= national("G2", cram_size=26 * GB)  # the national copy of G2 differs
    plan = planned(catalog, tmp_path, tree, "C")
    crams = {a["genome"]: a for a in plan["actions"] if a["type"] == "cram"}
    assert crams["G1"]["status"] == "ready"
    assert crams["G1"]["preconditions"][0]["check"] == "sha256"
    assert crams["G1"]["preconditions"][0]["evidence"] == [
        str(tmp_path / "estate/national/G1/G1.cram")
    ]
    assert crams["G2"]["status"] == "blocked" and "no copy of this cram" in crams["G2"]["reason"]
    assert crams["G3"]["status"] == "blocked"
    # the regional BAM of G1 may go: the CRAM that stays is the national copy
    g1_bam = next(a for a in plan["actions"] if a["genome"] == "G1" and a["type"] == "bam")
    assert g1_bam["status"] == "ready"
    assert g1_bam["preconditions"][0]["evidence"][-1].endswith("national/G1/G1.cram")
    # the national database itself is not touched
    assert all(a["controller"] != "national" for a in plan["actions"])


def test_identical_uses_catalogued_digests(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "estate"
    for region, payload in (("region-east", b"A" * 100), ("national", b"A" * 100)):
        (root / region / "G1").mkdir(parents=True)
        (root / region / "G1/G1.cram").write_bytes(payload)
    (root / "region-west/G1").mkdir(parents=True)
    (root / "region-west/G1/G1.cram").write_bytes(b"B" * 100)  # same size, other bytes
    scan(catalog, [str(root)], DEFAULT_LAYOUT, digest=True)
    plan = make_plan(catalog, load_policy("C"), price=1.0)
    acts = {a["controller"]: a for a in plan["actions"]}
    assert acts["region-east"]["status"] == "ready"
    assert acts["region-east"]["preconditions"][0]["status"] == "met"
    assert acts["region-west"]["status"] == "blocked"
    assert "other content (sha256)" in acts["region-west"]["reason"]


def test_mutual_requirements_block_rather_than_lose_both(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text(
        """name = "cycle"
[[rule]]
types = ["vcf"]
action = "delete"
require = [{ kind = "exists", types = ["gvcf"] }]
[[rule]]
types = ["gvcf"]
action = "delete"
require = [{ kind = "exists", types = ["vcf"] }]
"""
    )
    make_files(tmp_path / "e", {"r/G1/G1.vcf.gz": 5, "r/G1/G1.g.vcf.gz": 9})
    scan(sqlite_catalog, [str(tmp_path / "e")], DEFAULT_LAYOUT)
    plan = make_plan(sqlite_catalog, load_policy(str(pol)), price=1.0)
    assert sorted(a["status"] for a in plan["actions"]) == ["blocked", "blocked"]
    assert plan["summary"]["bytes_freed"] == 0


def test_files_without_genome_are_blocked(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    make_files(tmp_path / "e", {"region-east/orphan.g.vcf.gz": 10})
    scan(sqlite_catalog, [str(tmp_path / "e")], DEFAULT_LAYOUT)
    plan = make_plan(sqlite_catalog, load_policy("A"), price=1.0)
    (act,) = plan["actions"]
    assert act["status"] == "blocked" and "no genome id" in act["reason"]


def test_plan_file_and_stable_ids(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    plan1 = planned(sqlite_catalog, tmp_path, regional("G1"), "B")
    plan2 = make_plan(sqlite_catalog, load_policy("B"), price=1000.0)
    assert [a["id"] for a in plan1["actions"]] == [a["id"] for a in plan2["actions"]]
    assert plan1["actions_sha256"] == plan2["actions_sha256"]
    assert len({a["id"] for a in plan1["actions"]}) == len(plan1["actions"])
    out = tmp_path / "plan.json"
    write_plan(plan1, out)
    loaded = json.loads(out.read_text())
    assert loaded["format"] == "wgsvault-plan/1"
    assert loaded["policy"]["name"] == "B" and len(loaded["policy"]["sha256"]) == 64
    assert loaded["summary"]["bytes_freed"] == plan1["summary"]["bytes_freed"]
    assert list(tmp_path.glob(".plan.json.*")) == []  # no temporary left behind


def test_controller_filter(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    planned(sqlite_catalog, tmp_path, regional("G1") | regional("G2", "region-west"), "A")
    plan = make_plan(sqlite_catalog, load_policy("A"), price=1.0, controllers=["region-west"])
    assert {a["controller"] for a in plan["actions"]} == {"region-west"}
    assert set(plan["summary"]["by_controller"]) == {"region-west"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "x"', "no rules"),
        ('name = "x"\n[[rule]]\ntypes = ["vcf"]\naction = "convert"', "only fastq and bam"),
        (
            'name = "x"\n[[rule]]\ntypes = ["bam"]\naction = "delete"\n'
            'require = [{ kind = "covered", types = ["cram"] }]',
            "fastq only",
        ),
        ('name = "x"\n[[rule]]\ntypes = ["bam"]\naction = "remove"', "rule.0.action"),
        ('name = "x"\nextends = "x.toml"\n[[rule]]\ntypes = ["bam"]\naction = "keep"', "loops"),
    ],
)
def test_bad_policy_is_one_clear_line(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "x.toml"
    f.write_text(body)
    with pytest.raises(PolicyError) as exc:
        load_policy(str(f))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_policy_name() -> None:
    with pytest.raises(PolicyError, match="presets: A, B, C"):
        load_policy("D")
