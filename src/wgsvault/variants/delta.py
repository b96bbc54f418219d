"""One genome added to or removed from one contig, in one pass over the contig's alleles.

`aggregate.py` recomputes a contig from per-stratum counts (what a build needs). Adding or
removing one genome changes far less, so `apply_change` updates the allele rows in place of
that: one sorted pass over the contig's alleles that

* finds, for each allele, whether the genome is callable there (an ASOF join on its coverage:
  +-ploidy to AN of the total and of the genome's strata),
* joins the genome's calls on (pos, ref, alt) (+-AC, nhomalt, nhemi),
* updates the total columns and, inside the `strata` list, the genome's strata (adding a
  stratum entry where the genome is the first of its stratum callable there, dropping one whose
  AN falls to 0), and drops alleles whose AC falls to 0;

and adds the alleles the genome brings that were not there: their AN per stratum comes from the
new coverage segments (`aggregate.new_coverage`), read only at those positions. The result is
the same, row for row, as a build from the new set of genomes (the tests compare them).
"""

from __future__ import annotations

import duckdb

from wgsvault.errors import IntegrityError
from wgsvault.variants.aggregate import (
    ContigResult,
    ContigTask,
    lit,
    nest,
    new_coverage,
    old_partition,
    sql_path,
    write_outputs,
)

_EMPTY = (
    "SELECT ''::VARCHAR AS chrom, 0::BIGINT AS pos, ''::VARCHAR AS ref, ''::VARCHAR AS alt, "
    "0::BIGINT AS ac, 0::BIGINT AS an, 0::DOUBLE AS af, 0::BIGINT AS nhomalt, "
    "0::BIGINT AS nhemi, []::STRUCT(name VARCHAR, ac BIGINT, an BIGINT, af DOUBLE, "
    "nhomalt BIGINT, nhemi BIGINT)[] AS strata WHERE false"
)


def apply_change(task: ContigTask) -> ContigResult:
    """Write the contig's partitions with one genome added or removed (see the module)."""
    (change,) = task.changes
    con = duckdb.connect(config={"threads": task.threads})
    try:
        new_coverage(con, task)
        c, sign = lit(task.contig), change.sign
        strata = [s for s in change.strata if s != "total"]
        named = ", ".join(lit(s) for s in strata) or "NULL"
        old = old_partition(task, "alleles")
        source = f"read_parquet('{sql_path(old)}')" if old else f"({_EMPTY})"
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
        # d_an: the genome's ploidy where it is callable; d_ac...: its call of the allele
        fresh = ", ".join(
            f"struct_pack(name := {lit(s)}, ac := 0::BIGINT, an := 0::BIGINT, af := 0::DOUBLE,"
            " nhomalt := 0::BIGINT, nhemi := 0::BIGINT)"
            for s in strata
        )
        widen = (
            f"""CASE WHEN d_an > 0 THEN list_concat(strata, list_filter([{fresh}],
                lambda f: NOT list_contains(list_transform(strata, lambda s: s.name), f.name)))
            ELSE strata END"""
            if strata
            else "strata"
        )
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
            ), widened AS (
                SELECT *, {widen} AS s0 FROM d
            )
            SELECT chrom, pos, ref, alt, ac + d_ac AS ac, an + d_an AS an,
                (ac + d_ac) / (an + d_an) AS af,
                nhomalt + d_hom AS nhomalt, nhemi + d_hemi AS nhemi,
                list_sort(list_filter(list_transform(s0, lambda s: CASE
                    WHEN s.name IN ({named}) THEN struct_pack(
                        name := s.name, ac := s.ac + d_ac, an := s.an + d_an,
                        af := (s.ac + d_ac) / (s.an + d_an), nhomalt := s.nhomalt + d_hom,
                        nhemi := s.nhemi + d_hemi)
                    ELSE s END), lambda s: s.an > 0)) AS strata
            FROM widened
            WHERE ac + d_ac <> 0"""
        )
        bad = con.execute(
            "SELECT pos FROM moved WHERE ac < 0 OR an < ac OR nhomalt < 0 OR nhemi < 0 LIMIT 1"
        ).fetchone()
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
            "CREATE TABLE alleles AS SELECT * FROM (SELECT * FROM moved UNION ALL BY NAME "
            "SELECT * FROM added) ORDER BY pos, ref, alt"
        )
        return write_outputs(con, task)
    finally:
        con.close()
