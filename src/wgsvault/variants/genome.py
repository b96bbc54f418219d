"""One genome's contribution: its normalised calls counted where it is callable, with ploidy.

A per-genome job (picklable `GenomeTask`, run on apply's executors) does, for one kept VCF:

1. normalise with pysam's bcftools in a child process (`codec.bcftools`):
   `bcftools norm -m -any -f REF --check-ref e` (multi-allelic records split into one record
   per ALT, indels left-aligned and trimmed against the registered reference; a REF base
   that disagrees with the reference is an error naming the VCF: it was called on another
   reference, and counting it would be wrong), then `bcftools query` to a TSV of CHROM,
   POS, REF, ALT, GT;
2. read the genome's callable regions (BGZF BED, 0-based half-open, `#` header; the contract of
   `codec.callable_regions`) and intersect them with the ploidy map of the genome's sex
   (`ploidy.py`): the coverage, `(chrom, start, end, ploidy)`;
3. keep each call whose first REF base lies in the coverage: AC = the number of ALT copies in
   its genotype (at most the ploidy; in a haploid region a genotype carrying the ALT counts as
   one copy, whatever the caller wrote), homozygous where ploidy 2 and AC 2, hemizygous where
   ploidy 1 and AC 1. Calls outside the coverage are ignored, so AC <= AN always. Spanning
   deletions (`*`) and symbolic alleles (`<...>`) are not counted.

The job writes `calls.parquet` and `coverage.parquet` of the genome (temporary names, then
renamed) and returns a summary; the aggregation (aggregate.py) adds or subtracts them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pysam

from wgsvault.codec import bcftools
from wgsvault.errors import InputError
from wgsvault.fsutil import land
from wgsvault.variants.ploidy import ploidy_map
from wgsvault.variants.state import connect

_TSV = "%CHROM\\t%POS\\t%REF\\t%ALT\\t[%GT]\\n"


@dataclass(frozen=True)
class GenomeTask:
    genome: str
    vcf: Path
    callable: Path
    sex: str
    fasta: Path
    contigs: dict[str, int]  # of the reference, in its order
    assembly: str | None
    out: Path  # the genome's directory in the store
    threads: int = 1


@dataclass(frozen=True)
class GenomeSummary:
    genome: str
    calls: int  # normalised allele calls carrying an ALT
    counted: int  # of those, inside the callable regions (the alleles the genome adds)
    callable_bases: int  # callable bases with a ploidy above 0


def count_genome(task: GenomeTask) -> GenomeSummary:
    """Normalise one VCF and write the genome's counted calls and coverage (see the module)."""
    _check_vcf(task.vcf)
    task.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".count.", dir=task.out) as tmpdir:
        tmp = Path(tmpdir)
        bcf, tsv = tmp / "norm.bcf", tmp / "calls.tsv"
        bcftools.run(task.vcf, "norm", "-m", "-any", "-f", str(task.fasta), "--check-ref", "e",
                  "-O", "u", "-o", str(bcf), str(task.vcf))  # fmt: skip
        bcftools.run(task.vcf, "query", "-f", _TSV, "-o", str(tsv), str(bcf))
        con = connect(task.threads)
        try:
            calls_tmp, cov_tmp = tmp / "calls.parquet", tmp / "coverage.parquet"
            summary = _count(con, task, tsv, calls_tmp, cov_tmp)
        finally:
            con.close()
        land([(cov_tmp, task.out / "coverage.parquet"), (calls_tmp, task.out / "calls.parquet")])
    return summary


def _check_vcf(vcf: Path) -> None:
    try:
        with pysam.VariantFile(str(vcf)) as fh:
            samples = list(fh.header.samples)
    except (OSError, ValueError) as exc:
        raise InputError(f"{vcf}: cannot read VCF: {exc}") from None
    if len(samples) != 1:
        raise InputError(f"{vcf}: {len(samples)} samples; a genome's VCF must hold exactly one")


