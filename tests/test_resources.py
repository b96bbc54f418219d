"""What a genome's Slurm job asks for, the run-wide throttle, and the CLI's Slurm syntax.

No cluster needed: the model of apply/resources.py, its tiers, the split of `--max-running`
over arrays that run side by side, and `--mem`/`--time` as sbatch spells them.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import typer

from wgsvault.apply.resources import GB, Resources, estimate, seconds, tier_mem, tier_time
from wgsvault.apply.slurm import shares
from wgsvault.cli.apply import parse_mem, parse_time
from wgsvault.config import site_config


def genome(bam_gb: float, fastq_gb: float) -> list[dict[str, object]]:
    """Plan B's actions of one genome: convert its BAM, delete its FASTQ pair once covered."""
    bam = {"type": "bam", "size": int(bam_gb * GB)}
    bai = {"type": "index", "size": 9_000_000}
    r1 = {"type": "fastq", "size": int(fastq_gb * GB / 2)}
    return [
        {"action": "convert", "type": "bam", "files": [bam, bai]},
        {"action": "delete", "type": "fastq", "files": [r1, dict(r1)]},
    ]


def test_a_30x_genome_gets_the_documented_estimate() -> None:
    acts = genome(110, 90)
    # 60 s + 231 s/GB x 110 GB + 100 s/GB x 90 GB, measured on 2 cores
    assert seconds(acts) == pytest.approx(60 + 231 * 110 + 100 * 90)
    res = estimate(acts)
    # 3 x 9.6 h + 30 min = 29.3 h -> the 2-day tier; 2.5 GB + the pair order of 90 GB -> 4 GB
    assert res == Resources(cpus=2, mem_mb=4096, time_min=2880)
    assert estimate(acts, cpus=4).mem_mb == 8192  # 1 GB more per further CPU, then the tier


def test_what_the_operator_says_is_used_as_given() -> None:
    res = estimate(genome(110, 90), cpus=8, mem_mb=12_000, time_min=999)
    assert res == Resources(8, 12_000, 999)


def test_a_national_estate_falls_into_few_arrays() -> None:
    rnd = random.Random(7)
    sizes = [(rnd.uniform(60, 130), rnd.uniform(50, 110)) for _ in range(5000)]
    groups = {estimate(genome(b, f)) for b, f in sizes}
    assert 1 < len(groups) <= 4, groups  # not one array per genome


def test_tiers_round_up_never_down() -> None:
    assert [tier_mem(m) for m in (1, 1024, 1025, 3000, 4097)] == [1024, 1024, 2048, 4096, 8192]
    assert [tier_time(m) for m in (1, 60, 61, 700, 1441)] == [60, 60, 120, 720, 2880]
    assert tier_time(10081) == 20160  # past a week: whole weeks


def test_a_retry_doubles_what_ran_out() -> None:
    res = Resources(2, 4096, 240)
    assert res.retried("memory") == Resources(2, 8192, 240)
    assert res.retried("time") == Resources(2, 4096, 480)
    assert res.retried("node") == res
    assert res.retried("memory", max_mem_mb=6000).mem_mb == 6000


@pytest.mark.parametrize(
    ("sizes", "total", "expected"),
    [
        ([1000], 256, [256]),
        ([900, 100], 10, [9, 1]),
        ([500, 300, 200], 7, [4, 2, 1]),
        ([3, 1000], 256, [1, 255]),
        ([10, 1000], 1000, [10, 990]),  # largest remainder first
        ([4, 1000], 5000, [4, 1000]),  # never more than an array has
        ([5, 5, 5], 2, [1, 1, 1]),  # at least one each, even past the total
        ([2, 2], 100, [2, 2]),
    ],
)
def test_max_running_is_shared_by_side_by_side_arrays(
    sizes: list[int], total: int, expected: list[int]
) -> None:
    got = shares(sizes, total)
    assert got == expected
    assert sum(got) <= max(total, len(sizes))


@pytest.mark.parametrize(
    ("text", "mb"), [("8G", 8192), ("8000M", 8000), ("8000", 8000), ("1T", 1 << 20), ("8gb", 8192)]
)
def test_mem_syntax(text: str, mb: int) -> None:
    assert parse_mem(text) == mb


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("720", 720), ("12:00:00", 720), ("1-00:00:00", 1440), ("30:00", 30), ("30:01", 31),
     ("2-12", 3600), ("1-02:30", 1590)],
)  # fmt: skip
def test_time_syntax(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["lots", "0", "", "1-x"])
def test_bad_time_or_memory_is_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_time(text)
    with pytest.raises(typer.BadParameter):
        parse_mem(text if text != "0" else "0.5")


def test_the_site_configs_of_the_readme_are_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S)
              if "price_dkk" in b or "[slurm]" in b]  # fmt: skip
    assert len(blocks) == 2
    sites = []
    for block in blocks:
        (tmp_path / "config.toml").write_text(block)
        sites.append(site_config(tmp_path))
    slurm = next(c.slurm for c in sites if c.slurm.partition)
    assert slurm.max_running == 1500 and slurm.extra["mail-type"] == "FAIL"
