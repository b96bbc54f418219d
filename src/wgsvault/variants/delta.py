"""One genome added to or removed from one contig, in one pass over the contig's alleles.

`aggregate.py` computes a contig from the genomes' counts (what a build needs). Adding or
removing one genome changes far less, so `apply_change` streams the stored allele rows, in their
order, into the new partition (a positional join with a narrow table of what the genome changes
in each row: only that table is sorted, never the wide rows), which

* finds, for each allele, whether the genome is callable there (an ASOF join on its coverage:
  +-ploidy to AN of the total and of the genome's strata),
* joins the genome's calls on (pos, ref, alt) (+-AC, nhomalt, nhemi),
* updates the total columns and the columns of the genome's strata (a stratum new to the
  contig gets its columns; one whose last genome leaves loses them), and drops alleles whose
  AC falls to 0;

and appends the alleles the genome brings that were not there, as a sorted run: their AN per
stratum comes from the new coverage segments (`aggregate.new_coverage`), read only at those
positions. The file records how many of its leading rows are sorted (`aggregate.SORTED_KEY`);
once the appended runs pass TAIL_LIMIT of the contig, `add` sorts it whole again. Sorting every
time cost a third of an add (measured at 50 M alleles: bench/variants.py); lookup files, which
need sorted rows, are written sorted at release. The rows are the same as a build's from the new
set of genomes, in another order where runs were appended (the tests compare them); adding then
removing a genome leaves the file's rows in their order, as they were.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from wgsvault.errors import IntegrityError
from wgsvault.variants.aggregate import (
    ROW_GROUP,
    STRATUM_FIELDS,
    ContigResult,
    ContigTask,
    contig_strata,
    lit,
    nest,
    new_coverage,
    old_partition,
    sorted_rows,
    sql_path,
    strata_columns,
    write,
)
from wgsvault.variants.state import connect, partition, stratum_id


def apply_change(task: ContigTask) -> ContigResult:
    """Write the contig's partitions with one genome added or removed (see the module)."""
    (change,) = task.changes
    con = connect(task.threads)
    try:
        new_coverage(con, task)
        c, sign = lit(task.contig), change.sign
        con.execute(
            f"""CREATE TABLE gcalls AS SELECT pos, ref, alt, ac, nhomalt, nhemi
            FROM read_parquet('{sql_path(change.genome_dir / "calls.parquet")}')
            WHERE chrom = {c}"""
        )
        con.execute(
            f"""CREATE TABLE gcov1 AS SELECT start, stop, ploidy
            FROM read_parquet('{sql_path(change.genome_dir / "coverage.parquet")}')
            WHERE chrom = {c} ORDER BY start"""
        )
        old = old_partition(task, "alleles")
        source = f"read_parquet('{sql_path(old)}')" if old else _EMPTY
        # the alleles the genome brings that were not there (on add only), sorted
        con.execute(
            f"""CREATE TABLE newcounts AS
            SELECT k.pos, k.ref, k.alt, st.stratum, k.ac::BIGINT AS ac,
                   k.nhomalt::BIGINT AS nhomalt, k.nhemi::BIGINT AS nhemi
            FROM gcalls k ANTI JOIN {source} o USING (pos, ref, alt)
            CROSS JOIN (SELECT unnest([{", ".join(lit(s) for s in change.strata)}]) AS stratum) st
            WHERE {sign} > 0"""
        )
        nest(con, task.contig, "newcounts", "added")
        path = partition(task.new, "alleles", task.contig)
        if old is None:
            row = con.execute("SELECT count(*) FROM added").fetchone()
            n = write(con, "added", path, ROW_GROUP, sorted_rows=int(row[0]) if row else 0)
        else:
            n = _update(con, task, old, change.strata, sign, path)
        segments = write(con, "cov", partition(task.new, "coverage", task.contig), 65536)
        return ContigResult(task.contig, n, segments)
    finally:
        con.close()


