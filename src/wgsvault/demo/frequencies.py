"""The demo's variant frequency database: counted from the genomes the estate keeps, then asked.

After plan B the real genomes keep their VCFs but not their gVCFs: the gVCFs went only once
their callable regions were stored, and those regions are what the allele numbers are counted
from. The simulated genomes' VCFs and gVCFs are sparse placeholders that hold no calls: they are
reported as not counted. The database is built from nothing on every run (a few genomes), and
one allele is shown as `wgsvault variants query` would show it.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from wgsvault.apply.executors import LocalExecutor
from wgsvault.catalog import Catalog
from wgsvault.variants import engine
from wgsvault.variants.render import frequency_table
from wgsvault.variants.store import AlleleFrequency, FrequencyStore


def frequency_demo(catalog: Catalog, home: Path, build: str, console: Console) -> Path:
    """Build the frequency store under `home`, print what it holds and one allele; the store."""
    store = home / "variants"
    ref = engine.reference(catalog, build, refs=home / "refs")
    outcome = engine.build(catalog, store, ref, executor=LocalExecutor(2), actor="wgsvault-demo")
    console.print(
        f"[bold]Variant frequencies[/] ({store}): {outcome.genomes} genomes counted within "
        f"their callable regions, {outcome.alleles} alleles; not counted: "
        f"{len(outcome.skipped)} simulated genomes (their VCFs are placeholders without "
        f"calls) and {outcome.without_vcf:,} genomes of the case history (no VCF here)",
        soft_wrap=True,
    )
    with FrequencyStore(store) as fs:
        alleles: list[AlleleFrequency] = []
        for contig, length in ref.contigs.items():
            alleles += fs.region(contig, 1, length)
    if alleles:
        shown = max(alleles, key=lambda a: (a.ac, -a.pos))  # the most common, first if tied
        console.print(frequency_table([shown], title="One allele, as variants query shows it"))
        ask = f"{shown.chrom}:{shown.pos} {shown.ref} {shown.alt}"
        console.print(
            f"Ask it: wgsvault variants query {ask} [--json] | --region "
            f"{shown.chrom}:1-{ref.contigs[shown.chrom]}; variants export -o sites.vcf.gz; "
            "variants release (refused below 20 new genomes); the Beacon v2 at "
            "/api/beacon/g_variants of wgsvault serve answers from releases only.",
            soft_wrap=True,
            highlight=False,
        )
    return store
