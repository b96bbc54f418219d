"""File types of the genome production flow, recognised by name.

Classification is by file name only, so a scan of millions of files costs one `stat` each and never
reads content. The rules mirror the conventions of Illumina, bwa/GATK and htslib:

* FASTQ: `.fastq`/`.fq`, plain or gzip/bgzip/bzip2/xz. The read of a pair is taken from an
  `R1`/`R2` token (`S1_L001_R1_001.fastq.gz`, `x.R2.fq`) or a trailing `_1`/`_2`; mates share a
  pair key (the name with that token blanked). A FASTQ without such a token is single-end.
* BAM, CRAM, VCF (`.vcf`, `.vcf.gz`, `.bcf`), gVCF (`.g.vcf.gz`, `.gvcf.gz`, ...).
* callable: `.callable.bed.gz`, the callable regions the vault keeps of a genome before its gVCF
  goes (codec.callable_regions); its `.tbi` is its index. No preset ever deletes one.
* Index files (`.bai`, `.crai`, `.tbi`, `.csi`) belong to the data file they index: both names of
  `x.bam.bai` and `x.bai` point at `x.bam`.
* BCL: a whole Illumina run folder counts as one unit (see `scan.py`); loose `.bcl`, `.cbcl`,
  `.locs`, `.filter` files outside a recognised run folder are classified one by one.
* other: known auxiliary files (checksums, logs, reports, references); unknown: everything else,
  reported by the scan so that operators can write a rule for it.
"""

from __future__ import annotations

import re
from enum import StrEnum


class FileType(StrEnum):
    BCL = "bcl"
    FASTQ = "fastq"
    BAM = "bam"
    CRAM = "cram"
    GVCF = "gvcf"
    VCF = "vcf"
    CALLABLE = "callable"
    INDEX = "index"
    OTHER = "other"
    UNKNOWN = "unknown"


#: Types whose files hold genome data (everything but indexes and auxiliary files).
DATA_TYPES = (
    FileType.BCL,
    FileType.FASTQ,
    FileType.BAM,
    FileType.CRAM,
    FileType.GVCF,
    FileType.VCF,
    FileType.CALLABLE,
)

_COMPRESSION = (".gz", ".bgz", ".bz2", ".xz", ".zst")
_FASTQ = (".fastq", ".fq")
_GVCF = (".g.vcf", ".gvcf", ".g.vcf.gz", ".gvcf.gz", ".g.vcf.bgz", ".g.bcf")
_VCF = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
_CALLABLE = (".callable.bed.gz",)  # codec.callable_regions.SUFFIX
_BCL = (".bcl", ".bcl.gz", ".bcl.bgzf", ".cbcl", ".locs", ".clocs", ".filter")
_OTHER = (
    ".wgsvault-sidecar",  # what verify-covers keeps beside an aligned CRAM (codec.covers)
    ".md5",
    ".sha1",
    ".sha256",
    ".sha512",
    ".txt",
    ".log",
    ".html",
    ".json",
    ".csv",
    ".tsv",
    ".xml",
    ".pdf",
    ".yaml",
    ".yml",
    ".bed",
    ".fa",
    ".fasta",
    ".fa.gz",
    ".fasta.gz",
    ".fai",
    ".dict",
    ".gzi",
    ".interval_list",
    ".metrics",
    ".stats",
    ".png",
)
#: index suffix -> suffixes of the data file it may belong to (`x.bai` -> `x.bam`)
_INDEX = {".bai": (".bam",), ".crai": (".cram",), ".tbi": (), ".csi": (".bam",)}

_READ_TOKEN = re.compile(r"(?<=[._-])R([12])(?=[._-]|$)")
_READ_TRAILING = re.compile(r"(?<=[._-])([12])$")


def classify(name: str) -> FileType:
    """The file type of a file name (no path, no I/O)."""
    low = name.lower()
    bare = low
    for comp in _COMPRESSION:
        if bare.endswith(comp):
            bare = bare[: -len(comp)]
            break
    if bare.endswith(_FASTQ):
        return FileType.FASTQ
    if low.endswith(".bam"):
        return FileType.BAM
    if low.endswith(".cram"):
        return FileType.CRAM
    if low.endswith(_GVCF):
        return FileType.GVCF
    if low.endswith(_VCF):
        return FileType.VCF
    if low.endswith(_CALLABLE):
        return FileType.CALLABLE
    if low.endswith(tuple(_INDEX)):
        return FileType.INDEX
    if low.endswith(_BCL):
        return FileType.BCL
    if low.endswith(_OTHER):
        return FileType.OTHER
    return FileType.UNKNOWN


def fastq_read(name: str) -> tuple[int | None, str]:
    """(read number 1/2 or None for single-end, pair key shared by both mates) of a FASTQ name."""
    stem = name
    low = name.lower()
    for comp in _COMPRESSION:
        if low.endswith(comp):
            stem, low = stem[: -len(comp)], low[: -len(comp)]
            break
    for ext in _FASTQ:
        if low.endswith(ext):
            stem = stem[: -len(ext)]
            break
    tokens = list(_READ_TOKEN.finditer(stem))
    match = tokens[-1] if tokens else None  # the last R1/R2 token names the read
    if match is None:
        match = _READ_TRAILING.search(stem)
    if match is None:
        return None, name
    # the pair key is the name with the read number written as {1,2}: `x_R{1,2}_001.fastq.gz`
    key = name[: match.start(1)] + "{1,2}" + name[match.end(1) :]
    return int(match.group(1)), key


def index_targets(name: str) -> list[str]:
    """Names of the data files an index file may belong to, most specific first."""
    low = name.lower()
    for ext, data_exts in _INDEX.items():
        if low.endswith(ext):
            base = name[: -len(ext)]
            if classify(base) is not FileType.UNKNOWN:
                return [base]
            return [base + d for d in data_exts] + [base]
    return []