def _update(
    con: duckdb.DuckDBPyConnection,
    task: ContigTask,
    old: Path,
    strata: tuple[str, ...],
    sign: int,
    path: Path,
) -> int:
    """Write the contig's alleles: the old rows with the genome's figures added (or taken
    away), in their order, then its new alleles as a sorted run (the whole contig sorted again
    once such runs pass TAIL_LIMIT); the number of rows."""
    src = f"read_parquet('{sql_path(old)}')"
    mine = {stratum_id(s) for s in strata if s != "total"}
    after = list(contig_strata(con).values())
    before = set(strata_columns(con, src))
    # per old row, in file order: the genome's ploidy where it is callable (ASOF join on its
    # coverage) and its call of the allele; narrow, so that only five columns are sorted back
    con.execute(
        f"""CREATE TABLE d AS
        SELECT (CASE WHEN o.pos - 1 < g.stop THEN g.ploidy ELSE 0 END * {sign})::BIGINT AS d_an,
            (coalesce(k.ac, 0) * {sign})::BIGINT AS d_ac,
            (coalesce(k.nhomalt, 0) * {sign})::BIGINT AS d_hom,
            (coalesce(k.nhemi, 0) * {sign})::BIGINT AS d_hemi,
            o.ac + coalesce(k.ac, 0) * {sign} <> 0 AS keep, o.rn
        FROM (SELECT file_row_number AS rn, pos, ref, alt, ac
              FROM read_parquet('{sql_path(old)}', file_row_number = true)) o
        ASOF LEFT JOIN gcov1 g ON o.pos - 1 >= g.start
        LEFT JOIN gcalls k USING (pos, ref, alt)
        ORDER BY o.rn"""
    )
    sorted_old = sorted_rows(con, old)
    kept = con.execute(
        "SELECT count(*) FILTER (WHERE keep), count(*) FILTER (WHERE keep AND rn < ?), "
        f"count(*), (SELECT count(*) FROM {src}) FROM d",
        [sorted_old if sorted_old is not None else 1 << 62],
    ).fetchone()
    added = con.execute("SELECT count(*) FROM added").fetchone()
    assert kept is not None and added is not None
    if kept[2] != kept[3]:  # the positional join below needs one row of `d` per stored row
        raise IntegrityError(f"contig {task.contig}: the genome's calls repeat an allele")
    total, prefix = int(kept[0]) + int(added[0]), int(kept[1])
    expr: dict[str, str] = {}  # new value of each stratum column
    for sid in after:
        for f, d in zip(STRATUM_FIELDS, _DELTAS, strict=True):
            value = f"{f}_{sid}" if sid in before else "0"
            expr[f"{f}_{sid}"] = f"({value}{f' + {d}' if sid in mine else ''})::BIGINT"
    cols = [f"{e} AS {name}" for name, e in expr.items()]
    bad = " OR ".join(
        ["ac + d_ac < 0", "an + d_an < ac + d_ac", "nhomalt + d_hom < 0", "nhemi + d_hemi < 0"]
        + [f"{expr[f'ac_{s}']} < 0 OR {expr[f'an_{s}']} < {expr[f'ac_{s}']}" for s in after]
    )
    why = f"contig {task.contig}: counts at "
    moved = f"""SELECT chrom, pos, ref, alt, ac + d_ac AS ac, an + d_an AS an,
            (ac + d_ac) / (an + d_an) AS af, nhomalt + d_hom AS nhomalt,
            nhemi + d_hemi AS nhemi{", " * bool(cols)}{", ".join(cols)}
        FROM {src} POSITIONAL JOIN d
        WHERE CASE WHEN {bad} THEN error({lit(why)} || pos::VARCHAR || {lit(_BAD)}) ELSE keep END"""
    rows = f"(SELECT * FROM ({moved}) UNION ALL BY NAME SELECT * FROM added)"
    try:
        if total - prefix > max(ROW_GROUP, int(total * TAIL_LIMIT)):
            con.execute(f"CREATE TABLE alleles AS SELECT * FROM {rows} ORDER BY pos, ref, alt")
            return write(con, "alleles", path, ROW_GROUP, sorted_rows=total)
        return write(con, rows, path, ROW_GROUP, sorted_rows=prefix)
    except duckdb.Error as exc:
        message = str(exc)
        if _BAD not in message:
            raise
        raise IntegrityError(message[message.index(why) :].splitlines()[0]) from None


#: rows of a contig, beyond one row group, that may follow its sorted rows as runs that `add`
#: appended before the contig is sorted again (lookups read those runs' row groups whatever the
#: position; the sort would cost add about a third of its time every time)
TAIL_LIMIT = 0.05
_EMPTY = "(SELECT 0::BIGINT AS pos, '' AS ref, '' AS alt WHERE false)"
_BAD = " fell below 0 or AC above AN: the genome's contribution does not match the store"


#: what the genome adds to each stratum column (in STRATUM_FIELDS order)
_DELTAS = ("d_ac", "d_an", "d_hom", "d_hemi")
