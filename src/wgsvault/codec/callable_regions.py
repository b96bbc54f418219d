"""Callable regions of a genome: where it is confidently called, kept after its gVCF goes.

A variant-only VCF cannot tell "homozygous reference here" from "not covered here"; the gVCF can,
and scenario A deletes it. Before it goes, its confident intervals are kept as a small BED:
reference blocks and variant records whose GQ >= `min_gq` (default 20) and whose depth >= `min_dp`
(default 10), the depth being MIN_DP where a record has it (GATK's reference blocks: the lowest
depth in the block) and DP otherwise. Records without GQ or depth are not callable; FILTER is not
read (gVCFs carry none). The intervals are the union of the confident records' spans (POS..END or
the REF span), so a confident deletion covers what it spans whatever overlapping records say.

The file (`<gvcf stem>.callable.bed.gz`, beside the gVCF) is the contract the variant engine and
anyone else read (`read()`):

    #wgsvault-callable v1 source=<gvcf name> sha256=<gvcf sha256> min_gq=20 min_dp=10 method=gvcf
    chr1<TAB>10000<TAB>10480

BGZF-compressed, tabix-indexed (`.tbi`), 0-based half-open, in the gVCF's contig order, adjacent and
overlapping intervals merged. Names are percent-encoded in the header (no spaces).

Reading: pysam's bcftools (`query -i EXPR -f '%CHROM %POS0 %END'`) runs as a child process and
Python merges its lines as they come. Measured with `bench/callable.py` on a 2.0 M-record
GATK-style gVCF (25 MB, 2 shared cores, one run): `extract` end to end (child start-up, merge,
sha256, BGZF, tabix) 0.56 M records/s (0.68 M/s on a quieter machine; the child and the merge
alone ~0.9 M/s); pysam.VariantFile in-process, filter only, 0.51 M/s (its per-sample FORMAT access
dominates, and it would hold the GIL); the peers, Debian's bcftools 1.16 with the same filter,
0.92 M/s (`view -i`) and 1.0 M/s (`query -i`, no merge, nothing written).
The gVCF's sha256 is computed in a thread meanwhile. Output goes to temporary names, then the index
and the BED land (fsutil.land): nothing half-written is ever in place.

The depth-only approximation for genomes whose gVCF is gone is `callable_depth.from_depth`;
it writes the same format with `method=depth`.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

import pysam

from wgsvault.codec import bcftools
from wgsvault.codec.htslib import child_env, versions
from wgsvault.errors import InputError
from wgsvault.fsutil import clear_leftovers, land
from wgsvault.inventory.digest import sha256_file

FORMAT = "wgsvault-callable v1"
SUFFIX = ".callable.bed.gz"
_GVCF_EXT = re.compile(r"\.(g\.vcf|gvcf|g\.bcf|vcf|bcf)(\.gz|\.bgz)?$", re.IGNORECASE)
_ALIGN_EXT = re.compile(r"\.(cram|bam)$", re.IGNORECASE)
_MAGIC = (b"\x1f\x8b", b"##fileformat", b"BCF")
_BATCH = 1 << 16  # intervals written to the BGZF stream at a time


@dataclass(frozen=True)
class CallableSummary:
    """What a callable-regions file holds and where it came from."""

    path: Path
    method: str  # gvcf | depth
    source: str  # file name of the gVCF (or CRAM) it was made from
    source_sha256: str
    thresholds: dict[str, int]  # min_gq/min_dp (gvcf), min_dp/min_mapq (depth)
    intervals: int
    bases: int
    sha256: str  # of the BED.gz itself
    bytes: int
    records: int | None = None  # confident source records read (gvcf), when extracted now
    seconds: float | None = None
    contigs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    def proof(self, source: Path) -> dict[str, Any]:
        """The proof document of this file (catalog Proof, kind `gvcf->callable` or
        `depth->callable`): thresholds, intervals, bases, and the sha256 of source and BED."""
        size = source.stat().st_size if source.exists() else None
        return {
            "kind": f"{self.method}->callable",
            "format": FORMAT,
            "method": self.method,
            "thresholds": self.thresholds,
            "intervals": self.intervals,
            "bases": self.bases,
            "contigs": len(self.contigs),
            "records": self.records,
            "seconds": self.seconds,
            "inputs": [{"path": str(source), "sha256": self.source_sha256, "bytes": size}],
            "output": {"path": str(self.path), "sha256": self.sha256, "bytes": self.bytes},
            "tools": versions(),
        }


def callable_path(source: Path) -> Path:
    """Where the callable regions of a gVCF (or CRAM/BAM) go: `<stem>.callable.bed.gz` beside it."""
    name = source.name
    stem = _GVCF_EXT.sub("", name)
    if stem == name:
        stem = _ALIGN_EXT.sub("", name)
    return source.parent / f"{stem}{SUFFIX}"


def check_gvcf(path: Path) -> None:
    """InputError unless `path` starts as a VCF/BCF does (before anything reads it whole)."""
    check_start(path, "gVCF", _MAGIC)


def check_start(path: Path, what: str, magics: tuple[bytes, ...]) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head.startswith(magics):
        raise InputError(f"{path}: not a {what} file")


def _formats(gvcf: Path) -> set[str]:
    """The FORMAT ids of a gVCF's header; refuses anything but one sample."""
    try:
        with pysam.VariantFile(str(gvcf)) as vf:
            formats = set(vf.header.formats.keys())
            samples = list(vf.header.samples)
    except (OSError, ValueError) as exc:
        raise InputError(f"{gvcf}: not a readable gVCF ({exc})") from None
    if len(samples) != 1:
        raise InputError(f"{gvcf}: holds {len(samples)} samples; a genome's gVCF holds one")
    return formats