def _count(
    con: duckdb.DuckDBPyConnection, task: GenomeTask, tsv: Path, calls: Path, cov: Path
) -> GenomeSummary:
    order = {c: i for i, c in enumerate(task.contigs)}
    con.execute("CREATE TABLE ploidy (chrom VARCHAR, start BIGINT, stop BIGINT, ploidy INT)")
    rows = ploidy_map(task.contigs, task.sex, task.assembly)
    if rows:
        con.executemany("INSERT INTO ploidy VALUES (?, ?, ?, ?)", rows)
    con.execute("CREATE TABLE corder (chrom VARCHAR, ord INT)")
    con.executemany("INSERT INTO corder VALUES (?, ?)", list(order.items()))
    bed = _read_bed(con, task.callable)
    unknown = con.execute(
        f"SELECT DISTINCT chrom FROM {bed} WHERE chrom NOT IN (SELECT chrom FROM corder)"
    ).fetchall()
    if unknown:
        raise InputError(
            f"{task.callable}: contig {unknown[0][0]} is not in the reference the VCF is counted"
            " against"
        )
    con.execute(
        f"""CREATE TABLE coverage AS
        SELECT b.chrom, greatest(b.start, p.start) AS start, least(b.stop, p.stop) AS stop, p.ploidy
        FROM {bed} b JOIN ploidy p
          ON b.chrom = p.chrom AND b.start < p.stop AND p.start < b.stop
        JOIN corder o ON o.chrom = b.chrom
        ORDER BY o.ord, start"""
    )
    con.execute(
        f"""CREATE TABLE raw AS SELECT chrom, pos, ref, alt,
            len(list_filter(str_split_regex(gt, '[/|]'), lambda x: x = '1'))::INT AS dosage
        FROM read_csv('{_sql_path(tsv)}', delim='\t', header=false, auto_detect=false,
            quote='', escape='',
            columns={{'chrom': 'VARCHAR', 'pos': 'BIGINT', 'ref': 'VARCHAR',
                      'alt': 'VARCHAR', 'gt': 'VARCHAR'}})
        WHERE alt <> '*' AND alt NOT LIKE '<%' AND alt <> '.'"""
    )
    con.execute(
        """CREATE TABLE counted AS
        WITH hit AS (
            SELECT r.chrom, r.pos, r.ref, r.alt, r.dosage, c.ploidy
            FROM raw r ASOF JOIN coverage c ON r.chrom = c.chrom AND r.pos - 1 >= c.start
            WHERE r.pos - 1 < c.stop AND r.dosage > 0
        ), one AS (
            SELECT chrom, pos, ref, alt, max(ploidy) AS ploidy,
                   least(sum(dosage), max(ploidy))::INT AS dosage
            FROM hit GROUP BY ALL
        )
        SELECT one.chrom, pos, ref, alt,
            (CASE WHEN ploidy = 1 THEN 1 ELSE dosage END)::INT AS ac,
            (ploidy = 2 AND dosage = 2)::INT AS nhomalt,
            (ploidy = 1)::INT AS nhemi
        FROM one JOIN corder o ON o.chrom = one.chrom
        ORDER BY o.ord, pos, ref, alt"""
    )
    n_calls = _one(con, "SELECT count(*) FROM raw WHERE dosage > 0")
    n_counted = _one(con, "SELECT count(*) FROM counted")
    bases = _one(con, "SELECT coalesce(sum(stop - start), 0) FROM coverage")
    con.execute(f"COPY counted TO '{_sql_path(calls)}' (FORMAT parquet, COMPRESSION zstd)")
    con.execute(
        f"COPY (SELECT chrom, start, stop, ploidy FROM coverage) TO '{_sql_path(cov)}'"
        " (FORMAT parquet, COMPRESSION zstd)"
    )
    return GenomeSummary(task.genome, n_calls, n_counted, bases)


def _read_bed(con: duckdb.DuckDBPyConnection, bed: Path) -> str:
    """The callable BED as a table `bed(chrom, start, stop)`; a bad file is one InputError."""
    if not bed.is_file():
        raise InputError(f"{bed}: callable regions file not found")
    try:
        con.execute(
            f"""CREATE TABLE bed AS SELECT chrom, start, stop FROM read_csv('{_sql_path(bed)}',
                delim='\t', header=false, comment='#', auto_detect=false, quote='', escape='',
                compression='gzip', null_padding=true,
                columns={{'chrom': 'VARCHAR', 'start': 'BIGINT', 'stop': 'BIGINT'}})"""
        )
    except duckdb.Error as exc:
        raise InputError(f"{bed}: not a callable-regions BED: {str(exc).splitlines()[0]}") from None
    bad = con.execute(
        "SELECT chrom, start, stop FROM bed WHERE start IS NULL OR stop IS NULL OR start < 0"
        " OR stop <= start LIMIT 1"
    ).fetchone()
    if bad is not None:
        raise InputError(f"{bed}: bad interval {bad[0]}:{bad[1]}-{bad[2]}")
    return "bed"


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _sql_path(path: Path) -> str:
    return os.fspath(path).replace("'", "''")
