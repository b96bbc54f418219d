"""Allele frequencies as a terminal table: one row per allele and stratum, the total first."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from wgsvault.variants.store import AlleleFrequency, StratumFrequency


def frequency_table(alleles: Iterable[AlleleFrequency], title: str | None = None) -> Table:
    """What `variants query` prints: AC, AN, AF, homozygous and hemizygous carriers."""
    table = Table("chrom", "pos", "ref", "alt", "stratum", "AC", "AN", "AF", "hom", "hemi",
                  title=title, title_justify="left")  # fmt: skip
    for a in alleles:
        total = StratumFrequency(a.ac, a.an, a.af, a.nhomalt, a.nhemi)
        for i, (name, s) in enumerate({"total": total, **a.strata}.items()):
            site = [a.chrom, str(a.pos), a.ref, a.alt] if i == 0 else ["", "", "", ""]
            af = f"{s.af:.4g}" if s.af is not None else "-"
            table.add_row(*site, name, str(s.ac), str(s.an), af, str(s.nhomalt), str(s.nhemi))
    return table