def _expression(gvcf: Path, formats: set[str], min_gq: int, min_dp: int) -> str:
    if "GQ" not in formats:
        raise InputError(f"{gvcf}: no FORMAT/GQ in its header; confident calls cannot be told")
    gq = f"FMT/GQ>={min_gq}"
    if {"MIN_DP", "DP"} <= formats:
        low = f'FMT/MIN_DP!="." && FMT/MIN_DP>={min_dp}'
        depth = f'(({low}) || (FMT/MIN_DP="." && FMT/DP>={min_dp}))'
    elif "MIN_DP" in formats or "DP" in formats:
        depth = f"FMT/{'MIN_DP' if 'MIN_DP' in formats else 'DP'}>={min_dp}"
    else:
        raise InputError(f"{gvcf}: no FORMAT/DP or MIN_DP in its header; depth cannot be told")
    return f"{gq} && {depth}"


class _Writer:
    """Merges sorted intervals and writes them as BED lines to a binary stream."""

    def __init__(self, fh: IO[bytes], source: Path) -> None:
        self.fh, self.source = fh, source
        self.chrom: str | None = None
        self.start = self.end = -1
        self.done: set[str] = set()
        self.contigs: list[str] = []
        self.intervals = self.bases = 0
        self.buf: list[str] = []

    def add(self, chrom: str, start: int, end: int) -> None:
        if chrom == self.chrom:
            if start < self.start:
                raise InputError(
                    f"{self.source}: not sorted ({chrom}:{start + 1} after {self.start + 1})"
                )
            if start <= self.end:
                if end > self.end:
                    self.end = end
                return
            self._emit()
        else:
            if chrom in self.done:
                raise InputError(f"{self.source}: not sorted ({chrom} appears twice)")
            if self.chrom is not None:
                self._emit()
                self.done.add(self.chrom)
            self.chrom = chrom
            self.contigs.append(chrom)
        self.start, self.end = start, end

    def _emit(self) -> None:
        self.buf.append(f"{self.chrom}\t{self.start}\t{self.end}\n")
        self.intervals += 1
        self.bases += self.end - self.start
        if len(self.buf) >= _BATCH:
            self.flush()

    def close(self) -> None:
        if self.chrom is not None:
            self._emit()
        self.flush()

    def flush(self) -> None:
        if self.buf:
            self.fh.write("".join(self.buf).encode())
            self.buf = []


def _header(method: str, source: Path, sha: str, thresholds: dict[str, int]) -> str:
    values = " ".join(f"{k}={v}" for k, v in thresholds.items())
    return f"#{FORMAT} source={quote(source.name)} sha256={sha} {values} method={method}\n"


def write(
    out: Path,
    method: str,
    source: Path,
    sha: Future[str],
    thresholds: dict[str, int],
    intervals: Iterator[tuple[str, int, int]],
) -> tuple[CallableSummary, int, list[tuple[Path, Path]]]:
    """Write `intervals` (sorted) as the callable BED of `source` to temporary names beside
    `out`: (summary, intervals read, the moves that land them)."""
    clear_leftovers(out)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp, tbi = Path(tmp_name), Path(f"{tmp_name[:-4]}.tbi.tmp")
    n = 0
    try:
        # the header names the source's sha256, hashed while the records stream: the merged
        # intervals (small beside the source) are spooled and copied in behind the header
        with tempfile.SpooledTemporaryFile(max_size=64 << 20, dir=str(out.parent)) as body:
            w = _Writer(body, source)
            for chrom, start, end in intervals:
                w.add(chrom, start, end)
                n += 1
            w.close()
            body.seek(0)
            with pysam.BGZFile(tmp_name, "wb", index=None) as fh:
                fh.write(_header(method, source, sha.result(), thresholds).encode())
                while chunk := body.read(1 << 20):
                    fh.write(chunk)
        pysam.tabix_index(tmp_name, preset="bed", index=str(tbi), force=True)
        digest = sha256_file(tmp_name)
        size = tmp.stat().st_size
    except BaseException:
        tmp.unlink(missing_ok=True)
        tbi.unlink(missing_ok=True)
        raise
    summary = CallableSummary(
        out, method, source.name, sha.result(), thresholds, w.intervals, w.bases, digest, size,
        contigs=w.contigs,
    )  # fmt: skip
    return summary, n, [(tbi, Path(f"{out}.tbi")), (tmp, out)]


