"""Variants: the national variant frequency database, built from the genomes the centre keeps.

Each kept VCF is normalised against its registered reference (multi-allelics split, indels
left-aligned) and counted where its genome is confidently called: the callable regions that
`codec.callable` derives from the genome's gVCF (or, where that is gone, from its CRAM's depth).
Allele counts, allele numbers, frequencies, homozygous and hemizygous carriers are kept per site
and allele, in total and per patient group and requisitioning region, in Parquet files
partitioned by chromosome and read through embedded DuckDB. Genomes are added and withdrawn one
by one, exactly; releases are immutable numbered snapshots.

May use: apply (its executors, for per-genome jobs), codec (htslib tools, reference registry,
callable regions), catalog and the utilities. Used by: serve (the Beacon v2 interface), cli, demo.
"""
