"""One genome added to or removed from one contig, in one pass over the contig's alleles.

`aggregate.py` recomputes a contig from per-stratum counts (what a build needs). Adding or
removing one genome changes far less, so `apply_change` updates the allele rows in place of
that: one sorted pass over the contig's alleles that

* finds, for each allele, whether the genome is callable there (an ASOF join on its coverage:
  +-ploidy to AN of the total and of the genome's strata),
* joins the genome's calls on (pos, ref, alt) (+-AC, nhomalt, nhemi),
* updates the total columns and the columns of the genome's strata (a stratum new to the
  contig gets its columns; one whose last genome leaves loses them), and drops alleles whose
  AC falls to 0;

and adds the alleles the genome brings that were not there: their AN per stratum comes from the
new coverage segments (`aggregate.new_coverage`), read only at those positions. The result is
the same, row for row, as a build from the new set of genomes (the tests compare them).
"""

from __future__ import annotations

import duckdb

from wgsvault.errors import IntegrityError
from wgsvault.variants.aggregate import (
    STRATUM_FIELDS,
    ContigResult,
    ContigTask,
    contig_strata,
    lit,
    nest,
    new_coverage,
    old_partition,
    sql_path,
    strata_columns,
    write_outputs,
)
from wgsvault.variants.state import stratum_id


def apply_change(task: ContigTask) -> ContigResult:
    """Write the contig's partitions with one genome added or removed (see the module)."""
    (change,) = task.changes
    con = duckdb.connect(config={"threads": task.threads})
    try:
        new_coverage(con, task)
        c, sign = lit(task.contig), change.sign
        mine = {stratum_id(s) for s in change.strata if s != "total"}
        after = list(contig_strata(con).values())
        old = old_partition(task, "alleles")
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
        if old is None:
            con.execute("CREATE TABLE moved AS SELECT 0::BIGINT AS pos, '' AS ref, '' AS alt "
                        "WHERE false")  # fmt: skip
            source = "moved"
        else:
            source = f"read_parquet('{sql_path(old)}')"
            before = set(strata_columns(con, source))
            # d_an: the genome's ploidy where it is callable; d_ac...: its call of the allele
            cols = []
            for sid in after:
                for f, d in zip(STRATUM_FIELDS, _DELTAS, strict=True):
                    value = f"{f}_{sid}" if sid in before else "0"
                    cols.append(f"({value}{f' + {d}' if sid in mine else ''})::BIGINT AS {f}_{sid}")
            con.execute(
                f"""CREATE TABLE moved AS
                WITH d AS (
                    SELECT o.*,
                        (CASE WHEN o.pos - 1 < g.stop THEN g.ploidy ELSE 0 END * {sign})::BIGINT
                            AS d_an,
                        (coalesce(k.ac, 0) * {sign})::BIGINT AS d_ac,
                        (coalesce(k.nhomalt, 0) * {sign})::BIGINT AS d_hom,
                        (coalesce(k.nhemi, 0) * {sign})::BIGINT AS d_hemi
                    FROM {source} o
                    ASOF LEFT JOIN gcov1 g ON o.pos - 1 >= g.start
                    LEFT JOIN gcalls k USING (pos, ref, alt)
                )
                SELECT chrom, pos, ref, alt, ac + d_ac AS ac, an + d_an AS an,
                    (ac + d_ac) / (an + d_an) AS af,
                    nhomalt + d_hom AS nhomalt, nhemi + d_hemi AS nhemi{", " * bool(cols)}
                    {", ".join(cols)}
                FROM d
                WHERE ac + d_ac <> 0"""
            )
            checks = " OR ".join(
                ["ac < 0", "an < ac", "nhomalt < 0", "nhemi < 0"]
                + [f"an_{sid} < ac_{sid} OR ac_{sid} < 0" for sid in after]
            )
            bad = con.execute(f"SELECT pos FROM moved WHERE {checks} LIMIT 1").fetchone()
            if bad is not None:
                raise IntegrityError(
                    f"contig {task.contig}: counts at {bad[0]} fell below 0 or AC above AN: the"
                    " genome's contribution does not match the store"
                )
        # the alleles the genome brings that were not there (on add only)
        con.execute(
            f"""CREATE TABLE newcounts AS
            SELECT k.pos, k.ref, k.alt, st.stratum, k.ac::BIGINT AS ac,
                   k.nhomalt::BIGINT AS nhomalt, k.nhemi::BIGINT AS nhemi
            FROM gcalls k ANTI JOIN {source} o USING (pos, ref, alt)
            CROSS JOIN (SELECT unnest([{", ".join(lit(s) for s in change.strata)}]) AS stratum) st
            WHERE {sign} > 0"""
        )
        nest(con, task.contig, "newcounts", "added")
        con.execute(
            "CREATE TABLE alleles AS SELECT * FROM (SELECT * FROM added UNION ALL BY NAME "
            "SELECT * FROM moved) ORDER BY pos, ref, alt"
        )  # joins do not keep the old order
        return write_outputs(con, task)
    finally:
        con.close()


#: what the genome adds to each stratum column (in STRATUM_FIELDS order)
_DELTAS = ("d_ac", "d_an", "d_hom", "d_hemi")