def _discard(moves: list[tuple[Path, Path]]) -> None:
    for tmp, _ in moves:
        tmp.unlink(missing_ok=True)


def _lines(proc: subprocess.Popen[bytes]) -> Iterator[tuple[str, int, int]]:
    assert proc.stdout is not None
    for line in proc.stdout:
        chrom, start, end = line.split(b"\t")
        yield chrom.decode(), int(start), int(end)


def _child_failed(err: str) -> str | None:
    """The error in a child's stderr, if any: htslib reports a truncated BGZF only as a warning,
    but a truncated gVCF must never pass for a complete one."""
    for ln in err.splitlines():
        if "[E::" in ln or "EOF marker is absent" in ln or "error" in ln.lower():
            return ln.strip()
    return None


def extract(gvcf: Path, out: Path, *, min_gq: int = 20, min_dp: int = 10) -> CallableSummary:
    """Write the callable regions of `gvcf` to `out` (BGZF BED + .tbi); what was written.

    A gVCF that is unreadable, truncated, unsorted, multi-sample or lacks GQ/depth raises
    InputError naming it, and nothing is written."""
    t0 = time.perf_counter()
    gvcf, out = Path(gvcf), Path(out)
    check_gvcf(gvcf)
    formats = _formats(gvcf)
    expr = _expression(gvcf, formats, min_gq, min_dp)
    args = bcftools.argv("query", "-i", expr, "-f", r"%CHROM\t%POS0\t%END\n", "-o", "/dev/stdout")
    thresholds = {"min_gq": min_gq, "min_dp": min_dp}
    moves: list[tuple[Path, Path]] = []
    with (
        ThreadPoolExecutor(1) as pool,
        tempfile.TemporaryFile() as err,
        subprocess.Popen(
            [*args, str(gvcf)], stdout=subprocess.PIPE, stderr=err, env=child_env(None)
        ) as proc,
    ):
        sha = pool.submit(sha256_file, str(gvcf))
        try:
            summary, n, moves = write(out, "gvcf", gvcf, sha, thresholds, _lines(proc))
        except ValueError as exc:  # a line bcftools should never have printed
            proc.kill()
            raise InputError(f"{gvcf}: unreadable records ({exc})") from None
        except BaseException:
            proc.kill()
            raise
        rc = proc.wait()
        err.seek(0)
        failure = _child_failed(err.read().decode(errors="replace"))
        if rc != 0 or failure is not None:
            _discard(moves)
            why = failure or f"bcftools query exited {rc}"
            raise InputError(f"{gvcf}: {why}; no callable regions written")
    land(moves)
    return replace(summary, records=n, seconds=round(time.perf_counter() - t0, 3))


def read_header(path: Path) -> dict[str, str]:
    """The header fields of a callable-regions file (`format`, `source`, `sha256`, `method`,
    thresholds); InputError if it is not one."""
    try:
        with gzip.open(path, "rt") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a callable-regions file ({exc})") from None
    if not first.startswith(f"#{FORMAT} "):
        raise InputError(f"{path}: not a callable-regions file (no '#{FORMAT}' header)")
    fields = dict(kv.split("=", 1) for kv in first[len(FORMAT) + 2 :].split() if "=" in kv)
    fields["source"] = unquote(fields.get("source", ""))
    return {"format": FORMAT, **fields}


def read(path: Path) -> Iterator[tuple[str, int, int]]:
    """The intervals of a callable-regions file: (contig, start, end), 0-based half-open, in
    file order (the gVCF's contig order, sorted, merged)."""
    read_header(path)
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            chrom, start, end = line.rstrip("\n").split("\t")[:3]
            yield chrom, int(start), int(end)


def summarise(path: Path) -> CallableSummary:
    """The summary of an existing callable-regions file (read in full)."""
    path = Path(path)
    head = read_header(path)
    intervals = bases = 0
    contigs: list[str] = []
    for chrom, start, end in read(path):
        intervals += 1
        bases += end - start
        if not contigs or contigs[-1] != chrom:
            contigs.append(chrom)
    thresholds = {k: int(v) for k, v in head.items() if k.startswith("min_") and v.isdigit()}
    return CallableSummary(
        path, head.get("method", "?"), head["source"], head.get("sha256", ""), thresholds,
        intervals, bases, sha256_file(str(path)), path.stat().st_size, contigs=contigs,
    )  # fmt: skip
