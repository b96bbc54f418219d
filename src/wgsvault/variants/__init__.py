"""Variants: the national variant frequency database, built from the genomes the centre keeps.

Each kept VCF is normalised against its registered reference (multi-allelics split, indels
left-aligned) and counted where its genome is confidently called: the callable regions that
`codec.callable_regions` derives from the genome's gVCF (or, where that is gone, from its CRAM's
depth). Allele counts, allele numbers, frequencies, homozygous and hemizygous carriers are kept
per site and allele, in total and per patient group and requisitioning region, in Parquet files
partitioned by chromosome and read through embedded DuckDB. Genomes are added and withdrawn one
by one, exactly; releases are immutable numbered snapshots.

The flow: `cohort` (what the catalog knows) -> `extract` (missing callable regions) -> `genome`
(one genome's counted calls and coverage, `ploidy` by sex and PAR) -> `aggregate` (a contig
from many genomes: build) or `delta` (one genome added or removed) -> `state` (the layout on
disk, generations) -> `release`, `export`, `store` (reading: `FrequencyStore`). `engine` runs
build/add/remove on the executors of `jobs`.

May use: apply (its executors, for per-genome jobs), codec (htslib tools, reference registry,
callable regions), catalog and the utilities. Used by: serve (the Beacon v2 interface), cli, demo.
"""
