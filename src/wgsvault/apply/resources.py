"""What one genome's work asks of a cluster node: CPUs, memory and a time limit.

The work of a genome is dominated by what it converts and proves, so the estimate is linear in
the bytes of its data files, by kind, fitted on the bench corpus (`../shared/data/bench`, 2x150
bp HiSeq X reads, `bench/apply.py` and `bench/codec.py` on a 2-core machine):

* BAM converted to CRAM 3.1 `small` and proven (record checksums of both, in parallel):
  231 s per GB of BAM on 2 cores (3.63 s for 15.7 MB);
* FASTQ proven to be covered by the aligned CRAM, with the sidecar keeping the order (one pass
  over the FASTQ and one over the CRAM, plus an out-of-core sort when the order is not
  canonical): 100 s per GB of gzipped FASTQ (2.07 s for 20.6 MB);
* FASTQ converted to an unaligned CRAM and proven: 280 s per GB of gzipped FASTQ (5.75 s);
* a gVCF whose callable regions are extracted before it goes (pysam's bcftools `query` in a
  child, merged in Python, the gVCF's sha256 alongside; `bench/callable.py`): 115 s per GB of
  gVCF (3.5 s for a 31 MB, 2.4 M-record GATK-style gVCF);
* anything else that goes (BCL, gVCF, copies) is renamed, not read, except copies proven by
  sha256: 3 s per GB;
* plus 60 s of start-up (Python, the catalog, the lock).

For a 30X genome (BAM 110 GB, FASTQ.gz 90 GB, gVCF 30 GB) that is 25,400 + 9,000 + 3,450 s: about
10.5 hours on 2 cores. The time limit is three times the estimate plus 30 minutes, so that a slower
node or a busy filesystem does not kill a job that is making progress; memory is 2 GB plus what the
out-of-core sorts and the order of a FASTQ pair hold (512 MB per sort thread, and 8 bytes per read
pair: 1.6 GB for the 90 GB of FASTQ.gz of a 30X genome, ~450 bytes a pair), and 1 GB per further
CPU. The model's memory and time are then rounded up to a few tiers (memory to a power of two GB,
time to 1, 2, 4, 8, 12 h, 1, 2, 3, 5, 7 days, then whole weeks), so that the genomes of a national
run fall into a handful of job arrays instead of one array each. Every figure can be overridden
(`--cpus`, `--mem`, `--time`: then used as given), and a retry after Slurm reports the job ran out
of memory or time doubles what ran out (`retried`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

GB = 10**9
SECONDS_PER_GB = {
    ("convert", "bam"): 231.0,
    ("convert", "fastq"): 280.0,
    ("delete", "fastq"): 100.0,  # verify-covers
}
SECONDS_PER_GB_COPY = 3.0  # sha256 of an identical copy
SECONDS_PER_GB_CALLABLE = 115.0  # a gVCF's callable regions extracted (apply/callable.py)
STARTUP_S = 60.0
#: bytes of order held by a keep-order cover proof per GB of FASTQ.gz (8 bytes a pair of ~450)
ORDER_BYTES_PER_GB_FASTQ = 8 * GB // 450
#: time limits (minutes) the model's estimate is rounded up to
TIME_TIERS_MIN = [60, 120, 240, 480, 720, 1440, 2880, 4320, 7200, 10080]


def tier_mem(mb: int) -> int:
    """`mb` rounded up to a power-of-two number of GB (1, 2, 4, 8, ... GB)."""
    gb = 1
    while gb * 1024 < mb:
        gb *= 2
    return gb * 1024


def tier_time(minutes: int) -> int:
    """`minutes` rounded up to the next time tier (whole weeks past the last)."""
    for t in TIME_TIERS_MIN:
        if minutes <= t:
            return t
    week = TIME_TIERS_MIN[-1]
    return -(-minutes // week) * week


@dataclass(frozen=True)
class Resources:
    cpus: int
    mem_mb: int
    time_min: int

    def retried(self, ran_out_of: str, max_mem_mb: int | None = None) -> Resources:
        """What the next attempt gets after running out of `memory` or `time` (doubled)."""
        if ran_out_of == "memory":
            mem = self.mem_mb * 2 if max_mem_mb is None else min(self.mem_mb * 2, max_mem_mb)
            return replace(self, mem_mb=mem)
        if ran_out_of == "time":
            return replace(self, time_min=self.time_min * 2)
        return self

    def sbatch(self) -> str:
        return f"--cpus-per-task={self.cpus} --mem={self.mem_mb}M --time={self.time_min}"


def seconds(actions: list[dict[str, Any]], cpus: int = 2) -> float:
    """Estimated wall seconds of a genome's actions on `cpus` cores (the model above)."""
    total = STARTUP_S
    for a in actions:
        nbytes = sum(int(f["size"]) for f in a["files"] if f["type"] != "index")
        rate = SECONDS_PER_GB.get((a["action"], a["type"]))
        if rate is None:
            checks = {c.get("check") for c in a.get("preconditions", [])}
            rate = SECONDS_PER_GB_COPY if "sha256" in checks else 0.0
            rate += SECONDS_PER_GB_CALLABLE if "callable" in checks else 0.0
        total += rate * nbytes / GB
    return total * 2 / max(1, min(cpus, 2))  # measured on 2 cores; more do not help a genome


def estimate(
    actions: list[dict[str, Any]],
    *,
    cpus: int | None = None,
    mem_mb: int | None = None,
    time_min: int | None = None,
) -> Resources:
    """The resources of one genome's job: the model above, or what the operator said."""
    c = cpus or 2
    fastq = sum(int(f["size"]) for a in actions for f in a["files"] if f["type"] == "fastq")
    mem = 2048 + 512 + (c - 2) * 1024 + math.ceil(fastq / GB * ORDER_BYTES_PER_GB_FASTQ / 2**20)
    minutes = math.ceil(3 * seconds(actions, c) / 60) + 30
    return Resources(c, mem_mb or tier_mem(mem), time_min or tier_time(minutes))
