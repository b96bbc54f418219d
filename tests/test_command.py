"""The real `wgsvault` command in a subprocess, as a user runs it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from conftest import make_files, run_cli

GB = 10**9
TREE = {
    "region-east/G1/G1_R1.fastq.gz": 45 * GB,
    "region-east/G1/G1_R2.fastq.gz": 45 * GB,
    "region-east/G1/G1.bam": 110 * GB,
    "region-east/G1/G1.cram": 27 * GB,
    "region-east/G1/G1.vcf.gz": 4 * GB,
    "national/G1/G1.cram": 27 * GB,
    "national/G1/G1.vcf.gz": 4 * GB,
}


def test_scan_footprint_plan(tmp_path: Path) -> None:
    root, home = tmp_path / "estate", tmp_path / "home"
    make_files(root, TREE)
    out = run_cli("scan", str(root), home=home).stdout
    assert "7 files" in out and "added 7, changed 0, vanished 0" in out
    assert (home / "catalog.sqlite").exists()

    fp = json.loads(run_cli("footprint", "--json", home=home).stdout)
    assert fp["total"]["bytes"] == 262 * GB and fp["total"]["genomes"] == 1
    csv_out = run_cli("footprint", "--csv", home=home).stdout
    assert csv_out.splitlines()[0].startswith("controller,kind,type,files,bytes")
    png = tmp_path / "fp.png"
    run_cli("footprint", "--png", str(png), home=home)
    assert png.read_bytes().startswith(b"\x89PNG")

    plan_file = tmp_path / "plans/B.json"
    res = run_cli("plan", "--policy", "B", "--out", str(plan_file), "--json", home=home)
    summary = json.loads(res.stdout)["summary"]
    for key in ("bytes_before", "bytes_after", "bytes_freed"):
        assert isinstance(summary[key], int)
        assert isinstance(summary["by_controller"]["region-east"][key], int)
    assert summary["bytes_freed"] == 200 * GB  # BAM 110 + FASTQ 90 (covered by the CRAM)
    assert summary["by_controller"]["national"]["bytes_freed"] == 0
    plan = json.loads(plan_file.read_text())
    assert {a["type"] for a in plan["actions"]} == {"bam", "fastq"}

    table = run_cli("plan", "--policy", "C", home=home).stdout
    assert "region-east" in table and "100.0 %" in table


def test_genomes_import_and_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    m = tmp_path / "m.csv"
    m.write_text("genome_id,patient_group\nNGC1,rare disease\nNGC2,neonatal\n")
    assert "2 genomes added" in run_cli("genomes", "import", str(m), home=home).stdout
    listing = run_cli("genomes", "list", "--patient-group", "neonatal", home=home).stdout
    assert "NGC2" in listing and "NGC1" not in listing


def _fails(proc, code: int, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("wgsvault: error: ") for line in lines)
    for frag in fragments:
        assert frag in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_input_is_one_line_and_nonzero(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _fails(
        run_cli("scan", str(tmp_path / "nope"), home=home, check=False), 2, "nope: not a directory"
    )
    bad_layout = tmp_path / "layout.toml"
    bad_layout.write_text("paths = [")
    proc = run_cli("scan", str(tmp_path), "--layout", str(bad_layout), home=home, check=False)
    _fails(proc, 2, "layout.toml: invalid TOML")
    _fails(run_cli("plan", "--policy", "Z", home=home, check=False), 2, "Z: no such policy file")
    m = tmp_path / "m.csv"
    m.write_text("genome_id,sequencing_date\nA,2020-02-30\nB,x\n")
    proc = run_cli("genomes", "import", str(m), home=home, check=False)
    _fails(proc, 2, "m.csv:2: sequencing_date '2020-02-30'", "m.csv:3: sequencing_date 'x'")
    proc = run_cli(
        "--catalog", "postgresql://x@127.0.0.1:1/none", "footprint", home=home, check=False
    )
    _fails(proc, 3, "cannot open catalog")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_catalog_info_and_upgrade(tmp_path: Path) -> None:
    home = tmp_path / "home"
    from wgsvault.catalog.db import HEAD_REVISION

    assert f"revision {HEAD_REVISION} (upgraded)" in run_cli("catalog", "upgrade", home=home).stdout
    info = run_cli("catalog", "info", home=home).stdout
    assert "backend sqlite" in info and f"revision {HEAD_REVISION}" in info


def _plain(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def test_codec_commands_end_to_end(tmp_path: Path) -> None:
    """ref add -> convert bam/fastq -> verify -> verify-covers -> restore, as a user runs them."""
    from wgsvault.demo.synth import write_genome, write_reference

    home = tmp_path / "home"
    ref = write_reference(tmp_path / "ref.fa", seed=21)
    g = write_genome(tmp_path / "G", "G9", ref, seed=21, n_pairs=300)
    assert (
        "synth21: 1 sequences"
        in run_cli("ref", "add", str(ref), "--build", "synth21", home=home).stdout
    )
    assert "synth21" in run_cli("ref", "list", "--sequences", home=home).stdout
    assert "every reference sequence" in run_cli("ref", "check", str(g.cram), home=home).stdout

    al = tmp_path / "al.cram"
    out = run_cli("convert", "bam", str(g.bam), "--ref", "synth21", "-o", str(al), home=home).stdout
    assert "proven in" in out and al.exists()
    assert "proof ok" in run_cli("verify", str(g.bam), str(al), home=home).stdout

    fq = tmp_path / "fq.cram"
    run_cli("convert", "fastq", str(g.fastq_r1), str(g.fastq_r2), "-o", str(fq), home=home)
    run_cli("restore", str(fq), "--to", "fastq", "-o", str(tmp_path / "back"), home=home)
    shown = run_cli("audit", "show", "--event", "restore", "--json", home=home).stdout
    assert str(fq) in shown and "back_R1.fastq.gz" in shown  # every restore is accountable
    assert _plain(tmp_path / "back_R1.fastq.gz") == _plain(g.fastq_r1)

    sc = tmp_path / "G9.sidecar"
    cov = run_cli(
        "verify-covers",
        str(g.fastq_r1),
        str(g.fastq_r2),
        str(al),
        "--sidecar",
        str(sc),
        "--keep-order",
        home=home,
    ).stdout
    assert "covered" in cov and sc.exists()
    run_cli(
        "restore",
        str(al),
        "--to",
        "fastq",
        "--sidecar",
        str(sc),
        "--keep-order",
        "-o",
        str(tmp_path / "fromal"),
        home=home,
    )
    assert _plain(tmp_path / "fromal_R2.fastq.gz") == _plain(g.fastq_r2)

    # a damaged CRAM: verify fails with exit 4 and says why
    bad = tmp_path / "bad.cram"
    data = bytearray(al.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    res = run_cli("verify", str(g.bam), str(bad), home=home, check=False)
    assert res.returncode == 4 and "proof FAILED" in res.stdout


def test_codec_bad_input_is_one_line(tmp_path: Path) -> None:
    fq = tmp_path / "x_R1.fastq"
    fq.write_text("@r1 x\nacgt\n+\nFFF\n")
    res = run_cli(
        "convert", "fastq", str(fq), "-o", str(tmp_path / "x.cram"), home=tmp_path, check=False
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wgsvault: error: {fq}: line 4 (record 1)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_R1.fastq"]
    res = run_cli(
        "convert",
        "bam",
        str(fq),
        "--ref",
        "GRCh38",
        "-o",
        str(tmp_path / "y.cram"),
        home=tmp_path,
        check=False,
    )
    assert res.returncode == 2 and "not registered" in res.stderr
